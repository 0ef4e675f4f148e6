//! The documented reply shapes: Keystone, cookie session, milliseconds.

use std::time::Duration;

use reqwest::Client;
use serde_json::json;
use tokenauth_emulator::{
    Emulator, EmulatorConfig, KEYSTONE_PASSWORD, KEYSTONE_USERNAME, MILLIS_CLIENT_ID,
    MILLIS_CLIENT_SECRET, SESSION_PASSWORD, SESSION_USERNAME, Shape,
};

async fn start() -> (Emulator, Client) {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    (emu, Client::new())
}

fn keystone_body(domain: &str, password: &str) -> serde_json::Value {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": KEYSTONE_USERNAME, "domain": {"id": domain}, "password": password
    }}}}})
}

#[tokio::test]
async fn keystone_checks_the_nested_body_and_replies_201_with_the_token_in_a_header() {
    let (emu, client) = start().await;
    let url = emu.shape_url(Shape::Keystone, "/v3/auth/tokens");
    for body in [
        keystone_body("other", KEYSTONE_PASSWORD),
        keystone_body("default", "wrong"),
        json!({"auth": {"identity": {"methods": ["token"]}}}),
    ] {
        let r = client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 401, "{body}");
        assert!(r.headers().get("x-subject-token").is_none());
    }
    let r = client
        .post(&url)
        .json(&keystone_body("default", KEYSTONE_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = r.headers()["x-subject-token"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    let expires_at = body["token"]["expires_at"].as_str().unwrap();
    assert!(
        expires_at.ends_with('Z') && expires_at.len() == 27,
        "{expires_at}"
    );
    let api = emu.shape_url(Shape::Keystone, "/compute/v2.1/servers");
    let ok = client
        .get(&api)
        .header("x-auth-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let denied = client.get(&api).bearer_auth(&token).send().await.unwrap();
    assert_eq!(denied.status(), 401, "Keystone reads X-Auth-Token only");
    let stats = emu.shape_stats(Shape::Keystone);
    assert_eq!((stats.token_requests, stats.tokens_issued), (4, 1));
    assert_eq!((stats.api_ok, stats.api_denied), (1, 1));
}

#[tokio::test]
async fn session_login_sets_a_cookie_with_an_html_or_empty_body() {
    let (emu, client) = start().await;
    let url = emu.shape_url(Shape::Session, "/login");
    let form = format!("user={SESSION_USERNAME}&pass={SESSION_PASSWORD}");
    let r = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies[0], "theme=light; Path=/");
    let session = cookies[1].strip_prefix("SESSION=").unwrap();
    assert!(
        session.ends_with("; Path=/; Max-Age=3600; HttpOnly"),
        "{session}"
    );
    let token = session.split(';').next().unwrap().to_owned();
    assert!(r.text().await.unwrap().starts_with("<html>"));
    let api = emu.shape_url(Shape::Session, "/api/things");
    let ok = client
        .get(&api)
        .header("cookie", format!("theme=light; SESSION={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    emu.set_session_empty_body(true);
    let r = client
        .post(&url)
        .json(&json!({"user": SESSION_USERNAME, "pass": SESSION_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("set-cookie").is_some());
    assert!(r.bytes().await.unwrap().is_empty());
    let wrong = client
        .post(&url)
        .json(&json!({"user": SESSION_USERNAME, "pass": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn millis_replies_expires_in_in_milliseconds_and_tokens_expire() {
    let (emu, client) = start().await;
    emu.set_shape_token_lifetime(Shape::Millis, Duration::from_millis(300));
    let url = emu.shape_url(Shape::Millis, "/oauth/token");
    let body = json!({"client_id": MILLIS_CLIENT_ID, "client_secret": MILLIS_CLIENT_SECRET});
    let reply: serde_json::Value = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["expires_in"], 300);
    let token = reply["access_token"].as_str().unwrap();
    let api = emu.shape_url(Shape::Millis, "/api/x");
    let call = || client.get(&api).bearer_auth(token).send();
    assert_eq!(call().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(call().await.unwrap().status(), 401, "expired");
    let bad = json!({"client_id": MILLIS_CLIENT_ID, "client_secret": "x"});
    assert_eq!(
        client.post(&url).json(&bad).send().await.unwrap().status(),
        401
    );
}
