//! BRO: Basic auth with a `|` username, 401 otherwise, revocation.

use tokenauth_emulator::{BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, EmulatorConfig, Host};

use crate::helpers::*;

async fn validatie(e: &tokenauth_emulator::Emulator, auth: Option<&str>) -> Reply {
    let mut req = client()
        .post(e.url(Host::Bro, "/api/v2/validatie"))
        .header("content-type", "application/xml")
        .body("<registrationRequest/>");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    read(req.send().await.expect("send")).await
}

#[tokio::test]
async fn basic_auth_with_pipes_in_the_username_works() {
    let e = start().await;
    let auth = basic(BRO_DEMO_USERNAME, BRO_DEMO_PASSWORD);
    let r = validatie(&e, Some(&auth)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(str_field(&r.json(), "user"), BRO_DEMO_USERNAME);
    assert_eq!(r.json()["body_bytes"], 22);

    let r = get_bearer(
        &client(),
        &e.url(Host::Bro, "/api/v2/leveringen/12345"),
        &auth,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(str_field(&r.json(), "path"), "/api/v2/leveringen/12345");
}

#[tokio::test]
async fn anything_else_is_401_with_a_basic_challenge() {
    let e = start().await;
    let wrong = [
        None,
        Some(basic(BRO_DEMO_USERNAME, "00")),
        Some(basic("0dce6fc98256|123456789|9999", BRO_DEMO_PASSWORD)),
        Some(format!("Bearer {BRO_DEMO_PASSWORD}")),
        Some("Basic !!!not-base64".to_owned()),
        Some(basic("tenant-1", "tenant-1-token")),
    ];
    for auth in wrong {
        let r = validatie(&e, auth.as_deref()).await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"bronhouderportaal\"")
        );
    }
    assert_eq!(e.stats().bro.api.status(401), 6);
}

#[tokio::test]
async fn tenants_and_passwords_with_colons() {
    let e = start_with(EmulatorConfig::default().bro_token("org|1", "pass:with:colons")).await;
    assert_eq!(
        validatie(&e, Some(&basic("org|1", "pass:with:colons")))
            .await
            .status,
        200
    );
    assert_eq!(
        validatie(&e, Some(&basic("tenant-77|bro", "tenant-77-token")))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn revoked_tokens_get_401() {
    let e = start().await;
    let demo = basic(BRO_DEMO_USERNAME, BRO_DEMO_PASSWORD);
    let tenant = basic("tenant-1|bro", "tenant-1-token");
    e.revoke_bro_token(BRO_DEMO_USERNAME);
    assert_eq!(validatie(&e, Some(&demo)).await.status, 401);
    assert_eq!(validatie(&e, Some(&tenant)).await.status, 200);
    e.revoke_all();
    assert_eq!(validatie(&e, Some(&tenant)).await.status, 401);
    e.reset();
    assert_eq!(validatie(&e, Some(&demo)).await.status, 200);
}
