//! Descriptions from anything but TOML text: a [`Providers`] deserialized
//! with serde (JSON, YAML, part of an application's own configuration), from
//! a serializable value, or built provider by provider in code. All of them
//! go through the loader that reads `providers.toml`, with the same checks
//! and the same diagnostics; only the positions are missing (such input has
//! no lines and columns, so [`Diagnostic::line`] and `column` are 0 and are
//! not printed).

use serde::{Deserialize, Deserializer, Serialize};

use super::error::ConfigErrors;
use super::load;
use super::model::Providers;

/// What names a description without a file in messages, unless the caller
/// gives a name.
const UNNAMED: &str = "";

impl Providers {
    /// Validates a description given as a serializable value with the same
    /// layout as `providers.toml`: `{ "providers": { "ID": { "api": [...],
    /// ... } } }`. `name` names it in messages (e.g. `"config.json"`).
    ///
    /// Keys keep the order the value serializes them in; the order of
    /// `fields` is the order they are sent in. (A `serde_json::Value`
    /// sorts its keys unless serde_json's `preserve_order` feature is on.)
    /// A `null` is not a value of the language: leave the key out instead.
    pub fn from_value(name: &str, value: impl Serialize) -> Result<Self, ConfigErrors> {
        match toml::Value::try_from(value) {
            Ok(value) => load::deserialize(name, value),
            Err(e) => Err(load::unreadable(name, &e.to_string())),
        }
    }

    /// Builds a description in code, provider by provider.
    ///
    /// ```
    /// use serde_json::json;
    /// use tokenauth_core::config::Providers;
    ///
    /// let providers = Providers::builder()
    ///     .provider("bro", json!({
    ///         "api": ["https://api.bro.example/"],
    ///         "inputs": {
    ///             "username": { "env": "BRO_USERNAME" },
    ///             "token": { "env": "BRO_TOKEN", "secret": true },
    ///         },
    ///         "inject": { "basic": {
    ///             "username": "{{ inputs.username }}",
    ///             "password": "{{ inputs.token }}",
    ///         } },
    ///     }))
    ///     .build()
    ///     .unwrap();
    /// assert!(providers.get("bro").unwrap().inject.basic.is_some());
    ///
    /// // The same checks as for a file, without line and column:
    /// let err = Providers::builder()
    ///     .provider("x", json!({ "api": "http://api.example.com/", "inject": { "header": "X-Key", "value": "k" } }))
    ///     .build()
    ///     .unwrap_err();
    /// let d = &err.diagnostics[0];
    /// assert_eq!(d.path, "providers.x.api");
    /// assert!(d.message.contains("uses plain http"));
    /// assert_eq!((d.line, d.column), (0, 0));
    /// ```
    pub fn builder() -> ProvidersBuilder {
        ProvidersBuilder::default()
    }
}

/// Builds [`Providers`] in code: each provider is a serializable value with
/// the keys of a `[providers.ID]` table (a `serde_json::json!` value, or an
/// application's own struct), checked by the same loader as a file when
/// [`build`](ProvidersBuilder::build) is called. See [`Providers::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct ProvidersBuilder {
    name: Option<String>,
    providers: Vec<(String, Result<toml::Value, String>)>,
}

impl ProvidersBuilder {
    /// Names the description in messages (`"the description"` by default
    /// when there is no name, e.g. `"tenant 42 settings"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds the provider `id`, described by `description` (see
    /// [`Providers::from_value`] for how keys and their order are read).
    pub fn provider(mut self, id: impl Into<String>, description: impl Serialize) -> Self {
        let value = toml::Value::try_from(description).map_err(|e| e.to_string());
        self.providers.push((id.into(), value));
        self
    }

    /// Checks every provider and returns them, or every problem found.
    pub fn build(self) -> Result<Providers, ConfigErrors> {
        load::from_providers(self.name.as_deref().unwrap_or(UNNAMED), self.providers)
    }
}

/// Deserializes from any self-describing serde format, through the same
/// loader as [`Providers::from_toml`]: an invalid description is an error
/// whose text lists every problem with its key path (see
/// [`Providers::from_value`] for the diagnostics as values).
///
/// ```
/// use tokenauth_core::config::Providers;
///
/// let providers: Providers = serde_json::from_str(r#"{ "providers": { "api": {
///     "api": ["https://api.example.com/"],
///     "inputs": { "key": { "env": "API_KEY", "secret": true } },
///     "inject": { "query": { "name": "api_key", "value": "{{ inputs.key }}" } }
/// } } }"#).unwrap();
/// assert_eq!(providers.ids().collect::<Vec<_>>(), ["api"]);
///
/// let err = serde_json::from_str::<Providers>(r#"{ "providers": { "api": {
///     "api": ["https://api.example.com/"],
///     "inject": { "header": "X-Key", "value": "{{ inputs.key }}" }
/// } } }"#).unwrap_err();
/// assert!(err.to_string().contains("`providers.api.inject.value`: `{{ inputs.key }}` names an input that is not declared"));
/// ```
impl<'de> Deserialize<'de> for Providers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        load::deserialize(UNNAMED, deserializer).map_err(serde::de::Error::custom)
    }
}
