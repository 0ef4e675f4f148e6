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
//!   [`inputs`], [`login`], [`refresh`], [`request`] (what login and refresh
//!   share), [`response`], [`expiry`], [`inject`], [`on_unauthorized`],
//!   [`test`].
//! - [`report`]: problems at offsets, turned into [`Diagnostic`]s at the end.
//!
//! [`Diagnostic`]: crate::config::Diagnostic

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
use self::table::{IDENTIFIER_PATTERN, Table, TableSchema, is_identifier, read_table};
use self::tree::Node;
use super::error::ConfigErrors;
use super::model::Providers;

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
    let Some(mut root) = Table::open(ctx, node, String::new(), "the top level") else {
        return (Providers { providers }, TableSchema::default());
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
        return (Providers { providers }, schema);
    };
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for entry in map.entries {
        let id: &str = &entry.key;
        let path = map.child_path(id);
        if !is_identifier(id) {
            ctx.error(
                entry.key_at,
                &path,
                format!("`{id}` is not a valid provider id"),
                Some("use letters, digits, `_` or `-`, e.g. [providers.my-api]".into()),
            );
            continue;
        }
        if let Some(first) = seen.insert(id.to_ascii_lowercase(), id) {
            ctx.error(entry.key_at, &path, format!("duplicate provider id `{id}` (already defined as `{first}`; ids are compared without case)"), Some("give each provider its own id".into()));
            continue;
        }
        let read_provider = |ctx: &mut Ctx<'_>, t: &mut Table<'_, '_>| provider::read(ctx, id, t);
        if let Some(Some(p)) = read_table(ctx, &entry.value, path, "a provider", &read_provider) {
            providers.push(p);
        }
    }
    (Providers { providers }, schema)
}
