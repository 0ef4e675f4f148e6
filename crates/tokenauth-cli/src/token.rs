//! `tokenauth token`: fetch a token and show what it is, masked.

use std::io::IsTerminal;

use secrecy::ExposeSecret;
use tokenauth_core::RequestKind;

use crate::common::{credential, hint, mask, open, report, when, with_spinner};
use crate::{ConnectionArgs, Global, Outcome};

pub(crate) async fn run(
    g: &Global,
    id: &str,
    args: &ConnectionArgs,
    reveal: bool,
    renew: bool,
) -> Outcome {
    let (providers, p, conn) = match open(g, id, args) {
        Ok(opened) => opened,
        Err(o) => return o,
    };
    let auth = match g.engine(providers).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    let what = if p.login.is_some() {
        "fetching a token"
    } else if p.refresh.is_some() {
        "renewing with the stored refresh token"
    } else {
        "rendering the static credential"
    };
    let credential = match with_spinner(
        format!("{}: {what}…", p.id),
        fetch(&auth, &p.id, &conn, renew),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            let outcome = report(&e);
            if let Some(hint) = hint(g, &e) {
                eprintln!("{hint}");
            }
            if matches!(e, tokenauth_core::Error::NoRefreshToken { .. }) && p.device.is_some() {
                eprintln!(
                    "hint: this provider has a device flow: `tokenauth login {} --device --connection {} --store DIR|redis://…` gets and stores a refresh token",
                    p.id,
                    conn.id()
                );
            }
            return outcome;
        }
    };
    let now = auth.clock().now();
    println!("provider:   {} ({})", p.id, p.name);
    println!("connection: {}", conn.id());
    let how = match credential.adopted() {
        true => "read from the shared store (another process fetched it)".to_owned(),
        false => obtained(&p, credential.obtained_by()),
    };
    println!("obtained:   {how}");
    match credential.access_token() {
        Some(token) => {
            let token = token.expose_secret();
            println!("token type: {}", token_type(&p));
            if reveal {
                if std::io::stdout().is_terminal() {
                    eprintln!(
                        "warning: printing the whole token; it grants access to {} until it expires",
                        p.name
                    );
                }
                println!("token:      {token}");
            } else {
                println!("token:      {} (--reveal prints it whole)", mask(token));
            }
        }
        None => println!("token:      none (static credentials, sent as they are)"),
    }
    match credential.expires_at() {
        Some(t) => println!("expires:    {}", when(t, now)),
        None => println!("expires:    never"),
    }
    if let Some(t) = credential.renew_at() {
        println!("renews:     {}", when(t, now));
    }
    for (name, _) in credential.injection().headers() {
        println!("attached:   header {name} (value sensitive, not shown)")
    }
    for (name, _) in credential.injection().query() {
        println!("attached:   query parameter {name} (value not shown)")
    }
    Outcome::Ok
}

/// The scheme the inject template puts before the token (`bearer`, `Bearer`,
/// `Token`, ...), or `custom` when there is none: of the part that carries
/// the token (else the first part).
fn token_type(p: &tokenauth_core::Provider) -> String {
    use tokenauth_core::Var;
    let inject = &p.inject;
    let carries = |t: &tokenauth_core::Template| t.vars().any(|v| *v == Var::TokenAccess);
    let header = inject
        .header_templates()
        .find(|(_, t)| carries(t))
        .or_else(|| inject.header_templates().next());
    let basic_carries = inject
        .basic
        .as_ref()
        .is_some_and(|b| carries(&b.username) || carries(&b.password));
    match header {
        Some((_, value)) if !basic_carries => value
            .source()
            .split_once("{{")
            .map(|(prefix, _)| prefix.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or("custom")
            .to_owned(),
        _ if inject.basic.is_some() => "basic".to_owned(),
        _ => "query parameter".to_owned(),
    }
}

/// How this run got the credential, and from where.
/// The credential; with `renew`, a new one in place of a token another
/// process fetched (the engine does not adopt a token it dropped).
async fn fetch(
    auth: &tokenauth_core::TokenAuth,
    id: &str,
    conn: &tokenauth_core::Connection,
    renew: bool,
) -> Result<tokenauth_core::Credential, tokenauth_core::Error> {
    let first = credential(auth, id, conn).await?;
    if !(renew && first.adopted()) {
        return Ok(first);
    }
    auth.provider(id)?.invalidate(Some(conn), &first).await;
    credential(auth, id, conn).await
}

fn obtained(p: &tokenauth_core::Provider, kind: Option<RequestKind>) -> String {
    match kind {
        Some(RequestKind::Login) => match &p.login {
            Some(login) => format!("logged in at {}", login.url),
            None => "logged in".to_owned(),
        },
        Some(RequestKind::Refresh) => match &p.refresh {
            Some(refresh) => format!(
                "refreshed with the stored refresh token at {}",
                refresh.request.url
            ),
            None => "refreshed with the stored refresh token".to_owned(),
        },
        None => "static credential, rendered from the inputs (nothing fetched)".to_owned(),
        Some(other) => other.to_string(),
    }
}
