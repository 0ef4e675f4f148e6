//! Attacks on per-connection URLs (`{{ inputs.NAME }}` prefixes) and API
//! bases from the token reply, from the review of issue 14: each test once
//! failed, and proves that its hole stays closed.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use crate::request::Transport;
use crate::{Connection, Error, Providers, TokenAuth};

fn engine(toml: &str) -> TokenAuth {
    let providers = Providers::from_toml("review.toml", toml).expect("loads");
    TokenAuth::builder(providers).build().expect("builds")
}

fn u(s: &str) -> Url {
    Url::parse(s).unwrap()
}

/// An HTTP client that answers 200 with "host key" of what it was sent.
struct Echo;

impl Transport for Echo {
    type Request = http::Request<String>;
    type Response = http::Response<String>;
    type Error = Error;
    type Kept = Self::Request;

    async fn send(&mut self, request: Self::Request) -> Result<Self::Response, Error> {
        let key = request
            .headers()
            .get("x-api-key")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let host = request.uri().host().unwrap_or_default().to_owned();
        Ok(http::Response::new(format!("{host} {key}")))
    }
    fn keep_for_retry(&self, _: &Self::Request, _: &mut Option<Self::Request>) {}
    fn retry_request(&self, kept: Self::Request) -> Option<Self::Request> {
        Some(kept)
    }
    fn auth_error(&self, error: Error) -> Error {
        error
    }
}

/// A loopback server that answers every request with `status` and `body`.
async fn serve(status: u16, body: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = 0;
                loop {
                    let Ok(n) = s.read(&mut buf[got..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got += n;
                    let text = String::from_utf8_lossy(&buf[..got]);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if got >= end + 4 + len {
                            break;
                        }
                    }
                }
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

/// F1 (medium): the redirect policy judges a templated prefix with the
/// DEFAULT connection, so a request of connection `c` (prefix `/c/`) is
/// followed out of its own prefix, custom header and all.
#[tokio::test]
async fn f1_redirect_leaves_the_connections_rendered_prefix() {
    let auth = engine(
        r#"
[providers.tenanted]
api = ["https://api.example.com/{{ inputs.tenant }}/"]
inputs.tenant = { env = "REVIEW_F1_TENANT_UNSET" }
inputs.key = { env = "REVIEW_F1_KEY_UNSET" }
inject = { header = "X-Api-Key", value = "{{ inputs.key }}" }
"#,
    );
    let c = Connection::new("c")
        .with_input("tenant", "c")
        .with_input("key", "k");
    let from = u("https://api.example.com/c/items");
    let to = u("https://api.example.com/other/secret");
    assert!(
        auth.route_for(&from, Some(&c)).is_some(),
        "c's request carries the key"
    );
    assert!(
        auth.route_for(&to, Some(&c)).is_none(),
        "`to` is outside c's prefix"
    );
    assert!(
        !auth.may_follow_redirect(&from, &to),
        "followed: c's X-Api-Key goes to /other/secret"
    );
}

/// F2 (medium): tokens are cached by connection id, but a templated prefix is
/// rendered from the Connection object's values. A Connection with id
/// "default" (or any id colliding with another tenant's) gets the cached
/// credential of the real one, sent to the host of ITS OWN values.
#[tokio::test]
async fn f2_connection_id_collision_moves_the_default_credential_to_any_host() {
    let auth = engine(
        r#"
[providers.sub]
api = ["https://{{ inputs.sub }}.example.com/"]
inputs.sub = { env = "REVIEW_F2_SUB_UNSET", default = "acme" }
inputs.key = { env = "REVIEW_F2_KEY_UNSET", default = "operator-key" }
inject = { header = "X-Api-Key", value = "{{ inputs.key }}" }
"#,
    );
    // The operator's own request, default connection.
    let req = http::Request::get("https://acme.example.com/x")
        .body(String::new())
        .unwrap();
    let ex = auth.exchange(req, None, None).unwrap();
    assert_eq!(
        ex.send(&mut Echo).await.unwrap().body(),
        "acme.example.com operator-key"
    );
    // A tenant whose id happens to be "default" and whose host is evil.
    let tenant = Connection::new("default")
        .with_input("sub", "evil")
        .with_input("key", "tenant-key");
    let mut req = http::Request::get("https://evil.example.com/x")
        .body(String::new())
        .unwrap();
    req.extensions_mut().insert(tenant);
    // Either it routes nowhere (the id's rendering is acme's: sent without
    // a credential), or the credential's own prefixes refuse it.
    let Ok(ex) = auth.exchange(req, None, None) else {
        return;
    };
    match ex.send(&mut Echo).await {
        Ok(response) => assert_ne!(
            response.into_body(),
            "evil.example.com operator-key",
            "operator's key sent to evil"
        ),
        Err(e) => assert!(matches!(e, Error::OutsideConnectionPrefixes { .. }), "{e}"),
    }
}

/// F3 (low): a host value is checked against `pattern` as written, but the
/// URL parser turns IPv4 number forms into an address the pattern never saw.
#[tokio::test]
async fn f3_host_pattern_is_judged_before_ipv4_normalisation() {
    let auth = engine(
        r#"
[providers.h]
api = ["https://{{ inputs.host }}/api/"]
# every label group must start with a letter-containing label: "no IP literals"
inputs.host = { env = "REVIEW_F3_UNSET", pattern = "[a-z0-9-]*[a-z][a-z0-9-]*(\\.[a-z0-9-]+)*" }
inputs.key = { env = "REVIEW_F3_KEY_UNSET" }
inject = { header = "X-Api-Key", value = "{{ inputs.key }}" }
"#,
    );
    let p = &auth.providers().providers[0];
    assert!(p.input("host").unwrap().violation("127.0.0.1").is_some());
    assert!(p.input("host").unwrap().violation("0x7f.1").is_none());
    let c = Connection::new("t")
        .with_input("host", "0x7f.1")
        .with_input("key", "k");
    assert!(
        auth.route_for(&u("https://127.0.0.1/api/x"), Some(&c))
            .is_none(),
        "the key goes to 127.0.0.1, which the pattern refuses"
    );
}

/// F4 (low): the "only a wildcard" load check misses `*.*`, `*.com`, `api.*`.
#[test]
fn f4_wildcards_that_name_almost_every_host_load() {
    for api in ["https://*.*/", "https://*.com/", "https://api.*/"] {
        let toml = format!(
            r#"
[providers.sf]
api = ["{api}"]
login.url = "https://login.example.com/token"
login.fields = {{ grant_type = "client_credentials" }}
response.api_base = "/instance_url"
expiry.ttl = "1h"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
        );
        let r = Providers::from_toml("review.toml", &toml);
        let e = format!("{:?}", r.as_ref().err());
        assert!(
            e.contains("wildcard") || e.contains("`*`"),
            "{api} loads (a reply can bind the token to evil.com / api.evil): {e}"
        );
    }
}

/// F5 (low): a value the connection supplies as secret (`with_secret`) may
/// stand in a token URL (only inputs *declared* secret are refused at load),
/// and then goes verbatim into Error::Status/Transport/Timeout `url`.
#[tokio::test]
async fn f5_secret_connection_value_in_token_url_is_printed() {
    let port = serve(400, r#"{"error":"invalid_client"}"#).await;
    let auth = engine(&format!(
        r#"
[providers.t]
api = ["http://127.0.0.1:{port}/api/"]
inputs.tenant = {{ env = "REVIEW_F5_UNSET" }}
login.url = "http://127.0.0.1:{port}/{{{{ inputs.tenant }}}}/token"
login.fields = {{ grant_type = "client_credentials" }}
expiry.ttl = "1h"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
    ));
    let c = Connection::new("t").with_secret("tenant", "tenant-s3cret");
    let e = auth
        .provider("t")
        .unwrap()
        .credential(Some(&c))
        .await
        .unwrap_err();
    assert!(!format!("{e} {e:?}").contains("tenant-s3cret"), "{e}");
}

/// F6 (low): Error::ApiBase quotes the reply's value scrubbed of the access
/// token and the refresh token *sent*, but not of the NEW refresh token in
/// the same reply.
#[tokio::test]
async fn f6_api_base_error_quotes_the_new_refresh_token() {
    let port = serve(
        200,
        r#"{"access_token":"at-1","refresh_token":"rt-NEW-5ecret","expires_in":3600,"instance_url":"https://x.evil.example/?rt-NEW-5ecret"}"#,
    )
    .await;
    let auth = engine(&format!(
        r#"
[providers.sf]
api = ["https://*.my.salesforce.com/"]
login.url = "http://127.0.0.1:{port}/token"
login.fields = {{ grant_type = "client_credentials" }}
response.refresh_token = "/refresh_token"
response.expires_in = "/expires_in"
response.api_base = "/instance_url"
refresh.fields = {{ grant_type = "refresh_token", refresh_token = "{{{{ token.refresh }}}}" }}
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
    ));
    let e = auth
        .provider("sf")
        .unwrap()
        .credential(None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ApiBase { .. }), "{e}");
    assert!(!e.to_string().contains("rt-NEW-5ecret"), "{e}");
}

/// F7 (low): a provider whose api_base binds among WRITTEN-OUT prefixes
/// (docs: `api = ["https://www.zohoapis.com/", "https://www.zohoapis.eu/"]`)
/// takes the static redirect rule: a cross-origin redirect to the sibling
/// prefix is followed with a custom-header credential.
#[test]
fn f7_redirect_to_sibling_prefix_outside_the_bound_base_is_followed() {
    let auth = engine(
        r#"
[providers.z]
api = ["https://www.zohoapis.com/", "https://www.zohoapis.eu/"]
login.url = "https://accounts.zoho.com/oauth/v2/token"
login.fields = { grant_type = "client_credentials" }
response.api_base = "/api_domain"
expiry.ttl = "1h"
inject = { header = "X-Api-Key", value = "{{ token.access }}" }
"#,
    );
    assert!(
        !auth.may_follow_redirect(
            &u("https://www.zohoapis.com/crm/x"),
            &u("https://www.zohoapis.eu/crm/x")
        ),
        "a connection bound to .com has its header followed to .eu"
    );
}

/// F8 (low, DoS): `glob` backtracks O(n^k) over a request host for a prefix
/// with k host placeholders; a long host costs seconds per routed request.
#[test]
fn f8_glob_is_quadratic_in_the_host() {
    let auth = engine(
        r#"
[providers.two]
api = ["https://{{ inputs.a }}.{{ inputs.b }}.example.com/"]
inputs.a = { env = "REVIEW_F8_A_UNSET" }
inputs.b = { env = "REVIEW_F8_B_UNSET" }
inputs.key = { env = "REVIEW_F8_KEY_UNSET" }
inject = { header = "X-Api-Key", value = "{{ inputs.key }}" }
"#,
    );
    let host = format!("{}example.co", "a.".repeat(5_000));
    let url = u(&format!("https://{host}/x"));
    let started = std::time::Instant::now();
    let _ = auth.route_for(&url, None);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(100),
        "routing one URL took {:?}",
        started.elapsed()
    );
}

/// F9 (low): a `*` prefix and another provider's `{{ inputs.* }}` prefix of
/// the same form are not a load error (shapes differ: wild marker vs any
/// marker; `template_covers` only checks written-out prefixes). Routing
/// then ties at equal length and the first provider silently wins.
#[test]
fn f9_wildcard_and_templated_prefixes_of_one_form_load() {
    let toml = r#"
[providers.w]
api = ["https://*.example.com/"]
login.url = "https://login.example.com/token"
login.fields = { grant_type = "client_credentials" }
response.api_base = "/instance_url"
expiry.ttl = "1h"
inject = { header = "Authorization", value = "Bearer {{ token.access }}" }

[providers.t]
api = ["https://{{ inputs.sub }}.example.com/"]
inputs.sub = { env = "REVIEW_F9_SUB", default = "acme" }
inputs.key = { env = "REVIEW_F9_KEY", default = "k" }
inject = { header = "X-Api-Key", value = "{{ inputs.key }}" }
"#;
    let loaded = Providers::from_toml("review.toml", toml);
    if let Ok(p) = &loaded {
        let auth = TokenAuth::builder(p.clone()).build().unwrap();
        // t's default connection renders acme.example.com, yet w gets it.
        let to = auth
            .route(&u("https://acme.example.com/x"))
            .map(|h| h.provider().id.clone());
        assert_eq!(to.as_deref(), Some("t"), "t's own host routes to w");
    }
    let e = format!("{:?}", loaded.as_ref().err());
    assert!(
        e.contains("same form") || e.contains("shadowed"),
        "same-form prefixes load: {e}"
    );
}
