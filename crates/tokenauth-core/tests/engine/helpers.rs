//! Shared fixtures: the emulator (TLS + host overrides so the unchanged
//! `providers.toml` works), connections with the emulator's fake accounts,
//! and an engine with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokenauth_core::clock::ManualClock;
use tokenauth_core::store::{MemoryStore, TokenStore};
use tokenauth_core::{Connection, Providers, TokenAuth};
use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, Emulator, EmulatorConfig, REOB_DEMO_PASSWORD,
    REOB_DEMO_USERNAME, RecordedRequest, TWOBA_DEMO_CLIENT_ID, TWOBA_DEMO_CLIENT_SECRET,
    TWOBA_DEMO_PASSWORD, TWOBA_DEMO_USERNAME,
};

/// Every fake secret the seed connections use.
pub(crate) const SECRETS: [&str; 3] = [
    REOB_DEMO_PASSWORD,
    TWOBA_DEMO_PASSWORD,
    TWOBA_DEMO_CLIENT_SECRET,
];

/// The repository's `providers.toml`, unchanged.
pub(crate) fn seed_toml() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../providers.toml"))
        .expect("providers.toml")
}

pub(crate) fn seed_providers() -> Providers {
    Providers::from_toml("providers.toml", &seed_toml()).expect("seed providers load")
}

/// The emulator with its TLS listener on.
pub(crate) async fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig::default().tls(true))
        .await
        .expect("emulator starts")
}

/// A client builder that reaches the emulator under the real host names.
pub(crate) fn client_builder(emu: &Emulator) -> reqwest::ClientBuilder {
    emu.reqwest_client_builder().expect("tls on")
}

pub(crate) struct Setup {
    pub(crate) emu: Emulator,
    pub(crate) auth: TokenAuth,
    pub(crate) clock: Arc<ManualClock>,
}

/// An engine over `providers` against `emu`, with a manual clock, fast
/// retries and the given store.
pub(crate) fn engine_with(
    emu: &Emulator,
    providers: Providers,
    store: Arc<dyn TokenStore>,
    clock: Arc<ManualClock>,
) -> TokenAuth {
    TokenAuth::builder(providers)
        .http_client_builder(client_builder(emu))
        .clock(clock)
        .store(store)
        .retries(2)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(20))
        .failure_backoff(Duration::from_secs(1), Duration::from_secs(60))
        .build()
        .expect("engine builds")
}

/// The emulator and an engine over the unchanged seed providers.
pub(crate) async fn setup() -> Setup {
    setup_toml(&seed_toml()).await
}

pub(crate) async fn setup_toml(toml: &str) -> Setup {
    let emu = emulator().await;
    let clock = Arc::new(ManualClock::new());
    let providers = Providers::from_toml("providers.toml", toml).expect("providers load");
    let auth = engine_with(&emu, providers, Arc::new(MemoryStore::new()), clock.clone());
    Setup { emu, auth, clock }
}

pub(crate) fn reob() -> Connection {
    Connection::new("reob-demo")
        .with_input("username", REOB_DEMO_USERNAME)
        .with_secret("password", SecretString::from(REOB_DEMO_PASSWORD))
}

pub(crate) fn twoba() -> Connection {
    Connection::new("2ba-demo")
        .with_input("username", TWOBA_DEMO_USERNAME)
        .with_secret("password", SecretString::from(TWOBA_DEMO_PASSWORD))
        .with_input("client_id", TWOBA_DEMO_CLIENT_ID)
        .with_secret(
            "client_secret",
            SecretString::from(TWOBA_DEMO_CLIENT_SECRET),
        )
}

pub(crate) fn bro() -> Connection {
    Connection::new("bro-demo")
        .with_input("username", BRO_DEMO_USERNAME)
        .with_secret("token", SecretString::from(BRO_DEMO_PASSWORD))
}

/// A recorded token request as JSON with every secret replaced, for
/// snapshots. `extra` are further values to hide (e.g. refresh tokens).
pub(crate) fn redacted(req: &RecordedRequest, extra: &[&str]) -> serde_json::Value {
    let hide = |s: &str| -> String {
        let mut out = s.to_owned();
        for secret in SECRETS.iter().chain(extra).chain(&[BRO_DEMO_PASSWORD]) {
            if !secret.is_empty() {
                out = out.replace(secret, "[redacted]");
                let enc: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
                out = out.replace(&enc, "[redacted]");
            }
        }
        out
    };
    serde_json::json!({
        "method": req.method,
        "host": req.host,
        "path": req.path,
        "headers": req.headers.iter().map(|(k, v)| (k.clone(), hide(v))).collect::<Vec<_>>(),
        "body": hide(&req.body),
        "form": req.form.iter().map(|(k, v)| (k.clone(), hide(v))).collect::<Vec<_>>(),
    })
}

/// Waits (polling, at most `max`) until `cond` holds.
pub(crate) async fn eventually(max: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < max {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// Asserts that `text` contains none of the fake secrets (and none of
/// `extra`).
#[track_caller]
pub(crate) fn assert_no_secret(text: &str, extra: &[&str]) {
    for s in SECRETS.iter().chain(&[BRO_DEMO_PASSWORD]).chain(extra) {
        assert!(
            s.is_empty() || !text.contains(s),
            "a secret leaked into: {text}"
        );
    }
}

/// The tests name providers by id: `auth.credential_of("twoba", Some(&conn))`
/// is `auth.provider("twoba")?.credential(Some(&conn))`.
#[allow(dead_code)]
pub(crate) trait CredentialOf {
    async fn credential_of(
        &self,
        provider: &str,
        connection: Option<&Connection>,
    ) -> Result<tokenauth_core::Credential, tokenauth_core::Error>;
}

impl CredentialOf for TokenAuth {
    async fn credential_of(
        &self,
        provider: &str,
        connection: Option<&Connection>,
    ) -> Result<tokenauth_core::Credential, tokenauth_core::Error> {
        self.provider(provider)?.credential(connection).await
    }
}
