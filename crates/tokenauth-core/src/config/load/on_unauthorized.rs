//! `[providers.ID.on_unauthorized]`: what a rejected credential leads to.

use super::report::Ctx;
use super::table::Table;
use super::values::{ActionMessages, action};
use crate::config::model::{OnUnauthorized, UnauthorizedAction};

pub(super) fn read(ctx: &mut Ctx<'_>, table: &mut Table<'_, '_>, fetches: bool) -> OnUnauthorized {
    let status = table
        .statuses(
            ctx,
            "status",
            "Statuses that mean \"credential rejected\": [401] by default.",
        )
        .unwrap_or_else(|| vec![401]);
    let action = action(
        ctx,
        table,
        "renew (drop the token, renew, retry once; the default with a login) or fail (return the response).",
        fetches,
        ("renew", UnauthorizedAction::Renew),
        UnauthorizedAction::Fail,
        ActionMessages {
            needs_login: "action \"renew\" but the provider has static credentials",
            needs_login_help: "there is nothing to renew: use action = \"fail\"",
            unknown_help: "use \"renew\" (drop the token, renew, retry once) or \"fail\"",
        },
    );
    OnUnauthorized { status, action }
}

/// Without an `[on_unauthorized]` table: renew on 401 when the provider
/// fetches tokens, else return the response.
pub(super) fn default(fetches: bool) -> OnUnauthorized {
    OnUnauthorized {
        status: vec![401],
        action: if fetches {
            UnauthorizedAction::Renew
        } else {
            UnauthorizedAction::Fail
        },
    }
}
