//! Injection: the rendered form of `[inject]`, ready to attach to a request.
//!
//! The inject template is rendered **once**, when the token is fetched (or,
//! for static credentials, when the connection is first used), and the result
//! is kept with the cached token; attaching it to a request only clones a
//! [`HeaderValue`]. Header values are marked
//! [sensitive](HeaderValue::set_sensitive), so `http` and `tracing` never
//! print them.
//!
//! - `header` + `value`: [`Injection::Header`] with the rendered value.
//! - `basic`: [`Injection::Header`] `Authorization: Basic base64(user:password)`.
//! - `query`: [`Injection::Query`]; the value is secret.

use std::fmt;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::{Inject, Provider};
use crate::connection::Connection;
use crate::error::Error;
use crate::template::{Template, Var};

/// A rendered credential: what to attach to a request.
#[derive(Clone)]
#[non_exhaustive]
pub enum Injection {
    /// Set this header (replacing any value the request had).
    Header {
        /// The header name.
        name: HeaderName,
        /// The value, marked sensitive.
        value: HeaderValue,
    },
    /// Set this query parameter (replacing any the URL had).
    Query {
        /// The parameter name.
        name: String,
        /// The value (secret).
        value: SecretString,
    },
}

impl Injection {
    /// Sets the header, if this is a header credential. Returns `false` for a
    /// query credential (use [`Injection::apply_to_url`]).
    pub fn apply_to_headers(&self, headers: &mut HeaderMap) -> bool {
        match self {
            Injection::Header { name, value } => {
                headers.insert(name.clone(), value.clone());
                true
            }
            Injection::Query { .. } => false,
        }
    }

    /// Sets the query parameter, if this is a query credential, removing any
    /// parameter of the same name first. Returns `false` for a header
    /// credential.
    pub fn apply_to_url(&self, url: &mut Url) -> bool {
        match self {
            Injection::Query { name, value } => {
                let kept: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(n, _)| n != name)
                    .map(|(n, v)| (n.into_owned(), v.into_owned()))
                    .collect();
                let mut pairs = url.query_pairs_mut();
                pairs.clear();
                for (n, v) in &kept {
                    pairs.append_pair(n, v);
                }
                pairs.append_pair(name, value.expose_secret());
                true
            }
            Injection::Header { .. } => false,
        }
    }

    /// Attaches the credential to an `http::Request`: the header, or the query
    /// parameter (the URI is rebuilt).
    pub fn apply_to_request<B>(&self, request: &mut http::Request<B>) -> Result<(), http::Error> {
        match self {
            Injection::Header { .. } => {
                self.apply_to_headers(request.headers_mut());
                Ok(())
            }
            Injection::Query { name, value } => {
                let (path, query) = match request.uri().path_and_query() {
                    Some(pq) => (pq.path().to_owned(), pq.query().unwrap_or("").to_owned()),
                    None => ("/".to_owned(), String::new()),
                };
                let mut out = url::form_urlencoded::Serializer::new(String::new());
                for (n, v) in url::form_urlencoded::parse(query.as_bytes()) {
                    if n != name.as_str() {
                        out.append_pair(&n, &v);
                    }
                }
                out.append_pair(name, value.expose_secret());
                let pq = http::uri::PathAndQuery::try_from(format!("{path}?{}", out.finish()))?;
                let mut parts = request.uri().clone().into_parts();
                parts.path_and_query = Some(pq);
                *request.uri_mut() = http::Uri::from_parts(parts)?;
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Injection::Header { name, .. } => f
                .debug_struct("Header")
                .field("name", name)
                .field("value", &format_args!("[redacted]"))
                .finish(),
            Injection::Query { name, .. } => f
                .debug_struct("Query")
                .field("name", name)
                .field("value", &format_args!("[redacted]"))
                .finish(),
        }
    }
}

/// Renders `[inject]` for a connection and (for providers that log in) an
/// access token.
pub(crate) fn render(
    provider: &Provider,
    conn: &Connection,
    access: Option<&SecretString>,
) -> Result<Injection, Error> {
    let render = |t: &Template| -> Result<String, Error> {
        t.render(|var| match var {
            Var::Input(name) => conn.value(provider, name),
            Var::TokenAccess => access.map(|a| a.expose_secret()),
            Var::TokenRefresh => None,
        })
        .map_err(|var| missing(provider, conn, &var))
    };
    let header = |name: HeaderName, value: String| -> Result<Injection, Error> {
        let mut value = HeaderValue::try_from(value).map_err(|_| Error::InvalidHeaderValue {
            provider: provider.id.clone(),
            what: "inject header".to_owned(),
        })?;
        value.set_sensitive(true);
        Ok(Injection::Header { name, value })
    };
    match &provider.inject {
        Inject::Header { name, value } => header(name.clone(), render(value)?),
        Inject::Basic(basic) => {
            let user = render(&basic.username)?;
            let pass = render(&basic.password)?;
            header(http::header::AUTHORIZATION, basic_value(&user, &pass))
        }
        Inject::Query { name, value } => Ok(Injection::Query {
            name: name.clone(),
            value: SecretString::from(render(value)?),
        }),
    }
}

/// `Basic base64(user:password)`.
pub(crate) fn basic_value(user: &str, password: &str) -> String {
    let mut raw = String::with_capacity(user.len() + password.len() + 1);
    raw.push_str(user);
    raw.push(':');
    raw.push_str(password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The error for a template variable that has no value.
pub(crate) fn missing(provider: &Provider, conn: &Connection, var: &Var) -> Error {
    match var {
        Var::Input(name) => Error::MissingInput {
            provider: provider.id.clone(),
            connection: conn.id().to_owned(),
            input: name.clone(),
            env: provider.input(name).and_then(|i| i.env.clone()),
        },
        // Loading guarantees token placeholders only appear where the token
        // is known; reaching this means a token was absent.
        Var::TokenAccess | Var::TokenRefresh => Error::InvalidHeaderValue {
            provider: provider.id.clone(),
            what: format!("template (`{{{{ {var} }}}}` has no value here)"),
        },
    }
}
