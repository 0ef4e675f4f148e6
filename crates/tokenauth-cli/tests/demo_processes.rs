//! `tokenauth demo --store redis://…`: the demo's multi-process part, run
//! as a user runs it, against a real `redis-server` on a free loopback port
//! (started here, no persistence, killed on drop; the test fails with an
//! install hint when `redis-server` is missing).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A real `redis-server` on a free loopback port (the Redis store's own
/// test harness).
#[allow(dead_code)]
#[path = "../../tokenauth-redis/tests/helpers/mod.rs"]
mod redis_server;

use tokenauth_emulator::{
    BRO_DEMO_PASSWORD, REOB_DEMO_PASSWORD, TWOBA_DEMO_CLIENT_SECRET, TWOBA_DEMO_PASSWORD,
};

/// `tokenauth ARGS` in the repository root (where `providers.toml` is),
/// with `TOKENAUTH_STORE_KEY` unset (the demo makes a key for the run) and
/// no store or config from the environment: exit code, stdout, stderr.
fn tokenauth(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
        .current_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
        .env_remove("TOKENAUTH_STORE_KEY")
        .env_remove("TOKENAUTH_STORE")
        .env_remove("TOKENAUTH_CONFIG")
        .args(args)
        .output()
        .expect("run tokenauth");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let all = format!("{stdout}{stderr}");
    for secret in [
        REOB_DEMO_PASSWORD,
        TWOBA_DEMO_PASSWORD,
        TWOBA_DEMO_CLIENT_SECRET,
        BRO_DEMO_PASSWORD,
        "hunter2",
    ] {
        assert!(!all.contains(secret), "a secret in the output:\n{all}");
    }
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// The first number after `label` on the line that starts with it.
fn count(out: &str, label: &str) -> u64 {
    let line = out
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no line `{label}` in:\n{out}"));
    line[label.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{label}` in {line:?}"))
}

#[test]
fn three_processes_share_2bas_token_through_redis() {
    let redis = redis_server::RedisServer::start();
    let url = redis.url();
    let (code, out, err) = tokenauth(&[
        "demo",
        "--store",
        &url,
        "--processes",
        "3",
        "--duration",
        "3s",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // The single-process demo ran first, as without --store.
    assert!(
        out.contains("result: every request succeeded"),
        "{out}{err}"
    );
    assert!(
        out.contains("4. 3 processes x 4 workers on one Redis store")
            && out.contains("TOKENAUTH_STORE_KEY is not set"),
        "{out}{err}"
    );
    // It ran: every process called, and every call got a 200.
    for p in 1..=3 {
        assert!(
            count(&out, &format!("process {p}:")) > 0,
            "process {p} made no call:\n{out}{err}"
        );
    }
    let calls = count(&out, "API requests:");
    assert!(calls > 0, "{out}{err}");
    assert!(
        out.contains(&format!("API requests:   {calls} ({calls} x 200)"))
            && out.contains(&format!("caller errors:  0 of {calls} calls")),
        "{out}{err}"
    );
    // One token for the three processes: one login, and the refresh token,
    // rotated at each renewal, never presented twice.
    assert_eq!(count(&out, "refresh reuse:"), 0, "{out}{err}");
    let token = out
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("token requests: "))
        .unwrap_or_else(|| panic!("no token requests line:\n{out}"));
    assert!(
        token.contains(": 1 login (grant password), "),
        "{token}\n{out}{err}"
    );
    // A 2 s token is renewed at half its life: about one refresh a second,
    // so 2 in 3 s (the bounds leave room for a loaded machine).
    let refreshes: u64 = token
        .split(", ")
        .nth(1)
        .filter(|r| r.contains(" (grant refresh_token)"))
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no refresh count in {token:?}"));
    assert!((1..=4).contains(&refreshes), "{token}\n{out}{err}");
    assert!(
        out.contains(&format!(
            "\nverdict: 3 processes shared one token: 1 login, {} refresh{}, 0 reuse, 0 errors\n",
            refreshes,
            if refreshes == 1 { "" } else { "es" }
        )),
        "{out}{err}"
    );
}

#[test]
fn a_store_that_cannot_be_opened_is_a_quick_clear_error() {
    let started = Instant::now();
    let (code, out, err) = tokenauth(&["demo", "--store", "redis://:hunter2@127.0.0.1:1/0"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("the Redis store could not be opened")
            && err.contains("redis://127.0.0.1:1/0"),
        "{err}"
    );
    assert!(out.is_empty(), "nothing ran: {out}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let (code, _, err) = tokenauth(&["demo", "--processes", "3"]);
    assert_eq!(code, 2);
    assert!(err.contains("add --store redis://HOST:PORT/DB"), "{err}");

    let (code, _, err) = tokenauth(&["demo", "--store", "some/dir", "--processes", "2"]);
    assert_eq!(code, 2);
    assert!(err.contains("takes a Redis URL"), "{err}");
}

/// A directory in `$TOKENAUTH_STORE`, set for the other commands, does not
/// stop the main job: the demo says it keeps its tokens in memory.
#[test]
fn a_store_directory_does_not_stop_the_demo() {
    let (code, out, err) = tokenauth(&["demo", "--store", "some/dir"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("keeps its tokens in memory"), "{err}");
    assert!(out.contains("result: every request succeeded"), "{out}");
    assert!(!Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../some/dir")).exists());
}
