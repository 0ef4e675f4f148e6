//! Routing: which provider's credential a request URL may carry.
//!
//! A request matches an `api` prefix when scheme, host and port are equal and
//! the path starts with the prefix's path *at a segment boundary*: the prefix
//! `https://api.example.com/v1` matches `/v1` and `/v1/items` but not
//! `/v1-other`. The longest matching prefix wins. A URL that matches no prefix
//! gets no credential at all, so a token never leaves its provider's API:
//! `https://api.example.com.evil.net/`, `http://` instead of `https://`,
//! another port, and `https://api.example.com@evil.net/` (whose host is
//! `evil.net`) all match nothing.
//!
//! ```
//! use tokenauth_core::route::prefix_matches;
//! use url::Url;
//!
//! let prefix = Url::parse("https://api.example.com/api").unwrap();
//! let ok = |u: &str| prefix_matches(&prefix, &Url::parse(u).unwrap());
//! assert!(ok("https://api.example.com/api/items"));
//! assert!(ok("https://API.example.com:443/api"));
//! assert!(!ok("https://api.example.com/api-other"));
//! assert!(!ok("http://api.example.com/api/items"));
//! assert!(!ok("https://api.example.com.evil.net/api/items"));
//! assert!(!ok("https://api.example.com@evil.net/api/items"));
//! ```

use url::Url;

use crate::config::Providers;

/// The parts of a request URL that routing looks at.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// `http` or `https`, lower case.
    pub scheme: &'a str,
    /// The host, lower case (as `url::Url` and `http::Uri` normalise it).
    pub host: &'a str,
    /// The port, or the scheme's default port.
    pub port: u16,
    /// The path, starting with `/`.
    pub path: &'a str,
}

impl<'a> Target<'a> {
    /// The routing view of a parsed URL; `None` for URLs without a host or
    /// port (not http/https).
    pub fn from_url(url: &'a Url) -> Option<Self> {
        Some(Target {
            scheme: url.scheme(),
            host: url.host_str()?,
            port: url.port_or_known_default()?,
            path: url.path(),
        })
    }

    /// The routing view of an `http::Uri`; `None` for a URI without a
    /// scheme or host (e.g. the path-only URIs a tonic `Channel` sees), or
    /// with a scheme other than `http`/`https` and no explicit port.
    pub fn from_uri(uri: &'a http::Uri) -> Option<Self> {
        let scheme = uri.scheme_str()?;
        let port = match (uri.port_u16(), scheme) {
            (Some(p), _) => p,
            (None, s) if s.eq_ignore_ascii_case("https") => 443,
            (None, s) if s.eq_ignore_ascii_case("http") => 80,
            _ => return None,
        };
        Some(Target {
            scheme,
            host: uri.host()?,
            port,
            path: match uri.path() {
                "" => "/",
                p => p,
            },
        })
    }
}

/// True when `url` lies inside the `api` prefix `prefix`.
pub fn prefix_matches(prefix: &Url, url: &Url) -> bool {
    Target::from_url(url).is_some_and(|t| Prefix::new(prefix, 0).is_some_and(|p| p.matches(&t)))
}

#[derive(Clone, Debug)]
struct Prefix {
    scheme: String,
    host: String,
    port: u16,
    path: String,
    provider: usize,
}

impl Prefix {
    fn new(url: &Url, provider: usize) -> Option<Self> {
        Some(Prefix {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
            path: url.path().to_owned(),
            provider,
        })
    }

    fn matches(&self, t: &Target<'_>) -> bool {
        if self.port != t.port
            || !self.scheme.eq_ignore_ascii_case(t.scheme)
            || !self.host.eq_ignore_ascii_case(t.host)
        {
            return false;
        }
        let Some(rest) = t.path.strip_prefix(self.path.as_str()) else {
            return false;
        };
        self.path.ends_with('/') || rest.is_empty() || rest.starts_with('/')
    }
}

/// All `api` prefixes of a description, ready to route request URLs.
#[derive(Clone, Debug)]
pub struct Router {
    // Sorted longest path first, so the first match is the longest prefix.
    prefixes: Vec<Prefix>,
}

impl Router {
    /// Builds the router for every provider, in the order of `providers`.
    pub fn new(providers: &Providers) -> Self {
        let mut prefixes: Vec<Prefix> = providers
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.api.iter().filter_map(move |u| Prefix::new(u, i)))
            .collect();
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.path.len()));
        Router { prefixes }
    }

    /// The index (in `providers.iter()` order) of the provider whose longest
    /// `api` prefix contains the target, if any.
    pub fn route(&self, target: &Target<'_>) -> Option<usize> {
        self.prefixes
            .iter()
            .find(|p| p.matches(target))
            .map(|p| p.provider)
    }

    /// [`Router::route`] for a parsed URL.
    pub fn route_url(&self, url: &Url) -> Option<usize> {
        self.route(&Target::from_url(url)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_boundary_scheme_host_port() {
        let p = |s: &str| Url::parse(s).unwrap();
        let prefix = p("https://api.example.com/api/");
        assert!(prefix_matches(&prefix, &p("https://api.example.com/api/x")));
        assert!(!prefix_matches(&prefix, &p("https://api.example.com/api")));
        assert!(!prefix_matches(
            &prefix,
            &p("https://api.example.com:8443/api/x")
        ));
        assert!(!prefix_matches(&prefix, &p("http://api.example.com/api/x")));
        assert!(!prefix_matches(
            &prefix,
            &p("https://evil.net/api/x?u=https://api.example.com/api/")
        ));
        let root = p("http://127.0.0.1:8080");
        assert!(prefix_matches(&root, &p("http://127.0.0.1:8080/anything")));
        assert!(!prefix_matches(&root, &p("http://127.0.0.1:8081/anything")));
        assert!(!prefix_matches(&root, &p("http://localhost:8080/anything")));
    }

    #[test]
    fn target_from_uri() {
        let t = |s: &str| {
            let uri: http::Uri = s.parse().unwrap();
            Target::from_uri(&uri).map(|t| {
                (
                    t.scheme.to_owned(),
                    t.host.to_owned(),
                    t.port,
                    t.path.to_owned(),
                )
            })
        };
        let own = |a: &str, b: &str, c: u16, d: &str| Some((a.into(), b.into(), c, d.into()));
        assert_eq!(
            t("https://api.example.com/v1/x?q=1"),
            own("https", "api.example.com", 443, "/v1/x")
        );
        assert_eq!(
            t("http://127.0.0.1:8080"),
            own("http", "127.0.0.1", 8080, "/")
        );
        assert_eq!(
            t("http://u:p@evil.net/api"),
            own("http", "evil.net", 80, "/api")
        );
        assert_eq!(t("/pkg.Service/Method"), None);
        assert_eq!(t("ftp://example.com/"), None);
    }
}
