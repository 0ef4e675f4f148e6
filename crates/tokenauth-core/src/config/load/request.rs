//! The keys a token request has, in `[login]` and `[refresh]` alike:
//! method, body, fields, headers, basic and timeout (the url and what is
//! particular to each are read by `login` and `refresh`). Also `basic` and
//! `headers`, which `inject` and `test` share.

use std::time::Duration;

use http::{HeaderName, Method};

use super::inputs::Scope;
use super::report::Ctx;
use super::table::{Table, join, read_table};
use super::tree::Kind;
use super::values::{HEADER_NAME_PATTERN, TokenVars, header_name, shape, template};
use crate::config::model::{BasicAuth, BodyFormat};
use crate::template::Template;

pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A token request's shared keys as written: `None` for each left out or
/// wrong (a refresh takes those from the login).
pub(super) struct RequestKeys {
    pub(super) method: Option<Method>,
    pub(super) body: Option<BodyFormat>,
    pub(super) fields: Vec<(String, Template)>,
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
    let fields = template_map(
        ctx,
        scope,
        table,
        "fields",
        doc(
            "Body fields, sent exactly as written (case and punctuation kept), in file order.",
            "Body fields, sent exactly as written, in file order (never the login's); they must send {{ token.refresh }}.",
        ),
        None,
        tokens,
    )
    .map(|fields| fields.into_iter().map(|(n, _, t)| (n, t)).collect())
    .unwrap_or_default();
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
        headers,
        basic,
        timeout,
        templates_ok,
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
fn template_map(
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
