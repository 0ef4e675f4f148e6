use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::{BoxFuture, Either, MapErr, TryFuture, TryFutureExt as _};
use pin_project_lite::pin_project;

use crate::error::AuthError;

type Passthrough<F> = MapErr<F, fn(<F as TryFuture>::Error) -> AuthError<<F as TryFuture>::Error>>;
type Authenticated<F> =
    BoxFuture<'static, Result<<F as TryFuture>::Ok, AuthError<<F as TryFuture>::Error>>>;

pin_project! {
    /// The response future of [`Auth`](crate::Auth).
    ///
    /// A request that gets no credential (no provider matches, [`NoAuth`],
    /// or the caller authenticated it) polls the inner service's future
    /// directly; an authenticated one runs core's request sequence, boxed.
    ///
    /// [`NoAuth`]: tokenauth_core::NoAuth
    pub struct ResponseFuture<F: TryFuture> {
        #[pin]
        inner: Either<Passthrough<F>, Authenticated<F>>,
    }
}

impl<F: TryFuture> ResponseFuture<F> {
    pub(crate) fn passthrough(future: F) -> Self {
        let inner: Passthrough<F> = future.map_err(AuthError::Inner);
        ResponseFuture {
            inner: Either::Left(inner),
        }
    }

    pub(crate) fn authenticated(future: Authenticated<F>) -> Self {
        ResponseFuture {
            inner: Either::Right(future),
        }
    }
}

impl<F: TryFuture> Future for ResponseFuture<F> {
    type Output = Result<F::Ok, AuthError<F::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

pin_project! {
    /// One attempt through the inner service, its error wrapped: the
    /// inner service's own future for the first attempt (it was ready),
    /// readiness and the call in a box for the retry (rare).
    ///
    /// Written out rather than `Either<MapErr<F, _>, BoxFuture<_>>`: every
    /// poll of that goes through two adapters, and `MapErr` moves its whole
    /// state out when the response is ready.
    #[project = AttemptProj]
    pub(crate) enum Attempt<'a, F: TryFuture> {
        /// The first attempt.
        Called { #[pin] future: F },
        /// The retry.
        Retry { future: BoxFuture<'a, Result<F::Ok, AuthError<F::Error>>> },
    }
}

impl<F: TryFuture> Future for Attempt<'_, F> {
    type Output = Result<F::Ok, AuthError<F::Error>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AttemptProj::Called { future } => future.try_poll(cx).map_err(AuthError::Inner),
            AttemptProj::Retry { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F: TryFuture> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            Either::Left(_) => "passthrough",
            Either::Right(_) => "authenticated",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
