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
    header.x5t_s256 = a.x5t_s256.as_ref().map(&render).transpose()?;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::Providers;

    const TOML: &str = r#"
[providers.hs]
api = ["https://api.example.com/"]
inputs.email = { env = "HS_EMAIL" }
inputs.secret = { env = "HS_SECRET", secret = true }
login.url = "https://auth.example.com/token"
login.fields = { grant_type = "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion = "{{ assertion }}" }
login.assertion = { algorithm = "HS256", key = "{{ inputs.secret }}", kid = "key-{{ inputs.email }}", lifetime = "5m", claims = { iss = "{{ inputs.email }}", aud = "https://auth.example.com/token", scope = "a b" } }
expiry.ttl = "1h"
inject = { header = "Authorization", value = "Bearer {{ token.access }}" }
"#;

    fn part(jwt: &str, i: usize) -> Value {
        let text = jwt.split('.').nth(i).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).unwrap()).unwrap()
    }

    fn signed(conn: &Connection, now: SystemTime) -> Result<SecretString, Error> {
        let providers = Providers::from_toml("hs.toml", TOML).unwrap();
        let p = providers.get("hs").unwrap();
        let a = p.login.as_ref().unwrap().assertion.as_ref().unwrap();
        sign(p, conn, a, now, |t| {
            Ok(t.render(|v| match v {
                Var::Input(n) => conn.value(p, n),
                _ => None,
            })
            .unwrap())
        })
    }

    #[test]
    fn claims_iat_exp_and_jti_come_from_the_engine() {
        let conn = Connection::new("c")
            .with_input("email", "robot@example.com")
            .with_secret(
                "secret",
                SecretString::from("s3cret-s3cret-s3cret-s3cret-s3cr"),
            );
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let jwt = signed(&conn, now).unwrap();
        let header = part(jwt.expose_secret(), 0);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"], "key-robot@example.com");
        let claims = part(jwt.expose_secret(), 1);
        assert_eq!(claims["iss"], "robot@example.com");
        assert_eq!(claims["aud"], "https://auth.example.com/token");
        assert_eq!(claims["scope"], "a b");
        assert_eq!(claims["iat"], 1_800_000_000u64);
        assert_eq!(claims["exp"], 1_800_000_300u64);
        let jti = claims["jti"].as_str().unwrap();
        assert_eq!(jti.len(), 32);
        let again = signed(&conn, now).unwrap();
        assert_ne!(
            part(again.expose_secret(), 1)["jti"],
            jti,
            "a fresh jti each time"
        );
        assert_eq!(claims.as_object().unwrap().len(), 6, "{claims}");
    }

    #[test]
    fn a_pem_key_for_hs256_is_refused_without_quoting_it() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----";
        let conn = Connection::new("c")
            .with_input("email", "robot@example.com")
            .with_secret("secret", SecretString::from(pem));
        let err = signed(&conn, SystemTime::now()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("input `secret`") && text.contains("HS256"),
            "{text}"
        );
        assert!(!text.contains("MIIEvQ") && !format!("{err:?}").contains("MIIEvQ"));
    }
}
