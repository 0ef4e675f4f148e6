//! The hot path does not change with a Redis store: a fresh cache hit with
//! a `RedisStore` engine costs what it costs with the default store,
//! because a hit never calls the store.
//!
//! Run: `cargo bench -p tokenauth-redis --bench hot_path` (needs
//! `redis-server` on PATH: `apt-get install -y redis-server`; it is started
//! on a free loopback port and stopped at the end). A measurement, not a
//! test: `cargo test` neither builds nor runs it.
//!
//! `fresh_hit/memory` and `fresh_hit/redis`: `ProviderHandle::credential`
//! for a cached, fresh token plus `Credential::apply_to_headers`, polled
//! once on one thread, the same as `tokenauth-core`'s
//! `hot_path/fresh_hit_1_thread`.

#[path = "../tests/helpers/mod.rs"]
mod helpers;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use secrecy::SecretString;
use tokenauth_core::{Connection, Providers, TokenAuth};
use tokenauth_emulator::{Emulator, EmulatorConfig, Host, REOB_DEMO_PASSWORD, REOB_DEMO_USERNAME};
use tokenauth_redis::{EncryptionKey, Keyring, RedisStore};

fn bench(c: &mut Criterion) {
    let redis = helpers::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let emu = rt
        .block_on(Emulator::start(EmulatorConfig::default()))
        .expect("emulator");
    let toml = format!(
        r#"
[providers.reobtimaal]
api = ["{api}"]
inputs.username = {{}}
inputs.password = {{ secret = true }}
login.url = "{token}"
login.fields = {{ "grant-type" = "password", username = "{{{{ inputs.username }}}}", Password = "{{{{ inputs.password }}}}" }}
expiry.ttl = "60m"
inject = {{ header = "Authorization", value = "bearer {{{{ token.access }}}}" }}
"#,
        api = emu.url(Host::Reobtimaal, "/api/"),
        token = emu.url(Host::Reobtimaal, "/api/Token"),
    );
    let conn = Connection::new("bench")
        .with_input("username", REOB_DEMO_USERNAME)
        .with_secret("password", SecretString::from(REOB_DEMO_PASSWORD));
    let providers = || Providers::from_toml("bench.toml", &toml).expect("providers");
    let memory = TokenAuth::builder(providers()).build().expect("engine");
    let store = rt
        .block_on(
            RedisStore::builder(redis.url())
                .encryption(Keyring::new(EncryptionKey::new("k1", &[7; 32]).unwrap()))
                .build(),
        )
        .expect("Redis store");
    let shared = TokenAuth::builder(providers())
        .store(Arc::new(store))
        .build()
        .expect("engine");

    let mut group = c.benchmark_group("fresh_hit");
    for (name, auth) in [("memory", &memory), ("redis", &shared)] {
        let handle = auth.provider("reobtimaal").unwrap();
        rt.block_on(handle.credential(Some(&conn)))
            .expect("first fetch");
        group.bench_function(name, |b| {
            let mut headers = http::HeaderMap::new();
            b.iter(|| {
                let credential = handle
                    .credential(black_box(Some(&conn)))
                    .now_or_never()
                    .expect("a fresh hit never waits")
                    .expect("credential");
                credential.apply_to_headers(&mut headers);
                black_box(&headers);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
