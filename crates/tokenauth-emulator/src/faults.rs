//! Fault knobs: latency, forced statuses, damaged replies, lifetimes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::Provider;

/// Default size of an [`ReplyFault::OversizedBody`]: 8 MiB.
pub const DEFAULT_OVERSIZED_BYTES: u64 = 8 * 1024 * 1024;

/// A forced status for the next `count` token requests of a provider, which
/// are then not processed at all (no token issued, no refresh token used).
///
/// JSON: `{"status": 429, "count": 2, "retry_after": 5}` (`retry_after`
/// optional: seconds, sent as a `Retry-After` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFault {
    /// The HTTP status to reply with (e.g. 500, 503, 429).
    pub status: u16,
    /// For how many token requests; then the endpoint heals.
    pub count: u32,
    /// `Retry-After` header value in seconds, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl StatusFault {
    /// `status` for the next `count` token requests, without `Retry-After`.
    pub fn new(status: u16, count: u32) -> Self {
        StatusFault {
            status,
            count,
            retry_after: None,
        }
    }

    /// Adds a `Retry-After: secs` header to the faulted replies.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

/// A damaged reply for the next K token requests that would succeed.
///
/// The grant is processed first (tokens are issued, a 2BA refresh token is
/// used up and rotated), as when a real server fails while answering; then
/// the reply is damaged. Requests that would fail anyway (400) are answered
/// normally and do not use up the count.
///
/// JSON: `{"kind": "malformed_json"}`, `{"kind": "truncated_body"}`,
/// `{"kind": "oversized_body", "bytes": 8388608}` (`bytes` optional),
/// `{"kind": "missing_token"}`, `{"kind": "wrong_token_type"}`,
/// `{"kind": "expires_in", "value": -5}`, `{"kind": "close_without_reply"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyFault {
    /// 200 with a JSON body that stops in the middle (a complete HTTP reply).
    MalformedJson,
    /// 200 with `Content-Length` of the full reply, but only half of the body
    /// is sent before the connection is closed.
    TruncatedBody,
    /// 200 with a chunked (no `Content-Length`) JSON body of `bytes` bytes,
    /// streamed in 64 KiB chunks, so a client with a size cap can stop early.
    OversizedBody {
        /// Total body size. Defaults to [`DEFAULT_OVERSIZED_BYTES`].
        #[serde(default = "default_oversized")]
        bytes: u64,
    },
    /// 200 with a well-formed reply that lacks the `access_token` key.
    MissingToken,
    /// 200 with `"access_token"` as a number instead of a string.
    WrongTokenType,
    /// 200 with `expires_in` set to `value` (added for REOBtimaal, which
    /// normally sends none). The token's real lifetime is unchanged.
    ExpiresIn {
        /// The `expires_in` value to send (may be negative or huge).
        value: i64,
    },
    /// Close the connection without sending any reply.
    CloseWithoutReply,
}

fn default_oversized() -> u64 {
    DEFAULT_OVERSIZED_BYTES
}

/// Token-endpoint latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latency {
    /// No added delay (the default).
    #[default]
    None,
    /// Always this delay.
    Fixed(Duration),
    /// A uniformly random delay in `[min, max]`.
    Range(Duration, Duration),
}

impl Latency {
    pub(crate) fn pick(self) -> Duration {
        match self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Range(a, b) => {
                let (lo, hi) = (a.min(b).as_nanos(), a.max(b).as_nanos());
                let lo = u64::try_from(lo).unwrap_or(u64::MAX);
                let hi = u64::try_from(hi).unwrap_or(u64::MAX);
                Duration::from_nanos(fastrand::u64(lo..=hi))
            }
        }
    }
}

/// Latency as JSON: a number of milliseconds or `[min_ms, max_ms]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LatencyMs {
    /// A fixed delay in milliseconds (0: none).
    Fixed(f64),
    /// A random delay in `[min, max]` milliseconds.
    Range([f64; 2]),
}

impl LatencyMs {
    fn to_latency(self) -> Result<Latency, String> {
        match self {
            LatencyMs::Fixed(0.0) => Ok(Latency::None),
            LatencyMs::Fixed(ms) => Ok(Latency::Fixed(ms_to_duration(ms)?)),
            LatencyMs::Range([a, b]) => Ok(Latency::Range(ms_to_duration(a)?, ms_to_duration(b)?)),
        }
    }

    fn from_latency(l: Latency) -> Self {
        match l {
            Latency::None => LatencyMs::Fixed(0.0),
            Latency::Fixed(d) => LatencyMs::Fixed(duration_to_ms(d)),
            Latency::Range(a, b) => LatencyMs::Range([duration_to_ms(a), duration_to_ms(b)]),
        }
    }
}

pub(crate) fn ms_to_duration(ms: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(ms / 1000.0)
        .map_err(|_| format!("{ms} is not a valid number of milliseconds (must be >= 0)"))
}

pub(crate) fn duration_to_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A reply fault with its count, as JSON:
/// `{"kind": "truncated_body", "count": 2}` (`count` defaults to 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyFaultSpec {
    /// The fault.
    #[serde(flatten)]
    pub fault: ReplyFault,
    /// For how many successful token requests. Defaults to 1.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// A change to the knobs, the body of `POST /_emulator/faults`; also usable
/// from Rust with [`Emulator::update_faults`](crate::Emulator::update_faults).
/// Every field is optional; absent fields leave their knob as it is.
///
/// ```json
/// {
///   "provider": "reobtimaal",
///   "clear": false,
///   "token_latency_ms": 250,
///   "status": { "status": 503, "count": 2, "retry_after": 5 },
///   "reply": { "kind": "truncated_body", "count": 1 },
///   "access_token_lifetime_ms": 500,
///   "refresh_token_lifetime_ms": 1000,
///   "jwt_access_tokens": true,
///   "revoke_on_reissue": true,
///   "api_latency_ms": 0
/// }
/// ```
/// `provider` (`"reobtimaal"`, `"twoba"`/`"2ba"`, `"bro"`) is required by
/// every field but `api_latency_ms` (which is global). `clear: true` first
/// removes the provider's latency, status and reply faults.
/// `token_latency_ms` is a number (0 removes it) or `[min, max]`.
/// `status: null` / `reply: null` remove a pending fault.
/// `refresh_token_lifetime_ms` applies to 2BA only. `revoke_on_reissue`:
/// see [`Emulator::set_revoke_on_reissue`](crate::Emulator::set_revoke_on_reissue).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultUpdate {
    /// The provider whose knobs change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// First remove the provider's latency, status and reply faults.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear: bool,
    /// Token-endpoint latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_latency_ms: Option<LatencyMs>,
    /// A forced status (`Some(None)`, JSON `null`, removes it).
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<Option<StatusFault>>,
    /// A damaged reply (`Some(None)`, JSON `null`, removes it).
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub reply: Option<Option<ReplyFaultSpec>>,
    /// Lifetime of newly issued access tokens, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime_ms: Option<f64>,
    /// Lifetime of newly issued refresh tokens (2BA), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_lifetime_ms: Option<f64>,
    /// Issue JWT-shaped access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_access_tokens: Option<bool>,
    /// Revoke a user's earlier access tokens when a new one is issued, and
    /// answer `403` to them (Django OAuth Toolkit's rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_on_reissue: Option<bool>,
    /// Delay added to every API request, all providers, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_latency_ms: Option<f64>,
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// The knobs of one provider, as kept by the server.
#[derive(Debug, Clone)]
pub(crate) struct Knobs {
    pub(crate) latency: Latency,
    /// A delay after a token request was processed (a refresh token spent)
    /// and before the reply: a client that goes away meanwhile has spent it
    /// without learning its successor.
    pub(crate) reply_delay: Duration,
    pub(crate) status: Option<StatusFault>,
    /// A forced status for the next API requests (not token requests).
    pub(crate) api_status: Option<StatusFault>,
    pub(crate) reply: Option<ReplyFaultSpec>,
    pub(crate) access_lifetime: Duration,
    pub(crate) refresh_lifetime: Duration,
    pub(crate) jwt: bool,
    pub(crate) revoke_on_reissue: bool,
}

/// Takes one use of a pending status fault, dropping it when used up.
pub(crate) fn take_status(fault: &mut Option<StatusFault>) -> Option<StatusFault> {
    let taken = *fault.as_ref()?;
    match fault {
        Some(f) if f.count > 1 => f.count -= 1,
        _ => *fault = None,
    }
    Some(taken)
}

impl Knobs {
    pub(crate) fn clear_faults(&mut self) {
        self.latency = Latency::None;
        self.reply_delay = Duration::ZERO;
        self.status = None;
        self.api_status = None;
        self.reply = None;
    }

    pub(crate) fn snapshot(&self) -> ProviderKnobs {
        ProviderKnobs {
            token_latency_ms: LatencyMs::from_latency(self.latency),
            reply_delay_ms: duration_to_ms(self.reply_delay),
            status: self.status,
            api_status: self.api_status,
            reply: self.reply,
            access_token_lifetime_ms: duration_to_ms(self.access_lifetime),
            refresh_token_lifetime_ms: duration_to_ms(self.refresh_lifetime),
            jwt_access_tokens: self.jwt,
            revoke_on_reissue: self.revoke_on_reissue,
        }
    }

    /// Applies the provider-specific part of an update.
    pub(crate) fn apply(&mut self, u: &FaultUpdate) -> Result<(), String> {
        // Validate everything before changing anything.
        let latency = u.token_latency_ms.map(LatencyMs::to_latency).transpose()?;
        let access = u.access_token_lifetime_ms.map(ms_to_duration).transpose()?;
        let refresh = u
            .refresh_token_lifetime_ms
            .map(ms_to_duration)
            .transpose()?;
        if let Some(Some(s)) = u.status
            && !(100..=599).contains(&s.status)
        {
            return Err(format!(
                "status {} is not an HTTP status (100..=599)",
                s.status
            ));
        }
        if u.clear {
            self.clear_faults();
        }
        if let Some(l) = latency {
            self.latency = l;
        }
        if let Some(s) = u.status {
            self.status = s.filter(|s| s.count > 0);
        }
        if let Some(r) = u.reply {
            self.reply = r.filter(|r| r.count > 0);
        }
        if let Some(a) = access {
            self.access_lifetime = a;
        }
        if let Some(r) = refresh {
            self.refresh_lifetime = r;
        }
        if let Some(j) = u.jwt_access_tokens {
            self.jwt = j;
        }
        if let Some(r) = u.revoke_on_reissue {
            self.revoke_on_reissue = r;
        }
        Ok(())
    }
}

/// The current knobs of one provider, as returned by `GET`/`POST
/// /_emulator/faults` (an object with keys `reobtimaal`, `twoba`, `bro`, and
/// `api_latency_ms`) and [`Emulator::knobs`](crate::Emulator::knobs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderKnobs {
    /// Token-endpoint latency (`0`: none).
    pub token_latency_ms: LatencyMs,
    /// Delay between processing a token request and replying (`0`: none).
    #[serde(default)]
    pub reply_delay_ms: f64,
    /// The pending forced status, with the remaining count.
    pub status: Option<StatusFault>,
    /// The pending forced status of API requests, with the remaining count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_status: Option<StatusFault>,
    /// The pending reply fault, with the remaining count.
    pub reply: Option<ReplyFaultSpec>,
    /// Lifetime of newly issued access tokens.
    pub access_token_lifetime_ms: f64,
    /// Lifetime of newly issued refresh tokens (2BA).
    pub refresh_token_lifetime_ms: f64,
    /// Whether access tokens are JWT-shaped.
    pub jwt_access_tokens: bool,
    /// Whether issuing an access token revokes the user's earlier ones
    /// (answered `403`).
    #[serde(default)]
    pub revoke_on_reissue: bool,
}
