//! Three documented reply shapes beyond the seed providers, for token
//! sources outside the JSON body and expiry units ([`Shape`]).
//!
//! The endpoints and replies are listed in the crate docs ("Documented reply
//! shapes").
//! Own code throughout (JSON via serde_json, RFC 3339 by hand): nothing is
//! shared with core.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Keystone's demo user name.
pub const KEYSTONE_USERNAME: &str = "ks-demo";
/// Keystone's demo password.
pub const KEYSTONE_PASSWORD: &str = "ks-demo-password";
/// The only Keystone domain id accepted.
pub const KEYSTONE_DOMAIN: &str = "default";
/// The cookie-session demo user.
pub const SESSION_USERNAME: &str = "session-demo";
/// The cookie-session demo password.
pub const SESSION_PASSWORD: &str = "session-demo-password";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "SESSION";
/// The milliseconds provider's client id.
pub const MILLIS_CLIENT_ID: &str = "ms-demo";
/// The milliseconds provider's client secret.
pub const MILLIS_CLIENT_SECRET: &str = "ms-demo-secret";

/// A documented reply shape the emulator serves besides the seed providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// OpenStack Keystone v3: nested JSON login, token in `X-Subject-Token`.
    Keystone,
    /// A cookie-session login: `Set-Cookie`, HTML body.
    Session,
    /// A JSON login whose `expires_in` is in milliseconds.
    Millis,
}

impl Shape {
    /// All three shapes.
    pub const ALL: [Shape; 3] = [Shape::Keystone, Shape::Session, Shape::Millis];

    /// The path prefix on `127.0.0.1:PORT`, e.g. `"/keystone"`.
    pub const fn path_prefix(self) -> &'static str {
        match self {
            Shape::Keystone => "/keystone",
            Shape::Session => "/session",
            Shape::Millis => "/millis",
        }
    }

    /// The token endpoint's path below the prefix.
    pub const fn token_path(self) -> &'static str {
        match self {
            Shape::Keystone => "/v3/auth/tokens",
            Shape::Session => "/login",
            Shape::Millis => "/oauth/token",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ShapeStats {
    /// Token requests (any outcome).
    pub token_requests: u64,
    /// Tokens issued.
    pub tokens_issued: u64,
    /// API requests answered 200.
    pub api_ok: u64,
    /// API requests answered 401.
    pub api_denied: u64,
}

#[derive(Default)]
struct One {
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    api_ok: AtomicU64,
    api_denied: AtomicU64,
    /// token -> (user, expiry)
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    lifetime_ms: AtomicU64,
}

/// The shapes' state.
pub(crate) struct Shapes {
    shapes: [One; 3],
    session_empty_body: AtomicBool,
}

impl Default for Shapes {
    fn default() -> Self {
        let shapes: [One; 3] = Default::default();
        for s in &shapes {
            s.lifetime_ms.store(3_600_000, Relaxed);
        }
        Shapes {
            shapes,
            session_empty_body: AtomicBool::new(false),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the handler sends back: status, headers, content type and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

impl Answer {
    fn json(status: u16, body: impl Into<String>) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            content_type: "application/json",
            body: body.into(),
        }
    }
}

impl Shapes {
    pub(crate) fn stats(&self, s: Shape) -> ShapeStats {
        let o = &self.shapes[s.index()];
        ShapeStats {
            token_requests: o.token_requests.load(Relaxed),
            tokens_issued: o.tokens_issued.load(Relaxed),
            api_ok: o.api_ok.load(Relaxed),
            api_denied: o.api_denied.load(Relaxed),
        }
    }

    pub(crate) fn set_lifetime(&self, s: Shape, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        self.shapes[s.index()].lifetime_ms.store(ms, Relaxed);
    }

    pub(crate) fn set_session_empty_body(&self, on: bool) {
        self.session_empty_body.store(on, Relaxed);
    }

    pub(crate) fn reset(&self) {
        for o in &self.shapes {
            for c in [
                &o.token_requests,
                &o.tokens_issued,
                &o.api_ok,
                &o.api_denied,
            ] {
                c.store(0, Relaxed);
            }
            lock(&o.tokens).clear();
            o.lifetime_ms.store(3_600_000, Relaxed);
        }
        self.session_empty_body.store(false, Relaxed);
    }

    /// The shape and the path below its prefix, when `path` is one of theirs.
    pub(crate) fn route(path: &str) -> Option<(Shape, &str)> {
        Shape::ALL.into_iter().find_map(|s| {
            let rest = path.strip_prefix(s.path_prefix())?;
            rest.starts_with('/').then_some((s, rest))
        })
    }

    fn issue(&self, s: Shape, user: &str) -> (String, Duration) {
        let o = &self.shapes[s.index()];
        let lifetime = Duration::from_millis(o.lifetime_ms.load(Relaxed));
        let token = crate::state::random_token(40);
        lock(&o.tokens).insert(token.clone(), (user.to_owned(), Instant::now() + lifetime));
        o.tokens_issued.fetch_add(1, Relaxed);
        (token, lifetime)
    }

    /// A token request: `content_type` and `body` as received.
    pub(crate) fn token(
        &self,
        s: Shape,
        method: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Answer {
        self.shapes[s.index()].token_requests.fetch_add(1, Relaxed);
        if method != "POST" {
            return Answer::json(405, r#"{"error":"method_not_allowed"}"#);
        }
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        let json = || serde_json::from_slice::<serde_json::Value>(body).ok();
        match s {
            Shape::Keystone => {
                let v = json().unwrap_or_default();
                let identity = &v["auth"]["identity"];
                let user = &identity["password"]["user"];
                let ok = identity["methods"] == serde_json::json!(["password"])
                    && user["name"] == KEYSTONE_USERNAME
                    && user["password"] == KEYSTONE_PASSWORD
                    && user["domain"]["id"] == KEYSTONE_DOMAIN;
                if !ok {
                    return Answer::json(
                        401,
                        r#"{"error":{"code":401,"title":"Unauthorized","message":"The request you have made requires authentication."}}"#,
                    );
                }
                let (token, lifetime) = self.issue(s, KEYSTONE_USERNAME);
                let expires_at = rfc3339(SystemTime::now() + lifetime);
                let body = serde_json::json!({
                    "token": {
                        "methods": ["password"],
                        "user": { "name": KEYSTONE_USERNAME, "domain": { "id": KEYSTONE_DOMAIN } },
                        "expires_at": expires_at,
                    }
                });
                let mut a = Answer::json(201, body.to_string());
                a.headers.push(("x-subject-token", token));
                a
            }
            Shape::Session => {
                let fields: Vec<(String, String)> =
                    if media.as_deref() == Some("application/x-www-form-urlencoded") {
                        crate::handler::parse_form(body)
                    } else {
                        let v = json().unwrap_or_default();
                        ["user", "pass"]
                            .into_iter()
                            .filter_map(|k| Some((k.to_owned(), v[k].as_str()?.to_owned())))
                            .collect()
                    };
                let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                if get("user") != Some(SESSION_USERNAME) || get("pass") != Some(SESSION_PASSWORD) {
                    return Answer {
                        status: 401,
                        headers: Vec::new(),
                        content_type: "text/html; charset=utf-8",
                        body: "<html><body>Wrong user name or password.</body></html>".into(),
                    };
                }
                let (token, lifetime) = self.issue(s, SESSION_USERNAME);
                let empty = self.session_empty_body.load(Relaxed);
                Answer {
                    status: if empty { 204 } else { 200 },
                    headers: vec![
                        ("set-cookie", "theme=light; Path=/".to_owned()),
                        (
                            "set-cookie",
                            format!(
                                "{SESSION_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly",
                                lifetime.as_secs().max(1)
                            ),
                        ),
                    ],
                    content_type: "text/html; charset=utf-8",
                    body: if empty {
                        String::new()
                    } else {
                        "<html><body>Welcome!</body></html>".into()
                    },
                }
            }
            Shape::Millis => {
                let v = json().unwrap_or_default();
                if v["client_id"] != MILLIS_CLIENT_ID || v["client_secret"] != MILLIS_CLIENT_SECRET
                {
                    return Answer::json(401, r#"{"error":"invalid_client"}"#);
                }
                let (token, lifetime) = self.issue(s, MILLIS_CLIENT_ID);
                let body = serde_json::json!({
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX),
                });
                Answer::json(200, body.to_string())
            }
        }
    }

    /// An API request carrying the shape's credential in `credential` (the
    /// `X-Auth-Token`, `Cookie` or `Authorization` header value).
    pub(crate) fn api(&self, s: Shape, sub: &str, credential: Option<&str>) -> Answer {
        let o = &self.shapes[s.index()];
        let token = credential.and_then(|v| match s {
            Shape::Keystone => Some(v.trim()),
            Shape::Session => v.split(';').find_map(|pair| {
                let (n, t) = pair.split_once('=')?;
                (n.trim() == SESSION_COOKIE).then_some(t.trim())
            }),
            Shape::Millis => {
                let (scheme, t) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(t.trim())
            }
        });
        let user = token.and_then(|t| {
            let tokens = lock(&o.tokens);
            let (user, until) = tokens.get(t)?;
            (Instant::now() < *until).then(|| user.clone())
        });
        match user {
            Some(user) => {
                o.api_ok.fetch_add(1, Relaxed);
                let body = serde_json::json!({ "user": user, "shape": s, "path": sub });
                Answer::json(200, body.to_string())
            }
            None => {
                o.api_denied.fetch_add(1, Relaxed);
                Answer::json(401, r#"{"error":"unauthorized"}"#)
            }
        }
    }
}

/// The header an API request of `s` carries its credential in.
pub(crate) fn credential_header(s: Shape) -> &'static str {
    match s {
        Shape::Keystone => "x-auth-token",
        Shape::Session => "cookie",
        Shape::Millis => "authorization",
    }
}

/// `2026-12-02T08:15:30.000000Z`, Keystone's format (UTC, microseconds).
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_by_hand() {
        let t = UNIX_EPOCH + Duration::from_micros(1_780_000_000_123_456);
        assert_eq!(rfc3339(t), "2026-05-28T20:26:40.123456Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn routes_by_prefix() {
        assert_eq!(
            Shapes::route("/keystone/v3/auth/tokens"),
            Some((Shape::Keystone, "/v3/auth/tokens"))
        );
        assert_eq!(Shapes::route("/sessionx/login"), None);
    }
}
