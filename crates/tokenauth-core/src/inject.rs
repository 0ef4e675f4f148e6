//! Injection: the rendered form of `[inject]`, ready to attach to a request.
//!
//! The inject templates are rendered **once**, when the token is fetched (or,
//! for static credentials, when the connection is first used), and the result
//! is kept with the cached token; attaching it to a request only clones
//! [`HeaderValue`]s (no allocation for a header credential). Header values
//! are marked [sensitive](HeaderValue::set_sensitive), so `http` and
//! `tracing` never print them.
//!
//! An [`Injection`] has one or more **parts**, headers and query parameters:
//!
//! - `header` + `value`: a header with the rendered value;
//! - `basic`: the header `Authorization: Basic base64(user:password)`;
//! - `headers = { ... }`: one header each;
//! - `query`: one query parameter each; the values are secret.
//!
//! # The caller's explicit value wins, per name
//!
//! A request sent through an adapter (reqwest or tower) that already carries
//! a part's header or query parameter, set by the caller, keeps the caller's
//! value, and the other parts are attached beside it:
//!
//! - the caller set **every** part (or an `Authorization` header that the
//!   provider does not set itself): the request goes out untouched and no
//!   token is fetched, as with a single credential;
//! - the caller set **some** parts: the credential is fetched as usual and
//!   only the missing parts are attached. A rejection is handled as for any
//!   request (renew once, retry once), the retry again keeping the caller's
//!   values;
//! - a `Cookie` part counts as set when the request carries one of the
//!   cookies it sets; the caller's other cookies do not count, and the
//!   credential's cookies are merged into the caller's `Cookie` header.
//!
//! Attaching a credential by hand ([`Credential::apply_to`],
//! [`Injection::apply_to_headers`], [`Injection::apply_to_url`]) sets every
//! part, replacing what the request carried.
//!
//! [`Credential::apply_to`]: crate::Credential::apply_to

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::header::InvalidHeaderValue;
use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::{Inject, Provider};
use crate::connection::Connection;
use crate::error::Error;
use crate::template::{Template, Var};

/// The name of the cookie (or cookies) a `Cookie` value such as
/// `sid=abc; x=1` sets: the part before the first `=` of each pair.
pub(crate) fn cookie_names(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(';')
        .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty())
}

/// `headers`' cookies with `ours` (a `Cookie` value) added, in one `Cookie`
/// header: the request's own cookies first, in order, except those `ours`
/// sets again.
fn merge_cookie(headers: &mut HeaderMap, ours: &HeaderValue) {
    let ours_text = ours.to_str().unwrap_or_default();
    let ours_names: Vec<&str> = cookie_names(ours_text).collect();
    let mut merged = Vec::new();
    for existing in headers.get_all(http::header::COOKIE) {
        for pair in existing.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            let name = pair
                .split(|b| *b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if pair.is_empty() || ours_names.iter().any(|n| n.as_bytes() == name) {
                continue;
            }
            merged.extend_from_slice(pair);
            merged.extend_from_slice(b"; ");
        }
    }
    merged.extend_from_slice(ours.as_bytes());
    let value = match HeaderValue::from_bytes(&merged) {
        Ok(mut value) => {
            value.set_sensitive(true);
            value
        }
        // Unreachable (every part was a valid header value); the credential
        // alone, rather than nothing.
        Err(_) => ours.clone(),
    };
    headers.insert(http::header::COOKIE, value);
}

/// True when `headers` carry one of the cookies `ours` (a `Cookie` value)
/// sets: the caller set that part of the credential itself.
fn carries_cookie_of(headers: &HeaderMap, ours: &HeaderValue) -> bool {
    let ours = ours.to_str().unwrap_or_default();
    headers.get_all(http::header::COOKIE).iter().any(|v| {
        cookie_names(v.to_str().unwrap_or_default()).any(|n| cookie_names(ours).any(|m| m == n))
    })
}

/// True when the raw query string `query` has a parameter `name` (names
/// compared form-decoded).
pub(crate) fn query_has(query: Option<&str>, name: &str) -> bool {
    query.is_some_and(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(n, _)| n == name))
}

/// A rendered credential: what to attach to a request. One or more parts:
/// headers (in the order `header`, `basic`, `headers` were written) and
/// query parameters. Through an adapter, a part whose header or query
/// parameter the caller already set keeps the caller's value, and the other
/// parts are attached beside it (the whole rule: `docs/adapters.md`).
///
/// Compact, since the cache keeps one per connection: the part names are
/// shared by every credential of a provider (a `Shape`), and the common
/// credential, a single header, keeps its value inline.
#[derive(Clone)]
pub struct Injection {
    shape: Arc<Shape>,
    values: Values,
}

/// What every credential of one provider has in common: the provider id,
/// the names of the parts and where the access token sits in them.
pub(crate) struct Shape {
    provider: Arc<str>,
    /// Names distinct.
    headers: Box<[HeaderName]>,
    /// Names distinct.
    query: Box<[String]>,
    /// Where the rendered parts hold the access token verbatim, when a
    /// part's template is literal text around `{{ token.access }}` only.
    access: Option<AccessAt>,
}

/// A part's value minus `prefix` bytes at the start and `suffix` at the end
/// is the access token.
#[derive(Clone, Copy)]
struct AccessAt {
    part: PartIndex,
    prefix: usize,
    suffix: usize,
}

#[derive(Clone, Copy)]
enum PartIndex {
    Header(usize),
    Query(usize),
}

/// The values of an [`Injection`]'s parts, in the order of its
/// [`Shape`]'s names.
#[derive(Clone)]
enum Values {
    /// One header and no query parameter: the common case, inline.
    One(HeaderValue),
    Many(Box<ManyValues>),
}

#[derive(Clone)]
struct ManyValues {
    /// Each marked sensitive.
    headers: Box<[HeaderValue]>,
    query: Box<[SecretString]>,
}

impl Shape {
    /// The shape of `provider`'s credentials.
    pub(crate) fn of(provider: &Provider, id: Arc<str>) -> Arc<Shape> {
        let Inject {
            header,
            basic,
            headers,
            query,
        } = &provider.inject;
        let mut names = Vec::new();
        let mut templates = Vec::new();
        if let Some((name, value)) = header {
            names.push(name.clone());
            templates.push(Some(value));
        }
        if basic.is_some() {
            // Base64 of user:password: never the token verbatim.
            names.push(http::header::AUTHORIZATION);
            templates.push(None);
        }
        for (name, value) in headers {
            names.push(name.clone());
            templates.push(Some(value));
        }
        let header_at = templates
            .iter()
            .enumerate()
            .find_map(|(i, t)| Some((PartIndex::Header(i), token_at(t.as_ref()?)?)));
        let query_at = query
            .iter()
            .enumerate()
            .find_map(|(i, (_, t))| Some((PartIndex::Query(i), token_at(t)?)));
        let access = header_at
            .or(query_at)
            .map(|(part, (prefix, suffix))| AccessAt {
                part,
                prefix,
                suffix,
            });
        Arc::new(Shape {
            provider: id,
            headers: names.into(),
            query: query.iter().map(|(n, _)| n.clone()).collect(),
            access,
        })
    }

    /// A shape of these names, for credentials made by hand (tests).
    #[cfg(test)]
    fn named(headers: Vec<HeaderName>, query: Vec<String>) -> Arc<Shape> {
        Arc::new(Shape {
            provider: Arc::from("test"),
            headers: headers.into(),
            query: query.into(),
            access: None,
        })
    }
}

/// The lengths of the literal text before and after `{{ token.access }}`
/// when that is the template's only placeholder.
fn token_at(template: &Template) -> Option<(usize, usize)> {
    use crate::template::Part;
    let parts: Vec<&Part> = template.parts().collect();
    let at = parts
        .iter()
        .position(|p| matches!(p, Part::Var(Var::TokenAccess)))?;
    let literal = |p: &&Part| match p {
        Part::Literal(text) => Some(text.len()),
        Part::Var(_) => None,
    };
    let prefix: Option<usize> = parts[..at].iter().map(literal).sum();
    let suffix: Option<usize> = parts[at + 1..].iter().map(literal).sum();
    Some((prefix?, suffix?))
}

/// `value` as a sensitive header value in one allocation of about its size
/// (the cache keeps one per connection): short values go inline into the
/// reference-counted block that [`Bytes`] clones share, instead of a
/// buffer plus a separate shared header made on the first clone.
pub(crate) fn compact_header_value(value: &[u8]) -> Result<HeaderValue, InvalidHeaderValue> {
    macro_rules! inline {
        ($($n:literal)*) => {$(
            if value.len() <= $n {
                let mut buf = [0u8; $n];
                buf[..value.len()].copy_from_slice(value);
                Bytes::from_owner(buf).slice(..value.len())
            } else
        )* {
            Bytes::copy_from_slice(value)
        }};
    }
    // Blocks of 8 bytes of count + N: N + 16 bytes with malloc's header,
    // its 16-byte size classes filled.
    let bytes = inline!(16 32 48 64 80 96 112 128 160 192 224 256 320 384 448 512);
    let mut value = HeaderValue::from_maybe_shared(bytes)?;
    value.set_sensitive(true);
    Ok(value)
}

impl Injection {
    /// A credential of these parts, shaped as `shape` (the same names, in
    /// order). Header values are marked sensitive.
    fn shaped(shape: Arc<Shape>, mut headers: Vec<HeaderValue>, query: Vec<SecretString>) -> Self {
        debug_assert_eq!(headers.len(), shape.headers.len());
        debug_assert_eq!(query.len(), shape.query.len());
        for value in &mut headers {
            value.set_sensitive(true);
        }
        let values = match (headers.len(), query.is_empty()) {
            (1, true) => Values::One(headers.pop().expect("one header")),
            _ => Values::Many(Box::new(ManyValues {
                headers: headers.into(),
                query: query.into(),
            })),
        };
        Injection { shape, values }
    }

    /// A credential of these parts. Header values are marked sensitive.
    #[cfg(test)]
    pub(crate) fn new(
        headers: Vec<(HeaderName, HeaderValue)>,
        query: Vec<(String, SecretString)>,
    ) -> Self {
        let (names, values): (Vec<_>, Vec<_>) = headers.into_iter().unzip();
        let (qnames, qvalues): (Vec<_>, Vec<_>) = query.into_iter().unzip();
        Injection::shaped(Shape::named(names, qnames), values, qvalues)
    }

    /// A credential that is one (secret) header.
    #[cfg(test)]
    pub(crate) fn header(name: HeaderName, value: HeaderValue) -> Self {
        Injection::new(vec![(name, value)], Vec::new())
    }

    /// A credential that is one (secret) query parameter.
    #[cfg(test)]
    pub(crate) fn query_param(name: &str, value: &str) -> Self {
        Injection::new(
            Vec::new(),
            vec![(name.to_owned(), SecretString::from(value))],
        )
    }

    /// The provider this credential is for.
    pub(crate) fn provider(&self) -> &Arc<str> {
        &self.shape.provider
    }

    /// The header values, in the order of the shape's names.
    fn header_values(&self) -> &[HeaderValue] {
        match &self.values {
            Values::One(value) => std::slice::from_ref(value),
            Values::Many(many) => &many.headers,
        }
    }

    /// The query parameter values, in the order of the shape's names.
    fn query_values(&self) -> &[SecretString] {
        match &self.values {
            Values::One(_) => &[],
            Values::Many(many) => &many.query,
        }
    }

    /// The header parts, names and values.
    fn header_parts(&self) -> impl ExactSizeIterator<Item = (&HeaderName, &HeaderValue)> {
        self.shape.headers.iter().zip(self.header_values())
    }

    /// The query parameter parts, names and values.
    fn query_parts(&self) -> impl ExactSizeIterator<Item = (&String, &SecretString)> {
        self.shape.query.iter().zip(self.query_values())
    }

    /// The access token, where a part holds it verbatim (see
    /// [`Shape::of`]); `None` otherwise.
    pub(crate) fn access_token(&self) -> Option<&str> {
        let at = self.shape.access?;
        let value = match at.part {
            PartIndex::Header(i) => self.header_values().get(i)?.as_bytes(),
            PartIndex::Query(i) => self.query_values().get(i)?.expose_secret().as_bytes(),
        };
        let token = value.get(at.prefix..value.len().checked_sub(at.suffix)?)?;
        std::str::from_utf8(token).ok()
    }

    /// The header parts: names and (sensitive) values, in the order
    /// `header`, `basic`, `headers` were written.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&HeaderName, &HeaderValue)> {
        self.header_parts()
    }

    /// The value of the header part `name`, if there is one.
    pub fn header_value(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.header_parts()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The query parameter parts: names and (secret) values.
    pub fn query(&self) -> impl ExactSizeIterator<Item = (&str, &SecretString)> {
        self.query_parts().map(|(n, v)| (n.as_str(), v))
    }

    /// The values to keep out of what an API answered, for
    /// [`Credential::redact`](crate::Credential::redact): every part is
    /// taken for a secret (a key may sit in an input not marked secret):
    /// each header's value and its part after the scheme (`Bearer …`) or,
    /// for a `Cookie`, each cookie's value; each query parameter's value.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        let headers = self
            .header_parts()
            .filter_map(|(name, value)| Some((name == http::header::COOKIE, value.to_str().ok()?)))
            .flat_map(|(cookie, h)| {
                let after_scheme = (!cookie)
                    .then(|| h.split_once(' ').map(|(_, rest)| rest.trim()))
                    .flatten();
                let cookies = h
                    .split(';')
                    .filter(move |_| cookie)
                    .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.trim()));
                std::iter::once(h).chain(after_scheme).chain(cookies)
            });
        let query = self.query_values().iter().map(|v| v.expose_secret());
        query.chain(headers)
    }

    /// True when a part is a query parameter.
    pub fn has_query(&self) -> bool {
        !self.query_values().is_empty()
    }

    /// Sets every header part, replacing any value the request had. Returns
    /// whether there was one (`false` for a credential of query parameters
    /// only: use [`Injection::apply_to_url`]).
    ///
    /// A `Cookie` part is merged with the cookies the request already
    /// carries (a cookie of the same name is replaced), not put in their
    /// place.
    pub fn apply_to_headers(&self, headers: &mut HeaderMap) -> bool {
        for (name, value) in self.header_parts() {
            if name == http::header::COOKIE && headers.contains_key(http::header::COOKIE) {
                merge_cookie(headers, value);
            } else {
                headers.insert(name.clone(), value.clone());
            }
        }
        !self.header_values().is_empty()
    }

    /// Sets the header parts the request does not carry yet: the caller's
    /// explicit value wins, per name. A `Cookie` part counts as carried when
    /// the request has one of its cookies; otherwise it is merged with the
    /// request's cookies.
    pub(crate) fn attach_headers(&self, headers: &mut HeaderMap) {
        if headers.is_empty() {
            // No caller value to keep (most requests, before the client
            // adds its defaults): set each part, without the entry API's
            // extra lookup.
            for (name, value) in self.header_parts() {
                headers.insert(name, value.clone());
            }
            return;
        }
        for (name, value) in self.header_parts() {
            if name == http::header::COOKIE && headers.contains_key(http::header::COOKIE) {
                if !carries_cookie_of(headers, value) {
                    merge_cookie(headers, value);
                }
            } else if let http::header::Entry::Vacant(slot) = headers.entry(name) {
                slot.insert(value.clone());
            }
        }
    }

    /// Sets every query parameter part, removing every parameter of the same
    /// names first; the other parameters are kept byte for byte, in order
    /// (they may be signed or oddly encoded). Returns whether there was one
    /// (`false` for a credential of headers only).
    pub fn apply_to_url(&self, url: &mut Url) -> bool {
        if self.query_values().is_empty() {
            return false;
        }
        let query = self.with_params(url.query(), false);
        url.set_query(Some(&query));
        true
    }

    /// `query` with the query parameter parts set (every copy of their names
    /// replaced); `None` for a credential of headers only.
    pub(crate) fn replace_query(&self, query: Option<&str>) -> Option<String> {
        self.has_query().then(|| self.with_params(query, false))
    }

    /// `query` with the query parameter parts it does not carry yet
    /// appended (the caller's explicit value wins, per name); `None` when
    /// there is nothing to add.
    pub(crate) fn attach_query(&self, query: Option<&str>) -> Option<String> {
        self.query_parts()
            .any(|(name, _)| !query_has(query, name))
            .then(|| self.with_params(query, true))
    }

    /// `query` with the query parameter parts: with `keep`, the parts it
    /// has are left as they are and the others appended; without, every
    /// copy of each part's name is removed first.
    fn with_params(&self, query: Option<&str>, keep: bool) -> String {
        let mut out = match (query, keep) {
            (Some(q), true) => q.to_owned(),
            (q, _) => without_params(q.unwrap_or(""), |n| self.is_query_name(n)).0,
        };
        for (name, value) in self.query_parts() {
            if keep && query_has(query, name) {
                continue;
            }
            if !out.is_empty() {
                out.push('&');
            }
            out.extend(url::form_urlencoded::byte_serialize(name.as_bytes()));
            out.push('=');
            out.extend(url::form_urlencoded::byte_serialize(
                value.expose_secret().as_bytes(),
            ));
        }
        out
    }

    fn is_query_name(&self, name: &str) -> bool {
        self.shape.query.iter().any(|n| n == name)
    }

    /// Removes every query parameter part from `url` (every parameter of
    /// their names), keeping the others byte for byte: for URLs that leave
    /// the request path, such as the URL of a response or of an error.
    /// Returns whether there was one to remove; `false` for a credential of
    /// headers only.
    pub fn remove_from_url(&self, url: &mut Url) -> bool {
        if self.query_values().is_empty() {
            return false;
        }
        let Some(query) = url.query() else {
            return false;
        };
        let (rest, removed) = without_params(query, |n| self.is_query_name(n));
        if removed {
            url.set_query((!rest.is_empty()).then_some(rest.as_str()));
        }
        removed
    }

    /// `error` with the query parameter parts removed from its URL (reqwest
    /// prints an error's URL in `Display` and `Debug`); unchanged for a
    /// credential of headers only.
    pub fn redact_error(&self, mut error: reqwest::Error) -> reqwest::Error {
        if let Some(url) = error.url_mut() {
            self.remove_from_url(url);
        }
        error
    }

    /// `reference` (a URL or a relative reference, as in a `Location`
    /// header) without the query parameter parts; `None` when it holds none
    /// of them (always for a credential of headers only). For URL-valued
    /// response headers of servers that keep the query when they redirect.
    pub fn remove_from_reference(&self, reference: &str) -> Option<String> {
        if self.query_values().is_empty() {
            return None;
        }
        let (rest, fragment) = match reference.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (reference, None),
        };
        let (base, query) = rest.split_once('?')?;
        let (query, removed) = without_params(query, |n| self.is_query_name(n));
        if !removed {
            return None;
        }
        let mut out = String::with_capacity(reference.len());
        out.push_str(base);
        if !query.is_empty() {
            out.push('?');
            out.push_str(&query);
        }
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        Some(out)
    }
}

/// `query` without any parameter whose (form-decoded) name `remove`
/// accepts, the others copied as they were; and whether one was removed.
fn without_params(query: &str, remove: impl Fn(&str) -> bool) -> (String, bool) {
    let mut out = String::with_capacity(query.len());
    let mut removed = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let raw_name = pair.split_once('=').map_or(pair, |(n, _)| n);
        let same = url::form_urlencoded::parse(raw_name.as_bytes())
            .next()
            .is_some_and(|(n, _)| remove(&n));
        if same {
            removed = true;
        } else {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(pair);
        }
    }
    (out, removed)
}

/// Prints the names of the parts, never their values.
impl fmt::Debug for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[redacted]")
            }
        }
        struct Parts<'a>(Vec<&'a str>);
        impl fmt::Debug for Parts<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|n| (n, Redacted)))
                    .finish()
            }
        }
        let headers = Parts(self.shape.headers.iter().map(HeaderName::as_str).collect());
        let query = Parts(self.shape.query.iter().map(String::as_str).collect());
        f.debug_struct("Injection")
            .field("headers", &headers)
            .field("query", &query)
            .finish()
    }
}

/// The value [`Injection::deliberately_wrong`] puts in place of every
/// secret.
pub(crate) const WRONG_CREDENTIAL: &str = "tokenauth-deliberately-wrong-credential";

impl Injection {
    /// A credential of the provider's shape that no API should accept: the
    /// `[inject]` template rendered with every secret input and the access
    /// token replaced by `WRONG_CREDENTIAL` (non-secret inputs, such as a
    /// user name, are kept). `tokenauth test` sends it once to learn with
    /// which status the API rejects a bad credential.
    #[doc(hidden)]
    pub fn deliberately_wrong(provider: &Provider, conn: &Connection) -> Result<Injection, Error> {
        let shape = Shape::of(provider, Arc::from(provider.id.as_str()));
        render_with(&shape, provider, conn, |var| match var {
            Var::Input(name) if conn.is_secret(provider, name) => Some(WRONG_CREDENTIAL),
            Var::Input(name) => conn.value(provider, name),
            Var::TokenAccess => Some(WRONG_CREDENTIAL),
            Var::TokenRefresh | Var::Assertion => None,
        })
    }
}

/// Renders `[inject]` for a connection and (for providers that log in) an
/// access token.
#[cfg(test)]
pub(crate) fn render(
    provider: &Provider,
    conn: &Connection,
    access: Option<&SecretString>,
) -> Result<Injection, Error> {
    let shape = Shape::of(provider, Arc::from(provider.id.as_str()));
    render_shaped(&shape, provider, conn, access)
}

/// [`render`] with the provider's shared [`Shape`].
pub(crate) fn render_shaped(
    shape: &Arc<Shape>,
    provider: &Provider,
    conn: &Connection,
    access: Option<&SecretString>,
) -> Result<Injection, Error> {
    render_with(shape, provider, conn, |var| match var {
        Var::Input(name) => conn.value(provider, name),
        Var::TokenAccess => access.map(|a| a.expose_secret()),
        Var::TokenRefresh | Var::Assertion => None,
    })
}

fn render_with<'a>(
    shape: &Arc<Shape>,
    provider: &Provider,
    conn: &Connection,
    lookup: impl Fn(&Var) -> Option<&'a str>,
) -> Result<Injection, Error> {
    let render = |t: &Template| -> Result<String, Error> {
        t.render(&lookup)
            .map_err(|var| missing(provider, conn, &var))
    };
    let header = |name: &HeaderName, value: String| -> Result<HeaderValue, Error> {
        compact_header_value(value.as_bytes()).map_err(|_| Error::InvalidHeaderValue {
            provider: provider.id.clone(),
            what: format!("inject header `{name}`"),
        })
    };
    let Inject {
        header: single,
        basic,
        headers: more,
        query,
    } = &provider.inject;
    let mut headers = Vec::with_capacity(
        usize::from(single.is_some()) + usize::from(basic.is_some()) + more.len(),
    );
    if let Some((name, value)) = single {
        headers.push(header(name, render(value)?)?);
    }
    if let Some(basic) = basic {
        let user = render(&basic.username)?;
        let pass = render(&basic.password)?;
        headers.push(header(
            &http::header::AUTHORIZATION,
            basic_value(&user, &pass),
        )?);
    }
    for (name, value) in more {
        headers.push(header(name, render(value)?)?);
    }
    let query = query
        .iter()
        .map(|(_, value)| Ok(SecretString::from(render(value)?)))
        .collect::<Result<_, Error>>()?;
    Ok(Injection::shaped(Arc::clone(shape), headers, query))
}

/// `Basic base64(user:password)`.
/// A token request's client id and secret as they go into its Basic
/// credentials: with `form_encode`, each form-encoded first (RFC 6749
/// §2.3.1; `a b:c` becomes `a+b%3Ac`).
pub(crate) fn client_basic_parts(
    user: String,
    password: String,
    form_encode: bool,
) -> (String, String) {
    if !form_encode {
        return (user, password);
    }
    let encode = |s: String| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    (encode(user), encode(password))
}

pub(crate) fn basic_value(user: &str, password: &str) -> String {
    let mut raw = String::with_capacity(user.len() + password.len() + 1);
    raw.push_str(user);
    raw.push(':');
    raw.push_str(password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The error for a template variable that has no value.
pub(crate) fn missing(provider: &Provider, conn: &Connection, var: &Var) -> Error {
    match var {
        Var::Input(name) => Error::MissingInput {
            provider: provider.id.clone(),
            connection: conn.id().to_owned(),
            input: name.clone(),
            env: provider.input(name).and_then(|i| i.env.clone()),
        },
        // Loading guarantees token placeholders only appear where the token
        // is known; reaching this means a token was absent.
        Var::TokenAccess | Var::TokenRefresh | Var::Assertion => Error::InvalidHeaderValue {
            provider: provider.id.clone(),
            what: format!("template (`{{{{ {var} }}}}` has no value here)"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(toml: &str) -> crate::Provider {
        let providers = crate::Providers::from_toml("p.toml", toml).unwrap();
        providers.providers[0].clone()
    }

    /// The cached credential keeps the token once: it is read back from the
    /// part that holds it verbatim, when the template puts only literal text
    /// around it.
    #[test]
    fn the_access_token_is_read_back_from_the_rendered_part() {
        let shaped = |inject: &str| {
            provider(&format!(
                r#"
[providers.t]
api = ["https://api.example.com/"]
inputs.tenant = {{ env = "T_TENANT" }}
login = {{ url = "https://api.example.com/token", body = "form", fields = {{ grant_type = "client_credentials" }} }}
response = {{ access_token = "/access_token", expires_in = "/expires_in" }}
inject = {inject}
"#
            ))
        };
        let conn = Connection::new("c").with_input("tenant", "acme");
        let token = SecretString::from("t0k3n");
        for (inject, readable) in [
            (
                r#"{ header = "Authorization", value = "Bearer {{ token.access }}" }"#,
                true,
            ),
            (
                r#"{ header = "X-Token", value = "{{ token.access }};v=1" }"#,
                true,
            ),
            (
                r#"{ query = { access_token = "{{ token.access }}" } }"#,
                true,
            ),
            (
                r#"{ header = "X-Token", value = "{{ inputs.tenant }}:{{ token.access }}" }"#,
                false,
            ),
        ] {
            let p = shaped(inject);
            let inj = render(&p, &conn, Some(&token)).unwrap();
            let expected = readable.then_some("t0k3n");
            assert_eq!(inj.access_token(), expected, "{inject}");
        }
    }

    /// Header values of every length keep their bytes and are sensitive.
    #[test]
    fn compact_header_values_keep_their_bytes() {
        for len in 0..600 {
            let text: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            let value = compact_header_value(text.as_bytes()).unwrap();
            assert_eq!(value.as_bytes(), text.as_bytes());
            assert!(value.is_sensitive());
            assert_eq!(value.clone(), value);
        }
        assert!(compact_header_value(b"a\nb").is_err());
    }

    /// A `Cookie` credential joins the caller's cookies (replacing one of the
    /// same name) instead of wiping them; without cookies it is set as is.
    #[test]
    fn a_cookie_credential_is_merged_with_the_callers_cookies() {
        let cookie =
            Injection::header(http::header::COOKIE, HeaderValue::from_static("sid=s3cret"));
        let mut headers = HeaderMap::new();
        assert!(cookie.apply_to_headers(&mut headers));
        assert_eq!(headers[http::header::COOKIE], "sid=s3cret");

        let mut headers = HeaderMap::new();
        headers.append(
            http::header::COOKIE,
            HeaderValue::from_static("theme=dark; sid=old"),
        );
        headers.append(http::header::COOKIE, HeaderValue::from_static("lang=nl"));
        cookie.apply_to_headers(&mut headers);
        let all: Vec<_> = headers.get_all(http::header::COOKIE).iter().collect();
        assert_eq!(all, ["theme=dark; lang=nl; sid=s3cret"]);
        assert!(all[0].is_sensitive());

        // Attached to a request, the caller's own `sid` wins; other cookies
        // of the caller's get the credential's merged in.
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, HeaderValue::from_static("sid=mine"));
        cookie.attach_headers(&mut headers);
        assert_eq!(headers[http::header::COOKIE], "sid=mine");
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, HeaderValue::from_static("theme=dark"));
        cookie.attach_headers(&mut headers);
        assert_eq!(headers[http::header::COOKIE], "theme=dark; sid=s3cret");
    }

    /// The caller set the credential only if it set that cookie; its other
    /// cookies do not keep the credential off the request.
    #[test]
    fn a_caller_cookie_is_the_credential_only_if_it_has_the_credentials_name() {
        let p = provider(
            r#"
[providers.c]
api = ["https://api.example.com/"]
inputs.sid = { env = "C_SID", secret = true }
inject = { header = "Cookie", value = "sid={{ inputs.sid }}" }
"#,
        );
        let with = |cookie: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::COOKIE, HeaderValue::from_static(cookie));
            p.caller_authenticated(&headers, || None)
        };
        assert!(!p.caller_authenticated(&HeaderMap::new(), || None));
        assert!(!with("theme=dark; lang=nl"));
        assert!(!with("xsid=1"));
        assert!(with("theme=dark; sid=mine"));
    }

    const SEVERAL: &str = r#"
[providers.m]
api = ["https://api.example.com/"]
inputs.key = { env = "M_KEY", secret = true }
inputs.tenant = { env = "M_TENANT" }
inputs.sid = { env = "M_SID", secret = true }
[providers.m.inject]
header = "X-Api-Key"
value = "{{ inputs.key }}"
headers = { "X-Tenant" = "{{ inputs.tenant }}", "Cookie" = "sid={{ inputs.sid }}" }
query = { api_key = "{{ inputs.key }}", v = "2" }
"#;

    fn several() -> (crate::Provider, Injection) {
        let p = provider(SEVERAL);
        let conn = Connection::new("c")
            .with_secret("key", "k3y")
            .with_input("tenant", "acme")
            .with_secret("sid", "s1d");
        let inj = render(&p, &conn, None).unwrap();
        (p, inj)
    }

    #[test]
    fn every_part_is_rendered_once_in_the_written_order() {
        let (_, inj) = several();
        let headers: Vec<_> = inj
            .headers()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap(), v.is_sensitive()))
            .collect();
        assert_eq!(
            headers,
            [
                ("x-api-key", "k3y", true),
                ("x-tenant", "acme", true),
                ("cookie", "sid=s1d", true)
            ]
        );
        let query: Vec<_> = inj.query().map(|(n, v)| (n, v.expose_secret())).collect();
        assert_eq!(query, [("api_key", "k3y"), ("v", "2")]);
        // Every part is kept out of what an API answered.
        let secrets: Vec<_> = inj.secrets().collect();
        assert_eq!(secrets, ["k3y", "2", "k3y", "acme", "sid=s1d", "s1d"]);
        // Debug names the parts, never a value.
        let debug = format!("{inj:?}");
        assert_eq!(
            debug,
            r#"Injection { headers: {"x-api-key": [redacted], "x-tenant": [redacted], "cookie": [redacted]}, query: {"api_key": [redacted], "v": [redacted]} }"#
        );
    }

    #[test]
    fn the_caller_wins_per_name_and_the_other_parts_are_attached() {
        let (_, inj) = several();
        let mut req = http::Request::get("https://api.example.com/p?x=1&api_key=mine")
            .header("x-tenant", "theirs")
            .header("cookie", "theme=dark")
            .body(())
            .unwrap();
        crate::request::message::sealed::Request::attach(&mut req, &inj, true).unwrap();
        assert_eq!(req.uri(), "https://api.example.com/p?x=1&api_key=mine&v=2");
        let h = req.headers();
        assert_eq!(h["x-api-key"], "k3y");
        assert_eq!(h["x-tenant"], "theirs");
        assert_eq!(h["cookie"], "theme=dark; sid=s1d");

        // The same through a reqwest request.
        let mut req = reqwest::Request::new(
            http::Method::GET,
            "https://api.example.com/p?api_key=mine".parse().unwrap(),
        );
        req.headers_mut()
            .insert("x-api-key", HeaderValue::from_static("theirs"));
        crate::request::message::sealed::Request::attach(&mut req, &inj, true).unwrap();
        assert_eq!(req.url().query(), Some("api_key=mine&v=2"));
        assert_eq!(req.headers()["x-api-key"], "theirs");
        assert_eq!(req.headers()["x-tenant"], "acme");
        assert_eq!(req.headers()["cookie"], "sid=s1d");
    }

    /// The request passes untouched only when the caller set every part
    /// (or an Authorization header the provider does not set).
    #[test]
    fn only_a_request_with_every_part_is_the_callers_own() {
        let (p, _) = several();
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.insert(*n, HeaderValue::from_static(v));
            }
            h
        };
        let all = headers(&[("x-api-key", "a"), ("x-tenant", "b"), ("cookie", "sid=c")]);
        assert!(p.caller_authenticated(&all, || Some("api_key=1&v=1")));
        assert!(!p.caller_authenticated(&all, || Some("api_key=1")));
        assert!(!p.caller_authenticated(&all, || None));
        let no_cookie = headers(&[("x-api-key", "a"), ("x-tenant", "b"), ("cookie", "x=c")]);
        assert!(!p.caller_authenticated(&no_cookie, || Some("api_key=1&v=1")));
        assert!(p.caller_authenticated(&headers(&[("authorization", "Bearer mine")]), || None));

        // A provider that sets Authorization itself: the caller's is one
        // part among others.
        let mixed = provider(
            r#"
[providers.m]
api = ["https://api.example.com/"]
inputs.key = { env = "M_KEY", secret = true }
inputs.user = { env = "M_USER" }
[providers.m.inject]
basic = { username = "{{ inputs.user }}", password = "{{ inputs.key }}" }
headers = { "x-api-key" = "{{ inputs.key }}" }
"#,
        );
        let auth = headers(&[("authorization", "Basic mine")]);
        assert!(!mixed.caller_authenticated(&auth, || None));
        let both = headers(&[("authorization", "Basic mine"), ("x-api-key", "k")]);
        assert!(mixed.caller_authenticated(&both, || None));
        assert!(!mixed.caller_authenticated(&headers(&[("x-api-key", "k")]), || None));
        assert!(!mixed.caller_authenticated(&HeaderMap::new(), || Some("x=1")));

        // A query credential alone: set by the caller without any header.
        let query_only = provider(
            r#"
[providers.q]
api = ["https://api.example.com/"]
inputs.key = { env = "Q_KEY", secret = true }
inject.query = { name = "key", value = "{{ inputs.key }}" }
"#,
        );
        let none = HeaderMap::new();
        assert!(query_only.caller_authenticated(&none, || Some("a=1&key=mine")));
        assert!(!query_only.caller_authenticated(&none, || Some("a=1")));
        assert!(!query_only.caller_authenticated(&none, || None));
    }

    #[test]
    fn the_parameters_replace_every_copy_and_keep_the_rest_verbatim() {
        let inj = Injection::query_param("key", "n&w");
        let with = |q: Option<&str>| inj.with_params(q, false);
        assert_eq!(
            Injection::query_param("key", "a b").with_params(None, false),
            "key=a+b"
        );
        assert_eq!(with(Some("")), "key=n%26w");
        assert_eq!(
            with(Some("a=%20x&key=old&b=c~d&&flag&k%65y=old2")),
            "a=%20x&b=c~d&flag&key=n%26w"
        );
        // A name that merely starts the same is another parameter.
        assert_eq!(with(Some("keys=1&key")), "keys=1&key=n%26w");
        // Attaching keeps the caller's and adds nothing then.
        assert_eq!(inj.attach_query(Some("a=1&key=mine")), None);
        assert_eq!(
            inj.attach_query(Some("a=1")).as_deref(),
            Some("a=1&key=n%26w")
        );
        assert_eq!(inj.attach_query(None).as_deref(), Some("key=n%26w"));
    }

    #[test]
    fn urls_and_requests_get_the_same_query() {
        let inj = Injection::query_param("api_key", "s3cr3t/+");
        let mut url = Url::parse("https://h.example/p/q?x=%2F&api_key=old#frag").unwrap();
        assert!(inj.apply_to_url(&mut url));
        assert_eq!(
            url.as_str(),
            "https://h.example/p/q?x=%2F&api_key=s3cr3t%2F%2B#frag"
        );
        let mut req = http::Request::get("https://h.example/p/q?x=%2F")
            .body(())
            .unwrap();
        crate::request::message::sealed::Request::attach(&mut req, &inj, true).unwrap();
        assert_eq!(
            req.uri(),
            "https://h.example/p/q?x=%2F&api_key=s3cr3t%2F%2B"
        );
        assert!(req.headers().is_empty());
        let mut headers = HeaderMap::new();
        assert!(!inj.apply_to_headers(&mut headers));
        assert!(headers.is_empty());
    }

    #[test]
    fn removing_the_credential_keeps_the_rest_verbatim() {
        let inj = Injection::query_param("api_key", "s3cr3t");
        let mut url = Url::parse("https://h.example/p?x=%2F&api_key=s3cr3t&api%5Fkey=2#f").unwrap();
        assert!(inj.remove_from_url(&mut url));
        assert_eq!(url.as_str(), "https://h.example/p?x=%2F#f");
        let mut only = Url::parse("https://h.example/p?api_key=s3cr3t").unwrap();
        assert!(inj.remove_from_url(&mut only));
        assert_eq!(only.as_str(), "https://h.example/p");
        assert!(!inj.remove_from_url(&mut only));
        let header = Injection::header(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t"),
        );
        let mut url = Url::parse("https://h.example/p?api_key=x").unwrap();
        assert!(!header.remove_from_url(&mut url));
        assert_eq!(url.query(), Some("api_key=x"));

        let strip = |r: &str| inj.remove_from_reference(r);
        assert_eq!(
            strip("/items/?x=1&api_key=s3cr3t").as_deref(),
            Some("/items/?x=1")
        );
        assert_eq!(
            strip("https://h.example/p?api_key=s3cr3t#top").as_deref(),
            Some("https://h.example/p#top")
        );
        assert_eq!(
            strip("0; url=/x?api_key=s3cr3t&y").as_deref(),
            Some("0; url=/x?y")
        );
        assert_eq!(strip("/items/?x=1"), None);
        assert_eq!(strip("/items/"), None);
        assert_eq!(header.remove_from_reference("/p?api_key=x"), None);
    }

    #[test]
    fn every_query_part_is_removed_from_urls() {
        let (_, inj) = several();
        let mut url = Url::parse("https://h.example/p?api_key=k3y&a=1&v=2").unwrap();
        assert!(inj.remove_from_url(&mut url));
        assert_eq!(url.as_str(), "https://h.example/p?a=1");
        assert_eq!(
            inj.remove_from_reference("/next?v=2&api_key=k3y#f")
                .as_deref(),
            Some("/next#f")
        );
    }

    #[test]
    fn a_deliberately_wrong_credential_replaces_every_secret_part() {
        let (p, _) = several();
        let conn = Connection::new("c")
            .with_secret("key", "k3y")
            .with_input("tenant", "acme")
            .with_secret("sid", "s1d");
        let wrong = Injection::deliberately_wrong(&p, &conn).unwrap();
        let text: Vec<String> = wrong
            .headers()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .chain(
                wrong
                    .query()
                    .map(|(n, v)| format!("?{n}={}", v.expose_secret())),
            )
            .collect();
        assert_eq!(
            text,
            [
                format!("x-api-key: {WRONG_CREDENTIAL}"),
                "x-tenant: acme".to_owned(),
                format!("cookie: sid={WRONG_CREDENTIAL}"),
                format!("?api_key={WRONG_CREDENTIAL}"),
                "?v=2".to_owned(),
            ]
        );
    }
}
