use std::any::Any;

use bytes::Bytes;
use http_body_util::{Empty, Full};

/// Copies a request body for the one retry after a rejected credential.
///
/// The copy is taken before the request is sent, and only for providers
/// whose rejections may be retried: those that renew
/// (`on_unauthorized.action = "renew"`) or fetch tokens (a token replaced
/// while the request was in flight is retried with the current one).
/// `None`: the request is not retried and the rejected response is returned
/// as it is.
///
/// Implementations: [`CommonBodies`] (the default), [`NoRetry`], and any
/// `Fn(&B) -> Option<B>` closure.
pub trait CloneBody<B>: Clone + Send + Sync + 'static {
    /// A copy of `body`, or `None` if it cannot be copied (a stream).
    fn clone_body(&self, body: &B) -> Option<B>;
}

/// The default [`CloneBody`]: copies the body types that hold their bytes in
/// memory, whatever the service's body type parameter is:
/// [`Full<Bytes>`](http_body_util::Full), [`Empty<Bytes>`](http_body_util::Empty),
/// [`Bytes`], [`String`], [`Vec<u8>`], `&'static str` and `()`.
///
/// Any other body (a stream, `hyper::body::Incoming`, `tonic::body::Body`,
/// a boxed body) is not copied, so the request is not retried. For a body
/// type of your own that can be copied, pass a closure that copies it.
///
/// The check is a comparison of [`TypeId`](std::any::TypeId)s: no trait
/// bound on the body type beyond `'static`, which every body a client sends
/// already satisfies.
#[derive(Clone, Copy, Debug, Default)]
pub struct CommonBodies;

/// `t` as a `B`, if `T` and `B` are the same type.
fn cast<T: 'static, B: 'static>(t: T) -> Option<B> {
    let mut slot = Some(t);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<B>>()
        .and_then(Option::take)
}

fn copy<T: Clone + 'static, B: 'static>(body: &B) -> Option<B> {
    (body as &dyn Any)
        .downcast_ref::<T>()
        .and_then(|t| cast(t.clone()))
}

impl<B: 'static> CloneBody<B> for CommonBodies {
    fn clone_body(&self, body: &B) -> Option<B> {
        copy::<Full<Bytes>, B>(body)
            .or_else(|| copy::<Empty<Bytes>, B>(body))
            .or_else(|| copy::<Bytes, B>(body))
            .or_else(|| copy::<String, B>(body))
            .or_else(|| copy::<Vec<u8>, B>(body))
            .or_else(|| copy::<&'static str, B>(body))
            .or_else(|| copy::<(), B>(body))
    }
}

/// A [`CloneBody`] that copies nothing: rejected requests are never retried
/// (the token is still invalidated, so the next request gets a new one).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRetry;

impl<B> CloneBody<B> for NoRetry {
    fn clone_body(&self, _body: &B) -> Option<B> {
        None
    }
}

/// A closure is a [`CloneBody`], e.g. for a body type of your own that is
/// `Clone`:
///
/// ```
/// use tokenauth_tower::AuthLayer;
/// # fn layer(auth: tokenauth_core::TokenAuth) {
/// #[derive(Clone)]
/// struct MyBody(bytes::Bytes);
///
/// let layer = AuthLayer::new(auth).clone_body(|b: &MyBody| Some(b.clone()));
/// # let _ = layer; }
/// ```
impl<B, F> CloneBody<B> for F
where
    F: Fn(&B) -> Option<B> + Clone + Send + Sync + 'static,
{
    fn clone_body(&self, body: &B) -> Option<B> {
        self(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_bodies_copy_in_memory_bodies_only() {
        let full = Full::new(Bytes::from_static(b"abc"));
        assert!(CommonBodies.clone_body(&full).is_some());
        assert!(CommonBodies.clone_body(&Empty::<Bytes>::new()).is_some());
        assert_eq!(
            CommonBodies.clone_body(&String::from("x")).as_deref(),
            Some("x")
        );
        assert_eq!(CommonBodies.clone_body(&vec![1u8, 2]), Some(vec![1u8, 2]));
        assert_eq!(
            CommonBodies.clone_body(&Bytes::from_static(b"b")),
            Some(Bytes::from_static(b"b"))
        );
        assert_eq!(CommonBodies.clone_body(&"s"), Some("s"));
        assert_eq!(CommonBodies.clone_body(&()), Some(()));

        #[derive(Clone, Debug, PartialEq)]
        struct Stream(u8);
        assert_eq!(CommonBodies.clone_body(&Stream(1)), None);
        assert_eq!(NoRetry.clone_body(&String::new()), None);
        let f = |s: &Stream| Some(s.clone());
        assert_eq!(f.clone_body(&Stream(2)), Some(Stream(2)));
    }
}
