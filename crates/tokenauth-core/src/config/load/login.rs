//! `[providers.ID.login]`: the token request.

use http::Method;

use super::assertion;
use super::inputs::Scope;
use super::report::Ctx;
use super::request::{self, DEFAULT_TIMEOUT};
use super::table::Table;
use super::values::TokenVars;
use crate::config::model::{BodyFormat, TokenRequest};

/// Reads a `[login]` table; `None` when it has an error that leaves no
/// request to send.
pub(super) fn read(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    insecure_ok: bool,
) -> Option<TokenRequest> {
    let url = table.url(
        ctx,
        scope,
        "url",
        "The token endpoint (https unless loopback or allow_insecure_http).",
        insecure_ok,
    );
    let url = table.require(
        ctx,
        "url",
        url,
        "set url = \"https://.../token\" (the token endpoint)",
    );
    let assertion = table
        .table(
            ctx,
            "assertion",
            "A JWT (RFC 7523) signed for each token request, sent by the {{ assertion }} placeholder: the assertion of the jwt-bearer grant or a client_assertion (private_key_jwt).",
            "an [assertion] table",
            |ctx, t| assertion::read(ctx, scope, t),
        )
        .flatten();
    let keys = request::read(ctx, &scope.token_request(), table, TokenVars::None);
    let method = keys.method.unwrap_or(Method::POST);
    let body = keys.body.unwrap_or(BodyFormat::Form);
    request::check_nested(ctx, keys.nested.as_ref(), body, &method, &table.path);
    let request = TokenRequest {
        url: url?,
        method,
        body,
        fields: keys.fields,
        headers: keys.headers.unwrap_or_default(),
        basic: keys.basic.flatten(),
        timeout: keys.timeout.unwrap_or(DEFAULT_TIMEOUT),
        assertion,
    };
    if let Some(a) = table.peek("assertion")
        && keys.templates_ok
        && !request.sends_assertion()
    {
        ctx.error(
            a.at(),
            &table.child_path("assertion"),
            "an assertion table, but no field sends `{{ assertion }}`",
            Some("send it: fields = { grant_type = \"urn:ietf:params:oauth:grant-type:jwt-bearer\", assertion = \"{{ assertion }}\" } (or client_assertion = \"{{ assertion }}\" for private_key_jwt)".into()),
        );
    }
    Some(request)
}
