//! `tokenauth explain | token | test` as a new user runs them: a real
//! subprocess, the unchanged root `providers.toml`, inputs from environment
//! variables, pointed at the in-process emulator with `--resolve` and
//! `--cacert` (nothing leaves 127.0.0.1).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A real `redis-server` on a free loopback port (the Redis store's own
/// test harness).
#[allow(dead_code)]
#[path = "../../tokenauth-redis/tests/helpers/mod.rs"]
mod redis_server;

use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, DEMO_ENV, Emulator, EmulatorConfig, Provider, REOB_DEMO_PASSWORD,
    REOB_DEMO_USERNAME, TWOBA_DEMO_CLIENT_SECRET, TWOBA_DEMO_PASSWORD,
};

const SECRETS: [&str; 3] = [
    REOB_DEMO_PASSWORD,
    TWOBA_DEMO_PASSWORD,
    TWOBA_DEMO_CLIENT_SECRET,
];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

struct Fixture {
    emulator: Emulator,
    ca: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let emulator = Emulator::start_on_own_runtime(EmulatorConfig::default().tls(true), 1)
            .expect("emulator");
        let ca =
            std::env::temp_dir().join(format!("tokenauth-cli-{}-{name}.pem", std::process::id()));
        std::fs::write(&ca, emulator.ca_cert_pem().expect("tls on")).unwrap();
        Fixture { emulator, ca }
    }

    /// `tokenauth ARGS` with the emulator's hosts resolved and its CA trusted,
    /// and every seed input in the environment (`env` overrides them; an empty
    /// value removes the variable).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenauth"));
        cmd.current_dir(root()).env_remove("TOKENAUTH_CONFIG");
        for (host, addr) in self.emulator.host_overrides() {
            cmd.arg("--resolve").arg(format!("{host}:443:{addr}"));
        }
        cmd.arg("--cacert").arg(&self.ca);
        cmd.args(args);
        let defaults = DEMO_ENV;
        for (k, v) in defaults.iter().chain(env) {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let out = cmd.output().expect("run tokenauth");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let all = format!("{stdout}{stderr}");
        for secret in SECRETS.iter().chain([&BRO_DEMO_PASSWORD]) {
            assert!(
                !all.contains(secret),
                "a secret leaked into the CLI output:\n{all}"
            );
        }
        (out.status.code().unwrap_or(-1), stdout, stderr)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca);
    }
}

#[test]
fn explain_each_seed_provider() {
    let f = Fixture::new("explain");
    for p in ["reobtimaal", "twoba", "bro"] {
        let (code, out, err) = f.run(&["explain", p], &[]);
        assert_eq!(code, 0, "{err}");
        insta::assert_snapshot!(format!("explain_{p}"), out);
    }
    assert_eq!(
        f.emulator.stats().reobtimaal.token.requests,
        0,
        "explain sends nothing"
    );
}

#[test]
fn explain_without_inputs_says_what_to_set() {
    let f = Fixture::new("explain-unset");
    let (code, out, _) = f.run(
        &["explain", "reobtimaal"],
        &[("REOBTIMAAL_USERNAME", ""), ("REOBTIMAAL_PASSWORD", "")],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("username=[inputs.username: not set, set $REOBTIMAAL_USERNAME]"),
        "{out}"
    );
}

#[test]
fn token_for_each_seed_provider() {
    let f = Fixture::new("token");
    let (code, out, err) = f.run(&["token", "reobtimaal"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("token type: bearer")
            && out.contains("(40 characters) (--reveal prints it whole)"),
        "{out}"
    );
    assert!(
        out.contains("expires:    ") && (out.contains("(in 59m 59s)") || out.contains("(in 1h)")),
        "{out}"
    );

    let (code, out, err) = f.run(&["token", "twoba"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("token type: Bearer")
            && (out.contains("(in 1m 59s)") || out.contains("(in 2m)")),
        "{out}"
    );

    let (code, out, err) = f.run(&["token", "bro"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("token:      none (static credentials"),
        "{out}"
    );

    let s = f.emulator.stats();
    assert_eq!(
        (s.reobtimaal.token.requests, s.twoba.token.requests),
        (1, 1)
    );
}

#[test]
fn token_reveal_prints_the_whole_token() {
    let f = Fixture::new("reveal");
    let (code, out, _) = f.run(&["token", "reobtimaal", "--reveal"], &[]);
    assert_eq!(code, 0);
    let line = out.lines().find(|l| l.starts_with("token:")).unwrap();
    let token = line.trim_start_matches("token:").trim();
    assert_eq!(token.len(), 40, "{line}");
    let recorded = f.emulator.recorded_token_requests();
    assert_eq!(recorded.len(), 1);
}

#[test]
fn test_each_seed_provider() {
    let f = Fixture::new("test");
    for p in ["reobtimaal", "twoba", "bro"] {
        let (code, out, err) = f.run(&["test", p], &[]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains(&format!("result: {p} works")), "{out}");
        assert!(out.contains("[4/5] test    ok"), "{out}");
        // The wrong-credential probe: the emulated APIs answer 401, which
        // the default on_unauthorized covers.
        assert!(
            out.contains("[5/5] reject  ok      a wrong credential gets 401 Unauthorized, which on_unauthorized.status [401] covers"),
            "{out}"
        );
    }
    assert_eq!(f.emulator.stats().bro.api.status(200), 1);
    assert_eq!(f.emulator.stats().bro.api.status(401), 1, "one probe");
}

#[test]
fn wrong_credentials_exit_1_with_a_clear_message() {
    let f = Fixture::new("wrong");
    let (code, out, _) = f.run(
        &["test", "reobtimaal"],
        &[("REOBTIMAAL_PASSWORD", "wrong-password")],
    );
    assert_eq!(code, 1);
    assert!(out.contains("[2/5] login   FAILED  provider `reobtimaal`: the login request to https://api.reobtimaal-diensten.nl/api/Token got HTTP 400"), "{out}");
    assert!(
        out.contains("The user name or password is incorrect."),
        "{out}"
    );
    assert!(!out.contains("wrong-password"));

    let (code, _, err) = f.run(
        &["token", "twoba"],
        &[("TWOBA_CLIENT_SECRET", "not-the-secret")],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("HTTP 400")
            && err.contains("invalid_client")
            && !err.contains("not-the-secret"),
        "{err}"
    );

    let (code, out, _) = f.run(&["test", "bro"], &[("BRO_TOKEN_PASSWORD", "0000")]);
    assert_eq!(code, 1);
    assert!(
        out.contains("[4/5] test    FAILED")
            && out.contains("401")
            && out.contains("rejected the credential"),
        "{out}"
    );

    f.emulator.revoke(Provider::Bro);
    let (code, out, _) = f.run(&["test", "bro"], &[]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn missing_input_exits_2_naming_the_variable() {
    let f = Fixture::new("missing");
    let (code, out, _) = f.run(&["test", "twoba"], &[("TWOBA_PASSWORD", "")]);
    assert_eq!(code, 2);
    assert!(
        out.contains("missing: password (set $TWOBA_PASSWORD)"),
        "{out}"
    );
    let (code, _, err) = f.run(&["token", "twoba"], &[("TWOBA_PASSWORD", "")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("set the environment variable TWOBA_PASSWORD"),
        "{err}"
    );
}

#[test]
fn unknown_provider_exits_2() {
    let f = Fixture::new("unknown");
    let (code, _, err) = f.run(&["token", "nope"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no provider `nope`") && err.contains("reobtimaal, twoba, bro"),
        "{err}"
    );
}

#[test]
fn request_through_the_middleware_for_each_seed_provider() {
    let f = Fixture::new("request");
    let (code, out, err) = f.run(
        &[
            "request",
            "reobtimaal",
            "https://api.reobtimaal-diensten.nl/api/v1/projecten",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("200 OK\n") && out.contains(REOB_DEMO_USERNAME),
        "{out}"
    );

    let (code, out, err) = f.run(
        &[
            "request",
            "twoba",
            "https://api.2ba.nl/1/json/Product/DetailsForProduct",
            "-H",
            "Accept: application/json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("200 OK\n"), "{out}");

    let (code, out, err) = f.run(
        &[
            "request",
            "bro",
            "https://www.bronhouderportaal-bro.nl/api/v2/validatie",
            "-X",
            "POST",
            "-d",
            "<xml/>",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("200 OK\n"), "{out}");

    let (code, out, _) = f.run(
        &[
            "request",
            "reobtimaal",
            "https://api.reobtimaal-diensten.nl/api/v1/beheer/gebruikers",
        ],
        &[],
    );
    assert_eq!(code, 1, "a 403 is a failure");
    assert!(out.starts_with("403 Forbidden"), "{out}");
}

#[test]
fn request_with_wrong_credentials_exits_1() {
    let f = Fixture::new("request-wrong");
    let (code, _, err) = f.run(
        &["request", "twoba", "https://api.2ba.nl/1/json/x"],
        &[("TWOBA_PASSWORD", "nope-nope")],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("HTTP 400") && err.contains("invalid_grant") && !err.contains("nope-nope"),
        "{err}"
    );
    let (code, out, _) = f.run(
        &[
            "request",
            "bro",
            "https://www.bronhouderportaal-bro.nl/api/v2/leveringen/1",
        ],
        &[("BRO_TOKEN_PASSWORD", "0000")],
    );
    assert_eq!(code, 1);
    assert!(out.starts_with("401 Unauthorized"), "{out}");
}

#[test]
fn request_outside_the_providers_prefixes_is_refused() {
    let f = Fixture::new("request-outside");
    let (code, _, err) = f.run(
        &["request", "reobtimaal", "https://api.2ba.nl/1/json/x"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("belongs to provider `twoba`, not to `reobtimaal`"),
        "{err}"
    );
    let (code, _, err) = f.run(
        &[
            "request",
            "bro",
            "https://www.bronhouderportaal-bro.nl.evil.example/api/v2/validatie",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("belongs to no provider"), "{err}");
    assert_eq!(f.emulator.stats().bro.api.requests, 0);
}

// ---------------------------------------------------------------------------
// Issue 11: refresh-only providers, how `token` got its token, input
// defaults in `explain`, one `-v` line per token fetch. One block, to ease
// merging.
// ---------------------------------------------------------------------------

/// 2BA described as a refresh-only provider: no `[login]`, the same id (so
/// it uses the store entry a login with the full description leaves), and
/// inputs with defaults.
const TWOBA_REFRESH_ONLY: &str = r#"
[providers.twoba]
name = "2BA, refresh only"
api = ["https://api.2ba.nl/"]

[providers.twoba.inputs]
client_id = { env = "TWOBA_CLIENT_ID", default = "tokenauth-demo" }
client_secret = { env = "TWOBA_CLIENT_SECRET", secret = true }
audience = { default = "api.2ba.nl" }

[providers.twoba.refresh]
url = "https://authorize.2ba.nl/OAuth/Token"
rotate = true
on_error = { status = [400], action = "fail" }
headers = { "X-Audience" = "{{ inputs.audience }}" }

[providers.twoba.refresh.fields]
grant_type = "refresh_token"
refresh_token = "{{ token.refresh }}"
client_id = "{{ inputs.client_id }}"
client_secret = "{{ inputs.client_secret }}"

[providers.twoba.response]
access_token = "/access_token"
refresh_token = "/refresh_token"
expires_in = "/expires_in"

[providers.twoba.inject]
header = "Authorization"
value = "Bearer {{ token.access }}"
"#;

/// A fresh directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tokenauth-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn explain_a_refresh_only_provider_and_input_defaults() {
    let f = Fixture::new("explain-refresh-only");
    let tmp = Scratch::new("explain-refresh-only");
    let config = tmp.file("providers.toml", TWOBA_REFRESH_ONLY);
    let (code, out, err) = f.run(
        &["--config", &config, "explain", "twoba"],
        &[("TWOBA_CLIENT_ID", "")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("static credentials") && !out.contains("expiry: never"),
        "{out}"
    );
    assert!(
        out.contains(r#"$TWOBA_CLIENT_ID, else default "tokenauth-demo""#)
            && out.contains(r#"default "api.2ba.nl""#)
            && !out.contains("supplied per connection"),
        "{out}"
    );
    insta::assert_snapshot!("explain_twoba_refresh_only", out);
    assert_eq!(f.emulator.stats().twoba.token.requests, 0);
}

#[test]
fn token_says_how_it_was_obtained() {
    let f = Fixture::new("token-obtained");
    let (code, out, err) = f.run(&["token", "reobtimaal"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("obtained:   logged in at https://api.reobtimaal-diensten.nl/api/Token\n"),
        "{out}"
    );
    let (code, out, err) = f.run(&["token", "bro"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("obtained:   static credential"), "{out}");

    // A store kept between runs: the second run uses the token the first
    // published; with --renew it refreshes with the stored refresh token.
    let store = Scratch::new("token-obtained-store");
    let dir = store.path("rt");
    let (code, out, err) = f.run(&["--store", &dir, "token", "twoba"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("obtained:   logged in at https://authorize.2ba.nl/OAuth/Token\n"),
        "{out}"
    );
    let (code, out, err) = f.run(&["--store", &dir, "token", "twoba"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("obtained:   read from the shared store (another process fetched it)\n"),
        "{out}"
    );
    assert_eq!(f.emulator.stats().twoba.token.requests, 1);
    let (code, out, err) = f.run(&["--store", &dir, "token", "twoba", "--renew"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "obtained:   refreshed with the stored refresh token at https://authorize.2ba.nl/OAuth/Token\n"
        ),
        "{out}"
    );
}

#[test]
fn token_for_a_refresh_only_provider_renews_with_the_stored_refresh_token() {
    let f = Fixture::new("token-refresh-only");
    let tmp = Scratch::new("token-refresh-only");
    let config = tmp.file("providers.toml", TWOBA_REFRESH_ONLY);
    let dir = tmp.path("store");

    // Nothing stored, no --store: say why there is no token and what to do.
    let (code, out, err) = f.run(&["--config", &config, "token", "twoba"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("no refresh token is stored")
            && err.contains("hint: without --store")
            && err.contains("store put twoba --connection default"),
        "{err}"
    );

    // A login with the full description leaves a refresh token in the store;
    // the refresh-only description renews with it.
    let (code, _, err) = f.run(&["--store", &dir, "token", "twoba"], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = f.run(
        &[
            "--config", &config, "--store", &dir, "token", "twoba", "--renew",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("obtained:   refreshed with the stored refresh token")
            && !out.contains("static credentials")
            && !out.contains("expires:    never")
            && (out.contains("(in 1m 59s)") || out.contains("(in 2m)")),
        "{out}"
    );
    let s = f.emulator.stats().twoba.token;
    assert_eq!(s.requests, 2, "one login, one refresh: {s:?}");

    // An empty store: the hint says how to put a token in it; a token
    // written there (here by hand, as `store put` writes it) works.
    let empty = tmp.path("empty");
    let (code, _, err) = f.run(
        &["--config", &config, "--store", &empty, "token", "twoba"],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    let key = tokenauth_core::store::StoreKey {
        provider: "twoba",
        connection: "default",
    };
    let target = tokenauth_core::store::FileStore::new(&empty).path_for(&key);
    assert!(
        err.contains("put it in this store: `tokenauth --store STORE store put twoba --connection default < token.txt`"),
        "{err}"
    );
    let held = tokenauth_core::store::FileStore::new(&dir).path_for(&key);
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(held).unwrap()).unwrap();
    let token = record["refresh_token"].as_str().unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(
        &target,
        format!(r#"{{"provider":"twoba","connection":"default","refresh_token":"{token}"}}"#),
    )
    .unwrap();
    let (code, out, err) = f.run(
        &["--config", &config, "--store", &empty, "token", "twoba"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("refreshed with the stored refresh token"),
        "{out}"
    );
    assert!(!format!("{out}{err}").contains(token), "{out}{err}");
}

#[test]
fn verbose_logs_one_line_per_token_fetch() {
    let f = Fixture::new("verbose");
    let (code, _, err) = f.run(&["token", "reobtimaal"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "no -v, no log: {err}");

    let (code, _, err) = f.run(&["-v", "token", "reobtimaal"], &[]);
    assert_eq!(code, 0, "{err}");
    let fetches: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("token acquired"))
        .collect();
    assert_eq!(fetches.len(), 1, "one line per token fetch:\n{err}");
    assert!(fetches[0].contains("INFO"), "{err}");
    assert!(
        !err.contains("DEBUG") && !err.contains("TRACE") && !err.contains('\u{1b}'),
        "-v is INFO, plain text:\n{err}"
    );
}

/// A directory (not a FIFO: the CLI would block on one if this regressed)
/// where the store's file should be.
#[test]
fn token_names_the_store_file_that_is_in_the_way() {
    let f = Fixture::new("store-in-the-way");
    let tmp = Scratch::new("store-in-the-way");
    let dir = tmp.path("store");
    let in_the_way =
        tokenauth_core::store::FileStore::new(&dir).path_for(&tokenauth_core::store::StoreKey {
            provider: "twoba",
            connection: "default",
        });
    std::fs::create_dir_all(&in_the_way).unwrap();
    let (code, _, err) = f.run(&["--store", &dir, "token", "twoba"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("could not read the shared token state")
            && err.contains(&format!("cause: {} is a directory", in_the_way.display()))
            && err.contains("remove it"),
        "{err}"
    );
}

#[test]
fn token_keeps_the_rotated_refresh_token_in_redis_for_the_next_process() {
    let f = Fixture::new("redis-store");
    let redis = redis_server::RedisServer::start();
    let url = redis.url();
    let key = [(
        "TOKENAUTH_STORE_KEY",
        "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )];
    // The first process logs in and leaves 2BA's refresh token in Redis.
    let (code, out, err) = f.run(&["--store", &url, "token", "twoba"], &key);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("obtained:   logged in at"), "{out}");
    // The next process adopts the token the first published, no request.
    let (code, out, err) = f.run(&["--store", &url, "token", "twoba"], &key);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("obtained:   read from the shared store"),
        "{out}"
    );
    assert_eq!(f.emulator.stats().twoba.token.requests, 1);
    // The next two renew, each with the refresh token the last rotated.
    for _ in 0..2 {
        let args = ["--store", &url, "token", "twoba", "--renew"];
        let (code, out, err) = f.run(&args, &key);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("obtained:   refreshed with the stored refresh token at"),
            "{out}"
        );
    }
    let token = f.emulator.stats().twoba.token;
    assert_eq!(token.requests_by_grant.password, 1);
    assert_eq!(token.requests_by_grant.refresh_token, 2);
    assert_eq!(
        token.refresh_reuse, 0,
        "a rotated refresh token was used again"
    );
}

/// `explain` lists every part of a several-credential `[inject]`, secrets
/// masked; `check` names them all.
#[test]
fn explain_and_check_show_every_inject_part() {
    let f = Fixture::new("explain-several");
    let tmp = Scratch::new("explain-several");
    let config = tmp.file(
        "providers.toml",
        r#"
[providers.mixed]
api = ["https://api.mixed.example/"]
inputs.key = { env = "MIXED_KEY", secret = true }
inputs.tenant = { env = "MIXED_TENANT" }
[providers.mixed.inject]
basic = { username = "{{ inputs.tenant }}", password = "{{ inputs.key }}" }
headers = { "X-Api-Key" = "{{ inputs.key }}", "X-Tenant" = "{{ inputs.tenant }}" }
query = { api_key = "{{ inputs.key }}", v = "2" }
"#,
    );
    let env = [
        ("MIXED_KEY", "mixed-secret-key-0d1e"),
        ("MIXED_TENANT", "acme"),
    ];
    let (code, out, err) = f.run(&["--config", &config, "explain", "mixed"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("mixed-secret-key-0d1e"), "{out}");
    let attached: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "attached to each API request:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    insta::assert_debug_snapshot!("explain_several_inject_parts", attached);
    let (code, out, err) = f.run(&["--config", &config, "check"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "injects basic auth, header x-api-key, header x-tenant, query ?api_key=, query ?v="
        ),
        "{out}"
    );
}
