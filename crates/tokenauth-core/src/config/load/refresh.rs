//! `[providers.ID.refresh]`: trading a refresh token for a new access token,
//! and `refresh.on_error`. What a refresh leaves out it takes from the login
//! (the table of these rules is in docs/providers-toml.md).

use http::{HeaderName, Method};

use super::inputs::Scope;
use super::report::Ctx;
use super::request::{self, DEFAULT_TIMEOUT, RequestKeys};
use super::table::Table;
use super::values::{ActionMessages, TokenVars, action, shape};
use crate::config::model::{
    BasicAuth, BodyFormat, FieldValue, Refresh, RefreshErrorAction, RefreshOnError, TokenRequest,
};
use crate::template::{Template, Var};
use crate::url_template::UrlTemplate;

/// What the refresh reader knows of the login: whether one is written, and
/// the request if it loaded.
#[derive(Clone, Copy)]
pub(super) struct Login<'l> {
    pub(super) written: bool,
    pub(super) request: Option<&'l TokenRequest>,
}

pub(super) fn read(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    login: Login<'_>,
    insecure_ok: bool,
) -> Option<Refresh> {
    let url = table.url(
        ctx,
        scope,
        "url",
        "The refresh endpoint. Left out: the login's url.",
        insecure_ok,
    );
    let url = match url {
        Some(u) => Some(u),
        None if table.peek("url").is_some() => None,
        None => {
            if !login.written {
                ctx.error(
                    table.at,
                    &table.path,
                    "missing key `url`",
                    Some("a provider without [login] must give the refresh endpoint's url".into()),
                );
            }
            login.request.map(|l| l.url.clone())
        }
    };
    let keys = request::read(ctx, &scope.token_request(), table, TokenVars::Refresh);
    table.required("fields");
    let rotate = table
        .bool(
            ctx,
            "rotate",
            "The reply carries a new refresh token that replaces the old one.",
        )
        .unwrap_or(false);
    let on_error = table
        .table(
            ctx,
            "on_error",
            "Which refresh failures mean the refresh token is dead, and what to do then.",
            "refresh.on_error",
            |ctx, t| on_error(ctx, t, login.written),
        )
        .unwrap_or_else(|| RefreshOnError {
            status: vec![400, 401],
            error_pointer: None,
            error_values: Vec::new(),
            action: if login.written {
                RefreshErrorAction::Login
            } else {
                RefreshErrorAction::Fail
            },
        });
    let seed = table.template(
        ctx,
        scope,
        "seed",
        "The refresh token a connection starts from while the store holds none: a template of a secret input.",
        TokenVars::None,
    );
    if let Some(seed) = &seed {
        let public: Vec<&str> = seed
            .vars()
            .filter_map(|v| match v {
                Var::Input(name) => Some(name.as_str()),
                _ => None,
            })
            .filter(|name| {
                scope
                    .inputs
                    .list
                    .iter()
                    .any(|i| i.name == *name && !i.secret)
            })
            .collect();
        let at = table.peek("seed").map_or(table.at, |n| n.at());
        if seed.is_literal() {
            ctx.error(
                at,
                &table.child_path("seed"),
                "`seed` is written literally: a refresh token is a secret and never belongs in the file",
                Some(format!("read it from a secret input: seed = \"{{{{ inputs.refresh_token }}}}\" with [providers.{}.inputs] refresh_token = {{ env = \"...\", secret = true }}", scope.provider)),
            );
        } else if !public.is_empty() {
            ctx.error(
                at,
                &table.child_path("seed"),
                format!("`seed` uses the input `{}`, which is not secret: a refresh token must never be printed or logged", public.join("`, `")),
                Some("add secret = true to the input".into()),
            );
        }
    }
    let request = inherit(ctx, table, keys, url, login.request);
    Some(Refresh {
        request: request?,
        rotate,
        on_error,
        seed,
    })
}

/// Fills what the refresh left out from the login: each of method, body,
/// headers, basic and timeout (fields never). A refresh that writes
/// `headers` sends exactly those; `headers = {}` / `basic = {}` send none.
/// Client authentication is never inherited by a refresh on another origin,
/// where the client secret was never sent. Then checks that the request
/// sends the refresh token.
fn inherit(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    keys: RequestKeys,
    url: Option<UrlTemplate>,
    login: Option<&TokenRequest>,
) -> Option<TokenRequest> {
    let errors_before = ctx.errors();
    let inherit_auth = match (login, url.as_ref()) {
        (Some(login), Some(url)) if url.sample().origin() != login.url.sample().origin() => {
            let left_out: Vec<&str> = [
                ("basic", login.basic.is_some()),
                ("headers", !login.headers.is_empty()),
            ]
            .into_iter()
            .filter(|(key, set)| *set && table.peek(key).is_none())
            .map(|(key, _)| key)
            .collect();
            if !left_out.is_empty() {
                let keys = left_out.join("` and `");
                ctx.error(
                    table.at,
                    &table.path,
                    format!(
                        "the refresh url is on another origin ({}) than the login url ({}), so the login's `{keys}` (client authentication) is not inherited",
                        origin(url),
                        origin(&login.url)
                    ),
                    Some(format!(
                        "say what the refresh endpoint gets: repeat `{keys}` in [{}] if it needs the client credentials, or write {} to send none",
                        table.path,
                        left_out
                            .iter()
                            .map(|k| format!("{k} = {{}}"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    )),
                );
            }
            None
        }
        (login, _) => login,
    };
    let headers = match (keys.headers, inherit_auth) {
        (None, Some(login)) => login.headers.clone(),
        (headers, _) => headers.unwrap_or_default(),
    };
    let basic = match (keys.basic, inherit_auth) {
        (None, Some(login)) => login.basic.clone(),
        (basic, _) => basic.flatten(),
    };
    // Whether the refresh token is sent can only be told when what might
    // send it was read without errors.
    if keys.templates_ok && ctx.errors() == errors_before {
        check_sends_refresh_token(ctx, table, &keys.fields, &headers, basic.as_ref());
    }
    let method = keys
        .method
        .unwrap_or_else(|| login.map_or(Method::POST, |l| l.method.clone()));
    let body = keys
        .body
        .unwrap_or(login.map_or(BodyFormat::Form, |l| l.body));
    request::check_nested(ctx, keys.nested.as_ref(), body, &method, &table.path);
    let mut request = TokenRequest {
        url: url?,
        method,
        body,
        fields: keys.fields,
        headers,
        basic,
        timeout: keys
            .timeout
            .unwrap_or(login.map_or(DEFAULT_TIMEOUT, |l| l.timeout)),
        assertion: None,
    };
    // A refresh that sends `{{ assertion }}` signs it as the login does.
    if request.sends_assertion() {
        request.assertion = login.and_then(|l| l.assertion.clone());
    }
    Some(request)
}

/// A refresh request must carry `{{ token.refresh }}` somewhere.
fn check_sends_refresh_token(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    fields: &[(String, FieldValue)],
    headers: &[(HeaderName, Template)],
    basic: Option<&BasicAuth>,
) {
    if table.peek("fields").is_none() {
        ctx.error(table.at, &table.path, "missing key `fields`", Some("the refresh request needs its fields, e.g. grant_type = \"refresh_token\" and refresh_token = \"{{ token.refresh }}\"".into()));
        return;
    }
    let uses_refresh = fields
        .iter()
        .flat_map(|(_, v)| v.texts())
        .chain(headers.iter().map(|(_, t)| t))
        .chain(basic.into_iter().flat_map(|b| [&b.username, &b.password]))
        .any(|t| t.vars().any(|v| *v == Var::TokenRefresh));
    if !uses_refresh {
        ctx.error(
            table.at,
            &table.child_path("fields"),
            "the refresh request never sends `{{ token.refresh }}`",
            Some(
                "add the field that carries it, e.g. refresh_token = \"{{ token.refresh }}\""
                    .into(),
            ),
        );
    }
}

fn on_error(ctx: &mut Ctx<'_>, table: &mut Table<'_, '_>, has_login: bool) -> RefreshOnError {
    let status = table
        .statuses(
            ctx,
            "status",
            "HTTP statuses that match: [400, 401] by default.",
        )
        .unwrap_or_else(|| vec![400, 401]);
    let error_pointer = table.pointer(
        ctx,
        "error_pointer",
        "Where the error code is in the JSON reply, e.g. \"/error\".",
    );
    let error_values: Vec<String> = table
        .strings(
            ctx,
            "error_values",
            "With error_pointer: the codes that match, e.g. [\"invalid_grant\"]; none = any.",
            shape::string,
            false,
        )
        .map(|(_, items)| items.into_iter().map(|(s, _)| s.to_owned()).collect())
        .unwrap_or_default();
    if !error_values.is_empty() && error_pointer.is_none() && table.peek("error_pointer").is_none()
    {
        ctx.error(
            table.at,
            &table.child_path("error_values"),
            "`error_values` without `error_pointer`",
            Some("say where the error code is, e.g. error_pointer = \"/error\"".into()),
        );
    }
    let action = action(
        ctx,
        table,
        "What to do on a match: login (log in again; the default with a login) or fail.",
        has_login,
        ("login", RefreshErrorAction::Login),
        RefreshErrorAction::Fail,
        ActionMessages {
            needs_login: "action \"login\" but the provider has no [login] table",
            needs_login_help: "add a [login] table, or use action = \"fail\"",
            unknown_help: "use \"login\" (log in again) or \"fail\"",
        },
    );
    RefreshOnError {
        status,
        error_pointer,
        error_values,
        action,
    }
}

/// A URL template's origin as it is written (`https://{{ inputs.tenant }}.example.com`
/// for a templated host).
fn origin(url: &UrlTemplate) -> String {
    let source = url.source();
    let after_scheme = source.find("://").map_or(0, |i| i + 3);
    let end = source[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(source.len(), |i| after_scheme + i);
    source[..end].to_owned()
}
