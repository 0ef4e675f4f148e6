//! Real worker processes sharing one real `redis-server`: the engine's
//! cross-process single-flight and its failure modes, end to end.
//!
//! Each worker is this test binary run again with `TOKENAUTH_TEST_CHILD`
//! set (the `child` test below does nothing without it): an engine over a
//! `RedisStore`, callers asking for 2BA's token against the emulator (which
//! runs in the parent, on plain http on loopback, and counts token requests
//! by grant and every reuse of a rotated refresh token). A worker prints one
//! `RESULT {json}` line: its calls, errors and engine counters.
//!
//! The assertions are counts (token requests, reuse, caller errors), never
//! timings; lifetimes and lease TTLs are short so a run takes seconds.

mod helpers;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use helpers::RedisServer;
use secrecy::SecretString;
use tokenauth_core::{Connection, TokenAuth};
use tokenauth_emulator::{
    Emulator, EmulatorConfig, Provider, TWOBA_DEMO_CLIENT_ID, TWOBA_DEMO_CLIENT_SECRET,
    TWOBA_DEMO_PASSWORD, TWOBA_DEMO_USERNAME,
};
use tokenauth_redis::RedisStore;

const CHILD: &str = "TOKENAUTH_TEST_CHILD";
/// A fixed test key: these tests look for secrets in Redis in clear.
const STORE_KEY: &str = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// 2BA as in `providers.toml`, its URLs on the emulator's plain http port.
fn providers_toml(emulator: &str) -> String {
    format!(
        r#"[providers.twoba]
api = ["{emulator}/2ba/"]
inputs.username = {{}}
inputs.password = {{ secret = true }}
inputs.client_id = {{}}
inputs.client_secret = {{ secret = true }}

[providers.twoba.login]
url = "{emulator}/2ba-authorize/OAuth/Token"
fields = {{ grant_type = "password", username = "{{{{ inputs.username }}}}", password = "{{{{ inputs.password }}}}", client_id = "{{{{ inputs.client_id }}}}", client_secret = "{{{{ inputs.client_secret }}}}" }}

[providers.twoba.refresh]
rotate = true
on_error = {{ status = [400], action = "login" }}
fields = {{ grant_type = "refresh_token", refresh_token = "{{{{ token.refresh }}}}", client_id = "{{{{ inputs.client_id }}}}", client_secret = "{{{{ inputs.client_secret }}}}" }}

[providers.twoba.response]
access_token = "/access_token"
refresh_token = "/refresh_token"
expires_in = "/expires_in"

[providers.twoba.inject]
header = "Authorization"
value = "Bearer {{{{ token.access }}}}"
"#
    )
}

fn connection() -> Connection {
    Connection::new("tenant-7")
        .with_input("username", TWOBA_DEMO_USERNAME)
        .with_secret("password", SecretString::from(TWOBA_DEMO_PASSWORD))
        .with_input("client_id", TWOBA_DEMO_CLIENT_ID)
        .with_secret(
            "client_secret",
            SecretString::from(TWOBA_DEMO_CLIENT_SECRET),
        )
}

// ------------------------------------------------------------------ worker

/// The worker process; a no-op in a normal test run.
#[test]
fn child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(worker(&mode));
    println!("RESULT {result}");
}

fn env_ms(name: &str) -> Duration {
    let value = std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    Duration::from_millis(value.parse().unwrap())
}

async fn worker(mode: &str) -> serde_json::Value {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let store = RedisStore::builder(var("TEST_REDIS_URL"))
        .key_prefix(var("TEST_PREFIX"))
        .timeout(Duration::from_millis(500))
        .build()
        .await
        .expect("Redis store");
    let providers =
        tokenauth_core::Providers::from_toml("t.toml", &providers_toml(&var("TEST_EMULATOR")))
            .unwrap();
    let auth = TokenAuth::builder(providers)
        .store(Arc::new(store))
        .lease_ttl(env_ms("TEST_LEASE_MS"))
        .store_timeout(Duration::from_millis(500))
        .retries(0)
        .failure_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .build()
        .unwrap();
    let conn = connection();
    let handle = auth.provider("twoba").unwrap();
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let calls = Arc::new(AtomicU64::new(0));
    if mode == "renew" {
        // A new token now, in place of the one in the store: this worker
        // takes the lease and fetches (or waits for whoever holds it).
        let first = handle.credential(Some(&conn)).await;
        let renewed = match first {
            Ok(first) => {
                handle.invalidate(Some(&conn), &first).await;
                handle.credential(Some(&conn)).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        calls.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = renewed {
            errors.lock().unwrap().push(e.to_string());
        }
    }
    let until = Instant::now() + env_ms("TEST_DURATION_MS");
    let workers = (0..4).map(|_| {
        let (auth, conn, errors, calls) =
            (auth.clone(), conn.clone(), errors.clone(), calls.clone());
        tokio::spawn(async move {
            let handle = auth.provider("twoba").unwrap();
            while Instant::now() < until {
                calls.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = handle.credential(Some(&conn)).await {
                    errors.lock().unwrap().push(e.to_string());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    });
    for w in workers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let stats = auth.stats();
    let errors = errors.lock().unwrap();
    serde_json::json!({
        "calls": calls.load(Ordering::Relaxed),
        "errors": errors.len(),
        "first_errors": errors.iter().take(3).collect::<Vec<_>>(),
        "token_requests": stats.token_requests,
        "adopted": stats.adopted,
        "lease_waits": stats.lease_waits,
    })
}

// ------------------------------------------------------------------ parent

struct Run {
    redis: RedisServer,
    emulator: Emulator,
    prefix: String,
}

impl Run {
    fn new(config: EmulatorConfig) -> Run {
        Run {
            redis: RedisServer::start(),
            emulator: Emulator::start_on_own_runtime(config, 2).expect("emulator starts"),
            prefix: format!("t{}", fastrand::u32(..)),
        }
    }

    /// A worker process: `mode` "serve" (callers for `duration`) or "renew"
    /// (one renewal first).
    fn spawn(&self, mode: &str, lease: Duration, duration: Duration) -> Worker {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, mode)
            .env("TEST_REDIS_URL", self.redis.url())
            .env("TEST_PREFIX", &self.prefix)
            .env("TEST_EMULATOR", self.emulator.base_url())
            .env("TEST_LEASE_MS", lease.as_millis().to_string())
            .env("TEST_DURATION_MS", duration.as_millis().to_string())
            .env("TOKENAUTH_STORE_KEY", STORE_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the worker starts");
        Worker { child }
    }

    fn twoba(&self) -> tokenauth_emulator::TokenStats {
        self.emulator.stats().twoba.token
    }

    /// Waits (bounded) until `cond` holds.
    fn until(&self, what: &str, cond: impl Fn(&Run) -> bool) {
        let started = Instant::now();
        while !cond(self) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

struct Worker {
    child: Child,
}

impl Worker {
    /// Its `RESULT` line, once it has exited.
    fn result(mut self) -> serde_json::Value {
        let stdout = self.child.stdout.take().unwrap();
        let line = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // libtest may print `test child ... ` on the same line first.
            .find_map(|l| l.split_once("RESULT ").map(|(_, json)| json.to_owned()));
        let status = self.child.wait().unwrap();
        let line = line.unwrap_or_else(|| panic!("the worker printed no result ({status})"));
        serde_json::from_str(&line).unwrap()
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn errors(results: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    results.iter().filter(|r| r["errors"] != 0).collect()
}

#[test]
fn processes_share_one_token_and_never_reuse_a_refresh_token() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    // 3 s tokens: renewed 1.5 s before expiry, so every ~1.5 s.
    let run = Run::new(EmulatorConfig::default().twoba_access_lifetime(Duration::from_secs(3)));
    let started = Instant::now();
    let workers: Vec<Worker> = (0..4)
        .map(|_| run.spawn("serve", Duration::from_secs(2), Duration::from_secs(5)))
        .collect();
    let results: Vec<_> = workers.into_iter().map(Worker::result).collect();
    let elapsed = started.elapsed();
    assert!(errors(&results).is_empty(), "{results:?}");
    let token = run.twoba();
    assert_eq!(
        token.requests_by_grant.password, 1,
        "one login for all: {token:?}"
    );
    assert_eq!(token.refresh_reuse, 0, "{token:?}");
    assert_eq!(token.status(400), 0, "{token:?}");
    // One refresh per renewal window for all four processes (one process
    // alone would make as many), not one per process.
    let windows = elapsed.as_secs_f64() / 1.5;
    let refreshes = token.requests_by_grant.refresh_token as f64;
    assert!(
        refreshes >= 1.0 && refreshes <= windows + 1.0,
        "{refreshes} refreshes in {elapsed:?}: {token:?}"
    );
    let adopted: u64 = results.iter().map(|r| r["adopted"].as_u64().unwrap()).sum();
    assert!(adopted >= 3, "{results:?}");

    // Nothing the run issued or used is in Redis in clear: not the inputs,
    // not a refresh token, not the connection id.
    let mut secrets: Vec<String> = run
        .emulator
        .recorded_token_requests()
        .iter()
        .filter_map(|r| r.form_field("refresh_token").map(str::to_owned))
        .collect();
    assert!(!secrets.is_empty());
    secrets.extend([TWOBA_DEMO_PASSWORD, TWOBA_DEMO_CLIENT_SECRET, "tenant-7"].map(str::to_owned));
    let everything = redis_contents(&run.redis);
    for secret in &secrets {
        assert!(
            !everything.contains(secret.as_str()),
            "a secret is in Redis in clear"
        );
    }
}

/// Every key and value in Redis, as text.
fn redis_contents(server: &RedisServer) -> String {
    let mut conn = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("a connection to Redis");
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    assert!(!keys.is_empty());
    let mut everything = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "hash" => redis::cmd("HGETALL").arg(&key).query(&mut conn).unwrap(),
            "string" => vec![redis::cmd("GET").arg(&key).query(&mut conn).unwrap()],
            other => panic!("unexpected Redis type {other} of {key}"),
        };
        everything.push_str(&key);
        for value in values {
            everything.push_str(&String::from_utf8_lossy(&value));
        }
    }
    everything
}

/// The holder of the lease is killed in the middle of its token request:
/// another process takes over after the lease's deadline, and a process that
/// holds a valid token sees no error meanwhile. Killed before the provider
/// spent the refresh token, the next process refreshes with it; killed after
/// (the reply was on its way), the next one finds it spent and logs in.
#[test]
fn a_killed_lease_holder_is_taken_over_after_its_lease_runs_out() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let run = Run::new(EmulatorConfig::default());
    let lease = Duration::from_secs(1);
    // A serving process with a valid token for the whole test.
    let serving = run.spawn("serve", lease, Duration::from_secs(8));
    run.until("the first login", |r| {
        r.twoba().requests == 1 && r.twoba().in_flight == 0
    });

    // 1. Killed while the request waits at the provider (not yet processed).
    run.emulator
        .set_token_latency(Provider::Twoba, Duration::from_secs(4));
    let holder = run.spawn("renew", lease, Duration::ZERO);
    run.until("the holder's refresh", |r| r.twoba().in_flight == 1);
    holder.kill();
    run.emulator
        .set_token_latency(Provider::Twoba, Duration::ZERO);
    let next = run.spawn("renew", lease, Duration::ZERO).result();
    assert_eq!(next["errors"], 0, "{next}");
    assert!(
        next["lease_waits"].as_u64().unwrap() >= 1,
        "it found the lease held: {next}"
    );
    let token = run.twoba();
    assert_eq!(
        (token.requests_by_grant.password, token.refresh_reuse),
        (1, 0),
        "{token:?}"
    );

    // 2. Killed after the provider spent the refresh token, before the reply.
    run.emulator
        .set_token_reply_delay(Provider::Twoba, Duration::from_secs(4));
    let spent = run.twoba().requests_by_grant.refresh_token + 1;
    let holder = run.spawn("renew", lease, Duration::ZERO);
    run.until("the holder's refresh", |r| {
        r.twoba().requests_by_grant.refresh_token == spent
    });
    std::thread::sleep(Duration::from_millis(100)); // processed, reply held back
    holder.kill();
    run.emulator
        .set_token_reply_delay(Provider::Twoba, Duration::ZERO);
    let next = run.spawn("renew", lease, Duration::ZERO).result();
    assert_eq!(next["errors"], 0, "{next}");
    let token = run.twoba();
    // The one unavoidable reuse: nobody learned the spent token's successor.
    assert_eq!(token.refresh_reuse, 1, "{token:?}");
    assert_eq!(
        token.requests_by_grant.password, 2,
        "it logged in: {token:?}"
    );

    let serving = serving.result();
    assert_eq!(serving["errors"], 0, "{serving}");
}

/// Redis stops while the processes' tokens are due for renewal, and comes
/// back empty (no persistence): callers see no error while their tokens are
/// valid (the renewals fail with StoreUnavailable, as 2BA rotates, and are
/// retried), and once it is back the processes converge on one token again
/// without a restart.
#[test]
fn a_redis_restart_costs_callers_nothing_and_processes_converge_again() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    // 8 s tokens: renewed from 4 s before expiry.
    let mut run = Run::new(EmulatorConfig::default().twoba_access_lifetime(Duration::from_secs(8)));
    let lease = Duration::from_secs(2);
    let serving: Vec<Worker> = (0..3)
        .map(|_| run.spawn("serve", lease, Duration::from_secs(9)))
        .collect();
    run.until("the first login", |r| {
        r.twoba().requests == 1 && r.twoba().in_flight == 0
    });
    let login = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    run.redis.stop();
    // Down across the start of the renewal window (4 s after the login).
    std::thread::sleep(Duration::from_millis(2500));
    run.redis.restart();
    let down_until = login.elapsed();
    let serving: Vec<_> = serving.into_iter().map(Worker::result).collect();
    assert!(errors(&serving).is_empty(), "{serving:?}");
    let token = run.twoba();
    assert!(
        down_until < Duration::from_secs(8),
        "the test outran its tokens: {down_until:?}"
    );
    // Redis came back empty: one login for all three, no second one.
    assert_eq!(token.requests_by_grant.password, 2, "{token:?}");
    assert_eq!(token.refresh_reuse, 0, "{token:?}");
    assert_eq!(token.status(400), 0, "{token:?}");
}

/// FLUSHALL in the middle of a run (or eviction): the token is fetched again
/// once, nothing breaks.
#[test]
fn flushall_mid_run_costs_one_login() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let run = Run::new(EmulatorConfig::default().twoba_access_lifetime(Duration::from_secs(3)));
    let lease = Duration::from_secs(2);
    let workers: Vec<Worker> = (0..3)
        .map(|_| run.spawn("serve", lease, Duration::from_secs(5)))
        .collect();
    run.until("the first login", |r| r.twoba().requests == 1);
    std::thread::sleep(Duration::from_millis(500));
    let mut redis = redis::Client::open(run.redis.url())
        .and_then(|c| c.get_connection())
        .expect("a connection to Redis");
    redis::cmd("FLUSHALL")
        .query::<()>(&mut redis)
        .expect("FLUSHALL");
    let results: Vec<_> = workers.into_iter().map(Worker::result).collect();
    assert!(errors(&results).is_empty(), "{results:?}");
    let token = run.twoba();
    assert_eq!(
        token.requests_by_grant.password, 2,
        "logged in again once: {token:?}"
    );
    assert_eq!(token.refresh_reuse, 0, "{token:?}");
}
