//! The tower layer around a tonic `Channel`.
//!
//! Run: `cargo run --example tonic`
//!
//! No credentials or network needed: the example starts, in-process, the
//! emulator (for the REOBtimaal login) and a tiny gRPC server on 127.0.0.1
//! whose one method replies with the `authorization` metadata it received.
//! The messages are raw bytes (a hand-written codec), so no protobuf build
//! step is needed; a generated client takes the wrapped channel the same way
//! (`MyServiceClient::new(channel)`).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use tokenauth::prelude::*;
use tokenauth::{Connection, Providers, TokenAuth};
use tokenauth_emulator::{Emulator, EmulatorConfig, Host, REOB_DEMO_PASSWORD, REOB_DEMO_USERNAME};
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::UnaryService;
use tonic::transport::Endpoint;
use tonic::{Request, Status};
use tower::{Service, ServiceBuilder};

/// Raw-bytes messages.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The server's one method: echo the `authorization` metadata.
struct WhoAmI;

impl UnaryService<Bytes> for WhoAmI {
    type Response = Bytes;
    type Future = Ready<Result<tonic::Response<Bytes>, Status>>;
    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        // Never print a credential: its scheme and length will do.
        let reply = match auth.and_then(|a| a.split_once(' ')) {
            Some((scheme, token)) => {
                format!("authorization: {scheme} <{} characters>", token.len())
            }
            None => "no authorization".to_owned(),
        };
        ready(Ok(tonic::Response::new(Bytes::from(reply))))
    }
}

#[derive(Clone)]
struct Server;

impl Service<http::Request<Body>> for Server {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            Ok(tonic::server::Grpc::new(RawCodec)
                .unary(WhoAmI, request)
                .await)
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start(EmulatorConfig::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(
        Server,
        tonic::transport::server::TcpIncoming::from(listener),
    ));

    // A provider whose API is the gRPC service, logging in at the emulated
    // REOBtimaal token endpoint (plain HTTP is allowed on loopback).
    let toml = format!(
        r#"
[providers.grpc]
api = ["{origin}/demo.WhoAmI/"]
inputs.username = {{ env = "GRPC_DEMO_USERNAME" }}
inputs.password = {{ env = "GRPC_DEMO_PASSWORD", secret = true }}
login = {{ url = "{login}", body = "form", fields = {{ "grant-type" = "password", username = "{{{{ inputs.username }}}}", Password = "{{{{ inputs.password }}}}" }} }}
response.access_token = "/access_token"
expiry.ttl = "60m"
inject = {{ header = "authorization", value = "Bearer {{{{ token.access }}}}" }}
"#,
        login = emulator.url(Host::Reobtimaal, "/api/Token")
    );
    let auth = TokenAuth::builder(Providers::from_toml("grpc.toml", &toml)?).build()?;

    // The channel, wrapped. tonic sends path-only URIs to the channel, so the
    // layer is told the origin it routes them with.
    let channel = Endpoint::from_shared(origin.clone())?.connect().await?;
    let channel = ServiceBuilder::new()
        .layer(auth.layer().origin(origin.parse()?))
        .service(channel);
    let mut client = tonic::client::Grpc::new(channel);

    let conn = Connection::new("demo")
        .with_input("username", REOB_DEMO_USERNAME)
        .with_secret("password", REOB_DEMO_PASSWORD);
    for path in ["/demo.WhoAmI/Get", "/demo.WhoAmI/Get", "/other.Service/Get"] {
        let mut request = Request::new(Bytes::new());
        request.extensions_mut().insert(conn.clone());
        client.ready().await?;
        let reply = client
            .unary(request, PathAndQuery::from_static(path), RawCodec)
            .await?;
        println!("{path} -> {}", String::from_utf8_lossy(reply.get_ref()));
    }

    // Missing inputs: a Status carrying tokenauth's message.
    client.ready().await?;
    let status = client
        .unary::<Bytes, Bytes, _>(
            Request::new(Bytes::new()),
            PathAndQuery::from_static("/demo.WhoAmI/Get"),
            RawCodec,
        )
        .await
        .unwrap_err();
    println!(
        "without a connection: {:?}: {}",
        status.code(),
        status.message()
    );
    println!(
        "token requests: {}",
        emulator.stats().reobtimaal.token.requests
    );
    Ok(())
}
