//! 2BA: OAuth2 password grant, single-use rotating refresh tokens, bearer API.

use std::time::Duration;

use tokenauth_emulator::{
    Host, Provider, TWOBA_DEMO_CLIENT_ID, TWOBA_DEMO_PASSWORD, TWOBA_DEMO_USERNAME,
};

use crate::helpers::*;

const API: &str = "/1/json/Product/DetailsForProduct";

#[tokio::test]
async fn password_grant_reply_shape() {
    let e = start().await;
    let r = twoba_login(&e, &client()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.keys(),
        ["access_token", "expires_in", "refresh_token", "token_type"]
    );
    let v = r.json();
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 120);
    assert_ne!(
        str_field(&v, "access_token"),
        str_field(&v, "refresh_token")
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_are_single_use() {
    let e = start().await;
    let c = client();
    let first = twoba_login(&e, &c).await.json();
    let r1 = str_field(&first, "refresh_token");

    let second = twoba_refresh(&e, &c, &r1).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let second = second.json();
    let r2 = str_field(&second, "refresh_token");
    assert_ne!(r1, r2);
    assert_ne!(
        str_field(&first, "access_token"),
        str_field(&second, "access_token")
    );

    let reuse = twoba_refresh(&e, &c, &r1).await;
    assert_eq!(reuse.status, 400);
    assert_eq!(reuse.body, r#"{"error":"invalid_grant"}"#);

    let third = twoba_refresh(&e, &c, &r2).await;
    assert_eq!(third.status, 200);
    let api = get_bearer(
        &c,
        &e.url(Host::Twoba, API),
        &format!("Bearer {}", str_field(&third.json(), "access_token")),
    )
    .await;
    assert_eq!(str_field(&api.json(), "user"), TWOBA_DEMO_USERNAME);

    let s = e.stats().twoba.token;
    assert_eq!(s.refresh_reuse, 1);
    assert_eq!(s.requests_by_grant.password, 1);
    assert_eq!(s.requests_by_grant.refresh_token, 3);
    assert_eq!((s.status(200), s.status(400)), (3, 1));
}

#[tokio::test]
async fn unknown_refresh_token_is_invalid_grant_but_not_reuse() {
    let e = start().await;
    let r = twoba_refresh(&e, &client(), "made-up").await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (400, r#"{"error":"invalid_grant"}"#)
    );
    assert_eq!(e.stats().twoba.token.refresh_reuse, 0);
}

#[tokio::test]
async fn client_credentials_are_checked() {
    let e = start().await;
    let c = client();
    let url = e.url(Host::TwobaAuthorize, "/OAuth/Token");
    for (id, secret) in [
        (TWOBA_DEMO_CLIENT_ID, "wrong"),
        ("other-client", "x"),
        ("", ""),
    ] {
        let r = post_form(
            &c,
            &url,
            &[
                ("grant_type", "password"),
                ("username", TWOBA_DEMO_USERNAME),
                ("password", TWOBA_DEMO_PASSWORD),
                ("client_id", id),
                ("client_secret", secret),
            ],
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), r.body.as_str()),
            (400, r#"{"error":"invalid_client"}"#)
        );
    }
}

#[tokio::test]
async fn wrong_user_password_or_field_case_is_invalid_grant() {
    let e = start().await;
    let c = client();
    let r = twoba_login_as(&e, &c, TWOBA_DEMO_USERNAME, "nope").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");
    let r = post_form(
        &c,
        &e.url(Host::TwobaAuthorize, "/OAuth/Token"),
        &[
            ("grant_type", "password"),
            ("username", TWOBA_DEMO_USERNAME),
            ("Password", TWOBA_DEMO_PASSWORD),
            ("client_id", TWOBA_DEMO_CLIENT_ID),
            (
                "client_secret",
                tokenauth_emulator::TWOBA_DEMO_CLIENT_SECRET,
            ),
        ],
    )
    .await;
    assert_eq!(r.json()["error"], "invalid_grant");
    let r = twoba_login_as(&e, &c, "tenant-42", "tenant-42-secret").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn unsupported_and_code_grants() {
    let e = start().await;
    let c = client();
    let url = e.url(Host::TwobaAuthorize, "/OAuth/Token");
    let grant = |g: &'static str| {
        [
            ("grant_type", g),
            ("client_id", TWOBA_DEMO_CLIENT_ID),
            (
                "client_secret",
                tokenauth_emulator::TWOBA_DEMO_CLIENT_SECRET,
            ),
            ("code", "abc"),
        ]
    };
    let r = post_form(&c, &url, &grant("client_credentials")).await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (400, r#"{"error":"unsupported_grant_type"}"#)
    );
    let r = post_form(&c, &url, &grant("authorization_code")).await;
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(e.stats().twoba.token.requests_by_grant.other, 2);
}

#[tokio::test]
async fn access_and_refresh_tokens_expire() {
    let e = start().await;
    e.set_access_token_lifetime(Provider::Twoba, Duration::from_millis(150));
    e.set_refresh_token_lifetime(Duration::from_millis(150));
    let c = client();
    let v = twoba_login(&e, &c).await.json();
    assert_eq!(v["expires_in"], 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let api = get_bearer(
        &c,
        &e.url(Host::Twoba, API),
        &format!("bearer {}", str_field(&v, "access_token")),
    )
    .await;
    assert_eq!(api.status, 401);
    let r = twoba_refresh(&e, &c, &str_field(&v, "refresh_token")).await;
    assert_eq!(r.status, 400);
    assert_eq!(e.stats().twoba.token.refresh_reuse, 0);
}

#[tokio::test]
async fn expires_in_follows_the_configured_lifetime() {
    let e = start_with(
        tokenauth_emulator::EmulatorConfig::default()
            .twoba_access_lifetime(Duration::from_millis(3_900)),
    )
    .await;
    assert_eq!(twoba_login(&e, &client()).await.json()["expires_in"], 3);
}

#[tokio::test]
async fn api_checks_the_bearer_token() {
    let e = start().await;
    let c = client();
    let url = e.url(Host::Twoba, API);
    assert_eq!(
        read(c.get(&url).send().await.expect("send")).await.status,
        401
    );
    let token = str_field(&twoba_login(&e, &c).await.json(), "access_token");
    for scheme in ["bearer", "Bearer"] {
        assert_eq!(
            get_bearer(&c, &url, &format!("{scheme} {token}"))
                .await
                .status,
            200
        );
    }
    assert_eq!(get_bearer(&c, &url, "Bearer x").await.status, 401);
}

#[tokio::test]
async fn revoke_kills_access_and_refresh_tokens() {
    let e = start().await;
    let c = client();
    let v = twoba_login(&e, &c).await.json();
    e.revoke_all();
    let api = get_bearer(
        &c,
        &e.url(Host::Twoba, API),
        &format!("bearer {}", str_field(&v, "access_token")),
    )
    .await;
    assert_eq!(api.status, 401);
    let r = twoba_refresh(&e, &c, &str_field(&v, "refresh_token")).await;
    assert_eq!(r.status, 400);
    assert_eq!(twoba_login(&e, &c).await.status, 200);
}
