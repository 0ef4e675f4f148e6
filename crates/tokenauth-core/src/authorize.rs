//! The authorization-code grant (RFC 6749 §4.1) with PKCE (RFC 7636): a
//! person consents in a browser, the application trades the code it gets
//! back for tokens.
//!
//! Two calls, so that any front end can run it (a web UI, `tokenauth
//! login`):
//!
//! 1. [`TokenAuth::authorization_request`] (or
//!    [`ProviderHandle::authorization_request`]) builds the URL the
//!    person's browser is sent to, with a fresh random `state` and PKCE
//!    challenge. The PKCE verifier stays in the engine: it is kept, with
//!    the redirect URI issued, in a table keyed by `state` for
//!    [`PENDING_TTL`], and is never in a `Debug`, log line or error.
//! 2. [`TokenAuth::complete_authorization`] takes the redirect the browser
//!    came back with (the whole callback URL, or just the code) and the
//!    `state` the caller issued: the state must be one this engine issued
//!    for that provider and connection (CSRF), and is spent by the call
//!    whatever its outcome, so a code is exchanged at most once. A callback
//!    URL must come back to the redirect URI issued (scheme, host, port and
//!    path) and carry the same state; `error=access_denied` (or any other
//!    `error`) is [`AuthorizationFailure::Denied`]. The code is exchanged
//!    (`[authorize.exchange]`), the reply's refresh token replaces the
//!    stored one (memory, file or Redis store, by compare-and-set) and its
//!    access token goes into the cache, so the next request uses it. On any
//!    error nothing is stored.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), tokenauth_core::Error> {
//! use tokenauth_core::TokenAuth;
//!
//! let auth = TokenAuth::from_path("providers.toml")?;
//! let twoba = auth.provider("twoba")?;
//! // In the web UI's "connect" handler: send the person to `req.url`, and
//! // keep `req.state` in their session. (2BA's redirect URI is registered
//! // without a port, so the one the app listens on is named here; for a
//! // registered https URI, `auth.authorization_request("twoba", None)`.)
//! let redirect = url::Url::parse("http://127.0.0.1:8400/callback").expect("a URL");
//! let req = twoba.authorization_request(None, Some(&redirect))?;
//! println!("open {}", req.url);
//! # let callback_url = String::new();
//! // In the redirect URI's handler, with the URL the browser came back to:
//! let done = twoba
//!     .complete_authorization(None, &callback_url, &req.state)
//!     .await?;
//! println!("connected; refresh token stored: {}", done.refresh_token_stored);
//! # Ok(())
//! # }
//! ```
//!
//! [`TokenAuth::authorization_request`]: crate::TokenAuth::authorization_request
//! [`TokenAuth::complete_authorization`]: crate::TokenAuth::complete_authorization
//! [`ProviderHandle::authorization_request`]: crate::ProviderHandle::authorization_request

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest as _;
use url::Url;

use crate::cache::Inner;
use crate::config::{Authorize, Pkce, Provider};
use crate::connection::Connection;
use crate::error::Error;

/// How long an issued authorization request can be completed: 10 minutes.
pub const PENDING_TTL: Duration = Duration::from_secs(600);

/// The most authorization requests an engine keeps waiting; past that the
/// oldest is dropped.
const MAX_PENDING: usize = 1024;

/// An authorization request to send a person's browser to.
///
/// `Debug` shows the URL and the state (both travel through the browser
/// anyway); the PKCE verifier is not here at all: it stays in the engine.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AuthorizationRequest {
    /// The authorization URL: the endpoint with `response_type=code`,
    /// `client_id`, `redirect_uri`, `scope`, `state`, the PKCE challenge and
    /// the description's `params`.
    pub url: Url,
    /// The state: random, single use; pass it to
    /// [`complete_authorization`](crate::TokenAuth::complete_authorization).
    pub state: String,
    /// The redirect URI the provider will send the browser back to.
    pub redirect_uri: Url,
    /// Until when it can be completed (the engine's clock).
    pub expires_at: SystemTime,
}

/// What a completed authorization stored. Holds no token.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Authorized {
    /// The provider id.
    pub provider: String,
    /// The connection id.
    pub connection: String,
    /// When the access token (now in the cache) expires.
    pub expires_at: SystemTime,
    /// The reply carried a refresh token, and it is in the store.
    pub refresh_token_stored: bool,
}

/// Why an authorization could not be completed (in
/// [`Error::Authorization`]). Nothing was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorizationFailure {
    /// The provider has no `[authorize]` table.
    NotConfigured,
    /// The redirect URI needs a port (a loopback URI registered without
    /// one), or the one given is not the registered one.
    RedirectUri {
        /// Why.
        reason: String,
    },
    /// The state was not issued by this engine for this provider and
    /// connection, was used already, or expired.
    UnknownState,
    /// The callback URL carries no `state`.
    MissingState,
    /// The callback URL's `state` is not the one given.
    StateMismatch,
    /// The callback came back to another address than the redirect URI
    /// issued.
    WrongRedirect {
        /// The redirect URI issued.
        expected: String,
        /// Where the callback came back to (without its query).
        got: String,
    },
    /// The provider answered with an error (`error=access_denied`: the
    /// person declined).
    Denied {
        /// The `error` code.
        error: String,
        /// The `error_description`, if any (cut short, control characters
        /// removed).
        description: Option<String>,
    },
    /// The callback carries neither a code nor an error.
    MissingCode,
}

impl fmt::Display for AuthorizationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConfigured => f.write_str("the provider has no [authorize] table: add one to use the authorization-code grant"),
            Self::RedirectUri { reason } => write!(f, "redirect URI: {reason}"),
            Self::UnknownState => f.write_str("the state is unknown, used already or expired (authorization requests are single use and last 10 minutes): start the login again"),
            Self::MissingState => f.write_str("the callback carries no `state`: it does not answer an authorization request of this engine; start the login again"),
            Self::StateMismatch => f.write_str("the callback's `state` is not the one issued (a forged or stale redirect): nothing was exchanged; start the login again"),
            Self::WrongRedirect { expected, got } => write!(f, "the callback came back to {got}, not to the redirect URI issued ({expected}): nothing was exchanged; start the login again"),
            Self::Denied { error, description } => {
                write!(f, "the provider refused the authorization: {error}")?;
                if let Some(d) = description {
                    write!(f, " ({d})")?;
                }
                if error == "access_denied" {
                    f.write_str("; consent was declined: start the login again and allow access")?;
                }
                Ok(())
            }
            Self::MissingCode => f.write_str("the callback carries neither `code` nor `error`: pass the whole URL the browser was redirected to"),
        }
    }
}

/// One issued, not yet completed authorization request.
pub(crate) struct Pending {
    index: usize,
    connection: String,
    redirect_uri: Url,
    verifier: Option<SecretString>,
    /// The engine's monotonic clock when it was issued.
    issued: Duration,
}

/// The engine's table of issued authorization requests, by state.
#[derive(Default)]
pub(crate) struct PendingTable(std::sync::Mutex<HashMap<String, Pending>>);

impl PendingTable {
    fn insert(&self, now: Duration, state: String, pending: Pending) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, p| now.saturating_sub(p.issued) < PENDING_TTL);
        if map.len() >= MAX_PENDING
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, p)| p.issued)
                .map(|(s, _)| s.clone())
        {
            map.remove(&oldest);
        }
        map.insert(state, pending);
    }

    /// Takes the request out (a state is spent by one look-up), if it has
    /// not expired.
    fn take(&self, now: Duration, state: &str) -> Option<Pending> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(state)
            .filter(|p| now.saturating_sub(p.issued) < PENDING_TTL)
    }
}

/// `n` random bytes from the operating system, base64url (no padding).
fn random(n: usize) -> Result<String, Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random {
        reason: e.to_string(),
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The PKCE challenge of `verifier` (RFC 7636 §4.2).
pub(crate) fn challenge(pkce: Pkce, verifier: &str) -> Option<String> {
    match pkce {
        Pkce::S256 => Some(URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))),
        Pkce::Plain => Some(verifier.to_owned()),
        Pkce::Off => None,
    }
}

fn failure(provider: &Provider, conn: &Connection, why: AuthorizationFailure) -> Error {
    Error::Authorization {
        provider: provider.id.clone(),
        connection: conn.id().to_owned(),
        failure: why,
    }
}

/// The redirect URI of a request: `given` (which the registered one must
/// admit), else the registered one (which must have a port when loopback).
fn redirect_uri(a: &Authorize, given: Option<&Url>) -> Result<Url, AuthorizationFailure> {
    let registered = &a.redirect_uri;
    match given {
        Some(uri) if registered.admits(uri) => Ok(uri.clone()),
        Some(uri) => Err(AuthorizationFailure::RedirectUri {
            reason: format!(
                "{uri} is not the registered redirect URI {}{}",
                registered.uri,
                if registered.any_port {
                    " (on any port)"
                } else {
                    ""
                }
            ),
        }),
        None if registered.any_port => Err(AuthorizationFailure::RedirectUri {
            reason: format!(
                "the registered redirect URI {} admits any loopback port: pass the one your listener uses (ProviderHandle::authorization_request)",
                registered.uri
            ),
        }),
        None => Ok(registered.uri.clone()),
    }
}

impl Inner {
    /// See [`ProviderHandle::authorization_request`](crate::ProviderHandle::authorization_request).
    pub(crate) fn authorization_request(
        &self,
        index: usize,
        conn: &Connection,
        redirect: Option<&Url>,
    ) -> Result<AuthorizationRequest, Error> {
        let provider = &self.providers.providers[index];
        let Some(a) = &provider.authorize else {
            return Err(failure(provider, conn, AuthorizationFailure::NotConfigured));
        };
        check_inputs(provider, conn, a)?;
        let redirect_uri = redirect_uri(a, redirect).map_err(|f| failure(provider, conn, f))?;
        let mut url = conn.render_url(provider, &a.url)?;
        let render = |t: &crate::Template| {
            t.render(|var| match var {
                crate::Var::Input(name) => conn.value(provider, name),
                _ => None,
            })
            .map_err(|var| crate::inject::missing(provider, conn, &var))
        };
        let client_id = render(&a.client_id)?;
        let state = random(32)?;
        let verifier = match a.pkce {
            Pkce::Off => None,
            _ => Some(SecretString::from(random(32)?)),
        };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &client_id)
                .append_pair("redirect_uri", redirect_uri.as_str());
            if !a.scopes.is_empty() {
                q.append_pair("scope", &a.scopes.join(&a.scope_separator));
            }
            q.append_pair("state", &state);
            if let (Some(v), Some(method)) = (&verifier, a.pkce.method()) {
                let c = challenge(a.pkce, v.expose_secret()).unwrap_or_default();
                q.append_pair("code_challenge", &c)
                    .append_pair("code_challenge_method", method);
            }
            for (name, t) in &a.params {
                q.append_pair(name, &render(t)?);
            }
        }
        let now = self.clock.monotonic();
        self.authorizations.insert(
            now,
            state.clone(),
            Pending {
                index,
                connection: conn.id().to_owned(),
                redirect_uri: redirect_uri.clone(),
                verifier,
                issued: now,
            },
        );
        Ok(AuthorizationRequest {
            url,
            state,
            redirect_uri,
            expires_at: self.clock.now() + PENDING_TTL,
        })
    }

    /// See [`ProviderHandle::complete_authorization`](crate::ProviderHandle::complete_authorization).
    pub(crate) async fn complete_authorization(
        &self,
        index: usize,
        conn: &Connection,
        callback: &str,
        state: &str,
    ) -> Result<Authorized, Error> {
        let provider = &self.providers.providers[index];
        let fail = |why| failure(provider, conn, why);
        let Some(a) = &provider.authorize else {
            return Err(fail(AuthorizationFailure::NotConfigured));
        };
        check_inputs(provider, conn, a)?;
        // The state is spent here, whatever follows.
        let pending = self
            .authorizations
            .take(self.clock.monotonic(), state)
            .filter(|p| p.index == index && p.connection == conn.id())
            .ok_or_else(|| fail(AuthorizationFailure::UnknownState))?;
        let code = read_callback(callback.trim(), state, &pending.redirect_uri).map_err(fail)?;
        let code = SecretString::from(code);
        let mut extra: Vec<(&'static str, SecretString)> = vec![
            ("grant_type", SecretString::from("authorization_code")),
            ("code", code),
            (
                "redirect_uri",
                SecretString::from(pending.redirect_uri.as_str()),
            ),
        ];
        if let Some(v) = pending.verifier {
            extra.push(("code_verifier", v));
        }
        if a.exchange.basic.is_none() {
            let client_id = a
                .client_id
                .render(|var| match var {
                    crate::Var::Input(name) => conn.value(provider, name),
                    _ => None,
                })
                .map_err(|var| crate::inject::missing(provider, conn, &var))?;
            extra.push(("client_id", SecretString::from(client_id)));
        }
        let acquired = self.exchange_code(index, conn, &a.exchange, &extra).await?;
        let expires_at = acquired.expires_at;
        let refresh_token_stored = acquired.refresh_stored;
        // The access token is usable whatever happens to the cache.
        let published = self.publish_acquired(index, conn, acquired.acquired).await;
        if let Err(e) = published {
            tracing::warn!(provider = %provider.id, connection = %conn.id(), error = %e, "the access token of the code exchange could not be cached; the next request renews it with the stored refresh token");
        }
        Ok(Authorized {
            provider: provider.id.clone(),
            connection: conn.id().to_owned(),
            expires_at,
            refresh_token_stored,
        })
    }
}

/// Checks the inputs the authorization request and the code exchange use
/// (and only those: a provider that also logs in with a password does not
/// need the password for this).
fn check_inputs(provider: &Provider, conn: &Connection, a: &Authorize) -> Result<(), Error> {
    let mut used: Vec<&str> = a.url.inputs().map(|(n, _)| n).collect();
    used.extend(a.exchange.url.inputs().map(|(n, _)| n));
    let ex = &a.exchange;
    let templates = std::iter::once(&a.client_id)
        .chain(a.params.iter().map(|(_, t)| t))
        .chain(ex.fields.iter().flat_map(|(_, v)| v.texts()))
        .chain(ex.headers.iter().map(|(_, t)| t))
        .chain(ex.basic.iter().flat_map(|b| [&b.username, &b.password]));
    for t in templates {
        used.extend(t.vars().filter_map(|v| match v {
            crate::Var::Input(n) => Some(n.as_str()),
            _ => None,
        }));
    }
    conn.check_only(provider, |name| used.contains(&name))
}

/// The code of a callback: a URL the browser was redirected to (checked
/// against the redirect URI issued and the state), or the code itself.
fn read_callback(
    callback: &str,
    state: &str,
    issued: &Url,
) -> Result<String, AuthorizationFailure> {
    let Ok(url) = Url::parse(callback) else {
        if callback.is_empty() {
            return Err(AuthorizationFailure::MissingCode);
        }
        return Ok(callback.to_owned());
    };
    let mut at = url.clone();
    at.set_query(None);
    at.set_fragment(None);
    if at != *issued {
        return Err(AuthorizationFailure::WrongRedirect {
            expected: issued.to_string(),
            got: at.to_string(),
        });
    }
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    match param("state") {
        None => return Err(AuthorizationFailure::MissingState),
        Some(s) if s != state => return Err(AuthorizationFailure::StateMismatch),
        Some(_) => {}
    }
    if let Some(error) = param("error") {
        return Err(AuthorizationFailure::Denied {
            error: printable(&error, 64),
            description: param("error_description").map(|d| printable(&d, 200)),
        });
    }
    param("code")
        .filter(|c| !c.is_empty())
        .ok_or(AuthorizationFailure::MissingCode)
}

/// `s` without control characters, at most `max` characters.
fn printable(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
    if clean.chars().count() < s.chars().count() {
        format!("{clean}…")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_challenge_is_rfc7636_appendix_b() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            challenge(Pkce::S256, v).as_deref(),
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        );
        assert_eq!(challenge(Pkce::Plain, v).as_deref(), Some(v));
        assert_eq!(challenge(Pkce::Off, v), None);
    }

    #[test]
    fn random_values_are_long_and_distinct() {
        let a = random(32).unwrap();
        let b = random(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn callbacks_are_checked() {
        let issued = Url::parse("http://127.0.0.1:4000/callback").unwrap();
        let ok = read_callback(
            "http://127.0.0.1:4000/callback?code=abc&state=s1",
            "s1",
            &issued,
        );
        assert_eq!(ok, Ok("abc".into()));
        assert_eq!(read_callback("abc", "s1", &issued), Ok("abc".into()));
        assert_eq!(
            read_callback(
                "http://127.0.0.1:4000/callback?code=abc&state=s2",
                "s1",
                &issued
            ),
            Err(AuthorizationFailure::StateMismatch)
        );
        assert_eq!(
            read_callback("http://127.0.0.1:4000/callback?code=abc", "s1", &issued),
            Err(AuthorizationFailure::MissingState)
        );
        assert!(matches!(
            read_callback(
                "http://127.0.0.1:4001/callback?code=abc&state=s1",
                "s1",
                &issued
            ),
            Err(AuthorizationFailure::WrongRedirect { .. })
        ));
        assert!(matches!(
            read_callback(
                "http://127.0.0.1:4000/other?code=abc&state=s1",
                "s1",
                &issued
            ),
            Err(AuthorizationFailure::WrongRedirect { .. })
        ));
        let denied = read_callback(
            "http://127.0.0.1:4000/callback?error=access_denied&error_description=no%0Athanks&state=s1",
            "s1",
            &issued,
        );
        assert_eq!(
            denied,
            Err(AuthorizationFailure::Denied {
                error: "access_denied".into(),
                description: Some("nothanks…".into())
            })
        );
        assert_eq!(
            read_callback("http://127.0.0.1:4000/callback?state=s1", "s1", &issued),
            Err(AuthorizationFailure::MissingCode)
        );
    }

    #[test]
    fn a_state_is_spent_by_one_look_up_and_expires() {
        let t = PendingTable::default();
        let p = || Pending {
            index: 0,
            connection: "default".into(),
            redirect_uri: Url::parse("http://127.0.0.1:1/cb").unwrap(),
            verifier: Some(SecretString::from("v")),
            issued: Duration::ZERO,
        };
        t.insert(Duration::ZERO, "s".into(), p());
        assert!(t.take(Duration::from_secs(1), "s").is_some());
        assert!(t.take(Duration::from_secs(1), "s").is_none());
        t.insert(Duration::ZERO, "s".into(), p());
        assert!(t.take(PENDING_TTL, "s").is_none());
    }
}
