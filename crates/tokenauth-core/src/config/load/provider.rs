//! `[providers.ID]`: one provider. [`read`] is the shape pass (each key
//! through the table helper, each sub-table by its own module's reader);
//! [`rules`] then checks what relates one table to another.

use crate::url_template::UrlTemplate;

use super::inputs::{self, Scope};
use super::report::Ctx;
use super::table::Table;
use super::tree::{Kind, Node};
use super::values::{check_url, shape};
use super::{authorize, device, expiry, inject, login, on_unauthorized, refresh, response, test};
use crate::config::model::{Expiry, Inject, Provider, Response, TestRequest};
use crate::template::Var;

/// Reads a provider table; `None` when it has an error that leaves no
/// provider (the errors are in `ctx`).
pub(super) fn read(ctx: &mut Ctx<'_>, id: &str, table: &mut Table<'_, '_>) -> Option<Provider> {
    let name = table
        .str(ctx, "name", "A human name for messages; the id by default.")
        .map_or_else(|| id.to_owned(), |(n, _)| n.to_owned());
    // Taken before allow_insecure_http (the order "accepts: ..." lists the
    // keys in), checked after it.
    let api_node = table.take(
        ctx,
        "api",
        "URL prefixes the credential may be sent to.",
        shape::url_list,
    );
    table.required("api");
    let allow_insecure_http = table
        .bool(
            ctx,
            "allow_insecure_http",
            "Allow http:// URLs for hosts other than loopback.",
        )
        .unwrap_or(false);
    let inputs = inputs::read(ctx, table);
    // What depends on the login (the refresh's url and on_error action, the
    // token placeholders) asks whether a login is written, not whether it
    // loaded: a broken [login] has its own errors and causes no others.
    let login_written = table.peek("login").is_some();
    let scope = Scope {
        provider: id,
        inputs: &inputs,
        fetches: login_written || table.peek("refresh").is_some(),
        has_assertion: table
            .peek("login")
            .and_then(|login| login.get("assertion"))
            .is_some(),
        assertion_here: false,
    };
    let errors_before_api = ctx.errors();
    let api = api(ctx, &scope, table, api_node, allow_insecure_http);
    let api_complete = ctx.errors() == errors_before_api;
    let insecure = allow_insecure_http;
    let login = table
        .table(
            ctx,
            "login",
            "The token request; leave it out for static credentials.",
            "a [login] table",
            |ctx, t| login::read(ctx, &scope, t, insecure),
        )
        .flatten();
    let refresh = table
        .table(
            ctx,
            "refresh",
            "How to trade a refresh token for a new access token.",
            "a [refresh] table",
            |ctx, t| {
                let login = refresh::Login {
                    written: login_written,
                    request: login.as_ref(),
                };
                refresh::read(ctx, &scope, t, login, insecure)
            },
        )
        .flatten();
    let device = table
        .table(
            ctx,
            "device",
            "The device authorization grant (RFC 8628): the device authorization request; the polls go to the login's (or refresh's) url.",
            "a [device] table",
            |ctx, t| device::read(ctx, &scope, t, insecure),
        )
        .flatten();
    if let Some(node) = table.peek("device")
        && node.entries().is_some()
        && !scope.fetches
    {
        ctx.error(
            node.at(),
            &table.child_path("device"),
            "a [device] table but no token endpoint to poll",
            Some(format!("the device code is traded for tokens at the token endpoint: add [providers.{id}.login] (or [providers.{id}.refresh]) with its url")),
        );
    }
    let authorize = table
        .table(
            ctx,
            "authorize",
            "The authorization-code grant: a person consents in a browser (tokenauth login).",
            "an [authorize] table",
            |ctx, t| {
                let token = login.as_ref().or(refresh.as_ref().map(|r| &r.request));
                authorize::read(ctx, &scope, t, token, insecure)
            },
        )
        .flatten();
    let response = table
        .table(
            ctx,
            "response",
            "Where the token and its lifetime are in the JSON reply.",
            "[response]",
            |ctx, t| response::read(ctx, t, id),
        )
        .unwrap_or_default();
    let expiry = table
        .table(
            ctx,
            "expiry",
            "Token lifetime and renewal.",
            "[expiry]",
            expiry::read,
        )
        .unwrap_or_default();
    let inject = table
        .table(
            ctx,
            "inject",
            "Exactly one way to attach the credential: header + value, basic, or query.",
            "[inject]",
            |ctx, t| inject::read(ctx, &scope, t),
        )
        .flatten();
    table.required("inject");
    let on_unauthorized = table
        .table(
            ctx,
            "on_unauthorized",
            "What a rejected credential leads to.",
            "[on_unauthorized]",
            |ctx, t| on_unauthorized::read(ctx, t, scope.fetches),
        )
        .unwrap_or_else(|| on_unauthorized::default(scope.fetches));
    let test = table
        .table(
            ctx,
            "test",
            "A request that proves the credentials work (tokenauth test ID).",
            "[test]",
            |ctx, t| test::read(ctx, &scope, t, insecure),
        )
        .flatten();
    // Known only to say that it belongs in [refresh] (see `rules`).
    table.misplaced(ctx, "rotate");
    let fetches = scope.fetches;
    rules(
        ctx,
        table,
        Written {
            id,
            api: api_complete.then_some(&api[..]),
            fetches,
            response: &response,
            expiry: &expiry,
            inject: inject.as_ref(),
            test: test.as_ref(),
            login_url: login.as_ref().map(|l| &l.url),
            refresh_url: refresh.as_ref().map(|r| &r.request.url),
            device_url: device.as_ref().map(|d| &d.request.url),
        },
    );
    Some(Provider {
        id: id.to_owned(),
        name,
        api,
        allow_insecure_http,
        inputs: inputs.list,
        login,
        refresh,
        device,
        response,
        expiry,
        inject: inject?,
        on_unauthorized,
        test,
        authorize,
    })
}

/// `api`: one URL prefix or a list of them, none empty, each a URL without
/// query or fragment. Runs after `allow_insecure_http` is known.
fn api(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &Table<'_, '_>,
    node: Option<&Node<'_>>,
    insecure_ok: bool,
) -> Vec<UrlTemplate> {
    let path = table.child_path("api");
    let Some(node) = node else {
        ctx.error(table.at, &table.path, "missing key `api`", Some("list the URL prefixes the credential may be sent to, e.g. api = [\"https://api.example.com/\"]".into()));
        return Vec::new();
    };
    let items = match &node.kind {
        Kind::Array(items) => items.iter().collect(),
        _ => vec![node],
    };
    if items.is_empty() {
        ctx.error(
            table.at,
            &path,
            "`api` is empty: the credential could never be used",
            Some("list at least one URL prefix".into()),
        );
    }
    let mut out = Vec::new();
    for item in items {
        let Kind::String(text) = &item.kind else {
            ctx.error(
                item.at(),
                &path,
                format!("expected a string, found {}", item.type_name()),
                None,
            );
            continue;
        };
        let Some(url) = check_url(ctx, scope, text, &item.span, &path, insecure_ok) else {
            continue;
        };
        if url.sample().query().is_some() || url.sample().fragment().is_some() {
            ctx.error(
                item.at(),
                &path,
                "an api prefix cannot have a query or fragment",
                Some("give scheme, host, optional port and path only".into()),
            );
            continue;
        }
        out.push(url);
    }
    out
}

/// What the rules between a provider's tables look at.
struct Written<'p> {
    id: &'p str,
    /// `None` when a prefix was rejected: a test URL may well be under the
    /// one that was meant, so only the prefix's error is reported.
    api: Option<&'p [UrlTemplate]>,
    fetches: bool,
    response: &'p Response,
    expiry: &'p Expiry,
    inject: Option<&'p Inject>,
    test: Option<&'p TestRequest>,
    login_url: Option<&'p UrlTemplate>,
    refresh_url: Option<&'p UrlTemplate>,
    device_url: Option<&'p UrlTemplate>,
}

/// The rules that relate one table of a provider to another. Each asks
/// whether a key is written, not whether it loaded: a broken table has its
/// own error and causes no others.
fn rules(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, p: Written<'_>) {
    let id = p.id;
    let refresh_table = table.peek("refresh").filter(|v| v.entries().is_some());
    if let Some(v) = table.peek("rotate") {
        let help = if refresh_table.is_some() {
            format!("move it into [providers.{id}.refresh]")
        } else {
            format!(
                "rotation is a property of refresh tokens: add a [providers.{id}.refresh] table with the refresh request's fields and rotate = true there"
            )
        };
        ctx.error(
            v.at(),
            &table.child_path("rotate"),
            "`rotate = true` but there is no [refresh] table for it to apply to",
            Some(help),
        );
    }
    if let Some(refresh) = refresh_table
        && !table.written_in("response", "refresh_token")
    {
        ctx.error(refresh.at(), &table.child_path("refresh"), "a [refresh] table but no `response.refresh_token`", Some(format!("say where the reply carries the refresh token: [providers.{id}.response] refresh_token = \"/refresh_token\"")));
    }
    // Only when no expiry key is written at all: a malformed one has its own error.
    let expiry_written = ["ttl", "jwt_exp"]
        .iter()
        .any(|k| table.written_in("expiry", k))
        || ["expires_in", "expires_at"]
            .iter()
            .any(|k| table.written_in("response", k));
    if p.fetches
        && !expiry_written
        && p.expiry.ttl.is_none()
        && !p.expiry.jwt_exp
        && p.response.expires_in.is_none()
        && p.response.expires_at.is_none()
    {
        let login_table = table.peek("login").filter(|v| v.entries().is_some());
        ctx.error(
            login_table.or(refresh_table).map_or(table.at, |t| t.at()),
            &table.path,
            "no way to know when the token expires",
            Some(format!("set [providers.{id}.expiry] ttl = \"60m\" (the lifetime the provider documents), or point response.expires_in / response.expires_at at the reply's expiry")),
        );
    }
    match (table.peek("inject"), p.inject) {
        (None, _) => {
            ctx.error(table.at, &table.path, "missing [inject] table: the credential would never be sent", Some(format!("add [providers.{id}.inject] with header = \"Authorization\" and value = \"Bearer {{{{ token.access }}}}\"")));
        }
        (Some(node), Some(inject))
            if p.fetches
                && !inject
                    .templates()
                    .any(|t| t.vars().any(|v| *v == Var::TokenAccess)) =>
        {
            ctx.error(node.at(), &table.child_path("inject"), "the provider logs in but [inject] never uses `{{ token.access }}` (in any of its parts), so the token would not be sent", Some("e.g. value = \"Bearer {{ token.access }}\"".into()));
        }
        _ => {}
    }
    let api_base_written = table.written_in("response", "api_base");
    if let Some(api) = p.api {
        let api_node = table.peek("api").map_or(table.at, Node::at);
        if api.iter().any(UrlTemplate::is_wildcard) && !api_base_written {
            ctx.error(
                api_node,
                &table.child_path("api"),
                "a `*` in an api prefix names every host of that form, but nothing binds a connection to one of them",
                Some(format!("say where the token reply gives the connection's API base: [providers.{id}.response] api_base = \"/instance_url\"; or write the host out")),
            );
        }
        if api_base_written && !p.fetches {
            let at = table
                .peek("response")
                .and_then(|r| r.get("api_base"))
                .map_or(api_node, Node::at);
            ctx.error(
                at,
                &format!("{}.api_base", table.child_path("response")),
                "`response.api_base` on a provider that never fetches a token: there is no reply to read it from",
                Some("remove it, or add the [login] table whose reply carries the API base".into()),
            );
        }
        if api_base_written && api.iter().any(|t| t.inputs().next().is_some()) {
            ctx.error(
                api_node,
                &table.child_path("api"),
                "an api prefix with `{{ inputs.* }}` cannot be bound by `response.api_base`",
                Some("use `*` host labels for the part of the host the reply decides".into()),
            );
        }
    }
    for key in ["login", "refresh", "device"] {
        let url = match key {
            "login" => p.login_url,
            "refresh" => p.refresh_url,
            _ => p.device_url,
        };
        if let Some(url) = url.filter(|u| u.is_wildcard()) {
            let at = table
                .peek(key)
                .and_then(|t| t.get("url"))
                .map_or(table.at, Node::at);
            ctx.error(
                at,
                &format!("{}.url", table.child_path(key)),
                format!("`{}` has a `*` host label: a token request goes to one host", url.source()),
                Some("write the host out, or take it from an input: https://{{ inputs.NAME }}.example.com/".into()),
            );
        }
    }
    if let (Some(api), Some(test)) = (p.api, p.test)
        && !api.is_empty()
        && !api
            .iter()
            .any(|prefix| crate::route::prefix_matches(prefix.sample(), test.url.sample()))
    {
        let test_table = table.peek("test");
        let at = test_table
            .and_then(|t| t.get("url"))
            .or(test_table)
            .map_or(table.at, Node::at);
        ctx.error(
            at,
            &format!("{}.url", table.child_path("test")),
            "the test URL is outside every `api` prefix, so no credential would be attached",
            Some("use a URL under one of the provider's api prefixes".into()),
        );
    }
}
