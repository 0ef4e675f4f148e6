//! Secret leaks: every flow (success, each failure of the fault matrix, each
//! seed provider, through the reqwest middleware and the tower layer) runs
//! with `tracing` at TRACE captured by a global subscriber, and every error
//! is formatted with `{}`, `{:?}` and `{:#?}`; the `tokenauth` CLI runs its
//! subcommands as subprocesses with `-vvv`; and every committed `*.snap`
//! file is read. None of it may contain an input secret (the demo
//! passwords, the 2BA client secret, the BRO token password, raw,
//! percent-encoded, JSON-escaped or inside a Basic credential), an access or
//! refresh token the emulator issued, or a string shaped like one.
//!
//! Issue 11: a query credential (`inject.query`) too, through both adapters
//! (success, connection refused, timeout, `error_for_status()`, a redirect
//! loop, a redirect out of scope) and through `tokenauth request`/`test`.
//!
//! Its own test binary: it installs a global `tracing` subscriber.

mod helpers;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use secrecy::ExposeSecret;
use tokenauth::clock::ManualClock;
use tokenauth::prelude::*;
use tokenauth::store::StoreKey;
use tokenauth::{Connection, TokenAuth, auth_error};
use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, Emulator, EmulatorConfig, Provider, REOB_DEMO_PASSWORD,
    REOB_DEMO_USERNAME, ReplyFault, StatusFault, TWOBA_DEMO_CLIENT_ID, TWOBA_DEMO_CLIENT_SECRET,
    TWOBA_DEMO_PASSWORD, TWOBA_DEMO_USERNAME,
};
use tower::{Service, ServiceBuilder, ServiceExt};
use tracing_subscriber::fmt::MakeWriter;

use helpers::*;

// ------------------------------------------------------------ capture

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

/// Everything the flows printed or could print, and every token issued.
#[derive(Default)]
struct Evidence {
    /// Error renderings, `Debug` of credentials, connections and engines.
    text: String,
    /// Access and refresh tokens seen (to look for).
    tokens: Vec<String>,
}

impl Evidence {
    fn error(&mut self, what: &str, e: &(impl std::fmt::Display + std::fmt::Debug)) {
        let _ = writeln!(Sink(&mut self.text), "[{what}] {e}\n{e:?}\n{e:#?}");
    }

    fn debug(&mut self, what: &str, v: &impl std::fmt::Debug) {
        let _ = writeln!(Sink(&mut self.text), "[{what}] {v:?}\n{v:#?}");
    }

    fn text(&mut self, what: &str, t: &str) {
        let _ = writeln!(Sink(&mut self.text), "[{what}] {t}");
    }

    /// The access token of `provider`'s current credential for `conn`.
    async fn access_token(&mut self, auth: &TokenAuth, provider: &str, conn: &Connection) {
        let c = auth.credential_of(provider, Some(conn)).await.unwrap();
        if let Some(t) = c.access_token() {
            self.tokens.push(t.expose_secret().to_owned());
        }
        self.debug("credential", &c);
        self.debug("injection", c.injection());
    }

    /// Every refresh token the emulator received, and the one in the store.
    async fn refresh_tokens(&mut self, emu: &Emulator, auth: &TokenAuth, conn: &Connection) {
        for r in emu.recorded_token_requests() {
            if let Some(t) = r.form_field("refresh_token") {
                self.tokens.push(t.to_owned());
            }
        }
        let key = StoreKey {
            provider: "twoba",
            connection: conn.id(),
        };
        if let Some(t) = auth.store().read(&key).await.unwrap().refresh_token {
            self.tokens.push(t.expose_secret().to_owned());
        }
    }
}

struct Sink<'a>(&'a mut String);

impl std::io::Write for Sink<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.push_str(&String::from_utf8_lossy(b));
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The input secrets in the other forms they could take: the Basic
/// credential BRO sends, and client credentials as Basic.
fn derived_secrets() -> Vec<String> {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        b64(format!("{BRO_DEMO_USERNAME}:{BRO_DEMO_PASSWORD}")),
        b64(format!("{TWOBA_DEMO_CLIENT_ID}:{TWOBA_DEMO_CLIENT_SECRET}")),
        b64(format!("{REOB_DEMO_USERNAME}:{REOB_DEMO_PASSWORD}")),
        b64(format!("{TWOBA_DEMO_USERNAME}:{TWOBA_DEMO_PASSWORD}")),
    ]
}

/// Runs of 24 or more ASCII letters and digits with both letters and digits
/// in them: the shape of the emulator's tokens (40 and 48 characters), and
/// of most real ones. Lower-case hex (commit hashes in backtraces, digests)
/// is not a token shape.
fn token_shaped(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|run| {
            run.len() >= 24
                && run.bytes().any(|b| b.is_ascii_digit())
                && run.bytes().any(|b| b.is_ascii_alphabetic())
                && !run.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
        .collect()
}

#[track_caller]
fn assert_clean(what: &str, text: &str, tokens: &[String]) {
    let mut extra = tokens.to_vec();
    extra.extend(derived_secrets());
    assert_no_secret(what, text, &extra);
    if let Some(first) = token_shaped(text).first() {
        let at = text.find(first).unwrap_or(0);
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        panic!(
            "a token-shaped string in {what}: {first}\nin the line: {}",
            &text[line_start..line_end]
        );
    }
}

// ------------------------------------------------------------ the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_in_traces_errors_cli_output_or_snapshots() {
    let buf = Buf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(buf.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut ev = Evidence::default();
    successes_through_the_middleware(&mut ev).await;
    successes_through_the_tower_layer(&mut ev).await;
    failures_through_the_middleware(&mut ev).await;
    failures_through_the_tower_layer(&mut ev).await;
    query_credential_flows(&mut ev).await;
    let cli = cli_runs(&mut ev) + cli_query_runs(&mut ev).await;

    let traces = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        traces.contains("tokenauth.fetch")
            && traces.contains("token acquired")
            && traces.contains("token cache hit")
            && traces.contains("background renewal failed")
            && traces.contains("token acquisition failed")
            && traces.contains("a redirect took the credential out"),
        "the flows ran at TRACE: {}",
        &traces[..traces.len().min(2000)]
    );
    assert!(
        ev.tokens.len() >= 10,
        "tokens collected: {}",
        ev.tokens.len()
    );
    assert!(cli > 10, "CLI runs: {cli}");
    assert_clean("the TRACE output", &traces, &ev.tokens);
    assert_clean("the error renderings", &ev.text, &ev.tokens);

    let snapshots = snapshot_files(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(snapshots.len() > 20, "{snapshots:?}");
    for path in snapshots {
        let text = std::fs::read_to_string(&path).unwrap();
        assert_clean(&path.display().to_string(), &text, &ev.tokens);
    }
}

// ------------------------------------------------------------ flows

fn clocked(emu: &Emulator) -> (TokenAuth, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    (engine_clocked(emu, &seed_toml(), clock.clone()), clock)
}

async fn successes_through_the_middleware(ev: &mut Evidence) {
    let emu = emulator().await;
    let (auth, clock) = clocked(&emu);
    let client = middleware_client(&emu, &auth);
    for (id, method, url, conn, _) in seed_endpoints() {
        for _ in 0..3 {
            let r = client
                .request(method.clone(), url)
                .with_extension(conn.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{id}");
            ev.debug("response", &r);
            ev.text("body", &r.text().await.unwrap());
        }
        ev.access_token(&auth, id, &conn).await;
        ev.debug("connection", &conn);
    }
    // 2BA: a background refresh in the renewal window (rotating).
    clock.advance(Duration::from_secs(100));
    let conn = twoba();
    assert_eq!(
        client
            .get(TWOBA_API)
            .with_extension(conn.clone())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        eventually(Duration::from_secs(5), || emu.stats().twoba.token.requests
            == 2)
        .await
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    ev.access_token(&auth, "twoba", &conn).await;
    // A revoked token: 401, renewal, one retry.
    emu.revoke(Provider::Reobtimaal);
    assert_eq!(
        client
            .get(REOB_API)
            .with_extension(reob())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    ev.access_token(&auth, "reobtimaal", &reob()).await;
    ev.refresh_tokens(&emu, &auth, &conn).await;
    ev.debug("engine", &auth);
    ev.debug("stats", &auth.stats());
    ev.debug("client", &client);
}

type Body = Full<Bytes>;

async fn successes_through_the_tower_layer(ev: &mut Evidence) {
    let emu = emulator().await;
    let (auth, _clock) = clocked(&emu);
    let mut service = ServiceBuilder::new()
        .layer(auth.layer())
        .service(hyper_client::<Body>(&emu));
    for (id, method, url, conn, _) in seed_endpoints() {
        let mut request = http::Request::builder()
            .method(method)
            .uri(url)
            .body(Body::default())
            .unwrap();
        request.extensions_mut().insert(conn.clone());
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), 200, "{id}");
        ev.debug("response", &response);
        let _ = response.into_body().collect().await;
        ev.access_token(&auth, id, &conn).await;
    }
    emu.revoke(Provider::Twoba);
    let mut request = http::Request::get(TWOBA_API).body(Body::default()).unwrap();
    request.extensions_mut().insert(twoba());
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), 200, "renewed and retried");
    ev.access_token(&auth, "twoba", &twoba()).await;
    ev.refresh_tokens(&emu, &auth, &twoba()).await;
    ev.debug("service", &service);
}

/// Sets a fault on an emulator.
type Apply = Box<dyn Fn(&Emulator) + Send>;

/// Every fault of the matrix, each in a fresh emulator and engine.
fn faults() -> Vec<(&'static str, Provider, Apply)> {
    let status = |s: u16, after: Option<u64>| -> Apply {
        Box::new(move |e: &Emulator| {
            let mut f = StatusFault::new(s, 1000);
            if let Some(a) = after {
                f = f.retry_after(a);
            }
            e.fail_token_requests(Provider::Reobtimaal, f);
            e.fail_token_requests(Provider::Twoba, f);
        })
    };
    let reply = |f: ReplyFault| -> Apply {
        Box::new(move |e: &Emulator| {
            e.set_reply_fault(Provider::Reobtimaal, f, 1000);
            e.set_reply_fault(Provider::Twoba, f, 1000);
        })
    };
    let mut rows: Vec<(&'static str, Provider, Apply)> = Vec::new();
    for p in [Provider::Reobtimaal, Provider::Twoba] {
        rows.push(("500", p, status(500, None)));
        rows.push(("503", p, status(503, None)));
        rows.push(("429", p, status(429, Some(30))));
        rows.push((
            "timeout",
            p,
            Box::new(|e: &Emulator| {
                e.set_token_latency(Provider::Reobtimaal, Duration::from_secs(3));
                e.set_token_latency(Provider::Twoba, Duration::from_secs(3));
            }),
        ));
        rows.push(("closed", p, reply(ReplyFault::CloseWithoutReply)));
        rows.push(("malformed", p, reply(ReplyFault::MalformedJson)));
        rows.push(("truncated", p, reply(ReplyFault::TruncatedBody)));
        rows.push((
            "oversized",
            p,
            reply(ReplyFault::OversizedBody { bytes: 8 << 20 }),
        ));
        rows.push(("missing token", p, reply(ReplyFault::MissingToken)));
        rows.push(("wrong type", p, reply(ReplyFault::WrongTokenType)));
    }
    rows.push((
        "negative expires_in",
        Provider::Twoba,
        reply(ReplyFault::ExpiresIn { value: -5 }),
    ));
    rows.push((
        "huge expires_in",
        Provider::Twoba,
        reply(ReplyFault::ExpiresIn { value: i64::MAX }),
    ));
    rows
}

fn short_timeouts() -> String {
    seed_toml().replace(r#"timeout = "30s""#, r#"timeout = "300ms""#)
}

fn target(p: Provider) -> (&'static str, &'static str, Connection) {
    match p {
        Provider::Reobtimaal => ("reobtimaal", REOB_API, reob()),
        Provider::Twoba => ("twoba", TWOBA_API, twoba()),
        Provider::Bro => ("bro", BRO_API, bro()),
    }
}

async fn failures_through_the_middleware(ev: &mut Evidence) {
    for (name, p, apply) in faults() {
        let emu = emulator().await;
        let clock = Arc::new(ManualClock::new());
        let auth = engine_clocked(&emu, &short_timeouts(), clock.clone());
        let client = middleware_client(&emu, &auth);
        let (id, url, conn) = target(p);
        apply(&emu);
        let err = client
            .get(url)
            .with_extension(conn.clone())
            .send()
            .await
            .expect_err(name);
        let typed = auth_error(&err).unwrap_or_else(|| panic!("{name}: {err:?}"));
        ev.error(&format!("middleware {id} {name}"), &err);
        ev.error(&format!("typed {id} {name}"), typed);
        ev.debug("engine", &auth);
        let _ = id;
    }

    // Wrong password: a 400 whose body the scrubber must clean.
    let emu = emulator().await;
    let (auth, _) = clocked(&emu);
    let client = middleware_client(&emu, &auth);
    let wrong = Connection::new("wrong")
        .with_input("username", REOB_DEMO_USERNAME)
        .with_secret("password", format!("{REOB_DEMO_PASSWORD}-wrong"));
    let err = client
        .get(REOB_API)
        .with_extension(wrong)
        .send()
        .await
        .unwrap_err();
    ev.error("wrong password", &err);

    // Refresh 400 -> login, and a failing renewal while the token is valid.
    let emu = emulator().await;
    let (auth, clock) = clocked(&emu);
    let client = middleware_client(&emu, &auth);
    let conn = twoba();
    let get = || client.get(TWOBA_API).with_extension(conn.clone()).send();
    assert_eq!(get().await.unwrap().status(), 200);
    ev.access_token(&auth, "twoba", &conn).await;
    ev.refresh_tokens(&emu, &auth, &conn).await;
    emu.revoke(Provider::Twoba);
    clock.advance(Duration::from_secs(121));
    assert_eq!(get().await.unwrap().status(), 200);
    ev.access_token(&auth, "twoba", &conn).await;
    ev.refresh_tokens(&emu, &auth, &conn).await;
    emu.fail_token_requests(Provider::Twoba, StatusFault::new(503, 1000));
    clock.advance(Duration::from_secs(100));
    assert_eq!(get().await.unwrap().status(), 200);
    assert!(
        eventually(Duration::from_secs(5), || emu
            .stats()
            .twoba
            .token
            .status(503)
            == 3)
        .await
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get().await.unwrap().status(), 200, "the valid token stays");
    ev.refresh_tokens(&emu, &auth, &conn).await;
    ev.debug("engine", &auth);
}

async fn failures_through_the_tower_layer(ev: &mut Evidence) {
    for (name, p, apply) in faults() {
        let emu = emulator().await;
        let (auth, _) = (
            engine_clocked(&emu, &short_timeouts(), Arc::new(ManualClock::new())),
            (),
        );
        let mut service = ServiceBuilder::new()
            .layer(auth.layer())
            .service(hyper_client::<Body>(&emu));
        let (id, url, conn) = target(p);
        apply(&emu);
        let mut request = http::Request::get(url).body(Body::default()).unwrap();
        request.extensions_mut().insert(conn);
        let err = service
            .ready()
            .await
            .unwrap()
            .call(request)
            .await
            .expect_err(name);
        assert!(err.auth().is_some(), "{name}: {err:?}");
        ev.error(&format!("tower {id} {name}"), &err);
    }
}

// ------------------------------------------------------------ the CLI

/// The `tokenauth` binary next to this test binary (built by `cargo test
/// --workspace`, which builds every binary before running any test);
/// built here if it is missing.
fn cli_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let bin = dir.join(format!("tokenauth{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "-p", "tokenauth-cli", "--bin", "tokenauth"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the tokenauth binary failed");
    }
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p tokenauth-cli`",
        bin.display()
    );
    bin
}

/// Runs the CLI's subcommands against an emulator (on its own runtime),
/// with `-vvv`, successes and failures; returns how many ran.
fn cli_runs(ev: &mut Evidence) -> usize {
    let bin = cli_binary();
    let emu = Emulator::start_on_own_runtime(EmulatorConfig::default().tls(true), 1).unwrap();
    let ca = std::env::temp_dir().join(format!("tokenauth-leaks-{}.pem", std::process::id()));
    std::fs::write(&ca, emu.ca_cert_pem().unwrap()).unwrap();
    let store = std::env::temp_dir().join(format!("tokenauth-leaks-store-{}", std::process::id()));
    let run = |args: &[&str], env: &[(&str, &str)]| -> String {
        let mut cmd = Command::new(&bin);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("TOKENAUTH_CONFIG")
            .env_remove("RUST_LOG")
            .arg("-vvv");
        for (host, addr) in emu.host_overrides() {
            cmd.arg("--resolve").arg(format!("{host}:443:{addr}"));
        }
        cmd.arg("--cacert").arg(&ca).arg("--store").arg(&store);
        cmd.args(args);
        let defaults = tokenauth_emulator::DEMO_ENV;
        for (k, v) in defaults.iter().chain(env) {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run tokenauth");
        format!(
            "$ tokenauth {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let mut outputs = Vec::new();
    let providers = ["reobtimaal", "twoba", "bro"];
    for p in providers {
        outputs.push(run(&["explain", p], &[]));
        outputs.push(run(&["token", p], &[]));
        outputs.push(run(&["test", p], &[]));
    }
    outputs.push(run(&["request", "twoba", TWOBA_API], &[]));
    outputs.push(run(&["request", "bro", BRO_API, "-X", "POST"], &[]));
    outputs.push(run(&["request", "reobtimaal", REOB_API], &[]));
    // Failures: wrong secrets, and the endpoint's faults.
    let wrong = format!("{REOB_DEMO_PASSWORD}-wrong");
    outputs.push(run(
        &["token", "reobtimaal"],
        &[("REOBTIMAAL_PASSWORD", &wrong)],
    ));
    outputs.push(run(&["test", "bro"], &[("BRO_TOKEN_PASSWORD", "0000")]));
    emu.set_reply_fault(Provider::Twoba, ReplyFault::MalformedJson, 1000);
    emu.set_reply_fault(Provider::Reobtimaal, ReplyFault::MalformedJson, 1000);
    for p in ["reobtimaal", "twoba"] {
        outputs.push(run(&["token", p], &[]));
    }
    emu.clear_faults(Provider::Twoba);
    emu.set_reply_fault(Provider::Twoba, ReplyFault::MissingToken, 1000);
    outputs.push(run(&["test", "twoba"], &[]));
    emu.clear_faults(Provider::Twoba);
    emu.fail_token_requests(Provider::Twoba, StatusFault::new(503, 1000));
    outputs.push(run(&["token", "twoba"], &[]));
    emu.clear_faults(Provider::Twoba);
    emu.revoke(Provider::Twoba);
    outputs.push(run(&["token", "twoba"], &[]));
    // The refresh tokens the CLI sent or stored.
    for r in emu.recorded_token_requests() {
        if let Some(t) = r.form_field("refresh_token") {
            ev.tokens.push(t.to_owned());
        }
    }
    for entry in std::fs::read_dir(&store).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(t) = v["refresh_token"].as_str()
        {
            ev.tokens.push(t.to_owned());
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(name.starts_with("rt-") && !name.contains("twoba"), "{name}");
    }
    let _ = std::fs::remove_file(&ca);
    let _ = std::fs::remove_dir_all(&store);
    let all = outputs.join("\n");
    assert!(
        all.contains("token type: bearer") && all.contains("DEBUG"),
        "the CLI ran and logged: {}",
        &all[..all.len().min(3000)]
    );
    ev.text("cli", &all);
    outputs.len()
}

// ------------------------------------------------------------ query credentials

/// Loopback servers for a query-credential provider and its failures.
struct QueryWorld {
    api: TestServer,
    elsewhere: TestServer,
    refused: u16,
    silent: SilentServer,
    looping: LoopServer,
}

impl QueryWorld {
    async fn start() -> QueryWorld {
        QueryWorld {
            api: TestServer::start().await,
            elsewhere: TestServer::start().await,
            refused: refused_port().await,
            silent: SilentServer::start().await,
            looping: LoopServer::start().await,
        }
    }

    /// Providers `q` (the API), `qrefused`, `qsilent`, `qloop`; `q` has a
    /// test request that gets a 500. With `from_env`, the key is a secret
    /// input read from `LEAKS_QUERY_KEY` (as a real one would be: the CLI
    /// shows non-secret inputs, e.g. in `test`'s inject step).
    fn toml(&self, from_env: bool) -> String {
        let mut toml = [
            query_toml("q", &format!("http://{}/", self.api.addr)),
            query_toml("qrefused", &format!("http://127.0.0.1:{}/", self.refused)),
            query_toml("qsilent", &format!("http://{}/", self.silent.addr)),
            query_toml("qloop", &format!("http://{}/", self.looping.addr)),
        ]
        .concat();
        toml.push_str(&format!(
            "\n[providers.q.test]\nurl = \"http://{}/status/500?x=1\"\n",
            self.api.addr
        ));
        toml.push_str(&format!(
            "\n[providers.qrefused.test]\nurl = \"http://127.0.0.1:{}/items?x=1\"\n",
            self.refused
        ));
        if from_env {
            toml = toml.replace(
                &format!("inputs.key = {{ default = \"{QUERY_SECRET}\" }}"),
                "inputs.key = { env = \"LEAKS_QUERY_KEY\", secret = true }",
            );
            assert!(!toml.contains(QUERY_SECRET), "{toml}");
        }
        toml
    }

    fn redirect_out(&self) -> String {
        let to: String =
            url::form_urlencoded::byte_serialize(self.elsewhere.url("/landing").as_bytes())
                .collect();
        self.api.url(&format!("/api/redirect?to={to}&x=1"))
    }
}

/// A query credential through both adapters: success, each error path, and
/// a redirect out of scope (scoped: the 302; unscoped: refused).
async fn query_credential_flows(ev: &mut Evidence) {
    ev.tokens.push(QUERY_SECRET.to_owned());
    let w = QueryWorld::start().await;
    let auth = static_engine(&w.toml(false));
    let scoped = middleware_client_with(
        reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .scoped_to(&auth),
        &auth,
    );
    let r = scoped.get(w.api.url("/items?x=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    ev.debug("query response", &r);
    ev.text("query response url", r.url().as_str());
    let r = scoped
        .get(w.api.url("/status/500?x=1"))
        .send()
        .await
        .unwrap();
    ev.debug("query 500", &r);
    let e = r.error_for_status().expect_err("500");
    ev.error("query error_for_status", &e);
    for (what, url) in [
        (
            "refused",
            format!("http://127.0.0.1:{}/items?x=1", w.refused),
        ),
        ("timeout", format!("http://{}/items?x=1", w.silent.addr)),
    ] {
        let e = scoped.get(&url).send().await.expect_err(what);
        ev.error(&format!("query {what}"), &e);
    }
    // The scoped policy hands a query provider's redirects back: no loop.
    let r = scoped
        .get(format!("http://{}/loop?x=1", w.looping.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        302,
        "scoped: a query provider's redirect comes back"
    );
    ev.debug("query loop 302", &r);
    let r = scoped.get(w.redirect_out()).send().await.unwrap();
    assert_eq!(r.status(), 302, "scoped: the 302 comes back");
    ev.debug("query 302", &r);

    let unscoped = middleware_client_with(reqwest::Client::builder(), &auth);
    let e = unscoped
        .get(w.redirect_out())
        .send()
        .await
        .expect_err("the out-of-scope response is refused");
    let typed = auth_error(&e).unwrap_or_else(|| panic!("{e:?}"));
    assert!(
        matches!(typed, tokenauth::Error::RedirectLeftScope { .. }),
        "{typed:?}"
    );
    ev.error("query redirect refused", &e);
    ev.error("query redirect refused, typed", typed);
    assert!(
        w.api
            .seen()
            .iter()
            .all(|s| s.query.as_deref().is_some_and(|q| q.contains(QUERY_SECRET))),
        "the API got the key every time"
    );

    let mut service = ServiceBuilder::new()
        .layer(auth.layer())
        .service(hyper_client_with::<Body>("", Default::default()));
    for path in ["/items?x=1", "/status/500?x=1"] {
        let request = http::Request::get(w.api.url(path))
            .body(Body::default())
            .unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        ev.debug("tower query response", &response);
        let _ = response.into_body().collect().await;
    }
    let request = http::Request::get(format!("http://127.0.0.1:{}/items?x=1", w.refused))
        .body(Body::default())
        .unwrap();
    let e = service
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .expect_err("refused");
    ev.error("tower query refused", &e);
    ev.debug("query engine", &auth);
}

/// `tokenauth request` and `test` with `-vvv` for query-credential
/// providers: a 200, a 500, connection refused, a redirect loop, a redirect
/// out of scope; returns how many ran.
async fn cli_query_runs(ev: &mut Evidence) -> usize {
    let bin = cli_binary();
    let w = QueryWorld::start().await;
    let config =
        std::env::temp_dir().join(format!("tokenauth-leaks-q-{}.toml", std::process::id()));
    std::fs::write(&config, w.toml(true)).unwrap();
    let runs: Vec<Vec<String>> = [
        vec!["request", "q", &w.api.url("/items?x=1")],
        vec!["request", "q", &w.api.url("/status/500?x=1")],
        vec!["request", "q", &w.redirect_out()],
        vec![
            "request",
            "qrefused",
            &format!("http://127.0.0.1:{}/items?x=1", w.refused),
        ],
        vec![
            "request",
            "qloop",
            &format!("http://{}/loop?x=1", w.looping.addr),
        ],
        vec!["test", "q"],
        vec!["test", "qrefused"],
    ]
    .iter()
    .map(|args| args.iter().map(|a| (*a).to_owned()).collect())
    .collect();
    let mut outputs = Vec::new();
    for args in runs {
        let (bin, config) = (bin.clone(), config.clone());
        let out = tokio::task::spawn_blocking(move || {
            let out = Command::new(&bin)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env_remove("TOKENAUTH_CONFIG")
                .env_remove("RUST_LOG")
                .env("LEAKS_QUERY_KEY", QUERY_SECRET)
                .arg("-vvv")
                .arg("--config")
                .arg(&config)
                .args(&args)
                .output()
                .expect("run tokenauth");
            format!(
                "$ tokenauth {}\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .await
        .unwrap();
        outputs.push(out);
    }
    let _ = std::fs::remove_file(&config);
    let all = outputs.join("\n");
    assert!(
        all.contains("200") && all.contains("500") && all.contains("DEBUG"),
        "the CLI ran and logged: {}",
        &all[..all.len().min(3000)]
    );
    assert!(
        w.api
            .seen()
            .iter()
            .any(|s| s.query.as_deref().is_some_and(|q| q.contains(QUERY_SECRET))),
        "the CLI sent the key to the API: {:?}",
        w.api.seen()
    );
    ev.text("cli query", &all);
    outputs.len()
}

// ------------------------------------------------------------ snapshots

/// Every `*.snap` file under `root` (not in `target/` or hidden
/// directories).
fn snapshot_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".snap") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
