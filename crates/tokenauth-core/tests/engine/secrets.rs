//! No secret in Debug output; sensitive headers. (The TRACE-level check is
//! its own test binary, `tests/trace.rs`, with a global subscriber.)

use tokenauth_core::Injection;

use crate::helpers::*;

#[tokio::test]
async fn debug_output_is_redacted_exactly() {
    let s = setup().await;
    let cred = s.auth.credential_of("bro", Some(&bro())).await.unwrap();
    let debug = format!("{cred:?}");
    assert_eq!(
        debug,
        format!(
            r#"Credential {{ provider: "bro", connection: "bro-demo", token: {:?}, injection: Header {{ name: "authorization", value: [redacted] }} }}"#,
            cred.token_id()
        )
    );
    let Injection::Header { value, .. } = cred.injection() else {
        panic!()
    };
    assert!(value.is_sensitive());
    assert_eq!(format!("{value:?}"), "Sensitive");
    assert_eq!(
        format!("{:?}", reob()),
        r#"Connection { id: "reob-demo", inputs: {"username": "reob-demo", "password": [redacted]} }"#
    );
}
