//! REOBtimaal: `grant-type`, `Password`, bare `{"access_token"}` reply, 401/403.

use std::time::Duration;

use tokenauth_emulator::{
    Host, Provider, REOB_ADMIN_PASSWORD, REOB_ADMIN_USERNAME, REOB_DEMO_PASSWORD,
    REOB_DEMO_USERNAME,
};

use crate::helpers::*;

const DENIED: &str = r#"{"Message":"Authorization has been denied for this request."}"#;
const INVALID_GRANT: &str =
    r#"{"error":"invalid_grant","error_description":"The user name or password is incorrect."}"#;

#[tokio::test]
async fn token_reply_is_only_the_access_token() {
    let e = start().await;
    let r = reob_login(&e, &client(), REOB_DEMO_USERNAME, REOB_DEMO_PASSWORD).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.keys(), ["access_token"]);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json")
    );
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let token = str_field(&r.json(), "access_token");
    assert!(token.len() >= 32 && token.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[tokio::test]
async fn grant_type_with_underscore_is_unsupported() {
    let e = start().await;
    let r = post_form(
        &client(),
        &e.url(Host::Reobtimaal, "/api/Token"),
        &[
            ("grant_type", "password"),
            ("username", REOB_DEMO_USERNAME),
            ("Password", REOB_DEMO_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body, r#"{"error":"unsupported_grant_type"}"#);
}

#[tokio::test]
async fn lower_case_password_field_is_invalid_grant() {
    let e = start().await;
    let r = post_form(
        &client(),
        &e.url(Host::Reobtimaal, "/api/Token"),
        &[
            ("grant-type", "password"),
            ("username", REOB_DEMO_USERNAME),
            ("password", REOB_DEMO_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body, INVALID_GRANT);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_invalid_grant() {
    let e = start().await;
    let c = client();
    for (u, p) in [
        (REOB_DEMO_USERNAME, "nope"),
        ("nobody", REOB_DEMO_PASSWORD),
        ("tenant-5", "tenant-6-secret"),
    ] {
        let r = reob_login(&e, &c, u, p).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (400, INVALID_GRANT));
    }
    let r = reob_login(&e, &c, "tenant-5", "tenant-5-secret").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn other_content_type_is_rejected() {
    let e = start().await;
    let r = read(
        client()
            .post(e.url(Host::Reobtimaal, "/api/Token"))
            .header("content-type", "application/json")
            .body(r#"{"grant-type":"password","username":"reob-demo","Password":"reob-demo-password"}"#)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body, r#"{"error":"unsupported_grant_type"}"#);
}

#[tokio::test]
async fn token_endpoint_wants_post() {
    let e = start().await;
    let r = read(
        client()
            .get(e.url(Host::Reobtimaal, "/api/Token"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn api_needs_a_valid_bearer_token_in_either_case() {
    let e = start().await;
    let c = client();
    let url = e.url(Host::Reobtimaal, "/api/v1/projecten");
    let r = read(c.get(&url).send().await.expect("send")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body, DENIED);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(get_bearer(&c, &url, "bearer not-a-token").await.status, 401);

    let token = reob_token(&e, &c).await;
    for scheme in ["bearer", "Bearer"] {
        let r = get_bearer(&c, &url, &format!("{scheme} {token}")).await;
        assert_eq!(r.status, 200, "{scheme}");
        assert_eq!(str_field(&r.json(), "user"), REOB_DEMO_USERNAME);
        assert_eq!(str_field(&r.json(), "path"), "/api/v1/projecten");
    }
    assert_eq!(
        get_bearer(&c, &url, &format!("Basic {token}")).await.status,
        401
    );
    let s = e.stats().reobtimaal.api;
    assert_eq!((s.requests, s.status(200), s.status(401)), (5, 2, 3));
}

#[tokio::test]
async fn beheer_is_forbidden_without_the_admin_right() {
    let e = start().await;
    let c = client();
    let url = e.url(Host::Reobtimaal, "/api/v1/beheer/gebruikers");
    let demo = reob_token(&e, &c).await;
    assert_eq!(
        get_bearer(&c, &url, &format!("bearer {demo}")).await.status,
        403
    );

    let r = reob_login(&e, &c, REOB_ADMIN_USERNAME, REOB_ADMIN_PASSWORD).await;
    let admin = str_field(&r.json(), "access_token");
    let r = get_bearer(&c, &url, &format!("bearer {admin}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(str_field(&r.json(), "user"), REOB_ADMIN_USERNAME);
}

#[tokio::test]
async fn tokens_expire() {
    let e = start().await;
    e.set_access_token_lifetime(Provider::Reobtimaal, Duration::from_millis(150));
    let c = client();
    let token = reob_token(&e, &c).await;
    let url = e.url(Host::Reobtimaal, "/api/v1/projecten");
    let r = get_bearer(&c, &url, &format!("bearer {token}")).await;
    // Loopback is fast, but do not fail on a slow machine: 200 or already expired.
    assert!(r.status == 200 || r.status == 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get_bearer(&c, &url, &format!("bearer {token}"))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn each_login_gets_its_own_token_tied_to_its_user() {
    let e = start().await;
    let c = client();
    let url = e.url(Host::Reobtimaal, "/api/v1/projecten");
    let mut tokens = Vec::new();
    for n in 1..=3 {
        let user = format!("tenant-{n}");
        let r = reob_login(&e, &c, &user, &format!("{user}-secret")).await;
        tokens.push((user, str_field(&r.json(), "access_token")));
    }
    let again = reob_token(&e, &c).await;
    let first = reob_token(&e, &c).await;
    assert_ne!(again, first);
    for (user, token) in &tokens {
        let r = get_bearer(&c, &url, &format!("bearer {token}")).await;
        assert_eq!(&str_field(&r.json(), "user"), user);
    }
    let mut all: Vec<&String> = tokens.iter().map(|(_, t)| t).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3);
}

#[tokio::test]
async fn a_token_only_works_for_its_own_provider() {
    let e = start().await;
    let c = client();
    let token = reob_token(&e, &c).await;
    let r = get_bearer(
        &c,
        &e.url(Host::Twoba, "/1/json/Product/DetailsForProduct"),
        &format!("bearer {token}"),
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn an_authorization_request_without_its_parameters_is_400() {
    let e = start().await;
    let c = client();
    let url = e.url(Host::TwobaAuthorize, "/OAuth/Authorize");
    assert_eq!(
        read(c.get(&url).send().await.expect("send")).await.status,
        400
    );
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let e = start().await;
    let c = client();
    for url in [
        format!("{}/nowhere", e.base_url()),
        e.url(Host::Reobtimaal, "/other"),
        e.url(Host::Twoba, "/2/json/x"),
        e.url(Host::TwobaAuthorize, "/OAuth/Other"),
    ] {
        assert_eq!(
            read(c.get(&url).send().await.expect("send")).await.status,
            404,
            "{url}"
        );
    }
}

#[tokio::test]
async fn revoke_invalidates_reob_tokens() {
    let e = start().await;
    let c = client();
    let token = reob_token(&e, &c).await;
    let url = e.url(Host::Reobtimaal, "/api/v1/projecten");
    assert_eq!(
        get_bearer(&c, &url, &format!("bearer {token}"))
            .await
            .status,
        200
    );
    e.revoke(Provider::Reobtimaal);
    assert_eq!(
        get_bearer(&c, &url, &format!("bearer {token}"))
            .await
            .status,
        401
    );
    let fresh = reob_token(&e, &c).await;
    assert_eq!(
        get_bearer(&c, &url, &format!("bearer {fresh}"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_host_header_selects_the_host_on_the_plain_listener() {
    let e = start().await;
    let c = client();
    let r = read(
        c.post(format!("{}/api/Token", e.base_url()))
            .header("host", "api.reobtimaal-diensten.nl")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant-type=password&username=reob-demo&Password=reob-demo-password")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(e.recorded_token_requests()[0].path, "/api/Token");
    let r = read(
        c.get(format!("{}/1/json/x", e.base_url()))
            .header("host", "api.2ba.nl:443")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 401);
}
