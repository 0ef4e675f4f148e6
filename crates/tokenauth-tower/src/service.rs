use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::task::{Context, Poll};

use http::{Extensions, HeaderMap, Method, Request, Response, Uri, Version};
use tokenauth_core::TokenAuth;
use tokenauth_core::request::Transport;
use tower_service::Service;

use crate::body::{CloneBody, CommonBodies};
use crate::error::AuthError;
use crate::future::{Attempt, ResponseFuture};
use crate::layer::AuthLayer;

/// A service that attaches the credential of the provider a request's URI
/// belongs to, then calls the inner service. Built by [`AuthLayer`]; see the
/// [crate documentation](crate) for the rules.
#[derive(Clone, Debug)]
pub struct Auth<S, C = CommonBodies> {
    pub(crate) inner: S,
    pub(crate) layer: AuthLayer<C>,
}

impl<S> Auth<S> {
    /// Wraps `inner` (same as `AuthLayer::new(auth).layer(inner)`).
    pub fn new(inner: S, auth: TokenAuth) -> Self {
        Auth {
            inner,
            layer: AuthLayer::new(auth),
        }
    }

    /// An [`AuthLayer`] over `auth`.
    pub fn layer(auth: TokenAuth) -> AuthLayer {
        AuthLayer::new(auth)
    }
}

impl<S, C> Auth<S, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The engine.
    pub fn auth(&self) -> &TokenAuth {
        &self.layer.auth
    }
}

impl<S, C, B, ResBody> Service<Request<B>> for Auth<S, C>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    C: CloneBody<B>,
    B: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = AuthError<S::Error>;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(AuthError::Inner)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let AuthLayer {
            auth,
            origin,
            clone_body,
        } = &self.layer;
        let inner = &mut self.inner;
        // The box holds exactly the exchange's future (see `Exchange::send`
        // on its size).
        let sent = auth.send_owned_boxed(request, None, origin.as_deref(), || {
            // The ready service goes into the future; `self` keeps a clone
            // that must be driven to readiness again before its next call.
            let clone = inner.clone();
            Downstream {
                service: std::mem::replace(inner, clone),
                clone_body: clone_body.clone(),
                ready: true,
                types: PhantomData,
            }
        });
        match sent {
            Ok(future) => ResponseFuture::authenticated(future),
            Err(request) => ResponseFuture::passthrough(self.inner.call(request)),
        }
    }
}

/// What a request leaves behind for the one retry: its parts, the request
/// rebuilt from them only for a retry (rare). An `http::Uri` clone shares
/// its bytes.
struct Kept<B> {
    method: Method,
    uri: Uri,
    version: Version,
    /// `None` for a request without headers (most: the HTTP client adds
    /// its own below this layer); boxed, so that a request that has none
    /// does not carry the room for them through its future.
    headers: Option<Box<HeaderMap>>,
    extensions: Extensions,
    body: B,
}

/// The inner service, as core's request sequence sends through it.
struct Downstream<S, C, B, ResBody> {
    service: S,
    clone_body: C,
    /// The service is ready for a call (it was, when it was taken).
    ready: bool,
    /// The request and response types `S` is a service of.
    types: PhantomData<fn(B) -> ResBody>,
}

impl<S, C, B, ResBody> Transport for Downstream<S, C, B, ResBody>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Send,
    S::Future: Send,
    S::Error: Send,
    C: CloneBody<B>,
    B: Send + 'static,
    ResBody: Send + 'static,
{
    type Request = Request<B>;
    type Response = Response<ResBody>;
    type Error = AuthError<S::Error>;
    type Kept = Kept<B>;

    fn send(
        &mut self,
        request: Request<B>,
    ) -> impl Future<Output = Result<Response<ResBody>, Self::Error>> + Send {
        if std::mem::replace(&mut self.ready, false) {
            // The first attempt: the service is ready, so it is called now
            // and its future is all there is to wait for. The exchange's
            // future, which every request is boxed in, then does not hold
            // the request a second time.
            Attempt::Called {
                future: self.service.call(request),
            }
        } else {
            // The retry, after a rejection (rare): readiness first.
            Attempt::Retry {
                future: Box::pin(async move {
                    poll_fn(|cx| self.service.poll_ready(cx))
                        .await
                        .map_err(AuthError::Inner)?;
                    self.service.call(request).await.map_err(AuthError::Inner)
                }),
            }
        }
    }

    fn keep_for_retry(&self, request: &Request<B>, kept: &mut Option<Kept<B>>) {
        let Some(body) = self.clone_body.clone_body(request.body()) else {
            return;
        };
        *kept = Some(Kept {
            body,
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            // Most requests carry no header yet: nothing to clone, or to
            // drop after the response.
            headers: (!request.headers().is_empty()).then(|| Box::new(request.headers().clone())),
            extensions: request.extensions().clone(),
        });
    }

    fn retry_request(&self, kept: Kept<B>) -> Option<Request<B>> {
        let mut request = Request::new(kept.body);
        *request.method_mut() = kept.method;
        *request.uri_mut() = kept.uri;
        *request.version_mut() = kept.version;
        if let Some(headers) = kept.headers {
            *request.headers_mut() = *headers;
        }
        *request.extensions_mut() = kept.extensions;
        Some(request)
    }

    fn auth_error(&self, error: tokenauth_core::Error) -> Self::Error {
        AuthError::Auth(error)
    }
}
