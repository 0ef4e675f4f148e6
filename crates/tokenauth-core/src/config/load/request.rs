//! The keys a token request has, in `[login]` and `[refresh]` alike:
//! method, body, fields, headers, basic and timeout (the url and what is
//! particular to each are read by `login` and `refresh`). Also `basic` and
//! `headers`, which `inject` and `test` share.

use std::time::Duration;

use http::{HeaderName, Method};

use super::inputs::Scope;
use super::report::Ctx;
use super::table::Shape;
use super::table::{Table, join, read_table};
use super::tree::{Kind, Node};
use super::values::{HEADER_NAME_PATTERN, TokenVars, header_name, shape, template};
use crate::config::model::{BasicAuth, BodyFormat, FieldValue};
use crate::template::Template;

pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A field value that is not a string: where it is and what it is.
pub(super) struct Nested {
    at: usize,
    path: String,
    what: &'static str,
}

/// A token request's shared keys as written: `None` for each left out or
/// wrong (a refresh takes those from the login).
pub(super) struct RequestKeys {
    pub(super) method: Option<Method>,
    pub(super) body: Option<BodyFormat>,
    pub(super) fields: Vec<(String, FieldValue)>,
    /// The first field that is not a string (position, key path, what it
    /// is): allowed only in a JSON body, which [`check_nested`] checks once
    /// the body format is known (a refresh may take it from the login).
    pub(super) nested: Option<Nested>,
    /// `None`: not written.
    pub(super) headers: Option<Vec<(HeaderName, Template)>>,
    /// `None`: not written; `Some(None)`: `basic = {}` in a refresh (send
    /// none) or a basic table with an error.
    pub(super) basic: Option<Option<BasicAuth>>,
    pub(super) timeout: Option<Duration>,
    /// fields, headers and basic were read without an error.
    pub(super) templates_ok: bool,
}

/// Reads the shared keys. `tokens` says which token placeholders their
/// templates may use; `basic = {}` means "none" only in a refresh.
pub(super) fn read(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    tokens: TokenVars,
) -> RequestKeys {
    // A refresh takes what it leaves out from the login; its docs say so.
    let in_refresh = tokens == TokenVars::Refresh;
    let doc = |login: &'static str, refresh: &'static str| if in_refresh { refresh } else { login };
    let method = table.method(
        ctx,
        "method",
        doc(
            "The HTTP method: POST by default.",
            "The HTTP method. Left out: the login's (POST without a login).",
        ),
    );
    let body = match table.choice(
        ctx,
        "body",
        doc(
            "The body encoding: form (application/x-www-form-urlencoded, the default) or json.",
            "The body encoding: form or json. Left out: the login's (form without a login).",
        ),
        &[("form", BodyFormat::Form), ("json", BodyFormat::Json)],
    ) {
        Some(Ok(body)) => Some(body),
        Some(Err((text, span))) => {
            ctx.error(
                span.start,
                &table.child_path("body"),
                format!("unknown body format `{text}`"),
                Some("use \"form\" (application/x-www-form-urlencoded) or \"json\"".into()),
            );
            None
        }
        None => None,
    };
    let errors_before = ctx.errors();
    let (fields, nested) = fields(
        ctx,
        scope,
        table,
        doc(
            "Body fields, sent exactly as written (case and punctuation kept), in file order. Strings are templates; with body = \"json\" also nested tables, arrays, numbers and booleans.",
            "Body fields, sent exactly as written, in file order (never the login's); they must send {{ token.refresh }}. With body = \"json\" also nested values.",
        ),
        tokens,
    );
    let headers_doc = doc(
        "Extra request headers: name = template.",
        "Extra request headers: name = template. Left out: the login's; written, exactly these ({} sends none).",
    );
    let headers = headers(ctx, scope, table, tokens, headers_doc);
    let read_basic = |ctx: &mut Ctx<'_>, t: &mut Table<'_, '_>| basic(ctx, scope, t, tokens, true);
    let basic_node = table.declare_table(
        ctx,
        (
            "basic",
            doc(
                "Client authentication in an Authorization: Basic header.",
                "Client authentication in an Authorization: Basic header. Left out: the login's.",
            ),
        ),
        "basic",
        in_refresh.then_some("No client authentication, even if the login has one."),
        &read_basic,
    );
    let basic = basic_node.map(|node| match &node.kind {
        Kind::Table(entries) if in_refresh && entries.is_empty() => None,
        _ => read_table(ctx, node, table.child_path("basic"), "basic", &read_basic).flatten(),
    });
    let templates_ok = ctx.errors() == errors_before;
    let timeout = table.duration(
        ctx,
        "timeout",
        doc(
            "How long the whole token request may take: 30s by default.",
            "How long the whole token request may take. Left out: the login's (30s without a login).",
        ),
    );
    RequestKeys {
        method,
        body,
        fields,
        nested,
        headers,
        basic,
        timeout,
        templates_ok,
    }
}

/// `fields`: a table of name -> value, in file order. A value is a template
/// string, or (checked later by [`check_nested`]) a number, a boolean, an
/// array or a table of them.
fn fields(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    doc: &'static str,
    tokens: TokenVars,
) -> (Vec<(String, FieldValue)>, Option<Nested>) {
    let values = || {
        Shape::AnyOf(vec![
            shape::template(),
            Shape::Types(&["object", "array", "integer", "number", "boolean"]),
        ])
    };
    let Some(map) = table.map(ctx, "fields", doc, None, values) else {
        return (Vec::new(), None);
    };
    let mut nested = None;
    let mut out = Vec::new();
    for entry in map.entries {
        let path = map.child_path(&entry.key);
        if let Some(v) = field_value(
            ctx,
            scope,
            &entry.value,
            &path,
            &entry.key,
            tokens,
            &mut nested,
        ) {
            out.push((entry.key.to_string(), v));
        }
    }
    (out, nested)
}

/// One field value; `nested` gets the first value that is not a string.
fn field_value(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    node: &Node<'_>,
    path: &str,
    name: &str,
    tokens: TokenVars,
    nested: &mut Option<Nested>,
) -> Option<FieldValue> {
    if !matches!(node.kind, Kind::String(_)) && nested.is_none() {
        *nested = Some(Nested {
            at: node.at(),
            path: path.to_owned(),
            what: node.type_name(),
        });
    }
    match &node.kind {
        Kind::String(_) => template(ctx, scope, node, path, name, tokens).map(FieldValue::Text),
        Kind::Integer(Some(i)) => Some(FieldValue::Integer(*i)),
        Kind::Float(x) if x.is_finite() => Some(FieldValue::Float(*x)),
        Kind::Boolean(b) => Some(FieldValue::Bool(*b)),
        Kind::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                out.push(field_value(ctx, scope, item, &path, name, tokens, nested));
            }
            out.into_iter()
                .collect::<Option<_>>()
                .map(FieldValue::Array)
        }
        Kind::Table(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                let path = join(path, &e.key);
                let v = field_value(ctx, scope, &e.value, &path, &e.key, tokens, nested);
                out.push(v.map(|v| (e.key.to_string(), v)));
            }
            out.into_iter()
                .collect::<Option<_>>()
                .map(FieldValue::Table)
        }
        _ => {
            let what = match node.kind {
                Kind::Integer(None) => "an integer outside the 64-bit range",
                Kind::Float(_) => "a float that is not a finite number (inf, nan)",
                _ => node.type_name(),
            };
            ctx.error(
                node.at(),
                path,
                format!("a field cannot be {what}"),
                Some(
                    "a field is a string (a template), an integer, a finite float, a boolean, an array or a table; write a date or anything else as a string".into(),
                ),
            );
            None
        }
    }
}

/// Reports a field that is not a string in a request that does not send a
/// JSON body (`nested` from [`RequestKeys`]).
pub(super) fn check_nested(
    ctx: &mut Ctx<'_>,
    nested: Option<&Nested>,
    body: BodyFormat,
    method: &Method,
    table_path: &str,
) {
    let Some(Nested { at, path, what }) = nested else {
        return;
    };
    if *method == Method::GET {
        ctx.error(
            *at,
            path,
            format!("a GET sends its fields in the query string, which has no room for {what}"),
            Some(format!(
                "nested values need body = \"json\" and a POST: remove method = \"GET\" from [{table_path}], or write the value as a string"
            )),
        );
    } else if body != BodyFormat::Json {
        ctx.error(
            *at,
            path,
            format!("a form body has only string fields, but this is {what}"),
            Some(format!(
                "nested values need body = \"json\": add it to [{table_path}], or write the value as a string"
            )),
        );
    }
}

/// `headers`: a table of header name -> template, in file order; `None`
/// when not written.
pub(super) fn headers(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    tokens: TokenVars,
    doc: &'static str,
) -> Option<Vec<(HeaderName, Template)>> {
    let path = table.child_path("headers");
    let written = template_map(
        ctx,
        scope,
        table,
        "headers",
        doc,
        Some(HEADER_NAME_PATTERN),
        tokens,
    );
    written.map(|map| {
        map.into_iter()
            .filter_map(|(name, at, t)| {
                Some((header_name(ctx, &name, at, &join(&path, &name))?, t))
            })
            .collect()
    })
}

/// `fields` / `headers`: a table of name -> template, in file order (with
/// each name's position); `None` when not written.
pub(super) fn template_map(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    key: &'static str,
    doc: &'static str,
    names: Option<&'static str>,
    tokens: TokenVars,
) -> Option<Vec<(String, usize, Template)>> {
    let written = table.peek(key).is_some();
    let map = table.map(ctx, key, doc, names, shape::template);
    let Some(map) = map else {
        // Written but not a table: reported; treat as written and empty.
        return written.then(Vec::new);
    };
    let mut out = Vec::new();
    for entry in map.entries {
        let name: &str = &entry.key;
        let path = map.child_path(name);
        match &entry.value.kind {
            Kind::String(_) => {
                if let Some(t) = template(ctx, scope, &entry.value, &path, name, tokens) {
                    out.push((name.to_owned(), entry.key_at, t));
                }
            }
            _ => ctx.error(
                entry.value.at(),
                &path,
                format!("expected a string, found {}", entry.value.type_name()),
                Some(format!(
                    "values are sent as text: write \"{name}\" = \"...\""
                )),
            ),
        }
    }
    Some(out)
}

/// `basic = { username = "...", password = "..." }`: HTTP Basic credentials;
/// for a token request's client authentication (`client_auth`) also
/// `form_encode` (RFC 6749 §2.3.1, on unless set to false).
pub(super) fn basic(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    tokens: TokenVars,
    client_auth: bool,
) -> Option<BasicAuth> {
    const HELP: &str = "basic needs username = \"...\" and password = \"...\"";
    let username = table.template(
        ctx,
        scope,
        "username",
        "The user name (a template).",
        tokens,
    );
    let username = table.require(ctx, "username", username, HELP);
    let password = table.template(ctx, scope, "password", "The password (a template).", tokens);
    let password = table.require(ctx, "password", password, HELP);
    let form_encode = client_auth
        && table
            .bool(
                ctx,
                "form_encode",
                "Form-encode the client id and secret before base64, as RFC 6749 §2.3.1 requires (default true); false for servers that do not decode them.",
            )
            .unwrap_or(true);
    Some(BasicAuth {
        username: username?,
        password: password?,
        form_encode,
    })
}

/// `scopes` (a list of strings, `doc` saying where they go) and
/// `scope_separator` (a space by default, RFC 6749 §3.3): the keys the
/// authorization and device requests share.
pub(super) fn scopes(
    ctx: &mut Ctx<'_>,
    table: &mut Table<'_, '_>,
    doc: &'static str,
) -> (Vec<String>, String) {
    let scopes = table
        .strings(ctx, "scopes", doc, super::values::shape::string, false)
        .map(|(_, items)| items.into_iter().map(|(s, _)| s.to_owned()).collect())
        .unwrap_or_default();
    let separator = table
        .str(
            ctx,
            "scope_separator",
            "What joins the scopes: a space by default (RFC 6749 §3.3).",
        )
        .map_or_else(|| " ".to_owned(), |(s, _)| s.to_owned());
    (scopes, separator)
}
