//! Hostile descriptions: arbitrary text, mutated seed files and arbitrary
//! templates never panic the loader or the template parser, and every
//! rejection carries a position inside the file.
//!
//! The number of cases is bounded for the default test run; raise it with
//! `PROPTEST_CASES=100000 cargo test --test hostile_config`.

use proptest::prelude::*;
use tokenauth::Template;
use tokenauth::config::Providers;

const SEED: &str = include_str!("../providers.toml");

/// `PROPTEST_CASES` if set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn check_positions(src: &str) {
    if let Err(e) = Providers::from_toml("fuzz.toml", src) {
        let lines = src.split('\n').count().max(1);
        for d in &e.diagnostics {
            assert!(
                d.line >= 1 && d.line <= lines,
                "line {} outside 1..={lines}: {d}",
                d.line
            );
            assert!(d.column >= 1, "{d}");
        }
        // In file order, at most the first 200 listed, the rest counted.
        assert!(
            e.diagnostics
                .windows(2)
                .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)),
            "not in file order: {e}"
        );
        assert!(e.diagnostics.len() <= 200 && e.total() == e.diagnostics.len() + e.omitted);
        assert!(e.omitted == 0 || e.diagnostics.len() == 200);
        // Rendering all of them must not panic either.
        let _ = e.to_string();
    }
}

/// Fragments that exercise the grammar of a description, glued at random.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[providers.x]\n".to_owned()),
        Just("[providers.x.login]\n".to_owned()),
        Just("[providers.x.refresh]\n".to_owned()),
        Just("[providers.x.inject]\n".to_owned()),
        Just("api = [\"https://a.example/\"]\n".to_owned()),
        Just("url = \"https://a.example/t\"\n".to_owned()),
        Just("fields = { a = \"{{ inputs.a }}\" }\n".to_owned()),
        Just("inputs.a = { env = \"A\", secret = true }\n".to_owned()),
        Just("header = \"Authorization\"\nvalue = \"Bearer {{ token.access }}\"\n".to_owned()),
        Just("basic = { username = \"u\", password = \"{{ token.refresh }}\" }\n".to_owned()),
        Just("ttl = \"1h\"\n".to_owned()),
        Just("skew = \"200%\"\n".to_owned()),
        Just("rotate = true\n".to_owned()),
        Just("on_error = { status = [400], action = \"login\" }\n".to_owned()),
        Just("access_token = \"/a~\"\n".to_owned()),
        "[a-z_.\\[\\]{}=\" \n%/~-]{0,40}",
    ]
}

proptest! {
    // 512 cases unless PROPTEST_CASES says otherwise (a literal `cases`
    // would override the variable).
    #![proptest_config(ProptestConfig { cases: cases(512), .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,400}") {
        check_positions(&src);
    }

    #[test]
    fn glued_fragments_never_panic(parts in proptest::collection::vec(fragment(), 0..24)) {
        check_positions(&parts.concat());
    }

    #[test]
    fn mutated_seed_file_never_panics(cut in 0..SEED.len(), len in 0usize..64, insert in "\\PC{0,12}") {
        let mut src = SEED.to_owned();
        let start = (0..=cut).rev().find(|&i| src.is_char_boundary(i)).unwrap_or(0);
        let end = (start + len).min(src.len());
        let end = (end..=src.len()).find(|&i| src.is_char_boundary(i)).unwrap_or(src.len());
        src.replace_range(start..end, &insert);
        check_positions(&src);
    }

    #[test]
    fn arbitrary_templates_never_panic(src in "(\\PC|\\{\\{|\\}\\}| inputs\\.| token\\.){0,30}") {
        match Template::parse(&src) {
            Ok(t) => {
                // Rendering with every placeholder filled gives back a string
                // that contains every literal piece.
                let out = t.render(|_| Some("V")).unwrap();
                prop_assert!(out.len() <= src.len() + 8 * src.len());
            }
            Err(e) => prop_assert!(e.offset <= src.len()),
        }
    }
}

#[test]
fn deeply_nested_input_is_rejected_not_overflowed() {
    let deep = format!("a = {}1{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Providers::from_toml("deep.toml", &deep).is_err());
    let deep_tables = format!("a = {}1{}", "{b = ".repeat(50_000), "}".repeat(50_000));
    assert!(Providers::from_toml("deep.toml", &deep_tables).is_err());
}
