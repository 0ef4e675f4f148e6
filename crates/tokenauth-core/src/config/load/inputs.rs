//! `[providers.ID.inputs]`: the values each connection supplies, and the
//! scope the provider's templates are checked against.

use super::report::Ctx;
use super::table::{IDENTIFIER_PATTERN, Rule, Table, read_table};
use super::tree::Kind;
use super::values::{ENV_NAME_PATTERN, shape};
use crate::config::model::{Input, InputPattern};

/// What a provider's templates may refer to.
#[derive(Clone, Copy)]
pub(super) struct Scope<'p> {
    pub(super) provider: &'p str,
    pub(super) inputs: &'p Inputs,
    /// The provider fetches tokens: it has a `[login]` or a `[refresh]`
    /// table (a refresh-only provider starts from a stored refresh token).
    pub(super) fetches: bool,
    /// The provider has a `login.assertion` table (written, whether or not
    /// it loaded): `{{ assertion }}` names something.
    pub(super) has_assertion: bool,
    /// `{{ assertion }}` may be used in the templates read with this scope
    /// (the fields, headers and basic of the token requests).
    pub(super) assertion_here: bool,
}

impl Scope<'_> {
    /// This scope, where `{{ assertion }}` may be used when the provider has
    /// an assertion table.
    pub(super) fn token_request(self) -> Self {
        Scope {
            assertion_here: true,
            ..self
        }
    }
}

/// A provider's inputs, and what could not be read of them: a template that
/// names an input whose declaration already has an error is not reported
/// again as naming an undeclared input.
#[derive(Default)]
pub(super) struct Inputs {
    pub(super) list: Vec<Input>,
    /// Names declared with an unreadable spec (`user = "ENV"`).
    unreadable: Vec<String>,
    /// `inputs` is there but not a table: any name may have been meant.
    all_unreadable: bool,
}

impl Inputs {
    pub(super) fn declares(&self, name: &str) -> bool {
        self.all_unreadable
            || self.list.iter().any(|i| i.name == name)
            || self.unreadable.iter().any(|n| n == name)
    }
}

/// Reads the provider's `inputs` key.
pub(super) fn read(ctx: &mut Ctx<'_>, provider: &mut Table<'_, '_>) -> Inputs {
    let mut inputs = Inputs {
        all_unreadable: provider.peek("inputs").is_some(),
        ..Inputs::default()
    };
    let Some(map) = provider.map_of_tables(
        ctx,
        "inputs",
        "The values each connection supplies, by name: {{ inputs.NAME }} in templates.",
        IDENTIFIER_PATTERN,
        "an input",
        &read_one,
    ) else {
        return inputs;
    };
    inputs.all_unreadable = false;
    for (name, entry) in map.named_entries(ctx, "input name", "use letters, digits, `_` or `-`") {
        let path = map.child_path(name);
        match read_table(ctx, &entry.value, path, "an input", &read_one) {
            Some(mut input) => {
                input.name = name.to_owned();
                inputs.list.push(input);
            }
            None => inputs.unreadable.push(name.to_owned()),
        }
    }
    inputs
}

/// One input's spec (`{ env = "...", secret = true }`); its name is set by
/// the caller.
fn read_one(ctx: &mut Ctx<'_>, spec: &mut Table<'_, '_>) -> Input {
    let env = spec
        .str_shaped(
            ctx,
            "env",
            "The environment variable the default connection reads it from.",
            || shape::pattern(ENV_NAME_PATTERN),
        )
        .and_then(|(e, span)| {
            let valid = !e.is_empty()
                && !e.starts_with(|c: char| c.is_ascii_digit())
                && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                ctx.error(
                    span.start,
                    &spec.child_path("env"),
                    format!("`{e}` is not an environment variable name"),
                    Some("use letters, digits and `_`, e.g. \"REOBTIMAAL_USERNAME\"".into()),
                );
            }
            valid.then(|| e.to_owned())
        });
    let secret = spec
        .bool(ctx, "secret", "Never printed, logged or put in an error.")
        .unwrap_or(false);
    let default = spec
        .str(
            ctx,
            "default",
            "Used when neither the connection nor the environment has a value; not with secret = true.",
        )
        .map(|(d, _)| d.to_owned());
    let pattern = spec
        .str(
            ctx,
            "pattern",
            "A regular expression every value must match as a whole (e.g. a tenant id's form).",
        )
        .and_then(|(p, span)| match InputPattern::new(p) {
            Ok(p) => Some(p),
            Err(message) => {
                ctx.error(
                    span.start,
                    &spec.child_path("pattern"),
                    message,
                    Some("write a regular expression such as \"[a-z0-9-]+\" (no look-around or back-references); it must match the whole value".into()),
                );
                None
            }
        });
    let one_of = spec
        .strings(
            ctx,
            "one_of",
            "The only values allowed, e.g. a provider's regions or data centres.",
            shape::string,
            true,
        )
        .map(|(node, items)| {
            if items.is_empty() && matches!(&node.kind, Kind::Array(a) if a.is_empty()) {
                ctx.error(
                    node.at(),
                    &spec.child_path("one_of"),
                    "`one_of` is empty: no value would be allowed",
                    Some("list the allowed values, or leave the key out".into()),
                );
            }
            items
                .into_iter()
                .map(|(v, _)| v.to_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if let (Some(d), Some(node)) = (&default, spec.peek("default")) {
        let probe = Input {
            name: String::new(),
            env: None,
            secret: false,
            default: None,
            pattern: pattern.clone(),
            one_of: one_of.clone(),
        };
        if let Some(why) = probe.violation(d) {
            ctx.error(
                node.at(),
                &spec.child_path("default"),
                format!("the default `{d}` is not allowed: {why}"),
                Some("give a default the input's own constraint accepts".into()),
            );
        }
    }
    spec.rule(Rule::ForbiddenWhenTrue {
        flag: "secret",
        key: "default",
    });
    if secret && let Some(v) = spec.peek("default") {
        ctx.error(
            v.at(),
            &spec.child_path("default"),
            "a secret input cannot have a default in the file",
            Some(
                "read it from the environment with env = \"...\" or supply it per connection"
                    .into(),
            ),
        );
    }
    Input {
        name: String::new(),
        env,
        secret,
        default: default.filter(|_| !secret),
        pattern,
        one_of,
    }
}
