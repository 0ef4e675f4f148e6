use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::TryFuture;
use pin_project_lite::pin_project;

use crate::error::AuthError;

type BoxAuthFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, AuthError<E>>> + Send>>;

pin_project! {
    /// The response future of [`Auth`](crate::Auth).
    ///
    /// A request that gets no credential (no provider matches, [`NoAuth`],
    /// or the caller authenticated it) polls the inner service's future
    /// directly; an authenticated one runs a boxed future that gets the
    /// credential, calls the inner service and handles a rejection.
    ///
    /// [`NoAuth`]: tokenauth_core::NoAuth
    pub struct ResponseFuture<F>
    where
        F: TryFuture,
    {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F>
    where
        F: TryFuture,
    {
        Passthrough { #[pin] future: F },
        Authenticated { future: BoxAuthFuture<F::Ok, F::Error> },
    }
}

impl<F: TryFuture> ResponseFuture<F> {
    pub(crate) fn passthrough(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Passthrough { future },
        }
    }

    pub(crate) fn authenticated(future: BoxAuthFuture<F::Ok, F::Error>) -> Self {
        ResponseFuture {
            kind: Kind::Authenticated { future },
        }
    }
}

impl<F: TryFuture> Future for ResponseFuture<F> {
    type Output = Result<F::Ok, AuthError<F::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { future } => future.try_poll(cx).map_err(AuthError::Inner),
            KindProj::Authenticated { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F: TryFuture> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Passthrough { .. } => "passthrough",
            Kind::Authenticated { .. } => "authenticated",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
