use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use super::table::{Cached, Slot};
use crate::error::{Error, RequestKind};
use crate::inject::Injection;

/// Identifies one fetched (or rendered) token in logs (`#17`). Ids count up
/// from 1 in each process and wrap after 2^32 tokens, so two credentials
/// with the same `TokenId` carry the same token unless four billion tokens
/// lie between them; [`Credential::same_token`] tells them apart exactly,
/// as the engine does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub(crate) u32);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What the cache keeps per (provider, connection): the rendered credential
/// and its schedule. Shared by every [`Credential`] handed out for it.
///
/// Kept small (96 bytes; the cache holds one per connection, inside its
/// [`Cached`] block): the access token is kept once, inside the rendered
/// credential, and read back from there; the provider id and the part names
/// are shared by the provider's credentials
/// ([`Shape`](crate::inject::Shape)); times are nanoseconds; what few
/// credentials have (an API base, rendered prefixes, a token the credential
/// does not hold verbatim) is boxed.
pub(crate) struct TokenEntry {
    body: Body,
    pub(crate) connection: Arc<str>,
    /// Expiry in nanoseconds since the epoch (`u64::MAX`: never, static
    /// credentials), so the hot path compares integers.
    expires_nanos: u64,
    /// Start of the renewal window in nanoseconds since the epoch
    /// (`u64::MAX`: never).
    renew_nanos: u64,
    /// No background renewal before this reading of the monotonic clock
    /// ([`Clock::monotonic`](crate::clock::Clock::monotonic), in
    /// nanoseconds): the backoff after a failed renewal.
    pub(crate) next_renewal: AtomicU64,
    pub(crate) id: TokenId,
    /// Failed background renewals of this token, for the backoff
    /// (saturating).
    renew_failures: AtomicU16,
    /// A background renewal has been claimed.
    pub(crate) renewing: AtomicBool,
    origin: Origin,
}

/// The credential, and what only some credentials have.
enum Body {
    /// The common case: nothing but the credential.
    Plain(Injection),
    Rich(Box<Rich>),
}

struct Rich {
    injection: Injection,
    /// The prefix the token reply bound the connection to
    /// (`response.api_base`): the credential goes nowhere else.
    api_base: Option<Url>,
    /// The provider's prefixes with `{{ inputs.NAME }}` as the connection
    /// that made this credential rendered them (empty for other providers):
    /// with the written-out ones, where it may go.
    prefixes: Box<[Url]>,
    /// The access token, when the credential does not hold it verbatim.
    access: Option<SecretString>,
}

/// How the token came to be, for [`Credential::obtained_by`] and
/// [`Credential::adopted`].
#[derive(Clone, Copy)]
enum Origin {
    /// A static credential, rendered from the inputs.
    Rendered,
    /// Fetched by another process and read from the shared store.
    Adopted,
    Obtained(RequestKind),
}

/// A fetched token's part of a [`TokenEntry`]; static credentials have none.
pub(crate) struct Fetched {
    pub(crate) access: SecretString,
    /// `None`: adopted from the shared store (another process fetched it).
    pub(crate) obtained_by: Option<RequestKind>,
    pub(crate) expires_at: SystemTime,
    pub(crate) renew_at: SystemTime,
    /// The prefix the reply's API base bound the connection to.
    pub(crate) api_base: Option<Url>,
}

impl TokenEntry {
    /// The entry for `injection` (rendered for `connection`, with the
    /// token of `fetched` if any) and the connection's rendered `prefixes`.
    pub(crate) fn new(
        connection: Arc<str>,
        injection: Injection,
        fetched: Option<Fetched>,
        prefixes: Box<[Url]>,
    ) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let never = |t: Option<SystemTime>| t.map_or(u64::MAX, nanos);
        let (origin, expires_at, renew_at, api_base, access) = match fetched {
            Some(f) => (
                f.obtained_by.map_or(Origin::Adopted, Origin::Obtained),
                Some(f.expires_at),
                Some(f.renew_at),
                f.api_base,
                Some(f.access),
            ),
            None => (Origin::Rendered, None, None, None, None),
        };
        // Keep a copy of the token only if the credential does not hold it.
        let access = access.filter(|a| injection.access_token() != Some(a.expose_secret()));
        let body = if api_base.is_none() && prefixes.is_empty() && access.is_none() {
            Body::Plain(injection)
        } else {
            Body::Rich(Box::new(Rich {
                injection,
                api_base,
                prefixes,
                access,
            }))
        };
        TokenEntry {
            body,
            connection,
            expires_nanos: never(expires_at),
            renew_nanos: never(renew_at),
            next_renewal: AtomicU64::new(0),
            id: TokenId(NEXT.fetch_add(1, Ordering::Relaxed)),
            renew_failures: AtomicU16::new(0),
            renewing: AtomicBool::new(false),
            origin,
        }
    }

    /// The credential.
    #[inline]
    pub(crate) fn injection(&self) -> &Injection {
        match &self.body {
            Body::Plain(injection) => injection,
            Body::Rich(rich) => &rich.injection,
        }
    }

    /// Nothing but the credential (no box of rarer fields).
    #[cfg(test)]
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self.body, Body::Plain(_))
    }

    fn rich(&self) -> Option<&Rich> {
        match &self.body {
            Body::Plain(_) => None,
            Body::Rich(rich) => Some(rich),
        }
    }

    /// The provider id.
    pub(crate) fn provider(&self) -> &str {
        self.injection().provider()
    }

    /// The connection id.
    pub(crate) fn connection(&self) -> &str {
        &self.connection
    }

    /// The access token (for providers that log in; `None` for static
    /// credentials).
    pub(crate) fn access(&self) -> Option<&str> {
        if matches!(self.origin, Origin::Rendered) {
            return None;
        }
        match self.rich().and_then(|r| r.access.as_ref()) {
            Some(access) => Some(access.expose_secret()),
            None => self.injection().access_token(),
        }
    }

    fn time(nanos: u64) -> Option<SystemTime> {
        (nanos != u64::MAX).then(|| UNIX_EPOCH + Duration::from_nanos(nanos))
    }

    /// Usable: not expired.
    pub(crate) fn is_valid(&self, now: SystemTime) -> bool {
        self.is_valid_at(nanos(now))
    }
    /// [`is_valid`](Self::is_valid) for a time in nanoseconds since the epoch.
    #[inline]
    pub(crate) fn is_valid_at(&self, now: u64) -> bool {
        now < self.expires_nanos
    }

    /// Usable and not yet due for renewal.
    pub(crate) fn is_fresh(&self, now: SystemTime) -> bool {
        self.is_fresh_at(nanos(now))
    }

    /// [`is_fresh`](Self::is_fresh) for a time in nanoseconds since the
    /// epoch (the renewal window starts before expiry).
    #[inline]
    pub(crate) fn is_fresh_at(&self, now: u64) -> bool {
        now < self.renew_nanos && self.is_valid_at(now)
    }

    /// In the renewal window (`now`: wall-clock nanoseconds since the epoch)
    /// and no renewal running.
    #[inline]
    pub(crate) fn wants_renewal_at(&self, now: u64) -> bool {
        now >= self.renew_nanos && !self.renewing.load(Ordering::Relaxed)
    }

    /// Not backing off from a failed renewal at this monotonic reading.
    #[inline]
    pub(crate) fn renewal_allowed(&self, monotonic: Duration) -> bool {
        mono_nanos(monotonic) >= self.next_renewal.load(Ordering::Relaxed)
    }

    /// Counts a failed background renewal; returns how many failed before
    /// it (0 for the first).
    pub(crate) fn count_renewal_failure(&self) -> u32 {
        let before = self
            .renew_failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(1))
            });
        u32::from(before.unwrap_or_else(|n| n))
    }

    /// No background renewal before the monotonic reading `until`.
    pub(crate) fn defer_renewal(&self, until: Duration) {
        self.next_renewal
            .store(mono_nanos(until), Ordering::Relaxed);
        self.renewing.store(false, Ordering::Release);
    }
}

/// `t` in nanoseconds since the Unix epoch, clamped to `0..=u64::MAX` (the
/// year 2554).
#[inline]
pub(crate) fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn mono_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A failed acquisition, cached so that callers inside the backoff get the
/// same error without a new request.
pub(crate) struct Failure {
    pub(crate) error: Error,
    /// The end of the backoff, a reading of the monotonic clock
    /// ([`Clock::monotonic`](crate::clock::Clock::monotonic)).
    pub(crate) retry_at: Duration,
    pub(crate) attempts: u32,
}

impl Failure {
    /// Still backing off at the monotonic reading `now`.
    pub(crate) fn backing_off(&self, now: Duration) -> bool {
        now < self.retry_at
    }
}

/// A credential, ready to attach to a request.
///
/// Cheap to clone (an `Arc` of the cache entry): the header value was
/// rendered once, when the token was fetched, and attaching it clones a
/// [`HeaderValue`](http::HeaderValue) (marked sensitive). Pass it back to
/// [`ProviderHandle::invalidate`](crate::ProviderHandle::invalidate) when the
/// API rejects it.
#[derive(Clone)]
pub struct Credential {
    /// A token, never a failure (see [`Credential::new`]).
    cached: Arc<Cached>,
}

impl Credential {
    /// The credential of a cached token; a cached failure is handed back.
    pub(crate) fn new(cached: Arc<Cached>) -> Result<Credential, Arc<Cached>> {
        match cached.slot {
            Slot::Token(_) => Ok(Credential { cached }),
            Slot::Failed(_) => Err(cached),
        }
    }

    #[inline]
    pub(crate) fn entry(&self) -> &TokenEntry {
        match &self.cached.slot {
            Slot::Token(entry) => entry,
            Slot::Failed(_) => unreachable!("Credential::new admits tokens only"),
        }
    }

    /// The cache value this credential was made from.
    pub(crate) fn cached(&self) -> &Arc<Cached> {
        &self.cached
    }

    /// `other` was made from the very same cached token (not merely one
    /// with the same [`TokenId`]).
    pub fn same_token(&self, other: &Credential) -> bool {
        Arc::ptr_eq(&self.cached, &other.cached)
    }

    /// What to attach: headers and query parameters.
    #[inline]
    pub fn injection(&self) -> &Injection {
        self.entry().injection()
    }

    /// Sets every header part (replacing any value the request had). Returns
    /// `false` for a credential of query parameters only.
    pub fn apply_to_headers(&self, headers: &mut HeaderMap) -> bool {
        self.entry().injection().apply_to_headers(headers)
    }

    /// Sets every query parameter part. Returns `false` for a credential of
    /// headers only.
    pub fn apply_to_url(&self, url: &mut Url) -> bool {
        self.entry().injection().apply_to_url(url)
    }

    /// Removes the query parameter parts from `url` (a response's or an error's
    /// URL); see [`Injection::remove_from_url`].
    pub fn remove_from_url(&self, url: &mut Url) -> bool {
        self.entry().injection().remove_from_url(url)
    }

    /// `error` without a query credential in its URL; see
    /// [`Injection::redact_error`].
    pub fn redact_error(&self, error: reqwest::Error) -> reqwest::Error {
        self.entry().injection().redact_error(error)
    }

    /// A URL-valued header (`Location`, ...) without a query credential; see
    /// [`Injection::remove_from_reference`].
    pub fn remove_from_reference(&self, reference: &str) -> Option<String> {
        self.entry().injection().remove_from_reference(reference)
    }

    /// The API prefix the token reply bound this connection to
    /// (`response.api_base`); the credential goes nowhere else. `None` for
    /// providers without `api_base`.
    pub fn api_base(&self) -> Option<&Url> {
        self.entry().rich().and_then(|r| r.api_base.as_ref())
    }

    /// The provider's `{{ inputs.NAME }}` prefixes as rendered for the
    /// connection this credential was made for.
    pub(crate) fn prefixes(&self) -> impl Iterator<Item = &Url> {
        self.entry()
            .rich()
            .into_iter()
            .flat_map(|r| r.prefixes.iter())
    }

    /// The identity of the token this credential was made from.
    pub fn token_id(&self) -> TokenId {
        self.entry().id
    }

    /// When the token expires; `None` for static credentials.
    pub fn expires_at(&self) -> Option<SystemTime> {
        TokenEntry::time(self.entry().expires_nanos)
    }

    /// When the engine starts renewing it in the background.
    pub fn renew_at(&self) -> Option<SystemTime> {
        TokenEntry::time(self.entry().renew_nanos)
    }

    /// How long the token stays valid after `now`.
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at()
            .map(|e| e.duration_since(now).unwrap_or(Duration::ZERO))
    }

    /// How this process obtained the token: [`RequestKind::Login`] or
    /// [`RequestKind::Refresh`] (with a refresh token from the store);
    /// `None` for static credentials rendered from the inputs and for tokens
    /// [adopted](Self::adopted) from a shared store.
    pub fn obtained_by(&self) -> Option<RequestKind> {
        match self.entry().origin {
            Origin::Obtained(kind) => Some(kind),
            Origin::Rendered | Origin::Adopted => None,
        }
    }

    /// True when another process sharing the token store fetched the token
    /// and this one read it from there (no token request of its own).
    pub fn adopted(&self) -> bool {
        matches!(self.entry().origin, Origin::Adopted)
    }

    /// `text` with this credential removed wherever it appears, however it
    /// is encoded (raw, percent-, JSON- or HTML-escaped): the access token,
    /// and every part of the credential: a query parameter's value, a
    /// header's value and its part after the scheme (`Bearer …`, `Basic …`)
    /// or a cookie's value. For showing what an API
    /// answered (a body that echoes the credential) without showing the
    /// credential.
    pub fn redact(&self, text: &str) -> String {
        let secrets = self
            .entry()
            .access()
            .into_iter()
            .chain(self.entry().injection().secrets());
        crate::acquire::scrub::Scrubber::new(secrets).scrub(text)
    }

    /// The access token (for providers that log in), a copy: the cache
    /// keeps it only once, inside the rendered credential.
    pub fn access_token(&self) -> Option<SecretString> {
        self.entry().access().map(SecretString::from)
    }

    /// The provider id.
    pub fn provider(&self) -> &str {
        self.entry().provider()
    }

    /// The connection id.
    pub fn connection(&self) -> &str {
        self.entry().connection()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("provider", &self.entry().provider())
            .field("connection", &&*self.entry().connection)
            .field("token", &self.entry().id)
            .field("injection", self.entry().injection())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_failures_saturate() {
        let injection = Injection::header(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("bearer t"),
        );
        let entry = TokenEntry::new(Arc::from("c"), injection, None, Box::default());
        assert_eq!(entry.count_renewal_failure(), 0);
        assert_eq!(entry.count_renewal_failure(), 1);
        entry.renew_failures.store(u16::MAX - 1, Ordering::Relaxed);
        assert_eq!(entry.count_renewal_failure(), u32::from(u16::MAX - 1));
        assert_eq!(entry.count_renewal_failure(), u32::from(u16::MAX));
        assert_eq!(
            entry.count_renewal_failure(),
            u32::from(u16::MAX),
            "no wrap"
        );
    }

    /// With its use stamp and `Arc` counts the entry is one 128-byte malloc
    /// block: the credential (48 bytes), the connection id, two times, the
    /// renewal state and the token id. (A failure is boxed, so it takes no
    /// room in a token's block.)
    #[test]
    fn an_entry_is_small() {
        assert!(
            std::mem::size_of::<TokenEntry>() <= 96,
            "{}",
            std::mem::size_of::<TokenEntry>()
        );
        assert!(
            std::mem::size_of::<Cached>() <= 104,
            "{}",
            std::mem::size_of::<Cached>()
        );
    }
}
