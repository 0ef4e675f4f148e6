//! URL templates: a URL with `{{ inputs.NAME }}` placeholders, rendered per
//! connection (a tenant's token URL, a customer's API host).
//!
//! A placeholder may stand only where a value cannot change where the
//! request goes beyond what the description allows, and each value is made
//! to fit its place when it is rendered:
//!
//! | place | the value must be / becomes |
//! |---|---|
//! | origin (`{{ inputs.base_url }}/api/`: the URL starts with it) | an `https://` origin only (scheme, host, optional port; `http://` for loopback or with `allow_insecure_http`), host read as written |
//! | host (`https://{{ inputs.sub }}.example.com/`) | DNS labels (ASCII letters, digits and `-`, separated by `.`), lower-cased, read as written (not an IPv4 address in another notation such as `0x7f.1`); plus the input's `pattern` / `one_of` |
//! | path (`/{{ inputs.tenant }}/oauth2/token`) | one segment: no `/` or `\`, every other byte but `A-Z a-z 0-9 - . _ ~` percent-encoded; not empty, `.` or `..` |
//! | query value (`?tenant={{ inputs.tenant }}`) | form-encoded |
//!
//! The scheme, port, user info, query names and fragment never hold one.
//! So no value can move a credential to another scheme, host, port or path
//! depth: `/`, `@`, `:`, `?`, `#`, `%2F`, `..`, whitespace and non-ASCII
//! are refused in a host and encoded (or refused) in a path. After
//! rendering, the URL is parsed again and its scheme, port and number of
//! path segments are checked against the template's.
//!
//! ```
//! use tokenauth_core::config::UrlTemplate;
//!
//! let t = UrlTemplate::parse(
//!     "https://login.example.com/{{ inputs.tenant }}/oauth2/token?region={{ inputs.region }}",
//! )
//! .unwrap();
//! let url = t
//!     .render_with(|name| match name {
//!         "tenant" => Some("contoso.example"),
//!         "region" => Some("eu west"),
//!         _ => None,
//!     })
//!     .unwrap();
//! assert_eq!(
//!     url.as_str(),
//!     "https://login.example.com/contoso.example/oauth2/token?region=eu+west"
//! );
//! // A value cannot add a path segment or leave the host.
//! let smuggled = t.render_with(|name| Some(if name == "tenant" { "../admin" } else { "x" }));
//! assert!(smuggled.is_err());
//! let encoded = t.render_with(|name| Some(if name == "tenant" { "a b?c" } else { "x" }));
//! assert_eq!(encoded.unwrap().path(), "/a%20b%3Fc/oauth2/token");
//! ```

use std::fmt;

use url::Url;

use crate::template::{Part, Template, Var};

/// Where in a URL a placeholder stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UrlPlace {
    /// The whole origin: a URL that starts with the placeholder
    /// (`{{ inputs.base_url }}/api/`) takes scheme, host and port from it,
    /// as a self-hosted product's base URL.
    Origin,
    /// In the host name.
    Host,
    /// Inside one path segment.
    Path,
    /// Inside a query parameter's value.
    Query,
}

impl fmt::Display for UrlPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlPlace::Origin => "origin",
            UrlPlace::Host => "host",
            UrlPlace::Path => "path",
            UrlPlace::Query => "query",
        })
    }
}

/// A URL, possibly with `{{ inputs.NAME }}` placeholders (or, in an `api`
/// prefix, `*` host labels), rendered per connection. Each value must fit
/// its [`UrlPlace`]: DNS labels in a host, one encoded segment in a path, a
/// form-encoded query value, an https origin for a URL that starts with
/// the placeholder; the rendered URL keeps the template's scheme, port and
/// path depth.
///
/// ```
/// use tokenauth_core::config::UrlTemplate;
///
/// let t = UrlTemplate::parse("https://{{ inputs.sub }}.example.com/api/").unwrap();
/// let url = t.render_with(|_| Some("acme")).unwrap();
/// assert_eq!(url.as_str(), "https://acme.example.com/api/");
/// assert!(t.render_with(|_| Some("evil.example/x")).is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    template: Template,
    /// The URL with each placeholder replaced by a marker naming its input
    /// (the URL itself when there is none): what load-time checks compare.
    sample: Url,
    /// The place of each placeholder, in order.
    places: Vec<UrlPlace>,
    /// The host has `*` labels (an `api` prefix bound by
    /// `response.api_base`): it names a set of hosts, and is never rendered.
    wildcard: bool,
}

/// Why a URL template cannot be used, or why a value does not fit its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplateError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// A value that does not fit its place in a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlValueError {
    /// The input whose value it is.
    pub input: String,
    /// Where it was to go.
    pub place: UrlPlace,
    /// Why it cannot (never quoting the value: the caller decides whether
    /// it may be shown).
    pub reason: &'static str,
}

/// The marker that stands for placeholder `i` while the template is parsed:
/// valid in a host label, a path segment and a query.
fn slot_marker(i: usize) -> String {
    format!("tokenauthslot{i}z")
}

/// The marker that stands for input `name` in the sample URL: equal names
/// give equal markers, so two templates can be compared.
pub(crate) fn input_marker(name: &str) -> String {
    let mut m = String::from("tokenauthinput");
    for b in name.bytes() {
        m.push_str(&format!("{b:02x}"));
    }
    m.push('z');
    m
}

/// The marker every placeholder becomes in [`UrlTemplate::shape`].
pub(crate) const ANY_MARKER: &str = "tokenauthanyz";

/// The marker a `*` host label becomes in the sample URL.
pub(crate) const WILD_MARKER: &str = "tokenauthwildz";

/// `source` with each `*` label of its host replaced by [`WILD_MARKER`],
/// and whether there was one. A `*` anywhere else is left alone (the URL
/// parser then refuses it, or it is path text).
fn mark_wildcards(source: &str) -> (String, bool) {
    let Some(start) = source.find("://").map(|i| i + 3) else {
        return (source.to_owned(), false);
    };
    let end = source[start..]
        .find(['/', '?', '#'])
        .map_or(source.len(), |i| start + i);
    let authority = &source[start..end];
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains('}') => authority.split_at(i),
        _ => (authority, ""),
    };
    if !host.split('.').any(|label| label == "*") {
        return (source.to_owned(), false);
    }
    let host: Vec<&str> = host
        .split('.')
        .map(|label| if label == "*" { WILD_MARKER } else { label })
        .collect();
    let marked = format!(
        "{}{}{port}{}",
        &source[..start],
        host.join("."),
        &source[end..]
    );
    (marked, true)
}

impl UrlTemplate {
    /// Parses a URL template. Fails when it is not an absolute URL once its
    /// placeholders are filled, or a placeholder stands anywhere but in the
    /// host, a path segment or a query value, or names a token.
    pub fn parse(source: &str) -> Result<Self, UrlTemplateError> {
        let template = Template::parse(source).map_err(|e| UrlTemplateError {
            message: e.message,
            help: None,
        })?;
        for var in template.vars() {
            if !matches!(var, Var::Input(_)) {
                return Err(UrlTemplateError {
                    message: format!("`{{{{ {var} }}}}` cannot be part of a URL"),
                    help: Some(
                        "a URL may only hold {{ inputs.NAME }} placeholders: tokens are never put in URLs"
                            .into(),
                    ),
                });
            }
        }
        // A URL that starts with a placeholder takes its whole origin from
        // it; the rest must then be a path (or query).
        let origin = matches!(template.parts().next(), Some(Part::Var(_)));
        if origin {
            let rest = match template.parts().nth(1) {
                Some(Part::Literal(text)) => text.as_str(),
                _ => "",
            };
            if !(rest.is_empty() || rest.starts_with(['/', '?'])) {
                return Err(UrlTemplateError {
                    message: format!("`{source}` starts with a placeholder, which then stands for the whole origin (scheme, host and port), but `{rest}` follows it"),
                    help: Some("write the path after it, as in \"{{ inputs.base_url }}/api/v4/\" (the value being \"https://git.example.com\"), or write the scheme out and put the placeholder in the host: \"https://{{ inputs.host }}.example.com/\"".into()),
                });
            }
        }
        let fill = |marker: &dyn Fn(usize, &str) -> String| -> String {
            let mut i = 0;
            let mut out = String::new();
            for part in template.parts() {
                match part {
                    Part::Literal(text) => out.push_str(text),
                    Part::Var(Var::Input(name)) => {
                        if i == 0 && origin {
                            out.push_str("https://");
                        }
                        out.push_str(&marker(i, name));
                        i += 1;
                    }
                    Part::Var(_) => {}
                }
            }
            mark_wildcards(&out).0
        };
        let wildcard = mark_wildcards(source).1;
        if wildcard && !template.is_literal() {
            return Err(UrlTemplateError {
                message: format!("`{source}` has both `*` host labels and placeholders"),
                help: Some("use either `*` (the host comes from the token reply, response.api_base) or {{ inputs.NAME }} (it comes from the connection)".into()),
            });
        }
        let parsed = Url::parse(&fill(&|i, _| slot_marker(i))).map_err(|e| {
            let help = if template.is_literal() {
                "write the full URL, e.g. \"https://api.example.com/\"".to_owned()
            } else {
                "a placeholder can stand in the host, in a path segment or in a query value; the scheme and port are written out".to_owned()
            };
            UrlTemplateError {
                message: format!("`{source}` is not a valid absolute URL ({e})"),
                help: Some(help),
            }
        })?;
        let count = template.vars().count();
        let mut places = Vec::with_capacity(count);
        for i in 0..count {
            places.push(match (i, origin) {
                (0, true) => UrlPlace::Origin,
                _ => place_of(&parsed, &slot_marker(i))?,
            });
        }
        let host = parsed.host_str().unwrap_or_default();
        if host.contains('*') {
            return Err(UrlTemplateError {
                message: format!("`{source}` has a `*` inside a host label"),
                help: Some("a `*` stands for one whole label, at the start of the host: \"https://*.my.salesforce.com/\"".into()),
            });
        }
        if wildcard {
            let labels: Vec<&str> = host.split('.').collect();
            let stars = labels.iter().take_while(|l| **l == WILD_MARKER).count();
            let written = labels.len() - stars;
            if labels[stars..].contains(&WILD_MARKER) || written < 2 {
                return Err(UrlTemplateError {
                    message: format!("`{source}` leaves too much to the `*`: a `*` label must come first, followed by at least two written-out labels (the provider's own domain)"),
                    help: Some("e.g. \"https://*.my.salesforce.com/\"; not \"https://*.com/\" or \"https://api.*/\"".into()),
                });
            }
        }
        let sample = if count == 0 {
            parsed
        } else {
            Url::parse(&fill(&|_, name| input_marker(name))).map_err(|e| UrlTemplateError {
                message: format!("`{source}` is not a valid absolute URL ({e})"),
                help: None,
            })?
        };
        Ok(UrlTemplate {
            template,
            sample,
            places,
            wildcard,
        })
    }

    /// The template text exactly as written.
    pub fn source(&self) -> &str {
        self.template.source()
    }

    /// The URL, when it has no placeholder and no `*` label.
    pub fn literal(&self) -> Option<&Url> {
        self.is_literal().then_some(&self.sample)
    }

    /// True when the URL has no placeholder and no `*` label.
    pub fn is_literal(&self) -> bool {
        self.places.is_empty() && !self.wildcard
    }

    /// True when the host has `*` labels: an `api` prefix that names a set
    /// of hosts, one of which the token reply picks (`response.api_base`).
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// This URL on the host of `base` (the prefix a token reply bound the
    /// connection to), for a URL with `*` host labels such as a `[test]`
    /// URL of a provider with `response.api_base`; `None` when the host of
    /// `base` does not have this URL's form.
    pub fn on_base(&self, base: &Url) -> Option<Url> {
        if !self.wildcard {
            return None;
        }
        // The base's host must have this URL's form (one label per `*`).
        let origin = Url::parse(&base.origin().ascii_serialization()).ok()?;
        self.bind(&origin)?;
        let mut url = self.sample.clone();
        url.set_host(base.host_str()).ok()?;
        Some(url)
    }

    /// The prefix `value` (an API base from a token reply) binds this one
    /// to, if it may: `value` has this prefix's scheme and port, its host is
    /// this one with each `*` replaced by one DNS label (a written-out host:
    /// the same host), and its path lies under this path (or is `/`, for a
    /// reply that names only the origin). The bound prefix is this one with
    /// the `*` labels filled in, or `value` itself when it has a longer
    /// path. `None` for a prefix with `{{ inputs.NAME }}` placeholders.
    pub fn bind(&self, value: &Url) -> Option<Url> {
        if !self.places.is_empty() {
            return None;
        }
        let host = value.host_str()?;
        let pattern = self.sample.host_str()?;
        let same_labels = host.split('.').count() == pattern.split('.').count()
            && host.split('.').zip(pattern.split('.')).all(|(h, p)| {
                if p == WILD_MARKER {
                    unfit(UrlPlace::Host, h).is_none()
                } else {
                    h.eq_ignore_ascii_case(p)
                }
            });
        let origin_ok = value.scheme() == self.sample.scheme()
            && value.port_or_known_default() == self.sample.port_or_known_default()
            && value.username().is_empty()
            && value.password().is_none()
            && value.query().is_none()
            && value.fragment().is_none();
        if !(same_labels && origin_ok) {
            return None;
        }
        let mut bound = self.sample.clone();
        bound.set_host(Some(&host.to_ascii_lowercase())).ok()?;
        let prefix = self.sample.path();
        let path = value.path();
        if path == "/" || path.is_empty() {
            return Some(bound);
        }
        let under = path
            .strip_prefix(prefix)
            .is_some_and(|rest| prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'));
        under.then(|| {
            bound.set_path(path);
            bound
        })
    }

    /// The inputs the placeholders name, with their places, in order.
    pub fn inputs(&self) -> impl Iterator<Item = (&str, UrlPlace)> {
        self.template
            .vars()
            .zip(self.places.iter().copied())
            .filter_map(|(var, place)| match var {
                Var::Input(name) => Some((name.as_str(), place)),
                _ => None,
            })
    }

    /// True when a placeholder stands in the host.
    pub fn templated_host(&self) -> bool {
        self.places
            .iter()
            .any(|p| matches!(p, UrlPlace::Host | UrlPlace::Origin))
    }

    /// True when the URL starts with a placeholder that gives its whole
    /// origin ([`UrlPlace::Origin`]).
    pub fn templated_origin(&self) -> bool {
        self.places.first() == Some(&UrlPlace::Origin)
    }

    /// The URL with each placeholder replaced by a marker naming its input:
    /// its scheme and port are the rendered URL's, and two templates that
    /// use the same inputs in the same places give comparable samples.
    pub(crate) fn sample(&self) -> &Url {
        &self.sample
    }

    /// The template with every placeholder replaced by one marker
    /// ([`ANY_MARKER`]): equal for templates that differ only in their
    /// input names.
    pub(crate) fn shape(&self) -> String {
        let mut out = self.sample.to_string().replace(WILD_MARKER, ANY_MARKER);
        for (name, _) in self.inputs() {
            out = out.replace(&input_marker(name), ANY_MARKER);
        }
        out
    }

    /// Renders the URL with `lookup`'s values. A value that does not fit its
    /// place is an error naming the input; `lookup` returning `None` is
    /// reported as [`UrlRenderError::Missing`].
    pub fn render_with<'a>(
        &self,
        lookup: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Url, UrlRenderError> {
        self.render_allowing_http(lookup, false)
    }

    /// [`render_with`](Self::render_with); `allow_http`: an origin value
    /// may be `http://` for hosts other than loopback (the provider's
    /// `allow_insecure_http`).
    pub(crate) fn render_allowing_http<'a>(
        &self,
        lookup: impl Fn(&str) -> Option<&'a str>,
        allow_http: bool,
    ) -> Result<Url, UrlRenderError> {
        if let Some(url) = self.literal() {
            return Ok(url.clone());
        }
        if self.wildcard {
            // A set of hosts, bound by a token reply ([`UrlTemplate::bind`]).
            return Err(UrlRenderError::Shape);
        }
        let mut out = String::with_capacity(self.source().len() + 32);
        let mut places = self.places.iter();
        for part in self.template.parts() {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(Var::Input(name)) => {
                    let place = *places.next().unwrap_or(&UrlPlace::Query);
                    let value =
                        lookup(name).ok_or_else(|| UrlRenderError::Missing(name.clone()))?;
                    let bad = |reason| {
                        UrlRenderError::Value(UrlValueError {
                            input: name.clone(),
                            place,
                            reason,
                        })
                    };
                    if let Some(reason) = unfit(place, value) {
                        return Err(bad(reason));
                    }
                    match place {
                        UrlPlace::Origin => {
                            // `unfit` parsed it already.
                            let url = Url::parse(value).map_err(|_| bad("it is not a URL"))?;
                            if url.scheme() == "http" && !allow_http && !is_loopback_url(&url) {
                                return Err(bad(
                                    "it is plain http:// (credentials would cross the network unencrypted), and the provider does not set allow_insecure_http",
                                ));
                            }
                            out.push_str(&url.origin().ascii_serialization());
                        }
                        UrlPlace::Host => {
                            out.extend(value.chars().map(|c| c.to_ascii_lowercase()));
                        }
                        UrlPlace::Path => encode_segment(value, &mut out),
                        UrlPlace::Query => {
                            out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
                        }
                    }
                }
                Part::Var(_) => {}
            }
        }
        let url = Url::parse(&out).map_err(|_| UrlRenderError::Shape)?;
        // The host as parsed must be the host as rendered: a value such as
        // `0x7f.1` or `2130706433` is read as an IPv4 address (127.0.0.1),
        // past whatever `pattern` meant to allow.
        if self.templated_host() && !host_as_rendered(&out, &url) {
            return Err(UrlRenderError::Shape);
        }
        let segments = |u: &Url| u.path_segments().map_or(0, Iterator::count);
        let origin = self.templated_origin();
        // An origin value chose scheme and port itself (and was checked).
        let same_origin = origin
            || (url.scheme() == self.sample.scheme()
                && url.port_or_known_default() == self.sample.port_or_known_default());
        let same_shape = same_origin
            && url.username().is_empty()
            && url.password().is_none()
            && url.fragment().is_none()
            && segments(&url) == segments(&self.sample)
            && (self.templated_host() || url.host_str() == self.sample.host_str())
            && url
                .path_segments()
                .is_none_or(|mut s| s.all(|seg| seg != "." && seg != ".."));
        if !same_shape {
            return Err(UrlRenderError::Shape);
        }
        Ok(url)
    }
}

/// `localhost`, 127.0.0.0/8 or `[::1]`.
fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The host of `url` is the host written in `text` (the URL it was parsed
/// from), lower-cased: the parser did not reinterpret it.
fn host_as_rendered(text: &str, url: &Url) -> bool {
    let after_scheme = text.find("://").map_or(0, |i| i + 3);
    let rest = &text[after_scheme..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = match authority.rfind(':') {
        Some(i) if !authority.starts_with('[') => &authority[..i],
        _ => authority,
    };
    url.host_str()
        .is_some_and(|parsed| parsed == host.to_ascii_lowercase())
}

/// Why a URL template could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlRenderError {
    /// No value for this input.
    Missing(String),
    /// A value does not fit its place.
    Value(UrlValueError),
    /// The rendered URL does not keep the template's scheme, host, port or
    /// path depth (the values together made a dot segment, say).
    Shape,
}

/// Why `value` cannot stand in `place` by itself (before it is encoded):
/// a host value that is not DNS labels, an empty path segment.
pub(crate) fn unfit(place: UrlPlace, value: &str) -> Option<&'static str> {
    match place {
        UrlPlace::Origin => {
            let Ok(url) = Url::parse(value) else {
                return Some("it is not an absolute URL such as https://git.example.com");
            };
            if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
                return Some("it is not an https:// URL with a host");
            }
            if !host_as_rendered(value, &url) {
                return Some(
                    "its host is read as something else than written (an IPv4 address in another notation, say)",
                );
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Some("it carries a user name or password");
            }
            if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
                return Some(
                    "it has a path, query or fragment: give the origin only (scheme, host and port), and write the path in the description",
                );
            }
            None
        }
        UrlPlace::Host => check_host_value(value).err(),
        UrlPlace::Path if value.is_empty() => Some("it is empty, and a path segment cannot be"),
        UrlPlace::Path if value.contains(['/', '\\']) => {
            Some("it holds a `/` or `\\`, and a value goes into one path segment")
        }
        UrlPlace::Path | UrlPlace::Query => None,
    }
}

/// Where marker `m` stands in `url`, or why it may not stand there.
fn place_of(url: &Url, m: &str) -> Result<UrlPlace, UrlTemplateError> {
    let not_here = |what: &str| {
        UrlTemplateError {
        message: format!("a placeholder cannot stand in the {what} of a URL"),
        help: Some(
            "a placeholder can stand in the host, in a path segment or in a query value; write the scheme, port, user info, query names and fragment out"
                .into(),
        ),
    }
    };
    if url.scheme().contains(m) {
        return Err(not_here("scheme"));
    }
    if url.username().contains(m) || url.password().is_some_and(|p| p.contains(m)) {
        return Err(not_here("user info"));
    }
    if url.host_str().is_some_and(|h| h.contains(m)) {
        return Ok(UrlPlace::Host);
    }
    if url.path().contains(m) {
        return Ok(UrlPlace::Path);
    }
    if let Some(query) = url.query() {
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if name.contains(m) {
                return Err(not_here("name of a query parameter"));
            }
            if value.contains(m) {
                return Ok(UrlPlace::Query);
            }
        }
    }
    if url.fragment().is_some_and(|f| f.contains(m)) {
        return Err(not_here("fragment"));
    }
    // Only the port is left, and a marker there does not parse.
    Err(not_here("port"))
}

/// A host value: DNS labels (ASCII letters, digits and `-`, 1 to 63 each,
/// not starting or ending with `-`) separated by single dots, 253 bytes at
/// most.
fn check_host_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("it is empty");
    }
    if value.len() > 253 {
        return Err("it is longer than a host name may be (253 characters)");
    }
    for label in value.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (`..`, or a dot at the start or end)");
        }
        if label.len() > 63 {
            return Err("it has a label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(
                "it is not a host name: only ASCII letters, digits, `-` and `.` may go into a host",
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label of it starts or ends with `-`");
        }
    }
    Ok(())
}

/// `value` as (part of) one path segment: every byte outside RFC 3986's
/// unreserved set percent-encoded, so it cannot add a segment, a query or a
/// fragment, nor be decoded into one (`%` itself is encoded).
fn encode_segment(value: &str, out: &mut String) {
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl serde::Serialize for UrlTemplate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.source())
    }
}

impl fmt::Debug for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UrlTemplate({:?})", self.source())
    }
}

impl fmt::Display for UrlTemplate {
    /// The URL itself when it has no placeholder (as `Url` prints it), else
    /// the template as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.literal() {
            Some(url) => f.write_str(url.as_str()),
            None => f.write_str(self.source()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, value: &str) -> Result<String, UrlRenderError> {
        UrlTemplate::parse(t)
            .unwrap()
            .render_with(|_| Some(value))
            .map(|u| u.to_string())
    }

    #[test]
    fn places_are_found() {
        let t = UrlTemplate::parse(
            "https://{{ inputs.sub }}.example.com/{{inputs.t}}/x?a={{ inputs.q }}&b=1",
        )
        .unwrap();
        assert_eq!(
            t.inputs().collect::<Vec<_>>(),
            [
                ("sub", UrlPlace::Host),
                ("t", UrlPlace::Path),
                ("q", UrlPlace::Query)
            ]
        );
        assert!(t.templated_host());
        assert!(
            UrlTemplate::parse("https://a.example/")
                .unwrap()
                .is_literal()
        );
    }

    #[test]
    fn placeholders_where_they_may_not_stand() {
        for (t, what) in [
            ("https://a.example:{{ inputs.p }}/", "port"),
            ("{{ inputs.s }}://a.example/", "scheme"),
            ("https://{{ inputs.u }}@a.example/", "user info"),
            ("https://a.example/?{{ inputs.n }}=1", "name of a query"),
            ("https://a.example/#{{ inputs.f }}", "fragment"),
            (
                "https://a.example/{{ token.access }}",
                "cannot be part of a URL",
            ),
        ] {
            let e = UrlTemplate::parse(t).unwrap_err();
            assert!(e.message.contains(what), "{t}: {}", e.message);
        }
    }

    #[test]
    fn host_values_are_dns_labels_only() {
        let t = "https://{{ inputs.sub }}.example.com/api/";
        assert_eq!(
            render(t, "Acme-1.eu").unwrap(),
            "https://acme-1.eu.example.com/api/"
        );
        for ipv4 in ["0x7f.1", "2130706433", "0177.0.0.1"] {
            assert_eq!(
                render("https://{{ inputs.h }}/x", ipv4),
                Err(UrlRenderError::Shape),
                "{ipv4}"
            );
        }
        assert!(render("https://{{ inputs.h }}/x", "127.0.0.1").is_ok());
        for bad in [
            "",
            "evil.com/",
            "a@b",
            "a:1",
            "a?b",
            "a#b",
            "a%2Fb",
            "a b",
            "a\tb",
            "ü",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a_b",
            "a/../b",
            "evil.com\\",
        ] {
            match render(t, bad) {
                Err(UrlRenderError::Value(e)) => assert_eq!(e.place, UrlPlace::Host),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn path_values_stay_one_segment() {
        let t = "https://login.example.com/{{ inputs.t }}/token";
        assert_eq!(
            render(t, "contoso.example").unwrap(),
            "https://login.example.com/contoso.example/token"
        );
        assert_eq!(
            render(t, "a?c#d%2F@:é ").unwrap(),
            "https://login.example.com/a%3Fc%23d%252F%40%3A%C3%A9%20/token"
        );
        for slash in ["a/b", "../admin", "a\\b"] {
            assert!(
                matches!(render(t, slash), Err(UrlRenderError::Value(_))),
                "{slash}"
            );
        }
        assert_eq!(render(t, ".."), Err(UrlRenderError::Shape));
        assert_eq!(render(t, "."), Err(UrlRenderError::Shape));
        assert!(matches!(render(t, ""), Err(UrlRenderError::Value(_))));
        // Next to literal text a dot is just a character.
        assert_eq!(
            render("https://h.example/v.{{ inputs.t }}/x", ".").unwrap(),
            "https://h.example/v../x"
        );
    }

    #[test]
    fn a_leading_placeholder_is_the_whole_origin() {
        let t = UrlTemplate::parse("{{ inputs.base }}/api/v4/").unwrap();
        assert_eq!(t.inputs().collect::<Vec<_>>(), [("base", UrlPlace::Origin)]);
        let r = |v: &str, http: bool| t.render_allowing_http(|_| Some(v), http).map(String::from);
        assert_eq!(
            r("https://Git.Example.com:8443", false).unwrap(),
            "https://git.example.com:8443/api/v4/"
        );
        assert_eq!(
            r("https://git.example.com/", false).unwrap(),
            "https://git.example.com/api/v4/"
        );
        assert_eq!(
            r("http://127.0.0.1:9", false).unwrap(),
            "http://127.0.0.1:9/api/v4/"
        );
        assert!(r("http://git.example.com", true).is_ok());
        for bad in [
            "http://git.example.com",
            "git.example.com",
            "https://u:p@git.example.com",
            "https://git.example.com/sub",
            "https://git.example.com?x=1",
            "https://git.example.com#x",
            "ftp://git.example.com",
            "https://0x7f.1",
            "",
        ] {
            assert!(r(bad, false).is_err(), "{bad}");
        }
        for bad in ["{{ inputs.host }}.example.com/", "{{ inputs.h }}:8080/"] {
            assert!(UrlTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_values_are_form_encoded() {
        assert_eq!(
            render("https://h.example/t?tenant={{ inputs.t }}&x=1", "a&b=c#d e").unwrap(),
            "https://h.example/t?tenant=a%26b%3Dc%23d+e&x=1"
        );
    }

    #[test]
    fn wildcard_prefixes_bind_one_label_per_star() {
        let t = UrlTemplate::parse("https://*.my.salesforce.com/").unwrap();
        assert!(t.is_wildcard() && !t.is_literal() && t.inputs().next().is_none());
        let bind = |v: &str| t.bind(&Url::parse(v).unwrap()).map(String::from);
        assert_eq!(
            bind("https://acme.my.salesforce.com").as_deref(),
            Some("https://acme.my.salesforce.com/")
        );
        assert_eq!(
            bind("https://ACME-2.my.salesforce.com/services/").as_deref(),
            Some("https://acme-2.my.salesforce.com/services/")
        );
        for outside in [
            "https://a.b.my.salesforce.com",
            "https://my.salesforce.com",
            "https://acme.my.salesforce.com.evil.example",
            "http://acme.my.salesforce.com",
            "https://acme.my.salesforce.com:8443",
            "https://u@acme.my.salesforce.com",
            "https://acme.my.salesforce.com/?x=1",
            "https://evil.example",
        ] {
            assert_eq!(bind(outside), None, "{outside}");
        }
        let deep = UrlTemplate::parse("https://*.example.com/api/").unwrap();
        let bind = |v: &str| deep.bind(&Url::parse(v).unwrap()).map(String::from);
        assert_eq!(
            bind("https://x.example.com").as_deref(),
            Some("https://x.example.com/api/")
        );
        assert_eq!(
            bind("https://x.example.com/api/v2").as_deref(),
            Some("https://x.example.com/api/v2")
        );
        assert_eq!(bind("https://x.example.com/other"), None);
        for bad in [
            "https://*/",
            "https://*.com/",
            "https://*.*/",
            "https://api.*/",
            "https://a.*.example.com/",
            "https://*-api.example.com/",
            "https://*.{{ inputs.a }}.example.com/",
        ] {
            assert!(UrlTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn samples_and_shapes_compare_templates() {
        let a = UrlTemplate::parse("https://{{ inputs.s }}.example.com/").unwrap();
        let b = UrlTemplate::parse("https://{{ inputs.t }}.example.com/").unwrap();
        assert_ne!(a.sample(), b.sample());
        assert_eq!(a.shape(), b.shape());
        assert_eq!(a.shape(), format!("https://{ANY_MARKER}.example.com/"));
    }
}

/// Arbitrary values in every place never move a rendered URL out of the
/// template's scheme, host (beyond the placeholder's own labels), port or
/// path depth, and never panic.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Values built from the characters that smuggle: separators, encoded
    /// separators, dots, whitespace, non-ASCII.
    fn hostile() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "/",
            "@",
            ":",
            "?",
            "#",
            "%2F",
            "%2f",
            "%2e",
            "..",
            ".",
            " ",
            "\t",
            "\n",
            "\\",
            "ü",
            "\u{ff0f}",
            "a",
            "evil.example",
            "80",
            "&",
            "=",
            "+",
            "%",
            "%00",
            "[::1]",
            "*",
        ]);
        prop::collection::vec(pieces, 0..8).prop_map(|v| v.concat())
    }

    const TEMPLATES: &[&str] = &[
        "https://{{ inputs.v }}.api.example.com/api/",
        "https://{{ inputs.v }}/connect/token",
        "https://api.example.com/{{ inputs.v }}/oauth2/token",
        "https://api.example.com/t/x-{{ inputs.v }}-y/items",
        "https://api.example.com/token?tenant={{ inputs.v }}&x=1",
    ];

    proptest! {
        #[test]
        fn values_never_leave_their_place(value in hostile(), which in 0..TEMPLATES.len()) {
            let t = UrlTemplate::parse(TEMPLATES[which]).unwrap();
            let Ok(url) = t.render_with(|_| Some(value.as_str())) else {
                return Ok(());
            };
            let sample = t.sample();
            prop_assert_eq!(url.scheme(), "https");
            prop_assert_eq!(url.port(), None);
            prop_assert!(url.username().is_empty() && url.password().is_none());
            prop_assert!(url.fragment().is_none());
            let depth = |u: &Url| u.path_segments().map_or(0, Iterator::count);
            prop_assert_eq!(depth(&url), depth(sample));
            let host = url.host_str().unwrap();
            match which {
                0 => prop_assert!(host.ends_with(".api.example.com")),
                1 => prop_assert!(host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')),
                _ => prop_assert_eq!(host, "api.example.com"),
            }
            if which == 4 {
                let pairs: Vec<_> = url.query_pairs().collect();
                prop_assert_eq!(pairs.len(), 2);
                prop_assert_eq!(pairs[0].1.as_ref(), value.as_str());
            } else {
                prop_assert!(url.query().is_none());
            }
            // The prefix the credential is scoped to holds exactly the URLs
            // under it: a value never reaches a sibling path.
            let segments: Vec<_> = url.path_segments().unwrap().collect();
            let template_segments: Vec<_> = sample.path_segments().unwrap().collect();
            for (got, want) in segments.iter().zip(&template_segments) {
                if !want.contains("tokenauthinput") {
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}
