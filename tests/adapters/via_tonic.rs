//! The tower layer around a real tonic `Channel` (HTTP/2), calling a tiny
//! hand-written gRPC service on loopback that echoes the `authorization`
//! metadata it received. The token comes from the emulator's REOBtimaal
//! login (plain HTTP on loopback).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::helpers::CredentialOf as _;
use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use tokenauth::prelude::*;
use tokenauth::{Connection, NoAuth, Providers, TokenAuth};
use tokenauth_emulator::{Emulator, EmulatorConfig, Host};
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::UnaryService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tower::{Service, ServiceBuilder};

use crate::helpers::reob;

/// Messages are raw bytes: no protobuf needed.
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

/// The unary handler: replies with the request's `authorization` metadata.
struct EchoAuthorization;

impl UnaryService<Bytes> for EchoAuthorization {
    type Response = Bytes;
    type Future = Ready<Result<tonic::Response<Bytes>, Status>>;
    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        ready(Ok(tonic::Response::new(Bytes::from(auth))))
    }
}

/// The gRPC server: every method is the echo.
#[derive(Clone)]
struct EchoServer;

impl Service<http::Request<Body>> for EchoServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec);
            Ok(grpc.unary(EchoAuthorization, request).await)
        })
    }
}

struct Fixture {
    emu: Emulator,
    auth: TokenAuth,
    origin: String,
    channel: Channel,
}

async fn fixture() -> Fixture {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(
        EchoServer,
        tonic::transport::server::TcpIncoming::from(listener),
    ));
    let toml = format!(
        r#"
[providers.grpc]
api = ["{origin}/test.Echo/"]
inputs.username = {{ env = "REOBTIMAAL_USERNAME" }}
inputs.password = {{ env = "REOBTIMAAL_PASSWORD", secret = true }}
login = {{ url = "{login}", body = "form", fields = {{ "grant-type" = "password", username = "{{{{ inputs.username }}}}", Password = "{{{{ inputs.password }}}}" }} }}
response.access_token = "/access_token"
expiry.ttl = "60m"
inject = {{ header = "authorization", value = "bearer {{{{ token.access }}}}" }}
"#,
        login = emu.url(Host::Reobtimaal, "/api/Token")
    );
    let providers = Providers::from_toml("grpc.toml", &toml).unwrap();
    let auth = TokenAuth::builder(providers).build().unwrap();
    let channel = Endpoint::from_shared(origin.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    Fixture {
        emu,
        auth,
        origin,
        channel,
    }
}

async fn call<T>(
    grpc: &mut tonic::client::Grpc<T>,
    path: &'static str,
    request: Request<Bytes>,
) -> Result<String, Status>
where
    T: tonic::client::GrpcService<Body>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    grpc.ready()
        .await
        .map_err(|e| Status::from_error(e.into()))?;
    let reply = grpc
        .unary(request, PathAndQuery::from_static(path), RawCodec)
        .await?;
    Ok(String::from_utf8(reply.into_inner().to_vec()).unwrap())
}

fn with_connection(conn: &Connection) -> Request<Bytes> {
    let mut request = Request::new(Bytes::new());
    request.extensions_mut().insert(conn.clone());
    request
}

#[tokio::test]
async fn tonic_channel_gets_the_credential_one_token_request() {
    let f = fixture().await;
    let layer = f.auth.layer().origin(f.origin.parse().unwrap());
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(f.channel.clone());
    let mut grpc = tonic::client::Grpc::new(svc);
    let conn = reob();

    let mut expected = http::HeaderMap::new();
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(
            call(
                &mut grpc,
                "/test.Echo/Authorization",
                with_connection(&conn),
            )
            .await
            .unwrap(),
        );
    }
    f.auth
        .credential_of("grpc", Some(&conn))
        .await
        .unwrap()
        .apply_to_headers(&mut expected);
    let expected = expected["authorization"].to_str().unwrap();
    assert!(expected.starts_with("bearer "));
    assert!(seen.iter().all(|s| s == expected), "{seen:?}");
    assert_eq!(f.emu.stats().reobtimaal.token.requests, 1);

    // Outside the prefix, and with NoAuth: nothing attached.
    let outside = call(&mut grpc, "/other.Service/Method", with_connection(&conn))
        .await
        .unwrap();
    assert_eq!(outside, "");
    let mut opted_out = with_connection(&conn);
    opted_out.extensions_mut().insert(NoAuth);
    assert_eq!(
        call(&mut grpc, "/test.Echo/Authorization", opted_out)
            .await
            .unwrap(),
        ""
    );
}

#[tokio::test]
async fn tonic_with_origin_instead_of_the_layer_origin() {
    let f = fixture().await;
    // No origin on the layer: path-only URIs match nothing...
    let svc = ServiceBuilder::new()
        .layer(f.auth.layer())
        .service(f.channel.clone());
    let mut plain = tonic::client::Grpc::new(svc.clone());
    assert_eq!(
        call(
            &mut plain,
            "/test.Echo/Authorization",
            with_connection(&reob())
        )
        .await
        .unwrap(),
        ""
    );
    // ...but a client built with the origin sends absolute URIs.
    let mut grpc = tonic::client::Grpc::with_origin(svc, f.origin.parse().unwrap());
    let seen = call(
        &mut grpc,
        "/test.Echo/Authorization",
        with_connection(&reob()),
    )
    .await
    .unwrap();
    assert!(seen.starts_with("bearer "), "{seen}");
}

#[tokio::test]
async fn tonic_auth_failure_is_a_status_with_the_message() {
    let f = fixture().await;
    let layer = f.auth.layer().origin(f.origin.parse().unwrap());
    let mut grpc = tonic::client::Grpc::new(
        ServiceBuilder::new()
            .layer(layer)
            .service(f.channel.clone()),
    );
    let incomplete = Connection::new("incomplete").with_input("username", "u");
    let status = call(
        &mut grpc,
        "/test.Echo/Authorization",
        with_connection(&incomplete),
    )
    .await
    .unwrap_err();
    assert!(
        status.message().contains("input `password` has no value"),
        "{status:?}"
    );
    assert_eq!(f.emu.stats().reobtimaal.token.requests, 0);
}
