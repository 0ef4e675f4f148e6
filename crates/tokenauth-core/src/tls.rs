//! The TLS backend chosen by a feature (see the crate documentation).

/// Makes the chosen TLS backend ready for building `reqwest` clients. With
/// `rustls-ring` it installs ring as rustls's process-wide default crypto
/// provider (unless one is installed already); with the other features it
/// does nothing. The engine calls it when it is built; call it yourself if
/// you build a `reqwest::Client` of your own before the engine.
pub fn install_default_provider() {
    #[cfg(feature = "rustls-ring")]
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A TLS backend was compiled in.
pub(crate) const ENABLED: bool = cfg!(any(
    feature = "rustls-aws-lc",
    feature = "rustls-ring",
    feature = "native-tls"
));
