//! `[providers.ID.inject]`: exactly one way to attach the credential.

use super::inputs::Scope;
use super::report::Ctx;
use super::request::basic;
use super::table::{Rule, Table, read_table};
use super::values::{HEADER_NAME_PATTERN, TokenVars, expect_str, header_name, shape, template};
use crate::config::model::Inject;

const MODES_HELP: &str = "choose one of: header = \"Authorization\" with value = \"Bearer {{ token.access }}\"; basic = { username = \"...\", password = \"...\" }; query = { name = \"...\", value = \"...\" }";

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
    // Every key is taken before the mode is known: a key of another mode is
    // reported as such, not as unknown.
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
            "HTTP Basic credentials: { username = \"...\", password = \"...\" }.",
        ),
        "basic",
        None,
        &read_basic,
    );
    let read_query = |ctx: &mut Ctx<'_>, t: &mut Table<'_, '_>| query(ctx, scope, t, tokens);
    let query_node = table.declare_table(
        ctx,
        (
            "query",
            "A query parameter: { name = \"api_key\", value = \"{{ inputs.key }}\" }.",
        ),
        "inject.query",
        None,
        &read_query,
    );
    table.rule(Rule::OneModeOf(&[
        ("header", &["value"]),
        ("basic", &[]),
        ("query", &[]),
    ]));
    let modes: Vec<&str> = [
        ("header", header.is_some()),
        ("basic", basic_node.is_some()),
        ("query", query_node.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, written)| written.then_some(name))
    .collect();
    match (modes.as_slice(), header, basic_node, query_node) {
        ([], ..) => {
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
                    "no injection mode: the credential would never be sent",
                    Some(MODES_HELP.into()),
                );
            }
            None
        }
        ([_, _, ..], ..) => {
            ctx.error(
                table.at,
                &table.path,
                format!(
                    "{} injection modes ({}): exactly one is allowed",
                    modes.len(),
                    modes.join(" and ")
                ),
                Some(MODES_HELP.into()),
            );
            None
        }
        (_, Some(header), ..) => {
            let (name, span) = expect_str(ctx, header, &table.child_path("header"), "header")?;
            let name = header_name(ctx, name, span.start, &table.child_path("header"));
            let value = value
                .and_then(|v| template(ctx, scope, v, &table.child_path("value"), "value", tokens));
            let value = table.require(
                ctx,
                "value",
                value,
                "header needs value = \"Bearer {{ token.access }}\" (or whatever the provider expects)",
            );
            Some(Inject::Header {
                name: name?,
                value: value?,
            })
        }
        (_, _, Some(node), _) => {
            let b = read_table(ctx, node, table.child_path("basic"), "basic", &read_basic)??;
            if let Some(v) = value {
                ctx.error(
                    v.at(),
                    &table.child_path("value"),
                    "`value` only goes with `header`",
                    Some("remove it: basic has its own username and password".into()),
                );
            }
            Some(Inject::Basic(b))
        }
        (_, _, _, node) => read_table(
            ctx,
            node?,
            table.child_path("query"),
            "inject.query",
            &read_query,
        )?,
    }
}

/// `query = { name = "...", value = "..." }`.
fn query(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    tokens: TokenVars,
) -> Option<Inject> {
    const HELP: &str = "query needs name = \"...\" and value = \"...\"";
    let name = table
        .str(ctx, "name", "The query parameter's name.")
        .map(|(s, _)| s.to_owned());
    let name = table.require(ctx, "name", name, HELP);
    let value = table.template(ctx, scope, "value", "The value (a template).", tokens);
    let value = table.require(ctx, "value", value, HELP);
    Some(Inject::Query {
        name: name?,
        value: value?,
    })
}
