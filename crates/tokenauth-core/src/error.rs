//! The one error type of the engine: [`Error`].
//!
//! Errors are `Clone` (heavy sources sit behind an `Arc`) because one failed
//! token request is shared by every caller that was waiting for it. Every
//! message says what went wrong and how to fix it; [`Display`] never repeats
//! the [`source`](std::error::Error::source), and no message ever contains a
//! secret: reply bodies are cut to a short excerpt and scrubbed of every
//! secret input value and token-looking JSON value before they are stored.
//!
//! [`Display`]: std::fmt::Display

use std::fmt;
use std::sync::Arc;

use http::StatusCode;
use std::time::Duration;

use crate::config::LoadError;

/// Which token request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestKind {
    /// The `[login]` request.
    Login,
    /// The `[refresh]` request (a refresh token traded for a new access token).
    Refresh,
    /// The `[device]` request (RFC 8628 device authorization).
    Device,
    /// The `[authorize.exchange]` request (an authorization code traded for
    /// tokens).
    Exchange,
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestKind::Login => "login",
            RequestKind::Refresh => "refresh",
            RequestKind::Exchange => "code exchange",
            RequestKind::Device => "device authorization",
        })
    }
}

/// Why a device authorization grant (RFC 8628) ended without a token
/// ([`Error::Device`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceFailure {
    /// The provider has no `[device]` table.
    NotOffered,
    /// The person denied the request (`access_denied`).
    Denied,
    /// The device code expired (`expired_token`, or its `expires_in`
    /// passed) before the person approved it.
    Expired,
}

impl fmt::Display for DeviceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceFailure::NotOffered => {
                "the provider has no [device] table: add one with the device authorization endpoint's url to use the device flow"
            }
            DeviceFailure::Denied => {
                "the device authorization was denied (access_denied): nothing was stored; start again and approve the code"
            }
            DeviceFailure::Expired => {
                "the device code expired before it was approved (expired_token): nothing was stored; start again and enter the new code in time"
            }
        })
    }
}

/// Everything that can go wrong while getting a credential.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The description file could not be loaded; the source lists every
    /// problem with `file:line:column`.
    #[error("the provider description could not be loaded (see the diagnostics below)")]
    Config(#[source] Arc<LoadError>),

    /// No provider with this id.
    #[error(
        "unknown provider `{provider}`: use an id from the description's [providers.ID] tables"
    )]
    UnknownProvider {
        /// The id that was asked for.
        provider: String,
    },

    /// A connection lacks a value for a declared input.
    #[error("{}", missing_input_message(provider, connection, input, env.as_deref()))]
    MissingInput {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// The input name.
        input: String,
        /// The environment variable the default connection reads it from.
        env: Option<String>,
    },

    /// The signing key of a `login.assertion` could not be used: not a PEM
    /// key of the algorithm's kind, or a PEM key where HS256 needs a shared
    /// secret. The key is never quoted. Nothing was sent.
    #[error(
        "provider `{provider}`, connection `{connection}`: the {algorithm} signing key in input `{input}` {reason}"
    )]
    AssertionKey {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// The (secret) input holding the key.
        input: String,
        /// The algorithm, as written (`RS256`).
        algorithm: &'static str,
        /// What is wrong and how to fix it (never the key).
        reason: &'static str,
    },

    /// An input's value is not allowed: it breaks the input's `pattern` or
    /// `one_of`, or does not fit its place in a URL (a host that is not DNS
    /// labels, say). Nothing was sent.
    #[error(
        "provider `{provider}`, connection `{connection}`: input `{input}` {reason}: fix the connection's value (or the input's constraint in the description)"
    )]
    InvalidInput {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// The input name.
        input: String,
        /// Why, quoting the value only when the input is not secret.
        reason: String,
    },

    /// The token reply's API base (`response.api_base`) is missing, not a
    /// URL, or outside every `api` prefix: the token is not used, and no
    /// request is sent with it.
    #[error(
        "provider `{provider}`: the {request} reply's API base (`{pointer}`) cannot be used: {reason}; the token is not used: check the provider's `api` prefixes (a `*` host label stands for one DNS label) and response.api_base"
    )]
    ApiBase {
        /// The provider id.
        provider: String,
        /// Which request the reply answered.
        request: RequestKind,
        /// The `response.api_base` pointer.
        pointer: String,
        /// Why (quoting the value, scrubbed of every secret).
        reason: String,
    },

    /// A request went outside the API base its connection's token reply
    /// bound it to (`response.api_base`): it was not sent.
    #[error(
        "provider `{provider}`, connection `{connection}`: the request goes to {to}, but the token reply bound this connection to {base}: its credential goes nowhere else; send the request to the connection's own API base (Credential::api_base)"
    )]
    OutsideApiBase {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// The origin the request was for.
        to: String,
        /// The bound API base.
        base: String,
    },

    /// A request routed with a connection's values lies outside the
    /// prefixes its credential was made for: two `Connection`s with one id
    /// but different values. Not sent.
    #[error(
        "provider `{provider}`, connection `{connection}`: the request to {to} is outside the api prefixes this connection's credential was made for: another Connection with the id `{connection}` carries other values; one connection id must always carry the same inputs (tokens are cached by id)"
    )]
    OutsideConnectionPrefixes {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// The origin the request was for.
        to: String,
    },

    /// A rendered credential or request header is not a valid header value.
    #[error(
        "provider `{provider}`: the rendered {what} is not a valid HTTP header value (it contains a line break or another control character): check the inputs and the token the provider returned"
    )]
    InvalidHeaderValue {
        /// The provider id.
        provider: String,
        /// Which value (e.g. "inject header", "login header `X-Key`").
        what: String,
    },

    /// The token endpoint answered with a status other than 2xx.
    #[error("{}", status_message(provider, *request, url, status.as_u16(), body))]
    Status {
        /// The provider id.
        provider: String,
        /// Login or refresh.
        request: RequestKind,
        /// The token endpoint.
        url: String,
        /// The HTTP status.
        status: StatusCode,
        /// The start of the reply body, with secrets removed.
        body: String,
        /// The reply's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },

    /// The token endpoint did not answer in time.
    #[error("provider `{provider}`: the {request} request to {url} timed out after {}: the endpoint is slow or unreachable; raise `timeout` in the [{request}] table if it is just slow", humantime::format_duration(*timeout))]
    Timeout {
        /// The provider id.
        provider: String,
        /// Login or refresh.
        request: RequestKind,
        /// The token endpoint.
        url: String,
        /// The configured timeout.
        timeout: Duration,
    },

    /// The token request failed before a complete reply arrived (connection
    /// refused or reset, TLS or DNS failure, a reply cut short).
    #[error(
        "provider `{provider}`: the {request} request to {url} failed before a complete reply arrived: check that the URL is right and the endpoint is reachable"
    )]
    Transport {
        /// The provider id.
        provider: String,
        /// Login or refresh.
        request: RequestKind,
        /// The token endpoint.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: Arc<reqwest::Error>,
    },

    /// The reply body was larger than the limit; reading stopped there.
    #[error(
        "provider `{provider}`: the {request} reply from {url} is larger than {limit} bytes, too large for a token reply: check that login.url points at the token endpoint"
    )]
    ResponseTooLarge {
        /// The provider id.
        provider: String,
        /// Login or refresh.
        request: RequestKind,
        /// The token endpoint.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },

    /// The body of a successful (2xx) reply is not JSON.
    ///
    /// The body is never quoted, not even scrubbed: a successful login reply
    /// holds the new token, in whatever shape (XML, single-quoted JSON) the
    /// endpoint chose, and no scrubber can know it. The message says the
    /// reply's media type and size instead.
    #[error("{}", not_json_message(provider, *request, url, reason, content_type.as_deref(), *length))]
    NotJson {
        /// The provider id.
        provider: String,
        /// Login or refresh.
        request: RequestKind,
        /// The token endpoint.
        url: String,
        /// What the JSON parser said (position and kind, no content).
        reason: String,
        /// The media type of the reply's `Content-Type` (`type/subtype`,
        /// lower case, without parameters), when it had a well-formed one.
        content_type: Option<String>,
        /// The size of the body in bytes.
        length: usize,
    },

    /// The reply has nothing at the configured pointer.
    #[error(
        "provider `{provider}`: the {request} reply has no value at `{pointer}` (response.{field}); it has the keys [{keys}]: point response.{field} at the right key"
    )]
    MissingField {
        /// The provider id.
        provider: String,
        /// Login or refresh.
        request: RequestKind,
        /// The `[response]` key (`access_token`, `refresh_token`, ...).
        field: &'static str,
        /// The JSON pointer.
        pointer: String,
        /// The top-level keys the reply does have (names only, no values).
        keys: String,
    },

    /// The value at a configured pointer has the wrong JSON type.
    #[error(
        "provider `{provider}`: the {request} reply's `{pointer}` (response.{field}) is {found}, expected {expected}: point response.{field} at the right key"
    )]
    WrongType {
        /// The provider id.
        provider: String,
        /// Login or refresh.
        request: RequestKind,
        /// The `[response]` key.
        field: &'static str,
        /// The JSON pointer.
        pointer: String,
        /// What was expected ("a string", "a number of seconds").
        expected: &'static str,
        /// What was found ("a number", "null", ...).
        found: &'static str,
    },

    /// The expiry in the reply is unusable (negative, zero, absurdly far
    /// away, in the past, unparsable).
    #[error("provider `{provider}`: the {request} reply's expiry is unusable: {reason}")]
    InvalidExpiry {
        /// The provider id.
        provider: String,
        /// Login or refresh.
        request: RequestKind,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The reply carries no expiry and no `ttl` is configured.
    #[error(
        "provider `{provider}`: the {request} reply says nothing about when the token expires and no ttl is configured: set [providers.{provider}.expiry] ttl = \"...\" to the documented lifetime"
    )]
    NoExpiry {
        /// The provider id.
        provider: String,
        /// Login or refresh.
        request: RequestKind,
    },

    /// The refresh token was rejected and `refresh.on_error.action` is `fail`.
    #[error(
        "provider `{provider}`, connection `{connection}`: the refresh token was rejected (HTTP {}) and refresh.on_error.action is \"fail\": obtain a new refresh token and put it in the token store", status.as_u16()
    )]
    RefreshRejected {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// The HTTP status of the rejection.
        status: StatusCode,
    },

    /// The provider only refreshes (no `[login]`) and the store holds no
    /// refresh token for this connection.
    #[error(
        "provider `{provider}`, connection `{connection}`: no refresh token is stored and the provider has no [login] to get one: put a refresh token in the token store for this connection (`tokenauth store put {provider} --connection {connection}` reads one from stdin), or start it from an input with refresh.seed"
    )]
    NoRefreshToken {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
    },

    /// The device authorization grant (RFC 8628) did not end with a
    /// token: the person denied it (`access_denied`), the device code
    /// expired (`expired_token`, or `expires_in` passed while polling), or
    /// the provider has no `[device]` table. Nothing was stored.
    #[error("provider `{provider}`, connection `{connection}`: {reason}")]
    Device {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// Why.
        reason: DeviceFailure,
    },

    /// The device authorization reply lacks a value the grant needs, or
    /// has one of the wrong type (a code that is not a string, a lifetime
    /// that is not a positive number).
    #[error(
        "provider `{provider}`: the device authorization reply has no usable value at `{pointer}` (device.reply.{key}); it has the keys [{keys}]: point device.reply.{key} at the right key"
    )]
    DeviceReply {
        /// The provider id.
        provider: String,
        /// The `[device.reply]` key.
        key: &'static str,
        /// The JSON pointer.
        pointer: String,
        /// The top-level keys the reply does have (names only).
        keys: String,
    },

    /// The token store failed.
    #[error(
        "provider `{provider}`, connection `{connection}`: the token store could not {action} (the cause, this error's source, says what failed and how to fix it)"
    )]
    Store {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// What the engine asked of the store, e.g. "load the refresh token".
        action: &'static str,
        /// The store's error: what failed and how to fix it.
        #[source]
        source: Arc<crate::store::StoreError>,
    },

    /// The shared token store could not be reached (or did not answer within
    /// the store timeout), and the provider rotates its refresh tokens:
    /// fetching without the store could spend a refresh token that another
    /// process holds too. Tokens already cached stay in use while valid.
    #[error(
        "provider `{provider}`, connection `{connection}`: the token store is unavailable and the provider rotates its refresh tokens (refresh.rotate = true), so no token is fetched without it: a refresh token used by two processes is revoked. Cached tokens stay in use while valid; bring the store back, or allow fetching without it with TokenAuthBuilder::local_fallback(true) (the cause, this error's source, says what failed)"
    )]
    StoreUnavailable {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// The store's error.
        #[source]
        source: Arc<crate::store::StoreError>,
    },

    /// Another process that shares the token store failed to get a token
    /// for this connection a moment ago; no process asks again before the
    /// shared backoff ends.
    #[error(
        "provider `{provider}`, connection `{connection}`: another process's token request failed ({reason}); no process sharing the token store tries again for {}", humantime::format_duration(*retry_in)
    )]
    BackedOff {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// What failed, as that process's error said it (never a secret).
        reason: String,
        /// How long the backoff still runs (whole milliseconds).
        retry_in: Duration,
    },

    /// Another process has held the connection's token lease for longer than
    /// this one waits (the lease's maximum hold plus its time to live) without
    /// publishing a token. This process never fetches without the lease.
    #[error(
        "provider `{provider}`, connection `{connection}`: waited {} for another process to fetch the token, and it still holds the token lease: that process may be stuck on a slow token endpoint; its lease ends by itself, and the next call tries again", humantime::format_duration(*waited)
    )]
    LeaseWait {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// How long this call waited (whole milliseconds).
        waited: Duration,
    },

    /// The token lease could not be kept while the token request ran (the
    /// store did not renew it in time, another process took it over, or the
    /// request outlasted the maximum hold), so the request was abandoned
    /// before the lease ran out: two processes never use one refresh token.
    #[error(
        "provider `{provider}`, connection `{connection}`: the token request was abandoned because this process could not keep the token lease ({reason}): no two processes may fetch at once; the next call tries again"
    )]
    LeaseLost {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// Why, in a few words.
        reason: &'static str,
    },

    /// The default HTTP client could not be built.
    #[error(
        "the HTTP client for token requests could not be built: pass one with TokenAuthBuilder::http_client"
    )]
    HttpClient(#[source] Arc<reqwest::Error>),

    /// The token request task ended without a result (it panicked or the
    /// runtime shut down).
    #[error(
        "provider `{provider}`: the token request was aborted (the runtime is shutting down or the task panicked): try again"
    )]
    Aborted {
        /// The provider id.
        provider: String,
    },

    /// `tokenauth-core` was built without a TLS backend, and a provider
    /// uses `https`.
    #[error(
        "provider `{provider}` uses https, but tokenauth was built without a TLS backend: enable one of the features rustls-aws-lc (the default), rustls-ring or native-tls of tokenauth (or tokenauth-core)"
    )]
    NoTls {
        /// The first provider that needs TLS.
        provider: String,
    },

    /// The HTTP client followed a redirect out of the provider's `api`
    /// prefixes with the credential still attached (a custom header, a query
    /// parameter that goes along in `Referer`, or `Authorization` to the
    /// same origin). The response is withheld so that the mistake is seen.
    #[error(
        "provider `{provider}`: the HTTP client followed a redirect out of the provider's api prefixes to {to} and may have carried the credential ({credential}) there: build the client with tokenauth's scoped redirects (`reqwest::Client::builder().scoped_to(&auth)`, tokenauth_reqwest::ClientBuilderExt) or with redirect::Policy::none()"
    )]
    RedirectLeftScope {
        /// The provider id.
        provider: String,
        /// The origin (scheme, host, port) the client was redirected to.
        to: String,
        /// What may have gone along: "the `X-Api-Key` header", ...
        credential: String,
    },

    /// The request URI could not take its resolved path (dot segments
    /// removed) or the credential's query parameter. The request was not
    /// sent.
    #[error(
        "provider `{provider}`: the request URI could not take its resolved path or the credential's query parameter ({source}); the request was not sent: check the request's path and query"
    )]
    RequestUri {
        /// The provider id.
        provider: String,
        /// Why the URI was invalid.
        #[source]
        source: Arc<http::Error>,
    },

    /// An authorization (the authorization-code grant) could not be
    /// started or completed; nothing was exchanged or stored.
    #[error("provider `{provider}`, connection `{connection}`: {failure}")]
    Authorization {
        /// The provider id.
        provider: String,
        /// The connection id.
        connection: String,
        /// Why.
        failure: crate::authorize::AuthorizationFailure,
    },

    /// The operating system's random number generator failed (for a
    /// state or PKCE verifier).
    #[error("the operating system's random number generator failed: {reason}")]
    Random {
        /// What it reported.
        reason: String,
    },
}

impl Error {
    /// The HTTP status of a token endpoint reply, for [`Error::Status`] and
    /// [`Error::RefreshRejected`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status { status, .. } | Error::RefreshRejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The provider id the error is about, if any.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Error::Config(_) | Error::HttpClient(_) | Error::Random { .. } => None,
            Error::UnknownProvider { provider }
            | Error::MissingInput { provider, .. }
            | Error::AssertionKey { provider, .. }
            | Error::InvalidInput { provider, .. }
            | Error::ApiBase { provider, .. }
            | Error::OutsideApiBase { provider, .. }
            | Error::OutsideConnectionPrefixes { provider, .. }
            | Error::InvalidHeaderValue { provider, .. }
            | Error::Status { provider, .. }
            | Error::Timeout { provider, .. }
            | Error::Transport { provider, .. }
            | Error::ResponseTooLarge { provider, .. }
            | Error::NotJson { provider, .. }
            | Error::MissingField { provider, .. }
            | Error::WrongType { provider, .. }
            | Error::InvalidExpiry { provider, .. }
            | Error::NoExpiry { provider, .. }
            | Error::RefreshRejected { provider, .. }
            | Error::NoRefreshToken { provider, .. }
            | Error::Device { provider, .. }
            | Error::DeviceReply { provider, .. }
            | Error::Store { provider, .. }
            | Error::StoreUnavailable { provider, .. }
            | Error::BackedOff { provider, .. }
            | Error::LeaseWait { provider, .. }
            | Error::LeaseLost { provider, .. }
            | Error::Aborted { provider }
            | Error::NoTls { provider }
            | Error::RedirectLeftScope { provider, .. }
            | Error::RequestUri { provider, .. }
            | Error::Authorization { provider, .. } => Some(provider),
        }
    }

    /// How long to wait before asking again: the `Retry-After` the endpoint
    /// asked for, or what is left of a shared backoff ([`Error::BackedOff`]).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            Error::BackedOff { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }
}

fn missing_input_message(
    provider: &str,
    connection: &str,
    input: &str,
    env: Option<&str>,
) -> String {
    match env {
        Some(env) if connection == crate::connection::DEFAULT_CONNECTION => format!(
            "provider `{provider}`: input `{input}` has no value: set the environment variable {env} (the default connection reads it from there)"
        ),
        Some(env) => format!(
            "provider `{provider}`, connection `{connection}`: input `{input}` has no value: supply it with Connection::with_input(\"{input}\", ...) (or with_secret); only the default connection reads {env}"
        ),
        None => format!(
            "provider `{provider}`, connection `{connection}`: input `{input}` has no value: supply it with Connection::with_input(\"{input}\", ...) (or with_secret), or give the input an `env` or `default` in the description"
        ),
    }
}

fn not_json_message(
    provider: &str,
    request: RequestKind,
    url: &str,
    reason: &str,
    content_type: Option<&str>,
    length: usize,
) -> String {
    let unit = if length == 1 { "byte" } else { "bytes" };
    let what = match content_type {
        Some(t) => format!("it is `{t}`, {length} {unit}"),
        None => format!("it has no usable Content-Type and is {length} {unit}"),
    };
    format!(
        "provider `{provider}`: the {request} reply from {url} is not JSON ({reason}): {what} (not shown: it may hold a token): check that {request}.url points at the token endpoint, and that the endpoint is asked for JSON"
    )
}

fn status_message(
    provider: &str,
    request: RequestKind,
    url: &str,
    status: u16,
    body: &str,
) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let hint = match status {
        300..=399 => {
            "token requests never follow redirects, so credentials cannot leak elsewhere: set the url to the endpoint's final address"
        }
        400 | 401 | 403 => "check the credentials (the inputs) and the request fields",
        404 | 405 => "check the url and method of the token request",
        429 | 503 => {
            "the endpoint is throttling or unavailable: requests are backed off, try again later"
        }
        500..=599 => "the endpoint failed: requests are retried with backoff",
        _ => "check the token request in the description",
    };
    let body = if body.is_empty() {
        "(empty body)"
    } else {
        body
    };
    format!(
        "provider `{provider}`: the {request} request to {url} got HTTP {status} {reason}: {hint}; the reply starts with: {body}"
    )
}
