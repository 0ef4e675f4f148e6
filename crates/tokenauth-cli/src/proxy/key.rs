//! Who may use the proxy: callers present the shared key
//! (`TOKENAUTH_PROXY_KEY`) as `Proxy-Authorization: Bearer KEY` or
//! `Tokenauth-Key: KEY`.

use std::fmt;
use std::net::IpAddr;

use http::header::{HOST, ORIGIN, PROXY_AUTHORIZATION};
use http::{HeaderMap, HeaderValue};
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

/// Without a key (`--no-key`), why a request does not come from a local
/// process but from a web page in the user's browser, if it does. A page
/// can send requests to loopback (a form, an image), and, by DNS
/// rebinding a name of its own to 127.0.0.1, read the answers: "every
/// local process" would be every site the user visits. A browser names
/// the host it resolved (`Host`) and the page (`Origin`,
/// `Sec-Fetch-Site`); a worker sends a loopback `Host` and neither.
pub(crate) fn browser_refusal(headers: &HeaderMap) -> Option<String> {
    if let Some(host) = headers.get(HOST)
        && !is_loopback_host(host.as_bytes())
    {
        return Some(format!(
            "without a key (--no-key) the proxy serves local processes only, and `Host: {}` is not a loopback address (a web page rebinding its name to 127.0.0.1?); call it as 127.0.0.1 or localhost, or set TOKENAUTH_PROXY_KEY",
            String::from_utf8_lossy(host.as_bytes())
        ));
    }
    let site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    if headers.contains_key(ORIGIN) || site.is_some_and(|s| s != b"none") {
        return Some(
            "without a key (--no-key) the proxy serves local processes only, not web pages (the request has an Origin or Sec-Fetch-Site header); set TOKENAUTH_PROXY_KEY".to_owned(),
        );
    }
    None
}

/// `localhost`, a 127.0.0.0/8 address or `[::1]`, with any port.
fn is_loopback_host(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(a, _)| a),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
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

    #[test]
    fn without_a_key_only_loopback_hosts_and_no_pages() {
        for host in [
            "127.0.0.1:8787",
            "localhost:1",
            "LOCALHOST",
            "[::1]:8787",
            "127.9.9.9",
        ] {
            assert_eq!(browser_refusal(&headers("host", host)), None, "{host}");
        }
        assert_eq!(browser_refusal(&HeaderMap::new()), None);
        assert_eq!(browser_refusal(&headers("sec-fetch-site", "none")), None);
        for host in [
            "evil.example:8787",
            "127.0.0.1.evil.example",
            "[::2]:1",
            "10.0.0.1",
        ] {
            assert!(browser_refusal(&headers("host", host)).is_some(), "{host}");
        }
        assert!(browser_refusal(&headers("origin", "http://evil.example")).is_some());
        assert!(browser_refusal(&headers("sec-fetch-site", "cross-site")).is_some());
    }
}
