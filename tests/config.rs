//! The providers.toml language: the seed file, valid examples and invalid
//! files, each invalid file's full error output pinned by a snapshot.

use std::path::{Path, PathBuf};

use tokenauth::config::Providers;

fn data(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Result<Providers, tokenauth::ConfigErrors> {
    let name = format!(
        "{}",
        path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap()
            .display()
    );
    Providers::from_toml(&name, &std::fs::read_to_string(path).unwrap())
}

fn seed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("providers.toml")
}

#[test]
fn seed_providers_parse_exactly() {
    let providers = Providers::from_path(seed_path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        providers.ids().collect::<Vec<_>>(),
        ["reobtimaal", "twoba", "bro"]
    );

    let reob = providers.get("reobtimaal").unwrap();
    let fields: Vec<&str> = reob
        .login
        .as_ref()
        .unwrap()
        .fields
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        fields,
        ["grant-type", "username", "Password"],
        "names kept exactly, in file order"
    );

    insta::assert_json_snapshot!("seed_providers", providers);
}

#[test]
fn seed_connections_show_secrets_redacted() {
    // A connection per seed provider, filled the way the default connection
    // fills it (secret inputs as secrets): Debug shows `[redacted]`.
    let providers = Providers::from_path(seed_path()).unwrap();
    let mut shown = String::new();
    for p in &providers {
        let mut conn = tokenauth::Connection::new("default");
        for input in &p.inputs {
            let value = format!("value-of-{}", input.name);
            conn = if input.secret {
                conn.with_secret(input.name.clone(), value)
            } else {
                conn.with_input(input.name.clone(), value)
            };
        }
        shown.push_str(&format!("{}: {conn:#?}\n", p.id));
    }
    for secret in [
        "value-of-password",
        "value-of-client_secret",
        "value-of-token",
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
    insta::assert_snapshot!("seed_connections", shown);
}

#[test]
fn valid_examples_parse() {
    let files = data("valid");
    assert!(files.len() >= 3);
    for path in files {
        let providers = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_json_snapshot!(format!("valid_{name}"), providers);
    }
}

#[test]
fn invalid_files_report_every_error_with_position() {
    let files = data("invalid");
    assert!(files.len() >= 15, "at least 15 distinct invalid files");
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let errors = match load(&path) {
            Ok(_) => panic!("{name} should be rejected"),
            Err(e) => e,
        };
        assert!(!errors.diagnostics.is_empty());
        for d in &errors.diagnostics {
            assert!(d.line >= 1 && d.column >= 1, "{name}: {d}");
            assert!(d.file.ends_with(&format!("{name}.toml")));
        }
        insta::assert_snapshot!(format!("invalid_{name}"), errors.to_string());
    }
}

#[test]
fn all_errors_of_a_file_are_reported_at_once() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/invalid/many_errors.toml");
    let errors = load(&path).unwrap_err();
    let paths: Vec<&str> = errors.diagnostics.iter().map(|d| d.path.as_str()).collect();
    for expected in [
        "providers.reobtimaal.login.fields.username",
        "providers.reobtimaal.respnse",
        "providers.reobtimaal.inject.value",
        "providers.bro.inputs.token.scret",
        "providers.bro.inject.basic",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {paths:?}");
    }
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = Providers::from_path("/nonexistent/providers.toml").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/providers.toml") && msg.contains("--config"),
        "{msg}"
    );
}

const SECRET: &str = "s3cr3t-from-env-9f8e7d";
const SECRET_VARS: [&str; 4] = [
    "REOBTIMAAL_PASSWORD",
    "TWOBA_PASSWORD",
    "TWOBA_CLIENT_SECRET",
    "BRO_TOKEN_PASSWORD",
];

/// Runs in a child process (edition 2024 forbids setting env vars in a
/// multi-threaded test without `unsafe`): the environment holds secrets, and
/// nothing loaded from the description may show them.
#[test]
fn env_secret_child() {
    if std::env::var_os("TOKENAUTH_TEST_CHILD").is_none() {
        return;
    }
    assert_eq!(
        std::env::var("TWOBA_PASSWORD").as_deref(),
        Ok(SECRET),
        "the child sees the secrets"
    );
    let providers = Providers::from_path(seed_path()).unwrap();
    let shown = format!(
        "{providers:?} {providers:#?} {}",
        serde_json::to_string(&providers).unwrap()
    );
    assert!(
        !shown.contains(SECRET),
        "a secret from the environment leaked into the loaded config"
    );
}

#[test]
fn loaded_config_never_contains_env_secrets() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child.args([
        "--exact",
        "env_secret_child",
        "--nocapture",
        "--test-threads=1",
    ]);
    child.env("TOKENAUTH_TEST_CHILD", "1");
    for var in SECRET_VARS {
        child.env(var, SECRET);
    }
    let out = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
