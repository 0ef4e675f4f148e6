//! The tower layer around a hyper-util legacy client.
//!
//! Run: `cargo run --example tower_hyper`
//!
//! No credentials or network needed: the example starts the emulator of the
//! seed providers in-process (HTTPS on 127.0.0.1 under the real host names),
//! uses the repository's unchanged `providers.toml`, and gives the hyper
//! client the emulator's CA and a resolver for the real host names. Against
//! the real providers, use a connector with the platform roots instead.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use tokenauth::prelude::*;
use tokenauth::{AuthError, Connection, Providers, TokenAuth};
use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, Emulator, EmulatorConfig, REOB_DEMO_PASSWORD,
    REOB_DEMO_USERNAME,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tower::{Service, ServiceBuilder, ServiceExt};

/// Resolves the real host names to the emulator.
#[derive(Clone)]
struct Resolve(Arc<HashMap<String, SocketAddr>>);

impl Service<Name> for Resolve {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, name: Name) -> Self::Future {
        let found = self.0.get(name.as_str()).map(|a| vec![*a].into_iter());
        std::future::ready(found.ok_or_else(|| std::io::Error::other("unknown host")))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start(EmulatorConfig::default().tls(true)).await?;
    let ca_pem = emulator.ca_cert_pem().unwrap_or("");

    // Token requests: the engine's reqwest client, pointed at the emulator.
    let token_client = emulator
        .reqwest_client_builder()
        .ok_or("the emulator has no TLS listener")?;
    let providers = Providers::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/providers.toml"))?;
    let auth = TokenAuth::builder(providers)
        .http_client_builder(token_client)
        .build()?;

    // API requests: a hyper-util client (rustls, the emulator's CA).
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let hosts = emulator
        .host_overrides()
        .into_iter()
        .map(|(h, a)| (h.to_owned(), a));
    let mut http = HttpConnector::new_with_resolver(Resolve(Arc::new(hosts.collect())));
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(https);

    // The one line.
    let mut service = ServiceBuilder::new().layer(auth.layer()).service(client);

    let reob = Connection::new("reob-demo")
        .with_input("username", REOB_DEMO_USERNAME)
        .with_secret("password", REOB_DEMO_PASSWORD);
    let bro = Connection::new("bro-demo")
        .with_input("username", BRO_DEMO_USERNAME)
        .with_secret("token", BRO_DEMO_PASSWORD);
    let calls = [
        (
            "GET",
            "https://api.reobtimaal-diensten.nl/api/v1/projecten",
            &reob,
        ),
        (
            "GET",
            "https://www.bronhouderportaal-bro.nl/api/v2/leveringen/42",
            &bro,
        ),
    ];
    for (method, url, conn) in calls {
        for _ in 0..3 {
            let mut request = http::Request::builder()
                .method(method)
                .uri(url)
                .body(Empty::new())?;
            request.extensions_mut().insert(conn.clone());
            let response = service.ready().await?.call(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body)?;
            println!("{method} {url} -> {status} as {}", body["user"]);
        }
    }

    // No connection and no REOBTIMAAL_* variables: an error, not a response.
    let request = http::Request::get(calls[0].1).body(Empty::new())?;
    match service.ready().await?.call(request).await {
        Err(AuthError::Auth(e)) => println!("default connection: {e}"),
        other => println!("default connection: {:?}", other.map(|r| r.status())),
    }

    println!(
        "token requests: REOBtimaal {}, BRO {} (static credential)",
        emulator.stats().reobtimaal.token.requests,
        emulator.stats().bro.token.requests
    );
    Ok(())
}
