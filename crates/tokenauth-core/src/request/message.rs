//! The two request types the sequence drives, `reqwest::Request` and
//! `http::Request<B>`, and their responses: what routing reads from them and
//! how a credential is attached. Sealed: an adapter names one of them as its
//! [`Transport::Request`](super::Transport::Request), core does the rest.

use http::{Extensions, HeaderMap, StatusCode, Uri};
use url::Url;

use crate::cache::Credential;
use crate::inject::Injection;
use crate::route::{KnownAuthorities, Target};

/// A request type the request sequence can route and attach a credential
/// to: `reqwest::Request` and `http::Request<B>` (sealed).
pub trait HttpRequest: sealed::Request + Send + 'static {}

/// A response type the request sequence hands back: `reqwest::Response`
/// and `http::Response<B>` (sealed).
pub trait HttpResponse: sealed::Response + Send + 'static {}

impl HttpRequest for reqwest::Request {}
impl<B: Send + 'static> HttpRequest for http::Request<B> {}
impl HttpResponse for reqwest::Response {}
impl<B: Send + 'static> HttpResponse for http::Response<B> {}

pub(crate) mod sealed {
    use super::*;

    /// What the request sequence reads from and does to a request.
    pub trait Request {
        /// The routing view: scheme, host, port and path; `origin` stands in
        /// for the scheme and authority of a path-only URI.
        fn target<'a>(&'a self, origin: Option<&'a Origin>) -> Option<Target<'a>>;
        /// [`target`](Self::target), an `http::Uri` authority looked up
        /// among `known` first (see `route::KnownAuthorities`).
        fn target_known<'a>(
            &'a self,
            origin: Option<&'a Origin>,
            known: &KnownAuthorities,
        ) -> Option<Target<'a>> {
            let _ = known;
            self.target(origin)
        }
        fn headers(&self) -> &HeaderMap;
        /// The request's own extensions, where it carries them.
        fn extensions(&self) -> Option<&Extensions>;
        /// The raw query string, without `?`.
        fn query(&self) -> Option<&str>;
        /// Sends the path as routing read it: dot segments resolved (see
        /// `route::resolved_path`), the query kept.
        fn resolve_path(&mut self) -> Result<(), http::Error>;
        /// Attaches every part of `injection`; with `keep_callers`, only
        /// the parts the request does not carry yet (the caller's explicit
        /// value wins, per name), else replacing what it carries.
        fn attach(&mut self, injection: &Injection, keep_callers: bool) -> Result<(), http::Error>;
    }

    /// What the request sequence reads from and does to a response.
    pub trait Response: Sized {
        fn status(&self) -> StatusCode;
        /// The URL the response came from, for clients that follow redirects
        /// below the adapter (reqwest); `None` when the client does not.
        fn url(&self) -> Option<&Url> {
            None
        }
        /// The response as it may leave the adapter: without a query
        /// credential in anything that shows a URL.
        fn redact(self, _credential: &Credential) -> Self {
            self
        }
    }
}

impl sealed::Request for reqwest::Request {
    fn target<'a>(&'a self, _origin: Option<&'a Origin>) -> Option<Target<'a>> {
        Target::from_url(self.url())
    }

    fn headers(&self) -> &HeaderMap {
        self.headers()
    }

    fn query(&self) -> Option<&str> {
        self.url().query()
    }

    fn extensions(&self) -> Option<&Extensions> {
        None
    }

    fn resolve_path(&mut self) -> Result<(), http::Error> {
        // `url::Url` resolved the dot segments when it parsed the URL.
        Ok(())
    }

    fn attach(&mut self, injection: &Injection, keep_callers: bool) -> Result<(), http::Error> {
        if !keep_callers {
            injection.apply_to_headers(self.headers_mut());
            injection.apply_to_url(self.url_mut());
            return Ok(());
        }
        injection.attach_headers(self.headers_mut());
        if let Some(query) = injection.attach_query(self.url().query()) {
            self.url_mut().set_query(Some(&query));
        }
        Ok(())
    }
}

impl<B> sealed::Request for http::Request<B> {
    fn target<'a>(&'a self, origin: Option<&'a Origin>) -> Option<Target<'a>> {
        self.target_known(origin, &KnownAuthorities::default())
    }

    fn target_known<'a>(
        &'a self,
        origin: Option<&'a Origin>,
        known: &KnownAuthorities,
    ) -> Option<Target<'a>> {
        let uri = self.uri();
        if uri.scheme().is_some() || uri.authority().is_some() {
            return Target::from_uri_known(uri, known);
        }
        let origin = origin?;
        Some(Target {
            scheme: &origin.scheme,
            host: &origin.host,
            port: origin.port,
            path: match uri.path() {
                "" => "/",
                p => p,
            },
        })
    }

    fn headers(&self) -> &HeaderMap {
        self.headers()
    }

    fn query(&self) -> Option<&str> {
        self.uri().query()
    }

    fn extensions(&self) -> Option<&Extensions> {
        Some(self.extensions())
    }

    fn resolve_path(&mut self) -> Result<(), http::Error> {
        let Some(path) = crate::route::resolved_path(self.uri().path()) else {
            return Ok(());
        };
        let path_and_query = match self.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        set_path_and_query(self.uri_mut(), &path_and_query)
    }

    fn attach(&mut self, injection: &Injection, keep_callers: bool) -> Result<(), http::Error> {
        let query = if keep_callers {
            injection.attach_headers(self.headers_mut());
            if !injection.has_query() {
                // Headers only (most credentials): the URI stays as it is.
                return Ok(());
            }
            injection.attach_query(self.uri().query())
        } else {
            injection.apply_to_headers(self.headers_mut());
            injection.replace_query(self.uri().query())
        };
        let path = match self.uri().path() {
            "" => "/",
            p => p,
        };
        match query {
            Some(query) => {
                let path_and_query = format!("{path}?{query}");
                set_path_and_query(self.uri_mut(), &path_and_query)
            }
            None => Ok(()),
        }
    }
}

impl Credential {
    /// Attaches the credential to a request (a `reqwest::Request` or an
    /// `http::Request<B>`): every header and query parameter part,
    /// replacing any value of the same name the request carries (the
    /// adapters instead keep the caller's explicit values; see
    /// [`Injection`](crate::Injection)). Fails only if the URI with the query parameters
    /// is not a valid URI.
    pub fn apply_to<R: HttpRequest>(&self, request: &mut R) -> Result<(), http::Error> {
        request.attach(self.injection(), false)
    }
}

/// Replaces the path and query of `uri`.
fn set_path_and_query(uri: &mut Uri, path_and_query: &str) -> Result<(), http::Error> {
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(http::uri::PathAndQuery::try_from(path_and_query)?);
    *uri = Uri::from_parts(parts)?;
    Ok(())
}

impl sealed::Response for reqwest::Response {
    fn status(&self) -> StatusCode {
        self.status()
    }

    fn url(&self) -> Option<&Url> {
        Some(self.url())
    }

    /// A query credential removed from the response's URL (reqwest shows it
    /// in `url()` and `error_for_status()`) and from its URL-valued headers
    /// (`Location`, `Content-Location`, `Refresh`: servers often keep the
    /// query when they redirect, and the scoped policy hands a query
    /// provider's redirects back).
    fn redact(self, credential: &Credential) -> Self {
        if !credential.injection().has_query() {
            return self;
        }
        let mut url = self.url().clone();
        credential.remove_from_url(&mut url);
        // reqwest 0.13 has no `Response::url_mut`: rebuild the response
        // around the same head and body, with the redacted URL in the
        // extension that `reqwest::Response::from` reads (only
        // `ResponseBuilderExt` can set it). Without it reqwest would show a
        // placeholder URL: never the key.
        use reqwest::ResponseBuilderExt as _;
        let (mut parts, body) = http::Response::<reqwest::Body>::from(self).into_parts();
        redact_url_headers(&mut parts.headers, credential);
        if let Ok(carrier) = http::Response::builder().url(url).body(()) {
            parts.extensions.extend(carrier.into_parts().0.extensions);
        }
        reqwest::Response::from(http::Response::from_parts(parts, body))
    }
}

impl<B> sealed::Response for http::Response<B> {
    fn status(&self) -> StatusCode {
        self.status()
    }

    /// A query credential removed from the URL-valued headers, for a
    /// redirect-following layer above (tower-http's `FollowRedirect`) that
    /// would otherwise send the key to the next hop.
    fn redact(mut self, credential: &Credential) -> Self {
        if credential.injection().has_query() {
            redact_url_headers(self.headers_mut(), credential);
        }
        self
    }
}

/// Removes a query credential from a response's URL-valued headers
/// (`Location`, `Content-Location`, `Refresh`, and every reference in
/// `Link`): servers often keep the query when they redirect, and APIs that
/// page repeat it in `Link` (RFC 8288). A value with a byte that is not
/// UTF-8 is read lossily: a stray byte must not let the credential through.
fn redact_url_headers(headers: &mut HeaderMap, credential: &Credential) {
    for name in [
        http::header::LOCATION,
        http::header::CONTENT_LOCATION,
        http::header::REFRESH,
    ] {
        let redacted = headers
            .get(&name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .and_then(|v| credential.remove_from_reference(&v))
            .and_then(|v| http::HeaderValue::try_from(v).ok());
        if let Some(redacted) = redacted {
            // These headers hold one value; `insert` replaces them all.
            headers.insert(name, redacted);
        }
    }
    let links: Vec<Option<String>> = headers
        .get_all(http::header::LINK)
        .iter()
        .map(|v| redact_link(&String::from_utf8_lossy(v.as_bytes()), credential))
        .collect();
    if links.iter().any(Option::is_some) {
        let values: Vec<http::HeaderValue> = headers
            .get_all(http::header::LINK)
            .iter()
            .cloned()
            .collect();
        headers.remove(http::header::LINK);
        for (value, redacted) in values.into_iter().zip(links) {
            match redacted {
                // A value that cannot be written back is dropped, not kept.
                Some(r) => {
                    if let Ok(r) = http::HeaderValue::try_from(r) {
                        headers.append(http::header::LINK, r);
                    }
                }
                None => {
                    headers.append(http::header::LINK, value);
                }
            }
        }
    }
}

/// A `Link` value (`<https://…?page=2&key=…>; rel="next", <…>; rel="prev"`)
/// with the query credential removed from each `<reference>`; `None` when
/// none held it.
fn redact_link(value: &str, credential: &Credential) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut changed = false;
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(len) = rest[open..].find('>') else {
            break;
        };
        let reference = &rest[open + 1..open + len];
        out.push_str(&rest[..=open]);
        match credential.remove_from_reference(reference) {
            Some(redacted) => {
                changed = true;
                out.push_str(&redacted);
            }
            None => out.push_str(reference),
        }
        rest = &rest[open + len..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// The scheme and authority that a path-only request URI is routed with
/// (the URIs a tonic `Channel` is called with: `/package.Service/Method`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of `uri` (only its scheme and authority are used); `None`
    /// when it has no scheme or host, or a scheme other than `http` or
    /// `https` without a port.
    ///
    /// ```
    /// use tokenauth_core::request::Origin;
    ///
    /// assert!(Origin::from_uri(&"http://127.0.0.1:50051".parse().unwrap()).is_some());
    /// assert!(Origin::from_uri(&"/package.Service/Method".parse().unwrap()).is_none());
    /// ```
    pub fn from_uri(uri: &Uri) -> Option<Self> {
        let target = Target::from_uri(uri)?;
        Some(Origin {
            scheme: target.scheme.to_ascii_lowercase(),
            host: target.host.to_owned(),
            port: target.port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::sealed::Response as _;
    use crate::{Connection, Providers, TokenAuth};

    /// A static query-credential provider's credential (no network).
    async fn query_credential() -> crate::Credential {
        let providers = Providers::from_toml(
            "p.toml",
            r#"
[providers.q]
api = ["https://api.example.com/"]
inputs.key = { env = "Q_KEY", secret = true }
inject.query = { name = "key", value = "{{ inputs.key }}" }
"#,
        )
        .unwrap();
        let auth = TokenAuth::builder(providers).build().unwrap();
        let conn = Connection::new("c").with_secret("key", "s3cr3t-key");
        auth.provider("q")
            .unwrap()
            .credential(Some(&conn))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_http_response_hands_back_no_query_credential_in_url_headers() {
        let credential = query_credential().await;
        let response = http::Response::builder()
            .status(302)
            .header(
                "location",
                "https://api.example.com/next?a=1&key=s3cr3t-key#f",
            )
            .header("content-location", "/items?key=s3cr3t-key")
            .header(
                "link",
                "<https://api.example.com/items?page=2&key=s3cr3t-key>; rel=\"next\", <https://api.example.com/items?page=1>; rel=\"first\"",
            )
            .header("link", "<https://api.example.com/items?page=9>; rel=\"last\"")
            .header("x-other", "key=s3cr3t-key")
            .body(())
            .unwrap();
        let redacted = response.redact(&credential);
        let headers = redacted.headers();
        assert_eq!(headers["location"], "https://api.example.com/next?a=1#f");
        assert_eq!(headers["content-location"], "/items");
        let links: Vec<&str> = headers
            .get_all("link")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            links,
            [
                "<https://api.example.com/items?page=2>; rel=\"next\", <https://api.example.com/items?page=1>; rel=\"first\"",
                "<https://api.example.com/items?page=9>; rel=\"last\"",
            ]
        );
        // A byte that is not UTF-8 does not let the credential through.
        let mut raw = b"/next?key=s3cr3t-key&x=".to_vec();
        raw.push(0xe9);
        let response = http::Response::builder()
            .status(302)
            .header("location", http::HeaderValue::from_bytes(&raw).unwrap())
            .body(())
            .unwrap()
            .redact(&credential);
        assert!(
            !String::from_utf8_lossy(response.headers()["location"].as_bytes()).contains("s3cr3t")
        );
        // Only the URL-valued headers are rewritten.
        assert_eq!(headers["x-other"], "key=s3cr3t-key");
    }
}
