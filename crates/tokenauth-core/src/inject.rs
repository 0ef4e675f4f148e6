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

/// The name of the cookie (or cookies) a `Cookie` value such as
/// `sid=abc; x=1` sets: the part before the first `=` of each pair.
pub(crate) fn cookie_names(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(';')
        .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty())
}

/// `headers`' cookies with `ours` (a `Cookie` value) added, in one `Cookie`
/// header: the request's own cookies first, in order, except those `ours`
/// sets again.
fn merge_cookie(headers: &mut HeaderMap, ours: &HeaderValue) {
    let ours_text = ours.to_str().unwrap_or_default();
    let ours_names: Vec<&str> = cookie_names(ours_text).collect();
    let mut merged = Vec::new();
    for existing in headers.get_all(http::header::COOKIE) {
        for pair in existing.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            let name = pair
                .split(|b| *b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if pair.is_empty() || ours_names.iter().any(|n| n.as_bytes() == name) {
                continue;
            }
            merged.extend_from_slice(pair);
            merged.extend_from_slice(b"; ");
        }
    }
    merged.extend_from_slice(ours.as_bytes());
    let value = match HeaderValue::from_bytes(&merged) {
        Ok(mut value) => {
            value.set_sensitive(true);
            value
        }
        // Unreachable (every part was a valid header value); the credential
        // alone, rather than nothing.
        Err(_) => ours.clone(),
    };
    headers.insert(http::header::COOKIE, value);
}

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
    ///
    /// A `Cookie` credential is merged with the cookies the request already
    /// carries (a cookie of the same name is replaced), not put in their
    /// place.
    pub fn apply_to_headers(&self, headers: &mut HeaderMap) -> bool {
        match self {
            Injection::Header { name, value } => {
                if name == http::header::COOKIE && headers.contains_key(http::header::COOKIE) {
                    merge_cookie(headers, value);
                } else {
                    headers.insert(name.clone(), value.clone());
                }
                true
            }
            Injection::Query { .. } => false,
        }
    }

    /// Sets the query parameter, if this is a query credential, removing every
    /// parameter of the same name first; the other parameters are kept byte
    /// for byte, in order (they may be signed or oddly encoded). Returns
    /// `false` for a header credential.
    pub fn apply_to_url(&self, url: &mut Url) -> bool {
        match self {
            Injection::Query { name, value } => {
                let query = with_param(url.query(), name, value.expose_secret());
                url.set_query(Some(&query));
                true
            }
            Injection::Header { .. } => false,
        }
    }

    /// Removes this query credential's parameter from `url` (every parameter
    /// of its name), keeping the others byte for byte: for URLs that leave
    /// the request path, such as the URL of a response or of an error.
    /// Returns whether there was one to remove; `false` for a header
    /// credential.
    pub fn remove_from_url(&self, url: &mut Url) -> bool {
        let Injection::Query { name, .. } = self else {
            return false;
        };
        let Some(query) = url.query() else {
            return false;
        };
        let (rest, removed) = without_param(query, name);
        if removed {
            url.set_query((!rest.is_empty()).then_some(rest.as_str()));
        }
        removed
    }

    /// `error` with this query credential removed from its URL (reqwest
    /// prints an error's URL in `Display` and `Debug`); unchanged for a
    /// header credential.
    pub fn redact_error(&self, mut error: reqwest::Error) -> reqwest::Error {
        if let Some(url) = error.url_mut() {
            self.remove_from_url(url);
        }
        error
    }

    /// `reference` (a URL or a relative reference, as in a `Location`
    /// header) without this query credential's parameter; `None` when it
    /// holds none (or for a header credential). For URL-valued response
    /// headers of servers that keep the query when they redirect.
    pub fn remove_from_reference(&self, reference: &str) -> Option<String> {
        let Injection::Query { name, .. } = self else {
            return None;
        };
        let (rest, fragment) = match reference.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (reference, None),
        };
        let (base, query) = rest.split_once('?')?;
        let (query, removed) = without_param(query, name);
        if !removed {
            return None;
        }
        let mut out = String::with_capacity(reference.len());
        out.push_str(base);
        if !query.is_empty() {
            out.push('?');
            out.push_str(&query);
        }
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        Some(out)
    }

    /// `query` with this query credential set (see
    /// [`apply_to_url`](Self::apply_to_url)); `None` for a header credential.
    pub(crate) fn with_query_param(&self, query: Option<&str>) -> Option<String> {
        match self {
            Injection::Query { name, value } => {
                Some(with_param(query, name, value.expose_secret()))
            }
            Injection::Header { .. } => None,
        }
    }
}

/// `query` without any `name` parameter, then `name=value` (form-encoded).
/// The other parameters are copied as they were, not decoded and re-encoded.
fn with_param(query: Option<&str>, name: &str, value: &str) -> String {
    let (mut out, _) = without_param(query.unwrap_or(""), name);
    out.reserve(name.len() + value.len() + 2);
    if !out.is_empty() {
        out.push('&');
    }
    out.extend(url::form_urlencoded::byte_serialize(name.as_bytes()));
    out.push('=');
    out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
    out
}

/// `query` without any `name` parameter (names compared form-decoded), the
/// others copied as they were; and whether one was removed.
fn without_param(query: &str, name: &str) -> (String, bool) {
    let mut out = String::with_capacity(query.len());
    let mut removed = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let raw_name = pair.split_once('=').map_or(pair, |(n, _)| n);
        let same = url::form_urlencoded::parse(raw_name.as_bytes())
            .next()
            .is_some_and(|(n, _)| n == name);
        if same {
            removed = true;
        } else {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(pair);
        }
    }
    (out, removed)
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

/// The value [`Injection::deliberately_wrong`] puts in place of every
/// secret.
pub(crate) const WRONG_CREDENTIAL: &str = "tokenauth-deliberately-wrong-credential";

impl Injection {
    /// A credential of the provider's shape that no API should accept: the
    /// `[inject]` template rendered with every secret input and the access
    /// token replaced by `WRONG_CREDENTIAL` (non-secret inputs, such as a
    /// user name, are kept). `tokenauth test` sends it once to learn with
    /// which status the API rejects a bad credential.
    #[doc(hidden)]
    pub fn deliberately_wrong(provider: &Provider, conn: &Connection) -> Result<Injection, Error> {
        render_with(provider, conn, |var| match var {
            Var::Input(name) if conn.is_secret(provider, name) => Some(WRONG_CREDENTIAL),
            Var::Input(name) => conn.value(provider, name),
            Var::TokenAccess => Some(WRONG_CREDENTIAL),
            Var::TokenRefresh => None,
        })
    }
}

/// Renders `[inject]` for a connection and (for providers that log in) an
/// access token.
pub(crate) fn render(
    provider: &Provider,
    conn: &Connection,
    access: Option<&SecretString>,
) -> Result<Injection, Error> {
    render_with(provider, conn, |var| match var {
        Var::Input(name) => conn.value(provider, name),
        Var::TokenAccess => access.map(|a| a.expose_secret()),
        Var::TokenRefresh => None,
    })
}

fn render_with<'a>(
    provider: &Provider,
    conn: &Connection,
    lookup: impl Fn(&Var) -> Option<&'a str>,
) -> Result<Injection, Error> {
    let render = |t: &Template| -> Result<String, Error> {
        t.render(&lookup)
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
/// A token request's client id and secret as they go into its Basic
/// credentials: with `form_encode`, each form-encoded first (RFC 6749
/// §2.3.1; `a b:c` becomes `a+b%3Ac`).
pub(crate) fn client_basic_parts(
    user: String,
    password: String,
    form_encode: bool,
) -> (String, String) {
    if !form_encode {
        return (user, password);
    }
    let encode = |s: String| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    (encode(user), encode(password))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Cookie` credential joins the caller's cookies (replacing one of the
    /// same name) instead of wiping them; without cookies it is set as is.
    #[test]
    fn a_cookie_credential_is_merged_with_the_callers_cookies() {
        let mut ours = HeaderValue::from_static("sid=s3cret");
        ours.set_sensitive(true);
        let cookie = Injection::Header {
            name: http::header::COOKIE,
            value: ours,
        };
        let mut headers = HeaderMap::new();
        assert!(cookie.apply_to_headers(&mut headers));
        assert_eq!(headers[http::header::COOKIE], "sid=s3cret");

        let mut headers = HeaderMap::new();
        headers.append(
            http::header::COOKIE,
            HeaderValue::from_static("theme=dark; sid=old"),
        );
        headers.append(http::header::COOKIE, HeaderValue::from_static("lang=nl"));
        cookie.apply_to_headers(&mut headers);
        let all: Vec<_> = headers.get_all(http::header::COOKIE).iter().collect();
        assert_eq!(all, ["theme=dark; lang=nl; sid=s3cret"]);
        assert!(all[0].is_sensitive());
    }

    /// The caller set the credential only if it set that cookie; its other
    /// cookies do not keep the credential off the request.
    #[test]
    fn a_caller_cookie_is_the_credential_only_if_it_has_the_credentials_name() {
        let providers = crate::Providers::from_toml(
            "p.toml",
            r#"
[providers.c]
api = ["https://api.example.com/"]
inputs.sid = { env = "C_SID", secret = true }
inject = { header = "Cookie", value = "sid={{ inputs.sid }}" }
"#,
        )
        .unwrap();
        let p = &providers.providers[0];
        let with = |cookie: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::COOKIE, HeaderValue::from_static(cookie));
            p.caller_authenticated(&headers, None)
        };
        assert!(!p.caller_authenticated(&HeaderMap::new(), None));
        assert!(!with("theme=dark; lang=nl"));
        assert!(!with("xsid=1"));
        assert!(with("theme=dark; sid=mine"));
    }

    #[test]
    fn the_parameter_replaces_every_copy_and_keeps_the_rest_verbatim() {
        assert_eq!(with_param(None, "key", "a b"), "key=a+b");
        assert_eq!(with_param(Some(""), "key", "v"), "key=v");
        assert_eq!(
            with_param(Some("a=%20x&key=old&b=c~d&&flag&k%65y=old2"), "key", "n&w"),
            "a=%20x&b=c~d&flag&key=n%26w"
        );
        // A name that merely starts the same is another parameter.
        assert_eq!(with_param(Some("keys=1&key"), "key", "v"), "keys=1&key=v");
    }

    #[test]
    fn urls_and_requests_get_the_same_query() {
        let inj = Injection::Query {
            name: "api_key".into(),
            value: SecretString::from("s3cr3t/+"),
        };
        let mut url = Url::parse("https://h.example/p/q?x=%2F&api_key=old#frag").unwrap();
        assert!(inj.apply_to_url(&mut url));
        assert_eq!(
            url.as_str(),
            "https://h.example/p/q?x=%2F&api_key=s3cr3t%2F%2B#frag"
        );
        let mut req = http::Request::get("https://h.example/p/q?x=%2F&api_key=old")
            .body(())
            .unwrap();
        crate::request::message::sealed::Request::attach(&mut req, &inj).unwrap();
        assert_eq!(
            req.uri(),
            "https://h.example/p/q?x=%2F&api_key=s3cr3t%2F%2B"
        );
        assert!(req.headers().is_empty());
        let mut headers = HeaderMap::new();
        assert!(!inj.apply_to_headers(&mut headers));
        assert!(headers.is_empty());
    }

    #[test]
    fn removing_the_credential_keeps_the_rest_verbatim() {
        let inj = Injection::Query {
            name: "api_key".into(),
            value: SecretString::from("s3cr3t"),
        };
        let mut url = Url::parse("https://h.example/p?x=%2F&api_key=s3cr3t&api%5Fkey=2#f").unwrap();
        assert!(inj.remove_from_url(&mut url));
        assert_eq!(url.as_str(), "https://h.example/p?x=%2F#f");
        let mut only = Url::parse("https://h.example/p?api_key=s3cr3t").unwrap();
        assert!(inj.remove_from_url(&mut only));
        assert_eq!(only.as_str(), "https://h.example/p");
        assert!(!inj.remove_from_url(&mut only));
        let header = Injection::Header {
            name: http::header::AUTHORIZATION,
            value: HeaderValue::from_static("Bearer t"),
        };
        let mut url = Url::parse("https://h.example/p?api_key=x").unwrap();
        assert!(!header.remove_from_url(&mut url));
        assert_eq!(url.query(), Some("api_key=x"));

        let strip = |r: &str| inj.remove_from_reference(r);
        assert_eq!(
            strip("/items/?x=1&api_key=s3cr3t").as_deref(),
            Some("/items/?x=1")
        );
        assert_eq!(
            strip("https://h.example/p?api_key=s3cr3t#top").as_deref(),
            Some("https://h.example/p#top")
        );
        assert_eq!(
            strip("0; url=/x?api_key=s3cr3t&y").as_deref(),
            Some("0; url=/x?y")
        );
        assert_eq!(strip("/items/?x=1"), None);
        assert_eq!(strip("/items/"), None);
        assert_eq!(header.remove_from_reference("/p?api_key=x"), None);
    }
}
