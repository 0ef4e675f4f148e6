//! A token from a reply header (OpenStack Keystone's `X-Subject-Token`,
//! after a nested JSON login) through the reqwest middleware, end to end
//! against the emulator (issue 14, item 4).

use secrecy::SecretString;
use tokenauth::Connection;
use tokenauth_emulator::{KEYSTONE_PASSWORD, KEYSTONE_USERNAME, Shape};

use crate::helpers::*;

#[tokio::test]
async fn keystone_header_token_through_the_middleware() {
    let emu = emulator().await;
    let toml = format!(
        r#"
[providers.keystone]
api = ["{api}"]
inputs.user = {{}}
inputs.password = {{ secret = true }}
[providers.keystone.login]
url = "{login}"
body = "json"
[providers.keystone.login.fields.auth.identity]
methods = ["password"]
password.user = {{ name = "{{{{ inputs.user }}}}", domain = {{ id = "default" }}, password = "{{{{ inputs.password }}}}" }}
[providers.keystone.response]
access_token = {{ header = "X-Subject-Token" }}
expires_at = "/token/expires_at"
[providers.keystone.inject]
header = "X-Auth-Token"
value = "{{{{ token.access }}}}"
"#,
        api = emu.shape_url(Shape::Keystone, "/compute/"),
        login = emu.shape_url(Shape::Keystone, "/v3/auth/tokens"),
    );
    let auth = engine_toml(&emu, &toml);
    let client = middleware_client(&emu, &auth);
    let conn = Connection::new("ks")
        .with_input("user", KEYSTONE_USERNAME)
        .with_secret("password", SecretString::from(KEYSTONE_PASSWORD));
    for _ in 0..3 {
        let reply = client
            .get(emu.shape_url(Shape::Keystone, "/compute/v2.1/servers"))
            .with_extension(conn.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let body: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(body["user"], KEYSTONE_USERNAME);
    }
    let stats = emu.shape_stats(Shape::Keystone);
    assert_eq!((stats.token_requests, stats.api_ok), (1, 3));

    // A wrong password: the middleware's error holds no secret.
    let bad = Connection::new("ks-bad")
        .with_input("user", KEYSTONE_USERNAME)
        .with_secret("password", SecretString::from("SECRET-wrong-password"));
    let err = client
        .get(emu.shape_url(Shape::Keystone, "/compute/v2.1/servers"))
        .with_extension(bad)
        .send()
        .await
        .expect_err("the login fails");
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("SECRET-wrong-password") && !text.contains(KEYSTONE_PASSWORD),
        "{text}"
    );
    assert_eq!(
        emu.shape_stats(Shape::Keystone).api_ok,
        3,
        "nothing sent without a token"
    );
}
