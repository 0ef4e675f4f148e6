use std::sync::Arc;

use tokenauth_core::TokenAuth;
use tower_layer::Layer;

use crate::body::{CommonBodies, NoRetry};
use tokenauth_core::request::Origin;

use crate::service::Auth;

/// A [`Layer`] that wraps services in [`Auth`]: requests to a provider's
/// `api` URLs get its credential. See the [crate documentation](crate).
///
/// Builders take `self` and return `Self`:
/// `AuthLayer::new(auth).origin(uri).clone_body(policy)`.
#[derive(Clone, Debug)]
pub struct AuthLayer<C = CommonBodies> {
    pub(crate) auth: TokenAuth,
    pub(crate) origin: Option<Arc<Origin>>,
    pub(crate) clone_body: C,
}

impl AuthLayer {
    /// A layer over `auth`, with no origin and the [`CommonBodies`] retry
    /// policy.
    pub fn new(auth: TokenAuth) -> Self {
        AuthLayer {
            auth,
            origin: None,
            clone_body: CommonBodies,
        }
    }
}

impl<C> AuthLayer<C> {
    /// The origin (scheme, host, port) of requests whose URI is a bare path,
    /// used only to route them. A tonic `Channel` is called with path-only
    /// URIs (`/package.Service/Method`), and adds its endpoint's origin
    /// below this layer: set this to that endpoint. (Alternatively build the
    /// tonic client with `with_origin`, which makes the URIs absolute.)
    ///
    /// Defaults to none: a request with a path-only URI matches no provider
    /// and is sent untouched. Absolute URIs are always routed by their own
    /// origin. Only the scheme and authority of `origin` are used.
    ///
    /// # Panics
    ///
    /// If `origin` has no scheme or no host, or a scheme other than `http`
    /// or `https` without a port.
    pub fn origin(mut self, origin: http::Uri) -> Self {
        let parsed = Origin::from_uri(&origin).unwrap_or_else(|| {
            panic!("AuthLayer::origin: `{origin}` has no http(s) scheme and host (use e.g. `http://127.0.0.1:50051`)")
        });
        self.origin = Some(Arc::new(parsed));
        self
    }

    /// How a request body is copied for the one retry after a rejected
    /// credential. Defaults to [`CommonBodies`] (in-memory bodies such as
    /// `Full<Bytes>` and `String` are copied; streams are not, so they are
    /// not retried).
    pub fn clone_body<C2>(self, policy: C2) -> AuthLayer<C2> {
        AuthLayer {
            auth: self.auth,
            origin: self.origin,
            clone_body: policy,
        }
    }

    /// Never retry: [`clone_body`](Self::clone_body) with [`NoRetry`].
    pub fn no_retry(self) -> AuthLayer<NoRetry> {
        self.clone_body(NoRetry)
    }

    /// The engine.
    pub fn auth(&self) -> &TokenAuth {
        &self.auth
    }
}

impl<S, C: Clone> Layer<S> for AuthLayer<C> {
    type Service = Auth<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}

/// Adds [`layer`](LayerExt::layer) to [`TokenAuth`], so that
/// `ServiceBuilder::new().layer(auth.layer())` reads naturally.
pub trait LayerExt {
    /// An [`AuthLayer`] sharing this engine (and its token cache).
    fn layer(&self) -> AuthLayer;
}

impl LayerExt for TokenAuth {
    fn layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone())
    }
}
