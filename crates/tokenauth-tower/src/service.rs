use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, Uri};
use tokenauth_core::route::{Target, resolved_path};
use tokenauth_core::{Connection, NoAuth, TokenAuth};
use tower_service::Service;

use crate::body::{CloneBody, CommonBodies};
use crate::error::AuthError;
use crate::future::ResponseFuture;
use crate::layer::AuthLayer;

/// The origin set with [`AuthLayer::origin`], for routing path-only URIs.
#[derive(Debug)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    pub(crate) fn new(uri: &Uri) -> Self {
        let target = Target::from_uri(uri).unwrap_or_else(|| {
            panic!("AuthLayer::origin: `{uri}` has no http(s) scheme and host (use e.g. `http://127.0.0.1:50051`)")
        });
        Origin {
            scheme: target.scheme.to_ascii_lowercase(),
            host: target.host.to_owned(),
            port: target.port,
        }
    }
}

/// The routing view of a request URI: its own origin if it is absolute,
/// else the configured origin.
fn target<'a>(uri: &'a Uri, origin: Option<&'a Origin>) -> Option<Target<'a>> {
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Target::from_uri(uri);
    }
    let origin = origin?;
    Some(Target {
        scheme: &origin.scheme,
        host: &origin.host,
        port: origin.port,
        path: match uri.path() {
            "" => "/",
            p => p,
        },
    })
}

/// A service that attaches the credential of the provider a request's URI
/// belongs to, then calls the inner service. Built by [`AuthLayer`]; see the
/// [crate documentation](crate) for the rules.
#[derive(Clone, Debug)]
pub struct Auth<S, C = CommonBodies> {
    pub(crate) inner: S,
    pub(crate) auth: TokenAuth,
    pub(crate) origin: Option<Arc<Origin>>,
    pub(crate) clone_body: C,
}

impl<S> Auth<S> {
    /// Wraps `inner` (same as `AuthLayer::new(auth).layer(inner)`).
    pub fn new(inner: S, auth: TokenAuth) -> Self {
        Auth {
            inner,
            auth,
            origin: None,
            clone_body: CommonBodies,
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
        &self.auth
    }

    /// True when `request` would get a credential: no [`NoAuth`], a provider
    /// matches, and the caller set no credential.
    fn wants_credential<B>(&self, request: &Request<B>) -> bool {
        if request.extensions().get::<NoAuth>().is_some() {
            return false;
        }
        target(request.uri(), self.origin.as_deref())
            .and_then(|t| self.auth.route_target(&t))
            .is_some_and(|p| !p.caller_authenticated(request.headers(), request.uri().query()))
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
        if !self.wants_credential(&request) {
            return ResponseFuture::passthrough(self.inner.call(request));
        }
        // The ready service goes into the future; `self` keeps a clone that
        // must be driven to readiness again before its next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::authenticated(Box::pin(authenticate(
            self.auth.clone(),
            self.origin.clone(),
            self.clone_body.clone(),
            inner,
            request,
        )))
    }
}

/// Gets the credential, sends the request, and on a rejection renews and
/// retries once (if the body could be copied).
async fn authenticate<S, C, B, ResBody>(
    auth: TokenAuth,
    origin: Option<Arc<Origin>>,
    clone_body: C,
    mut inner: S,
    mut request: Request<B>,
) -> Result<Response<ResBody>, AuthError<S::Error>>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    C: CloneBody<B>,
{
    let provider = target(request.uri(), origin.as_deref()).and_then(|t| auth.route_target(&t));
    let Some(provider) = provider else {
        return inner.call(request).await.map_err(AuthError::Inner);
    };
    let connection = request.extensions().get::<Connection>().cloned();
    let credential = provider
        .credential(connection.as_ref())
        .await
        .map_err(AuthError::Auth)?;
    // The request was routed on its resolved path; send that path, as
    // reqwest does, so the server serves exactly what was routed.
    if let Some(path) = resolved_path(request.uri().path()) {
        set_path(request.uri_mut(), &path).map_err(AuthError::Uri)?;
    }
    // The copy for a retry is taken before the credential is attached.
    let retry = if provider.may_retry() {
        copy_request(&request, &clone_body)
    } else {
        None
    };
    credential
        .apply_to_request(&mut request)
        .map_err(AuthError::Uri)?;
    let response = inner.call(request).await.map_err(AuthError::Inner)?;
    let renewed = provider
        .after_response(
            response.status().as_u16(),
            connection.as_ref(),
            &credential,
            retry.is_some(),
        )
        .await
        .map_err(AuthError::Auth)?;
    let (Some(renewed), Some(mut retry)) = (renewed, retry) else {
        return Ok(response);
    };
    drop(response);
    renewed
        .apply_to_request(&mut retry)
        .map_err(AuthError::Uri)?;
    poll_fn(|cx| inner.poll_ready(cx))
        .await
        .map_err(AuthError::Inner)?;
    inner.call(retry).await.map_err(AuthError::Inner)
}

/// Replaces the path of `uri`, keeping its query.
fn set_path(uri: &mut Uri, path: &str) -> Result<(), http::Error> {
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(http::uri::PathAndQuery::try_from(path_and_query)?);
    *uri = Uri::from_parts(parts)?;
    Ok(())
}

fn copy_request<B, C: CloneBody<B>>(request: &Request<B>, clone_body: &C) -> Option<Request<B>> {
    let body = clone_body.clone_body(request.body())?;
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}
