//! `[providers.ID.login]`: the token request.

use http::Method;

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
    let keys = request::read(ctx, scope, table, TokenVars::None);
    if let Some(v) = table.misplaced(ctx, "rotate") {
        ctx.error(
            v.at(),
            &table.child_path("rotate"),
            "`rotate` belongs in the [refresh] table",
            Some(format!("move it to [providers.{}.refresh]", scope.provider)),
        );
    }
    let method = keys.method.unwrap_or(Method::POST);
    let body = keys.body.unwrap_or(BodyFormat::Form);
    request::check_nested(ctx, keys.nested.as_ref(), body, &method, &table.path);
    Some(TokenRequest {
        url: url?,
        method,
        body,
        fields: keys.fields,
        headers: keys.headers.unwrap_or_default(),
        basic: keys.basic.flatten(),
        timeout: keys.timeout.unwrap_or(DEFAULT_TIMEOUT),
    })
}
