//! The token fetch runs in a task of its own; its `tokenauth.fetch` span
//! follows from the span of the request that caused it, so a trace (e.g.
//! OpenTelemetry) shows the fetch under that request. Its own test binary:
//! it installs a global `tracing` subscriber.

#[allow(dead_code, unreachable_pub)]
#[path = "engine/helpers.rs"]
mod helpers;

use std::sync::{Arc, Mutex};

use tracing::Instrument as _;
use tracing::span::Id;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

use helpers::*;

/// Records (span, the span it follows from) by name.
#[derive(Clone, Default)]
struct Links(Arc<Mutex<Vec<(String, String)>>>);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Links {
    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        let name = |id: &Id| ctx.span(id).map_or("?".to_owned(), |s| s.name().to_owned());
        self.0.lock().unwrap().push((name(span), name(follows)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fetch_span_follows_from_the_request_that_caused_it() {
    let links = Links::default();
    let subscriber = tracing_subscriber::registry().with(links.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let s = setup().await;
    let request = tracing::info_span!("workflow.step");
    s.auth
        .credential_of("reobtimaal", Some(&reob()))
        .instrument(request)
        .await
        .unwrap();
    let links = links.0.lock().unwrap().clone();
    assert_eq!(
        links,
        [("tokenauth.fetch".to_owned(), "workflow.step".to_owned())],
        "one fetch, linked to the step that caused it"
    );
}
