//! RFC 7523 assertions against the emulator's jwt-bearer endpoint: a
//! correctly signed JWT gets a token; a wrong key, a wrong `aud` and an
//! expired JWT (the engine's clock, not wall time) are rejected; no key and
//! no JWT ever appears in an error.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;
use tokenauth_core::clock::ManualClock;
use tokenauth_core::{Connection, Error, Providers, TokenAuth};
use tokenauth_emulator::jwt_bearer::{JwtBearerConfig, JwtBearerServer};

use crate::helpers::CredentialOf as _;

const ISSUER: &str = "robot@demo.iam.example.com";

struct Keys {
    private_pem: String,
    public_pem: String,
}

fn keys(alg: &'static rcgen::SignatureAlgorithm) -> Keys {
    let kp = rcgen::KeyPair::generate_for(alg).expect("key generates");
    Keys {
        private_pem: kp.serialize_pem(),
        public_pem: kp.public_key_pem(),
    }
}

fn rsa() -> Keys {
    keys(&rcgen::PKCS_RSA_SHA256)
}

/// A Google-service-account-style jwt-bearer provider.
fn bearer_toml(token_url: &str, aud: &str) -> String {
    format!(
        r#"
[providers.sa]
api = ["https://api.example.com/"]
inputs.client_email = {{ env = "T_SA_EMAIL" }}
inputs.private_key = {{ env = "T_SA_KEY", secret = true }}
login.url = "{token_url}"
login.fields = {{ grant_type = "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion = "{{{{ assertion }}}}" }}
login.assertion = {{ algorithm = "RS256", key = "{{{{ inputs.private_key }}}}", kid = "k1", lifetime = "1h", claims = {{ iss = "{{{{ inputs.client_email }}}}", aud = "{aud}", scope = "read" }} }}
response.expires_in = "/expires_in"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
    )
}

/// A Microsoft-style client-credentials provider with `private_key_jwt`.
fn client_assertion_toml(token_url: &str) -> String {
    format!(
        r#"
[providers.entra]
api = ["https://graph.example.com/"]
inputs.client_id = {{ env = "T_ENTRA_ID" }}
inputs.key = {{ env = "T_ENTRA_KEY", secret = true }}
login.url = "{token_url}"
login.fields = {{ grant_type = "client_credentials", client_id = "{{{{ inputs.client_id }}}}", scope = "https://graph.example.com/.default", client_assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion = "{{{{ assertion }}}}" }}
login.assertion = {{ algorithm = "ES256", key = "{{{{ inputs.key }}}}", x5t = "dGh1bWJwcmludA", lifetime = "10m", claims = {{ iss = "{{{{ inputs.client_id }}}}", sub = "{{{{ inputs.client_id }}}}", aud = "{token_url}" }} }}
response.expires_in = "/expires_in"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
    )
}

fn engine(toml: &str, clock: Arc<ManualClock>) -> TokenAuth {
    let providers = Providers::from_toml("jwt.toml", toml).expect("providers load");
    TokenAuth::builder(providers)
        .clock(clock)
        .retries(0)
        .build()
        .expect("engine builds")
}

fn sa(private_pem: &str) -> Connection {
    Connection::new("sa-demo")
        .with_input("client_email", ISSUER)
        .with_secret("private_key", SecretString::from(private_pem.to_owned()))
}

/// Logs in with `signing` against a server that verifies with `server`;
/// the error when the login fails.
async fn bearer_login(
    server_keys: &Keys,
    signing: &Keys,
    aud: Option<&str>,
    clock: ManualClock,
) -> (JwtBearerServer, Result<(), Error>) {
    let server = JwtBearerServer::start(JwtBearerConfig::new(
        "RS256",
        server_keys.public_pem.clone(),
        ISSUER,
    ))
    .expect("server starts");
    let url = server.token_url();
    let auth = engine(&bearer_toml(&url, aud.unwrap_or(&url)), Arc::new(clock));
    let result = auth
        .credential_of("sa", Some(&sa(&signing.private_pem)))
        .await
        .map(|_| ());
    (server, result)
}

fn assert_no_secret(err: &Error, keys: &Keys) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains(&keys.private_pem[40..80]), "{text}");
        // A JWT's header always starts with `eyJ` (`{"`).
        assert!(!text.contains("eyJ"), "{text}");
    }
}

#[tokio::test]
async fn a_correctly_signed_assertion_gets_a_token() {
    let k = rsa();
    let (server, result) = bearer_login(&k, &k, None, ManualClock::new()).await;
    result.expect("login");
    assert_eq!(server.issued(), 1);
    assert!(server.rejections().is_empty());
}

#[tokio::test]
async fn a_wrong_key_is_rejected_and_not_shown() {
    let (k, other) = (rsa(), rsa());
    let (server, result) = bearer_login(&k, &other, None, ManualClock::new()).await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, Error::Status { status, .. } if status.as_u16() == 400),
        "{err:?}"
    );
    assert_eq!(server.rejections(), ["signature does not verify"]);
    assert_no_secret(&err, &other);
}

#[tokio::test]
async fn a_wrong_audience_is_rejected() {
    let k = rsa();
    let (server, result) = bearer_login(
        &k,
        &k,
        Some("https://elsewhere.example.com/token"),
        ManualClock::new(),
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(server.rejections(), ["wrong aud"]);
    assert_no_secret(&err, &k);
}

#[tokio::test]
async fn an_expired_assertion_is_rejected() {
    // The engine's clock stands two hours back: iat and exp (1h lifetime)
    // are both in the server's past.
    let k = rsa();
    let past = ManualClock::at(SystemTime::now() - Duration::from_secs(2 * 3600));
    let (server, result) = bearer_login(&k, &k, None, past).await;
    let err = result.unwrap_err();
    assert_eq!(server.rejections(), ["expired"]);
    assert_no_secret(&err, &k);
}

#[tokio::test]
async fn an_assertion_too_far_ahead_is_rejected() {
    let k = rsa();
    let ahead = ManualClock::at(SystemTime::now() + Duration::from_secs(3 * 3600));
    let (server, result) = bearer_login(&k, &k, None, ahead).await;
    assert!(result.is_err());
    assert_eq!(server.rejections(), ["exp too far ahead"]);
}

#[tokio::test]
async fn private_key_jwt_client_authentication() {
    let k = keys(&rcgen::PKCS_ECDSA_P256_SHA256);
    let server = JwtBearerServer::start(JwtBearerConfig::new(
        "ES256",
        k.public_pem.clone(),
        "entra-demo-client",
    ))
    .expect("server starts");
    let auth = engine(
        &client_assertion_toml(&server.token_url()),
        Arc::new(ManualClock::new()),
    );
    let conn = Connection::new("entra-demo")
        .with_input("client_id", "entra-demo-client")
        .with_secret("key", SecretString::from(k.private_pem.clone()));
    auth.credential_of("entra", Some(&conn))
        .await
        .expect("login");
    // Each token request signs a new JWT (a fresh jti): a second
    // connection's login is not a replay.
    let conn2 = Connection::new("entra-demo-2")
        .with_input("client_id", "entra-demo-client")
        .with_secret("key", SecretString::from(k.private_pem.clone()));
    auth.credential_of("entra", Some(&conn2))
        .await
        .expect("second login");
    assert_eq!(server.issued(), 2, "{:?}", server.rejections());
}

#[tokio::test]
async fn a_key_that_does_not_parse_names_the_input_not_the_key() {
    let k = rsa();
    let server =
        JwtBearerServer::start(JwtBearerConfig::new("RS256", k.public_pem.clone(), ISSUER))
            .expect("server starts");
    let url = server.token_url();
    let auth = engine(&bearer_toml(&url, &url), Arc::new(ManualClock::new()));
    for bad in [
        "not-a-key-hunter2".to_owned(),
        "-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----\n".to_owned(),
        keys(&rcgen::PKCS_ECDSA_P256_SHA256).private_pem,
    ] {
        let err = auth
            .credential_of("sa", Some(&sa(&bad)))
            .await
            .map(|_| ())
            .unwrap_err();
        let Error::AssertionKey { input, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(input, "private_key");
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("PRIVATE KEY-----\n"), "{text}");
        }
    }
    assert_eq!(
        server.issued() + server.rejections().len() as u64,
        0,
        "nothing sent"
    );
}

/// A token endpoint that answers `400` with the request body it got: the
/// signed JWT comes back in the error body, and must not reach the error.
#[tokio::test]
async fn an_echoed_assertion_is_scrubbed_from_the_error() {
    use http_body_util::{BodyExt as _, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((io, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let text = String::from_utf8_lossy(&body).replace("%2E", ".");
                    let assertion = text
                        .split('&')
                        .find_map(|p| p.strip_prefix("assertion="))
                        .unwrap_or_default()
                        .to_owned();
                    let reply = serde_json::json!({"error": "invalid_grant", "error_description": format!("bad assertion {assertion}")});
                    let mut r =
                        hyper::Response::new(Full::new(bytes::Bytes::from(reply.to_string())));
                    *r.status_mut() = hyper::StatusCode::BAD_REQUEST;
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(io), svc)
                    .await;
            });
        }
    });
    let url = format!("http://{addr}/token");
    let k = rsa();
    let auth = engine(&bearer_toml(&url, &url), Arc::new(ManualClock::new()));
    let err = auth
        .credential_of("sa", Some(&sa(&k.private_pem)))
        .await
        .map(|_| ())
        .unwrap_err();
    let Error::Status { body, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(body.contains("bad assertion"), "{body}");
    assert_no_secret(&err, &k);
    server.abort();
}
