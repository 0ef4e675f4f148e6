//! Rough cost of the hot path: a fresh cache hit (`credential()`) plus
//! attaching the header (one `HeaderValue` clone).
//!
//! Run: `cargo bench -p tokenauth-core --bench hot_path`
//! (prints ns/op; a measurement, not a test.)

use std::time::Instant;

use secrecy::SecretString;
use tokenauth_core::{Connection, Providers, TokenAuth};
use tokenauth_emulator::{Emulator, EmulatorConfig, Host, REOB_DEMO_PASSWORD, REOB_DEMO_USERNAME};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let emu = Emulator::start(EmulatorConfig::default()).await.expect("emulator");
        let toml = format!(
            r#"
[providers.reobtimaal]
api = ["{api}"]
inputs.username = {{ env = "REOBTIMAAL_USERNAME" }}
inputs.password = {{ env = "REOBTIMAAL_PASSWORD", secret = true }}
login.url = "{token}"
login.fields = {{ "grant-type" = "password", username = "{{{{ inputs.username }}}}", Password = "{{{{ inputs.password }}}}" }}
expiry.ttl = "60m"
inject = {{ header = "Authorization", value = "bearer {{{{ token.access }}}}" }}
"#,
            api = emu.url(Host::Reobtimaal, "/api/"),
            token = emu.url(Host::Reobtimaal, "/api/Token"),
        );
        let providers = Providers::from_toml("bench.toml", &toml).expect("providers");
        let auth = TokenAuth::builder(providers).build().expect("engine");
        let conn = Connection::new("bench")
            .with_input("username", REOB_DEMO_USERNAME)
            .with_secret("password", SecretString::from(REOB_DEMO_PASSWORD));
        auth.credential("reobtimaal", Some(&conn)).await.expect("first fetch");

        const N: u32 = 2_000_000;
        for (label, tasks) in [("1 task", 1u32), ("2 tasks in parallel", 2)] {
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    let (auth, conn) = (auth.clone(), conn.clone());
                    tokio::spawn(async move {
                        let handle = auth.provider("reobtimaal").expect("provider");
                        let mut headers = http::HeaderMap::new();
                        for _ in 0..N {
                            let cred = handle.credential(Some(&conn)).await.expect("hit");
                            cred.apply_to_headers(&mut headers);
                        }
                        std::hint::black_box(headers);
                    })
                })
                .collect();
            for h in handles {
                h.await.expect("task");
            }
            let per_op = start.elapsed().as_nanos() as f64 / f64::from(N);
            println!("hot path (credential + header clone), {label}: {per_op:.0} ns/op (wall time per iteration of each task)");
        }
        assert_eq!(emu.stats().reobtimaal.token.requests, 1);

        // For comparison: the bare moka lookup the hot path is built on.
        let cache: moka::future::Cache<std::sync::Arc<str>, std::sync::Arc<u64>> =
            moka::future::Cache::builder().max_capacity(10_000).build();
        cache.insert(std::sync::Arc::from("bench"), std::sync::Arc::new(1)).await;
        let start = Instant::now();
        for _ in 0..N {
            std::hint::black_box(cache.get("bench").await);
        }
        let per_op = start.elapsed().as_nanos() as f64 / f64::from(N);
        println!("bare moka future::Cache::get, 1 task: {per_op:.0} ns/op");
    });
}
