//! The reqwest-middleware middleware.

use futures_util::future::join_all;
use tokenauth::{ClientBuilderExt as _, Connection, Error, NoAuth, auth_error};
use tokenauth_emulator::{Provider, REOB_DEMO_USERNAME};

use crate::helpers::*;

async fn user_of(response: reqwest::Response) -> String {
    let json: serde_json::Value = response.json().await.expect("JSON reply");
    json["user"].as_str().expect("user").to_owned()
}

#[tokio::test]
async fn each_seed_provider_end_to_end_one_token_request_for_many_calls() {
    let emu = emulator().await;
    let auth = engine(&emu);
    let client = middleware_client(&emu, &auth);
    for (id, method, url, conn, user) in seed_endpoints() {
        for _ in 0..10 {
            let reply = client
                .request(method.clone(), url)
                .with_extension(conn.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 200, "{id}");
            assert_eq!(user_of(reply).await, user, "{id}");
        }
    }
    let stats = emu.stats();
    assert_eq!(stats.reobtimaal.token.requests, 1);
    assert_eq!(stats.twoba.token.requests, 1);
    assert_eq!(stats.bro.token.requests, 0, "BRO has no token endpoint");
    for p in [&stats.reobtimaal, &stats.twoba, &stats.bro] {
        assert_eq!(p.api.requests, 10);
        assert_eq!(p.api.status(200), 10);
    }
    // BRO's static credential is rendered once.
    assert_eq!(auth.stats().fetches, 3);
}

#[tokio::test]
async fn outside_every_prefix_no_credential() {
    let emu = emulator().await;
    let server = TestServer::start().await;
    let other = TestServer::start().await;
    let toml = format!(
        "{}{}",
        seed_toml(),
        loopback_toml("loopback", &server.url("/api/"), None)
    );
    let auth = engine_toml(&emu, &toml);
    let client = middleware_client(&emu, &auth);
    for url in [
        server.url("/api/items"),   // inside: credential
        server.url("/api"),         // the prefix is `/api/`: outside
        server.url("/api-other/x"), // not at a segment boundary
        server.url("/other"),
        other.url("/api/items"), // another port
    ] {
        let reply = client
            .get(&url)
            .with_extension(reob())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200, "{url}");
    }
    let seen = server.seen();
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Bearer loopback-static-token")
    );
    for s in &seen[1..] {
        assert_eq!(s.authorization, None, "{s:?}");
    }
    assert_eq!(other.seen()[0].authorization, None);
    // Nothing was fetched for the requests outside (only the static one).
    assert_eq!(emu.stats().reobtimaal.token.requests, 0);
}

#[tokio::test]
async fn redirect_to_another_port_drops_the_credential() {
    let emu = emulator().await;
    let api = TestServer::start().await;
    let elsewhere = TestServer::start().await;
    let auth = engine_toml(&emu, &loopback_toml("loopback", &api.url("/api/"), None));
    let client = middleware_client(&emu, &auth);

    let target = elsewhere.url("/landing");
    let url = api.url(&format!("/api/redirect?to={target}"));
    let reply = client.get(&url).send().await.unwrap();
    assert_eq!(reply.status(), 200, "the redirect was followed");
    assert_eq!(
        api.seen()[0].authorization.as_deref(),
        Some("Bearer loopback-static-token"),
        "the provider's API got the credential"
    );
    let landed = elsewhere.seen();
    assert_eq!(landed.len(), 1);
    assert_eq!(landed[0].path, "/landing");
    assert_eq!(
        landed[0].authorization, None,
        "reqwest removes Authorization on a redirect to another port"
    );

    // With redirects off, the 302 comes back and nothing reaches the target.
    let strict = middleware_client_with(
        reqwest_builder(&emu).redirect(reqwest::redirect::Policy::none()),
        &auth,
    );
    let reply = strict.get(&url).send().await.unwrap();
    assert_eq!(reply.status(), 302);
    assert_eq!(elsewhere.seen().len(), 1);
}

/// The documented caveat: reqwest removes only `Authorization` (and cookie
/// headers) on a cross-origin redirect, not a custom inject header. A client
/// built without `scoped_to` therefore carries `X-Api-Key` to the target; the
/// middleware sees where the response came from and refuses it with an error
/// that says how to build the client, so the mistake cannot go unnoticed.
/// If the first half fails, reqwest got stricter: update the crate docs.
#[tokio::test]
async fn unscoped_client_redirect_with_a_custom_header_is_refused() {
    let emu = emulator().await;
    let api = TestServer::start().await;
    let elsewhere = TestServer::start().await;
    let auth = engine_toml(
        &emu,
        &loopback_toml("keyed", &api.url("/api/"), Some("X-Api-Key")),
    );
    let client = middleware_client(&emu, &auth);
    let url = api.url(&format!("/api/redirect?to={}", elsewhere.url("/landing")));
    let err = client.get(&url).send().await.unwrap_err();
    assert_eq!(
        api.seen()[0].api_key.as_deref(),
        Some("loopback-static-token")
    );
    assert_eq!(
        elsewhere.seen()[0].api_key.as_deref(),
        Some("loopback-static-token"),
        "reqwest itself keeps a custom header on a cross-origin redirect"
    );
    let typed = tokenauth::auth_error(&err).expect("a tokenauth error");
    assert!(
        matches!(typed, tokenauth::Error::RedirectLeftScope { provider, .. } if provider == "keyed"),
        "{typed:?}"
    );
    let message = typed.to_string();
    assert!(message.contains("scoped_to"), "{message}");
    assert!(!message.contains("loopback-static-token"), "{message}");

    // Built with `scoped_to`, the 302 comes back and the target sees nothing.
    let scoped = middleware_client_with(reqwest_builder(&emu).scoped_to(&auth), &auth);
    let reply = scoped.get(&url).send().await.unwrap();
    assert_eq!(reply.status(), 302);
    assert_eq!(elsewhere.seen().len(), 1, "nothing more reached the target");
}

#[tokio::test]
async fn revoked_token_one_renewal_one_retry_then_200() {
    let emu = emulator().await;
    let auth = engine(&emu);
    let client = middleware_client(&emu, &auth);
    let url = "https://api.reobtimaal-diensten.nl/api/v1/projecten";
    let get = || client.get(url).with_extension(reob()).send();

    assert_eq!(get().await.unwrap().status(), 200);
    emu.revoke(Provider::Reobtimaal);
    let reply = get().await.unwrap();
    assert_eq!(reply.status(), 200, "renewed and retried");
    assert_eq!(user_of(reply).await, REOB_DEMO_USERNAME);

    let stats = emu.stats().reobtimaal;
    assert_eq!(stats.token.requests, 2, "one renewal");
    assert_eq!(
        stats.api.requests, 3,
        "first call, the rejected one, one retry"
    );
    assert_eq!(stats.api.status(401), 1);
    assert_eq!(stats.api.status(200), 2);
}

#[tokio::test]
async fn permanent_rejection_is_returned_after_one_retry() {
    let emu = emulator().await;
    // 403 counts as "rejected" here; the demo user may not use /beheer.
    let toml = format!(
        "{}\n[providers.reobtimaal.on_unauthorized]\nstatus = [401, 403]\naction = \"renew\"\n",
        seed_toml()
    );
    let auth = engine_toml(&emu, &toml);
    let client = middleware_client(&emu, &auth);
    let reply = client
        .get("https://api.reobtimaal-diensten.nl/api/v1/beheer/gebruikers")
        .with_extension(reob())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 403, "the rejection comes back");
    let stats = emu.stats().reobtimaal;
    assert_eq!(stats.api.requests, 2, "one retry, no loop");
    assert_eq!(stats.token.requests, 2, "one renewal");
}

#[tokio::test]
async fn static_provider_with_action_fail_is_not_retried() {
    let emu = emulator().await;
    let auth = engine(&emu);
    let client = middleware_client(&emu, &auth);
    emu.revoke(Provider::Bro);
    let reply = client
        .post("https://www.bronhouderportaal-bro.nl/api/v2/validatie")
        .with_extension(bro())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    assert_eq!(emu.stats().bro.api.requests, 1);
}

#[tokio::test]
async fn two_connections_two_tokens_no_leak() {
    let emu = emulator().await;
    let auth = engine(&emu);
    let client = middleware_client(&emu, &auth);
    let url = "https://api.reobtimaal-diensten.nl/api/v1/projecten";
    let calls = (0..40).map(|i| {
        let client = client.clone();
        let n = 1 + i % 2;
        async move {
            let reply = client
                .get(url)
                .with_extension(reob_tenant(n))
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 200);
            (n, user_of(reply).await)
        }
    });
    for (n, user) in join_all(calls).await {
        assert_eq!(
            user,
            format!("tenant-{n}"),
            "tenant {n} got another's token"
        );
    }
    assert_eq!(emu.stats().reobtimaal.token.requests, 2);
    let one = auth
        .credential("reobtimaal", Some(&reob_tenant(1)))
        .await
        .unwrap();
    let two = auth
        .credential("reobtimaal", Some(&reob_tenant(2)))
        .await
        .unwrap();
    assert_ne!(one.token_id(), two.token_id());
    assert_ne!(
        one.access_token().map(secrecy::ExposeSecret::expose_secret),
        two.access_token().map(secrecy::ExposeSecret::expose_secret)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_requests_on_a_cold_cache_one_token_request() {
    let emu = emulator().await;
    let auth = engine(&emu);
    let client = middleware_client(&emu, &auth);
    let url = "https://api.reobtimaal-diensten.nl/api/v1/projecten";
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .get(url)
                    .with_extension(reob())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 200);
    }
    let stats = emu.stats().reobtimaal;
    assert_eq!(stats.token.requests, 1);
    assert_eq!(stats.api.status(200), 1000);
}

#[tokio::test]
async fn explicit_authorization_is_not_overwritten() {
    let emu = emulator().await;
    let auth = engine(&emu);
    let client = middleware_client(&emu, &auth);
    let reply = client
        .get("https://api.reobtimaal-diensten.nl/api/v1/projecten")
        .header("authorization", "bearer the-callers-own-token")
        .with_extension(reob())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401, "the caller's (bogus) token was sent");
    let stats = emu.stats().reobtimaal;
    assert_eq!(stats.token.requests, 0, "no credential was fetched");
    assert_eq!(stats.api.requests, 1, "and the rejection was not retried");

    // The same with a loopback server that shows the header.
    let server = TestServer::start().await;
    let auth = engine_toml(&emu, &loopback_toml("loopback", &server.url("/api/"), None));
    let client = middleware_client(&emu, &auth);
    client
        .get(server.url("/api/x"))
        .header("authorization", "Basic Y2FsbGVyOm93bg==")
        .send()
        .await
        .unwrap();
    assert_eq!(
        server.seen()[0].authorization.as_deref(),
        Some("Basic Y2FsbGVyOm93bg==")
    );
}

#[tokio::test]
async fn no_auth_extension_sends_no_credential() {
    let emu = emulator().await;
    let auth = engine(&emu);
    let client = middleware_client(&emu, &auth);
    let reply = client
        .get("https://api.reobtimaal-diensten.nl/api/v1/projecten")
        .with_extension(reob())
        .with_extension(NoAuth)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    assert_eq!(emu.stats().reobtimaal.token.requests, 0);
}

#[tokio::test]
async fn missing_input_downcasts_to_the_typed_error() {
    let emu = emulator().await;
    let toml = r#"
[providers.unset]
api = ["https://api.reobtimaal-diensten.nl/api/"]
inputs.username = { env = "TOKENAUTH_ADAPTER_TEST_NEVER_SET_USERNAME" }
inputs.password = { env = "TOKENAUTH_ADAPTER_TEST_NEVER_SET_PASSWORD", secret = true }
inject.basic = { username = "{{ inputs.username }}", password = "{{ inputs.password }}" }
"#;
    let auth = engine_toml(&emu, toml);
    let client = middleware_client(&emu, &auth);
    let url = "https://api.reobtimaal-diensten.nl/api/v1/projecten";

    // The default connection: the message names the variable.
    let err = client.get(url).send().await.unwrap_err();
    assert!(err.is_middleware());
    let typed = auth_error(&err).expect("a tokenauth error");
    assert!(
        matches!(typed, Error::MissingInput { env: Some(env), .. } if env == "TOKENAUTH_ADAPTER_TEST_NEVER_SET_USERNAME"),
        "{typed:?}"
    );
    assert!(
        err.to_string()
            .contains("TOKENAUTH_ADAPTER_TEST_NEVER_SET_USERNAME"),
        "{err}"
    );
    // By hand: Error::Middleware(anyhow::Error) -> downcast_ref.
    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("a middleware error")
    };
    assert!(inner.downcast_ref::<Error>().is_some());

    // A connection without the input: the message names the input.
    let err = client
        .get(url)
        .with_extension(Connection::new("half").with_input("username", "u"))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(auth_error(&err), Some(Error::MissingInput { input, connection, .. }) if input == "password" && connection == "half")
    );
    assert_eq!(emu.stats().reobtimaal.api.requests, 0, "nothing was sent");
}
