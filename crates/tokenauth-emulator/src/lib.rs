//! # tokenauth-emulator
//!
//! The three seed providers — REOBtimaal, 2BA and BRO — on loopback, quirks
//! included, with counters, recorded token requests (and API requests, when
//! [`EmulatorConfig::record_api_requests`] asks for them: what a proxy or
//! middleware really sent) and fault injection. It
//! is the fixture that checks `tokenauth-core`, so it shares no code with it.
//!
//! - [Example](#example)
//! - [Hosts, URLs and routing](#hosts-urls-and-routing)
//! - [Behaviour per provider](#behaviour-per-provider)
//! - [Accounts](#accounts)
//! - [Faults](#faults)
//! - [Control API over HTTP](#control-api-over-http)
//! - [TLS with the real host names](#tls-with-the-real-host-names)
//! - [The binary](#the-binary)
//!
//! ## Example
//!
//! ```
//! use tokenauth_emulator::{Emulator, EmulatorConfig, Host, Provider, REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = Emulator::start(EmulatorConfig::default()).await?;
//! let client = reqwest::Client::new();
//!
//! // REOBtimaal: `grant-type` with a hyphen, `Password` with a capital P.
//! let reply: serde_json::Value = client
//!     .post(emulator.url(Host::Reobtimaal, "/api/Token"))
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body(format!("grant-type=password&username={REOB_DEMO_USERNAME}&Password={REOB_DEMO_PASSWORD}"))
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! let token = reply["access_token"].as_str().unwrap_or_default();
//!
//! let api = client
//!     .get(emulator.url(Host::Reobtimaal, "/api/v1/projecten"))
//!     .header("authorization", format!("bearer {token}"))
//!     .send()
//!     .await?;
//! assert_eq!(api.status(), 200);
//! assert_eq!(emulator.stats().reobtimaal.token.requests_by_grant.password, 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## Hosts, URLs and routing
//!
//! | real host ([`Host`]) | path prefix on `127.0.0.1:PORT` | endpoints |
//! |---|---|---|
//! | `api.reobtimaal-diensten.nl` ([`Host::Reobtimaal`]) | `/reobtimaal` | `POST /api/Token`; API: any other `/api/...` |
//! | `authorize.2ba.nl` ([`Host::TwobaAuthorize`]) | `/2ba-authorize` | `POST /OAuth/Token`; `GET`/`POST /OAuth/Authorize` |
//! | `api.2ba.nl` ([`Host::Twoba`]) | `/2ba` | API: `/1/json/...` |
//! | `www.bronhouderportaal-bro.nl` ([`Host::Bro`]) | `/bro` | API: `/api/v2/...` (e.g. `POST /api/v2/validatie`, `GET /api/v2/leveringen/{id}`) |
//!
//! A request whose `Host` header names one of the real hosts is routed to it
//! (that is how the TLS listener serves the unchanged `https://` URLs);
//! otherwise the first path segment selects the host and is stripped:
//! `http://127.0.0.1:PORT/reobtimaal/api/Token`,
//! `http://127.0.0.1:PORT/2ba-authorize/OAuth/Token`,
//! `http://127.0.0.1:PORT/2ba/1/json/Product/DetailsForProduct`,
//! `http://127.0.0.1:PORT/bro/api/v2/validatie`.
//! [`Emulator::url`] builds these; [`Emulator::real_url`] the `https://` ones.
//! Endpoint paths below the host are matched ASCII case-insensitively (as
//! ASP.NET does); anything
//! else is 404.
//!
//! ## Behaviour per provider
//!
//! **REOBtimaal** (`POST /api/Token`): only `application/x-www-form-urlencoded`
//! with `grant-type=password`, `username`, `Password` (field names
//! case-sensitive; extra fields are ignored). A missing `grant-type` (e.g.
//! `grant_type` sent instead), another value, or another content type ->
//! 400 `{"error":"unsupported_grant_type"}`. `password` instead of `Password`,
//! or wrong credentials -> 400
//! `{"error":"invalid_grant","error_description":"The user name or password is incorrect."}`.
//! Success: 200 `{"access_token":"…"}` and nothing else; the token lives 60
//! minutes ([`EmulatorConfig::reob_token_lifetime`]). API: `Authorization:
//! bearer <token>` (scheme case-insensitive) -> 200
//! `{"user":"reob-demo","provider":"reobtimaal","method":"GET","path":"/api/v1/projecten","body_bytes":0}`;
//! missing, unknown, expired or revoked token -> 401
//! `{"Message":"Authorization has been denied for this request."}` with
//! `WWW-Authenticate: Bearer`; a valid token of a user without the admin
//! right on `/api/v1/beheer/...` -> 403.
//!
//! **2BA** (`POST /OAuth/Token`, form): client first — `client_id` +
//! `client_secret` in the form must match, else 400 `{"error":"invalid_client"}`.
//! Then `grant_type=password` (`username`, `password`; wrong -> 400
//! `invalid_grant` with description) or `grant_type=refresh_token`
//! (`refresh_token`). Success: 200
//! `{"access_token":"…","token_type":"bearer","expires_in":120,"refresh_token":"…"}`
//! (`expires_in`: the access lifetime in whole seconds). Every refresh token
//! is single-use and rotates: a refresh returns a new one and uses up the old.
//! A used (counted in `refresh_reuse`), unknown, expired, revoked or
//! other-client refresh token -> 400 `{"error":"invalid_grant"}`;
//! any other grant -> 400 `{"error":"unsupported_grant_type"}`. API: bearer
//! token as for REOBtimaal.
//!
//! 2BA's **authorization code** (RFC 6749 §4.1): `GET /OAuth/Authorize`
//! with `response_type=code`, a known `client_id`, an http(s)
//! `redirect_uri`, optional `state` and PKCE `code_challenge` (+
//! `code_challenge_method` `S256` or `plain`) shows a consent page (a bad
//! request: 400 page). `POST` to the same URL with the form `username`,
//! `password`, `consent=allow` -> 302 to `redirect_uri?code=…&state=…`;
//! `consent=deny` -> 302 to `redirect_uri?error=access_denied&state=…`;
//! wrong credentials show the page again. `grant_type=authorization_code`
//! (`code`, `redirect_uri`, `code_verifier` when a challenge was sent, and
//! the client as for every grant) issues tokens as the password grant does
//! (counted as `other` in `requests_by_grant`). A code lives 60 s and is
//! spent by its first use; a reused, unknown, expired or other-client code,
//! another `redirect_uri` than the authorization request's, or a missing
//! or wrong verifier -> 400 `invalid_grant`.
//!
//! **BRO**: no token endpoint. `Authorization: Basic base64(username:password)`,
//! split at the first `:` (the username holds `|`), must match a BRO token;
//! else 401 with `WWW-Authenticate: Basic realm="bronhouderportaal"`.
//!
//! Access tokens are opaque 40-character alphanumerics (or JWT-shaped with
//! `exp`, see [`EmulatorConfig::jwt_access_tokens`]), unique, and tied to
//! their user: API replies carry `"user"`.
//!
//! ## Accounts
//!
//! Defaults ([`EmulatorConfig::default`]), all fake:
//!
//! | provider | username | password |
//! |---|---|---|
//! | REOBtimaal | [`REOB_DEMO_USERNAME`] `reob-demo` | [`REOB_DEMO_PASSWORD`] `reob-demo-password` |
//! | REOBtimaal, admin | [`REOB_ADMIN_USERNAME`] `reob-admin` | [`REOB_ADMIN_PASSWORD`] `reob-admin-password` |
//! | 2BA user | [`TWOBA_DEMO_USERNAME`] `demo@2ba.example` | [`TWOBA_DEMO_PASSWORD`] `2ba-demo-password` |
//! | 2BA client | [`TWOBA_DEMO_CLIENT_ID`] `tokenauth-demo` | [`TWOBA_DEMO_CLIENT_SECRET`] `2ba-demo-client-secret` |
//! | BRO | [`BRO_DEMO_USERNAME`] `0dce6fc98256\|123456789\|1234` | [`BRO_DEMO_PASSWORD`] (64 hex) |
//!
//! Tenant accounts for load tests ([`tenant_username`], [`tenant_password`]):
//! REOBtimaal and 2BA accept any `tenant-<N>` / `tenant-<N>-secret` (2BA
//! with the default client), BRO any `tenant-<N>|bro` / `tenant-<N>-token`.
//!
//! ## Documented reply shapes
//!
//! Besides the seed providers, three reply shapes real providers use
//! ([`Shape`], each under its own path prefix): an OpenStack Keystone login
//! with a nested JSON body and the token in the `X-Subject-Token` header
//! (`/keystone`), a cookie-session login replying `Set-Cookie` with an HTML
//! or empty body (`/session`), and a JSON login whose `expires_in` is in
//! milliseconds (`/millis`). Each has an API that takes its token the way
//! the provider does (`X-Auth-Token`, `Cookie`, `Authorization: Bearer`).
//! [`Emulator::shape_url`] builds the URLs, [`Emulator::shape_stats`]
//! counts. Accounts: [`KEYSTONE_USERNAME`] / [`KEYSTONE_PASSWORD`] in domain
//! [`KEYSTONE_DOMAIN`], [`SESSION_USERNAME`] / [`SESSION_PASSWORD`],
//! [`MILLIS_CLIENT_ID`] / [`MILLIS_CLIENT_SECRET`].
//!
//! | shape | path prefix | token endpoint | reply | API (any other path) |
//! |---|---|---|---|---|
//! | [`Shape::Keystone`] | `/keystone` | `POST /v3/auth/tokens`, JSON `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name","domain":{"id":"default"},"password"}}}}}` | 201, token in `X-Subject-Token`, body `{"token":{"expires_at":"…RFC 3339…",…}}` | `X-Auth-Token: <token>` |
//! | [`Shape::Session`] | `/session` | `POST /login`, form or JSON `{user, pass}` | 200 `text/html` (or 204 with [`Emulator::set_session_empty_body`](crate::Emulator::set_session_empty_body)), `Set-Cookie: SESSION=…; Path=/; HttpOnly` (after a `theme` cookie) | `Cookie: …SESSION=<token>…` |
//! | [`Shape::Millis`] | `/millis` | `POST /oauth/token`, JSON `{client_id, client_secret}` | 200 `{"access_token","expires_in"}`, `expires_in` in **milliseconds** | `Authorization: Bearer <token>` |
//!
//! Wrong credentials: 401 (Keystone's JSON error, an HTML page, or
//! `{"error":"invalid_client"}`); a missing, unknown or expired token on the
//! API: 401. Success on the API: 200 `{"user":…,"shape":…,"path":…}`.
//! Each token lives [`Emulator::set_shape_token_lifetime`](crate::Emulator::set_shape_token_lifetime)
//! (default one hour). Counters: [`Emulator::shape_stats`](crate::Emulator::shape_stats).
//!
//! ## Device authorization grant
//!
//! A fixture provider for RFC 8628 under `/device`
//! ([`Emulator::device_url`](crate::Emulator::device_url)):
//! `POST /oauth/device/code` (form `client_id` =
//! [`DEVICE_CLIENT_ID`], optional `scope`) issues `device_code`,
//! `user_code`, `verification_uri(_complete)`, `expires_in` and `interval`;
//! `POST /oauth/token` answers the polls (`grant_type` =
//! [`DEVICE_GRANT`], `device_code`, `client_id`) with
//! `authorization_pending` until the code is approved, `slow_down` for a
//! poll sooner than the interval or once when armed
//! ([`Emulator::device_slow_down_once`](crate::Emulator::device_slow_down_once);
//! the code's interval grows by 5 s), `access_denied` after a denial,
//! `expired_token` after `expires_in`, and then an access token (1 h) and a
//! single-use, rotating refresh token (`grant_type=refresh_token` on the
//! same endpoint). A test plays the person with `POST /device/approve` or
//! `POST /device/deny` (form `user_code`) or
//! [`Emulator::device_decide`](crate::Emulator::device_decide). The API is
//! `GET /device/api/...` with `Authorization: Bearer <token>`. Knobs:
//! [`Emulator::set_device_interval`](crate::Emulator::set_device_interval)
//! (5 s; sub-second ones are sent as fractions),
//! [`Emulator::set_device_code_lifetime`](crate::Emulator::set_device_code_lifetime)
//! (10 min). Time is tokio's, so a paused test runtime drives it; the poll
//! log ([`Emulator::device_stats`](crate::Emulator::device_stats)) proves
//! the schedule.
//!
//! ## Faults
//!
//! Per provider, for its token endpoint, from Rust or over HTTP
//! ([`FaultUpdate`]): fixed or random latency ([`Emulator::set_token_latency`],
//! [`Emulator::set_token_latency_range`]); a status for the next K requests,
//! optionally with `Retry-After` ([`Emulator::fail_token_requests`],
//! [`StatusFault`]); a damaged reply for the next K successful requests
//! ([`Emulator::set_reply_fault`], [`ReplyFault`]: malformed JSON, truncated
//! body, oversized body, missing token, token of the wrong type, `expires_in`
//! override, connection closed without reply); token lifetimes; JWT tokens;
//! revocation ([`Emulator::revoke_all`]); revocation of a user's earlier
//! access tokens whenever a new one is issued, answered `403`
//! ([`Emulator::set_revoke_on_reissue`], Django OAuth Toolkit's rotation); and a global API latency
//! ([`Emulator::set_api_latency`]).
//!
//! ## Control API over HTTP
//!
//! On both listeners, on any host, at the root (`/_emulator/...`):
//!
//! | request | reply |
//! |---|---|
//! | `GET /_emulator/stats` | [`Stats`] as JSON |
//! | `GET /_emulator/requests` | array of [`RecordedRequest`], oldest first |
//! | `GET /_emulator/faults` | `{"reobtimaal": ProviderKnobs, "twoba": …, "bro": …, "api_latency_ms": 0.0}` ([`ProviderKnobs`]) |
//! | `POST /_emulator/faults` with a [`FaultUpdate`] | the knobs as for `GET`; 400 `{"error": "…"}` if invalid |
//! | `POST /_emulator/revoke`, body empty, `{"provider": "twoba"}` or `{"bro_username": "…"}` | `{"revoked": …}` |
//! | `POST /_emulator/reset` | `{"reset":true}` (as [`Emulator::reset`]) |
//! | `POST /_emulator/reset_stats` | `{"reset_stats":true}` |
//! | `POST /_emulator/clear_requests` | `{"clear_requests":true}` |
//!
//! Control requests are not counted.
//!
//! ## TLS with the real host names
//!
//! With [`EmulatorConfig::tls`] on, a second listener speaks HTTPS
//! (HTTP/1.1) with a certificate from a CA generated at start, valid for the
//! four host names, `localhost` and `127.0.0.1`. Point a reqwest 0.13 client
//! at it and the unchanged real URLs reach the emulator:
//!
//! ```
//! use tokenauth_emulator::{Emulator, EmulatorConfig, Host};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = Emulator::start(EmulatorConfig::default().tls(true)).await?;
//! let ca = reqwest::Certificate::from_pem(emulator.ca_cert_pem().unwrap_or_default().as_bytes())?;
//! // reqwest 0.13: `tls_certs_only` (trust only these roots) or
//! // `tls_certs_merge` (add to the platform roots); `add_root_certificate`
//! // is deprecated.
//! let mut builder = reqwest::Client::builder().tls_certs_only([ca]);
//! for (host, addr) in emulator.host_overrides() {
//!     builder = builder.resolve(host, addr);
//! }
//! let client = builder.build()?;
//! // The real URL, unchanged: https://authorize.2ba.nl/OAuth/Token
//! let reply = client
//!     .post(Emulator::real_url(Host::TwobaAuthorize, "/OAuth/Token"))
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body("grant_type=password")
//!     .send()
//!     .await?;
//! assert_eq!(reply.status(), 400); // no client credentials: invalid_client
//! # Ok(())
//! # }
//! ```
//!
//! ## The binary
//!
//! `tokenauth-emulator --port 0 [--tls-port 0]` prints its addresses, the
//! URL forms, the CA (with TLS) and the default accounts, and runs until
//! Ctrl-C.
//!
//! ## Concurrency
//!
//! The API path (a request with a valid token) takes no global lock: tokens
//! live in a sharded map of read-write locks and all counters are atomics.
//! The token endpoint takes short-lived mutexes. All [`Emulator`] methods
//! are synchronous and safe to call from any thread while requests run.

mod authorize;
mod body;
mod config;
mod device;
pub mod documented;
mod faults;
mod handler;
mod host;
pub mod jwt_bearer;
mod server;
mod shapes;
mod state;
mod stats;
mod tls;

pub use config::{
    Account, BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, DEMO_ENV, EmulatorConfig, REOB_ADMIN_PASSWORD,
    REOB_ADMIN_USERNAME, REOB_DEMO_PASSWORD, REOB_DEMO_USERNAME, TWOBA_DEMO_CLIENT_ID,
    TWOBA_DEMO_CLIENT_SECRET, TWOBA_DEMO_PASSWORD, TWOBA_DEMO_USERNAME, tenant_password,
    tenant_username,
};
pub use device::{
    DEVICE_CLIENT_ID, DEVICE_GRANT, DEVICE_PREFIX, DEVICE_USER, DeviceCodeState, DeviceStats,
};
pub use faults::{
    DEFAULT_OVERSIZED_BYTES, FaultUpdate, Latency, LatencyMs, ProviderKnobs, ReplyFault,
    ReplyFaultSpec, StatusFault,
};
pub use host::{BRO_HOST, Host, Provider, REOBTIMAAL_HOST, TWOBA_API_HOST, TWOBA_AUTHORIZE_HOST};
pub use server::Emulator;
pub use shapes::{
    KEYSTONE_DOMAIN, KEYSTONE_PASSWORD, KEYSTONE_USERNAME, MILLIS_CLIENT_ID, MILLIS_CLIENT_SECRET,
    SESSION_COOKIE, SESSION_PASSWORD, SESSION_USERNAME, Shape, ShapeStats,
};
pub use state::RecordedRequest;
pub use stats::{ApiStats, GrantCounts, ProviderStats, Stats, TokenStats};

#[cfg(test)]
mod tests {
    #[test]
    fn handle_and_snapshots_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::Emulator>();
        check::<crate::Stats>();
        check::<crate::RecordedRequest>();
    }
}
