//! `[providers.ID.test]`: a request that proves the credentials work. That
//! its URL lies inside the `api` prefixes is a rule of the provider (see
//! `provider::rules`).

use http::Method;

use super::inputs::Scope;
use super::report::Ctx;
use super::request::headers;
use super::table::Table;
use super::values::TokenVars;
use crate::config::model::TestRequest;

pub(super) fn read(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    insecure_ok: bool,
) -> Option<TestRequest> {
    let method = table.method(ctx, "method", "The HTTP method: GET by default.");
    let url = table.url(
        ctx,
        scope,
        "url",
        "An API URL inside the api prefixes that proves the credentials work.",
        insecure_ok,
    );
    let url = table.require(
        ctx,
        "url",
        url,
        "set url = \"...\" to an API URL that proves the credentials work",
    );
    let headers = headers(
        ctx,
        scope,
        table,
        TokenVars::None,
        "Extra request headers (templates of inputs).",
    )
    .unwrap_or_default();
    let body = table
        .str(ctx, "body", "A request body, sent as written.")
        .map(|(b, _)| b.to_owned());
    let expect_status = table
        .statuses(
            ctx,
            "expect_status",
            "Statuses that count as success: [200] by default.",
        )
        .unwrap_or_else(|| vec![200]);
    Some(TestRequest {
        method: method.unwrap_or(Method::GET),
        url: url?,
        headers,
        body,
        expect_status,
    })
}
