//! `[providers.ID.authorize]`: the authorization-code grant (RFC 6749
//! §4.1) with PKCE (RFC 7636), and `[authorize.exchange]`, the code
//! exchange. What the exchange leaves out it takes from the login (or, for
//! a provider without one, the refresh): url, method, body, timeout, and on
//! the same origin headers and basic.

use http::Method;

use super::inputs::Scope;
use super::report::Ctx;
use super::request::{self, DEFAULT_TIMEOUT};
use super::table::Table;
use super::values::{TokenVars, shape};
use crate::config::model::{Authorize, BodyFormat, Pkce, RedirectUri, TokenRequest};

/// The redirect URI when none is written: any port of 127.0.0.1.
const DEFAULT_REDIRECT: &str = "http://127.0.0.1/callback";

/// Reads an `[authorize]` table. `token` is the login's request, else the
/// refresh's: where the exchange's url and defaults come from.
pub(super) fn read(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    token: Option<&TokenRequest>,
    insecure_ok: bool,
) -> Option<Authorize> {
    let url = table.url(
        ctx,
        scope,
        "url",
        "The authorization endpoint the person's browser is sent to (a URL template).",
        insecure_ok,
    );
    let url = table.require(
        ctx,
        "url",
        url,
        "set url = \"https://.../authorize\" (the authorization endpoint)",
    );
    let client_id = table.template(
        ctx,
        scope,
        "client_id",
        "The client id (a template), sent in the authorization URL and the code exchange.",
        TokenVars::None,
    );
    let client_id = table.require(
        ctx,
        "client_id",
        client_id,
        "set client_id = \"{{ inputs.client_id }}\" (the id the provider registered for this app)",
    );
    let (scopes, scope_separator) = request::scopes(
        ctx,
        table,
        "The scopes asked for; none: no scope parameter.",
    );
    let params = request::template_map(
        ctx,
        scope,
        table,
        "params",
        "Extra query parameters of the authorization URL: name = template.",
        None,
        TokenVars::None,
    )
    .unwrap_or_default()
    .into_iter()
    .map(|(name, _, t)| (name, t))
    .collect::<Vec<_>>();
    for reserved in RESERVED {
        if let Some(p) = table.peek("params").and_then(|p| p.get(reserved)) {
            ctx.error(
                p.at(),
                &format!("{}.{reserved}", table.child_path("params")),
                format!("`{reserved}` is set by the engine in every authorization URL"),
                Some(match *reserved {
                    "scope" => "list the scopes in `scopes` instead".into(),
                    "client_id" => "set it with `client_id`".into(),
                    "redirect_uri" => "set it with `redirect_uri`".into(),
                    _ => "remove it from params".into(),
                }),
            );
        }
    }
    let pkce = match table.choice(
        ctx,
        "pkce",
        "PKCE (RFC 7636): \"S256\" (the default), \"plain\" or \"off\".",
        &[
            ("S256", Pkce::S256),
            ("plain", Pkce::Plain),
            ("off", Pkce::Off),
        ],
    ) {
        Some(Ok(p)) => p,
        Some(Err((text, span))) => {
            ctx.error(
                span.start,
                &table.child_path("pkce"),
                format!("unknown PKCE method `{text}`"),
                Some("use \"S256\" (the default), \"plain\" for a server without SHA-256, or \"off\" for one that rejects PKCE parameters".into()),
            );
            Pkce::S256
        }
        None => Pkce::S256,
    };
    let redirect_uri = redirect_uri(ctx, table);
    let exchange = table
        .table(
            ctx,
            "exchange",
            "The code exchange (RFC 6749 §4.1.3); the engine adds grant_type, code, redirect_uri, code_verifier and client_id unless written.",
            "[authorize.exchange]",
            |ctx, t| exchange(ctx, scope, t, token, insecure_ok),
        )
        .flatten();
    let exchange = match (exchange, table.peek("exchange")) {
        (Some(e), _) => Some(e),
        (None, Some(_)) => None,
        (None, None) => match token {
            Some(t) => Some(TokenRequest {
                fields: Vec::new(),
                ..t.clone()
            }),
            None => {
                ctx.error(
                    table.at,
                    &table.path,
                    "no token endpoint to exchange the code at",
                    Some(format!(
                        "add [providers.{}.authorize.exchange] with url = \"https://.../token\", or a [login] or [refresh] table whose url it takes",
                        scope.provider
                    )),
                );
                None
            }
        },
    };
    Some(Authorize {
        url: url?,
        client_id: client_id?,
        scopes,
        scope_separator,
        params,
        pkce,
        redirect_uri: redirect_uri?,
        exchange: exchange?,
    })
}

/// The parameters every authorization URL gets from the engine.
const RESERVED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// `redirect_uri`: an https URI, or a loopback http one (a port is then
/// optional: without one, any port matches, RFC 8252 §7.3).
fn redirect_uri(ctx: &mut Ctx<'_>, table: &mut Table<'_, '_>) -> Option<RedirectUri> {
    let written = table.str_shaped(
        ctx,
        "redirect_uri",
        "The registered redirect URI: http://127.0.0.1/callback by default. A loopback http URI without a port admits any port (RFC 8252 §7.3).",
        shape::url,
    );
    let (text, at) = match written {
        Some((text, span)) => (text, span.start),
        None if table.peek("redirect_uri").is_some() => return None,
        None => (DEFAULT_REDIRECT, table.at),
    };
    let path = table.child_path("redirect_uri");
    let help = "write the redirect URI the provider has registered for this app, e.g. http://127.0.0.1/callback (any port) or http://127.0.0.1:8400/callback";
    let uri = match url::Url::parse(text) {
        Ok(u) => u,
        Err(e) => {
            ctx.error(
                at,
                &path,
                format!("`{text}` is not a URL: {e}"),
                Some(help.into()),
            );
            return None;
        }
    };
    if uri.fragment().is_some() {
        ctx.error(
            at,
            &path,
            "a redirect URI cannot have a fragment (RFC 6749 §3.1.2)",
            Some(help.into()),
        );
        return None;
    }
    let written_port = port_written(text);
    let mut r = RedirectUri {
        uri,
        any_port: false,
    };
    r.any_port = r.is_loopback() && !written_port;
    if r.uri.scheme() == "http" && !r.is_loopback() {
        ctx.error(
            at,
            &path,
            format!("`{text}` is plain http on a host other than loopback: the code would cross the network unencrypted"),
            Some("use https, or a loopback address (http://127.0.0.1/callback) for a native app".into()),
        );
        return None;
    }
    if !matches!(r.uri.scheme(), "http" | "https") {
        ctx.error(
            at,
            &path,
            format!("`{text}` is not an http(s) URI"),
            Some(help.into()),
        );
        return None;
    }
    Some(r)
}

/// True when the authority of `text` names a port (`url` drops a default
/// port, so `:80` is looked for in the text).
fn port_written(text: &str) -> bool {
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_end = authority.rfind(']').unwrap_or(0);
    authority[host_end..].contains(':')
}

/// `[authorize.exchange]`: like `[login]`; the url defaults to the login's
/// (or the refresh's), and so do method, body and timeout; headers and
/// basic too when the url is on the same origin.
fn exchange(
    ctx: &mut Ctx<'_>,
    scope: &Scope<'_>,
    table: &mut Table<'_, '_>,
    token: Option<&TokenRequest>,
    insecure_ok: bool,
) -> Option<TokenRequest> {
    let url = table.url(
        ctx,
        scope,
        "url",
        "The token endpoint. Left out: the login's url (or the refresh's).",
        insecure_ok,
    );
    let url = match url {
        Some(u) => Some(u),
        None if table.peek("url").is_some() => None,
        None => match token {
            Some(t) => Some(t.url.clone()),
            None => {
                ctx.error(
                    table.at,
                    &table.path,
                    "missing key `url`",
                    Some("a provider without [login] or [refresh] must give the token endpoint's url".into()),
                );
                None
            }
        },
    };
    let keys = request::read(ctx, scope, table, TokenVars::None);
    let same_origin = match (&url, token) {
        (Some(u), Some(t)) => u.sample().origin() == t.url.sample().origin(),
        _ => false,
    };
    let inherited = token.filter(|_| same_origin);
    let method = keys
        .method
        .unwrap_or_else(|| token.map_or(Method::POST, |t| t.method.clone()));
    let body = keys
        .body
        .unwrap_or(token.map_or(BodyFormat::Form, |t| t.body));
    request::check_nested(ctx, keys.nested.as_ref(), body, &method, &table.path);
    Some(TokenRequest {
        url: url?,
        method,
        body,
        fields: keys.fields,
        headers: keys
            .headers
            .or_else(|| inherited.map(|t| t.headers.clone()))
            .unwrap_or_default(),
        basic: match keys.basic {
            Some(b) => b,
            None => inherited.and_then(|t| t.basic.clone()),
        },
        timeout: keys
            .timeout
            .unwrap_or(token.map_or(DEFAULT_TIMEOUT, |t| t.timeout)),
        // A code exchange signs no assertion of its own.
        assertion: None,
    })
}

#[cfg(test)]
mod tests {
    use super::port_written;

    #[test]
    fn ports_are_found_in_the_text() {
        assert!(!port_written("http://127.0.0.1/callback"));
        assert!(port_written("http://127.0.0.1:80/callback"));
        assert!(port_written("http://[::1]:8400/cb"));
        assert!(!port_written("http://[::1]/cb"));
    }
}
