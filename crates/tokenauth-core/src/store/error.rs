//! The stores' error type.

use std::fmt;

/// A store operation failed.
///
/// [`Display`](fmt::Display) says what failed and how to fix it (a file
/// store's message names the file; a Redis store's names the server, never
/// its password); it never contains a token, a key or another secret. The
/// [`kind`](Self::kind) tells callers what to do about it.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// What kind of failure a [`StoreError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// A file or directory of a file store could not be read or written.
    Io,
    /// The store's server could not be reached, or did not answer in time.
    /// The engine may go on with what it has cached.
    Unavailable,
    /// A stored value is not one this store wrote (corrupt, truncated,
    /// another program's): remove it.
    Corrupt,
    /// A stored value is encrypted with a key this store does not have, or
    /// was tampered with.
    Decrypt,
    /// The store is set up wrongly (no encryption key, a bad URL or option).
    Config,
    /// The server refused or failed an operation.
    Server,
}

impl StoreError {
    /// An error of `kind` whose message is `message`: what failed and how to
    /// fix it, without any secret.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source` (which must not hold a secret in
    /// its message either). The message does not repeat the source.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A file store's I/O error, whose message already names the path and says
/// what to do: kept as the message (its kind decides [`StoreErrorKind::Io`]
/// or, for a file that is not ours, [`StoreErrorKind::Corrupt`]).
impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::InvalidData => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Io,
        };
        StoreError::new(kind, e.to_string())
    }
}
