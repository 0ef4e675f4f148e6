//! `[providers.ID.inject]`: how the credential is attached. Any of
//! `header` + `value`, `basic`, `headers` and `query`, at least one; each
//! header name at most once across them (case-insensitive; `basic` counts as
//! `Authorization`).

use http::HeaderName;

use super::inputs::Scope;
use super::report::Ctx;
use super::request::basic;
use super::table::{Rule, Shape, Table, describe, join, read_table};
use super::tree::{Kind, Node};
use super::values::{HEADER_NAME_PATTERN, TokenVars, expect_str, header_name, shape, template};
use crate::config::model::Inject;
use crate::template::Template;

const PARTS_HELP: &str = "use one or more of: header = \"Authorization\" with value = \"Bearer {{ token.access }}\"; basic = { username = \"...\", password = \"...\" }; headers = { \"X-Api-Key\" = \"...\" }; query = { api_key = \"...\" }";

const QUERY_SINGLE_HELP: &str = "write query = { name = \"api_key\", value = \"{{ inputs.key }}\" }, or the parameters as a table: query = { api_key = \"{{ inputs.key }}\" }";

/// One header of `[inject]`, for the check that no name appears twice.
struct Written {
    name: HeaderName,
    /// The name as written.
    shown: String,
    /// Where it is written, and under which key (`header`, `basic`,
    /// `headers`).
    at: usize,
    key: &'static str,
    path: String,
}

pub(super) fn read(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
) -> Option<Inject> {
    let tokens = if scope.fetches {
        TokenVars::Access
    } else {
        TokenVars::None
    };
    let errors_before = ctx.errors();
    let header = table.take(
        ctx,
        "header",
        "The header to set, e.g. \"Authorization\" (with value).",
        || shape::pattern(HEADER_NAME_PATTERN),
    );
    let value = table.take(
        ctx,
        "value",
        "The header value, e.g. \"Bearer {{ token.access }}\" (with header).",
        shape::template,
    );
    let read_basic = |ctx: &mut Ctx<'_>, t: &mut Table<'_, '_>| basic(ctx, scope, t, tokens, false);
    let basic_node = table.declare_table(
        ctx,
        (
            "basic",
            "HTTP Basic credentials in the Authorization header: { username = \"...\", password = \"...\" }.",
        ),
        "basic",
        None,
        &read_basic,
    );
    let headers = headers(ctx, scope, table, tokens);
    let query = query(ctx, scope, table, tokens);
    table.rule(Rule::AtLeastOneOf(&["header", "basic", "headers", "query"]));
    table.rule(Rule::Together("header", "value"));

    if header.is_none() && basic_node.is_none() && headers.is_none() && query.is_none() {
        if let Some(v) = value {
            ctx.error(
                v.at(),
                &table.child_path("value"),
                "`value` without `header`",
                Some("name the header it goes in, e.g. header = \"Authorization\"".into()),
            );
        } else {
            ctx.error(
                table.at,
                &table.path,
                "nothing to attach: the credential would never be sent",
                Some(PARTS_HELP.into()),
            );
        }
        return None;
    }

    let mut written: Vec<Written> = Vec::new();
    let mut inject = Inject {
        header: None,
        basic: None,
        headers: Vec::new(),
        query: query.unwrap_or_default(),
    };
    match (header, value) {
        (Some(header), value) => {
            let path = table.child_path("header");
            let written_name = expect_str(ctx, header, &path, "header");
            let name = written_name
                .as_ref()
                .and_then(|(name, span)| header_name(ctx, name, span.start, &path));
            let value = value
                .and_then(|v| template(ctx, scope, v, &table.child_path("value"), "value", tokens));
            let value = table.require(
                ctx,
                "value",
                value,
                "header needs value = \"Bearer {{ token.access }}\" (or whatever the provider expects)",
            );
            if let (Some(name), Some((shown, _))) = (&name, written_name) {
                written.push(Written {
                    name: name.clone(),
                    shown: shown.to_owned(),
                    at: header.at(),
                    key: "header",
                    path,
                });
            }
            inject.header = name.zip(value);
        }
        (None, Some(v)) => {
            let help = if basic_node.is_some() {
                "remove it: basic has its own username and password"
            } else {
                "add header = \"...\" naming the header it goes in, or move it into headers = { \"Name\" = \"...\" }"
            };
            ctx.error(
                v.at(),
                &table.child_path("value"),
                "`value` only goes with `header`",
                Some(help.into()),
            );
        }
        (None, None) => {}
    }
    if let Some(node) = basic_node {
        let path = table.child_path("basic");
        inject.basic = read_table(ctx, node, path.clone(), "basic", &read_basic).flatten();
        written.push(Written {
            name: http::header::AUTHORIZATION,
            shown: "Authorization".to_owned(),
            at: node.at(),
            key: "basic",
            path,
        });
    }
    for (name, shown, at, value) in headers.unwrap_or_default() {
        written.push(Written {
            name: name.clone(),
            path: join(&table.child_path("headers"), &shown),
            shown,
            at,
            key: "headers",
        });
        inject.headers.push((name, value));
    }
    for (i, later) in written.iter().enumerate() {
        let Some(first) = written[..i].iter().find(|w| w.name == later.name) else {
            continue;
        };
        let help = match (first.key, later.key) {
            (a, b) if a == b => format!(
                "header names are case-insensitive: keep one of `{}` and `{}`",
                first.shown, later.shown
            ),
            ("basic", _) | (_, "basic") => {
                "keep one of them: `basic` sets the Authorization header itself".to_owned()
            }
            _ => format!(
                "keep one of them: a request carries one `{}` header",
                later.shown
            ),
        };
        ctx.error(
            later.at,
            &later.path,
            format!(
                "the header `{}` is set twice: by `{}` (as `{}`) and by `{}`",
                later.shown, first.key, first.shown, later.key
            ),
            Some(help),
        );
    }
    (ctx.errors() == errors_before).then_some(inject)
}

/// `headers = { "X-Api-Key" = "...", ... }`: each header with its name as
/// written and its position; `None` when not written.
fn headers(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    tokens: TokenVars,
) -> Option<Vec<(HeaderName, String, usize, Template)>> {
    let written = table.peek("headers").is_some();
    let map = table.map(
        ctx,
        "headers",
        "More headers to set, each name with its value (a template): { \"X-Api-Key\" = \"{{ inputs.key }}\" }.",
        Some(HEADER_NAME_PATTERN),
        shape::template,
    );
    let Some(map) = map else {
        // Written but not a table: reported.
        return written.then(Vec::new);
    };
    let mut out = Vec::new();
    if map.entries.is_empty() {
        ctx.error(
            table.peek("headers").map_or(table.at, Node::at),
            &map.path,
            "`headers` is empty: it attaches nothing",
            Some("name at least one header, e.g. headers = { \"X-Api-Key\" = \"{{ inputs.key }}\" }, or remove it".into()),
        );
    }
    for entry in map.entries {
        let name: &str = &entry.key;
        let path = map.child_path(name);
        let value = template_value(ctx, scope, &entry.value, &path, name, tokens);
        if let (Some(name), Some(value)) = (header_name(ctx, name, entry.key_at, &path), value) {
            out.push((name, entry.key.to_string(), entry.key_at, value));
        }
    }
    Some(out)
}

/// `query`: `{ name = "...", value = "..." }` (the single form: only these
/// two keys), or a table of parameters `{ api_key = "...", ... }`; `None`
/// when not written.
fn query(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    tokens: TokenVars,
) -> Option<Vec<(String, Template)>> {
    let path = table.child_path("query");
    let read_single =
        |ctx: &mut Ctx<'_>, t: &mut Table<'_, '_>| single_query(ctx, scope, t, tokens);
    let single = describe(ctx, path.clone(), "inject.query", &read_single);
    let node = table.take(
        ctx,
        "query",
        "Query parameters to set: { api_key = \"{{ inputs.key }}\", ... }, or one as { name = \"api_key\", value = \"{{ inputs.key }}\" }.",
        || {
            Shape::AnyOf(vec![
                Shape::Table(single.unwrap_or_default()),
                Shape::Map {
                    names: None,
                    values: Box::new(shape::template()),
                },
            ])
        },
    )?;
    let Kind::Table(entries) = &node.kind else {
        ctx.error(
            node.at(),
            &path,
            format!("expected a table, found {}", node.type_name()),
            Some(QUERY_SINGLE_HELP.into()),
        );
        return Some(Vec::new());
    };
    if entries.is_empty() {
        ctx.error(
            node.at(),
            &path,
            "`query` is empty: it attaches nothing",
            Some(QUERY_SINGLE_HELP.into()),
        );
        return Some(Vec::new());
    }
    if entries.iter().all(|e| e.key == "name" || e.key == "value") {
        let one = read_table(ctx, node, path, "inject.query", &read_single).flatten();
        return Some(one.into_iter().collect());
    }
    let mut out = Vec::new();
    for entry in entries {
        let name: &str = &entry.key;
        let at = join(&path, name);
        if name.is_empty() {
            ctx.error(
                entry.key_at,
                &at,
                "a query parameter needs a name",
                Some("write the parameter's name, e.g. api_key = \"...\"".into()),
            );
            continue;
        }
        if let Some(value) = template_value(ctx, scope, &entry.value, &at, name, tokens) {
            out.push((name.to_owned(), value));
        }
    }
    Some(out)
}

/// A value of `headers` or `query`: a template string.
fn template_value(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    node: &Node<'_>,
    path: &str,
    name: &str,
    tokens: TokenVars,
) -> Option<Template> {
    match &node.kind {
        Kind::String(_) => template(ctx, scope, node, path, name, tokens),
        _ => {
            ctx.error(
                node.at(),
                path,
                format!("expected a string, found {}", node.type_name()),
                Some(format!(
                    "values are sent as text: write \"{name}\" = \"...\""
                )),
            );
            None
        }
    }
}

/// `query = { name = "...", value = "..." }`.
fn single_query(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    tokens: TokenVars,
) -> Option<(String, Template)> {
    let name = table
        .str(ctx, "name", "The query parameter's name.")
        .map(|(s, _)| s.to_owned());
    let name = table.require(ctx, "name", name, QUERY_SINGLE_HELP);
    let value = table.template(ctx, scope, "value", "The value (a template).", tokens);
    let value = table.require(ctx, "value", value, QUERY_SINGLE_HELP);
    Some((name?, value?))
}
