//! Who may use the proxy: callers present the shared key
//! (`TOKENAUTH_PROXY_KEY`) as `Proxy-Authorization: Bearer KEY` or
//! `Tokenauth-Key: KEY`.

use std::fmt;

use http::HeaderMap;
use http::header::PROXY_AUTHORIZATION;
use sha2::{Digest as _, Sha256};

/// The header a caller may put the key in instead of `Proxy-Authorization`.
pub(crate) const KEY_HEADER: &str = "tokenauth-key";

/// The shortest key accepted: a key is guessed by trying, so it must be
/// long and random (`openssl rand -hex 32`).
pub(crate) const MIN_KEY_LEN: usize = 16;

/// The shared key, kept as its SHA-256 digest: a presented key is hashed
/// and the digests are compared in constant time, so neither the time a
/// comparison takes nor its length says how much of a guess was right.
pub(crate) struct Key {
    digest: [u8; 32],
}

impl Key {
    pub(crate) fn new(key: &str) -> Self {
        Key {
            digest: Sha256::digest(key.as_bytes()).into(),
        }
    }

    /// True when `headers` present this key.
    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        presented(headers).is_some_and(|presented| self.matches(presented))
    }

    fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let difference = digest
            .iter()
            .zip(&self.digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key([redacted])")
    }
}

/// The key a request presents: `Tokenauth-Key`, else the credentials of
/// `Proxy-Authorization: Bearer …` (scheme case-insensitive).
fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(key) = headers.get(KEY_HEADER) {
        return Some(key.as_bytes());
    }
    let value = headers.get(PROXY_AUTHORIZATION)?.as_bytes();
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn admits_the_key_in_either_header_only() {
        let key = Key::new("0123456789abcdef0123");
        assert!(key.admits(&headers("tokenauth-key", "0123456789abcdef0123")));
        assert!(key.admits(&headers(
            "proxy-authorization",
            "Bearer 0123456789abcdef0123"
        )));
        assert!(key.admits(&headers(
            "proxy-authorization",
            "bearer  0123456789abcdef0123 "
        )));
        assert!(!key.admits(&headers("tokenauth-key", "0123456789abcdef012")));
        assert!(!key.admits(&headers(
            "proxy-authorization",
            "Basic 0123456789abcdef0123"
        )));
        assert!(!key.admits(&headers("authorization", "Bearer 0123456789abcdef0123")));
        assert!(!key.admits(&HeaderMap::new()));
        assert_eq!(format!("{key:?}"), "Key([redacted])");
    }
}
