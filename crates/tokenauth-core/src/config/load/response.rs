//! `[providers.ID.response]`: where things are in the token reply.

use super::report::Ctx;
use super::table::Table;
use crate::config::model::{ExpiresAtFormat, Response};

pub(super) fn read(ctx: &mut Ctx<'_>, table: &mut Table<'_, '_>, provider: &str) -> Response {
    let mut r = Response::default();
    if let Some(p) = table.pointer(
        ctx,
        "access_token",
        "The access token (must be a string): \"/access_token\" by default.",
    ) {
        r.access_token = p;
    }
    r.refresh_token = table.pointer(
        ctx,
        "refresh_token",
        "The refresh token, if the provider issues one.",
    );
    r.expires_in = table.pointer(
        ctx,
        "expires_in",
        "The lifetime in seconds (number or numeric string).",
    );
    r.expires_at = table.pointer(ctx, "expires_at", "The absolute expiry time.");
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
