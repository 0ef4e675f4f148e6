//! tokenauth in one reqwest-middleware stack with reqwest-retry and
//! reqwest-tracing, in the documented order:
//!
//! ```text
//! ClientBuilder::new(client)
//!     .with(RetryTransientMiddleware::new_with_policy(policy)) // outermost
//!     .with(TracingMiddleware::default())                        // one span per attempt
//!     .with(auth.middleware())                                   // innermost
//! ```
//!
//! Retry outside tracing: every attempt gets its own span. tokenauth
//! innermost: every attempt gets the current credential (a retried request
//! after a renewal carries the new token), and the span records the URL
//! before the credential is attached, so a query key never reaches a span.
//! Its own test binary: it installs a global `tracing` subscriber.

mod helpers;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest_middleware::ClientBuilder;
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_tracing::{SpanBackendWithUrl, TracingMiddleware};
use tokenauth::prelude::*;
use tokenauth_emulator::{Provider, StatusFault};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt as _};

use helpers::*;

/// Every span reqwest-tracing opens, with every field it records.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        if attrs.metadata().target().starts_with("reqwest_tracing") {
            let mut text = String::from(attrs.metadata().name());
            attrs.record(&mut Fields(&mut text));
            self.0.lock().unwrap().push(text);
        }
    }

    fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
        // Fields recorded later (status, errors) go to the last span's text.
        let mut spans = self.0.lock().unwrap();
        if let Some(last) = spans.last_mut() {
            values.record(&mut Fields(last));
        }
    }
}

/// The stack, with reqwest-tracing's span backend that also records the
/// full URL (`url.full`), the one that could show a query key.
fn stack(
    http: reqwest::Client,
    auth: &tokenauth::TokenAuth,
) -> reqwest_middleware::ClientWithMiddleware {
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(2);
    ClientBuilder::new(http)
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .with(TracingMiddleware::<SpanBackendWithUrl>::new())
        .with(auth.middleware())
        .build()
}

#[tokio::test]
async fn retry_tracing_and_tokenauth_in_one_stack() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let emu = emulator().await;
    let auth = engine(&emu);
    let client = stack(
        reqwest_builder(&emu).scoped_to(&auth).build().unwrap(),
        &auth,
    );
    let url = "https://api.reobtimaal-diensten.nl/api/v1/projecten";
    let span_count = || spans.0.lock().unwrap().len();

    // A 503 is retried by reqwest-retry, each attempt in its own span, each
    // authenticated by tokenauth with the one cached token.
    emu.fail_api_requests(Provider::Reobtimaal, StatusFault::new(503, 1));
    let reply = client.get(url).with_extension(reob()).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    let stats = emu.stats().reobtimaal;
    assert_eq!(stats.api.requests, 2, "503, then the retry");
    assert_eq!(stats.api.status(503), 1);
    assert_eq!(stats.token.requests, 1, "one login for both attempts");
    assert_eq!(
        span_count(),
        2,
        "one span per attempt: {:?}",
        spans.0.lock().unwrap()
    );

    // A 401 (every token revoked) is renewed and retried by tokenauth, inside
    // the one attempt reqwest-retry sees (a 401 is not transient to it).
    emu.revoke(Provider::Reobtimaal);
    let reply = client.get(url).with_extension(reob()).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    let stats = emu.stats().reobtimaal;
    assert_eq!(stats.api.requests, 4, "401, then tokenauth's retry");
    assert_eq!(stats.token.requests, 2, "one renewal");
    assert_eq!(span_count(), 3, "one attempt, one span");
    assert_eq!(auth.stats().invalidations, 1);

    // A query credential is attached after reqwest-tracing recorded the URL:
    // no span holds the key.
    let api = TestServer::start().await;
    let keyed = static_engine(&query_toml("q", &format!("http://{}/", api.addr)));
    let client = stack(
        reqwest::Client::builder()
            .scoped_to(&keyed)
            .build()
            .unwrap(),
        &keyed,
    );
    let reply = client.get(api.url("/items?x=1")).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert!(
        api.seen()[0]
            .query
            .as_deref()
            .is_some_and(|q| q.contains(QUERY_SECRET))
    );
    let recorded = spans.0.lock().unwrap().join("\n");
    assert!(
        recorded.contains("/items?x=1"),
        "the span has the URL: {recorded}"
    );
    assert!(!recorded.contains(QUERY_SECRET), "{recorded}");
}
