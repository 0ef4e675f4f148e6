//! Signs the JWT of a `login.assertion` (RFC 7523) for one token request.
//!
//! The claims are the description's (rendered per connection) followed by
//! `iat` (the engine's clock), `exp` (`iat` + lifetime) and `jti` (128
//! random bits). The key is read from its secret input for each signing and
//! dropped after; the signed JWT is a [`SecretString`] the scrubber knows.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::config::{Assertion, JwtAlgorithm, Provider};
use crate::connection::Connection;
use crate::error::Error;
use crate::template::{Template, Var};

/// Signs `a` for `conn` at `now`. `render` renders the claim and header
/// templates (inputs only); the key is read straight from its input.
pub(crate) fn sign(
    provider: &Provider,
    conn: &Connection,
    a: &Assertion,
    now: SystemTime,
    render: impl Fn(&Template) -> Result<String, Error>,
) -> Result<SecretString, Error> {
    let input = a
        .key
        .vars()
        .find_map(|v| match v {
            Var::Input(name) => Some(name.as_str()),
            _ => None,
        })
        .unwrap_or_default();
    let key_error = |reason| Error::AssertionKey {
        provider: provider.id.clone(),
        connection: conn.id().to_owned(),
        input: input.to_owned(),
        algorithm: a.algorithm.as_str(),
        reason,
    };
    let mut claims = Map::new();
    for (name, t) in &a.claims {
        claims.insert(name.clone(), Value::String(render(t)?));
    }
    let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), (iat + a.lifetime.as_secs().max(1)).into());
    claims.insert("jti".into(), jti().into());
    let mut header = Header::new(algorithm(a.algorithm));
    header.kid = a.kid.as_ref().map(&render).transpose()?;
    header.x5t = a.x5t.as_ref().map(&render).transpose()?;
    let key = render(&a.key)?;
    let key = key.trim().as_bytes();
    let is_pem = key.starts_with(b"-----BEGIN");
    let key = match a.algorithm {
        JwtAlgorithm::HS256 if is_pem => {
            return Err(key_error(
                "is a PEM key, but HS256 signs with a shared secret: use RS256, PS256 or ES256 for a private key",
            ));
        }
        JwtAlgorithm::HS256 if key.is_empty() => {
            return Err(key_error("is empty: HS256 needs the shared secret"));
        }
        JwtAlgorithm::HS256 => EncodingKey::from_secret(key)
            .map_err(|_| key_error("could not be used as an HMAC secret"))?,
        _ if !is_pem => {
            return Err(key_error(
                "is not a PEM key (it should start with -----BEGIN PRIVATE KEY-----); put the whole file's text in the input, newlines included",
            ));
        }
        JwtAlgorithm::RS256 | JwtAlgorithm::PS256 => EncodingKey::from_rsa_pem(key)
            .map_err(|_| key_error("is not an RSA private key in PEM (PKCS#8 or PKCS#1)"))?,
        JwtAlgorithm::ES256 => EncodingKey::from_ec_pem(key)
            .map_err(|_| key_error("is not a P-256 EC private key in PEM (PKCS#8)"))?,
    };
    // The error of a key that parsed but cannot sign (an EC key of another
    // curve, a truncated RSA key) is the key's, never quoted.
    jsonwebtoken::encode(&header, &claims, &key)
        .map(SecretString::from)
        .map_err(|_| key_error("could not sign: is it a private key of the right kind and curve?"))
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::HS256 => Algorithm::HS256,
    }
}

/// 128 random bits, hex: unique per assertion (RFC 7523 §3, item 7).
fn jti() -> String {
    format!("{:032x}", fastrand::u128(..))
}
