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
