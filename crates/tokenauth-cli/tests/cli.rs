//! The `tokenauth` binary, run as a real subprocess; its output is pinned by
//! snapshots.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Runs `tokenauth ARGS` in the repository root and renders exit code,
/// stdout and stderr for a snapshot.
fn run(args: &[&str]) -> (i32, String) {
    run_with(args, &[])
}

/// [`run`] with these environment variables set.
fn run_with(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
        .args(args)
        .current_dir(root())
        .env_remove("TOKENAUTH_CONFIG")
        .env_remove("TOKENAUTH_STORE")
        .env_remove("TOKENAUTH_STORE_KEY")
        .envs(env.iter().copied())
        .output()
        .expect("run tokenauth");
    let code = out.status.code().unwrap_or(-1);
    let text = format!(
        "exit: {code}\n--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (code, text)
}

#[test]
fn schema_prints_the_committed_schema() {
    let (code, text) = run(&["schema"]);
    let committed = std::fs::read_to_string(root().join("providers.schema.json")).unwrap();
    assert_eq!(
        text,
        format!("exit: 0\n--- stdout\n{committed}--- stderr\n"),
        "regenerate it: cargo run -p tokenauth-cli -- schema > providers.schema.json"
    );
    assert_eq!(code, 0);
}

#[test]
fn check_valid_seed_file() {
    let (code, out) = run(&["check"]);
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn check_invalid_file_lists_all_errors_and_exits_2() {
    let (code, out) = run(&["check", "tests/data/invalid/many_errors.toml"]);
    assert_eq!(code, 2, "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn check_json_for_machines() {
    let (code, out) = run(&["check", "--json", "tests/data/invalid/bad_pointer.toml"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(out);
    let (code, out) = run(&["--config", "providers.toml", "check", "--json"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("check_json_valid", out);
}

#[test]
fn check_missing_file_is_invalid_input() {
    let (code, out) = run(&["check", "does-not-exist.toml"]);
    assert_eq!(code, 2);
    assert!(
        out.contains("cannot read provider description does-not-exist.toml"),
        "{out}"
    );
}

#[test]
fn config_comes_from_the_environment_when_not_given() {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
        .arg("check")
        .current_dir(root())
        .env("TOKENAUTH_CONFIG", "tests/data/valid/minimal_api_key.toml")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("minimal_api_key.toml: valid, 1 provider")
    );
}

#[test]
fn bad_arguments_exit_2() {
    let (code, _) = run(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn demo_runs_the_main_job_and_prints_a_deterministic_summary() {
    let (code, out) = run(&["demo"]);
    assert_eq!(code, 0, "{out}");
    // Timing and cache hit/miss split depend on scheduling; the rest is
    // counted by the emulator and is the same on every run.
    let stable: Vec<String> = out
        .lines()
        .map(|l| {
            if l.starts_with("engine counters:") {
                "engine counters: [varies with scheduling]".to_owned()
            } else if let Some((head, _)) = l.split_once(" requests in ") {
                format!("{head} requests in [time]")
            } else {
                l.to_owned()
            }
        })
        .collect();
    insta::assert_snapshot!(stable.join("\n"));
}

// ---- `check` on a file with very many errors (issue 11, finding 8) ----

/// Writes `name` under the test's scratch directory and returns its path.
fn scratch_file(name: &str, text: &str) -> String {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// ~160k unknown keys on one line of ~2 MB, in a file of its own per test.
fn huge_line_file(name: &str) -> String {
    let mut src = String::from(
        "[providers.x]\napi = [\"https://a.example/\"]\ninject = { header = \"A\", value = \"v\"",
    );
    for i in 0..160_000 {
        src.push_str(&format!(", k{i} = 1"));
    }
    src.push_str(" }\n");
    scratch_file(name, &src)
}

#[test]
fn check_lists_the_first_200_errors_and_counts_the_rest() {
    let path = huge_line_file("check-huge-line.toml");
    let (code, out) = run(&["check", &path]);
    assert_eq!(code, 2);
    assert!(
        out.contains("is not a valid provider description (160000 errors):"),
        "{}",
        &out[..300]
    );
    assert_eq!(out.matches("unknown key `k").count(), 200);
    assert!(out.contains("`k199`") && !out.contains("`k200`"));
    assert!(
        out.ends_with(
            "... and 159800 more errors not shown (only the first 200 are listed): fix these and check again\n"
        ),
        "{}",
        &out[out.len() - 300..]
    );
}

#[test]
fn check_json_counts_the_errors_it_does_not_list() {
    let path = huge_line_file("check-huge-line-json.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
        .args(["check", "--json", &path])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"].as_array().unwrap().len(), 200);
    assert_eq!(v["error_count"], 160_000);
    assert_eq!(v["errors_omitted"], 159_800);
    assert_eq!(v["errors"][199]["message"], "unknown key `k199`");
}

// ---- `check` says what a refresh-only provider does (issue 11, frictions) ----

#[test]
fn check_shows_a_refresh_only_provider_as_such() {
    let (code, out) = run(&["check", "tests/data/valid/refresh_only.toml"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "drive        refresh-only: renews with a stored refresh token at POST https://auth.example.com/oauth/token (rotating); no login; injects header authorization"
        ),
        "{out}"
    );
    assert!(!out.contains("static credentials"), "{out}");
}

#[test]
fn a_redis_store_that_cannot_open_is_a_clear_error_without_the_password() {
    let url = "redis://:pw-s3cret@127.0.0.1:1/0";
    let creds = [("REOBTIMAAL_USERNAME", "u"), ("REOBTIMAAL_PASSWORD", "p")];
    // No encryption key: refused before connecting, saying how to set one.
    let (code, out) = run_with(&["token", "reobtimaal", "--store", url], &creds);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("set TOKENAUTH_STORE_KEY"), "{out}");
    assert!(!out.contains("pw-s3cret"), "{out}");
    // A key, but nothing listens there (TOKENAUTH_STORE, as --store).
    let key = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let env = [
        creds[0],
        creds[1],
        ("TOKENAUTH_STORE_KEY", key),
        ("TOKENAUTH_STORE", url),
    ];
    let (code, out) = run_with(&["token", "reobtimaal"], &env);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("could not be reached"), "{out}");
    assert!(out.contains("redis://127.0.0.1:1/0"), "{out}");
    assert!(
        !out.contains("pw-s3cret") && !out.contains("AAAAAAAA"),
        "{out}"
    );
}

/// `tokenauth store put` with `stdin` as the standard input.
fn store_put(dir: &Path, stdin: &[u8], extra: &[&str]) -> (i32, String, String) {
    use std::io::Write as _;
    let mut args = vec!["--store", dir.to_str().unwrap(), "store", "put"];
    args.extend(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenauth"))
        .args(&args)
        .current_dir(root())
        .env_remove("TOKENAUTH_CONFIG")
        .env_remove("TOKENAUTH_STORE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tokenauth");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The first refresh token of a connection goes in through stdin, into the
/// store the workers use; never printed. Bad input is exit 2, nothing
/// stored.
#[test]
fn store_put_reads_a_refresh_token_from_stdin() {
    use secrecy::ExposeSecret as _;
    use tokenauth_core::store::{FileStore, StoreKey, TokenStore as _};

    let dir = std::env::temp_dir().join(format!("tokenauth-store-put-{}", std::process::id()));
    let token = "rt-from-the-console-0123456789";
    let (code, out, err) = store_put(
        &dir,
        format!("{token}\n").as_bytes(),
        &["twoba", "--connection", "acme"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "stored a refresh token for twoba, connection acme, in the file store {}; the next token request refreshes with it\n",
            dir.display()
        )
    );
    assert!(!out.contains(token) && !err.contains(token));
    let stored = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(FileStore::new(&dir).read(&StoreKey {
            provider: "twoba",
            connection: "acme",
        }))
        .unwrap()
        .refresh_token
        .map(|t| t.expose_secret().to_owned());
    assert_eq!(stored.as_deref(), Some(token));
    // A second put replaces it, and says so.
    let (code, out, _) = store_put(&dir, b"rt-second\n", &["twoba", "--connection", "acme"]);
    assert_eq!(code, 0);
    assert!(out.contains("it replaces the one stored before"), "{out}");

    for (stdin, args, says) in [
        (&b""[..], &["twoba"][..], "stdin held no refresh token"),
        (
            b"two words\n",
            &["twoba"],
            "whitespace or control characters",
        ),
        (b"rt\n", &["reobtimaal"], "has no [refresh] table"),
        (b"rt\n", &["nope"], "no provider `nope`"),
    ] {
        let (code, out, err) = store_put(&dir, stdin, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn store_put_without_a_store_says_which_to_give() {
    let (code, text) = run_with(&["store", "put", "twoba"], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("nothing would keep the token"), "{text}");
}
