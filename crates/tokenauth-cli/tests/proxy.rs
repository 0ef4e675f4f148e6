//! `tokenauth proxy` as a worker in another language uses it: the real
//! binary in a child process, the root `providers.toml` (plus three local
//! providers for the failure rows), the emulator behind `--resolve` and
//! `--cacert`, and real non-Rust clients: `curl` and a Python script with
//! only the standard library (`tests/proxy/client.py`). Every test checks
//! that the API never saw the proxy key and that the caller never saw a
//! token. Nothing leaves 127.0.0.1.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

/// A real `redis-server` on a free loopback port (the Redis store's own
/// test harness).
#[allow(dead_code)]
#[path = "../../tokenauth-redis/tests/helpers/mod.rs"]
mod redis_server;
use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, BRO_DEMO_USERNAME, Emulator, EmulatorConfig, Provider, REOB_DEMO_PASSWORD,
    REOB_DEMO_USERNAME, StatusFault, TWOBA_DEMO_CLIENT_SECRET, TWOBA_DEMO_PASSWORD,
    TWOBA_DEMO_USERNAME, tenant_password, tenant_username,
};

const KEY: &str = "proxy-key-0123456789abcdef";
const LOCAL_KEY: &str = "local-api-key-secret-42";

#[path = "proxy/common.rs"]
mod common;

use common::{LocalServer, ProxyProcess, SEED_INPUTS, root};

/// The emulator, a local API server of the test's own, and the files the
/// proxy reads.
struct Fixture {
    emulator: Emulator,
    local: LocalApi,
    dir: PathBuf,
    ca: PathBuf,
    config: PathBuf,
    connections: PathBuf,
}

impl Fixture {
    fn new(name: &str, config: EmulatorConfig) -> Self {
        let emulator =
            Emulator::start_on_own_runtime(config.tls(true).record_api_requests(10_000), 1)
                .expect("emulator");
        let dir =
            std::env::temp_dir().join(format!("tokenauth-proxy-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, emulator.ca_cert_pem().expect("tls on")).unwrap();
        let local = LocalApi::start(serve);
        // A port nothing listens on: bound, then let go.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let seeds = std::fs::read_to_string(root().join("providers.toml")).unwrap();
        let config = dir.join("providers.toml");
        std::fs::write(
            &config,
            format!(
                r#"{seeds}
# The test's own local API: redirects, a hang, a closed port.
[providers.local]
api = ["http://127.0.0.1:{port}/v1/"]
inputs.key = {{ env = "LOCAL_API_KEY", secret = true }}
inject = {{ header = "X-Api-Key", value = "{{{{ inputs.key }}}}" }}

# A prefix per tenant: rendered with the connection's input.
[providers.templated]
api = ["http://127.0.0.1:{port}/t/{{{{ inputs.tenant }}}}/"]
inputs.tenant = {{ env = "TEMPLATED_TENANT" }}
inputs.key = {{ env = "LOCAL_API_KEY", secret = true }}
inject = {{ header = "X-Api-Key", value = "{{{{ inputs.key }}}}" }}

# Its API base comes from a token reply that never arrives.
[providers.slowbase]
api = ["http://127.0.0.1:{port}/slow/"]
login.url = "http://127.0.0.1:{port}/v1/hang"
login.fields = {{ grant_type = "client_credentials" }}
login.timeout = "20s"
response.api_base = "/instance_url"
expiry.ttl = "1h"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}

[providers.closed]
api = ["http://127.0.0.1:{closed}/"]
inputs.key = {{ env = "LOCAL_API_KEY", secret = true }}
inject = {{ header = "X-Api-Key", value = "{{{{ inputs.key }}}}" }}
"#,
                port = local.port
            ),
        )
        .unwrap();
        let connections = dir.join("connections.toml");
        std::fs::write(
            &connections,
            format!(
                r#"# Two tenants of one provider, told apart by Tokenauth-Connection.
[connections.tenant-1]
provider = "reobtimaal"
inputs.username = "{u1}"
inputs.password = {{ env = "TENANT_1_PASSWORD" }}

[connections.tenant-2]
provider = "reobtimaal"
inputs.username = "{u2}"
inputs.password = {{ env = "TENANT_2_PASSWORD" }}

[connections.tenant-7]
provider = "reobtimaal"
inputs.username = "{u7}"
inputs.password = {{ env = "TENANT_7_PASSWORD_NOT_SET" }}

[connections.acme]
provider = "templated"
inputs.tenant = "acme"
inputs.key = {{ env = "LOCAL_API_KEY" }}

[connections.half-bro]
provider = "bro"
inputs.username = "someone"
"#,
                u1 = tenant_username(Provider::Reobtimaal, 1),
                u2 = tenant_username(Provider::Reobtimaal, 2),
                u7 = tenant_username(Provider::Reobtimaal, 7),
            ),
        )
        .unwrap();
        Fixture {
            emulator,
            local,
            dir,
            ca,
            config,
            connections,
        }
    }

    /// `tokenauth GLOBAL ARGS` with the emulator's hosts resolved, its CA
    /// trusted, the seed inputs, the tenants' passwords and the key in the
    /// environment (`env` overrides; an empty value removes a variable).
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = common::tokenauth(&self.emulator, &self.ca, &self.config, &self.dir);
        cmd.args(args);
        let p1 = tenant_password(Provider::Reobtimaal, 1);
        let p2 = tenant_password(Provider::Reobtimaal, 2);
        let ours = [
            ("TENANT_1_PASSWORD", p1.as_str()),
            ("TENANT_2_PASSWORD", p2.as_str()),
            ("LOCAL_API_KEY", LOCAL_KEY),
            ("TOKENAUTH_PROXY_KEY", KEY),
        ];
        common::set_env(&mut cmd, SEED_INPUTS.iter().chain(&ours).chain(env));
        cmd
    }

    /// Starts `tokenauth … proxy --listen 127.0.0.1:0 --connections FILE
    /// EXTRA` and reads the address it prints.
    fn proxy(&self, global: &[&str], extra: &[&str], env: &[(&str, &str)]) -> ProxyProcess {
        let connections = self.connections.to_string_lossy().into_owned();
        let mut args: Vec<&str> = global.to_vec();
        args.extend([
            "-v",
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--connections",
            &connections,
        ]);
        args.extend(extra);
        ProxyProcess::spawn(self.command(&args, env))
    }

    /// Every request the emulator's APIs and the local API received.
    fn api_saw(&self) -> Vec<Seen> {
        let emulated = self
            .emulator
            .recorded_api_requests()
            .into_iter()
            .map(|r| Seen {
                path: r.path,
                headers: r.headers,
                body: r.body,
            });
        emulated.chain(self.local.requests()).collect()
    }

    /// Every access token and secret the API side saw or the fixture
    /// holds: none may reach a caller or a log line.
    fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .api_saw()
            .into_iter()
            .flat_map(|r| r.headers)
            .filter(|(name, _)| name == "authorization" || name == "x-api-key")
            .map(|(_, value)| match value.split_once(' ') {
                Some((_, credential)) => credential.to_owned(),
                None => value,
            })
            .collect();
        secrets.extend(
            [
                REOB_DEMO_PASSWORD,
                TWOBA_DEMO_PASSWORD,
                TWOBA_DEMO_CLIENT_SECRET,
                BRO_DEMO_PASSWORD,
                LOCAL_KEY,
            ]
            .map(str::to_owned),
        );
        secrets.push(tenant_password(Provider::Reobtimaal, 1));
        secrets.push(tenant_password(Provider::Reobtimaal, 2));
        secrets.sort();
        secrets.dedup();
        secrets
    }

    /// The API never saw the proxy key, the connection header or a caller's
    /// credential; `caller` (all a caller got) and the proxy's log hold no
    /// token or secret.
    fn assert_nothing_leaked(&self, proxy: &ProxyProcess, caller: &str) {
        let api_saw: Vec<(String, String)> = self
            .api_saw()
            .into_iter()
            .flat_map(|r| {
                let mut seen = r.headers;
                seen.push(("path".to_owned(), r.path));
                seen.push(("body".to_owned(), r.body));
                seen
            })
            .collect();
        for (name, value) in &api_saw {
            assert!(!value.contains(KEY), "the API saw the proxy key in {name}");
            assert!(
                !name.starts_with("tokenauth-") && name != "proxy-authorization",
                "the API saw the header {name}"
            );
            assert!(
                !value.contains("caller-credential"),
                "the API saw the caller's own credential in {name}"
            );
        }
        let log = proxy.log();
        for secret in self.secrets() {
            assert!(!caller.contains(&secret), "a caller saw a token or secret");
            assert!(
                !log.contains(&secret),
                "the proxy's log holds a token or secret:\n{log}"
            );
        }
    }
}

/// What a client got.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The proxy's error code (its `Tokenauth-Error` header, which the JSON
    /// body repeats).
    fn proxy_error(&self) -> Option<&str> {
        let code = self.headers.get("tokenauth-error")?;
        assert_eq!(self.json()["error"], code.as_str(), "{self:?}");
        Some(code)
    }

    fn all(&self) -> String {
        format!("{:?}{}", self.headers, self.body)
    }
}

/// `curl -sS -i ARGS` (no proxy from the environment; `--path-as-is` keeps
/// dot segments as written).
fn curl(args: &[&str]) -> Reply {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-i",
            "--noproxy",
            "*",
            "--path-as-is",
            "--max-time",
            "60",
        ])
        .args(args)
        .output()
        .expect("curl (apt-get install -y curl)");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Runs `tests/proxy/client.py` (Python, standard library only) with these
/// calls; one result per call.
fn python(calls: Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxy/client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (apt-get install -y python3)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(calls.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "client.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("client.py prints JSON")
}

/// A Python worker per URL, all at once, each calling its URL for
/// `seconds`; every call must get 200. Returns all they got.
fn python_workers(urls: &[&str], proxy_authorization: &str, seconds: u64) -> String {
    let workers: Vec<_> = urls
        .iter()
        .map(|url| {
            let call = json!({"url": url, "headers": {"Proxy-Authorization": proxy_authorization},
                "repeat_for_seconds": seconds});
            std::thread::spawn(move || python(json!([call])))
        })
        .collect();
    let mut caller = String::new();
    for worker in workers {
        let result = worker.join().unwrap();
        let statuses = result[0]["statuses"].as_object().unwrap();
        assert_eq!(statuses.keys().collect::<Vec<_>>(), ["200"], "{statuses:?}");
        caller += &serde_json::to_string(&result).unwrap();
    }
    caller
}

fn key_header() -> String {
    format!("Tokenauth-Key: {KEY}")
}

#[test]
fn the_seed_providers_through_curl_and_python() {
    let fx = Fixture::new("seeds", EmulatorConfig::default());
    let proxy = fx.proxy(&[], &[], &[]);
    let p = &proxy.url;
    let mut caller = String::new();

    // curl, the key in Tokenauth-Key; a credential of the caller's own is
    // dropped: the proxy authenticates.
    let reob = curl(&[
        "-H",
        &key_header(),
        "-H",
        "Authorization: Bearer caller-credential",
        &format!("{p}/reobtimaal/v1/projecten?page=2"),
    ]);
    assert_eq!(reob.status, 200, "{reob:?}");
    assert_eq!(reob.json()["user"], REOB_DEMO_USERNAME);
    assert_eq!(reob.json()["path"], "/api/v1/projecten");
    assert_eq!(reob.proxy_error(), None);
    caller += &reob.all();

    // Python, the key as Proxy-Authorization: Bearer.
    let bearer = format!("Bearer {KEY}");
    let results = python(json!([
        {"url": format!("{p}/twoba/1/json/Product/DetailsForProduct?gln=1"),
         "headers": {"Proxy-Authorization": bearer}},
        {"url": format!("{p}/bro/validatie"), "method": "POST", "body": "<bro/>",
         "headers": {"Proxy-Authorization": bearer, "Content-Type": "application/xml"}},
        {"url": format!("{p}/reobtimaal/v1/projecten"),
         "headers": {"Proxy-Authorization": bearer}},
    ]));
    assert_eq!(results[0]["status"], 200, "{results:?}");
    assert_eq!(
        results[0]["body"]
            .as_str()
            .map(|b| b.contains(TWOBA_DEMO_USERNAME)),
        Some(true)
    );
    assert_eq!(results[1]["status"], 200, "{results:?}");
    let bro: Value = serde_json::from_str(results[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(bro["user"], BRO_DEMO_USERNAME);
    assert_eq!(bro["body_bytes"], 6);
    assert_eq!(results[2]["status"], 200);
    caller += &serde_json::to_string(&results).unwrap();

    // One login per provider for all of it; the query went along.
    let stats = fx.emulator.stats();
    assert_eq!(stats.reobtimaal.token.requests, 1);
    assert_eq!(stats.twoba.token.requests, 1);
    let api = fx.emulator.recorded_api_requests();
    assert!(
        api.iter().any(|r| r.path == "/api/v1/projecten?page=2"),
        "{api:?}"
    );
    assert!(api.iter().all(|r| r.header("via") == Some("1.1 tokenauth")));

    // The stats: behind the key; the engine's counters and the proxy's own.
    let open = curl(&[&format!("{p}/_tokenauth/stats")]);
    assert_eq!(open.status, 401);
    let stats = curl(&["-H", &key_header(), &format!("{p}/_tokenauth/stats")]).json();
    assert_eq!(stats["providers"]["reobtimaal"]["requests"], 2);
    assert_eq!(stats["providers"]["reobtimaal"]["responses"]["2xx"], 2);
    assert_eq!(stats["engine"]["logins"], 2);
    assert_eq!(stats["providers"]["twoba"]["engine"]["logins"], 1);
    assert_eq!(stats["providers"]["bro"]["engine"]["token_requests"], 0);
    assert_eq!(
        curl(&[&format!("{p}/_tokenauth/health")]).json()["status"],
        "ok"
    );

    // The access log: one line per request, no query values.
    let log = proxy.log();
    assert!(log.contains("provider=\"reobtimaal\""), "{log}");
    assert!(!log.contains("page=2") && !log.contains("gln=1"), "{log}");
    fx.assert_nothing_leaked(&proxy, &caller);
}

#[test]
fn tenants_by_header_from_the_file_and_from_the_store() {
    let fx = Fixture::new("tenants", EmulatorConfig::default());
    // A connection `tokenauth login`/`token` left in a file store.
    let store = fx.dir.join("store");
    let store_arg = store.to_string_lossy().into_owned();
    let out = fx
        .command(
            &[
                "--store",
                &store_arg,
                "token",
                "twoba",
                "--connection",
                "stored-1",
            ],
            &[],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let proxy = fx.proxy(&["--store", &store_arg], &[], &[]);
    let p = &proxy.url;
    let mut caller = String::new();
    for (tenant, n) in [("tenant-1", 1), ("tenant-2", 2), ("tenant-1", 1)] {
        let reply = curl(&[
            "-H",
            &key_header(),
            "-H",
            &format!("Tokenauth-Connection: {tenant}"),
            &format!("{p}/reobtimaal/v1/projecten"),
        ]);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.json()["user"],
            tenant_username(Provider::Reobtimaal, n)
        );
        caller += &reply.all();
    }
    // Without the header: the default connection (the environment).
    let default = curl(&["-H", &key_header(), &format!("{p}/reobtimaal/v1/projecten")]);
    assert_eq!(default.json()["user"], REOB_DEMO_USERNAME);
    // One login per tenant, cached per (provider, connection).
    assert_eq!(
        fx.emulator
            .stats()
            .reobtimaal
            .token
            .requests_by_grant
            .password,
        3
    );

    let stored = curl(&[
        "-H",
        &key_header(),
        "-H",
        "Tokenauth-Connection: stored-1",
        &format!("{p}/twoba/1/json/Product/DetailsForProduct"),
    ]);
    assert_eq!(stored.status, 200, "{stored:?}");
    caller += &stored.all();
    // The connection of another provider is refused, naming where it goes.
    let wrong = curl(&[
        "-H",
        &key_header(),
        "-H",
        "Tokenauth-Connection: tenant-1",
        &format!("{p}/twoba/1/json/x"),
    ]);
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.proxy_error(), Some("unknown_connection"));
    assert!(
        wrong.json()["detail"]
            .as_str()
            .unwrap()
            .contains("/reobtimaal/")
    );
    fx.assert_nothing_leaked(&proxy, &caller);
}

#[test]
fn twoba_rotates_its_refresh_token_during_a_run() {
    let fx = Fixture::new(
        "rotation",
        EmulatorConfig::default().twoba_access_lifetime(Duration::from_secs(2)),
    );
    let proxy = fx.proxy(&[], &[], &[]);
    let p = &proxy.url;
    let bearer = format!("Bearer {KEY}");
    // Two Python workers at once.
    let url = format!("{p}/twoba/1/json/Product/DetailsForProduct");
    let caller = python_workers(&[&url, &url], &bearer, 5);
    let stats = fx.emulator.stats().twoba.token;
    assert_eq!(stats.requests_by_grant.password, 1, "{stats:?}");
    assert!(stats.requests_by_grant.refresh_token >= 1, "{stats:?}");
    assert_eq!(stats.refresh_reuse, 0);
    fx.assert_nothing_leaked(&proxy, &caller);
}

#[test]
fn two_proxy_processes_share_one_rotating_token_through_redis() {
    let fx = Fixture::new(
        "redis",
        EmulatorConfig::default().twoba_access_lifetime(Duration::from_secs(2)),
    );
    let redis = redis_server::RedisServer::start();
    let url = redis.url();
    let store_key = [(
        "TOKENAUTH_STORE_KEY",
        "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )];
    let proxies = [
        fx.proxy(&["--store", &url], &[], &store_key),
        fx.proxy(&["--store", &url], &[], &store_key),
    ];
    let bearer = format!("Bearer {KEY}");
    // A Python worker on each proxy, for three token lifetimes.
    let urls: Vec<String> = proxies
        .iter()
        .map(|proxy| format!("{}/twoba/1/json/Product/DetailsForProduct", proxy.url))
        .collect();
    let caller = python_workers(&[&urls[0], &urls[1]], &bearer, 6);
    // One login for both processes; each renewal by one of them, with the
    // refresh token the last one rotated.
    let token = fx.emulator.stats().twoba.token;
    assert_eq!(token.requests_by_grant.password, 1, "{token:?}");
    assert!(token.requests_by_grant.refresh_token >= 2, "{token:?}");
    assert_eq!(
        token.refresh_reuse, 0,
        "a rotated refresh token was used again"
    );
    for proxy in &proxies {
        fx.assert_nothing_leaked(proxy, &caller);
    }
}

#[test]
fn a_revoked_token_is_renewed_and_the_request_retried_once() {
    let fx = Fixture::new("revoked", EmulatorConfig::default());
    // Bodies over 64 bytes stream through and are not retried.
    let proxy = fx.proxy(&[], &["--retry-body-limit", "64"], &[]);
    let p = &proxy.url;
    let mut caller = String::new();
    let first = curl(&["-H", &key_header(), &format!("{p}/reobtimaal/v1/projecten")]);
    assert_eq!(first.status, 200);

    for (body, expect) in [("", 200), ("{\"small\":true}", 200)] {
        fx.emulator.revoke_all();
        let mut args = vec![
            "-H".to_owned(),
            key_header(),
            format!("{p}/reobtimaal/v1/projecten"),
        ];
        if !body.is_empty() {
            args.extend(
                [
                    "-X",
                    "POST",
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    body,
                ]
                .map(str::to_owned),
            );
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let reply = curl(&args);
        assert_eq!(reply.status, expect, "{reply:?}");
        assert_eq!(reply.json()["body_bytes"], body.len());
        caller += &reply.all();
    }
    let api = fx.emulator.stats().reobtimaal.api.replies_by_status;
    assert_eq!(
        api.get(&401),
        Some(&2),
        "one rejection per revocation: {api:?}"
    );

    // A streamed body (over the limit) is not sent twice: the API's 401
    // comes back as the API's (no Tokenauth-Error), and the token is
    // renewed for the next request.
    fx.emulator.revoke_all();
    let big = "x".repeat(1000);
    let streamed = curl(&[
        "-H",
        &key_header(),
        "-X",
        "POST",
        "-d",
        &big,
        &format!("{p}/reobtimaal/v1/projecten"),
    ]);
    assert_eq!(streamed.status, 401, "{streamed:?}");
    assert_eq!(streamed.proxy_error(), None);
    let next = curl(&["-H", &key_header(), &format!("{p}/reobtimaal/v1/projecten")]);
    assert_eq!(next.status, 200);
    caller += &streamed.all();
    fx.assert_nothing_leaked(&proxy, &caller);
}

#[test]
fn every_bad_input_gets_a_status_and_a_json_error() {
    let fx = Fixture::new("errors", EmulatorConfig::default());
    let proxy = fx.proxy(&[], &["--timeout", "1s"], &[("REOBTIMAAL_PASSWORD", "")]);
    let p = &proxy.url;
    let key = key_header();
    let get = |headers: &[&str], path: &str| {
        let mut args: Vec<String> = headers
            .iter()
            .flat_map(|h| ["-H".to_owned(), (*h).to_owned()])
            .collect();
        args.push(format!("{p}{path}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&args)
    };
    let mut caller = String::new();
    let mut check = |reply: Reply, status: u16, code: &str, provider: Value, detail: &str| {
        assert_eq!(reply.status, status, "{reply:?}");
        assert_eq!(reply.proxy_error(), Some(code), "{reply:?}");
        let body = reply.json();
        assert_eq!(body["provider"], provider, "{reply:?}");
        assert!(
            body["detail"].as_str().unwrap().contains(detail),
            "{detail:?} not in {body}"
        );
        caller += &reply.all();
    };

    check(
        get(&[], "/reobtimaal/v1/x"),
        401,
        "proxy_key",
        Value::Null,
        "TOKENAUTH_PROXY_KEY",
    );
    check(
        get(&["Tokenauth-Key: wrong-key-0123456789"], "/reobtimaal/v1/x"),
        401,
        "proxy_key",
        Value::Null,
        "Proxy-Authorization",
    );
    check(
        get(&[&key], "/nope/x"),
        404,
        "unknown_provider",
        json!("nope"),
        "reobtimaal, twoba, bro",
    );
    check(
        get(
            &[&key, "Tokenauth-Connection: tenant-9"],
            "/reobtimaal/v1/x",
        ),
        400,
        "unknown_connection",
        json!("reobtimaal"),
        "tenant-9",
    );
    // An input whose variable is unset: the variable is named.
    check(
        get(
            &[&key, "Tokenauth-Connection: tenant-7"],
            "/reobtimaal/v1/x",
        ),
        400,
        "missing_input",
        json!("reobtimaal"),
        "TENANT_7_PASSWORD_NOT_SET",
    );
    check(
        get(&[&key], "/reobtimaal/v1/x"),
        400,
        "missing_input",
        json!("reobtimaal"),
        "REOBTIMAAL_PASSWORD",
    );
    check(
        get(&[&key, "Tokenauth-Connection: half-bro"], "/bro/x"),
        400,
        "missing_input",
        json!("bro"),
        "token",
    );
    // The token endpoint fails: 502 with core's message.
    fx.emulator
        .fail_token_requests(Provider::Twoba, StatusFault::new(500, 10));
    check(
        get(&[&key], "/twoba/1/json/x"),
        502,
        "token_endpoint",
        json!("twoba"),
        "500",
    );
    // The API cannot be reached, or does not answer in time.
    check(
        get(&[&key], "/closed/x"),
        502,
        "upstream_unreachable",
        json!("closed"),
        "cannot connect to http://127.0.0.1:",
    );
    check(
        get(&[&key], "/local/hang"),
        504,
        "upstream_timeout",
        json!("local"),
        "within 1s",
    );
    // The token that names the API base is part of the wait too.
    check(
        get(&[&key], "/slowbase/x"),
        504,
        "upstream_timeout",
        json!("slowbase"),
        "within 1s",
    );
    // A request body that stops arriving: 408 after --timeout, not a task
    // held for ever.
    let local_before = fx.local.requests().len();
    let mut stalled = TcpStream::connect(proxy.addr()).unwrap();
    write!(
        stalled,
        "POST /local/items HTTP/1.1\r\nHost: 127.0.0.1\r\n{key}\r\nContent-Length: 100\r\n\r\nonly-a-part"
    )
    .unwrap();
    let mut answer = String::new();
    BufReader::new(&stalled).read_line(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert_eq!(
        fx.local.requests().len(),
        local_before,
        "a partial body was forwarded"
    );
    // Paths that would leave the provider's API: refused, never sent.
    let before = fx.emulator.recorded_api_requests().len();
    for path in [
        "/reobtimaal/../twoba/x",
        "/reobtimaal/v1/../../Token",
        "/reobtimaal/%2e%2e/Token",
        "/reobtimaal/v1%2f..%2f..%2fToken",
        "/reobtimaal/v1%5C..%5CToken",
        "/reobtimaal//evil.example/x",
    ] {
        check(
            get(&[&key], path),
            400,
            "outside_api",
            json!("reobtimaal"),
            "is refused",
        );
    }
    // The proxy's own endpoints and a path without a provider.
    check(
        get(&[&key], "/"),
        404,
        "not_found",
        Value::Null,
        "/PROVIDER/PATH",
    );
    check(
        get(&[&key], "/_tokenauth/nope"),
        404,
        "not_found",
        Value::Null,
        "/_tokenauth/health",
    );
    check(
        curl(&["-X", "POST", "-H", &key, &format!("{p}/_tokenauth/stats")]),
        405,
        "method_not_allowed",
        Value::Null,
        "GET only",
    );
    assert_eq!(
        fx.emulator.recorded_api_requests().len(),
        before,
        "a refused path reached the API"
    );
    fx.assert_nothing_leaked(&proxy, &caller);
}

/// Responses without a body (HEAD, 304) come back as the API sent them,
/// their `Content-Length` describing the representation, and the
/// connection to the proxy stays usable; a chunked upload small enough to
/// buffer reaches the API whole, with a `Content-Length`, and a larger one
/// streams with the caller's.
#[test]
fn bodiless_responses_and_chunked_uploads() {
    let fx = Fixture::new("bodiless", EmulatorConfig::default());
    let proxy = fx.proxy(&[], &[], &[]);
    let p = &proxy.url;
    let key = key_header();
    // One curl, three requests on one connection: HEAD, the 304, a GET.
    let each = ["-sS", "--noproxy", "*", "--max-time", "20", "-H", &key];
    let status_only = ["-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n"];
    let out = Command::new("curl")
        .args(each)
        .args(status_only)
        .args(["-I", &format!("{p}/local/items")])
        .arg("--next")
        .args(each)
        .args(status_only)
        .arg(format!("{p}/local/not-modified"))
        .arg("--next")
        .args(each)
        .args(["-w", "\n%{http_code} %{num_connects}\n"])
        .arg(format!("{p}/local/items"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {out:?}");
    assert_eq!(text, "200 1\n304 0\n{\"ok\":true}\n200 0\n", "{out:?}");

    let head = curl(&["-H", &key, "-I", &format!("{p}/local/items")]);
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(
        head.headers.get("content-length").map(String::as_str),
        Some("11")
    );
    let not_modified = curl(&["-H", &key, &format!("{p}/local/not-modified")]);
    assert_eq!(not_modified.status, 304, "{not_modified:?}");
    assert_eq!(not_modified.body, "");

    let upload = curl(&[
        "-H",
        &key,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "{\"chunked\":true}",
        &format!("{p}/local/items"),
    ]);
    assert_eq!(upload.status, 200, "{upload:?}");
    let seen = fx.local.requests().pop().unwrap();
    assert_eq!(seen.body, "{\"chunked\":true}");
    assert_eq!(seen.header("content-length"), Some("16"));
    assert_eq!(seen.header("transfer-encoding"), None);
    fx.assert_nothing_leaked(&proxy, &upload.all());

    // Over --retry-body-limit, the body streams with the caller's length.
    let streaming = fx.proxy(&[], &["--retry-body-limit", "4"], &[]);
    let upload = curl(&[
        "-H",
        &key,
        "--data-binary",
        "{\"streamed\":true}",
        &format!("{}/local/items", streaming.url),
    ]);
    assert_eq!(upload.status, 200, "{upload:?}");
    let seen = fx.local.requests().pop().unwrap();
    assert_eq!(seen.body, "{\"streamed\":true}");
    assert_eq!(seen.header("content-length"), Some("17"));
    fx.assert_nothing_leaked(&streaming, &upload.all());
}

#[test]
fn redirects_come_back_and_hop_by_hop_headers_stay_behind() {
    let fx = Fixture::new("redirect", EmulatorConfig::default());
    let proxy = fx.proxy(&[], &[], &[]);
    let p = &proxy.url;
    let redirect = curl(&["-H", &key_header(), &format!("{p}/local/redirect")]);
    assert_eq!(redirect.status, 302, "{redirect:?}");
    assert_eq!(
        redirect.headers["location"],
        "https://elsewhere.example/landing"
    );
    assert_eq!(fx.local.requests().len(), 1, "the redirect was followed");

    let reply = curl(&[
        "-H",
        &key_header(),
        "-H",
        "Connection: keep-alive, X-Hop",
        "-H",
        "X-Hop: only-for-the-proxy",
        "-H",
        "Keep-Alive: timeout=5",
        "-H",
        "X-Api-Key: caller-credential",
        "-H",
        "X-Kept: yes",
        &format!("{p}/local/items"),
    ]);
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = fx.local.requests().pop().unwrap();
    assert_eq!(seen.header("x-kept"), Some("yes"));
    assert_eq!(seen.header("x-api-key"), Some(LOCAL_KEY));
    for gone in ["x-hop", "keep-alive", "tokenauth-key"] {
        assert_eq!(seen.header(gone), None, "{gone} was forwarded");
    }
    // The API's hop-by-hop headers stay behind too.
    assert!(!reply.headers.contains_key("x-api-hop"), "{reply:?}");
    fx.assert_nothing_leaked(&proxy, &reply.all());
}

#[test]
fn a_templated_prefix_is_rendered_for_the_connection() {
    let fx = Fixture::new("templated", EmulatorConfig::default());
    let proxy = fx.proxy(&[], &[], &[("TEMPLATED_TENANT", "globex")]);
    let p = &proxy.url;
    let acme = curl(&[
        "-H",
        &key_header(),
        "-H",
        "Tokenauth-Connection: acme",
        &format!("{p}/templated/items?x=1"),
    ]);
    assert_eq!(acme.status, 200, "{acme:?}");
    // Without the header: the default connection, from the environment.
    let globex = curl(&["-H", &key_header(), &format!("{p}/templated/items")]);
    assert_eq!(globex.status, 200, "{globex:?}");
    let paths: Vec<String> = fx.local.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/t/acme/items?x=1", "/t/globex/items"]);
    // A tenant's path cannot reach another tenant's prefix.
    let out = curl(&[
        "-H",
        &key_header(),
        "-H",
        "Tokenauth-Connection: acme",
        &format!("{p}/templated/../globex/items"),
    ]);
    assert_eq!(out.proxy_error(), Some("outside_api"), "{out:?}");
    assert_eq!(fx.local.requests().len(), 2);
    fx.assert_nothing_leaked(&proxy, &format!("{}{}", acme.all(), globex.all()));
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let fx = Fixture::new("shutdown", EmulatorConfig::default());
    let mut proxy = fx.proxy(&[], &[], &[]);
    let p = proxy.url.clone();
    // Warm: the token is cached, so the slow part is the API alone.
    assert_eq!(
        curl(&["-H", &key_header(), &format!("{p}/reobtimaal/v1/x")]).status,
        200
    );
    fx.emulator.set_api_latency(Duration::from_millis(1500));
    let slow =
        std::thread::spawn(move || curl(&["-H", &key_header(), &format!("{p}/reobtimaal/v1/x")]));
    // Until the request has reached the API.
    while fx.emulator.stats().reobtimaal.api.requests < 2 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = proxy.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let reply = slow.join().unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let status = proxy.child.wait().unwrap();
    assert!(status.success(), "{status:?}: {}", proxy.log());
    assert!(proxy.log().contains("shutting down"), "{}", proxy.log());
}

#[test]
fn start_up_refuses_what_would_be_unsafe_or_wrong() {
    let fx = Fixture::new("startup", EmulatorConfig::default());
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = fx.command(args, env).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(
        &["proxy", "--listen", "127.0.0.1:0"],
        &[("TOKENAUTH_PROXY_KEY", "")],
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("set TOKENAUTH_PROXY_KEY") && err.contains("--no-key"),
        "{err}"
    );
    let (code, err) = run(
        &["proxy", "--listen", "0.0.0.0:0", "--no-key"],
        &[("TOKENAUTH_PROXY_KEY", "")],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("only allowed on a loopback address"), "{err}");
    let (code, err) = run(
        &["proxy", "--listen", "0.0.0.0:0"],
        &[("TOKENAUTH_PROXY_KEY", "")],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("requires a key"), "{err}");
    let (code, err) = run(&["proxy"], &[("TOKENAUTH_PROXY_KEY", "short")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("at least 16"), "{err}");

    let bad = fx.dir.join("bad-connections.toml");
    std::fs::write(
        &bad,
        "[connections.t]\nprovider = \"reobtimaal\"\ninputs.password = \"literal-secret\"\ninputs.nope = \"x\"\n\n[connections.u]\nprovider = \"nope\"\n",
    )
    .unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let (code, err) = run(
        &["proxy", "--listen", "127.0.0.1:0", "--connections", &bad],
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("input `password` is secret"), "{err}");
    assert!(err.contains("has no input `nope`"), "{err}");
    assert!(
        err.contains("provider `nope` is not in the description"),
        "{err}"
    );
    assert!(!err.contains("literal-secret"), "{err}");

    // --no-key on loopback serves without a key.
    let proxy = fx.proxy(&[], &["--no-key"], &[("TOKENAUTH_PROXY_KEY", "")]);
    let reply = curl(&[&format!("{}/reobtimaal/v1/projecten", proxy.url)]);
    assert_eq!(reply.status, 200, "{reply:?}");
}

// ------------------------------------------------------------ the local API

/// A request the local API received.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A small HTTP/1.1 server on loopback standing for an API the emulator
/// does not play: `/v1/redirect` answers 302 to another host,
/// `/v1/not-modified` 304 (with the representation's `Content-Length`),
/// `/v1/hang` never answers, `HEAD` anything else 200 without a body, and
/// anything else 200 with a hop-by-hop header of its own.
type LocalApi = LocalServer<Seen>;

/// Answers the requests of one connection.
fn serve(stream: TcpStream, _port: u16, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let head_only = line.starts_with("HEAD ");
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        log.lock().unwrap().push(Seen {
            path: path.clone(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let reply = if path.starts_with("/v1/redirect") {
            "HTTP/1.1 302 Found\r\nLocation: https://elsewhere.example/landing\r\nContent-Length: 0\r\n\r\n".to_owned()
        } else if path.starts_with("/v1/not-modified") {
            // The length of the representation the client already has.
            "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 11\r\n\r\n".to_owned()
        } else if head_only {
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
                .to_owned()
        } else if path.starts_with("/v1/hang") {
            std::thread::sleep(Duration::from_secs(30));
            return;
        } else {
            "HTTP/1.1 200 OK\r\nConnection: X-Api-Hop\r\nX-Api-Hop: 1\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}".to_owned()
        };
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// The README's example, as a new user runs it: `tokenauth proxy
/// --emulator` with the key, then curl and three lines of Python.
#[test]
fn the_readme_example_against_the_built_in_emulator() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
        .current_dir(root())
        .env_remove("TOKENAUTH_CONFIG")
        .env_remove("TOKENAUTH_STORE")
        .env_remove("TOKENAUTH_CONNECTIONS")
        .env("TOKENAUTH_PROXY_KEY", KEY)
        .args(["proxy", "--emulator", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("tokenauth proxy listening on ")
        .map(str::to_owned);
    let result = std::panic::catch_unwind(|| {
        let url = url.expect("the proxy started");
        let reply = curl(&[
            "-H",
            &key_header(),
            &format!("{url}/reobtimaal/v1/projecten"),
        ]);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json()["user"], REOB_DEMO_USERNAME);
        let script = format!(
            "import json, os, urllib.request\n\
             req = urllib.request.Request(\"{url}/twoba/1/json/Product/DetailsForProduct\", headers={{\"Tokenauth-Key\": os.environ[\"TOKENAUTH_PROXY_KEY\"]}})\n\
             print(json.load(urllib.request.urlopen(req))[\"user\"])\n"
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .env("TOKENAUTH_PROXY_KEY", KEY)
            .env("no_proxy", "127.0.0.1")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            TWOBA_DEMO_USERNAME,
            "{out:?}"
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    result.unwrap();
}
