//! The documented-reply server answers the documented requests of each
//! provider, written here by hand from the providers' docs (no tokenauth
//! code involved), and refuses a request that breaks the documentation.
//! The catalog test drives the same server through `tokenauth test`.

use tokenauth_emulator::documented::{DocAccount, DocumentedServer};

fn client(server: &DocumentedServer) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(server.ca_cert_pem().as_bytes()).unwrap();
    let mut b = reqwest::Client::builder().tls_certs_only([ca]);
    for (host, addr) in server.host_overrides() {
        b = b.resolve(host, addr);
    }
    b.build().unwrap()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace('/', "%2F")))
        .collect::<Vec<_>>()
        .join("&")
}

async fn token(c: &reqwest::Client, url: &str, body: String) -> (u16, serde_json::Value) {
    let r = c
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn the_providers_that_wait_for_issue_14_syntax_answer_their_documented_requests() {
    let server = DocumentedServer::start().unwrap();
    let c = client(&server);

    // Microsoft identity platform: tenant in the path, client in the form.
    let a = DocAccount::of("microsoft-entra");
    let body = form(&[
        ("client_id", &a.client_id),
        ("scope", "https://graph.microsoft.com/.default"),
        ("client_secret", &a.client_secret),
        ("grant_type", "client_credentials"),
    ]);
    let url = "https://login.microsoftonline.com/microsoft-entra-demo-tenant/oauth2/v2.0/token";
    let (status, reply) = token(&c, url, body.clone()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["token_type"], "Bearer");
    assert_eq!(reply["expires_in"], 3599);
    let t = reply["access_token"].as_str().unwrap();
    let api = "https://graph.microsoft.com/v1.0/organization";
    let ok = c.get(api).bearer_auth(t).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let wrong_tenant = url.replace("microsoft-entra-demo-tenant", "other");
    assert_eq!(token(&c, &wrong_tenant, body).await.0, 404);

    // Twitch: the API wants Client-Id next to the bearer token.
    let a = DocAccount::of("twitch");
    let body = form(&[
        ("client_id", &a.client_id),
        ("client_secret", &a.client_secret),
        ("grant_type", "client_credentials"),
    ]);
    let (status, reply) = token(&c, "https://id.twitch.tv/oauth2/token", body).await;
    assert_eq!(status, 200, "{reply}");
    let t = reply["access_token"].as_str().unwrap();
    let api = "https://api.twitch.tv/helix/games/top?first=1";
    let without = c.get(api).bearer_auth(t).send().await.unwrap();
    assert_eq!(without.status(), 401);
    let with = c
        .get(api)
        .bearer_auth(t)
        .header("Client-Id", &a.client_id)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);

    // Notion: a static token plus Notion-Version.
    let a = DocAccount::of("notion");
    let api = "https://api.notion.com/v1/users/me";
    let without = c.get(api).bearer_auth(&a.key).send().await.unwrap();
    assert_eq!(without.status(), 401);
    let with = c
        .get(api)
        .bearer_auth(&a.key)
        .header("Notion-Version", "2022-06-28")
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);

    // Trello: key and token as query parameters.
    let a = DocAccount::of("trello");
    let base = "https://api.trello.com/1/members/me";
    let ok = c
        .get(format!("{base}?key={}&token={}", a.client_id, a.key))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let only_key = c
        .get(format!("{base}?key={}", a.client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(only_key.status(), 401);
    assert_eq!(
        server.stats("trello").rejections,
        vec!["api: no query parameter token".to_owned()]
    );
}

#[tokio::test]
async fn a_token_endpoint_refuses_what_its_documentation_does_not_allow() {
    let server = DocumentedServer::start().unwrap();
    let c = client(&server);
    let a = DocAccount::of("spotify");
    let url = "https://accounts.spotify.com/api/token";
    // JSON instead of a form.
    let r = c
        .post(url)
        .basic_auth(&a.client_id, Some(&a.client_secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // GET instead of POST.
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // The right request.
    let r = c
        .post(url)
        .basic_auth(&a.client_id, Some(&a.client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stats = server.stats("spotify");
    assert_eq!((stats.token_requests, stats.tokens_issued), (3, 1));
    assert_eq!(
        stats.rejections,
        vec![
            "token: content type \"application/json\" instead of a form".to_owned(),
            "token: method GET instead of POST".to_owned(),
        ]
    );
}

/// The server's side of the shapes issue 14's items 3 and 4 brought
/// (several key headers, nested JSON logins, tokens in a reply header or a
/// cookie), by hand, with no tokenauth code: the catalog test drives the
/// same providers through `tokenauth test`.
#[tokio::test]
async fn json_logins_header_and_cookie_tokens_and_two_key_apis_answer_as_documented() {
    let server = DocumentedServer::start().unwrap();
    let c = client(&server);

    // OpenStack Keystone: nested JSON in, 201 with X-Subject-Token out.
    let a = DocAccount::of("openstack-keystone");
    let url = "https://openstack.example.com/identity/v3/auth/tokens";
    let login = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": a.user, "domain": {"id": "default"}, "password": a.password}}},
        "scope": {"project": {"name": a.tenant, "domain": {"id": "default"}}}
    }});
    let r = c.post(url).json(&login).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let t = r.headers()["x-subject-token"].to_str().unwrap().to_owned();
    let reply: serde_json::Value = r.json().await.unwrap();
    assert!(
        reply["token"]["expires_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let api = "https://openstack.example.com/identity/v3/auth/projects";
    let ok = c.get(api).header("X-Auth-Token", &t).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let mut flat = login.clone();
    flat["auth"]["identity"]["password"]["user"]["domain"] = serde_json::json!("default");
    let r = c.post(url).json(&flat).send().await.unwrap();
    assert_eq!(r.status(), 400);

    // Jira Data Center: JSON login, JSESSIONID cookie; GET on the same path
    // is the API, not the login.
    let a = DocAccount::of("jira-datacenter");
    let url = "https://jira.example.com/rest/auth/1/session";
    let r = c
        .post(url)
        .json(&serde_json::json!({"username": a.user, "password": a.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let (pair, _) = cookie.split_once(';').unwrap();
    let reply: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        format!("JSESSIONID={}", reply["session"]["value"].as_str().unwrap()),
        pair
    );
    let me = c
        .get(url)
        .header("Cookie", format!("other=1; {pair}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(c.get(url).send().await.unwrap().status(), 401);

    // Xero: refresh with client Basic; the refresh token rotates; the API
    // wants xero-tenant-id next to the bearer token.
    let a = DocAccount::of("xero");
    let url = "https://identity.xero.com/connect/token";
    let refresh = |rt: String| {
        c.post(url)
            .basic_auth(&a.client_id, Some(&a.client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
            ]))
            .send()
    };
    let r = refresh(a.refresh_token.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let reply: serde_json::Value = r.json().await.unwrap();
    let next = reply["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(next, server.refresh_token("xero"));
    assert_eq!(
        refresh(a.refresh_token.clone()).await.unwrap().status(),
        400
    );
    let t = reply["access_token"].as_str().unwrap();
    let api = "https://api.xero.com/api.xro/2.0/Organisation";
    let without = c.get(api).bearer_auth(t).send().await.unwrap();
    assert_eq!(without.status(), 401);
    let with = c
        .get(api)
        .bearer_auth(t)
        .header("xero-tenant-id", &a.tenant)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);
    assert_eq!(refresh(next).await.unwrap().status(), 200);

    // Datadog: two keys in two headers.
    let a = DocAccount::of("datadog");
    let api = "https://api.datadoghq.com/api/v2/validate_keys";
    let one = c
        .get(api)
        .header("DD-API-KEY", &a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 401);
    let both = c
        .get(api)
        .header("DD-API-KEY", &a.key)
        .header("DD-APPLICATION-KEY", &a.client_id)
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 200);
}
