//! `providers.schema.json` (for editors: Taplo / Even Better TOML) is the
//! schema the loader generates from its own record of every key
//! (`tokenauth schema`), and agrees with the loader: both accept the seed and
//! the valid examples; both reject the structurally invalid files. The loader checks more than a schema can say
//! (template references, https outside loopback, an expiry source, ...): those
//! files are listed in `LOADER_ONLY` and must still be rejected by the loader.

use std::path::{Path, PathBuf};

use tokenauth::config::Providers;

/// Invalid files whose problem a JSON Schema cannot express.
const LOADER_ONLY: &[&str] = &[
    "absurd_durations",       // a bound on a duration's value (10 years)
    "api_base",               // a rule across api, response and login
    "duplicate_api_prefixes", // equal URLs across providers
    "duplicate_provider_ids", // ids equal but for case
    "inject_header_twice",    // a header name twice, ignoring case
    "insecure_http",          // http:// allowed only for loopback
    "refresh_seed",           // a secret-input rule across inputs and refresh
    "shadowed_api_prefixes",  // a URL template that could render another prefix
    "no_expiry_source",       // needs a cross-table rule
    "static_uses_token",      // placeholder scoping
    "template_unclosed",      // template syntax
    "test_url_outside_api",   // URL containment
    "token_in_wrong_place",   // placeholder scoping
    "two_inject_modes",       // header = "Authorization" beside basic
    "undeclared_input",       // template reference
];

/// Files that are not even TOML: there is nothing to hand to the schema.
const NOT_TOML: &[&str] = &["syntax_error", "duplicate_provider_tables"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("tests/data").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("providers.schema.json")).unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).expect("the schema itself is valid")
}

fn as_json(path: &Path) -> Option<serde_json::Value> {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).ok()
}

/// The committed file is what the loader generates: a key added to (or
/// changed in) a reader shows up here, not only in the loader.
#[test]
fn committed_schema_is_the_generated_one() {
    let generated = tokenauth::config::json_schema();
    let path = root().join("providers.schema.json");
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == generated,
        "providers.schema.json is not the schema the loader generates: regenerate it with \
         `cargo run -p tokenauth-cli -- schema > providers.schema.json` \
         (or `UPDATE_SCHEMA=1 cargo test --test schema`) and commit it"
    );
}

#[test]
fn schema_accepts_what_the_loader_accepts() {
    let v = validator();
    let mut all = vec![root().join("providers.toml")];
    all.extend(files("valid"));
    for path in all {
        assert!(Providers::from_path(&path).is_ok(), "{}", path.display());
        let json = as_json(&path).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{}: schema rejects a valid file: {errors:?}",
            path.display()
        );
    }
}

#[test]
fn schema_rejects_what_the_loader_rejects() {
    let v = validator();
    for path in files("invalid") {
        let name = path.file_stem().unwrap().to_str().unwrap();
        assert!(
            Providers::from_path(&path).is_err(),
            "{name}: loader accepts it"
        );
        let Some(json) = as_json(&path) else {
            assert!(
                NOT_TOML.contains(&name),
                "{name} does not parse as TOML but is not listed in NOT_TOML"
            );
            continue;
        };
        let schema_ok = v.is_valid(&json);
        if LOADER_ONLY.contains(&name) {
            assert!(
                schema_ok,
                "{name}: the schema rejects it too: remove it from LOADER_ONLY"
            );
        } else {
            assert!(
                !schema_ok,
                "{name}: the loader rejects it, the schema should too (or list it in LOADER_ONLY with why)"
            );
        }
    }
}
