//! Connections: the named set of input values one provider is used with.
//!
//! A provider's description declares its inputs (user name, password, client
//! id, ...); a [`Connection`] supplies their values. Tokens are cached per
//! (provider, connection id), so a workflow engine serving many tenants gives
//! each tenant its own connection:
//!
//! ```
//! use secrecy::SecretString;
//! use tokenauth_core::Connection;
//!
//! let tenant = Connection::new("tenant-42")
//!     .with_input("username", "alice")
//!     .with_secret("password", SecretString::from("s3cret"));
//! assert_eq!(tenant.id(), "tenant-42");
//! assert_eq!(
//!     format!("{tenant:?}"),
//!     r#"Connection { id: "tenant-42", inputs: {"username": "alice", "password": [redacted]} }"#
//! );
//! ```
//!
//! The *default* connection (id [`DEFAULT_CONNECTION`]) reads every input from
//! the environment variable its description names (`env = "..."`), falling
//! back to the input's `default`; the engine builds it on first use (see
//! [`Connection::from_env`]).
//!
//! Two connections with the same id share one cached token (and one
//! rendering of the provider's per-connection URLs), so they must carry the
//! same inputs.

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::Provider;
use crate::error::Error;
use crate::template::{Template, Var};
use crate::url_template::{UrlRenderError, UrlTemplate};

/// The id of the connection built from environment variables.
pub const DEFAULT_CONNECTION: &str = "default";

/// A named set of input values for one provider. Cheap to clone (an `Arc`
/// inside).
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    id: Arc<str>,
    inputs: Vec<(String, Value)>,
}

#[derive(Clone)]
enum Value {
    Plain(String),
    Secret(SecretString),
}

impl Value {
    fn expose(&self) -> &str {
        match self {
            Value::Plain(s) => s,
            Value::Secret(s) => s.expose_secret(),
        }
    }
}

impl Connection {
    /// An empty connection with this id. The id names the cache entry and the
    /// stored refresh token; it is not secret (it appears in logs).
    pub fn new(id: impl Into<String>) -> Self {
        let id: String = id.into();
        Connection {
            inner: Arc::new(Inner {
                id: id.into(),
                inputs: Vec::new(),
            }),
        }
    }

    /// Sets a non-secret input (replacing an earlier value of the same name).
    /// Inputs the description marks `secret = true` are treated as secret
    /// whichever way they are supplied.
    pub fn with_input(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.with(name.into(), Value::Plain(value.into()))
    }

    /// Sets a secret input: never printed, logged or put in an error.
    pub fn with_secret(self, name: impl Into<String>, value: impl Into<SecretString>) -> Self {
        self.with(name.into(), Value::Secret(value.into()))
    }

    fn with(mut self, name: String, value: Value) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        match inner.inputs.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => inner.inputs.push((name, value)),
        }
        self
    }

    /// The default connection of `provider`: every input from its environment
    /// variable, else its `default`.
    ///
    /// Fails with [`Error::MissingInput`] naming the first input that has
    /// neither, and the variable to set. An empty variable counts as unset.
    pub fn from_env(provider: &Provider) -> Result<Self, Error> {
        let mut conn = Connection::new(DEFAULT_CONNECTION);
        for input in &provider.inputs {
            let from_env = input
                .env
                .as_deref()
                .and_then(|var| std::env::var(var).ok())
                .filter(|v| !v.is_empty());
            let value = match (from_env, &input.default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.clone(),
                (None, None) => {
                    return Err(Error::MissingInput {
                        provider: provider.id.clone(),
                        connection: DEFAULT_CONNECTION.to_owned(),
                        input: input.name.clone(),
                        env: input.env.clone(),
                    });
                }
            };
            conn = if input.secret {
                conn.with_secret(input.name.clone(), value)
            } else {
                conn.with_input(input.name.clone(), value)
            };
        }
        Ok(conn)
    }

    /// The connection id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub(crate) fn id_arc(&self) -> &Arc<str> {
        &self.inner.id
    }

    /// True when the connection has a value for `name`.
    pub fn has_input(&self, name: &str) -> bool {
        self.inner.inputs.iter().any(|(n, _)| n == name)
    }

    /// The input names, in the order they were set.
    pub fn input_names(&self) -> impl Iterator<Item = &str> {
        self.inner.inputs.iter().map(|(n, _)| n.as_str())
    }

    /// The value of `name`, exposed (the caller must treat it as secret if the
    /// input is). Falls back to the input's `default` in `provider`.
    pub(crate) fn value<'a>(&'a self, provider: &'a Provider, name: &str) -> Option<&'a str> {
        self.inner
            .inputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.expose())
            .or_else(|| provider.input(name).and_then(|i| i.default.as_deref()))
    }

    /// Renders a template that uses only `{{ inputs.* }}` (e.g. a `[test]`
    /// header) with this connection's values. Fails with
    /// [`Error::MissingInput`] naming the input and its variable; a token
    /// placeholder fails the same way, as there is no token here.
    pub fn render(&self, provider: &Provider, template: &Template) -> Result<String, Error> {
        template
            .render(|var| match var {
                Var::Input(name) => self.value(provider, name),
                Var::TokenAccess | Var::TokenRefresh | Var::Assertion => None,
            })
            .map_err(|var| crate::inject::missing(provider, self, &var))
    }

    /// Checks that every declared input of `provider` has a value, and one
    /// its `pattern` / `one_of` allows.
    pub(crate) fn check(&self, provider: &Provider) -> Result<(), Error> {
        self.check_only(provider, |_| true)
    }

    /// [`check`](Self::check) of the inputs `used` says are used (the
    /// authorization-code grant needs only those of its own requests).
    pub(crate) fn check_only(
        &self,
        provider: &Provider,
        used: impl Fn(&str) -> bool,
    ) -> Result<(), Error> {
        for input in provider.inputs.iter().filter(|i| used(&i.name)) {
            let Some(value) = self.value(provider, &input.name) else {
                return Err(Error::MissingInput {
                    provider: provider.id.clone(),
                    connection: self.id().to_owned(),
                    input: input.name.clone(),
                    env: input.env.clone(),
                });
            };
            if let Some(why) = input.violation(value) {
                return Err(self.invalid_input(provider, &input.name, &why));
            }
        }
        Ok(())
    }

    /// `template` rendered with this connection's values: a token, test or
    /// API URL of `provider`. Each value must fit its place (see
    /// [`UrlTemplate`]) and its input's constraint; a literal URL is
    /// returned as it is.
    pub fn render_url(&self, provider: &Provider, template: &UrlTemplate) -> Result<Url, Error> {
        if let Some(url) = template.literal() {
            return Ok(url.clone());
        }
        for (name, _) in template.inputs() {
            // The loader refuses inputs declared secret in URLs; a value the
            // application gave as a secret is refused here, unquoted.
            if self.is_secret(provider, name) {
                return Err(Error::InvalidInput {
                    provider: provider.id.clone(),
                    connection: self.id().to_owned(),
                    input: name.to_owned(),
                    reason: format!(
                        "was given as a secret (Connection::with_secret), and `{}` would put it in a URL, which is logged and shown in errors: give it with Connection::with_input",
                        template.source()
                    ),
                });
            }
            if let (Some(input), Some(value)) = (provider.input(name), self.value(provider, name))
                && let Some(why) = input.violation(value)
            {
                return Err(self.invalid_input(provider, name, &why));
            }
        }
        template
            .render_allowing_http(
                |name| self.value(provider, name),
                provider.allow_insecure_http,
            )
            .map_err(|e| match e {
                UrlRenderError::Missing(name) => {
                    crate::inject::missing(provider, self, &Var::Input(name))
                }
                UrlRenderError::Value(e) => {
                    let why = format!(
                        "cannot go into the {} of `{}`: {}",
                        e.place,
                        template.source(),
                        e.reason
                    );
                    self.invalid_input(provider, &e.input, &why)
                }
                UrlRenderError::Shape => Error::InvalidInput {
                    provider: provider.id.clone(),
                    connection: self.id().to_owned(),
                    input: template
                        .inputs()
                        .map(|(n, _)| n)
                        .collect::<Vec<_>>()
                        .join("`, `"),
                    reason: format!(
                        "would change the shape of `{}` (a `.` or `..` path segment, say)",
                        template.source()
                    ),
                },
            })
    }

    /// [`Error::InvalidInput`] for input `name`, quoting its value (escaped,
    /// cut to 64 characters) only when it is not secret.
    fn invalid_input(&self, provider: &Provider, name: &str, why: &str) -> Error {
        let shown = match self.value(provider, name) {
            Some(v) if !self.is_secret(provider, name) => {
                let cut: String = v.chars().take(64).collect();
                let more = if cut.len() < v.len() { "…" } else { "" };
                format!("{cut:?}{more} ")
            }
            _ => String::new(),
        };
        Error::InvalidInput {
            provider: provider.id.clone(),
            connection: self.id().to_owned(),
            input: name.to_owned(),
            reason: format!("value {shown}is not allowed: {why}"),
        }
    }

    /// Every value that must never appear in output: inputs supplied as
    /// secrets and inputs the description declares secret.
    pub(crate) fn secret_values<'a>(
        &'a self,
        provider: &'a Provider,
    ) -> impl Iterator<Item = &'a str> {
        self.inner
            .inputs
            .iter()
            .filter(|(n, v)| {
                matches!(v, Value::Secret(_)) || provider.input(n).is_some_and(|i| i.secret)
            })
            .map(|(_, v)| v.expose())
    }

    /// True when input `name` is secret in this connection or `provider`.
    pub(crate) fn is_secret(&self, provider: &Provider, name: &str) -> bool {
        provider.input(name).is_some_and(|i| i.secret)
            || self
                .inner
                .inputs
                .iter()
                .any(|(n, v)| n == name && matches!(v, Value::Secret(_)))
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Inputs<'a>(&'a [(String, Value)]);
        impl fmt::Debug for Inputs<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut m = f.debug_map();
                for (name, value) in self.0 {
                    match value {
                        Value::Plain(v) => m.entry(name, v),
                        Value::Secret(_) => m.entry(name, &format_args!("[redacted]")),
                    };
                }
                m.finish()
            }
        }
        f.debug_struct("Connection")
            .field("id", &&*self.inner.id)
            .field("inputs", &Inputs(&self.inner.inputs))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets_exactly() {
        let c = Connection::new("t")
            .with_secret("password", "hunter2")
            .with_input("user", "bob");
        assert_eq!(
            format!("{c:?}"),
            r#"Connection { id: "t", inputs: {"password": [redacted], "user": "bob"} }"#
        );
        assert!(!format!("{c:#?}").contains("hunter2"));
    }

    #[test]
    fn later_value_replaces_earlier() {
        let c = Connection::new("t")
            .with_input("a", "1")
            .with_input("a", "2");
        assert_eq!(c.input_names().collect::<Vec<_>>(), ["a"]);
        assert_eq!(c.inner.inputs[0].1.expose(), "2");
    }
}
