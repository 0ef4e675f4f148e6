//! Reading a token reply: the access token, the refresh token and the expiry,
//! with the pointers of `[response]` and the precedence of `[expiry]`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use secrecy::SecretString;
use serde_json::Value;

use std::borrow::Cow;

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderName};

use crate::config::{ExpiresAtFormat, ExpiresInUnit, Provider, TokenSource};
use crate::error::{Error, RequestKind};

/// The longest token lifetime accepted from a reply: 10 years, the same
/// bound the loader puts on `expiry.ttl` (so a `ttl` that passes `check` is
/// always usable). Anything longer is a unit mix-up (milliseconds for
/// seconds) or garbage.
pub(crate) const MAX_LIFETIME: Duration = crate::config::MAX_DURATION;

/// The shortest token lifetime used: 1 second.
///
/// A reply whose lifetime is shorter (`expires_in = 1e-9` or `0.001`, an
/// `expires_at` or JWT `exp` a moment away, or an `expiry.ttl` below it) is
/// taken to mean this long instead: a lifetime of nanoseconds would make
/// every call log in again, and a login per call is what the cache exists to
/// prevent. A token that is already expired when it arrives (`expires_in <=
/// 0`, an `expires_at` in the past) is still an error. Each raise is counted
/// in [`Stats::clamped_lifetimes`](crate::Stats::clamped_lifetimes) and
/// logged at WARN the first time per provider.
pub(crate) const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// A token reply, read.
pub(crate) struct Parsed {
    pub(crate) access: SecretString,
    pub(crate) refresh: Option<SecretString>,
    pub(crate) expires_at: SystemTime,
    /// Set when the lifetime was raised to [`MIN_LIFETIME`].
    pub(crate) clamped: Option<Clamped>,
    /// The prefix `response.api_base` bound the connection to (set by the
    /// acquirer, which checks it against the provider's prefixes).
    pub(crate) api_base: Option<url::Url>,
}

/// A lifetime below [`MIN_LIFETIME`], for the log: where it came from and
/// what it was (a number or a time, never a token).
#[derive(Debug)]
pub(crate) struct Clamped {
    /// `expires_in`, `expires_at`, `jwt exp` or `expiry.ttl`.
    pub(crate) source: &'static str,
    /// The value the reply (or the description) gave.
    pub(crate) value: String,
}

/// The parts of a reply the `[response]` sources read: the JSON body (when
/// some source reads it) and the headers kept for the header and cookie
/// sources.
pub(crate) struct ReplyView<'r> {
    /// `None` when no source reads the body (it was not parsed).
    pub(crate) json: Option<&'r Value>,
    /// Only the headers some source names (and `Set-Cookie` for a cookie
    /// source), see [`super::kept_headers`].
    pub(crate) headers: &'r HeaderMap,
    /// The names of the reply's headers (at most [`super::MAX_HEADER_NAMES`]),
    /// for the message of a missing header or cookie: names, never values.
    pub(crate) header_names: &'r [HeaderName],
}

impl<'r> ReplyView<'r> {
    /// A reply that is only a JSON body (tests, and the body-only providers).
    #[cfg(test)]
    pub(crate) fn body(json: &'r Value) -> Self {
        static EMPTY: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();
        ReplyView {
            json: Some(json),
            headers: EMPTY.get_or_init(HeaderMap::new),
            header_names: &[],
        }
    }

    /// The value at `source`: a JSON value, or a header or cookie value as a
    /// JSON string. `Ok(None)` when it is absent (or null).
    fn find(
        &self,
        provider: &Provider,
        kind: RequestKind,
        field: &'static str,
        source: &TokenSource,
    ) -> Result<Option<Cow<'r, Value>>, Error> {
        let text = match source {
            TokenSource::Pointer(p) => {
                return Ok(self
                    .json
                    .and_then(|json| p.find(json))
                    .filter(|v| !v.is_null())
                    .map(Cow::Borrowed));
            }
            TokenSource::Header { header } => match self.headers.get(header) {
                None => return Ok(None),
                Some(v) => v.to_str().ok(),
            },
            TokenSource::Cookie { cookie } => {
                // The last Set-Cookie of that name wins, as in a browser.
                let mut found = None;
                for v in self.headers.get_all(SET_COOKIE) {
                    if let Some(value) = cookie_value(v.as_bytes(), cookie) {
                        found = Some(value);
                    }
                }
                match found {
                    None => return Ok(None),
                    Some(v) => v,
                }
            }
        };
        match text {
            Some(t) => Ok(Some(Cow::Owned(Value::String(t.trim().to_owned())))),
            None => Err(Error::WrongType {
                provider: provider.id.clone(),
                request: kind,
                field,
                pointer: source.to_string(),
                expected: "a non-empty string",
                found: "a value with bytes other than visible ASCII",
            }),
        }
    }

    /// What the reply does have where `source` looked: the top-level keys
    /// of the body, or the header names (names only, never values).
    fn has(&self, source: &TokenSource) -> String {
        let quoted = |names: &mut dyn Iterator<Item = &str>| {
            names
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (source, self.json) {
            (TokenSource::Pointer(_), Some(Value::Object(map))) => {
                quoted(&mut map.keys().map(String::as_str))
            }
            (TokenSource::Pointer(_), Some(other)) => {
                format!("none: the reply is {}", type_name(other))
            }
            (TokenSource::Pointer(_), None) => "none: the body was not read".to_owned(),
            (TokenSource::Header { .. }, _) => format!(
                "none of that name; its headers are {}",
                quoted(&mut self.header_names.iter().map(HeaderName::as_str))
            ),
            (TokenSource::Cookie { .. }, _) => {
                let names: Vec<&str> = self
                    .headers
                    .get_all(SET_COOKIE)
                    .iter()
                    .filter_map(|v| cookie_name(v.as_bytes()))
                    .collect();
                format!(
                    "none of that name; it sets the cookies {}",
                    quoted(&mut names.into_iter())
                )
            }
        }
    }
}

/// The name of the cookie a `Set-Cookie` value sets, when it is readable.
fn cookie_name(set_cookie: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(set_cookie).ok()?;
    let pair = text.split(';').next()?;
    let (name, _) = pair.split_once('=')?;
    let name = name.trim();
    (!name.is_empty()).then_some(name)
}

/// The value a `Set-Cookie` value gives the cookie `name` (RFC 6265: the
/// `name=value` pair before the first `;`, the attributes after it are not
/// part of it; a quoted value loses its quotes). `None`: another cookie, or
/// not readable. `Some(None)`: this cookie, with bytes other than visible
/// ASCII.
fn cookie_value<'v>(set_cookie: &'v [u8], name: &str) -> Option<Option<&'v str>> {
    let pair = match set_cookie.iter().position(|&b| b == b';') {
        Some(i) => &set_cookie[..i],
        None => set_cookie,
    };
    let eq = pair.iter().position(|&b| b == b'=')?;
    if pair[..eq].trim_ascii() != name.as_bytes() {
        return None;
    }
    let value = pair[eq + 1..].trim_ascii();
    let value = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    Some(
        std::str::from_utf8(value)
            .ok()
            .filter(|v| v.bytes().all(|b| b.is_ascii_graphic())),
    )
}

pub(crate) fn parse_reply(
    provider: &Provider,
    kind: RequestKind,
    reply: &ReplyView<'_>,
    now: SystemTime,
) -> Result<Parsed, Error> {
    let r = &provider.response;
    let access = string_at(provider, kind, reply, "access_token", &r.access_token)?
        .ok_or_else(|| missing(provider, kind, reply, "access_token", &r.access_token))?;
    let refresh = match &r.refresh_token {
        Some(p) => string_at(provider, kind, reply, "refresh_token", p)?,
        None => None,
    };
    let (expires_at, clamped) = expiry(provider, kind, reply, &access, now)?;
    Ok(Parsed {
        access: SecretString::from(access),
        refresh: refresh.map(SecretString::from),
        expires_at,
        clamped,
        api_base: None,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.is_empty() => "an empty string",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The non-empty string at `source`; `None` when absent (or null).
fn string_at(
    provider: &Provider,
    kind: RequestKind,
    reply: &ReplyView<'_>,
    field: &'static str,
    source: &TokenSource,
) -> Result<Option<String>, Error> {
    match reply.find(provider, kind, field, source)?.as_deref() {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(
            provider,
            kind,
            field,
            source,
            "a non-empty string",
            other,
        )),
    }
}

fn missing(
    provider: &Provider,
    kind: RequestKind,
    reply: &ReplyView<'_>,
    field: &'static str,
    source: &TokenSource,
) -> Error {
    Error::MissingField {
        provider: provider.id.clone(),
        request: kind,
        field,
        pointer: source.to_string(),
        keys: reply.has(source),
    }
}

fn invalid(provider: &Provider, kind: RequestKind, reason: String) -> Error {
    Error::InvalidExpiry {
        provider: provider.id.clone(),
        request: kind,
        reason,
    }
}

/// An expiry time, and whether its lifetime was raised to the floor.
type Expiry = (SystemTime, Option<Clamped>);

/// Expiry precedence: `expires_at`, `expires_in`, JWT `exp` (opt-in), `ttl`.
/// Every time is computed with checked arithmetic: no reply can make it
/// overflow (and panic).
fn expiry(
    provider: &Provider,
    kind: RequestKind,
    reply: &ReplyView<'_>,
    access: &str,
    now: SystemTime,
) -> Result<Expiry, Error> {
    let r = &provider.response;
    if let Some(p) = &r.expires_at
        && let Some(v) = reply.find(provider, kind, "expires_at", p)?
    {
        let v = &*v;
        let at = match r.expires_at_format {
            ExpiresAtFormat::Rfc3339 => match v {
                Value::String(s) => parse_rfc3339(s).ok_or_else(|| {
                    invalid(provider, kind, format!("`{}` = {s:?} is not an RFC 3339 time such as \"2026-11-22T15:04:05Z\": fix response.expires_at_format", p))
                })?,
                other => return Err(wrong_type(provider, kind, "expires_at", p, "an RFC 3339 time string", other)),
            },
            ExpiresAtFormat::UnixSeconds | ExpiresAtFormat::UnixMillis => {
                let n = number(v).ok_or_else(|| wrong_type(provider, kind, "expires_at", p, "a number (Unix time)", v))?;
                if !(n.is_finite() && n > 0.0) {
                    return Err(invalid(provider, kind, format!("`{}` = {n} is not a Unix time", p)));
                }
                let secs = if r.expires_at_format == ExpiresAtFormat::UnixMillis { n / 1000.0 } else { n };
                Duration::try_from_secs_f64(secs)
                    .ok()
                    .and_then(|d| UNIX_EPOCH.checked_add(d))
                    .ok_or_else(|| invalid(provider, kind, format!("`{}` = {n} is out of range", p)))?
            }
        };
        return check_future(provider, kind, &format!("`{}`", p), "expires_at", at, now);
    }
    if let Some(p) = &r.expires_in
        && let Some(v) = reply.find(provider, kind, "expires_in", p)?
    {
        let unit = r.expires_in_unit;
        let expected = match unit {
            ExpiresInUnit::Seconds => "a number of seconds",
            ExpiresInUnit::Milliseconds => "a number of milliseconds",
            ExpiresInUnit::Minutes => "a number of minutes",
        };
        let n =
            number(&v).ok_or_else(|| wrong_type(provider, kind, "expires_in", p, expected, &v))?;
        let what = format!("`{p}` = {n} {}", unit.as_str());
        if !n.is_finite() || n <= 0.0 {
            return Err(invalid(
                provider,
                kind,
                format!("{what}: a token lifetime must be positive"),
            ));
        }
        let lifetime = Duration::try_from_secs_f64(n * unit.seconds())
            .ok()
            .filter(|d| *d <= MAX_LIFETIME)
            .ok_or_else(|| invalid(provider, kind, format!("{what} is more than 10 years, which is not a believable token lifetime (check response.expires_in_unit)")))?;
        return ends(provider, kind, &what, now, lifetime, || Clamped {
            source: "expires_in",
            // `{:?}` writes 1e-9 rather than 0.000000001.
            value: match unit {
                ExpiresInUnit::Seconds => format!("{n:?}"),
                other => format!("{n:?} {}", other.as_str()),
            },
        });
    }
    if provider.expiry.jwt_exp
        && let Some(exp) = jwt_exp(access)
    {
        let at = UNIX_EPOCH
            .checked_add(Duration::from_secs(exp))
            .ok_or_else(|| {
                invalid(
                    provider,
                    kind,
                    format!("the JWT `exp` claim {exp} is out of range"),
                )
            })?;
        return check_future(provider, kind, "the JWT `exp` claim", "jwt exp", at, now);
    }
    match provider.expiry.ttl {
        Some(ttl) if ttl > MAX_LIFETIME => Err(invalid(
            provider,
            kind,
            format!(
                "expiry.ttl = \"{}\" is more than 10 years, which is not a believable token lifetime: set it to the documented lifetime",
                humantime::format_duration(ttl)
            ),
        )),
        Some(ttl) => ends(provider, kind, "expiry.ttl", now, ttl, || Clamped {
            source: "expiry.ttl",
            value: humantime::format_duration(ttl).to_string(),
        }),
        None => Err(Error::NoExpiry {
            provider: provider.id.clone(),
            request: kind,
        }),
    }
}

/// `now + lifetime`, the lifetime raised to [`MIN_LIFETIME`] (and `clamp`
/// describing the original then); an error instead of an overflow.
fn ends(
    provider: &Provider,
    kind: RequestKind,
    what: &str,
    now: SystemTime,
    lifetime: Duration,
    clamp: impl FnOnce() -> Clamped,
) -> Result<Expiry, Error> {
    let clamped = (lifetime < MIN_LIFETIME).then(clamp);
    let at = now
        .checked_add(lifetime.max(MIN_LIFETIME))
        .ok_or_else(|| {
            invalid(
                provider,
                kind,
                format!(
                    "{what}: the current time plus this lifetime is beyond what this system can represent: check the clock and the lifetime"
                ),
            )
        })?;
    Ok((at, clamped))
}

/// An absolute expiry `at`, which must be ahead of `now` (by at most
/// [`MAX_LIFETIME`]; a lifetime below [`MIN_LIFETIME`] is raised to it).
fn check_future(
    provider: &Provider,
    kind: RequestKind,
    what: &str,
    source: &'static str,
    at: SystemTime,
    now: SystemTime,
) -> Result<Expiry, Error> {
    match at.duration_since(now) {
        Err(_) | Ok(Duration::ZERO) => Err(invalid(
            provider,
            kind,
            format!(
                "{what} is in the past: the token is expired on arrival (check the clocks, and the unit in expires_at_format)"
            ),
        )),
        Ok(d) if d > MAX_LIFETIME => Err(invalid(
            provider,
            kind,
            format!(
                "{what} is more than 10 years away, which is not a believable expiry (check the unit in expires_at_format)"
            ),
        )),
        Ok(d) if d < MIN_LIFETIME => ends(provider, kind, what, now, d, || Clamped {
            source,
            value: humantime::format_rfc3339_nanos(at).to_string(),
        }),
        Ok(_) => Ok((at, None)),
    }
}

fn wrong_type(
    provider: &Provider,
    kind: RequestKind,
    field: &'static str,
    p: &TokenSource,
    expected: &'static str,
    found: &Value,
) -> Error {
    Error::WrongType {
        provider: provider.id.clone(),
        request: kind,
        field,
        pointer: p.to_string(),
        expected,
        found: type_name(found),
    }
}

/// A JSON number, or a string holding one.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// The `exp` claim of a JWT (`header.payload.signature`, base64url), if the
/// token is one.
pub(crate) fn jwt_exp(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    exp.as_u64()
        .or_else(|| exp.as_f64().filter(|f| *f > 0.0).map(|f| f as u64))
}

/// RFC 3339 with `Z` or a numeric offset (`+02:00`), fractional seconds
/// allowed.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if let Some(base) = s.strip_suffix(['Z', 'z']) {
        return humantime::parse_rfc3339_weak(base).ok();
    }
    // `...+HH:MM` / `...-HH:MM`
    let cut = s.len().checked_sub(6)?;
    if !s.is_char_boundary(cut) {
        // Not an offset (and not ASCII there): not a time either.
        return None;
    }
    let (base, offset) = s.split_at(cut);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1i64,
        b'-' => -1,
        _ => return humantime::parse_rfc3339_weak(s).ok(),
    };
    let (h, m) = offset[1..].split_once(':')?;
    let secs = sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60);
    let local = humantime::parse_rfc3339_weak(base).ok()?;
    let shift = Duration::from_secs(secs.unsigned_abs());
    // Local time = UTC + offset, so UTC = local - offset.
    if secs >= 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(expiry: &str) -> crate::config::Providers {
        let toml = format!(
            r#"
[providers.p]
api = ["https://api.example.com/"]
login = {{ url = "https://login.example.com/token", fields = {{ grant_type = "client_credentials" }} }}
response = {{ access_token = "/access_token", expires_in = "/expires_in", expires_at = "/expires_at" }}
expiry = {{ {expiry} }}
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
        );
        crate::config::Providers::from_toml("p.toml", &toml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse(expiry: &str, reply: Value, now: SystemTime) -> Result<Parsed, Error> {
        let providers = provider(expiry);
        parse_reply(
            providers.get("p").unwrap(),
            RequestKind::Login,
            &ReplyView::body(&reply),
            now,
        )
    }

    #[test]
    fn every_ttl_the_loader_accepts_is_usable() {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        for ttl in ["10y", "3652d", "1s", "60m"] {
            let parsed = parse(
                &format!("ttl = \"{ttl}\""),
                serde_json::json!({ "access_token": "t" }),
                now,
            )
            .unwrap_or_else(|e| panic!("ttl {ttl}: {e}"));
            assert!(parsed.expires_at > now, "{ttl}");
        }
    }

    #[test]
    fn lifetimes_below_the_floor_are_raised_to_it() {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let at = |d: Duration| humantime::format_rfc3339_nanos(now + d).to_string();
        let cases = [
            (
                serde_json::json!({ "access_token": "t", "expires_in": 1e-9 }),
                "expires_in",
                "1e-9",
            ),
            (
                serde_json::json!({ "access_token": "t", "expires_in": 0.001 }),
                "expires_in",
                "0.001",
            ),
            (
                serde_json::json!({ "access_token": "t", "expires_in": "1e-300" }),
                "expires_in",
                "1e-300",
            ),
            (
                serde_json::json!({ "access_token": "t", "expires_at": at(Duration::from_millis(250)) }),
                "expires_at",
                &*at(Duration::from_millis(250)),
            ),
        ];
        for (reply, source, value) in cases {
            let parsed = parse("", reply.clone(), now).unwrap_or_else(|e| panic!("{reply}: {e}"));
            assert_eq!(parsed.expires_at, now + MIN_LIFETIME, "{reply}");
            let clamped = parsed.clamped.expect("clamped");
            assert_eq!((clamped.source, clamped.value.as_str()), (source, value));
        }
        let ttl = parse(
            r#"ttl = "10ms""#,
            serde_json::json!({ "access_token": "t" }),
            now,
        )
        .unwrap();
        assert_eq!(ttl.expires_at, now + MIN_LIFETIME);
        assert_eq!(
            ttl.clamped.map(|c| (c.source, c.value)),
            Some(("expiry.ttl", "10ms".to_owned()))
        );
        // At or above the floor: as given, not counted.
        let one = parse(
            "",
            serde_json::json!({ "access_token": "t", "expires_in": 1 }),
            now,
        )
        .unwrap();
        assert_eq!(one.expires_at, now + Duration::from_secs(1));
        assert!(one.clamped.is_none());
    }

    #[test]
    fn expired_on_arrival_is_still_an_error() {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let past = humantime::format_rfc3339(now - Duration::from_secs(1)).to_string();
        let now_exactly = humantime::format_rfc3339(now).to_string();
        for reply in [
            serde_json::json!({ "access_token": "t", "expires_in": 0 }),
            serde_json::json!({ "access_token": "t", "expires_in": -0.5 }),
            serde_json::json!({ "access_token": "t", "expires_at": past }),
            serde_json::json!({ "access_token": "t", "expires_at": now_exactly }),
        ] {
            let err = parse("", reply.clone(), now).err().expect("an error");
            assert!(
                matches!(err, Error::InvalidExpiry { .. }),
                "{reply}: {err:?}"
            );
        }
    }

    #[test]
    fn time_arithmetic_never_overflows() {
        // The last representable time, to the second: any lifetime added to
        // it overflows `SystemTime`.
        let mut last = UNIX_EPOCH;
        for bit in (0..64).rev() {
            if let Some(t) = last.checked_add(Duration::from_secs(1 << bit)) {
                last = t;
            }
        }
        for (expiry, reply) in [
            (
                "",
                serde_json::json!({ "access_token": "t", "expires_in": 3600 }),
            ),
            (
                "",
                serde_json::json!({ "access_token": "t", "expires_in": 1e-9 }),
            ),
            (r#"ttl = "1h""#, serde_json::json!({ "access_token": "t" })),
        ] {
            let err = parse(expiry, reply.clone(), last)
                .err()
                .expect("an error, not a panic");
            assert!(
                matches!(&err, Error::InvalidExpiry { reason, .. } if reason.contains("beyond what this system can represent")),
                "{reply}: {err:?}"
            );
        }
    }

    #[test]
    fn rfc3339_with_offsets() {
        let z = parse_rfc3339("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(parse_rfc3339("2026-01-02T05:04:05+02:00"), Some(z));
        assert_eq!(parse_rfc3339("2026-01-02T02:04:05-01:00"), Some(z));
        assert_eq!(
            parse_rfc3339("2026-01-02T03:04:05.5Z"),
            Some(z + Duration::from_millis(500))
        );
        assert_eq!(parse_rfc3339("tomorrow"), None);
        // Multi-byte characters where an offset would be: no panic.
        assert_eq!(parse_rfc3339("#\u{1e028}\u{1b1ca}x\u{10595}\u{136a}"), None);
        assert_eq!(parse_rfc3339("2026-01-02T03:04:05\u{20ac}0:00"), None);
    }

    #[test]
    fn jwt_exp_claim() {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"none"}"#),
            enc(r#"{"sub":"x","exp":1900000000}"#)
        );
        assert_eq!(jwt_exp(&t), Some(1_900_000_000));
        assert_eq!(jwt_exp("opaque-token"), None);
        assert_eq!(jwt_exp("a.b.c"), None);
    }

    fn with_response(response: &str) -> crate::config::Providers {
        let toml = format!(
            r#"
[providers.p]
api = ["https://api.example.com/"]
login = {{ url = "https://login.example.com/token", fields = {{ grant_type = "client_credentials" }} }}
response = {{ {response} }}
expiry = {{ ttl = "1h" }}
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
        );
        crate::config::Providers::from_toml("p.toml", &toml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_with(
        response: &str,
        json: Option<&Value>,
        headers: &[(&str, &str)],
        now: SystemTime,
    ) -> Result<Parsed, Error> {
        let providers = with_response(response);
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let names: Vec<HeaderName> = map.keys().cloned().collect();
        let view = ReplyView {
            json,
            headers: &map,
            header_names: &names,
        };
        parse_reply(providers.get("p").unwrap(), RequestKind::Login, &view, now)
    }

    fn secret(p: &Parsed) -> &str {
        use secrecy::ExposeSecret;
        p.access.expose_secret()
    }

    #[test]
    fn the_token_from_a_reply_header() {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let at = humantime::format_rfc3339(now + Duration::from_secs(3600)).to_string();
        let body = serde_json::json!({ "token": { "expires_at": at } });
        let response =
            r#"access_token = { header = "X-Subject-Token" }, expires_at = "/token/expires_at""#;
        let parsed = parse_with(
            response,
            Some(&body),
            &[("x-subject-token", " gAAAA-keystone ")],
            now,
        )
        .unwrap();
        assert_eq!(secret(&parsed), "gAAAA-keystone");
        assert_eq!(parsed.expires_at, now + Duration::from_secs(3600));

        // Missing: the typed error names the header and the names the reply
        // has, never a value.
        let err = parse_with(
            response,
            Some(&body),
            &[("x-auth-token", "not-this-SECRET")],
            now,
        )
        .err()
        .expect("missing");
        let text = err.to_string();
        assert!(
            matches!(&err, Error::MissingField { field: "access_token", pointer, .. } if pointer == "header x-subject-token"),
            "{err:?}"
        );
        assert!(text.contains("\"x-auth-token\""), "{text}");
        assert!(!text.contains("SECRET") && !format!("{err:?}").contains("SECRET"));
    }

    #[test]
    fn the_token_from_a_cookie() {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let response = r#"access_token = { cookie = "SESSION" }"#;
        // Attributes are not part of the value; other cookies are skipped;
        // the body is not read (there is none).
        let parsed = parse_with(
            response,
            None,
            &[
                ("set-cookie", "theme=dark; Path=/"),
                (
                    "set-cookie",
                    "SESSION=s-123; Path=/; HttpOnly; Expires=Wed, 21 Oct 2026 07:28:00 GMT",
                ),
            ],
            now,
        )
        .unwrap();
        assert_eq!(secret(&parsed), "s-123");
        assert_eq!(parsed.expires_at, now + Duration::from_secs(3600));
        // Quoted; the last one of the name wins.
        let parsed = parse_with(
            response,
            None,
            &[
                ("set-cookie", "SESSION=old"),
                ("set-cookie", "SESSION=\"new\"; Secure"),
            ],
            now,
        )
        .unwrap();
        assert_eq!(secret(&parsed), "new");
        // A name that only starts the same is another cookie.
        let err = parse_with(
            response,
            None,
            &[("set-cookie", "SESSIONID=SECRET-other; Path=/")],
            now,
        )
        .err()
        .expect("missing");
        assert!(
            matches!(&err, Error::MissingField { pointer, .. } if pointer == "cookie SESSION"),
            "{err:?}"
        );
        let text = format!("{err} {err:?}");
        assert!(
            text.contains("\"SESSIONID\"") && !text.contains("SECRET"),
            "{text}"
        );
        // An emptied cookie (a logout) is no token.
        let err = parse_with(
            response,
            None,
            &[("set-cookie", "SESSION=; Max-Age=0")],
            now,
        )
        .err()
        .expect("empty");
        assert!(
            matches!(
                err,
                Error::WrongType {
                    found: "an empty string",
                    ..
                }
            ),
            "{err:?}"
        );
        // Bytes a header may carry but a cookie value may not: no value in the error.
        let err = parse_with(response, None, &[("set-cookie", "SESSION=a b SECRET")], now)
            .err()
            .expect("not a cookie value");
        assert!(matches!(err, Error::WrongType { .. }), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("SECRET"));
    }

    #[test]
    fn cookie_values_by_name() {
        assert_eq!(cookie_value(b"a=1; Path=/", "a"), Some(Some("1")));
        assert_eq!(cookie_value(b" a = 1 ", "a"), Some(Some("1")));
        assert_eq!(cookie_value(b"a=x=y", "a"), Some(Some("x=y")));
        assert_eq!(cookie_value(b"ab=1", "a"), None);
        assert_eq!(cookie_value(b"no-equals", "a"), None);
        assert_eq!(cookie_value(b"a=\xff", "a"), Some(None));
        assert_eq!(cookie_name(b"SESSION=x; HttpOnly"), Some("SESSION"));
    }

    #[test]
    fn expires_in_units_and_numeric_strings() {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let cases = [
            ("", serde_json::json!(600), 600_000),
            // Exact Online writes the number as a string.
            ("", serde_json::json!("600"), 600_000),
            (
                r#", expires_in_unit = "milliseconds""#,
                serde_json::json!(3_600_000),
                3_600_000,
            ),
            (
                r#", expires_in_unit = "milliseconds""#,
                serde_json::json!("1500"),
                1_500,
            ),
            (
                r#", expires_in_unit = "minutes""#,
                serde_json::json!(60),
                3_600_000,
            ),
            (
                r#", expires_in_unit = "seconds""#,
                serde_json::json!(1.5),
                1_500,
            ),
        ];
        for (unit, value, ms) in cases {
            let response = format!(r#"expires_in = "/expires_in"{unit}"#);
            let body = serde_json::json!({ "access_token": "t", "expires_in": value });
            let parsed = parse_with(&response, Some(&body), &[], now)
                .unwrap_or_else(|e| panic!("{unit} {value}: {e}"));
            assert_eq!(
                parsed.expires_at,
                now + Duration::from_millis(ms),
                "{unit} {value}"
            );
        }
        // Below the floor in milliseconds: raised, and the log says the unit.
        let body = serde_json::json!({ "access_token": "t", "expires_in": 20 });
        let parsed = parse_with(
            r#"expires_in = "/expires_in", expires_in_unit = "milliseconds""#,
            Some(&body),
            &[],
            now,
        )
        .unwrap();
        assert_eq!(parsed.expires_at, now + MIN_LIFETIME);
        assert_eq!(
            parsed.clamped.map(|c| c.value).as_deref(),
            Some("20.0 milliseconds")
        );
        // Minutes that overflow ten years: an error, not a panic.
        let body = serde_json::json!({ "access_token": "t", "expires_in": 1e12 });
        let err = parse_with(
            r#"expires_in = "/expires_in", expires_in_unit = "minutes""#,
            Some(&body),
            &[],
            now,
        )
        .err()
        .expect("too long");
        assert!(
            matches!(&err, Error::InvalidExpiry { reason, .. } if reason.contains("minutes")),
            "{err:?}"
        );
        // From a header, in milliseconds.
        let parsed = parse_with(
            r#"expires_in = { header = "X-Expires-In" }, expires_in_unit = "milliseconds""#,
            Some(&serde_json::json!({ "access_token": "t" })),
            &[("x-expires-in", "90000")],
            now,
        )
        .unwrap();
        assert_eq!(parsed.expires_at, now + Duration::from_secs(90));
    }
}
