//! Acquisition: turning a provider description and a connection into a token.
//!
//! - The login or refresh request is built from the description exactly:
//!   form (`application/x-www-form-urlencoded`, field names as written, in
//!   file order) or JSON body (nested as written), extra headers, client Basic auth, timeout.
//! - It is sent with the engine's `reqwest::Client`; token requests never
//!   follow redirects (the default client is built with
//!   `redirect::Policy::none()`, and a reply from another URL is refused).
//! - 5xx, 429 and transport failures are retried a bounded number of times
//!   with exponential backoff and jitter; a `Retry-After` is honoured when it
//!   is short enough, otherwise the error is returned at once (and the engine
//!   backs off for that long). Both of its forms are read: seconds, and an
//!   HTTP-date, taken relative to the engine's clock (a date in the past
//!   means now).
//! - The reply is read in chunks and abandoned past 1 MiB; the token,
//!   refresh token and expiry are read from the `[response]` sources: JSON
//!   pointers into the body (which must then be JSON), reply headers, or
//!   cookies of its `Set-Cookie` headers (only those headers are kept).
//!   Expiry precedence: `expires_at`, `expires_in`, JWT `exp` (when
//!   `expiry.jwt_exp`), `ttl`. A lifetime shorter than one second is
//!   raised to that floor (so no reply can turn the cache into a login per
//!   call), counted in `Stats::clamped_lifetimes` and logged at WARN once
//!   per provider; a token expired on arrival is an error. Times are
//!   computed with checked arithmetic: an overflow is an `InvalidExpiry`.
//! - Refresh tokens: a held refresh token (from the [`TokenStore`]) is used
//!   before logging in. When the refresh fails the way `refresh.on_error`
//!   describes, the dead token is removed from the store with a
//!   compare-and-set ([`TokenStore::cas_refresh`]): if another worker has
//!   rotated it meanwhile, nothing is removed and the refresh is tried once
//!   with that worker's token; otherwise the engine logs in
//!   (`action = "login"`) or fails (`"fail"`). A new or rotated refresh token
//!   is stored before the access token is handed out, again by
//!   compare-and-set against the token that was used: a worker that lost a
//!   race never overwrites or deletes the winner's token.

mod assertion;
pub(crate) mod device;
mod parse;
mod preview;
pub(crate) mod scrub;

pub use preview::{RequestPreview, preview_injection, preview_token_request};

use std::time::{Duration, Instant, SystemTime};

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, SET_COOKIE};
use http::{HeaderMap, HeaderName, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tracing::{debug, error, warn};

use crate::clock::Clock;
use crate::config::{
    BodyFormat, FieldValue, Provider, Refresh, RefreshErrorAction, RefreshOnError, Response,
    TokenRequest, TokenSource,
};
use crate::connection::Connection;
use crate::error::{Error, RequestKind};
use crate::store::{CasOutcome, StoreKey, TokenStore};
use crate::template::{Template, Var};

use scrub::Scrubber;

/// The largest token reply read: 1 MiB.
pub(crate) const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// Bounded retries inside one acquisition.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) max_retries: u32,
    /// The first backoff; doubles per retry.
    pub(crate) base: Duration,
    /// The longest backoff, and the longest `Retry-After` waited for.
    pub(crate) max: Duration,
}

impl RetryPolicy {
    /// Backoff before retry number `retry` (0-based): exponential, capped,
    /// with "equal jitter" (between half and all of it).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        backoff(self.base, self.max, retry)
    }
}

/// `base * 2^n`, capped at `max`, then jittered into `[d/2, d]`.
pub(crate) fn backoff(base: Duration, max: Duration, n: u32) -> Duration {
    let d = base
        .saturating_mul(1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX))
        .min(max);
    let half = d / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Counters the acquisition bumps (owned by the engine).
pub(crate) trait Counters: Sync {
    fn token_request(&self);
    fn login(&self);
    fn refresh(&self);
    /// A reply's token lifetime was raised to [`parse::MIN_LIFETIME`]. Returns true
    /// the first time this happens for `provider` in this engine (the caller
    /// then logs it at WARN).
    fn clamped_lifetime(&self, provider: &str) -> bool;
}

/// A token, acquired.
pub(crate) struct Acquired {
    pub(crate) access: SecretString,
    pub(crate) expires_at: SystemTime,
    /// The prefix the reply's `response.api_base` bound the connection to.
    pub(crate) api_base: Option<url::Url>,
    pub(crate) kind: RequestKind,
}

/// Everything one acquisition needs.
pub(crate) struct Acquirer<'a> {
    pub(crate) provider: &'a Provider,
    pub(crate) conn: &'a Connection,
    pub(crate) client: &'a reqwest::Client,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) store: &'a dyn TokenStore,
    /// The longest a store call may take (then it is an `Unavailable` error).
    pub(crate) store_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) counters: &'a dyn Counters,
    /// Form fields the engine adds to every request of this acquisition
    /// (the code exchange's `code`, `code_verifier`, ...), unless the
    /// description names them; secrets, scrubbed from errors.
    pub(crate) extra_fields: &'a [(&'static str, SecretString)],
}

/// A complete reply (any status).
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    /// The headers `[response]` reads (see [`kept_headers`]), moved out of
    /// the reply, never copied.
    headers: HeaderMap,
    /// The names of the reply's headers, at most [`MAX_HEADER_NAMES`], kept
    /// only when a header or cookie source may need them in a message.
    header_names: Vec<HeaderName>,
    retry_after: Option<Duration>,
    /// The media type of `Content-Type`, sanitised (see [`media_type`]).
    content_type: Option<String>,
    /// The JWT the request sent (`{{ assertion }}`), for the scrubber.
    assertion: Option<SecretString>,
}

/// Why a refresh failed.
enum RefreshFailure {
    /// The refresh token is dead (`refresh.on_error` matched).
    Dead { status: StatusCode },
    /// Anything else: retried later with backoff.
    Other(Error),
}

impl From<Error> for RefreshFailure {
    fn from(e: Error) -> Self {
        RefreshFailure::Other(e)
    }
}

impl Acquirer<'_> {
    fn key(&self) -> StoreKey<'_> {
        StoreKey {
            provider: &self.provider.id,
            connection: self.conn.id(),
        }
    }

    fn store_error(&self, action: &'static str, e: crate::store::StoreError) -> Error {
        Error::Store {
            provider: self.provider.id.clone(),
            connection: self.conn.id().to_owned(),
            action,
            source: std::sync::Arc::new(e),
        }
    }

    /// The stored refresh token.
    async fn load(&self) -> Result<Option<SecretString>, Error> {
        crate::store::within(self.store_timeout, self.store.read(&self.key()))
            .await
            .map(|state| state.refresh_token)
            .map_err(|e| self.store_error("load the refresh token", e))
    }

    /// Replaces the stored refresh token `used` (the one this acquisition
    /// read, or `None`: none was stored) with `new` (`None`: removes it).
    /// When another worker changed it meanwhile nothing is written, and what
    /// it stored is returned: a token never read here is never overwritten
    /// or deleted here.
    async fn swap_refresh(
        &self,
        used: Option<&SecretString>,
        new: Option<&SecretString>,
    ) -> Result<CasOutcome, Error> {
        let action = if new.is_some() {
            "save the refresh token"
        } else {
            "remove the refresh token"
        };
        let key = self.key();
        let cas = self.store.cas_refresh(&key, used, new);
        crate::store::within(self.store_timeout, cas)
            .await
            .map_err(|e| self.store_error(action, e))
    }

    /// Gets a new access token: refresh when a refresh token is held, else
    /// log in. Persists a new refresh token before returning.
    pub(crate) async fn run(&self) -> Result<Acquired, Error> {
        self.conn.check(self.provider)?;
        let stored = match self.provider.refresh {
            Some(_) => self.load().await?,
            None => None,
        };
        // While the store holds none, a connection may start from its seed
        // (`refresh.seed`): a refresh token that was never stored here, so
        // the one the refresh returns is stored as the first.
        let seed = self.provider.refresh.as_ref().and_then(|r| r.seed.as_ref());
        let (held, mut seeded) = match (stored, seed) {
            (Some(rt), _) => (Some(rt), false),
            (None, Some(seed)) => (Some(SecretString::from(self.render(seed, None)?)), true),
            (None, None) => (None, false),
        };
        if let (Some(refresh), Some(mut rt)) = (&self.provider.refresh, held) {
            // The second try uses a token another worker rotated in.
            for attempt in 0..2 {
                let status = match self.refresh(refresh, &rt).await {
                    Ok(parsed) => {
                        let used = (!seeded).then_some(&rt);
                        return self
                            .finish(parsed, RequestKind::Refresh, used, refresh.rotate)
                            .await;
                    }
                    Err(RefreshFailure::Other(e)) => return Err(e),
                    Err(RefreshFailure::Dead { status }) => status,
                };
                // Forget the dead token, unless another worker sharing the
                // store has replaced it already: then try theirs.
                match self.swap_refresh(Some(&rt), None).await? {
                    CasOutcome::Conflict {
                        current: Some(current),
                    } if attempt == 0 => {
                        debug!(provider = %self.provider.id, connection = %self.conn.id(), "refresh token rejected; retrying with the one in the store");
                        rt = current;
                        seeded = false;
                        continue;
                    }
                    _ => {}
                }
                match (refresh.on_error.action, &self.provider.login) {
                    (RefreshErrorAction::Login, Some(_)) => {
                        warn!(provider = %self.provider.id, connection = %self.conn.id(), status = status.as_u16(), "the stored refresh token was rejected (revoked, expired, or spent by a process that stopped before storing the next one): logging in");
                        break;
                    }
                    _ => {
                        return Err(Error::RefreshRejected {
                            provider: self.provider.id.clone(),
                            connection: self.conn.id().to_owned(),
                            status,
                        });
                    }
                }
            }
        }
        let Some(login) = &self.provider.login else {
            return Err(Error::NoRefreshToken {
                provider: self.provider.id.clone(),
                connection: self.conn.id().to_owned(),
            });
        };
        self.counters.login();
        let reply = self.send(RequestKind::Login, login, None).await?;
        let parsed = self.interpret(RequestKind::Login, &reply, None)?;
        self.finish(parsed, RequestKind::Login, None, false).await
    }

    /// The code exchange (`[authorize.exchange]` with
    /// [`extra_fields`](Self::extra_fields)): the refresh token of the
    /// reply replaces the stored one before the access token is returned.
    /// Unlike a renewal, a refresh token that cannot be stored is an error:
    /// keeping it is the point of the exchange. Nothing is stored when the
    /// exchange fails.
    /// The caller checks the inputs the exchange uses.
    pub(crate) async fn exchange(&self, req: &TokenRequest) -> Result<(Acquired, bool), Error> {
        self.counters.login();
        let reply = self.send(RequestKind::Exchange, req, None).await?;
        let parsed = self.interpret(RequestKind::Exchange, &reply, None)?;
        if let Some(new) = &parsed.refresh {
            // Replaces whatever is stored (a person just consented again);
            // a store changed by another worker in between is read again.
            let mut current = self.load().await?;
            for attempt in 0.. {
                match self.swap_refresh(current.as_ref(), Some(new)).await? {
                    CasOutcome::Conflict { current: now } if attempt < 3 => current = now,
                    CasOutcome::Conflict { .. } => {
                        return Err(self.store_error(
                            "save the refresh token",
                            crate::store::StoreError::new(
                                crate::store::StoreErrorKind::Unavailable,
                                "the stored refresh token kept changing while it was replaced",
                            ),
                        ));
                    }
                    _ => break,
                }
            }
        }
        let stored = parsed.refresh.is_some();
        Ok((
            Acquired {
                access: parsed.access,
                expires_at: parsed.expires_at,
                api_base: parsed.api_base,
                kind: RequestKind::Exchange,
            },
            stored,
        ))
    }

    async fn refresh(
        &self,
        refresh: &Refresh,
        rt: &SecretString,
    ) -> Result<parse::Parsed, RefreshFailure> {
        self.counters.refresh();
        let reply = self
            .send(RequestKind::Refresh, &refresh.request, Some(rt))
            .await?;
        if !reply.status.is_success() && matches_on_error(&refresh.on_error, &reply) {
            return Err(RefreshFailure::Dead {
                status: reply.status,
            });
        }
        Ok(self.interpret(RequestKind::Refresh, &reply, Some(rt))?)
    }

    /// Stores the refresh token that came with the reply (before the access
    /// token is handed out), in place of `used`, and builds the result.
    /// `used` is the refresh token that was sent, `None` for a login (after
    /// which no refresh token is stored: a rejected one was removed).
    async fn finish(
        &self,
        parsed: parse::Parsed,
        kind: RequestKind,
        used: Option<&SecretString>,
        rotate: bool,
    ) -> Result<Acquired, Error> {
        let swapped = match (&parsed.refresh, used) {
            (Some(new), Some(old)) if new.expose_secret() == old.expose_secret() => None,
            (Some(new), _) if self.provider.refresh.is_some() => {
                self.keep_refresh(kind, used, Some(new)).await
            }
            (None, Some(_)) if rotate => {
                warn!(provider = %self.provider.id, connection = %self.conn.id(), "the refresh reply carried no new refresh token although refresh.rotate = true; the next renewal logs in");
                self.keep_refresh(kind, used, None).await
            }
            _ => None,
        };
        let swapped = match (swapped, &parsed.refresh) {
            // The store lost the token this fetch used (flushed, evicted):
            // no other worker rotated it, so keep the new one.
            (Some(CasOutcome::Conflict { current: None }), Some(new)) => {
                warn!(provider = %self.provider.id, connection = %self.conn.id(), "the store no longer held the refresh token this fetch used (flushed or evicted?); storing the new one");
                self.keep_refresh(kind, None, Some(new)).await
            }
            (swapped, _) => swapped,
        };
        if let Some(CasOutcome::Conflict { .. }) = swapped {
            // Another worker stored a refresh token since this one read the
            // store: theirs stays (it may be the only valid one), and the
            // access token fetched here is still good.
            warn!(provider = %self.provider.id, connection = %self.conn.id(), request = %kind, "another worker changed the stored refresh token while this one was fetching; keeping theirs");
        }
        Ok(Acquired {
            access: parsed.access,
            expires_at: parsed.expires_at,
            api_base: parsed.api_base,
            kind,
        })
    }

    /// [`swap_refresh`](Self::swap_refresh) after a token reply, retried
    /// twice when the store is unavailable. The reply's access token is good
    /// whatever happens here, so a store that keeps failing does not turn it
    /// into an error: it is logged, and `None` returned (the stored refresh
    /// token may then be spent, and the next renewal logs in).
    async fn keep_refresh(
        &self,
        kind: RequestKind,
        used: Option<&SecretString>,
        new: Option<&SecretString>,
    ) -> Option<CasOutcome> {
        let mut retry = 0;
        loop {
            match self.swap_refresh(used, new).await {
                Ok(outcome) => return Some(outcome),
                Err(Error::Store { source, .. })
                    if retry < 2 && source.kind() == crate::store::StoreErrorKind::Unavailable =>
                {
                    retry += 1;
                    tokio::time::sleep(Duration::from_millis(50 << retry)).await;
                }
                Err(e) => {
                    error!(provider = %self.provider.id, connection = %self.conn.id(), request = %kind, error = %e, "the new refresh token could not be stored: the access token is used, and the next renewal logs in (or fails, for a provider without [login])");
                    return None;
                }
            }
        }
    }

    /// The scrubber for errors about a `kind` request: it knows the
    /// connection's secrets, the refresh token sent and the request's Basic
    /// credentials (as they went on the wire, base64).
    fn scrubber<'s>(
        &'s self,
        kind: RequestKind,
        rt: Option<&'s SecretString>,
        assertion: Option<&'s SecretString>,
    ) -> Scrubber<'s> {
        let scrubber = Scrubber::new(
            self.conn
                .secret_values(self.provider)
                .chain(rt.map(|r| r.expose_secret()))
                .chain(assertion.map(|a| a.expose_secret()))
                .chain(self.extra_fields.iter().map(|(_, v)| v.expose_secret())),
        );
        let Some(basic) = self.request(kind).and_then(|r| r.basic.as_ref()) else {
            return scrubber;
        };
        let raw = |t| self.render_sent(t, rt, assertion).ok();
        let (Some(user), Some(pass)) = (raw(&basic.username), raw(&basic.password)) else {
            return scrubber;
        };
        // As sent, and (when they differ) as the raw id and secret: an
        // endpoint may echo either.
        let scrubber = scrubber.with_basic(&user, &pass);
        match basic.form_encode {
            true => {
                let (user, pass) = crate::inject::client_basic_parts(user, pass, true);
                scrubber.with_basic(&user, &pass)
            }
            false => scrubber,
        }
    }

    /// The error for a reply whose status is not a success: its body
    /// quoted with the request's secrets (`rt`, the assertion) removed.
    fn status_error(
        &self,
        kind: RequestKind,
        url: String,
        reply: &Reply,
        rt: Option<&SecretString>,
    ) -> Error {
        Error::Status {
            provider: self.provider.id.clone(),
            request: kind,
            url,
            status: reply.status,
            body: self
                .scrubber(kind, rt, reply.assertion.as_ref())
                .excerpt(&reply.body),
            retry_after: reply.retry_after,
        }
    }

    /// The error for a reply body that should be JSON and is not; the body
    /// itself is never quoted.
    fn not_json(
        &self,
        kind: RequestKind,
        url: String,
        reply: &Reply,
        error: &serde_json::Error,
    ) -> Error {
        Error::NotJson {
            provider: self.provider.id.clone(),
            request: kind,
            url,
            reason: json_reason(error),
            content_type: reply.content_type.clone(),
            length: reply.body.len(),
        }
    }

    /// Turns a reply into a token, or a typed error.
    fn interpret(
        &self,
        kind: RequestKind,
        reply: &Reply,
        rt: Option<&SecretString>,
    ) -> Result<parse::Parsed, Error> {
        let url = self.url(kind);
        if !reply.status.is_success() {
            return Err(self.status_error(kind, url, reply, rt));
        }
        // A 2xx body that is not JSON is never quoted, not even scrubbed: it
        // is the reply to a successful login, so it may well hold the new
        // token in a shape the scrubber cannot recognise (XML, single-quoted
        // "JSON"), and that token is known to no one yet. It must be JSON
        // only when something is read from it (a session login that sets a
        // cookie may reply with HTML or nothing).
        let json: Option<Value> = match self.provider.response.reads_body() {
            true => Some(
                serde_json::from_slice(&reply.body)
                    .map_err(|e| self.not_json(kind, url, reply, &e))?,
            ),
            false => None,
        };
        let view = parse::ReplyView {
            json: json.as_ref(),
            headers: &reply.headers,
            header_names: &reply.header_names,
        };
        let parsed = parse::parse_reply(self.provider, kind, &view, self.clock.now());
        let mut parsed = parsed.map_err(|mut e| {
            // The reply's key names and expiry text go into the message: a
            // hostile or broken endpoint may echo a secret there.
            if let Error::MissingField { keys: text, .. }
            | Error::InvalidExpiry { reason: text, .. } = &mut e
            {
                *text = self
                    .scrubber(kind, rt, reply.assertion.as_ref())
                    .scrub(text);
            }
            e
        })?;
        if let Some(clamp) = &parsed.clamped {
            self.clamped(kind, clamp);
        }
        if let Some(json) = &json {
            parsed.api_base = self.api_base(kind, json, &parsed, rt)?;
        }
        Ok(parsed)
    }

    /// The prefix the reply's API base (`response.api_base`) binds the
    /// connection to; an error when the reply has none, or one outside
    /// every `api` prefix (then the token is not used at all).
    fn api_base(
        &self,
        kind: RequestKind,
        json: &Value,
        parsed: &parse::Parsed,
        rt: Option<&SecretString>,
    ) -> Result<Option<url::Url>, Error> {
        let Some(pointer) = &self.provider.response.api_base else {
            return Ok(None);
        };
        let error = |reason: String| Error::ApiBase {
            provider: self.provider.id.clone(),
            request: kind,
            pointer: pointer.as_str().to_owned(),
            reason,
        };
        let Some(value) = pointer.find(json).and_then(Value::as_str) else {
            return Err(error("the reply has no string there".to_owned()));
        };
        // The value is quoted in the error: scrubbed of the secrets and of
        // the token from this very reply, and cut short.
        let shown = || {
            let scrubbed = Scrubber::new(
                self.conn
                    .secret_values(self.provider)
                    .chain(rt.map(|r| r.expose_secret()))
                    .chain([parsed.access.expose_secret()])
                    .chain(parsed.refresh.as_ref().map(|r| r.expose_secret())),
            )
            .scrub(value);
            let cut: String = scrubbed.chars().take(100).collect();
            if cut.len() < scrubbed.len() {
                format!("{cut}…")
            } else {
                cut
            }
        };
        let Ok(url) = url::Url::parse(value) else {
            return Err(error(format!("`{}` is not an absolute URL", shown())));
        };
        match self.provider.bind_api_base(&url) {
            Some(bound) => Ok(Some(bound)),
            None => Err(error(format!(
                "`{}` lies outside every api prefix ({})",
                shown(),
                self.provider
                    .api
                    .iter()
                    .map(|p| p.source())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Counts a lifetime raised to [`parse::MIN_LIFETIME`]; warns the first
    /// time it happens for the provider.
    fn clamped(&self, kind: RequestKind, clamp: &parse::Clamped) {
        if self.counters.clamped_lifetime(&self.provider.id) {
            warn!(
                provider = %self.provider.id,
                request = %kind,
                source = clamp.source,
                value = %clamp.value,
                floor_ms = parse::MIN_LIFETIME.as_millis() as u64,
                "the token reply gave a lifetime shorter than the floor; using the floor instead, so that the cache does not turn into a login per call (logged once per provider)"
            );
        } else {
            debug!(provider = %self.provider.id, request = %kind, source = clamp.source, value = %clamp.value, "token lifetime raised to the floor");
        }
    }

    fn request(&self, kind: RequestKind) -> Option<&TokenRequest> {
        match kind {
            RequestKind::Refresh => self.provider.refresh.as_ref().map(|r| &r.request),
            RequestKind::Login => self.provider.login.as_ref(),
            RequestKind::Device => self.provider.device.as_ref().map(|d| &d.request),
            RequestKind::Exchange => self.provider.authorize.as_ref().map(|a| &a.exchange),
        }
    }

    /// The URL of a `kind` request for errors: as sent to this connection,
    /// else as written.
    fn url(&self, kind: RequestKind) -> String {
        self.request(kind).map_or_else(String::new, |r| {
            self.conn
                .render_url(self.provider, &r.url)
                .map_or_else(|_| r.url.to_string(), String::from)
        })
    }

    fn render(&self, t: &Template, rt: Option<&SecretString>) -> Result<String, Error> {
        self.render_sent(t, rt, None)
    }

    /// [`render`](Self::render) in a token request that sends `assertion`.
    fn render_sent(
        &self,
        t: &Template,
        rt: Option<&SecretString>,
        assertion: Option<&SecretString>,
    ) -> Result<String, Error> {
        t.render(|var| match var {
            Var::Input(name) => self.conn.value(self.provider, name),
            Var::TokenRefresh => rt.map(|r| r.expose_secret()),
            Var::Assertion => assertion.map(|a| a.expose_secret()),
            Var::TokenAccess => None,
        })
        .map_err(|var| crate::inject::missing(self.provider, self.conn, &var))
    }

    /// The client id and secret of a token request's Basic credentials, as
    /// sent (see [`crate::inject::client_basic_parts`]).
    fn client_basic(
        &self,
        basic: &crate::config::BasicAuth,
        rt: Option<&SecretString>,
        assertion: Option<&SecretString>,
    ) -> Result<(String, String), Error> {
        let user = self.render_sent(&basic.username, rt, assertion)?;
        let pass = self.render_sent(&basic.password, rt, assertion)?;
        Ok(crate::inject::client_basic_parts(
            user,
            pass,
            basic.form_encode,
        ))
    }

    fn is_secret(&self, t: &Template) -> bool {
        t.vars().any(|v| match v {
            Var::Input(name) => self.conn.is_secret(self.provider, name),
            Var::TokenAccess | Var::TokenRefresh | Var::Assertion => true,
        })
    }

    fn build(
        &self,
        kind: RequestKind,
        req: &TokenRequest,
        rt: Option<&SecretString>,
    ) -> Result<(reqwest::Request, Option<SecretString>), Error> {
        let bad_header = |what: String| Error::InvalidHeaderValue {
            provider: self.provider.id.clone(),
            what,
        };
        // A fresh JWT per request, retries included (a new iat and jti).
        let assertion = match &req.assertion {
            Some(a) => Some(assertion::sign(
                self.provider,
                self.conn,
                a,
                self.clock.now(),
                |t| self.render(t, rt),
            )?),
            None => None,
        };
        let sent = assertion.as_ref();
        let mut fields = Vec::with_capacity(req.fields.len());
        for (name, v) in &req.fields {
            fields.push((
                name.as_str(),
                v.try_map(&mut |t| self.render_sent(t, rt, sent))?,
            ));
        }
        for (name, value) in self.extra_fields {
            if !req.fields.iter().any(|(n, _)| n == name) {
                fields.push((name, FieldValue::Text(value.expose_secret().to_owned())));
            }
        }
        let mut url = self.conn.render_url(self.provider, &req.url)?;
        let sent_to = url.to_string();
        if req.method == http::Method::GET && !fields.is_empty() {
            // A GET carries its fields in the query string (the loader
            // allows only strings there).
            let mut q = url.query_pairs_mut();
            for (n, v) in &fields {
                q.append_pair(n, &field_text(v));
            }
        }
        let mut builder = self
            .client
            .request(req.method.clone(), url)
            .timeout(req.timeout)
            .header(ACCEPT, "application/json");
        if req.method != http::Method::GET {
            let (content_type, body) = encode_body(req.body, &fields);
            builder = builder.header(CONTENT_TYPE, content_type).body(body);
        }
        let mut request = builder.build().map_err(|e| Error::Transport {
            provider: self.provider.id.clone(),
            request: kind,
            url: sent_to,
            source: std::sync::Arc::new(e),
        })?;
        let headers = request.headers_mut();
        for (name, t) in &req.headers {
            let mut value = http::HeaderValue::try_from(self.render_sent(t, rt, sent)?)
                .map_err(|_| bad_header(format!("{kind} header `{name}`")))?;
            value.set_sensitive(self.is_secret(t));
            headers.insert(name.clone(), value);
        }
        if let Some(basic) = &req.basic {
            let (user, pass) = self.client_basic(basic, rt, sent)?;
            let mut value = http::HeaderValue::try_from(crate::inject::basic_value(&user, &pass))
                .map_err(|_| bad_header(format!("{kind} basic credentials")))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok((request, assertion))
    }

    /// Sends the request, retrying 5xx / 429 / transport failures.
    async fn send(
        &self,
        kind: RequestKind,
        req: &TokenRequest,
        rt: Option<&SecretString>,
    ) -> Result<Reply, Error> {
        let mut retry = 0;
        loop {
            let (request, assertion) = self.build(kind, req, rt)?;
            self.counters.token_request();
            let started = Instant::now();
            let result = self
                .send_once(kind, req, request)
                .await
                .map(|reply| Reply { assertion, ..reply });
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let wait = match &result {
                Ok(reply) => {
                    debug!(provider = %self.provider.id, connection = %self.conn.id(), request = %kind, status = reply.status.as_u16(), elapsed_ms, "token endpoint replied");
                    let retryable = matches!(reply.status.as_u16(), 429 | 500 | 502 | 503 | 504);
                    match reply.retry_after {
                        _ if !retryable => None,
                        Some(after) if after > self.retry.max => None,
                        Some(after) => Some(after.max(self.retry.delay(retry))),
                        None => Some(self.retry.delay(retry)),
                    }
                }
                Err(Error::Transport { .. }) => {
                    debug!(provider = %self.provider.id, connection = %self.conn.id(), request = %kind, elapsed_ms, "token request failed in transport");
                    Some(self.retry.delay(retry))
                }
                Err(_) => None,
            };
            match wait {
                Some(wait) if retry < self.retry.max_retries => {
                    debug!(provider = %self.provider.id, request = %kind, retry = retry + 1, wait_ms = wait.as_millis() as u64, "retrying token request");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                _ => return result,
            }
        }
    }

    async fn send_once(
        &self,
        kind: RequestKind,
        req: &TokenRequest,
        request: reqwest::Request,
    ) -> Result<Reply, Error> {
        let sent_url = request.url().clone();
        // The URL for messages: as sent, without the fields a GET carries in
        // its query.
        let url = match req.method {
            http::Method::GET => self.url(kind),
            _ => sent_url.to_string(),
        };
        let transport = |e: reqwest::Error| -> Error {
            if e.is_timeout() {
                Error::Timeout {
                    provider: self.provider.id.clone(),
                    request: kind,
                    url: url.clone(),
                    timeout: req.timeout,
                }
            } else {
                Error::Transport {
                    provider: self.provider.id.clone(),
                    request: kind,
                    url: url.clone(),
                    source: std::sync::Arc::new(e.without_url()),
                }
            }
        };
        let mut response = self.client.execute(request).await.map_err(transport)?;
        if response.url() != &sent_url {
            // The caller's client followed a redirect: refuse the reply.
            return Err(Error::Status {
                provider: self.provider.id.clone(),
                request: kind,
                url,
                status: StatusCode::PERMANENT_REDIRECT,
                body: "(the HTTP client followed a redirect to another URL; build it with redirect::Policy::none() for token requests)".to_owned(),
                retry_after: None,
            });
        }
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| retry_after(v.as_bytes(), self.clock.now()));
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| media_type(v.as_bytes()));
        let too_large = || Error::ResponseTooLarge {
            provider: self.provider.id.clone(),
            request: kind,
            url: url.clone(),
            limit: MAX_REPLY_BYTES,
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
        {
            return Err(too_large());
        }
        let (headers, header_names) = kept_headers(
            std::mem::take(response.headers_mut()),
            &self.provider.response,
        );
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            body,
            headers,
            header_names,
            retry_after,
            content_type,
            assertion: None,
        })
    }
}

fn matches_on_error(on_error: &RefreshOnError, reply: &Reply) -> bool {
    if !on_error.status.contains(&reply.status.as_u16()) {
        return false;
    }
    let Some(pointer) = &on_error.error_pointer else {
        return true;
    };
    let Ok(json) = serde_json::from_slice::<Value>(&reply.body) else {
        return false;
    };
    match pointer.find(&json).and_then(Value::as_str) {
        Some(code) => {
            on_error.error_values.is_empty() || on_error.error_values.iter().any(|v| v == code)
        }
        None => false,
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP-date (RFC 9110, any of
/// its three formats) taken relative to `now`, the engine's clock; a date in
/// the past means "now" (zero). `None` when it is neither.
fn retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let value = std::str::from_utf8(value).ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The longest media type an error message repeats.
const MAX_MEDIA_TYPE: usize = 64;

/// The media type (`type/subtype`, lower case, no parameters) of a
/// `Content-Type` value, if it looks like one: the only part of a reply that
/// goes into a [`Error::NotJson`]. Parameters are dropped (an endpoint can
/// put anything there), and so is anything that is not made of the token
/// characters of RFC 9110 or is longer than [`MAX_MEDIA_TYPE`].
fn media_type(value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?;
    let essence = value.split(';').next()?.trim();
    let (ty, sub) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    (token(ty) && token(sub) && essence.len() <= MAX_MEDIA_TYPE)
        .then(|| essence.to_ascii_lowercase())
}

/// The JSON parser's complaint without any of the content.
fn json_reason(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "it ends too early",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data | serde_json::error::Category::Io => "unreadable",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// The most values of one header kept for a header or cookie source.
const MAX_HEADER_VALUES: usize = 32;

/// The most header names kept for the message of a missing header or cookie.
pub(crate) const MAX_HEADER_NAMES: usize = 32;

/// The headers of a reply the `[response]` sources read: each header a
/// source names (its first [`MAX_HEADER_VALUES`] values) and, for a cookie
/// source, `Set-Cookie`; moved out of `all`, not copied. With them, the
/// names of the reply's headers (at most [`MAX_HEADER_NAMES`]) when some
/// source reads a header or cookie. A reply's headers are bounded by the
/// HTTP client's limits; what is kept here is bounded again.
fn kept_headers(mut all: HeaderMap, response: &Response) -> (HeaderMap, Vec<HeaderName>) {
    let mut kept = HeaderMap::new();
    let mut names = Vec::new();
    for (_, source) in response.sources() {
        let name = match source {
            TokenSource::Pointer(_) => continue,
            TokenSource::Header { header } => header.clone(),
            TokenSource::Cookie { .. } => SET_COOKIE,
        };
        if names.is_empty() {
            names = all.keys().take(MAX_HEADER_NAMES).cloned().collect();
        }
        if let http::header::Entry::Occupied(entry) = all.entry(name) {
            let (name, values) = entry.remove_entry_mult();
            for value in values.take(MAX_HEADER_VALUES) {
                kept.append(&name, value);
            }
        }
    }
    (kept, names)
}

/// A field as one string: its text, or the JSON of a nested value (which
/// the loader allows only in a JSON body).
fn field_text(v: &FieldValue<String>) -> std::borrow::Cow<'_, str> {
    match v {
        FieldValue::Text(t) => t.into(),
        other => {
            let mut out = String::new();
            write_json(&mut out, other);
            out.into()
        }
    }
}

/// Writes a field value as JSON, keys in file order.
fn write_json(out: &mut String, v: &FieldValue<String>) {
    match v {
        FieldValue::Text(t) => out.push_str(&Value::from(t.as_str()).to_string()),
        FieldValue::Integer(i) => out.push_str(&i.to_string()),
        FieldValue::Float(x) => out.push_str(
            &serde_json::Number::from_f64(*x).map_or_else(|| "null".to_owned(), |n| n.to_string()),
        ),
        FieldValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        FieldValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        FieldValue::Table(entries) => {
            write_object(out, entries.iter().map(|(k, v)| (k.as_str(), v)))
        }
    }
}

fn write_object<'v>(
    out: &mut String,
    entries: impl Iterator<Item = (&'v str, &'v FieldValue<String>)>,
) {
    out.push('{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(k).to_string());
        out.push(':');
        write_json(out, v);
    }
    out.push('}');
}

/// Encodes token request fields, in order and with names exactly as written:
/// a form body, or a JSON object (nested as written). Returns the content
/// type and the body.
pub(crate) fn encode_body(
    format: BodyFormat,
    fields: &[(&str, FieldValue<String>)],
) -> (&'static str, String) {
    match format {
        BodyFormat::Form => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (n, v) in fields {
                form.append_pair(n, &field_text(v));
            }
            ("application/x-www-form-urlencoded", form.finish())
        }
        BodyFormat::Json => {
            // Written by hand to keep the file order of the fields.
            let mut body = String::new();
            write_object(&mut body, fields.iter().map(|(n, v)| (*n, v)));
            ("application/json", body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_both_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let date = |d: SystemTime| httpdate::fmt_http_date(d);
        assert_eq!(retry_after(b" 120 ", now), Some(Duration::from_secs(120)));
        let later = now + Duration::from_secs(90);
        assert_eq!(
            retry_after(date(later).as_bytes(), now),
            Some(Duration::from_secs(90))
        );
        // The obsolete formats too (RFC 850, asctime).
        let rfc850 = "Thursday, 28-May-26 20:28:10 GMT";
        let asctime = "Thu May 28 20:28:10 2026";
        assert_eq!(httpdate::parse_http_date(rfc850).ok(), Some(later));
        assert_eq!(
            retry_after(rfc850.as_bytes(), now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after(asctime.as_bytes(), now),
            Some(Duration::from_secs(90))
        );
        // In the past: now.
        let earlier = now - Duration::from_secs(3600);
        assert_eq!(
            retry_after(date(earlier).as_bytes(), now),
            Some(Duration::ZERO)
        );
        for junk in [&b"soon"[..], b"-5", b"1.5", b"\xff\xfe", b""] {
            assert_eq!(retry_after(junk, now), None);
        }
    }

    #[test]
    fn media_types_are_sanitised() {
        assert_eq!(
            media_type(b"Application/XML; charset=utf-8").as_deref(),
            Some("application/xml")
        );
        assert_eq!(
            media_type(b"text/plain;token=abc").as_deref(),
            Some("text/plain")
        );
        for bad in [
            &b"token-without-slash"[..],
            b"a/b c",
            b"a/b\"c",
            b"/json",
            b"\xff/x",
            "x/".repeat(40).as_bytes(),
        ] {
            assert_eq!(media_type(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nested_json_bodies_keep_order_and_types() {
        let text = |s: &str| FieldValue::Text(s.to_owned());
        let fields = vec![
            (
                "auth",
                FieldValue::Table(vec![
                    (
                        "z".to_owned(),
                        FieldValue::Array(vec![text("p\"w"), FieldValue::Integer(-3)]),
                    ),
                    ("a".to_owned(), FieldValue::Float(1.5)),
                    (
                        "m".to_owned(),
                        FieldValue::Table(vec![("ok".to_owned(), FieldValue::Bool(true))]),
                    ),
                ]),
            ),
            ("b", text("x")),
        ];
        let (content_type, body) = encode_body(BodyFormat::Json, &fields);
        assert_eq!(content_type, "application/json");
        assert_eq!(
            body,
            r#"{"auth":{"z":["p\"w",-3],"a":1.5,"m":{"ok":true}},"b":"x"}"#
        );
        let (_, form) = encode_body(BodyFormat::Form, &[("a b", text("x&y"))]);
        assert_eq!(form, "a+b=x%26y");
    }
}
