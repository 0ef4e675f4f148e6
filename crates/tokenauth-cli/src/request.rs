//! `tokenauth request`: a curl-like request through the middleware.

use reqwest_middleware::ClientBuilder;
use tokenauth_reqwest::{ClientBuilderExt as _, MiddlewareExt as _};

use crate::common::{open, report, with_spinner};
use crate::{ConnectionArgs, Global, Outcome};

/// What `tokenauth request` was asked to send.
pub(crate) struct RequestArgs<'a> {
    pub(crate) provider: &'a str,
    pub(crate) url: &'a str,
    pub(crate) method: &'a str,
    pub(crate) data: Option<&'a str>,
    pub(crate) headers: &'a [String],
    pub(crate) conn: &'a ConnectionArgs,
}

pub(crate) async fn run(g: &Global, a: RequestArgs<'_>) -> Outcome {
    let (providers, p, conn) = match open(g, a.provider, a.conn) {
        Ok(opened) => opened,
        Err(o) => return o,
    };
    let url = match url::Url::parse(a.url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: `{}` is not an absolute URL ({e})", a.url);
            return Outcome::InvalidInput;
        }
    };
    let Ok(method) = reqwest::Method::from_bytes(a.method.to_ascii_uppercase().as_bytes()) else {
        eprintln!("error: `{}` is not an HTTP method", a.method);
        return Outcome::InvalidInput;
    };
    let auth = match g.engine(providers).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    match auth.route_for(&url, Some(&conn)) {
        Some(routed) if routed.id() == p.id => {}
        other => {
            let owner = other.map_or_else(
                || "no provider".to_owned(),
                |h| format!("provider `{}`", h.id()),
            );
            eprintln!(
                "error: {url} belongs to {owner}, not to `{}`, whose credential is only sent to: {}",
                p.id,
                p.api
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Outcome::InvalidInput;
        }
    }
    let mut headers = Vec::with_capacity(a.headers.len());
    for h in a.headers {
        match parse_header(h) {
            Ok(header) => headers.push(header),
            Err(message) => {
                eprintln!("error: -H {h:?}: {message}");
                return Outcome::InvalidInput;
            }
        }
    }
    // Redirects are followed only inside the provider's api prefixes, and no
    // Referer carries a query credential to another host.
    let http = match g.client_builder().and_then(|b| {
        b.scoped_to(&auth).build().map_err(|e| {
            eprintln!("error: cannot build the HTTP client: {e}");
            Outcome::InvalidInput
        })
    }) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let client = ClientBuilder::new(http).with(auth.middleware()).build();
    let mut request = client
        .request(method.clone(), url.clone())
        .with_extension(conn.clone());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some(body) = a.data {
        request = request.body(body.to_owned());
    }
    let response = match with_spinner(format!("{method} {url}…"), request.send()).await {
        Ok(r) => r,
        Err(e) => {
            return match tokenauth_reqwest::auth_error(&e) {
                Some(auth) => report(auth),
                None => {
                    eprintln!("error: {method} {url}: {e}");
                    Outcome::AuthFailure
                }
            };
        }
    };
    let status = response.status();
    println!("{status}");
    match response.text().await {
        Ok(body) => {
            // An API that echoes the credential (a redirect page quoting its
            // own URL, a debug endpoint) must not get it printed.
            let credential = auth
                .provider(&p.id)
                .ok()
                .and_then(|h| h.cached(Some(&conn)));
            let body = match credential {
                Some(c) => c.redact(&body),
                None => body,
            };
            if !body.is_empty() {
                println!("{body}");
            }
        }
        Err(e) => {
            eprintln!("error: reading the body: {e}");
            return Outcome::AuthFailure;
        }
    }
    if status.is_client_error() || status.is_server_error() {
        Outcome::AuthFailure
    } else {
        Outcome::Ok
    }
}

/// `Name: value` as a header, or what is wrong with it.
fn parse_header(h: &str) -> Result<(http::HeaderName, http::HeaderValue), &'static str> {
    let (name, value) = h
        .split_once(':')
        .ok_or("expected 'Name: value', e.g. -H 'Accept: application/json'")?;
    let name = http::HeaderName::try_from(name.trim())
        .map_err(|_| "the header name may hold only letters, digits and !#$%&'*+-.^_`|~")?;
    let value = http::HeaderValue::try_from(value.trim())
        .map_err(|_| "the header value may not hold a line break or another control character")?;
    Ok((name, value))
}
