//! Micro benchmarks (criterion) of the token engine's hot path and of the
//! description language.
//!
//! Run: `cargo bench -p tokenauth-core --bench hot_path` (add a filter such as
//! `-- hot_path/` to run one group). A measurement, not a test: `cargo test`
//! neither builds nor runs it.
//!
//! - `hot_path/fresh_hit_1_thread`: `ProviderHandle::credential(..)` (the
//!   handle looked up once) for a cached,
//!   fresh token plus `Credential::apply_to_headers` (one `HeaderValue`
//!   clone), polled once on one thread (a fresh hit never waits).
//! - `hot_path/fresh_hit_2_threads_contended`: the same on two OS threads at
//!   once, same connection; the time is the wall time per call of each thread.
//! - `hot_path/fresh_hit_64_tasks`: 64 Tokio tasks on a 2-worker runtime, same
//!   connection, awaiting `credential`; the time is the wall time divided by
//!   the calls of all tasks together (the inverse of the throughput).
//! - `hot_path/system_clock_now`: one read of the default clock, for scale.
//! - `route/seed_url`: routing a parsed URL among the three seed providers;
//!   `route/seed_url_in_catalog_403`: the same with 400 other providers
//!   described first (300 with a host each, 100 with a per-tenant host);
//!   `exchange/dot_segments`: the adapters' first step
//!   (`TokenAuth::exchange`: extensions, routing, caller-wins) for an
//!   `http::Request` whose raw path must be resolved first (rare).
//! - `config/load_providers_toml`: parsing and validating the repository's
//!   `providers.toml`; `config/load_catalog_403`: the same catalog.
//! - `template/render_*`: rendering an inject template.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use secrecy::SecretString;
use tokenauth_core::clock::{Clock, SystemClock};
use tokenauth_core::{Connection, Credential, ProviderHandle, Providers, TokenAuth};
use tokenauth_core::{Template, Var};
use tokenauth_emulator::{Emulator, EmulatorConfig, Host, REOB_DEMO_PASSWORD, REOB_DEMO_USERNAME};

const PROVIDER: &str = "reobtimaal";

struct Fixture {
    rt: tokio::runtime::Runtime,
    _emu: Emulator,
    auth: TokenAuth,
    conn: Connection,
}

/// An engine with one REOBtimaal-like provider against the emulator (plain
/// HTTP on loopback) and one token already fetched.
fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (emu, auth, conn) = rt.block_on(async {
        let emu = Emulator::start(EmulatorConfig::default())
            .await
            .expect("emulator");
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
        auth.provider(PROVIDER).unwrap().credential(Some(&conn))
            .await
            .expect("first fetch");
        (emu, auth, conn)
    });
    Fixture {
        rt,
        _emu: emu,
        auth,
        conn,
    }
}

/// One fresh hit, polled once: a fresh cached token is returned without
/// waiting, so the future must be ready at once.
#[inline(always)]
fn hit(provider: &ProviderHandle, conn: &Connection, headers: &mut http::HeaderMap) {
    let cred: Credential = provider
        .credential(Some(conn))
        .now_or_never()
        .expect("a fresh hit is ready at once")
        .expect("hit");
    cred.apply_to_headers(headers);
}

fn hot_path(c: &mut Criterion) {
    let f = fixture();
    let _rt = f.rt.enter();
    let mut g = c.benchmark_group("hot_path");
    g.measurement_time(Duration::from_secs(4));

    g.bench_function("fresh_hit_1_thread", |b| {
        let mut headers = http::HeaderMap::new();
        let provider = f.auth.provider(PROVIDER).unwrap();
        b.iter(|| hit(&provider, &f.conn, &mut headers));
    });

    g.bench_function("fresh_hit_2_threads_contended", |b| {
        b.iter_custom(|iters| {
            let barrier = Arc::new(Barrier::new(2));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let provider = f.auth.provider(PROVIDER).unwrap();
                    let (conn, barrier) = (f.conn.clone(), barrier.clone());
                    let handle = f.rt.handle().clone();
                    std::thread::spawn(move || {
                        let _rt = handle.enter();
                        let mut headers = http::HeaderMap::new();
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..iters {
                            hit(&provider, &conn, &mut headers);
                        }
                        start.elapsed()
                    })
                })
                .collect();
            let times: Vec<Duration> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            times.into_iter().max().unwrap()
        });
    });

    g.bench_function("fresh_hit_64_tasks", |b| {
        const TASKS: u64 = 64;
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(TASKS);
            f.rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let provider = f.auth.provider(PROVIDER).unwrap();
                        let conn = f.conn.clone();
                        tokio::spawn(async move {
                            let mut headers = http::HeaderMap::new();
                            for i in 0..per_task {
                                let cred = provider.credential(Some(&conn)).await.unwrap();
                                cred.apply_to_headers(&mut headers);
                                if i % 64 == 63 {
                                    // Let the other tasks on this worker run.
                                    tokio::task::yield_now().await;
                                }
                            }
                            black_box(headers);
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                start.elapsed()
            })
            .mul_f64(iters as f64 / (per_task * TASKS) as f64)
        });
    });

    g.bench_function("system_clock_now", |b| {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        b.iter(|| black_box(clock.now()));
    });
    g.finish();

    // Nothing but the one token request of the fixture.
    assert_eq!(f.auth.stats().fetches, 1);
}

/// The repository's `providers.toml`.
fn seeds_toml() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../providers.toml");
    std::fs::read_to_string(path).expect("providers.toml")
}

/// A catalog: the seed providers after 300 API-key providers with a host
/// each and 100 with a per-tenant host (`{{ inputs.tenant }}.svcN…`).
fn catalog_toml() -> String {
    let mut toml = String::new();
    for n in 0..400 {
        let (api, tenant) = if n < 300 {
            (
                format!("https://api{n}.example.com/v{}/things/", n % 3 + 1),
                "",
            )
        } else {
            (
                format!("https://{{{{ inputs.tenant }}}}.svc{n}.example.com/api/v1/"),
                "inputs.tenant = { env = \"TENANT_NAME\", default = \"acme\" }\n",
            )
        };
        toml.push_str(&format!(
            "[providers.catalog-{n}]\napi = [\"{api}\"]\n{tenant}\
             inputs.key = {{ env = \"CATALOG_{n}_KEY\", default = \"unused\" }}\n\
             inject = {{ header = \"X-Api-Key\", value = \"{{{{ inputs.key }}}}\" }}\n"
        ));
    }
    toml + &seeds_toml()
}

fn config(c: &mut Criterion) {
    let src = seeds_toml();
    c.bench_function("config/load_providers_toml", |b| {
        b.iter(|| Providers::from_toml("providers.toml", black_box(&src)).expect("loads"));
    });
    let catalog = catalog_toml();
    c.bench_function("config/load_catalog_403", |b| {
        b.iter(|| Providers::from_toml("catalog.toml", black_box(&catalog)).expect("loads"));
    });
}

fn template(c: &mut Criterion) {
    let bearer = Template::parse("bearer {{ token.access }}").unwrap();
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZW5hbnQtNyIsImV4cCI6MTkwMDAwMDAwMH0.c2lnbmF0dXJl";
    c.bench_function("template/render_bearer", |b| {
        b.iter(|| {
            bearer
                .render(|v| matches!(v, Var::TokenAccess).then_some(black_box(token)))
                .unwrap()
        });
    });
    let form =
        Template::parse("{{ inputs.username }}|{{ inputs.client_id }}:{{ inputs.password }}")
            .unwrap();
    c.bench_function("template/render_three_inputs", |b| {
        b.iter(|| {
            form.render(|v| match v {
                Var::Input(n) if n == "username" => Some(black_box("demo@2ba.example")),
                Var::Input(n) if n == "client_id" => Some("tokenauth-demo"),
                Var::Input(_) => Some("hunter2"),
                _ => None,
            })
            .unwrap()
        });
    });
}

fn route(c: &mut Criterion) {
    let providers =
        Providers::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../providers.toml"))
            .expect("providers.toml");
    let auth = TokenAuth::builder(providers).build().expect("engine");
    let plain = url::Url::parse(
        "https://api.2ba.nl/1/json/Product/DetailsForProduct?gln=8711406&productcode=1",
    )
    .unwrap();
    c.bench_function("route/seed_url", |b| {
        b.iter(|| black_box(auth.route(black_box(&plain)).is_some()))
    });
    // The same URL, the seeds described after 400 other providers.
    let catalog = Providers::from_toml("catalog.toml", &catalog_toml()).expect("catalog");
    let in_catalog = TokenAuth::builder(catalog).build().expect("engine");
    c.bench_function("route/seed_url_in_catalog_403", |b| {
        b.iter(|| black_box(in_catalog.route(black_box(&plain)).is_some()))
    });
    // The adapters' first step (extensions, route, caller-wins check) on a
    // path with dot segments, as a tower request may carry it. The request
    // is moved in, so each iteration gets a fresh copy (not timed).
    let dotted = || {
        http::Request::get(
            "https://api.2ba.nl/1/json/x/../Product/%2e/DetailsForProduct?gln=8711406",
        )
        .body(())
        .unwrap()
    };
    c.bench_function("exchange/dot_segments", |b| {
        b.iter_batched(
            dotted,
            |request| black_box(auth.exchange(request, None, None).is_ok()),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, hot_path, config, template, route);
criterion_main!(benches);
