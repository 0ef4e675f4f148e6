//! The request sequence: one authenticated exchange, written once for every
//! adapter.

use std::borrow::Cow;
use std::future::Future;

use http::Extensions;
use tracing::warn;
use url::Url;

use super::NoAuth;
use super::message::sealed::Request as _;
use super::message::sealed::Response as _;
use super::message::{HttpRequest, HttpResponse, Origin};
use crate::cache::{Credential, TokenAuth};
use crate::config::Provider;
use crate::connection::Connection;
use crate::error::Error;
use crate::route::same_bytes;

/// The HTTP client under an adapter, as the request sequence drives it: the
/// reqwest middleware's `Next`, the tower layer's inner service.
///
/// Everything else is core's: routing and caller-wins
/// ([`TokenAuth::exchange`]), the connection, attaching the credential,
/// renewal and the one retry, redirect scope ([`Exchange::send`]).
pub trait Transport: Send {
    /// `reqwest::Request` or `http::Request<B>`.
    type Request: HttpRequest;
    /// `reqwest::Response` or `http::Response<B>`.
    type Response: HttpResponse;
    /// The adapter's error type.
    type Error: Send;

    /// Sends `request` (at most twice per exchange: the first attempt and
    /// the one retry after a rejected credential).
    fn send(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;

    /// What a request must leave behind for the one retry: a copy of the
    /// whole request (`Self::Request`), or only the parts the retry needs
    /// when a copy costs more than they do (a reqwest `Url` is a `String`).
    type Kept: Send;

    /// Writes into `kept` (`None` on entry) what a retry of `request`
    /// needs, taken before the credential is attached; leaves it `None`
    /// when the request cannot be repeated (a streaming body): it is then
    /// not retried. Runs on every request whose provider may retry, though
    /// a retry is rare: keep it cheap.
    ///
    /// Written in place rather than returned: `kept` lies in the future
    /// every request lives in, and a returned value of a few hundred bytes
    /// is copied on its way there.
    fn keep_for_retry(&self, request: &Self::Request, kept: &mut Option<Self::Kept>);

    /// The request to send again, rebuilt from what
    /// [`keep_for_retry`](Self::keep_for_retry) kept; `None` when it cannot
    /// be rebuilt (the rejection is then returned as it came).
    fn retry_request(&self, kept: Self::Kept) -> Option<Self::Request>;

    /// The URL the kept request was sent to, serialized (`Url::as_str`),
    /// for a transport whose responses report their URL (reqwest, which
    /// follows redirects itself): a response from exactly that URL was not
    /// redirected, and is not routed again. The default, `None`, checks
    /// every response that has a URL.
    ///
    /// It must be exactly the URL of the request `kept` was taken from: a
    /// response from any URL returned here skips the check that refuses a
    /// redirect out of the provider's prefixes. (A transport is trusted as
    /// much anyway: it is handed the request with the credential on it.)
    fn kept_url<'k>(&self, kept: &'k Self::Kept) -> Option<&'k [u8]> {
        let _ = kept;
        None
    }

    /// `error` (no credential could be had, or it could not be attached) as
    /// the adapter's error.
    fn auth_error(&self, error: Error) -> Self::Error;

    /// `error` as it may leave the adapter, for errors that show the request
    /// URL (a query credential must be removed from it). Defaults to
    /// `error` unchanged.
    fn redact_error(&self, error: Self::Error, credential: &Credential) -> Self::Error {
        let _ = credential;
        error
    }
}

/// A transport lent for one exchange: `exchange.send(&mut transport)`
/// keeps the transport for later requests.
impl<T: Transport> Transport for &mut T {
    type Request = T::Request;
    type Response = T::Response;
    type Error = T::Error;
    type Kept = T::Kept;

    fn send(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send {
        (**self).send(request)
    }

    fn keep_for_retry(&self, request: &Self::Request, kept: &mut Option<Self::Kept>) {
        (**self).keep_for_retry(request, kept);
    }

    fn retry_request(&self, kept: Self::Kept) -> Option<Self::Request> {
        (**self).retry_request(kept)
    }

    fn kept_url<'k>(&self, kept: &'k Self::Kept) -> Option<&'k [u8]> {
        (**self).kept_url(kept)
    }

    fn auth_error(&self, error: Error) -> Self::Error {
        (**self).auth_error(error)
    }

    fn redact_error(&self, error: Self::Error, credential: &Credential) -> Self::Error {
        (**self).redact_error(error, credential)
    }
}

/// One request that gets a credential, with the provider it goes to and the
/// connection it uses. Made by [`TokenAuth::exchange`], which routed this
/// very request, and run by [`Exchange::send`]: the credential can only go
/// to the request it was chosen for.
///
/// It borrows the engine; [`into_owned`](Exchange::into_owned) makes it
/// `'static` (one `Arc` clone) for a future that must own everything. The
/// adapters take the one-step forms, which route and build the exchange in
/// its box: [`TokenAuth::send_owned_boxed`] (tower) and
/// [`TokenAuth::send_boxed_with_extensions`] (reqwest-middleware).
pub struct Exchange<'a, R> {
    auth: Cow<'a, TokenAuth>,
    index: usize,
    connection: Option<Connection>,
    request: R,
    /// The origin of a path-only URI, kept for a provider bound by its
    /// token reply's API base (checked once the credential is known).
    /// Boxed: rare, and the exchange lives in every request's future.
    origin: Option<Box<Origin>>,
    /// The path has dot segments to resolve before it is sent (routing
    /// found out; most paths have none, and are not scanned again).
    resolve_path: bool,
}

impl TokenAuth {
    /// `request` with the provider it goes to, as an [`Exchange`]; or the
    /// request back (`Err`), untouched, when it gets no credential: it
    /// carries [`NoAuth`], lies outside every provider's `api` prefixes, or
    /// already has a credential the caller set (an `Authorization` header,
    /// the provider's inject header or query parameter).
    ///
    /// `extensions` are the request's extensions where the HTTP stack keeps
    /// them beside the request (reqwest-middleware); `None` reads the
    /// request's own (`http::Request::extensions`). A [`Connection`] there
    /// selects the connection, else the provider's default connection is
    /// used. `origin` stands in for the scheme and authority of a path-only
    /// URI (tonic).
    // Inlined into the caller: the `Exchange` (312 bytes for a
    // `reqwest::Request`) is then built where it is used rather than
    // returned and copied.
    #[inline]
    pub fn exchange<R: HttpRequest>(
        &self,
        request: R,
        extensions: Option<&Extensions>,
        origin: Option<&Origin>,
    ) -> Result<Exchange<'_, R>, R> {
        match self.routed(&request, extensions, origin) {
            Some(routed) => Ok(routed.exchange(Cow::Borrowed(self), request)),
            None => Err(request),
        }
    }

    /// [`exchange`](Self::exchange) and [`Exchange::send_boxed`] in one
    /// step, for a future that must own everything, such as a tower
    /// service's: the boxed future owns a handle on the engine (one `Arc`
    /// clone). `transport` is called only for a request that gets a
    /// credential (a tower service swaps its ready inner service there);
    /// otherwise the request comes back (`Err`), untouched, as from
    /// [`exchange`](Self::exchange).
    ///
    /// One step rather than `exchange(..)` then `send_boxed`: the request
    /// (224 bytes as an `http::Request`) is then written into the box with
    /// one copy instead of three (about 85 instructions per request
    /// through the tower layer, `tokenauth-instructions`).
    #[inline]
    #[allow(clippy::type_complexity)]
    pub fn send_owned_boxed<R: HttpRequest, T: Transport<Request = R> + 'static>(
        &self,
        request: R,
        extensions: Option<&Extensions>,
        origin: Option<&Origin>,
        transport: impl FnOnce() -> T,
    ) -> Result<std::pin::Pin<Box<impl Future<Output = Result<T::Response, T::Error>> + 'static>>, R>
    {
        let Some(routed) = self.routed(&request, extensions, origin) else {
            return Err(request);
        };
        let transport = transport();
        Ok(Box::into_pin(Box::write(
            Box::new_uninit(),
            routed
                .exchange(Cow::Owned(self.clone()), request)
                .send(transport),
        )))
    }

    /// [`exchange`](Self::exchange) and [`Exchange::send_boxed`] in one
    /// step, for an HTTP stack that keeps a request's extensions beside it
    /// (reqwest-middleware): routing reads them (a [`Connection`], a
    /// [`NoAuth`]), then `transport` gets them back to make the transport,
    /// only for a request that gets a credential. Otherwise the request
    /// and the extensions come back (`Err`), untouched.
    ///
    /// One step for the same reason as
    /// [`send_owned_boxed`](Self::send_owned_boxed): the request (264
    /// bytes as a `reqwest::Request`) is written into the box with one
    /// copy instead of two.
    // The exchange is built in `Box::write`'s argument here and in
    // `send_owned_boxed`, not in a shared helper: the request handed to a
    // helper, even one inlined, was copied once more before the box was
    // allocated (measured: the second `memcpy` came back, +100 through
    // the middleware).
    #[inline]
    #[allow(clippy::type_complexity)]
    pub fn send_boxed_with_extensions<'a, R: HttpRequest + 'a, T: Transport<Request = R> + 'a>(
        &'a self,
        request: R,
        extensions: &'a mut Extensions,
        origin: Option<&Origin>,
        transport: impl FnOnce(&'a mut Extensions) -> T,
    ) -> Result<
        std::pin::Pin<Box<impl Future<Output = Result<T::Response, T::Error>> + 'a>>,
        (R, &'a mut Extensions),
    > {
        let Some(routed) = self.routed(&request, Some(extensions), origin) else {
            return Err((request, extensions));
        };
        let transport = transport(extensions);
        Ok(Box::into_pin(Box::write(
            Box::new_uninit(),
            routed
                .exchange(Cow::Borrowed(self), request)
                .send(transport),
        )))
    }

    /// Where `request` goes, if it gets a credential (see
    /// [`exchange`](Self::exchange)): decided on a reference, so that the
    /// request itself moves only into the [`Exchange`].
    #[inline]
    fn routed<R: HttpRequest>(
        &self,
        request: &R,
        extensions: Option<&Extensions>,
        origin: Option<&Origin>,
    ) -> Option<Routed> {
        let extensions = extensions.or_else(|| request.extensions());
        if extensions.is_some_and(|e| e.get::<NoAuth>().is_some()) {
            return None;
        }
        let connection = extensions.and_then(|e| e.get::<Connection>());
        let target = request.target_known(origin, self.inner.router.authorities())?;
        let (Some(index), path_as_given) = self.inner.route_as_given(&target, connection) else {
            return None;
        };
        if self.inner.providers.providers[index]
            .caller_authenticated(request.headers(), || request.query())
        {
            return None;
        }
        let scoped = self.inner.router.per_connection(index);
        Some(Routed {
            index,
            connection: connection.cloned(),
            origin: origin.filter(|_| scoped).cloned().map(Box::new),
            resolve_path: !path_as_given,
        })
    }
}

/// What routing decided for a request, before the request is bound to it.
struct Routed {
    index: usize,
    connection: Option<Connection>,
    origin: Option<Box<Origin>>,
    resolve_path: bool,
}

impl Routed {
    /// The exchange of `request`, the very request this was decided for.
    #[inline]
    fn exchange<R>(self, auth: Cow<'_, TokenAuth>, request: R) -> Exchange<'_, R> {
        Exchange {
            auth,
            index: self.index,
            connection: self.connection,
            request,
            origin: self.origin,
            resolve_path: self.resolve_path,
        }
    }
}

impl<R: HttpRequest> Exchange<'_, R> {
    /// The description of the provider the request goes to.
    pub fn provider(&self) -> &Provider {
        &self.auth.inner.providers.providers[self.index]
    }

    /// The same exchange, owning a handle on the engine.
    pub fn into_owned(self) -> Exchange<'static, R> {
        Exchange {
            auth: Cow::Owned(self.auth.into_owned()),
            index: self.index,
            connection: self.connection,
            request: self.request,
            origin: self.origin,
            resolve_path: self.resolve_path,
        }
    }

    /// Sends the request through `transport` with the provider's
    /// credential:
    ///
    /// 1. gets the credential of the request's connection (a cache hit, or
    ///    one shared fetch); none: the request is not sent, the error is
    ///    [`Transport::auth_error`];
    /// 2. sends the path it was routed on (dot segments resolved);
    /// 3. keeps what a retry needs when the provider may retry
    ///    ([`Transport::keep_for_retry`]);
    /// 4. attaches the credential and sends;
    /// 5. refuses a response that a redirect took out of the provider's
    ///    prefixes with the credential on it (clients that follow redirects
    ///    themselves), and removes a query credential from what it hands
    ///    back;
    /// 6. on a rejection, renews (or takes the already renewed credential)
    ///    and sends the request once more, rebuilt from what was kept; never
    ///    in a loop.
    ///
    /// `transport` is taken by value so that an adapter can box exactly
    /// this future; pass `&mut transport` to keep it.
    ///
    /// # The size of this future
    ///
    /// Every request lives in it, and an adapter boxes it: every byte is
    /// copied when it moves, and glibc serves allocations over 1 KiB off
    /// its fast path (about 1,400 instructions more per request). So the
    /// request is kept once (in `self`, moved out only into the
    /// transport), a cache hit and the response checks are synchronous,
    /// and what follows a rejection (the rule, the retry, the response
    /// held meanwhile) runs in a box of its own: 712 bytes through the
    /// reqwest middleware (`tokenauth-instructions --sizes` prints it).
    pub fn send<T: Transport<Request = R>>(
        self,
        transport: T,
    ) -> impl Future<Output = Result<T::Response, T::Error>> {
        // An `async move` block rather than an `async fn`: an `async fn`
        // moves its arguments into locals, keeping the request twice.
        let mut this = self;
        let mut transport = transport;
        async move {
            let inner = &this.auth.inner;
            let index = this.index;
            let conn = match inner.connection(index, this.connection.as_ref()) {
                Ok(conn) => conn,
                Err(e) => return Err(transport.auth_error(e)),
            };
            // The cache's answer is taken apart before the miss is awaited:
            // a `match` on it would keep its `Result` (112 bytes) in the
            // future across that await.
            let cached = match inner.cached_or_failed(index, conn) {
                Some(Ok(credential)) => Some(credential),
                Some(Err(e)) => return Err(transport.auth_error(e)),
                None => None,
            };
            let credential = match cached {
                Some(credential) => credential,
                None => match inner.on_miss(index, conn).await {
                    Ok(credential) => credential,
                    Err(e) => return Err(transport.auth_error(e)),
                },
            };
            let provider = &inner.providers.providers[index];
            if inner.router.per_connection(index)
                && let Err(e) = within_scope(
                    provider,
                    conn,
                    &credential,
                    &this.request,
                    this.origin.as_deref(),
                )
            {
                return Err(transport.auth_error(e));
            }
            // Send exactly the path that was routed, as reqwest sends its
            // parsed URL.
            if this.resolve_path
                && let Err(e) = this.request.resolve_path()
            {
                return Err(transport.auth_error(uri_error(provider, e)));
            }
            // Everything the first attempt needs is scoped to this block, so
            // that none of it (the response, what the retry needs) stays in
            // the future while the rare rest runs.
            let rejected = {
                let mut retry = None;
                if provider.may_retry() {
                    transport.keep_for_retry(&this.request, &mut retry);
                }
                let scope = Scope {
                    auth: &this.auth,
                    index,
                    connection: this.connection.as_ref(),
                };
                // A response from the URL the request was kept with was not
                // redirected: no need to route it again.
                let sent = retry.as_ref().and_then(|kept| transport.kept_url(kept));
                // Attached in place: a `reqwest::Request` moved through a
                // function and back is two copies of its 264 bytes.
                scope.attach(&transport, &credential, &mut this.request)?;
                let result = transport.send(this.request).await;
                // Decided on a reference, so that the common answer is
                // checked and handed back in one move.
                if !result
                    .as_ref()
                    .is_ok_and(|response| provider.rejection_like(response.status()))
                {
                    return scope.received(&transport, &credential, result, sent);
                }
                let response = scope.received(&transport, &credential, result, sent)?;
                // The rare rest in a box of its own: it holds the response
                // and what the retry needs.
                Box::pin(scope.after_rejection(&mut transport, conn, credential, response, retry))
            };
            rejected.await
        }
    }
}

impl<'a, R: HttpRequest + 'a> Exchange<'a, R> {
    /// [`send`](Self::send), boxed, for an adapter that must hand on a
    /// boxed future and holds an [`Exchange`] already (to read its
    /// [`provider`](Self::provider) first, say). The built-in adapters
    /// route and box in one step instead
    /// ([`TokenAuth::send_owned_boxed`],
    /// [`TokenAuth::send_boxed_with_extensions`]), which copies the
    /// request once less.
    ///
    /// The future is made in its box rather than moved into it:
    /// `Box::pin(exchange.send(transport))` builds it beside the box first,
    /// then copies all of it (712 bytes through the reqwest middleware,
    /// most of them the room of states not yet entered) where only the
    /// request and a few handles were written.
    #[inline]
    pub fn send_boxed<T: Transport<Request = R> + 'a>(
        self,
        transport: T,
    ) -> std::pin::Pin<Box<impl Future<Output = Result<T::Response, T::Error>> + 'a>> {
        Box::into_pin(Box::write(Box::new_uninit(), self.send(transport)))
    }
}

impl<R> std::fmt::Debug for Exchange<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("provider", &self.auth.inner.provider_ids[self.index])
            .field("connection", &self.connection.as_ref().map(Connection::id))
            .finish_non_exhaustive()
    }
}

/// Checks that `request` goes where `credential` may: for a provider whose
/// prefixes differ per connection, inside the prefixes the credential was
/// made for. Routing matched a `*` prefix, which holds every instance, or
/// a prefix rendered from the request's `Connection`, which may carry other
/// values than the one the credential was made with under the same id.
fn within_scope<R: HttpRequest>(
    provider: &Provider,
    conn: &Connection,
    credential: &Credential,
    request: &R,
    origin: Option<&Origin>,
) -> Result<(), Error> {
    let Some(target) = request.target(origin) else {
        return Ok(());
    };
    let holds = |prefix: &Url| crate::route::prefix_holds(prefix, &target);
    let to = || format!("{}://{}:{}", target.scheme, target.host, target.port);
    if let Some(base) = credential.api_base() {
        if holds(base) {
            return Ok(());
        }
        return Err(Error::OutsideApiBase {
            provider: provider.id.clone(),
            connection: conn.id().to_owned(),
            to: to(),
            base: base.to_string(),
        });
    }
    let written_out = provider.api.iter().filter_map(|p| p.literal());
    if written_out.chain(credential.prefixes()).any(holds) {
        return Ok(());
    }
    Err(Error::OutsideConnectionPrefixes {
        provider: provider.id.clone(),
        connection: conn.id().to_owned(),
        to: to(),
    })
}

/// The error for a request URI that could not take the resolved path or a
/// query credential.
fn uri_error(provider: &Provider, source: http::Error) -> Error {
    Error::RequestUri {
        provider: provider.id.clone(),
        source: std::sync::Arc::new(source),
    }
}

/// Where one provider's credential may go: its prefixes in the engine's
/// router.
struct Scope<'a> {
    auth: &'a TokenAuth,
    index: usize,
    /// The request's connection (`None`: the default one), whose rendering
    /// of prefixes with placeholders is the scope.
    connection: Option<&'a Connection>,
}

impl Scope<'_> {
    /// After a rejection-like status: the rejection rule
    /// ([`Inner::after_response`]) and, when it says so, the one retry
    /// with the request rebuilt from what was kept.
    async fn after_rejection<T: Transport>(
        self,
        transport: &mut T,
        conn: &Connection,
        credential: Credential,
        response: T::Response,
        retry: Option<T::Kept>,
    ) -> Result<T::Response, T::Error> {
        // Rebuilt before the rule runs: it renews only for a request that
        // will be sent again.
        let retry = retry.and_then(|kept| transport.retry_request(kept));
        let renewed = self
            .auth
            .inner
            .after_response(
                self.index,
                conn,
                response.status(),
                &credential,
                retry.is_some(),
            )
            .await;
        let renewed = match renewed {
            Ok(renewed) => renewed,
            Err(e) => return Err(transport.auth_error(e)),
        };
        let (Some(renewed), Some(mut request)) = (renewed, retry) else {
            return Ok(response);
        };
        drop(response);
        self.attach(transport, &renewed, &mut request)?;
        let result = transport.send(request).await;
        self.received(transport, &renewed, result, None)
    }

    /// An attempt's request with `credential` attached; the caller's
    /// explicit values win, per name.
    fn attach<T: Transport>(
        &self,
        transport: &T,
        credential: &Credential,
        request: &mut T::Request,
    ) -> Result<(), T::Error> {
        match request.attach(credential.injection(), true) {
            Ok(()) => Ok(()),
            Err(e) => {
                let provider = &self.auth.inner.providers.providers[self.index];
                Err(transport.auth_error(uri_error(provider, e)))
            }
        }
    }

    /// What an attempt with `credential` brought back, checked and
    /// redacted. `sent`: the request's URL before the credential was
    /// attached, serialized, when known (a response from it needs no
    /// redirect check).
    ///
    /// Inlined: the response (136 bytes through reqwest) is then checked
    /// where it lies, not moved into a call and back on every request.
    #[inline(always)]
    fn received<T: Transport>(
        &self,
        transport: &T,
        credential: &Credential,
        result: Result<T::Response, T::Error>,
        sent: Option<&[u8]>,
    ) -> Result<T::Response, T::Error> {
        match result {
            Ok(response) => {
                if let Some(url) = response.url()
                    && !sent.is_some_and(|sent| same_bytes(sent, url.as_str().as_bytes()))
                    && let Err(e) = self.check_response_url(credential, url)
                {
                    return Err(transport.auth_error(e));
                }
                // Only a query credential shows in a response; checked
                // here, so that the response is not moved through `redact`
                // and back on every request.
                if credential.injection().has_query() {
                    return Ok(response.redact(credential));
                }
                Ok(response)
            }
            Err(e) => Err(transport.redact_error(e, credential)),
        }
    }

    /// Checks where the response to a request that carried `credential`
    /// came from, for an HTTP client that followed redirects on its own: a
    /// `url` outside this provider's prefixes means the credential may have
    /// gone there too (a custom header or a query parameter, which reqwest
    /// copies into `Referer`, anywhere; `Authorization` on the same origin,
    /// since reqwest, like browsers and curl, drops it for another origin).
    /// Then [`Error::RedirectLeftScope`], whose message says how to build
    /// the client; a client that follows
    /// [`may_follow_redirect`](TokenAuth::may_follow_redirect) never gets
    /// here.
    fn check_response_url(&self, credential: &Credential, url: &Url) -> Result<(), Error> {
        let inner = &self.auth.inner;
        let index = self.index;
        let id = &inner.provider_ids[index];
        let in_base = || {
            credential.api_base().is_none_or(|base| {
                crate::route::Target::from_url(url)
                    .is_some_and(|t| crate::route::prefix_holds(base, &t))
            })
        };
        if inner.route_url(url, self.connection) == Some(index) && in_base() {
            return Ok(());
        }
        let injection = credential.injection();
        let other_header = injection
            .headers()
            .map(|(name, _)| name)
            .find(|name| *name != http::header::AUTHORIZATION);
        let carried = if injection.has_query() {
            let names: Vec<&str> = injection.query().map(|(name, _)| name).collect();
            Some(format!(
                "the query parameter `{}`, which reqwest copies into the Referer header of the next hop",
                names.join("`, `")
            ))
        } else if let Some(name) = other_header {
            Some(format!("the `{name}` header"))
        } else {
            (injection.headers().next().is_some()
                && inner.router.shares_origin(index, url, |i, api| {
                    inner.rendered_prefix(i, api, self.connection)
                }))
            .then(|| "the Authorization header".to_owned())
        };
        let Some(credential) = carried else {
            return Ok(());
        };
        let to = url.origin().ascii_serialization();
        warn!(provider = %id, to = %to, "a redirect took the credential out of the provider's api prefixes; the response is withheld");
        Err(Error::RedirectLeftScope {
            provider: id.to_string(),
            to,
            credential,
        })
    }
}
