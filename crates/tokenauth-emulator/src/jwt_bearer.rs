//! A token endpoint that takes RFC 7523 JWTs: the jwt-bearer grant (Google
//! service-account style) and `private_key_jwt` client authentication of a
//! client-credentials grant (Microsoft certificate-credential style).
//!
//! `POST /token` (form body, plain HTTP on 127.0.0.1):
//! - `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT`:
//!   the JWT's `iss` must be [`JwtBearerConfig::issuer`].
//! - `grant_type=client_credentials&client_id=ID&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=JWT`:
//!   `iss` and `sub` must both be the client id, which must be
//!   [`JwtBearerConfig::issuer`] (RFC 7523 §3, item 1 and 2).
//!
//! Either way the signature is verified with the public key (or the HS256
//! secret) it was given, `aud` must be [`JwtBearerConfig::audience`], `exp`
//! must be in the future (no leeway) and at most
//! [`JwtBearerConfig::max_lifetime`] ahead, `iat` present, and each `jti` is
//! accepted once. Success: `200 {"access_token","token_type":"Bearer",
//! "expires_in":3600}`; a bad assertion `400 invalid_grant` (`401
//! invalid_client` for a client assertion), with the reason in
//! [`JwtBearerServer::rejections`], never the assertion itself.
//!
//! It verifies with `jsonwebtoken` on its own: it shares no code with
//! `tokenauth-core`.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::documented::reply;
use crate::handler::parse_form;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What the endpoint accepts.
#[derive(Clone)]
pub struct JwtBearerConfig {
    /// `RS256`, `PS256`, `ES256` or `HS256`.
    pub algorithm: &'static str,
    /// The public key (PEM, `PUBLIC KEY`) that verifies; for HS256 the
    /// shared secret.
    pub verify_key: String,
    /// The only `iss` accepted (for a client assertion: the client id).
    pub issuer: String,
    /// The only `aud` accepted; `None`: the endpoint's own URL.
    pub audience: Option<String>,
    /// The most `exp` may lie ahead of now. Defaults to 1 hour.
    pub max_lifetime: Duration,
}

impl std::fmt::Debug for JwtBearerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtBearerConfig")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtBearerConfig {
    /// Accepts JWTs of `issuer` signed with `algorithm` and verified by
    /// `verify_key`, for the endpoint's own URL.
    pub fn new(
        algorithm: &'static str,
        verify_key: impl Into<String>,
        issuer: impl Into<String>,
    ) -> Self {
        JwtBearerConfig {
            algorithm,
            verify_key: verify_key.into(),
            issuer: issuer.into(),
            audience: None,
            max_lifetime: Duration::from_secs(3600),
        }
    }
}

struct State {
    algorithm: Algorithm,
    key: DecodingKey,
    issuer: String,
    audience: String,
    max_lifetime: Duration,
    seen_jti: Mutex<HashSet<String>>,
    rejections: Mutex<Vec<String>>,
    issued: AtomicU64,
}

/// A running jwt-bearer endpoint. Dropping it stops it.
pub struct JwtBearerServer {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<watch::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for JwtBearerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtBearerServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl JwtBearerServer {
    /// Starts the endpoint on its own thread, on a free port of 127.0.0.1.
    ///
    /// # Errors
    /// An unknown algorithm or a key that does not parse
    /// (`InvalidInput`), or the port could not be bound.
    pub fn start(config: JwtBearerConfig) -> io::Result<JwtBearerServer> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
        let (algorithm, key) = match config.algorithm {
            "RS256" | "PS256" => (
                if config.algorithm == "RS256" {
                    Algorithm::RS256
                } else {
                    Algorithm::PS256
                },
                DecodingKey::from_rsa_pem(config.verify_key.as_bytes())
                    .map_err(|_| invalid("not an RSA public key in PEM"))?,
            ),
            "ES256" => (
                Algorithm::ES256,
                DecodingKey::from_ec_pem(config.verify_key.as_bytes())
                    .map_err(|_| invalid("not an EC public key in PEM"))?,
            ),
            "HS256" => (
                Algorithm::HS256,
                DecodingKey::from_secret(config.verify_key.as_bytes())
                    .map_err(|_| invalid("not a usable HS256 secret"))?,
            ),
            _ => return Err(invalid("algorithm: RS256, PS256, ES256 or HS256")),
        };
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let state = Arc::new(State {
            algorithm,
            key,
            issuer: config.issuer,
            audience: config
                .audience
                .unwrap_or_else(|| format!("http://{addr}/token")),
            max_lifetime: config.max_lifetime,
            seen_jti: Mutex::default(),
            rejections: Mutex::default(),
            issued: AtomicU64::new(0),
        });
        let (tx, rx) = watch::channel(());
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("tokenauth-jwt-bearer".to_owned())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(listener) = TcpListener::from_std(std_listener) {
                        accept_loop(listener, st, rx).await;
                    }
                });
            })?;
        Ok(JwtBearerServer {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// How many access tokens were issued.
    pub fn issued(&self) -> u64 {
        self.state.issued.load(Ordering::Relaxed)
    }

    /// Why each rejected request was rejected, in order.
    pub fn rejections(&self) -> Vec<String> {
        self.state
            .rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for JwtBearerServer {
    fn drop(&mut self) {
        self.shutdown.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<()>) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if req.method() != Method::POST || req.uri().path() != "/token" {
        return Ok(reply(StatusCode::NOT_FOUND, &json!({"error": "not_found"})));
    }
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": "invalid_request"}),
            ));
        }
    };
    let form = parse_form(&body);
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (jwt, client_id, error) = match get("grant_type") {
        Some(JWT_BEARER) => (get("assertion"), None, "invalid_grant"),
        Some("client_credentials") => {
            if get("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
                return Ok(reject(
                    &state,
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client_assertion_type is not jwt-bearer".into(),
                ));
            }
            (get("client_assertion"), get("client_id"), "invalid_client")
        }
        _ => {
            return Ok(reject(
                &state,
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type".into(),
            ));
        }
    };
    let status = if error == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    let Some(jwt) = jwt else {
        return Ok(reject(&state, status, error, "no assertion".into()));
    };
    match verify(&state, jwt, client_id) {
        Ok(()) => {
            let n = state.issued.fetch_add(1, Ordering::Relaxed) + 1;
            Ok(reply(
                StatusCode::OK,
                &json!({"access_token": format!("jwt-bearer-access-{n}"), "token_type": "Bearer", "expires_in": 3600}),
            ))
        }
        Err(reason) => Ok(reject(&state, status, error, reason)),
    }
}

fn reject(state: &State, status: StatusCode, error: &str, reason: String) -> Response<Full<Bytes>> {
    let body = json!({"error": error, "error_description": reason});
    state
        .rejections
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(reason);
    reply(status, &body)
}

/// Checks the signature and claims; the reason when it fails.
fn verify(state: &State, jwt: &str, client_id: Option<&str>) -> Result<(), String> {
    let mut v = Validation::new(state.algorithm);
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    v.set_audience(&[&state.audience]);
    v.set_issuer(&[&state.issuer]);
    let data = jsonwebtoken::decode::<Value>(jwt, &state.key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => "signature does not verify".to_owned(),
            K::ExpiredSignature => "expired".to_owned(),
            K::InvalidAudience => "wrong aud".to_owned(),
            K::InvalidIssuer => "wrong iss".to_owned(),
            K::InvalidAlgorithm => "wrong alg".to_owned(),
            K::MissingRequiredClaim(c) => format!("missing claim {c}"),
            other => format!("bad JWT: {other:?}"),
        }
    })?;
    let claims = data.claims;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let exp = claims["exp"].as_u64().unwrap_or(0);
    if exp > now + state.max_lifetime.as_secs() + 60 {
        return Err("exp too far ahead".into());
    }
    if let Some(id) = client_id
        && (id != state.issuer || claims["sub"].as_str() != Some(id))
    {
        return Err("client assertion: iss and sub must be the client_id".into());
    }
    let Some(jti) = claims["jti"].as_str() else {
        return Err("missing claim jti".into());
    };
    let fresh = state
        .seen_jti
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(jti.to_owned());
    if !fresh {
        return Err("jti replayed".into());
    }
    Ok(())
}
