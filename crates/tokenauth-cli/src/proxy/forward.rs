//! One request through the proxy: the key, the address, the connection,
//! the headers and body, the tower layer, and the response back.

use std::future::poll_fn;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use sha2::{Digest as _, Sha256};
use tokenauth_core::{Connection, Provider};
use tokenauth_tower::AuthError;
use tower_service::Service as _;
use url::Url;

use super::Proxy;
use super::address;
use super::body::ProxyBody;
use super::connections::Resolved;
use super::reply::{self, Body, ERROR_HEADER, Refusal};

/// The header that selects the connection.
pub(crate) const CONNECTION_HEADER: &str = "tokenauth-connection";

/// What the access log says about a request (never a credential, a query
/// or a connection name: its hash).
#[derive(Default)]
struct Seen<'p> {
    /// Borrowed from the proxy's description: no copy per request.
    provider: Option<&'p str>,
    connection: Option<String>,
}

/// Answers `request`: the proxy's own endpoints, or the API's response.
pub(crate) async fn handle(proxy: &Proxy, request: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut seen = Seen::default();
    let (response, own_error) = match forward(proxy, request, &mut seen).await {
        Ok(response) => (response, false),
        Err(refusal) => (refusal.into_response(), true),
    };
    let status = response.status();
    if let Some(provider) = seen.provider {
        proxy.count(provider, status.as_u16(), own_error);
    }
    tracing::info!(
        target: "tokenauth_cli::proxy",
        provider = seen.provider.unwrap_or("-"),
        connection = seen.connection.as_deref().unwrap_or("default"),
        %method,
        path = %path,
        status = status.as_u16(),
        error = response.headers().get(ERROR_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-"),
        ms = started.elapsed().as_millis() as u64,
        "proxied"
    );
    response
}

async fn forward<'p>(
    proxy: &'p Proxy,
    request: Request<Incoming>,
    seen: &mut Seen<'p>,
) -> Result<Response<Body>, Refusal> {
    // Without a key: local processes only, not web pages in a browser
    // (`key::browser_refusal`), for the stats as for the APIs.
    if proxy.key.is_none()
        && let Some(why) = super::key::browser_refusal(request.headers())
    {
        return Err(Refusal::not_local(why));
    }
    let path = request.uri().path();
    if let Some(endpoint) = path.strip_prefix("/_tokenauth/") {
        return own_endpoint(proxy, endpoint, &request);
    }
    require_key(proxy, request.headers())?;
    let Some((id, rest)) = address::split(path) else {
        return Err(Refusal::not_found(format!(
            "address a provider's API as /PROVIDER/PATH, e.g. /{}/…",
            proxy.auth.providers().ids().next().unwrap_or("provider")
        )));
    };
    let Some(provider) = proxy.auth.providers().get(id) else {
        return Err(Refusal::unknown_provider(
            id,
            format!(
                "no provider `{id}` in the description; it has: {}",
                proxy.auth.providers().ids().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    seen.provider = Some(&provider.id);
    if request.method() == Method::CONNECT {
        return Err(Refusal::bad_request(
            Some(&provider.id),
            "CONNECT is not forwarded: this proxy sends requests to providers' APIs only"
                .to_owned(),
        ));
    }
    // TRACE (and IIS's TRACK) has the API echo the request it received, the
    // credential the proxy attached included, back to the caller. Methods
    // are compared ignoring case: some servers do.
    let method = request.method().as_str();
    if method.eq_ignore_ascii_case("TRACE") || method.eq_ignore_ascii_case("TRACK") {
        return Err(Refusal::bad_request(
            Some(&provider.id),
            format!("{method} is not forwarded: the API would echo the credential back"),
        ));
    }
    // Before anything else about the request: a path that could leave the
    // API is refused whatever the connection.
    address::check_rest(rest).map_err(|why| refused_path(provider, rest, &why))?;
    let name = connection_name(request.headers(), &provider.id)?;
    seen.connection = name.map(hash);
    // A store connection is looked up in the store: a hung store must not
    // hang the request.
    let resolved = tokio::time::timeout(
        proxy.timeout,
        proxy.connections.resolve(&proxy.auth, &provider.id, name),
    )
    .await
    .map_err(|_| {
        Refusal::store(
            &provider.id,
            format!(
                "the token store did not answer within {} (--timeout)",
                humantime::format_duration(proxy.timeout)
            ),
        )
    })??;
    let connection = match &resolved {
        Resolved::Named(c) => c.clone(),
        Resolved::Default => proxy
            .auth
            .provider(&provider.id)
            .and_then(|h| h.default_connection().cloned())
            .map_err(|e| Refusal::auth(&provider.id, &e))?,
    };
    // With `response.api_base` the URL needs the token first: that wait is
    // bounded by --timeout too (the token endpoint's own timeout may be
    // far longer).
    let url = tokio::time::timeout(
        proxy.timeout,
        target(proxy, provider, &connection, rest, request.uri()),
    )
    .await
    .map_err(|_| {
        Refusal::timeout(
            &provider.id,
            format!(
                "no token to find the API base with within {} (--timeout)",
                humantime::format_duration(proxy.timeout)
            ),
        )
    })??;
    let upstream = upstream_request(proxy, provider, request, &url, &resolved).await?;
    let mut service = proxy.service.clone();
    let sent = async {
        poll_fn(|cx| service.poll_ready(cx)).await?;
        service.call(upstream).await
    };
    let response = match tokio::time::timeout(proxy.timeout, sent).await {
        Ok(Ok(response)) => response,
        Ok(Err(AuthError::Auth(e))) => return Err(Refusal::auth(&provider.id, &e)),
        Ok(Err(AuthError::Inner(e))) => return Err(upstream_failure(&provider.id, &url, &e)),
        Ok(Err(other)) => return Err(Refusal::upstream(&provider.id, other.to_string())),
        Err(_) => {
            return Err(Refusal::timeout(
                &provider.id,
                format!(
                    "no response from {} within {} (--timeout)",
                    origin(&url),
                    humantime::format_duration(proxy.timeout)
                ),
            ));
        }
    };
    // The caller's `Upgrade` was not forwarded: a switch is the API's own,
    // and a 101 handed back (its `Upgrade` removed as hop-by-hop) would
    // leave the caller waiting for a final response that never comes.
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Refusal::upstream(
            &provider.id,
            format!(
                "{} switched protocols (101) unasked: the proxy forwards HTTP exchanges only",
                origin(&url)
            ),
        ));
    }
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    // Only the proxy's own errors carry it.
    parts.headers.remove(ERROR_HEADER);
    Ok(Response::from_parts(parts, Body::Left(body)))
}

/// `GET /_tokenauth/health` (open to all: says only that the proxy runs)
/// and `GET /_tokenauth/stats` (behind the key, like the APIs).
fn own_endpoint(
    proxy: &Proxy,
    endpoint: &str,
    request: &Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return Err(Refusal::method_not_allowed(format!(
            "/_tokenauth/{endpoint} answers GET only"
        )));
    }
    match endpoint {
        "health" => Ok(reply::json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok"}),
        )),
        "stats" => {
            require_key(proxy, request.headers())?;
            Ok(reply::json(StatusCode::OK, &proxy.stats()))
        }
        _ => Err(Refusal::not_found(
            "the proxy's own endpoints are /_tokenauth/health and /_tokenauth/stats".to_owned(),
        )),
    }
}

/// The APIs and the stats are behind the key, when the proxy has one.
fn require_key(proxy: &Proxy, headers: &HeaderMap) -> Result<(), Refusal> {
    match &proxy.key {
        Some(key) if !key.admits(headers) => Err(Refusal::key(
            "this proxy requires its key: send `Proxy-Authorization: Bearer KEY` or `Tokenauth-Key: KEY` with the value of TOKENAUTH_PROXY_KEY".to_owned(),
        )),
        _ => Ok(()),
    }
}

/// The `Tokenauth-Connection` header, if any.
fn connection_name<'h>(headers: &'h HeaderMap, provider: &str) -> Result<Option<&'h str>, Refusal> {
    let Some(value) = headers.get(CONNECTION_HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(name) if !name.trim().is_empty() && name.len() <= 256 => Ok(Some(name.trim())),
        _ => Err(Refusal::bad_connection(
            provider,
            "the Tokenauth-Connection header must hold a connection name (visible ASCII, at most 256 characters)".to_owned(),
        )),
    }
}

/// A short hash of a connection name for the log: tells requests of one
/// connection apart without naming a tenant.
fn hash(name: &str) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(name.as_bytes());
    let mut hex = String::with_capacity(12);
    for b in &digest[..6] {
        let _ = write!(hex, "{b:02x}"); // writing to a String cannot fail
    }
    hex
}

/// The URL `rest` and the query address at `provider` for `connection`.
async fn target(
    proxy: &Proxy,
    provider: &Provider,
    connection: &Connection,
    rest: &str,
    uri: &Uri,
) -> Result<Url, Refusal> {
    let base = api_base(proxy, provider, connection).await?;
    let credential_params: Vec<&str> = provider
        .inject
        .query
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    let query = uri.query();
    let stripped = query.and_then(|q| address::without_params(q, &credential_params));
    let query = stripped.as_deref().or(query);
    let url =
        address::join(&base, rest, query).map_err(|why| refused_path(provider, rest, &why))?;
    // The engine routes it, as it routes every request: the URL must lie in
    // this provider's prefixes (for this connection).
    match proxy.auth.route_for(&url, Some(connection)) {
        Some(handle) if handle.id() == provider.id => Ok(url),
        _ => Err(Refusal::outside_api(
            &provider.id,
            format!(
                "/{}/{rest} does not lie inside the provider's api prefixes",
                provider.id
            ),
        )),
    }
}

fn refused_path(provider: &Provider, rest: &str, why: &str) -> Refusal {
    Refusal::outside_api(
        &provider.id,
        format!("/{}/{rest} is refused: {why}", provider.id),
    )
}

/// Where `/{provider}/` points: the first `api` prefix, rendered for the
/// connection when it has placeholders, or the API base the token reply
/// bound the connection to (`response.api_base`).
async fn api_base(
    proxy: &Proxy,
    provider: &Provider,
    connection: &Connection,
) -> Result<Url, Refusal> {
    if provider.response.api_base.is_some() {
        let handle = proxy
            .auth
            .provider(&provider.id)
            .map_err(|e| Refusal::auth(&provider.id, &e))?;
        let credential = handle
            .credential(Some(connection))
            .await
            .map_err(|e| Refusal::auth(&provider.id, &e))?;
        if let Some(base) = credential.api_base() {
            return Ok(base.clone());
        }
    }
    let Some(prefix) = provider.api.iter().find(|p| !p.is_wildcard()) else {
        return Err(Refusal::outside_api(
            &provider.id,
            format!(
                "every api prefix of `{}` holds a `*`: the proxy cannot tell which host to send to; use a prefix without `*` or a client library",
                provider.id
            ),
        ));
    };
    match prefix.literal() {
        Some(url) => Ok(url.clone()),
        None => connection
            .render_url(provider, prefix)
            .map_err(|e| Refusal::auth(&provider.id, &e)),
    }
}

/// The request to send: the caller's method, headers (less the hop-by-hop
/// ones, the key and every credential the caller sent) and body, to `url`.
async fn upstream_request(
    proxy: &Proxy,
    provider: &Provider,
    request: Request<Incoming>,
    url: &Url,
    resolved: &Resolved,
) -> Result<Request<ProxyBody>, Refusal> {
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    remove_hop_by_hop(&mut headers);
    remove_credentials(&mut headers, provider);
    headers.remove(header::HOST);
    // The body is read here, not by the API: an `Expect: 100-continue` is
    // answered by this server and has no meaning on the next hop.
    headers.remove(header::EXPECT);
    headers.append(header::VIA, HeaderValue::from_static("1.1 tokenauth"));
    // A stalled upload must not hold a task and up to the buffer limit of
    // memory for ever: the part that is buffered gets the same time as the
    // API's answer.
    let body =
        match tokio::time::timeout(proxy.timeout, ProxyBody::read(body, proxy.retry_body_limit))
            .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                return Err(Refusal::bad_request(
                    Some(&provider.id),
                    format!("the request body could not be read: {}", e.0),
                ));
            }
            Err(_) => {
                return Err(Refusal::body_timeout(
                    &provider.id,
                    format!(
                        "the request body did not arrive within {} (--timeout)",
                        humantime::format_duration(proxy.timeout)
                    ),
                ));
            }
        };
    if body.is_buffered() {
        // The client sets the length of what is sent now.
        headers.remove(header::CONTENT_LENGTH);
    }
    let uri = Uri::try_from(url.as_str()).map_err(|e| {
        Refusal::outside_api(&provider.id, format!("the URL is not valid for HTTP: {e}"))
    })?;
    let mut upstream = Request::new(body);
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = uri;
    *upstream.version_mut() = Version::HTTP_11;
    *upstream.headers_mut() = headers;
    if let Resolved::Named(connection) = resolved {
        upstream.extensions_mut().insert(connection.clone());
    }
    Ok(upstream)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): `Connection` and every header it
/// names, and the ones that only ever describe one hop.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Read as bytes: a value with one non-UTF-8 byte (`X-Hop, \xe9`) must
    // not keep the names before it from being removed.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    // A message framed by both: the chunked body is the body (RFC 9112
    // 6.3), and its Content-Length must not go on (hyper would cut the
    // body at that length).
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("proxy-connection"),
        HeaderName::from_static("keep-alive"),
        header::TE,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TRAILER,
    ] {
        headers.remove(name);
    }
}

/// The proxy authenticates, not the caller: its key, its connection choice
/// and any credential it sent for the provider go no further.
fn remove_credentials(headers: &mut HeaderMap, provider: &Provider) {
    let inject = &provider.inject;
    let credentials = [
        header::PROXY_AUTHORIZATION.as_str(),
        header::AUTHORIZATION.as_str(),
    ];
    let credentials = credentials
        .into_iter()
        .chain(inject.header.iter().map(|(n, _)| n.as_str()))
        .chain(inject.headers.iter().map(|(n, _)| n.as_str()));
    // Compared as CGI-style servers (Rack, PHP, WSGI) read names, `_` as
    // `-`: a caller's `X_Api_Key` is their `X-Api-Key`. `Tokenauth-Key`,
    // `Tokenauth-Connection` and anything else the caller meant for the
    // proxy go too. (Names are lower case; nothing is allocated unless a
    // header goes.)
    let gone: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.get(..10).is_some_and(|p| same_dashed(p, "tokenauth-"))
                || credentials.clone().any(|c| same_dashed(name, c))
        })
        .cloned()
        .collect();
    for name in gone {
        headers.remove(name);
    }
}

/// `a` and `b` are the same header name when `_` is read as `-`.
fn same_dashed(a: &str, b: &str) -> bool {
    let dash = |c: u8| if c == b'_' { b'-' } else { c };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| dash(x) == dash(y))
}

/// The inner client failed: the API could not be reached (502
/// `upstream_unreachable`), or the exchange broke off (502
/// `upstream_error`).
fn upstream_failure(
    provider: &str,
    url: &Url,
    error: &hyper_util::client::legacy::Error,
) -> Refusal {
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if error.is_connect() {
        Refusal::unreachable(
            provider,
            format!("cannot connect to {}: {cause}", origin(url)),
        )
    } else {
        Refusal::upstream(
            provider,
            format!("the exchange with {} failed: {error}: {cause}", origin(url)),
        )
    }
}

/// `https://host[:port]`: where a request went, without its path or query.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    /// The log's connection hash: the first 6 bytes of SHA-256, in hex.
    #[test]
    fn a_connection_is_logged_as_a_short_hash() {
        assert_eq!(super::hash("tenant-a"), "80a707af7dc7");
    }
}
