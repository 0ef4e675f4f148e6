//! The neutral server every HTTP variant talks to, in a child process of its
//! own (so none of its instructions are counted): `POST /token` answers a
//! client-credentials token reply, `GET /api/...` answers `200 ok` to a
//! request that carries that token and `401` to any other, so a variant
//! that failed to attach the credential fails the run instead of being
//! measured.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The access token the server issues and expects. Not a secret: a fixture.
pub(crate) const TOKEN: &str = "instructions-bench-access-token-0123456789abcdef";

/// The `Authorization` value of the fixed-header variants.
pub(crate) fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// Serves on 127.0.0.1 (a free port, printed as `listening PORT` on stdout)
/// until standard input closes: the runner holds the other end, so the
/// server never outlives it.
pub(crate) fn serve() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        println!("listening {}", listener.local_addr()?.port());
        // The runner holds our stdin: when it ends, so does the server.
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    })
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    let reply = |status: StatusCode, body: &'static [u8]| {
        let mut response = Response::new(Full::new(Bytes::from_static(body)));
        *response.status_mut() = status;
        Ok(response)
    };
    if path == "/token" {
        let body =
            format!(r#"{{"access_token":"{TOKEN}","token_type":"Bearer","expires_in":86400}}"#);
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return Ok(response);
    }
    if path.starts_with("/api/") {
        let authorized = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == bearer().as_bytes());
        return if authorized {
            reply(StatusCode::OK, b"ok")
        } else {
            reply(StatusCode::UNAUTHORIZED, b"missing or wrong token")
        };
    }
    reply(StatusCode::NOT_FOUND, b"not found")
}
