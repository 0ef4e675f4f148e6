//! No secret in Debug output; sensitive headers. (The TRACE-level check is
//! its own test binary, `tests/trace.rs`, with a global subscriber.)

use crate::helpers::*;

#[tokio::test]
async fn debug_output_is_redacted_exactly() {
    let s = setup().await;
    let cred = s.auth.credential_of("bro", Some(&bro())).await.unwrap();
    let debug = format!("{cred:?}");
    assert_eq!(
        debug,
        format!(
            r#"Credential {{ provider: "bro", connection: "bro-demo", token: {:?}, injection: Injection {{ headers: {{"authorization": [redacted]}}, query: {{}} }} }}"#,
            cred.token_id()
        )
    );
    let value = cred
        .injection()
        .header_value(&http::header::AUTHORIZATION)
        .unwrap();
    assert!(value.is_sensitive());
    assert_eq!(format!("{value:?}"), "Sensitive");
    assert_eq!(
        format!("{:?}", reob()),
        r#"Connection { id: "reob-demo", inputs: {"username": "reob-demo", "password": [redacted]} }"#
    );
}
