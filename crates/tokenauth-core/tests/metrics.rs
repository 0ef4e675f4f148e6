//! Per-provider counters through the `metrics` facade (feature `metrics`):
//! `cargo test -p tokenauth-core --features metrics --test metrics`. Its own
//! test binary: it installs the global recorder.
#![cfg(feature = "metrics")]

#[allow(dead_code, unreachable_pub)]
#[path = "engine/helpers.rs"]
mod helpers;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

use helpers::*;

/// A recorder that keeps every counter by `name{provider}`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<BTreeMap<String, Arc<Value>>>>);

#[derive(Default)]
struct Value(AtomicU64);

impl CounterFn for Value {
    fn increment(&self, by: u64) {
        self.0.fetch_add(by, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

impl Recorder {
    fn get(&self, name: &str, provider: &str) -> u64 {
        let key = format!("{name}{{{provider}}}");
        self.0
            .lock()
            .unwrap()
            .get(&key)
            .map_or(0, |v| v.0.load(Ordering::Relaxed))
    }
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let provider = key
            .labels()
            .find(|l| l.key() == "provider")
            .map(|l| l.value().to_owned())
            .unwrap_or_default();
        let name = format!("{}{{{provider}}}", key.name());
        let value = self.0.lock().unwrap().entry(name).or_default().clone();
        Counter::from_arc(value)
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::test]
async fn each_provider_counts_its_hits_fetches_failures_and_rejections() {
    let recorder = Recorder::default();
    metrics::set_global_recorder(recorder.clone()).unwrap();

    let s = setup().await;
    let p = s.auth.provider("reobtimaal").unwrap();
    let conn = reob();
    let first = p.credential(Some(&conn)).await.unwrap();
    for _ in 0..3 {
        p.credential(Some(&conn)).await.unwrap();
    }
    assert_eq!(recorder.get("tokenauth_fetches_total", "reobtimaal"), 1);
    assert_eq!(recorder.get("tokenauth_hits_total", "reobtimaal"), 3);

    // A rejection (401) renews: one more fetch.
    p.after_response(http::StatusCode::UNAUTHORIZED, Some(&conn), &first, true)
        .await
        .unwrap();
    assert_eq!(recorder.get("tokenauth_rejections_total", "reobtimaal"), 1);
    assert_eq!(recorder.get("tokenauth_fetches_total", "reobtimaal"), 2);

    // A failure is counted for its own provider only.
    let wrong = tokenauth_core::Connection::new("wrong")
        .with_input("username", "nobody")
        .with_secret("password", "wrong");
    p.credential(Some(&wrong)).await.unwrap_err();
    assert_eq!(recorder.get("tokenauth_failures_total", "reobtimaal"), 1);
    assert_eq!(recorder.get("tokenauth_failures_total", "twoba"), 0);
    assert_eq!(recorder.get("tokenauth_hits_total", "twoba"), 0);
}
