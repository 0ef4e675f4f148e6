//! The loader: a description -> [`Providers`], collecting every problem at
//! once.
//!
//! The input is walked by hand (not with serde derive) so that one mistake
//! does not hide the next: every unknown key, bad template, pointer, duration
//! and URL is reported in one go, each with its key path and, for TOML text,
//! its line and column.
//!
//! - [`tree`]: the value tree walked, from TOML text (with byte offsets) or
//!   from any serde input (without positions).
//! - [`table`]: the helper every reader takes its keys through; it records
//!   them, reports the keys nobody took and, run over empty tables, describes
//!   the language ([`schema`]).
//! - [`values`]: the value types (URL, duration, pointer, template, ...).
//! - one module per table: [`provider`] (and the rules between its tables),
//!   [`inputs`], [`login`], [`refresh`], [`device`], [`authorize`], [`request`] (what login and refresh
//!   share), [`response`], [`expiry`], [`inject`], [`on_unauthorized`],
//!   [`test`].
//! - [`report`]: problems at offsets, turned into [`Diagnostic`]s at the end.
//!
//! [`Diagnostic`]: crate::config::Diagnostic

mod assertion;
mod authorize;
mod device;
mod expiry;
mod inject;
mod inputs;
mod login;
mod on_unauthorized;
mod provider;
mod refresh;
mod report;
mod request;
mod response;
pub(crate) mod schema;
mod table;
mod test;
mod tree;
mod values;

use std::collections::{BTreeMap, HashSet};

use toml::de::DeTable;

use self::report::Ctx;
use self::table::{IDENTIFIER_PATTERN, Table, TableSchema, read_table};
use self::tree::Node;
use super::error::ConfigErrors;
use super::model::{Provider, Providers};

/// Parses and validates a whole description given as TOML text. `file`
/// names it in messages.
pub(crate) fn parse(file: &str, src: &str) -> Result<Providers, ConfigErrors> {
    let mut ctx = Ctx::for_text(file, src);
    let (root, parse_errors) = DeTable::parse_recoverable(src);
    if !parse_errors.is_empty() {
        // The parser's recovery often reports follow-on errors on the line of
        // the real one: keep the first error of each line.
        let mut lines_seen = HashSet::new();
        for e in parse_errors {
            let at = e.span().map_or(0, |s| s.start);
            if !lines_seen.insert(ctx.line(at)) {
                continue;
            }
            ctx.error(
                at,
                "",
                format!("TOML syntax error: {}", e.message().trim_end()),
                Some(
                    "fix the TOML syntax first; the provider checks run once the file parses"
                        .into(),
                ),
            );
        }
        return Err(ctx.finish());
    }
    read(ctx, &Node::from_toml(root))
}

/// Validates a description given as any serde input (JSON, YAML, a value
/// built in code): the same readers, diagnostics without positions.
pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
    file: &str,
    input: D,
) -> Result<Providers, ConfigErrors> {
    let mut next = 0;
    match serde::de::DeserializeSeed::deserialize(tree::Seeded { next: &mut next }, input) {
        Ok(root) => read(Ctx::without_positions(file), &root),
        Err(e) => Err(unreadable(file, &e.to_string())),
    }
}

/// The error for input that is not a description at all (a syntax error of
/// its format, a value the language has no place for).
pub(crate) fn unreadable(file: &str, why: &str) -> ConfigErrors {
    let mut ctx = Ctx::without_positions(file);
    ctx.error(
        0,
        "",
        format!("cannot read the description: {why}"),
        Some("give a table with a `providers` table in it, one table per provider".into()),
    );
    ctx.finish()
}

/// Validates providers given one by one (the builder), each already
/// serialized: `Err` holds why one could not be.
pub(crate) fn from_providers(
    file: &str,
    providers: Vec<(String, Result<toml::Value, String>)>,
) -> Result<Providers, ConfigErrors> {
    let mut ctx = Ctx::without_positions(file);
    let mut next = 0;
    let mut entries = Vec::new();
    for (id, value) in providers {
        let key_at = tree::Seeded { next: &mut next }.rank();
        let node = value.and_then(|v| {
            serde::de::DeserializeSeed::deserialize(tree::Seeded { next: &mut next }, v)
                .map_err(|e| e.to_string())
        });
        match node {
            Ok(value) => entries.push(tree::Entry {
                key: id.into(),
                key_at,
                value,
            }),
            Err(e) => ctx.error(
                key_at,
                &table::join("providers", &id),
                format!("cannot read the description of provider `{id}`: {e}"),
                Some("describe it with the keys of a [providers.ID] table: strings, booleans, integers, lists and tables (no nulls)".into()),
            ),
        }
    }
    let root = Node {
        span: 0..0,
        kind: tree::Kind::Table(vec![tree::Entry {
            key: "providers".into(),
            key_at: 0,
            value: Node {
                span: 0..0,
                kind: tree::Kind::Table(entries),
            },
        }]),
    };
    read(ctx, &root)
}

fn read(mut ctx: Ctx<'_>, root: &Node<'_>) -> Result<Providers, ConfigErrors> {
    let (providers, _) = read_root(&mut ctx, root);
    if ctx.errors() == 0 {
        Ok(providers)
    } else {
        Err(ctx.finish())
    }
}

/// The top level: a `providers` table of provider tables. Also returns
/// what the top level's reader asked for (the schema's root, when
/// describing).
fn read_root(ctx: &mut Ctx<'_>, node: &Node<'_>) -> (Providers, TableSchema) {
    let mut providers = Vec::new();
    if node.entries().is_none() {
        // Only input from serde can be anything but a table at the top.
        ctx.error(
            node.at(),
            "",
            format!(
                "expected a table with a `providers` table in it, found {}",
                node.type_name()
            ),
            Some("give { \"providers\": { \"ID\": { ... } } }, one table per provider".into()),
        );
        return (Providers::new(providers), TableSchema::default());
    }
    let Some(mut root) = Table::open(ctx, node, String::new(), "the top level") else {
        return (Providers::new(providers), TableSchema::default());
    };
    let describe = |ctx: &mut Ctx<'_>, t: &mut Table<'_, '_>| provider::read(ctx, "ID", t);
    let map = root.map_of_tables(
        ctx,
        "providers",
        "The providers, one table each: [providers.ID].",
        IDENTIFIER_PATTERN,
        "a provider",
        &describe,
    );
    root.required("providers");
    let written = root.peek("providers").is_some();
    let schema = root.finish(ctx);
    let Some(map) = map else {
        if !written && ctx.errors() == 0 {
            ctx.error(0, "", "no providers: the file has no [providers.ID] table", Some("start with [providers.myapi] and its api, login, response, expiry and inject keys".into()));
        }
        return (Providers::new(providers), schema);
    };
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    // Each api prefix's form (placeholders made alike) and the provider
    // that declared it first.
    let mut prefixes: BTreeMap<String, String> = BTreeMap::new();
    // Where each provider was declared, for the shadowing check.
    let mut declared_at = Vec::new();
    let valid = map.named_entries(
        ctx,
        "provider id",
        "use letters, digits, `_` or `-`, e.g. [providers.my-api]",
    );
    for (id, entry) in valid {
        let path = map.child_path(id);
        if let Some(first) = seen.insert(id.to_ascii_lowercase(), id) {
            ctx.error(entry.key_at, &path, format!("duplicate provider id `{id}` (already defined as `{first}`; ids are compared without case)"), Some("give each provider its own id".into()));
            continue;
        }
        let read_provider = |ctx: &mut Ctx<'_>, t: &mut Table<'_, '_>| provider::read(ctx, id, t);
        if let Some(Some(p)) = read_table(ctx, &entry.value, path, "a provider", &read_provider) {
            for prefix in &p.api {
                if let Some(first) = prefixes.insert(prefix.shape(), p.id.clone()) {
                    let what = if prefix.is_literal() {
                        format!("the api prefix `{prefix}` is also one of provider `{first}`'s")
                    } else {
                        format!(
                            "the api prefix `{prefix}` has the same form as one of provider `{first}`'s (only the input names differ)"
                        )
                    };
                    ctx.error(
                        entry.key_at,
                        &table::join(&map.child_path(id), "api"),
                        format!("{what}: requests under it would always get `{first}`'s credential, never this one's"),
                        Some("give each provider prefixes of its own; for several accounts of one API, use one provider with several connections".into()),
                    );
                }
            }
            declared_at.push((entry.key_at, map.child_path(id)));
            providers.push(p);
        }
    }
    shadowed_prefixes(ctx, &providers, &declared_at);
    (Providers::new(providers), schema)
}

/// A written-out prefix of one provider that a prefix with placeholders of
/// another could render exactly (`https://acme.example.com/` and
/// `https://{{ inputs.sub }}.example.com/`): which of the two gets a request
/// would depend on a connection's values.
fn shadowed_prefixes(ctx: &mut Ctx<'_>, providers: &[Provider], declared_at: &[(usize, String)]) {
    for (a, (at, path)) in providers.iter().zip(declared_at) {
        for fixed in a.api.iter().filter_map(|u| u.literal()) {
            for b in providers.iter().filter(|b| b.id != a.id) {
                if let Some(template) = b
                    .api
                    .iter()
                    .find(|t| crate::route::template_covers(t, fixed))
                {
                    ctx.error(
                        *at,
                        &table::join(path, "api"),
                        format!("the api prefix `{fixed}` is shadowed by provider `{}`'s `{}`: a connection of `{}` could render exactly this prefix, and then its requests here would get either credential", b.id, template.source(), b.id),
                        Some("give the two providers prefixes that cannot meet: another host, or a longer path for one of them".into()),
                    );
                }
            }
        }
    }
}
