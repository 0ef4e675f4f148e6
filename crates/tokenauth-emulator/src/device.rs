//! A fixture provider for the device authorization grant (RFC 8628) on
//! `127.0.0.1:PORT/device`: a device authorization endpoint, a token
//! endpoint that answers the polls (and refreshes, with rotation), an
//! approval page a test drives over HTTP, and a bearer-token API.
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /device/oauth/device/code` | form `client_id` (= [`DEVICE_CLIENT_ID`]), optional `scope` -> 200 `{device_code, user_code, verification_uri, verification_uri_complete, expires_in, interval}`; another client -> 401 `invalid_client` |
//! | `POST /device/oauth/token` | `grant_type=urn:ietf:params:oauth:grant-type:device_code`, `device_code`, `client_id`: 400 `authorization_pending` until approved, `slow_down` (once, when armed, or for a poll sooner than the interval), `access_denied`, `expired_token`; approved: 200 `{access_token, token_type, expires_in, refresh_token}` (the code is then spent: `invalid_grant`). `grant_type=refresh_token`: a single-use, rotating refresh token |
//! | `POST /device/approve`, `POST /device/deny` | form `user_code`: what the person does in the browser; 200, or 404 for an unknown code |
//! | `GET /device/api/...` | `Authorization: Bearer <token>` -> 200 `{"user": ...}`, else 401 |
//!
//! Time is tokio's ([`tokio::time::Instant`]): a test on a paused runtime
//! sees the codes expire and the polls spaced in its own time.
//! Own code throughout: nothing is shared with core.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// The device fixture's only client id.
pub const DEVICE_CLIENT_ID: &str = "device-demo";
/// The user the device fixture's tokens belong to.
pub const DEVICE_USER: &str = "device-user";
/// The path prefix on `127.0.0.1:PORT`.
pub const DEVICE_PREFIX: &str = "/device";
/// The `grant_type` of a poll.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Where a device code stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceCodeState {
    /// Waiting for the person.
    Pending,
    /// Approved; tokens not yet collected.
    Approved,
    /// Denied.
    Denied,
    /// Tokens issued: the code is spent.
    Spent,
}

/// Counters and the poll log of the device fixture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceStats {
    /// Device authorization requests answered 200.
    pub codes_issued: u64,
    /// Polls (token requests with the device_code grant), any outcome.
    pub polls: u64,
    /// When each poll arrived, relative to the device authorization reply
    /// of its code (tokio time).
    pub poll_offsets: Vec<Duration>,
    /// `slow_down` answers.
    pub slow_downs: u64,
    /// Refresh grants answered 200.
    pub refreshes: u64,
    /// API requests answered 200.
    pub api_ok: u64,
}

struct Code {
    user_code: String,
    state: DeviceCodeState,
    issued: Instant,
    expires: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    /// device_code -> its state.
    codes: HashMap<String, Code>,
    access: HashMap<String, Instant>,
    refresh: HashMap<String, ()>,
    stats: DeviceStats,
}

/// The device fixture's state.
pub(crate) struct DeviceFixture {
    inner: Mutex<Inner>,
    interval_ms: AtomicU64,
    lifetime_ms: AtomicU64,
    slow_down_once: AtomicBool,
    seq: AtomicU64,
}

impl Default for DeviceFixture {
    fn default() -> Self {
        DeviceFixture {
            inner: Mutex::default(),
            interval_ms: AtomicU64::new(5_000),
            lifetime_ms: AtomicU64::new(600_000),
            slow_down_once: AtomicBool::new(false),
            seq: AtomicU64::new(0),
        }
    }
}

/// What the handler sends back.
pub(crate) struct DeviceAnswer {
    pub(crate) status: u16,
    pub(crate) body: String,
}

fn json(status: u16, v: serde_json::Value) -> DeviceAnswer {
    DeviceAnswer {
        status,
        body: v.to_string(),
    }
}

fn error(status: u16, code: &str) -> DeviceAnswer {
    json(status, serde_json::json!({ "error": code }))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Access tokens live one hour.
const ACCESS_LIFETIME: Duration = Duration::from_secs(3600);

impl DeviceFixture {
    pub(crate) fn set_interval(&self, d: Duration) {
        self.interval_ms.store(d.as_millis() as u64, Relaxed);
    }

    pub(crate) fn set_code_lifetime(&self, d: Duration) {
        self.lifetime_ms.store(d.as_millis() as u64, Relaxed);
    }

    pub(crate) fn slow_down_once(&self) {
        self.slow_down_once.store(true, Relaxed);
    }

    pub(crate) fn stats(&self) -> DeviceStats {
        lock(&self.inner).stats.clone()
    }

    /// The user code of the latest device code still pending.
    pub(crate) fn pending_user_code(&self) -> Option<String> {
        let inner = lock(&self.inner);
        inner
            .codes
            .values()
            .filter(|c| c.state == DeviceCodeState::Pending)
            .max_by_key(|c| c.issued)
            .map(|c| c.user_code.clone())
    }

    /// Approves (`true`) or denies the code; false for an unknown one.
    pub(crate) fn decide(&self, user_code: &str, approve: bool) -> bool {
        let mut inner = lock(&self.inner);
        let Some(code) = inner
            .codes
            .values_mut()
            .find(|c| c.user_code.eq_ignore_ascii_case(user_code.trim()))
        else {
            return false;
        };
        if code.state == DeviceCodeState::Pending {
            code.state = if approve {
                DeviceCodeState::Approved
            } else {
                DeviceCodeState::Denied
            };
        }
        true
    }

    /// `POST /device/oauth/device/code`.
    pub(crate) fn authorize(&self, form: &[(String, String)], base: &str) -> DeviceAnswer {
        if field(form, "client_id") != Some(DEVICE_CLIENT_ID) {
            return error(401, "invalid_client");
        }
        let n = self.seq.fetch_add(1, Relaxed);
        let device_code = format!("dc-{n}-{:016x}", fastrand::u64(..));
        let user_code = format!(
            "{}-{}",
            (0..4).map(|_| fastrand::uppercase()).collect::<String>(),
            (0..4).map(|_| fastrand::uppercase()).collect::<String>()
        );
        let interval = Duration::from_millis(self.interval_ms.load(Relaxed));
        let lifetime = Duration::from_millis(self.lifetime_ms.load(Relaxed));
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        inner.codes.insert(
            device_code.clone(),
            Code {
                user_code: user_code.clone(),
                state: DeviceCodeState::Pending,
                issued: now,
                expires: now + lifetime,
                interval,
                last_poll: None,
            },
        );
        inner.stats.codes_issued += 1;
        let verification_uri = format!("{base}{DEVICE_PREFIX}/activate");
        json(
            200,
            serde_json::json!({
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": verification_uri,
                "verification_uri_complete": format!("{verification_uri}?user_code={user_code}"),
                "expires_in": lifetime.as_secs(),
                // Whole seconds as RFC 8628 says, but never 0 for a
                // sub-second test interval: that one is sent in seconds as a
                // fraction.
                "interval": if interval.subsec_millis() == 0 {
                    serde_json::Value::from(interval.as_secs())
                } else {
                    serde_json::Value::from(interval.as_secs_f64())
                },
            }),
        )
    }

    /// `POST /device/oauth/token`.
    pub(crate) fn token(&self, form: &[(String, String)]) -> DeviceAnswer {
        match field(form, "grant_type") {
            Some(DEVICE_GRANT) => self.poll(form),
            Some("refresh_token") => self.refresh(form),
            _ => error(400, "unsupported_grant_type"),
        }
    }

    fn poll(&self, form: &[(String, String)]) -> DeviceAnswer {
        if field(form, "client_id") != Some(DEVICE_CLIENT_ID) {
            return error(401, "invalid_client");
        }
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        inner.stats.polls += 1;
        let Some(code) = field(form, "device_code").and_then(|c| inner.codes.get_mut(c)) else {
            return error(400, "invalid_grant");
        };
        let offset = now.saturating_duration_since(code.issued);
        let too_soon = code
            .last_poll
            .is_some_and(|last| now.saturating_duration_since(last) < code.interval);
        code.last_poll = Some(now);
        let state = code.state;
        let expired = now >= code.expires;
        inner.stats.poll_offsets.push(offset);
        if expired && state != DeviceCodeState::Spent {
            return error(400, "expired_token");
        }
        match state {
            DeviceCodeState::Spent => error(400, "invalid_grant"),
            DeviceCodeState::Denied => error(400, "access_denied"),
            _ if too_soon || self.slow_down_once.swap(false, Relaxed) => {
                if let Some(code) = field(form, "device_code").and_then(|c| inner.codes.get_mut(c))
                {
                    code.interval += Duration::from_secs(5);
                }
                inner.stats.slow_downs += 1;
                error(400, "slow_down")
            }
            DeviceCodeState::Pending => error(400, "authorization_pending"),
            DeviceCodeState::Approved => {
                if let Some(code) = field(form, "device_code").and_then(|c| inner.codes.get_mut(c))
                {
                    code.state = DeviceCodeState::Spent;
                }
                issue(&mut inner, &self.seq, now)
            }
        }
    }

    fn refresh(&self, form: &[(String, String)]) -> DeviceAnswer {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        match field(form, "refresh_token").and_then(|rt| inner.refresh.remove(rt)) {
            Some(()) => {
                inner.stats.refreshes += 1;
                issue(&mut inner, &self.seq, now)
            }
            None => error(400, "invalid_grant"),
        }
    }

    /// `GET /device/api/...`.
    pub(crate) fn api(&self, authorization: Option<&str>) -> DeviceAnswer {
        let token = authorization
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        match token.and_then(|t| inner.access.get(t)) {
            Some(expires) if *expires > now => {
                inner.stats.api_ok += 1;
                json(200, serde_json::json!({ "user": DEVICE_USER }))
            }
            _ => error(401, "invalid_token"),
        }
    }
}

fn issue(inner: &mut Inner, seq: &AtomicU64, now: Instant) -> DeviceAnswer {
    let n = seq.fetch_add(1, Relaxed);
    let access = format!("device-at-{n}-{:016x}", fastrand::u64(..));
    let refresh = format!("device-rt-{n}-{:016x}", fastrand::u64(..));
    inner.access.insert(access.clone(), now + ACCESS_LIFETIME);
    inner.refresh.insert(refresh.clone(), ());
    json(
        200,
        serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_LIFETIME.as_secs(),
            "refresh_token": refresh,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn start(f: &DeviceFixture) -> (String, String) {
        let a = f.authorize(&form(&[("client_id", DEVICE_CLIENT_ID)]), "http://x");
        assert_eq!(a.status, 200, "{}", a.body);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        (
            v["device_code"].as_str().unwrap().to_owned(),
            v["user_code"].as_str().unwrap().to_owned(),
        )
    }

    fn poll(f: &DeviceFixture, code: &str) -> (u16, serde_json::Value) {
        let a = f.token(&form(&[
            ("grant_type", DEVICE_GRANT),
            ("device_code", code),
            ("client_id", DEVICE_CLIENT_ID),
        ]));
        (a.status, serde_json::from_str(&a.body).unwrap())
    }

    #[test]
    fn pending_then_approved_then_spent() {
        let f = DeviceFixture::default();
        f.set_interval(Duration::ZERO);
        let (code, user) = start(&f);
        assert_eq!(poll(&f, &code).1["error"], "authorization_pending");
        assert!(
            f.decide(&user.to_lowercase(), true),
            "codes compare case-insensitively"
        );
        let (status, reply) = poll(&f, &code);
        assert_eq!(status, 200);
        assert!(reply["refresh_token"].is_string());
        assert_eq!(poll(&f, &code).1["error"], "invalid_grant", "single use");
    }

    #[test]
    fn slow_down_denial_unknown_client_and_code() {
        let f = DeviceFixture::default();
        f.set_interval(Duration::ZERO);
        f.slow_down_once();
        let (code, user) = start(&f);
        assert_eq!(poll(&f, &code).1["error"], "slow_down");
        assert_eq!(f.stats().slow_downs, 1);
        assert!(f.decide(&user, false));
        assert_eq!(poll(&f, &code).1["error"], "access_denied");
        assert_eq!(poll(&f, "nope").1["error"], "invalid_grant");
        let other = f.authorize(&form(&[("client_id", "other")]), "http://x");
        assert_eq!(other.status, 401);
        assert!(!f.decide("NOPE-NOPE", true));
    }

    #[test]
    fn a_poll_sooner_than_the_interval_is_slow_down() {
        let f = DeviceFixture::default();
        f.set_interval(Duration::from_secs(60));
        let (code, _) = start(&f);
        assert_eq!(poll(&f, &code).1["error"], "authorization_pending");
        assert_eq!(poll(&f, &code).1["error"], "slow_down");
    }

    #[test]
    fn expired_codes_say_expired_token() {
        let f = DeviceFixture::default();
        f.set_code_lifetime(Duration::ZERO);
        let (code, _) = start(&f);
        assert_eq!(poll(&f, &code).1["error"], "expired_token");
    }
}
