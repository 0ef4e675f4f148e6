//! TLS for the HTTP clients, chosen by a feature of this crate (and of the
//! `tokenauth` facade), passed through to reqwest:
//!
//! | feature | reqwest's backend |
//! |---|---|
//! | `rustls-aws-lc` (default) | rustls with aws-lc-rs (reqwest's `rustls`) |
//! | `rustls-ring` | rustls with ring (reqwest's `rustls-no-provider`; ring is installed as rustls's process default, see [`install_default_provider`]) |
//! | `native-tls` | the platform's TLS: OpenSSL on Linux, Security.framework, SChannel |
//!
//! With `default-features = false` and none of them, the engine refuses to
//! build for a description with an `https` URL (`Error::NoTls`), instead of
//! failing every token request.

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
