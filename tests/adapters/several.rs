//! Several credentials on one request (issue 14, item 3), through both
//! adapters against loopback servers: a bearer token from a token endpoint
//! plus two static headers and two query parameters. Which headers and
//! parameters arrive, the caller's explicit value winning per name, and the
//! query credential kept out of a redirect's `Location`.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokenauth::TokenAuth;
use tokenauth::prelude::*;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::helpers::*;

const KEY: &str = "several-static-key-3b9d";
const TOKEN: &str = "several-token-71ce";

/// The provider `mixed`: `Authorization: Bearer <token>` from `endpoint`,
/// `X-Api-Key` and `X-Tenant`, and the query parameters `api_key` and `v`,
/// for everything on `api`.
fn several(api: &TestServer, endpoint: &TokenEndpoint) -> TokenAuth {
    static_engine(&format!(
        r#"
[providers.mixed]
api = ["{api}"]
inputs.key = {{ default = "{KEY}" }}
inputs.tenant = {{ default = "acme" }}
login = {{ url = "{login}", fields = {{ grant_type = "client_credentials" }} }}
response = {{ access_token = "/access_token" }}
expiry = {{ ttl = "1h" }}

[providers.mixed.inject]
header = "Authorization"
value = "Bearer {{{{ token.access }}}}"
headers = {{ "X-Api-Key" = "{{{{ inputs.key }}}}", "X-Tenant" = "{{{{ inputs.tenant }}}}" }}
query = {{ api_key = "{{{{ inputs.key }}}}", v = "2" }}
"#,
        api = api.url("/"),
        login = endpoint.url("/token"),
    ))
}

async fn token_endpoint() -> TokenEndpoint {
    TokenEndpoint::start(EndpointReply::new(
        200,
        "application/json",
        format!(r#"{{"access_token":"{TOKEN}"}}"#),
    ))
    .await
}

/// One request as the caller builds it: a path with its query, and the
/// headers it sets itself.
struct Call {
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
}

/// What the API received for one call: (authorization, x-api-key,
/// x-tenant) and the query.
fn arrived(seen: &Seen) -> ([Vec<&str>; 3], Option<&str>) {
    (
        [
            seen.header("authorization"),
            seen.header("x-api-key"),
            seen.header("x-tenant"),
        ],
        seen.query.as_deref(),
    )
}

#[tokio::test]
async fn through_the_reqwest_middleware() {
    let api = TestServer::start().await;
    let endpoint = token_endpoint().await;
    let auth = several(&api, &endpoint);
    let client = middleware_client_with(reqwest::Client::builder().scoped_to(&auth), &auth);
    let send = async |call: Call| {
        let mut request = client.get(api.url(call.path));
        for (name, value) in call.headers {
            request = request.header(*name, *value);
        }
        let reply = request.send().await.expect("sent");
        let shown = format!("{reply:?}");
        assert!(!shown.contains(KEY) && !shown.contains(TOKEN), "{shown}");
        let location = reply
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        (reply.status().as_u16(), location)
    };
    check(&api, &endpoint, send).await;
}

#[tokio::test]
async fn through_the_tower_layer() {
    let api = TestServer::start().await;
    let endpoint = token_endpoint().await;
    let auth = several(&api, &endpoint);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let svc = ServiceBuilder::new().layer(auth.layer()).service(client);
    let send = async |call: Call| {
        let mut request = Request::get(api.url(call.path));
        for (name, value) in call.headers {
            request = request.header(*name, *value);
        }
        let mut svc = svc.clone();
        let reply: Response<_> = svc
            .ready()
            .await
            .expect("ready")
            .call(request.body(Empty::new()).unwrap())
            .await
            .expect("sent");
        let location = reply
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let status = reply.status().as_u16();
        let _ = reply.into_body().collect().await;
        (status, location)
    };
    check(&api, &endpoint, send).await;
}

/// The scenario, whatever the adapter: `send` sends a call and returns the
/// response's status and `Location`.
async fn check<F>(api: &TestServer, endpoint: &TokenEndpoint, mut send: impl FnMut(Call) -> F)
where
    F: Future<Output = (u16, Option<String>)>,
{
    let bearer = format!("Bearer {TOKEN}");
    let last = || api.seen().pop().expect("the API got the request");

    // 1. The caller set every part: the request goes out untouched, and no
    //    token is fetched for it.
    let (status, _) = send(Call {
        path: "/items?api_key=mine&v=1",
        headers: &[
            ("authorization", "Bearer mine"),
            ("x-api-key", "mine"),
            ("x-tenant", "theirs"),
        ],
    })
    .await;
    assert_eq!(status, 200);
    let seen = last();
    assert_eq!(
        arrived(&seen),
        (
            [vec!["Bearer mine"], vec!["mine"], vec!["theirs"]],
            Some("api_key=mine&v=1")
        )
    );
    assert_eq!(endpoint.requests(), 0, "no token fetched");

    // 2. Nothing set by the caller: every part arrives, once.
    let (status, _) = send(Call {
        path: "/items?x=1",
        headers: &[],
    })
    .await;
    assert_eq!(status, 200);
    let seen = last();
    let query = format!("x=1&api_key={KEY}&v=2");
    assert_eq!(
        arrived(&seen),
        (
            [vec![bearer.as_str()], vec![KEY], vec!["acme"]],
            Some(query.as_str())
        )
    );
    assert_eq!(endpoint.requests(), 1);

    // 3. The caller set some parts: its values win, per name, and the
    //    other parts are attached beside them.
    let (status, _) = send(Call {
        path: "/items?api_key=mine&x=1",
        headers: &[("x-tenant", "theirs")],
    })
    .await;
    assert_eq!(status, 200);
    let seen = last();
    assert_eq!(
        arrived(&seen),
        (
            [vec![bearer.as_str()], vec![KEY], vec!["theirs"]],
            Some("api_key=mine&x=1&v=2")
        )
    );
    // Its own Authorization is one part among the others.
    send(Call {
        path: "/items",
        headers: &[("authorization", "Bearer mine")],
    })
    .await;
    let seen = last();
    let query = format!("api_key={KEY}&v=2");
    assert_eq!(
        arrived(&seen),
        (
            [vec!["Bearer mine"], vec![KEY], vec!["acme"]],
            Some(query.as_str())
        )
    );
    assert_eq!(endpoint.requests(), 1, "one token for all of them");

    // 4. A server that keeps the query when it redirects: the API got the
    //    parameters, the `Location` handed back has none of them.
    let (status, location) = send(Call {
        path: "/moved?x=1",
        headers: &[],
    })
    .await;
    assert_eq!(status, 301);
    let seen = last();
    let query = format!("x=1&api_key={KEY}&v=2");
    assert_eq!(seen.query.as_deref(), Some(query.as_str()));
    assert_eq!(location.as_deref(), Some("/moved/?x=1"));
}

/// The redirect-scope check looks at every part: a bearer token (which
/// reqwest drops on a cross-origin redirect) beside a custom header (which
/// it keeps) is refused when an unscoped client follows a redirect out of
/// the provider's prefixes, naming the custom header.
#[tokio::test]
async fn an_unscoped_redirect_is_refused_for_a_custom_header_beside_authorization() {
    let api = TestServer::start().await;
    let elsewhere = TestServer::start().await;
    let auth = static_engine(&format!(
        r#"
[providers.mixed]
api = ["{api}"]
inputs.key = {{ default = "{KEY}" }}
[providers.mixed.inject]
header = "Authorization"
value = "Bearer {{{{ inputs.key }}}}"
headers = {{ "X-Api-Key" = "{{{{ inputs.key }}}}" }}
"#,
        api = api.url("/api/"),
    ));
    let client = middleware_client_with(reqwest::Client::builder(), &auth);
    let url = api.url(&format!("/api/redirect?to={}", elsewhere.url("/landing")));
    let err = client.get(&url).send().await.unwrap_err();
    let typed = tokenauth::auth_error(&err).expect("a tokenauth error");
    let tokenauth::Error::RedirectLeftScope { credential, .. } = typed else {
        panic!("{typed:?}")
    };
    assert_eq!(credential, "the `x-api-key` header");
    assert!(!typed.to_string().contains(KEY), "{typed}");
}
