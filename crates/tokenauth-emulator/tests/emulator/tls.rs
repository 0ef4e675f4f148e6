//! TLS listener: the real https:// URLs reach the emulator.

use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, Emulator, EmulatorConfig, Host, REOB_DEMO_PASSWORD,
    REOB_DEMO_USERNAME,
};

use crate::helpers::*;

fn tls_client(e: &Emulator) -> reqwest::Client {
    let pem = e.ca_cert_pem().expect("TLS is on");
    let ca = reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA PEM");
    let mut b = reqwest::Client::builder().tls_certs_only([ca]);
    for (host, addr) in e.host_overrides() {
        b = b.resolve(host, addr);
    }
    b.build().expect("client")
}

#[tokio::test]
async fn real_urls_work_through_the_tls_listener() {
    let e = start_with(EmulatorConfig::default().tls(true)).await;
    assert_eq!(e.host_overrides().len(), 4);
    let c = tls_client(&e);

    let r = post_form(
        &c,
        &Emulator::real_url(Host::Reobtimaal, "/api/Token"),
        &[
            ("grant-type", "password"),
            ("username", REOB_DEMO_USERNAME),
            ("Password", REOB_DEMO_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = str_field(&r.json(), "access_token");
    let r = get_bearer(
        &c,
        "https://api.reobtimaal-diensten.nl/api/v1/projecten",
        &format!("bearer {token}"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(e.recorded_token_requests()[0].path, "/api/Token");

    let v = twoba_login_tls(&c).await;
    let r = get_bearer(
        &c,
        "https://api.2ba.nl/1/json/Product/DetailsForProduct",
        &format!("Bearer {}", str_field(&v, "access_token")),
    )
    .await;
    assert_eq!(r.status, 200);

    let r = get_bearer(
        &c,
        "https://www.bronhouderportaal-bro.nl/api/v2/leveringen/7",
        &basic(BRO_DEMO_USERNAME, BRO_DEMO_PASSWORD),
    )
    .await;
    assert_eq!(r.status, 200);

    let r = read(
        c.get("https://api.2ba.nl/_emulator/stats")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.json()["twoba"]["api"]["requests"], 1);
}

async fn twoba_login_tls(c: &reqwest::Client) -> serde_json::Value {
    let r = post_form(
        c,
        "https://authorize.2ba.nl/OAuth/Token",
        &[
            ("grant_type", "password"),
            ("username", tokenauth_emulator::TWOBA_DEMO_USERNAME),
            ("password", tokenauth_emulator::TWOBA_DEMO_PASSWORD),
            ("client_id", tokenauth_emulator::TWOBA_DEMO_CLIENT_ID),
            (
                "client_secret",
                tokenauth_emulator::TWOBA_DEMO_CLIENT_SECRET,
            ),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[tokio::test]
async fn localhost_and_ip_with_path_prefixes_over_tls() {
    let e = start_with(EmulatorConfig::default().tls(true)).await;
    let c = tls_client(&e);
    let port = e.tls_addr().expect("tls addr").port();
    for base in [
        format!("https://localhost:{port}"),
        format!("https://127.0.0.1:{port}"),
    ] {
        let r = read(
            c.get(format!("{base}/bro/api/v2/leveringen/1"))
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(r.status, 401, "{base}");
    }
}

#[tokio::test]
async fn the_ca_is_needed() {
    let e = start_with(EmulatorConfig::default().tls(true)).await;
    let mut b = reqwest::Client::builder().tls_certs_only(Vec::new());
    for (host, addr) in e.host_overrides() {
        b = b.resolve(host, addr);
    }
    let c = b.build().expect("client");
    assert!(c.get("https://api.2ba.nl/1/json/x").send().await.is_err());
}

#[tokio::test]
async fn no_tls_no_overrides() {
    let e = start().await;
    assert!(e.tls_addr().is_none());
    assert!(e.ca_cert_pem().is_none());
    assert!(e.host_overrides().is_empty());
}
