//! `tokenauth login PROVIDER --device`: the device authorization grant
//! (RFC 8628). Prints the user code and where to enter it, polls the token
//! endpoint at the provider's interval, and says what it stored (never a
//! token or the device code). Denial and expiry: a clear message, exit 1.

use std::io::Write as _;

use tokenauth_core::{DeviceFailure, Error};

use crate::common::{hint, open, report, when};
use crate::{ConnectionArgs, Global, Outcome};

pub(crate) async fn run(g: &Global, id: &str, args: &ConnectionArgs) -> Outcome {
    let (providers, p, conn) = match open(g, id, args) {
        Ok(opened) => opened,
        Err(o) => return o,
    };
    if p.device.is_none() {
        eprintln!(
            "error: provider `{}` has no [providers.{}.device] table, so it cannot use the device flow",
            p.id, p.id
        );
        eprintln!(
            "hint: add the provider's device authorization endpoint: [providers.{}.device] url = \"https://.../device/code\" (see docs/providers-toml.md)",
            p.id
        );
        return Outcome::InvalidInput;
    }
    let auth = match g.engine(providers).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    let failed = |e: &Error| {
        let outcome = report(e);
        if let Some(hint) = hint(g, e) {
            eprintln!("{hint}");
        }
        outcome
    };
    let handle = match auth.provider(&p.id) {
        Ok(h) => h,
        Err(e) => return failed(&e),
    };
    let authorization = match handle.device_authorization(Some(&conn)).await {
        Ok(a) => a,
        Err(e) => return failed(&e),
    };
    println!("provider:   {} ({})", p.id, p.name);
    println!("connection: {}", conn.id());
    println!("open:       {}", authorization.verification_uri());
    println!("enter code: {}", authorization.user_code());
    if let Some(complete) = authorization.verification_uri_complete() {
        println!("or open:    {complete}");
    }
    println!(
        "waiting for approval (the code expires in {} s; polling every {} s)…",
        authorization.expires_in().as_secs(),
        authorization.interval().as_secs_f64()
    );
    let _ = std::io::stdout().flush();
    let granted = match authorization.wait().await {
        Ok(g) => g,
        Err(e @ Error::Device { reason, .. }) => {
            eprintln!("error: {e}");
            if reason == DeviceFailure::NotOffered {
                return Outcome::InvalidInput;
            }
            return Outcome::AuthFailure;
        }
        Err(e) => return failed(&e),
    };
    println!("approved.");
    let now = auth.clock().now();
    println!(
        "access token: cached for this run, expires {}",
        when(granted.expires_at, now)
    );
    match (granted.refresh_token_stored, &g.store) {
        (true, Some(store)) => println!(
            "stored:     the refresh token for `{}`, connection `{}`, in {store}; `tokenauth token {} --connection {}` uses it",
            p.id,
            conn.id(),
            p.id,
            conn.id()
        ),
        (true, None) => println!(
            "stored:     the refresh token in memory only (this run); pass --store DIR or --store redis://… to keep it"
        ),
        (false, _) if p.refresh.is_none() => println!(
            "stored:     nothing (the provider has no [refresh] table to use a refresh token)"
        ),
        (false, _) => println!("stored:     nothing (the reply carried no refresh token)"),
    }
    Outcome::Ok
}
