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
//! # Dot segments and encoded slashes
//!
//! Paths are routed **after** dot-segment removal, exactly as `url::Url` (and
//! so reqwest, and every server) resolves them: `.` and `..` segments,
//! including their percent-encoded forms (`%2e`, `.%2E`, `%2e%2e`), and `\`
//! as a separator. A tower request for `/a/../b/secret` is routed as
//! `/b/secret`, so it can only ever get `b`'s credential. A path whose
//! meaning depends on how the server reads it, gets no credential at all when
//! the readings route differently: some servers decode an encoded slash
//! (`%2F`, `%5C`) before resolving dots (`/a/..%2Fb/secret`), and Java
//! servers (Tomcat, Jetty, Spring) strip path parameters first, so that
//! `/a/..;x/b/secret` is `/a/../b/secret` to them.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use url::Url;

use crate::config::{Providers, UrlTemplate};
use crate::url_template::WILD_MARKER;

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
    #[inline] // Five field reads of a `Url`; on every reqwest request.
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
        Self::from_uri_known(uri, &KnownAuthorities::default())
    }

    /// [`from_uri`](Self::from_uri), with the authority looked up among
    /// `known` first: an authority spelled exactly as one of the prefixes
    /// spells it is not read again.
    #[inline]
    pub(crate) fn from_uri_known(uri: &'a http::Uri, known: &KnownAuthorities) -> Option<Self> {
        let scheme = uri.scheme_str()?;
        let authority = uri.authority()?.as_str();
        let (host, port) = match known.find(authority) {
            Some(k) => (&authority[..k.host_len], k.port),
            None => host_and_port(authority),
        };
        let port = match (port, scheme) {
            (Some(p), _) => p,
            (None, s) if s.eq_ignore_ascii_case("https") => 443,
            (None, s) if s.eq_ignore_ascii_case("http") => 80,
            _ => return None,
        };
        Some(Target {
            scheme,
            host,
            port,
            path: match uri.path() {
                "" => "/",
                p => p,
            },
        })
    }
}

/// The authorities of the written-out `api` prefixes, spelled as a request
/// URI spells them (`host:port`, and `host` alone for the scheme's default
/// port), each with its host and port already read: the tower layer routes
/// an `http::Uri`, whose authority is text, and most requests go to one of
/// these. An authority spelled otherwise (capitals, user info, `:0443`) is
/// read by [`host_and_port`].
#[derive(Clone, Debug, Default)]
pub struct KnownAuthorities {
    list: Vec<KnownAuthority>,
    /// `list` by `text`, when it is too long to scan per request.
    index: Option<HashMap<Box<str>, usize, foldhash::fast::RandomState>>,
}

/// Up to this many entries a list is scanned (cheaper than hashing the
/// key); beyond, looked up by hash, so that routing costs the same with
/// one provider and with hundreds.
const SCAN_AT_MOST: usize = 8;

/// One authority of [`KnownAuthorities`].
#[derive(Clone, Debug)]
struct KnownAuthority {
    text: Box<str>,
    /// `text[..host_len]` is the host.
    host_len: usize,
    /// As [`host_and_port`] reads `text`: `None` for a host alone.
    port: Option<u16>,
}

impl KnownAuthorities {
    fn new(prefixes: &[Prefix]) -> Self {
        Self::indexed_above(prefixes, SCAN_AT_MOST)
    }

    /// [`new`](Self::new), indexed when there are more than
    /// `scan_at_most` authorities.
    fn indexed_above(prefixes: &[Prefix], scan_at_most: usize) -> Self {
        let mut known: Vec<KnownAuthority> = Vec::new();
        let mut seen: HashSet<Box<str>> = HashSet::new();
        for p in prefixes {
            let default_port = match p.scheme.as_str() {
                "https" => Some(443),
                "http" => Some(80),
                _ => None,
            };
            let with_port = KnownAuthority {
                text: format!("{}:{}", p.host, p.port).into(),
                host_len: p.host.len(),
                port: Some(p.port),
            };
            let alone = (default_port == Some(p.port)).then(|| KnownAuthority {
                text: p.host.as_str().into(),
                host_len: p.host.len(),
                port: None,
            });
            for k in std::iter::once(with_port).chain(alone) {
                if seen.insert(k.text.clone()) {
                    known.push(k);
                }
            }
        }
        let index = (known.len() > scan_at_most).then(|| {
            let mut index = HashMap::with_hasher(foldhash::fast::RandomState::default());
            for (i, k) in known.iter().enumerate() {
                index.insert(k.text.clone(), i);
            }
            index
        });
        KnownAuthorities { list: known, index }
    }

    /// The entry spelled exactly `authority`.
    #[inline]
    fn find(&self, authority: &str) -> Option<&KnownAuthority> {
        match &self.index {
            Some(index) => index.get(authority).map(|&i| &self.list[i]),
            None => self
                .list
                .iter()
                .find(|k| same_bytes(k.text.as_bytes(), authority.as_bytes())),
        }
    }
}

/// The host and port of a URI authority, exactly as
/// [`Authority::host`](http::uri::Authority::host) and
/// [`Authority::port_u16`](http::uri::Authority::port_u16) read them (those
/// two scan the authority several times; this runs on every request of the
/// tower layer). User info is skipped; an IPv6 host keeps its brackets; a
/// port that is not a `u16` is no port.
fn host_and_port(authority: &str) -> (&str, Option<u16>) {
    plain_host_and_port(authority).unwrap_or_else(|| any_host_and_port(authority))
}

/// [`host_and_port`] of the authorities requests are almost always sent
/// with, `host` and `host:port` (no user info, no IPv6 brackets, a port of
/// 1 to 5 digits that fits a `u16`), read in one short pass: the port
/// digits from the end, then the host checked for `@`, `:` and `[`. `None`
/// for any other authority. About a quarter of the instructions of
/// [`any_host_and_port`], whose byte-by-byte `match` and `u16` parse cost
/// ~390 instructions per request on the tower path.
#[inline]
fn plain_host_and_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let bytes = authority.as_bytes();
    let mut end = bytes.len();
    let mut port: u32 = 0;
    let mut scale: u32 = 1;
    while end > 0 && bytes[end - 1].is_ascii_digit() && scale <= 10_000 {
        port += u32::from(bytes[end - 1] - b'0') * scale;
        scale *= 10;
        end -= 1;
    }
    let (host, port) = match end.checked_sub(1).map(|i| bytes[i]) {
        // `host:digits`, the digits a `u16`.
        Some(b':') if scale > 1 => (&bytes[..end - 1], Some(u16::try_from(port).ok()?)),
        // No port: the digits (if any) end the host, as in `127.0.0.1`.
        _ => (bytes, None),
    };
    let special = |&b: &u8| b == b'@' || b == b':' || b == b'[';
    if host.is_empty() || host.iter().any(special) {
        return None;
    }
    // Every cut is next to an ASCII byte, so on a character boundary.
    Some((&authority[..host.len()], port))
}

/// [`host_and_port`] of any authority `http` accepts.
fn any_host_and_port(authority: &str) -> (&str, Option<u16>) {
    let bytes = authority.as_bytes();
    let (mut at, mut last_colon) = (None, None);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'@' => at = Some(i),
            b':' => last_colon = Some(i),
            _ => {}
        }
    }
    let start = at.map_or(0, |i| i + 1);
    let host_port = &bytes[start..];
    let host_len = if host_port.first() == Some(&b'[') {
        // `http` validated the brackets when it parsed the URI.
        host_port
            .iter()
            .position(|&b| b == b']')
            .map_or(host_port.len(), |i| i + 1)
    } else {
        host_port
            .iter()
            .position(|&b| b == b':')
            .unwrap_or(host_port.len())
    };
    // `Authority::port` reads after the last `:` of the whole authority.
    // Every cut is next to an ASCII byte, so on a character boundary.
    let port = last_colon.and_then(|i| authority[i + 1..].parse().ok());
    (&authority[start..start + host_len], port)
}

/// True when `url` lies inside the `api` prefix `prefix`.
pub(crate) fn prefix_matches(prefix: &Url, url: &Url) -> bool {
    let Some(target) = Target::from_url(url) else {
        return false;
    };
    Prefix::new(prefix, 0).is_some_and(|p| {
        route_path(target.path, |path| p.matches(&target, path).then_some(0)).is_some()
    })
}

/// How a request path is to be read for routing.
enum PathView<'a> {
    /// One reading: the path as resolved (dot segments removed).
    One(Cow<'a, str>),
    /// Two readings that a server may choose between: as resolved, and
    /// with encoded slashes (`%2F`, `%5C`) decoded and path parameters
    /// (`;…` in a segment) stripped before dots are resolved.
    Two(Cow<'a, str>, String),
}

/// Routes `path` with `find`: on the resolved path, and when encoded slashes
/// or path parameters make the path ambiguous, only if both readings agree.
/// The one routing
/// rule for every adapter (a URL from reqwest is already resolved and takes
/// the fast path; a raw `http::Uri` path from tower may not be).
fn route_path<T: PartialEq>(path: &str, find: impl Fn(&str) -> Option<T>) -> Option<T> {
    route_path_as_given(path, find).0
}

/// [`route_path`], and whether `path` is the resolved path as it is
/// (nothing to resolve before sending it; see [`resolved_path`]).
#[inline]
fn route_path_as_given<T: PartialEq>(
    path: &str,
    find: impl Fn(&str) -> Option<T>,
) -> (Option<T>, bool) {
    // Most paths: nothing to resolve, one reading, routed as they are.
    if !needs_a_closer_look(path.as_bytes()) {
        return (find(path), true);
    }
    match view(path) {
        PathView::One(p) => (find(&p), matches!(p, Cow::Borrowed(_))),
        PathView::Two(plain, decoded) => {
            let found = find(&plain);
            let found = (found == find(&decoded)).then_some(found).flatten();
            (found, matches!(plain, Cow::Borrowed(_)))
        }
    }
}

/// The bytes after which a path may read differently once resolved: `.`
/// (dot segments), `%` (encoded dots and slashes), `\\` (a separator) and
/// `;` (path parameters).
static NEEDS_A_CLOSER_LOOK: [bool; 256] = {
    let mut table = [false; 256];
    table[b'.' as usize] = true;
    table[b'%' as usize] = true;
    table[b'\\' as usize] = true;
    table[b';' as usize] = true;
    table
};

/// True when `bytes` holds one of [`NEEDS_A_CLOSER_LOOK`]. Most paths hold
/// none, so this runs on every request: eight bytes at a time (each test is
/// the exact "has a zero byte" word trick on the word XOR the byte
/// repeated), the rest by table.
#[inline]
fn needs_a_closer_look(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has = |word: u64, b: u8| {
        let x = word ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    };
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        if has(word, b'.') || has(word, b'%') || has(word, b'\\') || has(word, b';') {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| NEEDS_A_CLOSER_LOOK[usize::from(b)])
}

/// The routing view of a path: as given when it has nothing to resolve (the
/// common case, one scan of the bytes), else resolved like `url::Url` does.
fn view(path: &str) -> PathView<'_> {
    let bytes = path.as_bytes();
    if !needs_a_closer_look(bytes) {
        return PathView::One(Cow::Borrowed(path));
    }
    let mut dots = false;
    let mut ambiguous = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => dots = true,
            b'.' if i == 0 || bytes[i - 1] == b'/' => dots = true,
            b';' => ambiguous = true,
            b'%' => match bytes.get(i + 1..i + 3) {
                Some([b'2', b'e' | b'E']) => dots = true,
                Some([b'2', b'f' | b'F'] | [b'5', b'c' | b'C']) => ambiguous = true,
                _ => {}
            },
            _ => {}
        }
    }
    let plain = if dots {
        Cow::Owned(resolve(path))
    } else {
        Cow::Borrowed(path)
    };
    if !ambiguous {
        return PathView::One(plain);
    }
    PathView::Two(plain, resolve(&server_reading(path)))
}

/// `path` as a lenient server may read it before resolving dots: encoded
/// slashes decoded, and each segment's path parameters (`;…`) stripped.
fn server_reading(path: &str) -> String {
    let decoded = path
        .replace("%2F", "/")
        .replace("%2f", "/")
        .replace("%5C", "/")
        .replace("%5c", "/");
    decoded
        .split('/')
        .map(|segment| segment.split_once(';').map_or(segment, |(s, _)| s))
        .collect::<Vec<_>>()
        .join("/")
}

/// The path a request for `path` should go out with once it carries a
/// credential: resolved as `url::Url` resolves it (`None` when it already
/// is). The tower layer sends this, as reqwest sends its parsed URL, so that
/// the server serves exactly the path that was routed.
pub(crate) fn resolved_path(path: &str) -> Option<String> {
    let (PathView::One(resolved) | PathView::Two(resolved, _)) = view(path);
    match resolved {
        Cow::Owned(p) => Some(p),
        Cow::Borrowed(_) => None,
    }
}

/// `path` with its dot segments removed, as `url::Url` resolves the path of
/// a URL (WHATWG URL rules: `%2e` is a dot, `\` a separator in http(s)
/// URLs). Set as a path, never joined as a reference: a path starting `//`
/// stays a path, as in the URL reqwest sends.
fn resolve(path: &str) -> String {
    let mut url = Url::parse("http://routing.invalid/").expect("a valid URL");
    url.set_path(path);
    url.path().to_owned()
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

    /// `t` has this prefix's scheme, host and port. Hosts and schemes are
    /// compared byte for byte first: both are lower case when they come from
    /// a parsed `Url` (reqwest), so the case-insensitive comparison only
    /// runs for an `http::Uri` written with capitals.
    #[inline]
    fn same_origin(&self, t: &Target<'_>) -> bool {
        self.port == t.port
            && self.host.len() == t.host.len()
            && (same_bytes(self.host.as_bytes(), t.host.as_bytes())
                || self.host.eq_ignore_ascii_case(t.host))
            && (same_bytes(self.scheme.as_bytes(), t.scheme.as_bytes())
                || self.scheme.eq_ignore_ascii_case(t.scheme))
    }

    /// `t`'s origin is this prefix's, and `path` (the resolved path of
    /// `t`) lies under it.
    fn matches(&self, t: &Target<'_>, path: &str) -> bool {
        self.same_origin(t) && path_under(&self.path, path)
    }
}

/// `path` lies under the prefix path `prefix` at a segment boundary.
#[inline]
fn path_under(prefix: &str, path: &str) -> bool {
    let (prefix, path) = (prefix.as_bytes(), path.as_bytes());
    if path.len() < prefix.len() || !same_bytes(prefix, &path[..prefix.len()]) {
        return false;
    }
    let rest = &path[prefix.len()..];
    prefix.ends_with(b"/") || rest.is_empty() || rest[0] == b'/'
}

/// `a == b`, inline: routing compares a few short strings (a host, a
/// scheme, a path prefix) on every request, the response check a URL, and `==` on slices calls the C
/// library's `memcmp`, whose call and set-up cost more than the comparison
/// of a few words.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        // Whole words, then the last eight bytes (overlapping the last
        // whole word when `n` is not a multiple of eight).
        let word = |s: &[u8], at: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&s[at..at + 8]);
            u64::from_ne_bytes(w)
        };
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        return word(a, n - 8) == word(b, n - 8);
    }
    if n >= 4 {
        let word = |s: &[u8], at: usize| {
            let mut w = [0; 4];
            w.copy_from_slice(&s[at..at + 4]);
            u32::from_ne_bytes(w)
        };
        return word(a, 0) == word(b, 0) && word(a, n - 4) == word(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// A rendered prefix (a `Url`) holds `t` with resolved path `path`.
pub(crate) fn url_holds(prefix: &Url, t: &Target<'_>, path: &str) -> bool {
    prefix.port_or_known_default() == Some(t.port)
        && prefix.scheme().eq_ignore_ascii_case(t.scheme)
        && prefix
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(t.host))
        && path_under(prefix.path(), path)
}

/// `prefix` holds `t` (its path resolved as routing resolves it, and
/// agreed on by both readings of an ambiguous path).
pub(crate) fn prefix_holds(prefix: &Url, t: &Target<'_>) -> bool {
    route_path(t.path, |path| url_holds(prefix, t, path).then_some(())).is_some()
}

/// The longest path segment a templated segment of a prefix can hold.
const MAX_TEMPLATED_SEGMENT: usize = 255;

/// A prefix with placeholders, as a pattern: what any connection's
/// rendering of it could hold. Used to find the providers worth rendering
/// for a request, and for redirects, whose connection is unknown.
#[derive(Clone, Debug)]
struct Pattern {
    provider: usize,
    /// The index of the prefix in the provider's `api`.
    api: usize,
    scheme: String,
    port: u16,
    /// The host's literal pieces around its placeholders and `*` labels.
    host: Vec<String>,
    /// Per gap between two host pieces: a `*` (one DNS label) rather than
    /// a placeholder (DNS labels, dots allowed).
    host_stars: Vec<bool>,
    /// A prefix that starts with a placeholder (`{{ inputs.base_url }}/api/`):
    /// its scheme and port come from the value too.
    any_origin: bool,
    /// A `*` prefix: it holds a host by its form alone (the connection's
    /// own host is bound when its token arrives, see `response.api_base`).
    wildcard: bool,
    /// Per path segment, its literal pieces around its placeholders.
    path: Vec<Vec<String>>,
    /// The prefix's path ends with `/`.
    open: bool,
    /// The length of the prefix's path (for a `*` prefix, whose path is
    /// written out).
    path_len: usize,
}

impl Pattern {
    fn new(template: &UrlTemplate, provider: usize, api: usize) -> Option<Self> {
        let sample = template.sample();
        let mut markers: Vec<(String, bool)> = template
            .inputs()
            .map(|(name, _)| (crate::url_template::input_marker(name), false))
            .collect();
        markers.push((WILD_MARKER.to_owned(), true));
        let (host, host_stars) = split_markers(sample.host_str()?, &markers);
        let pieces = |segment: &str| split_markers(segment, &markers).0;
        let path = sample.path();
        Some(Pattern {
            provider,
            api,
            scheme: sample.scheme().to_owned(),
            port: sample.port_or_known_default()?,
            host,
            host_stars,
            wildcard: template.is_wildcard(),
            any_origin: template.templated_origin(),
            path: path
                .trim_start_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .map(pieces)
                .collect(),
            open: path.ends_with('/'),
            path_len: path.len(),
        })
    }

    /// Where a [`PatternIndex`] files this pattern: its host's last literal
    /// piece from the piece's first `.` (`.example.com` for
    /// `{{ inputs.tenant }}.example.com`), a suffix starting with `.` of
    /// every host it holds. `None` for a host that ends in a placeholder or
    /// `*` without a `.` after it, and for a prefix that starts with a
    /// placeholder (any origin).
    fn suffix_key(&self) -> Option<&str> {
        if self.any_origin {
            return None;
        }
        let last = self.host.last()?;
        // No host is longer than 253 bytes; a longer key files nothing.
        last.find('.')
            .map(|i| &last[i..])
            .filter(|key| key.len() < 256)
    }

    /// Some rendering of this prefix could hold `t` (path `path`); `host`
    /// is `t.host` in lower case ([`lower_case`]).
    fn could_hold(&self, t: &Target<'_>, host: &str, path: &str) -> bool {
        if !self.any_origin && (self.port != t.port || !self.scheme.eq_ignore_ascii_case(t.scheme))
        {
            return false;
        }
        // A host name is at most 253 bytes, and the glob below backtracks:
        // a longer one (which a URL parser accepts) holds nothing.
        if host.len() > 253 {
            return false;
        }
        // The glob's ends, checked first: most patterns fail here.
        let (Some(first), Some(last)) = (self.host.first(), self.host.last()) else {
            return false;
        };
        if !host.starts_with(first.as_str()) || !host.ends_with(last.as_str()) {
            return false;
        }
        let stars = &self.host_stars;
        if !glob(&self.host, host.as_bytes(), 0, &|gap, b| {
            b.is_ascii_alphanumeric() || b == b'-' || (b == b'.' && !stars[gap])
        }) {
            return false;
        }
        let mut segments = path.trim_start_matches('/').split('/');
        for (i, pattern) in self.path.iter().enumerate() {
            let Some(segment) = segments.next() else {
                return false;
            };
            let last = i + 1 == self.path.len();
            // Bounded for the same reason as the host: a segment a value
            // renders into is a tenant or region name, never this long.
            if pattern.len() > 1 && segment.len() > MAX_TEMPLATED_SEGMENT {
                return false;
            }
            // The last segment of a prefix without a trailing slash must be
            // the whole segment; so must every other one.
            if !glob(pattern, segment.as_bytes(), 0, &|_, b| b != b'/') {
                return false;
            }
            if last && self.open && segments.clone().next().is_none() && !path.ends_with('/') {
                return false;
            }
        }
        true
    }
}

/// True when some rendering of `template` (a prefix with placeholders in
/// its host next to written-out text, as `https://{{ inputs.sub }}.example.com/`)
/// is exactly the written-out prefix `url`: the two providers would compete
/// for the same requests. A host that is only a placeholder
/// (`https://{{ inputs.domain }}/`) shadows nothing: written-out prefixes
/// win over it.
pub(crate) fn template_covers(template: &UrlTemplate, url: &Url) -> bool {
    let (Some(pattern), Some(target)) = (Pattern::new(template, 0, 0), Target::from_url(url))
    else {
        return false;
    };
    let host_is_placeholder = pattern.host.iter().all(String::is_empty);
    if template.is_literal() {
        return false;
    }
    let depth = url.path().split('/').filter(|s| !s.is_empty()).count();
    !host_is_placeholder
        && depth == pattern.path.len()
        && pattern.open == url.path().ends_with('/')
        && pattern.could_hold(&target, &lower_case(target.host), url.path())
}

/// The prefixes with placeholders by the end of their host, when there are
/// too many to try each per request: a request's host is looked up by each
/// of its suffixes that starts with `.`.
#[derive(Clone, Debug)]
struct PatternIndex {
    /// Pattern indices (ascending) by [`Pattern::suffix_key`].
    by_suffix: Positions,
    /// The lengths of those keys, as bits: a suffix of another length is
    /// not looked up.
    key_lengths: [u64; 4],
    /// The patterns without a key: always tried.
    always: Box<[usize]>,
}

impl PatternIndex {
    /// `None` for `scan_at_most` patterns or fewer ([`SCAN_AT_MOST`]).
    fn new(patterns: &[Pattern], scan_at_most: usize) -> Option<Self> {
        if patterns.len() <= scan_at_most {
            return None;
        }
        let key = Pattern::suffix_key;
        let mut key_lengths = [0u64; 4];
        for len in patterns.iter().filter_map(key).map(str::len) {
            key_lengths[len / 64] |= 1 << (len % 64);
        }
        let keyed = patterns.iter().enumerate();
        Some(PatternIndex {
            by_suffix: positions_by_key(keyed.clone().filter_map(|(i, p)| Some((i, key(p)?)))),
            key_lengths,
            always: keyed
                .filter(|(_, p)| key(p).is_none())
                .map(|(i, _)| i)
                .collect(),
        })
    }

    /// The patterns filed under `suffix` (which starts with `.`).
    #[inline]
    fn filed_under(&self, suffix: &str) -> &[usize] {
        let len = suffix.len();
        if len >= 256 || self.key_lengths[len / 64] & (1 << (len % 64)) == 0 {
            return &[];
        }
        self.by_suffix.get(suffix).map_or(&[], |ids| ids)
    }
}

/// `host` in lower case: as it is when it already is (every host of a
/// parsed `Url`), so that a request does not allocate for it.
fn lower_case(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// `text` cut at each marker: the literal pieces, and per gap whether its
/// marker was a `*` (the `bool` of `markers`).
fn split_markers(text: &str, markers: &[(String, bool)]) -> (Vec<String>, Vec<bool>) {
    let mut pieces = Vec::new();
    let mut stars = Vec::new();
    let mut rest = text;
    loop {
        let next = markers
            .iter()
            .filter_map(|(m, star)| rest.find(m.as_str()).map(|i| (i, m.len(), *star)))
            .min_by_key(|&(i, _, _)| i);
        let Some((i, len, star)) = next else {
            pieces.push(rest.to_owned());
            return (pieces, stars);
        };
        pieces.push(rest[..i].to_owned());
        stars.push(star);
        rest = &rest[i + len..];
    }
}

/// `text` is `pieces[0]`, then one or more bytes that `allowed(gap, b)`
/// accepts, then `pieces[1]`, ... (a wildcard in each gap between two
/// literal pieces; `gap` counts from `gap` upwards).
fn glob(pieces: &[String], text: &[u8], gap: usize, allowed: &dyn Fn(usize, u8) -> bool) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return text.is_empty();
    };
    let Some(text) = text.strip_prefix(first.as_bytes()) else {
        return false;
    };
    if rest.is_empty() {
        return text.is_empty();
    }
    // The wildcard takes 1..=n bytes, then the rest must match.
    (1..=text.len())
        .take_while(|&n| allowed(gap, text[n - 1]))
        .any(|n| glob(rest, &text[n..], gap + 1, allowed))
}

/// Positions (ascending) by key.
type Positions = HashMap<Box<str>, Box<[usize]>, foldhash::fast::RandomState>;

/// The positions of `keyed` (position, key) pairs, by key.
fn positions_by_key<'a>(keyed: impl Iterator<Item = (usize, &'a str)>) -> Positions {
    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, key) in keyed {
        by_key.entry(key).or_default().push(i);
    }
    by_key
        .into_iter()
        .map(|(key, ids)| (key.into(), ids.into()))
        .collect()
}

/// Indices of `prefixes` (in their order) by host, when there are more
/// than `scan_at_most` ([`SCAN_AT_MOST`]).
fn index_by_host(prefixes: &[Prefix], scan_at_most: usize) -> Option<Positions> {
    (prefixes.len() > scan_at_most)
        .then(|| positions_by_key(prefixes.iter().map(|p| p.host.as_str()).enumerate()))
}

/// All `api` prefixes of a description, ready to route request URLs.
#[derive(Clone, Debug)]
pub(crate) struct Router {
    // Sorted longest path first, so the first match is the longest prefix.
    prefixes: Vec<Prefix>,
    /// The prefixes with placeholders, rendered per connection.
    patterns: Vec<Pattern>,
    /// Per provider: where its credential may go depends on the connection
    /// ([`Provider::per_connection_api`](crate::config::Provider::per_connection_api)),
    /// decided once here rather than per request.
    per_connection: Vec<bool>,
    /// The written-out prefixes' authorities, for routing an `http::Uri`.
    authorities: KnownAuthorities,
    /// Indices into `prefixes` (in its order) by host, when there are too
    /// many prefixes to scan per request (a catalog of hundreds).
    by_host: Option<Positions>,
    /// `patterns` by the end of their host, when there are many.
    pattern_index: Option<PatternIndex>,
}

impl Router {
    /// Builds the router for every provider, in the order of `providers`.
    pub(crate) fn new(providers: &Providers) -> Self {
        let mut prefixes = Vec::new();
        let mut patterns = Vec::new();
        for (i, p) in providers.iter().enumerate() {
            for (j, api) in p.api.iter().enumerate() {
                match api.literal() {
                    Some(url) => prefixes.extend(Prefix::new(url, i)),
                    None => patterns.extend(Pattern::new(api, i, j)),
                }
            }
        }
        prefixes.sort_by_key(|p: &Prefix| std::cmp::Reverse(p.path.len()));
        let per_connection = providers.iter().map(|p| p.per_connection_api()).collect();
        let authorities = KnownAuthorities::new(&prefixes);
        let by_host = index_by_host(&prefixes, SCAN_AT_MOST);
        let pattern_index = PatternIndex::new(&patterns, SCAN_AT_MOST);
        Router {
            prefixes,
            patterns,
            per_connection,
            authorities,
            by_host,
            pattern_index,
        }
    }

    /// The longest written-out prefix that holds `target`, whose resolved
    /// path is `path`: among the prefixes of the target's host only, when
    /// there are many.
    #[inline]
    fn fixed_match(&self, target: &Target<'_>, path: &str) -> Option<&Prefix> {
        let Some(by_host) = &self.by_host else {
            return self.prefixes.iter().find(|p| p.matches(target, path));
        };
        // Hosts are kept in lower case; an `http::Uri` may spell one with
        // capitals.
        let ids = by_host.get(&*lower_case(target.host))?;
        ids.iter()
            .map(|&i| &self.prefixes[i])
            .find(|p| p.matches(target, path))
    }

    /// The written-out prefixes' authorities, as request URIs spell them.
    pub(crate) fn authorities(&self) -> &KnownAuthorities {
        &self.authorities
    }

    /// Provider `provider`'s credential scope depends on the connection.
    pub(crate) fn per_connection(&self, provider: usize) -> bool {
        self.per_connection.get(provider).copied().unwrap_or(false)
    }

    /// The index (in `providers.iter()` order) of the provider whose longest
    /// `api` prefix contains the target, if any. The path is resolved first
    /// (dot segments, also percent-encoded); a path that routes differently
    /// when a server decodes its encoded slashes routes nowhere (see the
    /// [module documentation](self)).
    ///
    /// A prefix with placeholders counts as `render(provider, api index)`
    /// renders it for the request's connection (`None`: that connection has
    /// no valid rendering, and the prefix holds nothing). At equal length a
    /// written-out prefix wins over a rendered one.
    ///
    /// Also says whether the target's path goes out as it is (nothing to
    /// resolve): read off the one scan routing makes, so that sending the
    /// request does not scan the path again.
    pub(crate) fn route_as_given(
        &self,
        target: &Target<'_>,
        render: impl Fn(usize, usize) -> Option<Url>,
    ) -> (Option<usize>, bool) {
        if self.patterns.is_empty() {
            return route_path_as_given(target.path, |path| {
                self.fixed_match(target, path).map(|p| p.provider)
            });
        }
        let host = lower_case(target.host);
        route_path_as_given(target.path, |path| {
            // The longest prefix wins; at equal length a written-out one,
            // then the pattern described first (`order`), whatever order
            // the candidates come in.
            let mut best = self
                .fixed_match(target, path)
                .map(|p| (p.path.len(), 0, p.provider));
            self.pattern_candidates(&host, |i| {
                let pattern = &self.patterns[i];
                if !pattern.could_hold(target, &host, path) {
                    return;
                }
                let len = if pattern.wildcard {
                    // Bound to the connection's own host once its token
                    // arrives; the exchange checks that (`api_base`).
                    pattern.path_len
                } else {
                    let Some(url) = render(pattern.provider, pattern.api) else {
                        return;
                    };
                    if !url_holds(&url, target, path) {
                        return;
                    }
                    url.path().len()
                };
                let order = i + 1;
                if best.is_none_or(|(l, o, _)| len > l || (len == l && order < o)) {
                    best = Some((len, order, pattern.provider));
                }
            });
            best.map(|(_, _, provider)| provider)
        })
    }

    /// Calls `f` with the index of every pattern that could hold a request
    /// to `host` (lower case): each of them, or, with a [`PatternIndex`],
    /// those filed under one of `host`'s suffixes that start with `.`, and
    /// those always tried. Each at most once, in no particular order.
    fn pattern_candidates(&self, host: &str, mut f: impl FnMut(usize)) {
        let Some(index) = &self.pattern_index else {
            (0..self.patterns.len()).for_each(f);
            return;
        };
        index.always.iter().for_each(|&i| f(i));
        for (at, &b) in host.as_bytes().iter().enumerate() {
            if b == b'.' {
                // Cut before an ASCII byte: on a character boundary.
                index.filed_under(&host[at..]).iter().for_each(|&i| f(i));
            }
        }
    }

    /// The providers one of whose prefixes with placeholders could hold
    /// `url` for some connection.
    pub(crate) fn could_route(&self, url: &Url) -> impl Iterator<Item = usize> {
        let target = Target::from_url(url);
        let mut found: Vec<usize> = Vec::new();
        if let Some(t) = &target {
            let host = lower_case(t.host);
            self.pattern_candidates(&host, |i| {
                let p = &self.patterns[i];
                if !found.contains(&p.provider)
                    && route_path(t.path, |path| p.could_hold(t, &host, path).then_some(()))
                        .is_some()
                {
                    found.push(p.provider);
                }
            });
        }
        found.sort_unstable();
        found.into_iter()
    }

    /// True when `url` has the scheme, host and port of one of provider
    /// `provider`'s prefixes (whatever its path), rendered with `render`.
    pub(crate) fn shares_origin(
        &self,
        provider: usize,
        url: &Url,
        render: impl Fn(usize, usize) -> Option<Url>,
    ) -> bool {
        Target::from_url(url).is_some_and(|t| {
            self.prefixes
                .iter()
                .any(|p| p.provider == provider && p.same_origin(&t))
                || self.patterns.iter().any(|p| {
                    p.provider == provider
                        && render(p.provider, p.api).is_some_and(|u| {
                            u.port_or_known_default() == Some(t.port)
                                && u.scheme().eq_ignore_ascii_case(t.scheme)
                                && u.host_str().is_some_and(|h| h.eq_ignore_ascii_case(t.host))
                        })
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `router` without its indexes: every prefix and authority tried in
    /// turn, as routing does for a handful.
    fn scanning(router: &Router) -> Router {
        Router {
            authorities: KnownAuthorities {
                index: None,
                ..router.authorities.clone()
            },
            by_host: None,
            pattern_index: None,
            ..router.clone()
        }
    }

    /// Random catalogs of written-out and templated prefixes (with hosts
    /// that share ends, ports and paths), indexed and not, and the URIs
    /// that could hit them: both route alike.
    fn catalogs_route_alike(entries: &[(u8, u8, u8, u8, u8)], uris: &[(u8, u8, u8, u8, bool)]) {
        const LABELS: [&str; 4] = ["a", "api", "svc1", "b-2"];
        const PORTS: [u16; 2] = [443, 8443];
        const PATHS: [&str; 4] = ["/", "/v1/", "/v1/admin/", "/api/"];
        let mut prefixes = Vec::new();
        let mut patterns = Vec::new();
        let mut templates = Vec::new();
        for (i, &(kind, a, b, port, path)) in entries.iter().enumerate() {
            let (a, b) = (LABELS[usize::from(a % 4)], LABELS[usize::from(b % 4)]);
            let (port, path) = (PORTS[usize::from(port % 2)], PATHS[usize::from(path % 4)]);
            let source = match kind % 5 {
                0 => format!("https://{a}.{b}.example.com:{port}{path}"),
                1 => format!("https://{{{{ inputs.t }}}}.{b}.example.com:{port}{path}"),
                2 => format!("https://{a}-{{{{ inputs.t }}}}.example.com:{port}{path}"),
                3 => format!("https://{a}.{{{{ inputs.d }}}}:{port}{path}"),
                _ => format!("{{{{ inputs.base }}}}{path}"),
            };
            let template = UrlTemplate::parse(&source).unwrap();
            match template.literal() {
                Some(url) => prefixes.extend(Prefix::new(url, i)),
                None => patterns.extend(Pattern::new(&template, i, 0)),
            }
            templates.push(template);
        }
        prefixes.sort_by_key(|p: &Prefix| std::cmp::Reverse(p.path.len()));
        let value = |name: &str| match name {
            "t" => Some("acme"),
            "d" => Some("svc1.example.com"),
            _ => Some("https://acme.api.example.com:8443"),
        };
        let render = |i: usize, _api: usize| templates[i].render_allowing_http(value, false).ok();
        // Indexed whatever the numbers: the thresholds are for speed only.
        let indexed = Router {
            authorities: KnownAuthorities::indexed_above(&prefixes, 0),
            per_connection: vec![false; entries.len()],
            by_host: index_by_host(&prefixes, 0),
            pattern_index: PatternIndex::new(&patterns, 0),
            prefixes,
            patterns,
        };
        let scanning = scanning(&indexed);
        for &(host, a, port, path, capitals) in uris {
            let a = LABELS[usize::from(a % 4)];
            let host = match host % 5 {
                0 => format!("acme.{a}.example.com"),
                1 => format!("{a}.{a}.example.com"),
                2 => format!("{a}-acme.example.com"),
                3 => format!("{a}.svc1.example.com"),
                _ => "acme.api.example.com".to_owned(),
            };
            let host = if capitals {
                host.to_ascii_uppercase()
            } else {
                host
            };
            let (port, path) = (PORTS[usize::from(port % 2)], PATHS[usize::from(path % 4)]);
            let uri: http::Uri = format!("https://{host}:{port}{path}x").parse().unwrap();
            let route = |router: &Router| {
                let target = Target::from_uri_known(&uri, router.authorities()).unwrap();
                router.route_as_given(&target, render)
            };
            assert_eq!(route(&indexed), route(&scanning), "{uri}");
            let url = Url::parse(&uri.to_string()).unwrap();
            let found = |router: &Router| router.could_route(&url).collect::<Vec<_>>();
            assert_eq!(found(&indexed), found(&scanning), "{url}");
        }
    }

    proptest::proptest! {
        /// The inline comparison is `==`, for every length around its word
        /// sizes, for equal slices and for slices that differ in one byte.
        #[test]
        fn same_bytes_is_slice_equality(
            a in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            flip in proptest::option::of((0usize..40, 1u8..=255)),
            other in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            let mut b = a.clone();
            if let Some((at, by)) = flip && at < b.len() {
                b[at] ^= by;
            }
            proptest::prop_assert_eq!(same_bytes(&a, &b), a == b);
            proptest::prop_assert_eq!(same_bytes(&a, &other), a == other);
            proptest::prop_assert!(same_bytes(&a, &a.clone()));
        }
    }

    proptest::proptest! {
        #[test]
        fn random_catalogs_route_alike_indexed_or_not(
            entries in proptest::collection::vec((0u8..5, 0u8..4, 0u8..4, 0u8..2, 0u8..4), 1..30),
            uris in proptest::collection::vec((0u8..5, 0u8..4, 0u8..2, 0u8..4, proptest::bool::ANY), 1..40),
        ) {
            catalogs_route_alike(&entries, &uris);
        }

        /// The one-pass authority reading agrees with `http`'s own
        /// `host()` and `port_u16()` (which hyper sends by) on every
        /// authority `http` accepts.
        #[test]
        fn host_and_port_reads_an_authority_as_http_does(
            authority in "[a-zA-Z0-9.:@\\[\\]%+-]{0,24}"
        ) {
            if let Ok(uri) = format!("http://{authority}/x").parse::<http::Uri>()
                && let Some(parsed) = uri.authority()
            {
                let ours = host_and_port(parsed.as_str());
                proptest::prop_assert_eq!(ours, (parsed.host(), parsed.port_u16()));
                proptest::prop_assert_eq!(any_host_and_port(parsed.as_str()), ours);
            }
        }
    }

    proptest::proptest! {
        /// The same for the common shapes the short pass reads on its own
        /// (`host` and `host:port`, ports of any length).
        #[test]
        fn host_and_port_reads_a_plain_authority_as_http_does(
            authority in "[a-zA-Z0-9.-]{0,12}(:[0-9]{0,7})?"
        ) {
            if let Ok(uri) = format!("http://{authority}/x").parse::<http::Uri>()
                && let Some(parsed) = uri.authority()
            {
                let ours = host_and_port(parsed.as_str());
                proptest::prop_assert_eq!(ours, (parsed.host(), parsed.port_u16()));
            }
        }
    }

    proptest::proptest! {
        /// The word-at-a-time scan finds exactly the bytes the table names.
        #[test]
        fn the_path_scan_agrees_with_the_table(path in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let by_table = path.iter().any(|&b| NEEDS_A_CLOSER_LOOK[usize::from(b)]);
            proptest::prop_assert_eq!(needs_a_closer_look(&path), by_table);
        }
    }

    /// A known authority is read exactly as `host_and_port` (and so `http`)
    /// reads its text; one spelled otherwise is not found.
    #[test]
    fn known_authorities_read_as_host_and_port_does() {
        let prefixes: Vec<Prefix> = [
            "https://api.example.com/v1/",
            "https://API.example.com:8443/",
            "http://127.0.0.1:8080/api/",
            "http://h.example/",
            "https://[::1]/x/",
        ]
        .iter()
        .enumerate()
        .map(|(i, u)| Prefix::new(&Url::parse(u).unwrap(), i).unwrap())
        .collect();
        let known = KnownAuthorities::new(&prefixes);
        let texts: Vec<&str> = known.list.iter().map(|k| &*k.text).collect();
        assert_eq!(
            texts,
            [
                "api.example.com:443",
                "api.example.com",
                "api.example.com:8443",
                "127.0.0.1:8080",
                "h.example:80",
                "h.example",
                "[::1]:443",
                "[::1]",
            ]
        );
        for k in &known.list {
            assert_eq!(
                (&k.text[..k.host_len], k.port),
                host_and_port(&k.text),
                "{}",
                k.text
            );
            let uri: http::Uri = format!("https://{}/v1/x", k.text).parse().unwrap();
            let (fast, slow) = (
                Target::from_uri_known(&uri, &known).unwrap(),
                Target::from_uri(&uri).unwrap(),
            );
            assert_eq!(
                (fast.host, fast.port, fast.path),
                (slow.host, slow.port, slow.path)
            );
        }
        for other in [
            "API.example.com",
            "api.example.com:0443",
            "u@api.example.com",
            "",
        ] {
            assert!(known.find(other).is_none(), "{other}");
        }
    }

    #[test]
    fn host_and_port_of_common_authorities() {
        for authority in [
            "api.example.com",
            "API.example.com:8443",
            "user:pw@api.example.com",
            "user@api.example.com:80",
            "[::1]",
            "[::1]:8080",
            "u@[fe80::1]:1",
            "h:+80",
            "h:",
            "127.0.0.1",
            "127.0.0.1:8080",
            "h:0",
            "h:65535",
            "h:65536",
            "h:000080",
            "h:0000080",
            "h:99999",
        ] {
            let uri: http::Uri = format!("https://{authority}/").parse().unwrap();
            let parsed = uri.authority().unwrap();
            assert_eq!(
                host_and_port(authority),
                (parsed.host(), parsed.port_u16()),
                "{authority}"
            );
        }
    }

    /// The module documentation's examples.
    #[test]
    fn documented_examples() {
        {
            let prefix = Url::parse("https://api.example.com/api").unwrap();
            let ok = |u: &str| prefix_matches(&prefix, &Url::parse(u).unwrap());
            assert!(ok("https://api.example.com/api/items"));
            assert!(ok("https://API.example.com:443/api"));
            assert!(!ok("https://api.example.com/api-other"));
            assert!(!ok("http://api.example.com/api/items"));
            assert!(!ok("https://api.example.com.evil.net/api/items"));
            assert!(!ok("https://api.example.com@evil.net/api/items"));
        }
        {
            let a = Url::parse("https://api.example.com/a/").unwrap();
            let ok = |u: &str| prefix_matches(&a, &Url::parse(u).unwrap());
            assert!(!ok("https://api.example.com/a/../b/secret"));
            assert!(!ok("https://api.example.com/a/%2e%2E/b/secret"));
            assert!(!ok("https://api.example.com/a/..%2Fb/secret"));
            assert!(!ok("https://api.example.com/a/..;x/b/secret"));
            assert!(ok("https://api.example.com/a/./items/../x"));
        }
    }

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

    /// A catalog (more prefixes than are scanned) routes every URI exactly
    /// as a scan of all its prefixes does: the longest prefix of the
    /// request's host, scheme and port wins, hosts in any case, authorities
    /// spelled in any way.
    #[test]
    fn a_catalog_routes_as_a_scan_of_every_prefix() {
        let mut urls = vec![
            "https://api.example.com/".to_owned(),
            "https://api.example.com/v1/".to_owned(),
            "https://api.example.com/v1/admin/".to_owned(),
            "http://api.example.com/v1/".to_owned(),
            "https://api.example.com:8443/v1/".to_owned(),
            "https://[::1]/x/".to_owned(),
            "http://127.0.0.1:8080/api".to_owned(),
        ];
        urls.extend((0..40).map(|n| format!("https://api{n}.example.com/v{}/", n % 3)));
        let mut prefixes: Vec<Prefix> = urls
            .iter()
            .enumerate()
            .map(|(i, u)| Prefix::new(&Url::parse(u).unwrap(), i).unwrap())
            .collect();
        prefixes.sort_by_key(|p: &Prefix| std::cmp::Reverse(p.path.len()));
        let indexed = Router {
            authorities: KnownAuthorities::new(&prefixes),
            per_connection: vec![false; prefixes.len()],
            by_host: index_by_host(&prefixes, SCAN_AT_MOST),
            pattern_index: None,
            prefixes: prefixes.clone(),
            patterns: Vec::new(),
        };
        assert!(indexed.by_host.is_some() && indexed.authorities.index.is_some());
        let scanning = scanning(&indexed);
        let mut requests = 0;
        for authority in [
            "api.example.com",
            "API.Example.com",
            "api.example.com:443",
            "api.example.com:0443",
            "api.example.com:8443",
            "u@api.example.com",
            "api7.example.com",
            "API39.example.com:443",
            "api40.example.com",
            "[::1]",
            "127.0.0.1:8080",
            "127.0.0.1",
            "evil.net",
        ] {
            for scheme in ["https", "http"] {
                for path in [
                    "/",
                    "/v1/",
                    "/v1/admin/x",
                    "/v2/items",
                    "/x/y",
                    "/api",
                    "/v1/../v2/a",
                ] {
                    let uri: http::Uri = format!("{scheme}://{authority}{path}").parse().unwrap();
                    let route = |router: &Router| {
                        let target = Target::from_uri_known(&uri, router.authorities()).unwrap();
                        router.route_as_given(&target, |_, _| None)
                    };
                    assert_eq!(route(&indexed), route(&scanning), "{uri}");
                    requests += usize::from(route(&indexed).0.is_some());
                }
            }
        }
        // The comparison is not vacuous: many of these requests route.
        assert!(requests > 40, "{requests}");
    }

    /// A catalog of prefixes with placeholders (more than are tried one by
    /// one) routes every URI exactly as trying each of them does: hosts
    /// filed by their end, the ones that cannot be filed (a host ending in
    /// a placeholder, a prefix starting with one) always tried, the longest
    /// prefix winning over the order in which candidates are found.
    #[test]
    fn a_catalog_of_templated_prefixes_routes_as_trying_each() {
        let mut apis: Vec<String> = (0..6)
            .map(|n| format!("https://{{{{ inputs.tenant }}}}.svc{n}.example.com/api/"))
            .collect();
        apis.extend(
            [
                "https://api.example.com/{{ inputs.tenant }}/",
                "https://{{ inputs.tenant }}.tenants.example.com/",
                "https://api-{{ inputs.tenant }}.eu.example.com/v1/",
                // Both this one and the next hold `https://acme.foo.com/x/`:
                // at equal length the one described first wins, though the
                // index finds the next one (never filed) first.
                "https://{{ inputs.tenant }}.foo.com/x/",
                "https://acme.{{ inputs.domain }}/x/",
                "{{ inputs.base_url }}/api/",
                "https://acme.svc1.example.com/api/admin/",
                "https://api.example.com/",
            ]
            .map(str::to_owned),
        );
        let mut toml = String::new();
        for (i, api) in apis.iter().enumerate() {
            toml.push_str(&format!(
                "[providers.p{i}]\napi = [\"{api}\"]\n\
                 inputs.tenant = {{ env = \"T_{i}\", default = \"acme\" }}\n\
                 inputs.domain = {{ env = \"D_{i}\", default = \"foo.com\" }}\n\
                 inputs.base_url = {{ env = \"B_{i}\", default = \"https://acme.example.org\" }}\n\
                 inject = {{ header = \"X-Key\", value = \"k\" }}\n"
            ));
        }
        let providers = crate::config::Providers::from_toml("catalog.toml", &toml).unwrap();
        let conn = crate::Connection::new("c")
            .with_input("tenant", "acme")
            .with_input("domain", "foo.com")
            .with_input("base_url", "https://acme.example.org");
        let list: Vec<&crate::config::Provider> = providers.iter().collect();
        let render = |i: usize, api: usize| conn.render_url(list[i], &list[i].api[api]).ok();
        let indexed = Router::new(&providers);
        assert!(indexed.pattern_index.is_some());
        let scanning = scanning(&indexed);
        let mut routed = 0;
        for host in [
            "acme.svc0.example.com",
            "acme.svc1.example.com",
            "ACME.SVC3.example.com",
            "other.svc1.example.com",
            "api.example.com",
            "acme.tenants.example.com",
            "api-acme.eu.example.com",
            "acme.foo.com",
            "acme.example.org",
            "svc2.example.com",
            "evil.net",
        ] {
            for path in ["/", "/api/x", "/api/admin/z", "/acme/x", "/v1/a", "/x/y"] {
                let uri: http::Uri = format!("https://{host}{path}").parse().unwrap();
                let target = Target::from_uri(&uri).unwrap();
                let got = indexed.route_as_given(&target, render);
                assert_eq!(got, scanning.route_as_given(&target, render), "{uri}");
                routed += usize::from(got.0.is_some());
                let url = Url::parse(&uri.to_string()).unwrap();
                let (a, b): (Vec<usize>, Vec<usize>) = (
                    indexed.could_route(&url).collect(),
                    scanning.could_route(&url).collect(),
                );
                assert_eq!(a, b, "{uri}");
            }
        }
        assert!(routed > 20, "{routed}");
        // The longest prefix, written out or rendered.
        let route = |u: &str| {
            let uri: http::Uri = u.parse().unwrap();
            indexed
                .route_as_given(&Target::from_uri(&uri).unwrap(), render)
                .0
        };
        assert_eq!(route("https://acme.svc0.example.com/api/x"), Some(0));
        assert_eq!(route("https://acme.svc1.example.com/api/admin/z"), Some(12));
        assert_eq!(route("https://acme.svc1.example.com/api/other"), Some(1));
        assert_eq!(route("https://api.example.com/acme/x"), Some(6));
        assert_eq!(route("https://api.example.com/other/x"), Some(13));
        assert_eq!(route("https://acme.foo.com/x/1"), Some(9));
        assert_eq!(route("https://acme.example.org/api/1"), Some(11));
    }

    /// Routes a raw request path (as a tower layer sees it in an
    /// `http::Uri`) among prefixes `/a/` (0) and `/b/` (1) of one host.
    fn route_raw(path: &str) -> Option<usize> {
        let prefixes = ["https://h.example/a/", "https://h.example/b/"];
        let prefixes: Vec<Prefix> = prefixes
            .iter()
            .enumerate()
            .map(|(i, u)| Prefix::new(&Url::parse(u).unwrap(), i).unwrap())
            .collect();
        let router = Router {
            authorities: KnownAuthorities::new(&prefixes),
            per_connection: vec![false; prefixes.len()],
            by_host: None,
            pattern_index: None,
            prefixes,
            patterns: Vec::new(),
        };
        let uri: http::Uri = format!("https://h.example{path}").parse().unwrap();
        router
            .route_as_given(&Target::from_uri(&uri).unwrap(), |_, _| None)
            .0
    }

    #[test]
    fn raw_paths_are_resolved_before_routing() {
        assert_eq!(route_raw("/a/items"), Some(0));
        assert_eq!(route_raw("/a/file.json"), Some(0));
        assert_eq!(route_raw("/a/.hidden"), Some(0));
        assert_eq!(route_raw("/a/./items"), Some(0));
        for to_b in [
            "/a/../b/secret",
            "/a/%2e%2e/b/secret",
            "/a/%2E%2E/b/secret",
            "/a/.%2E/b/secret",
            "/a/%2e./b/secret",
            "/a/x/../../b/secret",
            "/./b/secret",
        ] {
            assert_eq!(route_raw(to_b), Some(1), "{to_b}");
        }
        for outside in ["/a/.%2E/admin", "/a/../admin", "/a/..", "/b/%2e%2e"] {
            assert_eq!(route_raw(outside), None, "{outside}");
        }
    }

    #[test]
    fn encoded_slashes_that_change_the_route_get_nothing() {
        // A server that decodes %2F before resolving dots reads `/b/secret`.
        assert_eq!(route_raw("/a/..%2Fb/secret"), None);
        assert_eq!(route_raw("/a/..%2fadmin"), None);
        assert_eq!(route_raw("/a/..%5Cb/secret"), None);
        // Both readings agree: routed.
        assert_eq!(route_raw("/a/x%2Fy"), Some(0));
        assert_eq!(route_raw("/a/x%2F..%2Fy"), Some(0));
    }

    #[test]
    fn path_parameters_that_change_the_route_get_nothing() {
        // Tomcat, Jetty and Spring strip `;…` before resolving dots.
        for path in [
            "/a/..;/b/secret",
            "/a/..;x=1/b/secret",
            "/a/%2e%2e;/b/secret",
            "/a/.;/../admin",
        ] {
            assert_eq!(route_raw(path), None, "{path}");
        }
        assert_eq!(route_raw("/a/items;jsessionid=1"), Some(0));
        assert_eq!(route_raw("/a/x;v=1/y"), Some(0));
    }

    #[test]
    fn resolved_paths_for_sending() {
        assert_eq!(resolved_path("/a/items"), None);
        assert_eq!(resolved_path("/a/../b/x").as_deref(), Some("/b/x"));
        assert_eq!(resolved_path("/a/%2e%2E/b/x").as_deref(), Some("/b/x"));
        assert_eq!(resolved_path("/a/x%2Fy"), None);
    }

    #[test]
    fn reqwest_and_tower_views_route_alike() {
        // The URL parser (reqwest's view) and the raw path (tower's view)
        // agree for every path above.
        let prefix = Url::parse("https://h.example/a/").unwrap();
        for path in [
            "/a/../b/x",
            "/a/%2e%2e/b/x",
            "/a/.%2E/admin",
            "/a/./x",
            "/a/..%2Fb/x",
        ] {
            let url = Url::parse(&format!("https://h.example{path}")).unwrap();
            assert_eq!(
                prefix_matches(&prefix, &url),
                route_raw(path) == Some(0),
                "{path}"
            );
        }
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
