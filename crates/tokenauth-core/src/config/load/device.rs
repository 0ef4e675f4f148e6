//! `[providers.ID.device]`: the device authorization grant (RFC 8628). The
//! device authorization request is read like a `[login]` (url, method,
//! body, fields, headers, basic, timeout) plus `scopes`, `scope_separator`
//! and `reply` (where the device reply's values are; RFC 8628 §3.2 names by
//! default). The polling request is not written: it goes to the login's (or
//! the refresh's) token URL, with `grant_type`, `device_code` and this
//! table's `fields`, authenticated like the login (see `Device`).

use http::Method;

use super::inputs::Scope;
use super::report::Ctx;
use super::request::{self, DEFAULT_TIMEOUT};
use super::table::Table;
use super::values::TokenVars;
use crate::config::model::{BodyFormat, Device, DeviceReply, JsonPointer, TokenRequest};

/// Reads a `[device]` table; `None` when it has an error that leaves no
/// request to send.
pub(super) fn read(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    insecure_ok: bool,
) -> Option<Device> {
    let url = table.url(
        ctx,
        scope,
        "url",
        "The device authorization endpoint (RFC 8628 §3.1); https unless loopback or allow_insecure_http.",
        insecure_ok,
    );
    let url = table.require(
        ctx,
        "url",
        url,
        "set url = \"https://.../device/code\" (the device authorization endpoint)",
    );
    let keys = request::read(ctx, scope, table, TokenVars::None);
    let (scopes, scope_separator) = request::scopes(
        ctx,
        table,
        "The scopes asked for, sent as the `scope` field joined with scope_separator.",
    );
    if !scopes.is_empty() && keys.fields.iter().any(|(name, _)| name == "scope") {
        let at = table.peek("scopes").map_or(table.at, |n| n.at());
        ctx.error(
            at,
            &table.child_path("scopes"),
            "both `scopes` and a `scope` field: the scope would be sent twice",
            Some("keep one: list the scopes in `scopes` and remove fields.scope".into()),
        );
    }
    let reply = table
        .table(
            ctx,
            "reply",
            "Where the values are in the device authorization reply: RFC 8628 §3.2 names by default.",
            "[device.reply]",
            reply,
        )
        .unwrap_or_default();
    let method = keys.method.unwrap_or(Method::POST);
    let body = keys.body.unwrap_or(BodyFormat::Form);
    request::check_nested(ctx, keys.nested.as_ref(), body, &method, &table.path);
    Some(Device {
        request: TokenRequest {
            url: url?,
            method,
            body,
            fields: keys.fields,
            headers: keys.headers.unwrap_or_default(),
            basic: keys.basic.flatten(),
            timeout: keys.timeout.unwrap_or(DEFAULT_TIMEOUT),
            // The device request signs nothing; its polls go to the token
            // endpoint as the login does.
            assertion: None,
        },
        scopes,
        scope_separator,
        reply,
    })
}

fn reply(ctx: &mut Ctx<'_>, table: &mut Table<'_, '_>) -> DeviceReply {
    let default = DeviceReply::default();
    let mut pointer = |key: &'static str, doc: &'static str, default: JsonPointer| {
        table.pointer(ctx, key, doc).unwrap_or(default)
    };
    DeviceReply {
        device_code: pointer(
            "device_code",
            "The device code: \"/device_code\" by default.",
            default.device_code,
        ),
        user_code: pointer(
            "user_code",
            "The code the person enters: \"/user_code\" by default.",
            default.user_code,
        ),
        verification_uri: pointer(
            "verification_uri",
            "Where the person goes: \"/verification_uri\" by default.",
            default.verification_uri,
        ),
        verification_uri_complete: pointer(
            "verification_uri_complete",
            "The same with the code in it (optional in the reply): \"/verification_uri_complete\" by default.",
            default.verification_uri_complete,
        ),
        expires_in: pointer(
            "expires_in",
            "The codes' lifetime in seconds: \"/expires_in\" by default.",
            default.expires_in,
        ),
        interval: pointer(
            "interval",
            "The polling interval in seconds (optional in the reply, 5 s when absent): \"/interval\" by default.",
            default.interval,
        ),
    }
}
