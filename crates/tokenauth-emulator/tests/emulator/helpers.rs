//! Shared helpers: start an emulator, post forms, read JSON.

#![allow(dead_code, unreachable_pub)]

use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use tokenauth_emulator::{
    Emulator, EmulatorConfig, Host, REOB_DEMO_PASSWORD, REOB_DEMO_USERNAME, TWOBA_DEMO_CLIENT_ID,
    TWOBA_DEMO_CLIENT_SECRET, TWOBA_DEMO_PASSWORD, TWOBA_DEMO_USERNAME,
};

pub async fn start() -> Emulator {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

pub fn client() -> Client {
    Client::new()
}

/// A reply read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self
            .json()
            .as_object()
            .expect("a JSON object")
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn read(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.expect("body");
    Reply {
        status,
        headers,
        body,
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `application/x-www-form-urlencoded` of these fields, in order.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn post_form(client: &Client, url: &str, fields: &[(&str, &str)]) -> Reply {
    read(
        client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields))
            .send()
            .await
            .expect("send"),
    )
    .await
}

pub async fn get_bearer(client: &Client, url: &str, auth: &str) -> Reply {
    read(
        client
            .get(url)
            .header("authorization", auth)
            .send()
            .await
            .expect("send"),
    )
    .await
}

pub async fn reob_login(e: &Emulator, client: &Client, user: &str, password: &str) -> Reply {
    post_form(
        client,
        &e.url(Host::Reobtimaal, "/api/Token"),
        &[
            ("grant-type", "password"),
            ("username", user),
            ("Password", password),
        ],
    )
    .await
}

/// A REOBtimaal access token of the demo user.
pub async fn reob_token(e: &Emulator, client: &Client) -> String {
    let r = reob_login(e, client, REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

pub async fn twoba_login(e: &Emulator, client: &Client) -> Reply {
    twoba_login_as(e, client, TWOBA_DEMO_USERNAME, TWOBA_DEMO_PASSWORD).await
}

pub async fn twoba_login_as(e: &Emulator, client: &Client, user: &str, password: &str) -> Reply {
    post_form(
        client,
        &e.url(Host::TwobaAuthorize, "/OAuth/Token"),
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
            ("client_id", TWOBA_DEMO_CLIENT_ID),
            ("client_secret", TWOBA_DEMO_CLIENT_SECRET),
        ],
    )
    .await
}

pub async fn twoba_refresh(e: &Emulator, client: &Client, refresh: &str) -> Reply {
    post_form(
        client,
        &e.url(Host::TwobaAuthorize, "/OAuth/Token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", TWOBA_DEMO_CLIENT_ID),
            ("client_secret", TWOBA_DEMO_CLIENT_SECRET),
        ],
    )
    .await
}

pub fn str_field(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
        .to_owned()
}

pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
