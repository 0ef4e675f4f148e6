//! `[providers.ID.expiry]`: a token's lifetime and when to renew it.

use super::report::Ctx;
use super::table::Table;
use super::tree::Kind;
use super::values::{SKEW_PATTERN, duration, shape};
use crate::config::model::{Expiry, Skew};

pub(super) fn read(ctx: &mut Ctx<'_>, table: &mut Table<'_, '_>) -> Expiry {
    let ttl = table.duration(
        ctx,
        "ttl",
        "The lifetime to assume when the reply says nothing, e.g. \"60m\".",
    );
    let skew = table.take(
        ctx,
        "skew",
        "Renew this long before expiry: a duration (\"30s\") or a percentage of the lifetime (\"10%\", the default).",
        || shape::pattern(SKEW_PATTERN),
    );
    let jwt_exp = table
        .bool(
            ctx,
            "jwt_exp",
            "Read the exp claim when the access token is a JWT.",
        )
        .unwrap_or(false);
    let skew = match skew.map(|v| (v, &v.kind)) {
        Some((v, Kind::String(s))) if s.trim_end().ends_with('%') => {
            let number = s.trim_end().trim_end_matches('%').trim();
            match number.parse::<u8>() {
                Ok(p) if (1..=90).contains(&p) => Skew::Percent(p),
                _ => {
                    ctx.error(
                        v.at(),
                        &table.child_path("skew"),
                        format!("`{s}` is not a usable percentage"),
                        Some(
                            "use a whole percentage from 1% to 90% of the lifetime, e.g. \"10%\""
                                .into(),
                        ),
                    );
                    Skew::DEFAULT
                }
            }
        }
        Some((v, _)) => {
            duration(ctx, v, &table.child_path("skew"), "skew").map_or(Skew::DEFAULT, Skew::Fixed)
        }
        None => Skew::DEFAULT,
    };
    Expiry { ttl, skew, jwt_exp }
}
