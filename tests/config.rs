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

/// `Providers::from_env` reads `$TOKENAUTH_CONFIG`. Run in a child process
/// of this test binary (setting a variable in this one would be `unsafe`
/// and race the other tests): the child is the ignored test below.
#[test]
fn from_env_reads_the_file_tokenauth_config_names() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/valid/minimal_api_key.toml");
    let run = |config: Option<&Path>| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--ignored", "--exact", "from_env_child", "--nocapture"]);
        match config {
            Some(path) => cmd.env("TOKENAUTH_CONFIG", path),
            None => cmd.env_remove("TOKENAUTH_CONFIG"),
        };
        // Somewhere without a providers.toml.
        cmd.current_dir(std::env::temp_dir());
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let named = run(Some(&file));
    assert!(named.contains("from_env: ok ["), "{named}");
    let unset = run(None);
    assert!(
        unset.contains("from_env: error cannot read provider description providers.toml"),
        "{unset}"
    );
}

#[test]
#[ignore = "run by from_env_reads_the_file_tokenauth_config_names in a child process"]
fn from_env_child() {
    match tokenauth::config::Providers::from_env() {
        Ok(p) => println!("from_env: ok {:?}", p.ids().collect::<Vec<_>>()),
        Err(e) => println!("from_env: error {e}"),
    }
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = Providers::from_path("/nonexistent/providers.toml").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/providers.toml") && msg.contains("$TOKENAUTH_CONFIG"),
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

// ---- Many errors: the report is capped, counted and in file order ----

/// A provider whose `[inject]` inline table carries `n` unknown keys on one
/// line (`k0 = 1, k1 = 1, ...`), or one per line after the table.
fn many_unknown_keys(n: usize, one_line: bool) -> String {
    let mut src = String::from("[providers.x]\napi = [\"https://a.example/\"]\n");
    if one_line {
        src.push_str("inject = { header = \"A\", value = \"v\"");
        for i in 0..n {
            src.push_str(&format!(", k{i} = 1"));
        }
        src.push_str(" }\n");
    } else {
        src.push_str("inject = { header = \"A\", value = \"v\" }\n");
        for i in 0..n {
            src.push_str(&format!("k{i} = 1\n"));
        }
    }
    src
}

fn assert_capped(src: &str, n: usize) -> tokenauth::ConfigErrors {
    let errors = Providers::from_toml("big.toml", src).unwrap_err();
    assert_eq!(errors.diagnostics.len(), 200, "the first 200 are listed");
    assert_eq!(errors.omitted, n - 200, "the rest are counted");
    assert_eq!(errors.total(), n);
    // The first 200 in file order: k0 .. k199.
    for (i, d) in errors.diagnostics.iter().enumerate() {
        assert_eq!(d.message, format!("unknown key `k{i}`"), "{d}");
    }
    let shown = errors.to_string();
    assert!(
        shown.starts_with(&format!(
            "big.toml is not a valid provider description ({n} errors):\n"
        )),
        "{}",
        &shown[..200]
    );
    assert!(
        shown.ends_with(&format!(
            "... and {} more errors not shown (only the first 200 are listed): fix these and check again\n",
            n - 200
        )),
        "{}",
        &shown[shown.len() - 300..]
    );
    assert_eq!(
        shown.lines().count(),
        1 + 2 * 200 + 1,
        "header, 200 x (error, help), tail"
    );
    errors
}

#[test]
fn errors_on_one_huge_line_are_capped_and_counted() {
    // ~160k errors on one line of ~2 MB (the quadratic case of finding 8).
    let n = 160_000;
    let src = many_unknown_keys(n, true);
    assert!(src.len() > 1_900_000);
    let errors = assert_capped(&src, n);
    // Columns are right all along the line: `k{i}` starts where the text says.
    let line = src.lines().nth(2).unwrap();
    for (i, d) in errors.diagnostics.iter().enumerate() {
        let column = line.find(&format!(", k{i} = ")).unwrap() + 3;
        assert_eq!((d.line, d.column), (3, column), "{d}");
    }
}

#[test]
fn errors_on_many_lines_are_capped_and_counted() {
    let n = 160_000;
    let errors = assert_capped(&many_unknown_keys(n, false), n);
    for (i, d) in errors.diagnostics.iter().enumerate() {
        assert_eq!((d.line, d.column), (i + 4, 1), "{d}");
    }
}

#[test]
fn syntax_errors_on_many_lines_are_capped_and_counted() {
    // One syntax error per line: each line is reported once, the first 200 listed.
    let n = 50_000;
    let src = "x = \n".repeat(n);
    let errors = Providers::from_toml("syntax.toml", &src).unwrap_err();
    assert_eq!(errors.diagnostics.len(), 200);
    assert_eq!(errors.total(), n, "one error per line");
    for (i, d) in errors.diagnostics.iter().enumerate() {
        assert_eq!(d.line, i + 1, "{d}");
        assert!(d.message.starts_with("TOML syntax error"), "{d}");
    }
}

#[test]
fn columns_count_characters_not_bytes_on_a_long_line() {
    // Multi-byte keys before each error: the column is in characters.
    let mut src = String::from(
        "[providers.x]\napi = [\"https://a.example/\"]\ninject = { header = \"A\", value = \"v\"",
    );
    let mut expected = Vec::new();
    for i in 0..300 {
        src.push_str(", \"é€");
        // The 1-based column of the key's opening quote, in characters.
        let column = src.lines().nth(2).unwrap().chars().count() - 2;
        src.push_str(&format!("{i}\" = 1"));
        expected.push(column);
    }
    src.push_str(" }\n");
    let errors = Providers::from_toml("wide.toml", &src).unwrap_err();
    assert_eq!(errors.omitted, 100);
    let columns: Vec<usize> = errors.diagnostics.iter().map(|d| d.column).collect();
    assert_eq!(columns, expected[..200]);
}

// ---- Durations are bounded at load time (issue 11, finding 6) ----

/// A provider whose `[expiry]` and login `timeout` are the given durations.
fn with_durations(
    ttl: &str,
    skew: &str,
    timeout: &str,
) -> Result<Providers, tokenauth::ConfigErrors> {
    Providers::from_toml(
        "durations.toml",
        &format!(
            r#"
[providers.api]
api = ["https://api.example.com/"]
login = {{ url = "https://api.example.com/token", timeout = "{timeout}" }}
expiry = {{ ttl = "{ttl}", skew = "{skew}" }}
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
        ),
    )
}

#[test]
fn durations_up_to_ten_years_are_accepted() {
    let providers = with_durations("10y", "10y", "10y").unwrap_or_else(|e| panic!("{e}"));
    let api = providers.get("api").unwrap();
    assert_eq!(api.expiry.ttl, Some(tokenauth::config::MAX_DURATION));
    assert_eq!(
        api.login.as_ref().unwrap().timeout,
        tokenauth::config::MAX_DURATION
    );
    assert_eq!(tokenauth::config::MAX_DURATION.as_secs(), 315_576_000);
}

#[test]
fn durations_over_ten_years_are_rejected_with_the_limit() {
    let errors = with_durations("10y 1s", "584000000000y", "300000000000y").unwrap_err();
    let paths: Vec<&str> = errors.diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "providers.api.login.timeout",
            "providers.api.expiry.ttl",
            "providers.api.expiry.skew"
        ]
    );
    for d in &errors.diagnostics {
        assert!(
            d.message.ends_with("is longer than the limit of 10 years"),
            "{d}"
        );
        assert!(
            d.help.as_deref().unwrap().contains("at most \"10y\""),
            "{d}"
        );
    }
}

// ---- One error per cause (issue 11, frictions) ----

#[test]
fn a_broken_table_causes_no_follow_on_errors() {
    // Each provider of the file has exactly one mistake (a rejected http login
    // URL, a login/inputs/response/expiry that is not a table, a bad pointer,
    // a rejected api prefix, ...): exactly one error each.
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/invalid/one_error_per_cause.toml");
    let src = std::fs::read_to_string(&path).unwrap();
    let ids: Vec<&str> = src
        .lines()
        .filter_map(|l| l.strip_prefix("[providers.")?.strip_suffix(']'))
        .collect();
    assert_eq!(ids.len(), 9);
    let errors = load(&path).unwrap_err();
    for id in &ids {
        let of_id: Vec<String> = errors
            .diagnostics
            .iter()
            .filter(|d| {
                d.path.starts_with(&format!("providers.{id}."))
                    || d.path == format!("providers.{id}")
            })
            .map(|d| d.to_string())
            .collect();
        assert_eq!(of_id.len(), 1, "{id}: {of_id:#?}");
    }
    assert_eq!(errors.total(), ids.len());
}

// ---- A refresh inherits the login's client authentication and headers ----

#[test]
fn refresh_inherits_basic_and_headers_unless_it_sets_its_own() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/valid/refresh_inherits_client_auth.toml");
    let providers = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let header_names = |r: &tokenauth::config::TokenRequest| {
        r.headers
            .iter()
            .map(|(n, _)| n.as_str().to_owned())
            .collect::<Vec<_>>()
    };

    let p = providers.get("inherits").unwrap();
    let (login, refresh) = (
        p.login.as_ref().unwrap(),
        &p.refresh.as_ref().unwrap().request,
    );
    assert!(login.basic.is_some());
    assert_eq!(
        refresh.basic, login.basic,
        "client authentication is inherited"
    );
    assert_eq!(
        header_names(refresh),
        ["x-tenant", "accept"],
        "headers are inherited"
    );

    let p = providers.get("own").unwrap();
    let refresh = &p.refresh.as_ref().unwrap().request;
    assert_eq!(refresh.basic, None, "`basic = {{}}` opts out");
    assert_eq!(
        header_names(refresh),
        ["x-refresh"],
        "own headers replace the login's set"
    );

    let p = providers.get("none").unwrap();
    let refresh = &p.refresh.as_ref().unwrap().request;
    assert!(refresh.headers.is_empty(), "`headers = {{}}` opts out");
    assert_eq!(refresh.basic, None, "nothing to inherit");
}

#[test]
fn an_empty_basic_table_in_login_is_still_an_error() {
    // `basic = {}` means "none" only where there is something to opt out of.
    let errors = Providers::from_toml(
        "login_basic.toml",
        r#"
[providers.api]
api = ["https://api.example.com/"]
login = { url = "https://api.example.com/token", basic = {} }
expiry = { ttl = "60m" }
inject = { header = "Authorization", value = "Bearer {{ token.access }}" }
"#,
    )
    .unwrap_err();
    assert!(
        errors
            .diagnostics
            .iter()
            .all(|d| d.path == "providers.api.login.basic" && d.message.starts_with("missing key")),
        "{errors}"
    );
}

/// Client credentials are never inherited by a refresh on another origin
/// (where the client secret was never sent): the loader asks the user to say
/// what that endpoint gets, and accepts either answer.
#[test]
fn refresh_on_another_origin_does_not_inherit_client_auth() {
    let toml = |refresh_extra: &str| {
        format!(
            r#"
[providers.split]
api = ["https://api.example.com/"]
inputs.secret = {{ env = "SPLIT_SECRET", secret = true }}
login = {{ url = "https://login.example.com/token", fields = {{ grant_type = "client_credentials" }}, basic = {{ username = "cid", password = "{{{{ inputs.secret }}}}" }}, headers = {{ X-Tenant = "t1" }} }}
refresh = {{ url = "https://other.example.net/token", fields = {{ grant_type = "refresh_token", refresh_token = "{{{{ token.refresh }}}}" }} {refresh_extra} }}
response = {{ access_token = "/access_token", refresh_token = "/refresh_token", expires_in = "/expires_in" }}
expiry.ttl = "1h"
inject = {{ header = "Authorization", value = "Bearer {{{{ token.access }}}}" }}
"#
        )
    };
    let err = tokenauth::Providers::from_toml("split.toml", &toml("")).unwrap_err();
    let d = &err.diagnostics;
    assert_eq!(d.len(), 1, "{err}");
    assert_eq!(d[0].path, "providers.split.refresh");
    assert!(
        d[0].message
            .contains("another origin (https://other.example.net)"),
        "{err}"
    );
    assert!(d[0].message.contains("`basic` and `headers`"), "{err}");
    let help = d[0].help.as_deref().unwrap_or("");
    assert!(help.contains("basic = {} and headers = {}"), "{help}");

    let none = tokenauth::Providers::from_toml("split.toml", &toml(", basic = {}, headers = {}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let refresh = &none.get("split").unwrap().refresh.as_ref().unwrap().request;
    assert!(refresh.basic.is_none() && refresh.headers.is_empty());

    let own = tokenauth::Providers::from_toml(
        "split.toml",
        &toml(", basic = { username = \"cid\", password = \"{{ inputs.secret }}\" }, headers = {}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let refresh = &own.get("split").unwrap().refresh.as_ref().unwrap().request;
    assert!(refresh.basic.is_some(), "written out, it is sent");
}

#[test]
fn an_inject_that_is_not_a_table_is_not_also_missing() {
    // The rules between tables ask whether a table is written, not whether
    // it loaded (before the restructuring, this also said "missing [inject]
    // table").
    let errors = Providers::from_toml(
        "x.toml",
        "[providers.x]\napi = \"https://a.example/\"\ninject = \"Authorization\"\n",
    )
    .unwrap_err();
    assert_eq!(errors.total(), 1, "{errors}");
    assert_eq!(
        errors.diagnostics[0].message,
        "expected a table, found a string"
    );
}

// ---- Unknown keys are reported from what each table's reader takes ----

#[test]
fn an_unknown_key_far_from_any_says_what_its_table_accepts() {
    let errors = Providers::from_toml(
        "x.toml",
        "[providers.x]\napi = \"https://a.example/\"\ninject = { header = \"A\", value = \"v\" }\nexpiry = { zzzz = 1 }\n",
    )
    .unwrap_err();
    let d = &errors.diagnostics[0];
    assert_eq!(
        (d.path.as_str(), d.message.as_str()),
        ("providers.x.expiry.zzzz", "unknown key `zzzz`")
    );
    assert_eq!(
        d.help.as_deref(),
        Some("[expiry] accepts: ttl, skew, jwt_exp")
    );
}

// ---- Descriptions from serde go through the same loader (issue 12, item 3) ----

/// One provider with three mistakes (an unknown key, an undeclared input and
/// no expiry source), as TOML text and as JSON.
const THREE_MISTAKES_TOML: &str = r#"
[providers.api]
api = ["https://api.example.com/"]
inputs.user = { env = "API_USER" }
login = { url = "https://api.example.com/token", tiemout = "30s", fields = { username = "{{ inputs.usr }}" } }
inject = { header = "Authorization", value = "Bearer {{ token.access }}" }
"#;

fn three_mistakes_provider() -> serde_json::Value {
    serde_json::json!({
        "api": ["https://api.example.com/"],
        "inputs": { "user": { "env": "API_USER" } },
        "login": {
            "url": "https://api.example.com/token",
            "tiemout": "30s",
            "fields": { "username": "{{ inputs.usr }}" }
        },
        "inject": { "header": "Authorization", "value": "Bearer {{ token.access }}" }
    })
}

/// Message, key path and help of each diagnostic, sorted: the problems are
/// the same whatever order the format keeps keys in (a `serde_json::Value`
/// sorts them).
fn what_and_where(errors: &tokenauth::ConfigErrors) -> Vec<(String, String, Option<String>)> {
    let mut v: Vec<_> = errors
        .diagnostics
        .iter()
        .map(|d| (d.message.clone(), d.path.clone(), d.help.clone()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_description_from_serde_gets_the_diagnostics_of_the_same_toml() {
    let from_toml = Providers::from_toml("api.toml", THREE_MISTAKES_TOML).unwrap_err();
    let expected = what_and_where(&from_toml);
    assert_eq!(expected.len(), 3, "{from_toml}");
    assert!(from_toml.diagnostics.iter().all(|d| d.line > 0));

    let json = serde_json::json!({ "providers": { "api": three_mistakes_provider() } });
    let from_value = Providers::from_value("api.json", &json).unwrap_err();
    assert_eq!(what_and_where(&from_value), expected);
    let built = Providers::builder()
        .name("api.json")
        .provider("api", three_mistakes_provider())
        .build()
        .unwrap_err();
    assert_eq!(what_and_where(&built), expected);

    // No made-up positions: none in the values, none printed.
    for d in from_value.diagnostics.iter().chain(&built.diagnostics) {
        assert_eq!((d.file.as_str(), d.line, d.column), ("api.json", 0, 0));
        assert!(
            d.to_string()
                .starts_with(&format!("api.json: `{}`: ", d.path)),
            "{d}"
        );
    }

    // serde's Deserialize: the same problems, as the error's text.
    let err = serde_json::from_str::<Providers>(&json.to_string()).unwrap_err();
    let text = err.to_string();
    for (message, path, help) in &expected {
        assert!(text.contains(&format!("`{path}`: {message}")), "{text}");
        assert!(
            text.contains(&format!("help: {}", help.as_deref().unwrap())),
            "{text}"
        );
    }
    assert!(!text.contains(":0:0"), "{text}");
}

#[test]
fn a_valid_description_from_serde_equals_the_toml_one() {
    let seed = Providers::from_path(seed_path()).unwrap();
    // The seed as a serde value (TOML's own, which keeps the key order) ...
    let value: toml::Value =
        toml::from_str(&std::fs::read_to_string(seed_path()).unwrap()).unwrap();
    let from_value =
        Providers::from_value("providers.toml", &value).unwrap_or_else(|e| panic!("{e}"));
    // ... and as JSON text, through serde's Deserialize.
    let json = serde_json::to_string(&value).unwrap();
    let deserialized: Providers = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    let shown = |p: &Providers| serde_json::to_string(p).unwrap();
    assert_eq!(shown(&from_value), shown(&seed));
    assert_eq!(shown(&deserialized), shown(&seed));
}

#[test]
fn what_serde_can_say_but_the_language_cannot_is_an_error() {
    // A key given twice and a null: neither exists in TOML.
    let twice = serde_json::from_str::<Providers>(r#"{ "providers": {}, "providers": {} }"#)
        .unwrap_err()
        .to_string();
    assert!(
        twice.contains("the key `providers` is given twice"),
        "{twice}"
    );
    let null = Providers::builder()
        .provider("x", serde_json::json!({ "api": null }))
        .build()
        .unwrap_err();
    assert_eq!(null.diagnostics[0].path, "providers.x", "{null}");
    assert!(
        null.diagnostics[0]
            .message
            .starts_with("cannot read the description of provider `x`"),
        "{null}"
    );
}
