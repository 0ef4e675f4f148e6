//! `tokenauth store put PROVIDER`: gives a connection its first refresh
//! token, read from stdin (never from the command line, which ends up in
//! shell history and process listings).
//!
//! ```console
//! $ tokenauth --store ~/.tokenauth store put exact-online --connection acme < refresh-token.txt
//! stored a refresh token for exact-online, connection acme, in the file store ~/.tokenauth
//! ```

use std::io::{BufRead as _, IsTerminal as _, Read as _};

use secrecy::{ExposeSecret as _, SecretString};
use tokenauth_core::store::{CasOutcome, StoreKey};

use crate::common::{open, report_store};
use crate::{ConnectionArgs, Global, Outcome};

/// The longest refresh token accepted (providers' are a few hundred bytes).
const MAX_TOKEN: usize = 16 * 1024;

pub(crate) async fn put(g: &Global, id: &str, args: &ConnectionArgs) -> Outcome {
    let (_, p, conn) = match open(g, id, args) {
        Ok(opened) => opened,
        Err(o) => return o,
    };
    if p.refresh.is_none() {
        eprintln!(
            "error: `{id}` has no [refresh] table, so it never uses a refresh token: there is nothing to put"
        );
        return Outcome::InvalidInput;
    }
    let Some(spec) = g.store.as_deref() else {
        eprintln!(
            "error: nothing would keep the token: give the store with --store DIR or --store redis://HOST:PORT/DB (or $TOKENAUTH_STORE), the one the workers use"
        );
        return Outcome::InvalidInput;
    };
    let token = match read_token() {
        Ok(token) => token,
        Err(message) => {
            eprintln!("error: {message}");
            return Outcome::InvalidInput;
        }
    };
    let store = match g.token_store().await {
        Ok(Some(store)) => store,
        Ok(None) => return Outcome::InvalidInput,
        Err(o) => return o,
    };
    let key = StoreKey {
        provider: &p.id,
        connection: conn.id(),
    };
    // Replace whatever is stored, by compare-and-set against what was read:
    // a worker that rotates the token meanwhile is not overwritten blindly.
    for _ in 0..3 {
        let current = match store.read(&key).await {
            Ok(state) => state.refresh_token,
            Err(e) => {
                eprintln!("error: the token store could not be read: {e}");
                return Outcome::AuthFailure;
            }
        };
        match store
            .cas_refresh(&key, current.as_ref(), Some(&token))
            .await
        {
            Ok(CasOutcome::Written) => {
                let replaced = if current.is_some() {
                    " (it replaces the one stored before)"
                } else {
                    ""
                };
                println!(
                    "stored a refresh token for {}, connection {}, in {}{replaced}; the next token request refreshes with it",
                    p.id,
                    conn.id(),
                    report_store(spec)
                );
                return Outcome::Ok;
            }
            Ok(CasOutcome::Conflict { .. }) => continue,
            Err(e) => {
                eprintln!("error: the token store could not save the refresh token: {e}");
                return Outcome::AuthFailure;
            }
        }
    }
    eprintln!(
        "error: another process kept changing the stored refresh token for {}, connection {}; nothing was written: run it again when the workers are idle",
        p.id,
        conn.id()
    );
    Outcome::AuthFailure
}

/// One refresh token from stdin: the first line, surrounding whitespace
/// removed. On a terminal, a prompt goes to stderr first.
fn read_token() -> Result<SecretString, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("paste the refresh token, then press Enter (it is not shown again):");
    }
    let mut line = String::new();
    std::io::BufReader::new(stdin.lock().take(MAX_TOKEN as u64 + 2))
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the refresh token from stdin: {e}"))?;
    let line = SecretString::from(line);
    let token = line.expose_secret().trim();
    if token.is_empty() {
        return Err(
            "stdin held no refresh token: pipe it in, e.g. `tokenauth store put ID < token.txt`"
                .into(),
        );
    }
    if token.len() > MAX_TOKEN {
        return Err(format!(
            "stdin holds more than {MAX_TOKEN} bytes on its first line: that is not a refresh token"
        ));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(
            "the refresh token holds whitespace or control characters: give the token alone, on one line"
                .into(),
        );
    }
    Ok(SecretString::from(token.to_owned()))
}
