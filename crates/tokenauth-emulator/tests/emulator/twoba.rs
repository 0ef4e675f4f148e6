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

/// The authorization request's URL (PKCE `challenge` with `method`, if any).
fn authorize_url(e: &tokenauth_emulator::Emulator, challenge: Option<(&str, &str)>) -> String {
    let mut url = e.url(Host::TwobaAuthorize, "/OAuth/Authorize");
    url.push_str(&format!(
        "?response_type=code&client_id={TWOBA_DEMO_CLIENT_ID}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state=xyz"
    ));
    if let Some((c, m)) = challenge {
        url.push_str(&format!("&code_challenge={c}&code_challenge_method={m}"));
    }
    url
}

/// Consents (or not) on the page: the redirect's Location.
async fn consent(url: &str, answer: &str) -> String {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = read(c.get(url).send().await.unwrap()).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<form"), "{}", page.body);
    let r = post_form(
        &c,
        url,
        &[
            ("username", TWOBA_DEMO_USERNAME),
            ("password", TWOBA_DEMO_PASSWORD),
            ("consent", answer),
        ],
    )
    .await;
    assert_eq!(r.status, 302, "{}", r.body);
    r.headers["location"].to_str().unwrap().to_owned()
}

fn code_of(location: &str) -> String {
    let query = location.split_once('?').unwrap().1;
    query
        .split('&')
        .find_map(|p| p.strip_prefix("code="))
        .unwrap()
        .to_owned()
}

async fn exchange(
    e: &tokenauth_emulator::Emulator,
    code: &str,
    redirect: &str,
    verifier: Option<&str>,
) -> Reply {
    let mut fields = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("client_id", TWOBA_DEMO_CLIENT_ID),
        (
            "client_secret",
            tokenauth_emulator::TWOBA_DEMO_CLIENT_SECRET,
        ),
    ];
    if let Some(v) = verifier {
        fields.push(("code_verifier", v));
    }
    post_form(
        &client(),
        &e.url(Host::TwobaAuthorize, "/OAuth/Token"),
        &fields,
    )
    .await
}

const REDIRECT: &str = "http://127.0.0.1:9/cb";
// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

#[tokio::test]
async fn authorization_code_with_s256_is_exchanged_once() {
    let e = start().await;
    let location = consent(&authorize_url(&e, Some((CHALLENGE, "S256"))), "allow").await;
    assert!(
        location.starts_with("http://127.0.0.1:9/cb?code=") && location.ends_with("&state=xyz"),
        "{location}"
    );
    let code = code_of(&location);
    let r = exchange(&e, &code, REDIRECT, Some(VERIFIER)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.keys(),
        ["access_token", "expires_in", "refresh_token", "token_type"]
    );
    // Single use.
    let again = exchange(&e, &code, REDIRECT, Some(VERIFIER)).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("invalid_grant"));
}

#[tokio::test]
async fn a_code_needs_its_redirect_uri_and_verifier() {
    let e = start().await;
    let url = authorize_url(&e, Some((CHALLENGE, "S256")));
    for (redirect, verifier) in [
        ("http://127.0.0.1:10/cb", Some(VERIFIER)),
        (REDIRECT, None),
        (
            REDIRECT,
            Some("wrong-verifier-wrong-verifier-wrong-verifier"),
        ),
    ] {
        let code = code_of(&consent(&url, "allow").await);
        let r = exchange(&e, &code, redirect, verifier).await;
        assert_eq!(r.status, 400, "{redirect} {verifier:?}");
        assert!(r.body.contains("invalid_grant"));
    }
    // plain PKCE, and none at all.
    let code = code_of(
        &consent(
            &authorize_url(
                &e,
                Some(("plain-verifier-0123456789-0123456789-abcdef", "plain")),
            ),
            "allow",
        )
        .await,
    );
    let r = exchange(
        &e,
        &code,
        REDIRECT,
        Some("plain-verifier-0123456789-0123456789-abcdef"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let code = code_of(&consent(&authorize_url(&e, None), "allow").await);
    assert_eq!(exchange(&e, &code, REDIRECT, None).await.status, 200);
}

#[tokio::test]
async fn declined_consent_redirects_with_access_denied() {
    let e = start().await;
    let location = consent(&authorize_url(&e, None), "deny").await;
    assert_eq!(
        location,
        "http://127.0.0.1:9/cb?error=access_denied&state=xyz"
    );
}
