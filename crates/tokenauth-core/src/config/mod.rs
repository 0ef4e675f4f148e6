//! The `providers.toml` language: a typed, validated model of provider
//! descriptions.
//!
//! Load a file with [`Providers::from_path`] or a string with
//! [`Providers::from_toml`]. Loading checks everything that can be checked
//! without the network and reports **all** problems at once, each with
//! `file:line:column`, the key path and how to fix it (the first 200 are
//! listed, the rest counted in [`ConfigErrors::omitted`]).
//!
//! ```
//! use tokenauth_core::config::Providers;
//!
//! let providers = Providers::from_toml("example.toml", r#"
//! [providers.reobtimaal]
//! api = ["https://api.reobtimaal-diensten.nl/api/"]
//! inputs.username = { env = "REOBTIMAAL_USERNAME" }
//! inputs.password = { env = "REOBTIMAAL_PASSWORD", secret = true }
//!
//! [providers.reobtimaal.login]
//! url = "https://api.reobtimaal-diensten.nl/api/Token"
//! fields = { "grant-type" = "password", username = "{{ inputs.username }}", Password = "{{ inputs.password }}" }
//!
//! [providers.reobtimaal.expiry]
//! ttl = "60m"
//!
//! [providers.reobtimaal.inject]
//! header = "Authorization"
//! value = "bearer {{ token.access }}"
//! "#).unwrap();
//!
//! let reob = providers.get("reobtimaal").unwrap();
//! assert_eq!(reob.login.as_ref().unwrap().fields[0].0, "grant-type");
//!
//! let err = Providers::from_toml("bad.toml", "[providers.x]\napi = [\"http://example.com/\"]\n").unwrap_err();
//! assert!(err.to_string().contains("bad.toml:2:8"));
//! ```
//!
//! # Descriptions from other formats, or built in code
//!
//! [`Providers`] implements [`serde::Deserialize`], so a description can come
//! as JSON, YAML or a part of the application's own configuration;
//! [`Providers::from_value`] takes any serializable value with the layout of
//! the file, and [`Providers::builder`] adds providers one by one. Each goes
//! through the loader that reads `providers.toml`: the same checks and the
//! same diagnostics (message, key path, help), only without positions, which
//! such input does not have (`line` and `column` are 0 and not printed).
//!
//! ```
//! use serde_json::json;
//! use tokenauth_core::config::Providers;
//!
//! let description = json!({ "providers": { "api": {
//!     "api": ["https://api.example.com/"],
//!     "inputs": { "key": { "env": "API_KEY", "secret": true } },
//!     "inject": { "header": "X-Api-Key", "value": "{{ inputs.kye }}" },
//! } } });
//! let err = Providers::from_value("tenant.json", &description).unwrap_err();
//! let d = &err.diagnostics[0];
//! assert_eq!(d.path, "providers.api.inject.value");
//! assert_eq!(d.help.as_deref(), Some("did you mean `inputs.key`?"));
//! assert_eq!(
//!     d.to_string(),
//!     "tenant.json: `providers.api.inject.value`: `{{ inputs.kye }}` names an input that is not declared\n  help: did you mean `inputs.key`?"
//! );
//!
//! // serde's Deserialize: the same loader, every problem in the error's text.
//! let providers: Providers = serde_json::from_str(
//!     &description.to_string().replace("inputs.kye", "inputs.key"),
//! ).unwrap();
//! assert_eq!(providers.ids().collect::<Vec<_>>(), ["api"]);
//! ```
//!
//! # The JSON Schema
//!
//! `providers.schema.json` (for editors) is generated from the loader: each
//! table's reader takes its keys through one helper that records the key, its
//! type, a one-line doc and whether it is required, and the schema is that
//! record. Regenerate it with `tokenauth schema > providers.schema.json`; a
//! test fails when the committed file differs.
//!
//! The full reference of every key is below.
#![doc = include_str!("../../../../docs/providers-toml.md")]

mod build;
mod error;
pub(crate) mod load;
mod model;

use std::path::Path;

pub use crate::url_template::{
    UrlPlace, UrlRenderError, UrlTemplate, UrlTemplateError, UrlValueError,
};
pub use build::ProvidersBuilder;
pub use error::{ConfigErrors, Diagnostic, LoadError};
pub use model::*;

/// The environment variable that names the description file for
/// [`Providers::from_env`] (and the `tokenauth` CLI): `TOKENAUTH_CONFIG`.
pub const CONFIG_ENV: &str = "TOKENAUTH_CONFIG";

impl Providers {
    /// Reads and validates a description file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let src = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::from_toml(&path.display().to_string(), &src)?)
    }

    /// Reads the description the environment names, as the `tokenauth` CLI
    /// does: the file in `$TOKENAUTH_CONFIG`, else `./providers.toml`.
    pub fn from_env() -> Result<Self, LoadError> {
        Self::from_path(Self::env_path())
    }

    /// The file [`from_env`](Self::from_env) reads: `$TOKENAUTH_CONFIG` if
    /// it is set and not empty, else `providers.toml` in the working
    /// directory.
    pub fn env_path() -> std::path::PathBuf {
        std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| "providers.toml".into(), std::path::PathBuf::from)
    }

    /// Validates a description given as text; `file` names it in messages.
    pub fn from_toml(file: &str, src: &str) -> Result<Self, ConfigErrors> {
        load::parse(file, src)
    }
}

/// The JSON Schema of `providers.toml` (draft-07, pretty-printed), generated
/// from the loader's own record of every key. `tokenauth schema` prints it;
/// `providers.schema.json` is its output.
#[doc(hidden)]
pub fn json_schema() -> String {
    load::schema::json_schema()
}
