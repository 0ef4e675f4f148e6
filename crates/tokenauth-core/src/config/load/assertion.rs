//! `[providers.ID.login.assertion]`: the JWT (RFC 7523) signed for each
//! token request and sent by the `{{ assertion }}` placeholder.

use super::inputs::Scope;
use super::report::Ctx;
use super::table::Table;
use super::values::{TokenVars, shape};
use crate::config::model::{Assertion, JwtAlgorithm};
use crate::template::{Template, Var};

const ALGORITHMS: [(&str, JwtAlgorithm); 4] = [
    ("RS256", JwtAlgorithm::RS256),
    ("PS256", JwtAlgorithm::PS256),
    ("ES256", JwtAlgorithm::ES256),
    ("HS256", JwtAlgorithm::HS256),
];

/// The claims the engine sets itself.
const ENGINE_CLAIMS: [&str; 3] = ["iat", "exp", "jti"];

/// Reads an `assertion` table; `None` when it has an error.
pub(super) fn read(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
) -> Option<Assertion> {
    let errors_before = ctx.errors();
    let algorithm = match table.choice(
        ctx,
        "algorithm",
        "The JWS algorithm: RS256, PS256 (RSA key), ES256 (P-256 key) or HS256 (shared secret).",
        &ALGORITHMS,
    ) {
        Some(Ok(a)) => Some(a),
        Some(Err((text, span))) => {
            let lower = text.to_ascii_uppercase();
            let help = match ALGORITHMS.iter().find(|(n, _)| *n == lower) {
                Some((n, _)) => format!("algorithm names are upper case: write \"{n}\""),
                None => "use \"RS256\", \"PS256\", \"ES256\" or \"HS256\"".to_owned(),
            };
            ctx.error(
                span.start,
                &table.child_path("algorithm"),
                format!("unknown JWT algorithm `{text}`"),
                Some(help),
            );
            None
        }
        None => None,
    };
    let algorithm = table.require(
        ctx,
        "algorithm",
        algorithm,
        "set algorithm = \"RS256\" (or PS256, ES256, HS256)",
    );
    let key = table.template(
        ctx,
        scope,
        "key",
        "The signing key: a template of secret inputs holding a PEM private key (PKCS#8 or PKCS#1; SEC1 for ES256), or the shared secret for HS256.",
        TokenVars::None,
    );
    let key = table.require(
        ctx,
        "key",
        key,
        "set key = \"{{ inputs.private_key }}\", an input declared with secret = true",
    );
    if let Some(key) = &key {
        check_key(ctx, scope, table, key);
    }
    let kid = table.template(
        ctx,
        scope,
        "kid",
        "The `kid` header (a template): which of the client's keys signed.",
        TokenVars::None,
    );
    let x5t = table.template(
        ctx,
        scope,
        "x5t",
        "The `x5t` header (a template): the base64url SHA-1 thumbprint of the key's certificate.",
        TokenVars::None,
    );
    let x5t_s256 = table.template(
        ctx,
        scope,
        "x5t_s256",
        "The `x5t#S256` header (a template): the base64url SHA-256 thumbprint of the key's certificate.",
        TokenVars::None,
    );
    let claims = claims(ctx, scope, table);
    let lifetime = table.duration(
        ctx,
        "lifetime",
        "How long the JWT is valid: exp = iat + lifetime (iat is the engine's clock, jti is random).",
    );
    let lifetime = table.require(
        ctx,
        "lifetime",
        lifetime,
        "set lifetime = \"5m\" (many servers accept at most 1h)",
    );
    if ctx.errors() != errors_before {
        return None;
    }
    Some(Assertion {
        algorithm: algorithm?,
        key: key?,
        kid,
        x5t,
        x5t_s256,
        claims,
        lifetime: lifetime?,
    })
}

/// A key comes from secret inputs only: never written in the file, never
/// from an input that `tokenauth explain` or a log could show.
fn check_key(ctx: &mut Ctx<'_>, scope: &Scope<'_>, table: &Table<'_, '_>, key: &Template) {
    let at = table.peek("key").map_or(0, |n| n.at());
    let path = table.child_path("key");
    if key.is_literal() {
        ctx.error(
            at,
            &path,
            "a signing key cannot be written in the description",
            Some(format!(
                "declare a secret input, e.g. [providers.{}.inputs] private_key = {{ env = \"...\", secret = true }}, and write key = \"{{{{ inputs.private_key }}}}\"",
                scope.provider
            )),
        );
        return;
    }
    for var in key.vars() {
        let Var::Input(name) = var else { continue };
        let input = scope.inputs.list.iter().find(|i| &i.name == name);
        if input.is_some_and(|i| !i.secret) {
            ctx.error(
                at,
                &path,
                format!("the signing key comes from `inputs.{name}`, which is not secret"),
                Some(format!(
                    "add secret = true to [providers.{}.inputs.{name}]: a key must never be shown or logged",
                    scope.provider
                )),
            );
        }
    }
    if key.parts().count() != 1 {
        ctx.error(
            at,
            &path,
            "the signing key template has text besides its placeholder",
            Some("write key = \"{{ inputs.private_key }}\" alone: the whole key comes from one secret input".into()),
        );
    }
}

/// `claims = { iss = "...", aud = "...", ... }`: templates, in file order.
fn claims(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
) -> Vec<(String, Template)> {
    let Some(map) = table.map(
        ctx,
        "claims",
        "The JWT's claims (iss, sub, aud, scope, any other): string templates. iat, exp and jti are set by the engine.",
        None,
        shape::template,
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in map.entries {
        let name: &str = &entry.key;
        let path = map.child_path(name);
        if ENGINE_CLAIMS.contains(&name) {
            ctx.error(
                entry.key_at,
                &path,
                format!("`{name}` is set by the engine"),
                Some("iat is the engine's clock, exp is iat + lifetime and jti is random: remove this claim (set lifetime to change exp)".into()),
            );
            continue;
        }
        if let Some(t) =
            super::values::template(ctx, scope, &entry.value, &path, name, TokenVars::None)
        {
            out.push((name.to_owned(), t));
        }
    }
    out
}
