//! `[providers.ID.response]`: where things are in the token reply.

use super::report::Ctx;
use super::table::{Rule, Shape, Table, TableSchema, describe, read_table};
use super::tree::Kind;
use super::values::{HEADER_NAME_PATTERN, header_name, shape};
use crate::config::model::{ExpiresAtFormat, ExpiresInUnit, JsonPointer, Response, TokenSource};

pub(super) fn read(ctx: &mut Ctx<'_>, table: &mut Table<'_, '_>, provider: &str) -> Response {
    let mut r = Response::default();
    if let Some(p) = source(
        ctx,
        table,
        "access_token",
        "The access token (must be a string): \"/access_token\" by default.",
    ) {
        r.access_token = p;
    }
    r.refresh_token = source(
        ctx,
        table,
        "refresh_token",
        "The refresh token, if the provider issues one.",
    );
    r.expires_in = source(
        ctx,
        table,
        "expires_in",
        "The lifetime (number or numeric string), in expires_in_unit.",
    );
    let unit = table.choice(
        ctx,
        "expires_in_unit",
        "The unit of expires_in: seconds (default), milliseconds or minutes.",
        &[
            ("seconds", ExpiresInUnit::Seconds),
            ("milliseconds", ExpiresInUnit::Milliseconds),
            ("minutes", ExpiresInUnit::Minutes),
        ],
    );
    match unit {
        Some(Ok(unit)) => r.expires_in_unit = unit,
        Some(Err((other, span))) => ctx.error(
            span.start,
            &table.child_path("expires_in_unit"),
            format!("unknown unit `{other}`"),
            Some("use \"seconds\" (the default), \"milliseconds\" or \"minutes\"".into()),
        ),
        None => {}
    }
    if let Some(v) = table.peek("expires_in_unit")
        && r.expires_in.is_none()
        && table.peek("expires_in").is_none()
    {
        ctx.error(
            v.at(),
            &table.child_path("expires_in_unit"),
            "`expires_in_unit` without `expires_in`",
            Some("add expires_in = \"/expires_in\" or remove the unit".into()),
        );
    }
    r.expires_at = source(ctx, table, "expires_at", "The absolute expiry time.");
    let format = table.choice(
        ctx,
        "expires_at_format",
        "How expires_at is written: rfc3339 (default), unix_seconds (alias unix) or unix_millis.",
        &[
            ("rfc3339", ExpiresAtFormat::Rfc3339),
            ("unix", ExpiresAtFormat::UnixSeconds),
            ("unix_seconds", ExpiresAtFormat::UnixSeconds),
            ("unix_millis", ExpiresAtFormat::UnixMillis),
        ],
    );
    r.token_type = table.pointer(
        ctx,
        "token_type",
        "The token type (informational: the inject template decides the header).",
    );
    r.api_base = table.pointer(
        ctx,
        "api_base",
        "The connection's API base URL in the reply (Salesforce's /instance_url); it must lie inside an api prefix, where `*` stands for one host label.",
    );
    if let Some(v) = table.misplaced(ctx, "rotate") {
        ctx.error(
            v.at(),
            &table.child_path("rotate"),
            "`rotate` belongs in the [refresh] table",
            Some(format!("move it to [providers.{provider}.refresh]")),
        );
    }
    if let Some(format) = format {
        let span = match format {
            Ok(format) => {
                r.expires_at_format = format;
                table.peek("expires_at_format").map_or(0, |v| v.at())
            }
            Err((other, span)) => {
                ctx.error(
                    span.start,
                    &table.child_path("expires_at_format"),
                    format!("unknown format `{other}`"),
                    Some("use \"rfc3339\", \"unix_seconds\" or \"unix_millis\"".into()),
                );
                span.start
            }
        };
        if r.expires_at.is_none() && table.peek("expires_at").is_none() {
            ctx.error(
                span,
                &table.child_path("expires_at_format"),
                "`expires_at_format` without `expires_at`",
                Some("add expires_at = \"/pointer\" or remove the format".into()),
            );
        }
    }
    r
}

/// A token source: a JSON Pointer string, `{ header = "Name" }` or
/// `{ cookie = "name" }`.
fn source(
    ctx: &mut Ctx<'_>,
    table: &mut Table<'_, '_>,
    key: &'static str,
    doc: &'static str,
) -> Option<TokenSource> {
    let path = table.child_path(key);
    let schema = describe(ctx, path.clone(), "response source", &read_source);
    let node = table.take(ctx, key, doc, || source_shape(schema.unwrap_or_default()))?;
    match &node.kind {
        Kind::String(text) => match JsonPointer::parse(text) {
            Ok(p) => Some(TokenSource::Pointer(p)),
            Err(message) => {
                ctx.error(
                    node.at(),
                    &path,
                    message,
                    Some("a JSON Pointer (RFC 6901) names a key path from the root: \"/access_token\", \"/data/token\"; or read a reply header with { header = \"Name\" } or a cookie with { cookie = \"name\" }".into()),
                );
                None
            }
        },
        Kind::Table(_) => read_table(ctx, node, path, "response source", &read_source).flatten(),
        _ => {
            ctx.error(
                node.at(),
                &path,
                format!("expected a string or a table, found {}", node.type_name()),
                Some(format!(
                    "write {key} = \"/{key}\" (a JSON Pointer into the body), {key} = {{ header = \"Name\" }} or {key} = {{ cookie = \"name\" }}"
                )),
            );
            None
        }
    }
}

fn source_shape(table: TableSchema) -> Shape {
    Shape::AnyOf(vec![shape::pointer(), Shape::Table(table)])
}

/// `{ header = "Name" }` or `{ cookie = "name" }`: exactly one.
fn read_source(ctx: &mut Ctx<'_>, t: &mut Table<'_, '_>) -> Option<TokenSource> {
    const ONE: &str = "write exactly one of header = \"Name\" (a reply header) or cookie = \"name\" (a cookie of the reply's Set-Cookie headers)";
    let header = t.str_shaped(
        ctx,
        "header",
        "A reply header, e.g. \"X-Subject-Token\".",
        || shape::pattern(HEADER_NAME_PATTERN),
    );
    let cookie = t.str_shaped(
        ctx,
        "cookie",
        "A cookie the reply sets (Set-Cookie), by name; its attributes are not part of the value.",
        || shape::pattern(HEADER_NAME_PATTERN),
    );
    t.rule(Rule::OneModeOf(&[("header", &[]), ("cookie", &[])]));
    let (header_written, cookie_written) = (t.peek("header").is_some(), t.peek("cookie").is_some());
    if header_written == cookie_written {
        let message = if header_written {
            "both `header` and `cookie`: a value comes from one place"
        } else {
            "a table here needs `header` or `cookie`"
        };
        ctx.error(t.at, &t.path, message, Some(ONE.into()));
        return None;
    }
    if let Some((name, span)) = header {
        let h = header_name(ctx, name, span.start, &t.child_path("header"))?;
        return Some(TokenSource::Header { header: h });
    }
    let (name, span) = cookie?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b));
    if !valid {
        ctx.error(
            span.start,
            &t.child_path("cookie"),
            format!("`{name}` is not a valid cookie name"),
            Some(
                "a cookie name is letters, digits and `-`, `_`, `.` (RFC 6265), e.g. \"SESSION\""
                    .into(),
            ),
        );
        return None;
    }
    Some(TokenSource::Cookie {
        cookie: name.to_owned(),
    })
}
