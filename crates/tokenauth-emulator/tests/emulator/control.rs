//! The control API over HTTP.

use serde_json::{Value, json};
use tokenauth_emulator::{Host, Provider, RecordedRequest, Stats};

use crate::helpers::*;

async fn post_json(c: &reqwest::Client, url: &str, body: Value) -> Reply {
    read(
        c.post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("send"),
    )
    .await
}

#[tokio::test]
async fn stats_and_requests_over_http() {
    let e = start().await;
    let c = client();
    reob_token(&e, &c).await;
    let r = read(c.get(e.control_url("stats")).send().await.expect("send")).await;
    assert_eq!(r.status, 200);
    let stats: Stats = serde_json::from_str(&r.body).expect("Stats JSON");
    assert_eq!(stats, e.stats());
    assert_eq!(
        r.json()["reobtimaal"]["token"]["replies_by_status"]["200"],
        1
    );

    let r = read(c.get(e.control_url("requests")).send().await.expect("send")).await;
    let recorded: Vec<RecordedRequest> = serde_json::from_str(&r.body).expect("requests JSON");
    assert_eq!(recorded, e.recorded_token_requests());
    assert_eq!(recorded.len(), 1);
    // Control requests are not counted.
    assert_eq!(e.stats(), stats);
}

#[tokio::test]
async fn faults_over_http() {
    let e = start().await;
    let c = client();
    let r = post_json(
        &c,
        &e.control_url("faults"),
        json!({
            "provider": "reobtimaal",
            "status": {"status": 503, "count": 1, "retry_after": 2},
            "token_latency_ms": [1, 2],
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["reobtimaal"]["status"]["count"], 1);
    let t = reob_login(
        &e,
        &c,
        tokenauth_emulator::REOB_DEMO_USERNAME,
        tokenauth_emulator::REOB_DEMO_PASSWORD,
    )
    .await;
    assert_eq!(
        (t.status.as_u16(), t.header("retry-after")),
        (503, Some("2"))
    );
    reob_token(&e, &c).await;

    let r = post_json(
        &c,
        &e.control_url("faults"),
        json!({"provider": "2ba", "reply": {"kind": "expires_in", "value": 9, "count": 2},
               "access_token_lifetime_ms": 5000}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(e.knobs(Provider::Twoba).access_token_lifetime_ms, 5000.0);
    assert_eq!(twoba_login(&e, &c).await.json()["expires_in"], 9);
    let g = read(c.get(e.control_url("faults")).send().await.expect("send")).await;
    assert_eq!(g.json()["twoba"]["reply"]["count"], 1);

    let r = post_json(
        &c,
        &e.control_url("faults"),
        json!({"provider": "twoba", "reply": null}),
    )
    .await;
    assert_eq!(r.json()["twoba"]["reply"], Value::Null);
    assert_eq!(twoba_login(&e, &c).await.json()["expires_in"], 5);
}

#[tokio::test]
async fn bad_fault_updates_are_400_and_change_nothing() {
    let e = start().await;
    let c = client();
    for body in [
        json!({"status": {"status": 500, "count": 1}}),
        json!({"provider": "nope"}),
        json!({"provider": "bro", "unknown_knob": 1}),
        json!({"provider": "bro", "status": {"status": 42, "count": 1}}),
        json!({"provider": "bro", "token_latency_ms": -1}),
    ] {
        let r = post_json(&c, &e.control_url("faults"), body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.json()["error"].is_string());
    }
    assert!(e.knobs(Provider::Bro).status.is_none());
    let r = post_json(&c, &e.control_url("faults"), json!({"api_latency_ms": 0})).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn revoke_and_reset_over_http() {
    let e = start().await;
    let c = client();
    let token = reob_token(&e, &c).await;
    let url = e.url(Host::Reobtimaal, "/api/v1/x");
    let r = post_json(
        &c,
        &e.control_url("revoke"),
        json!({"provider": "reobtimaal"}),
    )
    .await;
    assert_eq!(r.json(), json!({"revoked": "reobtimaal"}));
    assert_eq!(
        get_bearer(&c, &url, &format!("bearer {token}"))
            .await
            .status,
        401
    );

    let r = read(c.post(e.control_url("revoke")).send().await.expect("send")).await;
    assert_eq!(r.json(), json!({"revoked": "all"}));
    let bro = basic(
        tokenauth_emulator::BRO_DEMO_USERNAME,
        tokenauth_emulator::BRO_DEMO_PASSWORD,
    );
    let bro_url = e.url(Host::Bro, "/api/v2/leveringen/1");
    assert_eq!(get_bearer(&c, &bro_url, &bro).await.status, 401);

    e.set_reply_fault(
        Provider::Reobtimaal,
        tokenauth_emulator::ReplyFault::MissingToken,
        3,
    );
    let r = read(c.post(e.control_url("reset")).send().await.expect("send")).await;
    assert_eq!(r.status, 200);
    assert_eq!(get_bearer(&c, &bro_url, &bro).await.status, 200);
    assert!(e.knobs(Provider::Reobtimaal).reply.is_none());
    assert!(e.recorded_token_requests().is_empty());
    assert_eq!(e.stats().bro.api.requests, 1);

    let r = read(
        c.post(e.control_url("reset_stats"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(e.stats(), Stats::default());
    let r = read(c.get(e.control_url("nope")).send().await.expect("send")).await;
    assert_eq!(r.status, 404);
}
