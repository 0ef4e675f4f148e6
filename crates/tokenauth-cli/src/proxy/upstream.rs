//! The HTTP client the proxy forwards with: hyper-util's pooled client over
//! rustls (aws-lc-rs, the platform's roots or `--cacert`), honouring
//! `--resolve`; tokenauth's tower layer goes on top of it.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls;
use tower_service::Service;

use super::body::ProxyBody;
use crate::common::parse_resolve;
use crate::{Global, Outcome};

/// The client below the tower layer.
pub(crate) type Upstream = Client<HttpsConnector<HttpConnector<Resolver>>, ProxyBody>;

/// Where the client sends and whom it trusts.
pub(crate) struct Reach {
    /// Host name (lower case) -> address, before the system's resolver.
    pub(crate) overrides: HashMap<String, SocketAddr>,
    /// Trust only these CA certificates (PEM) instead of the platform's
    /// verifier; with where they came from, for messages.
    pub(crate) roots: Option<(Vec<u8>, String)>,
}

impl Reach {
    /// `--resolve` and `--cacert`.
    pub(crate) fn from_global(g: &Global) -> Result<Self, Outcome> {
        let mut overrides = HashMap::new();
        for spec in &g.resolve {
            let Some((host, addr)) = parse_resolve(spec) else {
                eprintln!(
                    "error: --resolve {spec}: expected HOST:PORT:ADDR, e.g. api.2ba.nl:443:127.0.0.1:8443"
                );
                return Err(Outcome::InvalidInput);
            };
            overrides.insert(host.to_ascii_lowercase(), addr);
        }
        let roots = match &g.cacert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    eprintln!("error: cannot read --cacert {}: {e}", path.display());
                    Outcome::InvalidInput
                })?;
                Some((pem, format!("--cacert {}", path.display())))
            }
            None => None,
        };
        Ok(Reach { overrides, roots })
    }
}

/// The client: connections pooled per host, `connect_timeout` per attempt.
pub(crate) fn client(reach: Reach, connect_timeout: Duration) -> Result<Upstream, Outcome> {
    let mut http = HttpConnector::new_with_resolver(Resolver {
        overrides: Arc::new(reach.overrides),
        system: GaiResolver::new(),
    });
    // https URLs go through the TLS connector, which hands it the TCP part.
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = match &reach.roots {
        Some((pem, source)) => {
            let roots = read_roots(pem, source)?;
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| {
                    eprintln!("error: TLS set-up failed: {e}");
                    Outcome::AuthFailure
                })?
                .with_root_certificates(roots)
                .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(config)
        }
        None => HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(provider)
            .map_err(|e| {
                eprintln!(
                    "error: the platform's TLS certificate verifier could not be set up: {e}"
                );
                Outcome::AuthFailure
            })?,
    };
    let connector = tls.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector))
}

/// The CA certificates of a PEM file.
fn read_roots(pem: &[u8], source: &str) -> Result<rustls::RootCertStore, Outcome> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let added = cert
            .map_err(|e| e.to_string())
            .and_then(|cert| roots.add(cert).map_err(|e| e.to_string()));
        if let Err(e) = added {
            eprintln!("error: {source} holds a certificate that cannot be used: {e}");
            return Err(Outcome::InvalidInput);
        }
    }
    if roots.is_empty() {
        eprintln!("error: {source} holds no PEM certificate");
        return Err(Outcome::InvalidInput);
    }
    Ok(roots)
}

/// Name resolution: `--resolve` overrides first, else the system's.
#[derive(Clone)]
pub(crate) struct Resolver {
    overrides: Arc<HashMap<String, SocketAddr>>,
    system: GaiResolver,
}

impl Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.system.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        if let Some(addr) = self.overrides.get(&name.as_str().to_ascii_lowercase()) {
            let addr = *addr;
            return Box::pin(async move { Ok(vec![addr].into_iter()) });
        }
        let lookup = self.system.call(name);
        Box::pin(async move { Ok(lookup.await?.collect::<Vec<_>>().into_iter()) })
    }
}
