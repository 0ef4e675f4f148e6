use std::fmt;

/// The error of an [`Auth`](crate::Auth) service: no credential could be
/// had, or the inner service failed. Never a made-up HTTP response: a
/// request that got no credential is not sent at all.
///
/// `Display` and `source` are those of the wrapped error (it is
/// transparent), so error reports read the same with or without the layer.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthError<E> {
    /// No credential could be had for the request (a missing input, a failed
    /// login, ...). The request was not sent.
    Auth(tokenauth_core::Error),
    /// The inner service failed.
    Inner(E),
}

impl<E> AuthError<E> {
    /// The tokenauth error, if no credential could be had.
    pub fn auth(&self) -> Option<&tokenauth_core::Error> {
        match self {
            AuthError::Auth(e) => Some(e),
            _ => None,
        }
    }

    /// The inner service's error, if it failed.
    pub fn inner(&self) -> Option<&E> {
        match self {
            AuthError::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// The inner service's error, if it failed; `Err(self)` otherwise.
    pub fn into_inner(self) -> Result<E, Self> {
        match self {
            AuthError::Inner(e) => Ok(e),
            other => Err(other),
        }
    }
}

impl<E: fmt::Display> fmt::Display for AuthError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Auth(e) => e.fmt(f),
            AuthError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for AuthError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AuthError::Auth(e) => e.source(),
            AuthError::Inner(e) => e.source(),
        }
    }
}
