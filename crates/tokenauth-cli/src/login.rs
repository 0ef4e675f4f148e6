//! `tokenauth login`: the authorization-code grant of a native app (RFC
//! 8252). A listener on 127.0.0.1 (the registered redirect URI's port, or
//! any port when it was registered without one) waits for the one redirect
//! to the redirect URI's path; any other path gets a 404 and the wait goes
//! on. It stops after that one callback or the timeout. The authorization
//! URL is printed, and opened in a browser when there is one (a terminal
//! and a display; never in CI, never waited for). `--paste` reads the URL
//! the browser was redirected to from stdin instead (for a machine whose
//! browser is elsewhere). The code is exchanged by the engine, which checks
//! the state and stores the refresh token; nothing is stored on any error.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokenauth_core::{AuthorizationRequest, Authorized, Connection, Error, ProviderHandle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use url::Url;

use crate::common::{open, report, when};
use crate::{ConnectionArgs, Global, Outcome};

/// `tokenauth login`'s own options.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LoginArgs {
    /// The provider id.
    pub(crate) provider: String,
    #[command(flatten)]
    pub(crate) conn: ConnectionArgs,
    /// Only print the authorization URL; do not open a browser.
    #[arg(long)]
    pub(crate) no_browser: bool,
    /// Read the URL the browser was redirected to from stdin instead of
    /// listening for it (for a browser on another machine).
    #[arg(long)]
    pub(crate) paste: bool,
    /// How long to wait for the redirect.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    /// The loopback port to listen on, when the registered redirect URI has
    /// none (any port then works; default: a free one).
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Use the device authorization grant (RFC 8628) instead: print a code
    /// to enter on another device, then poll until it is approved.
    #[arg(long, conflicts_with_all = ["no_browser", "paste", "port"])]
    pub(crate) device: bool,
}

pub(crate) async fn run(g: &Global, args: &LoginArgs) -> Outcome {
    let (providers, p, conn) = match open(g, &args.provider, &args.conn) {
        Ok(opened) => opened,
        Err(o) => return o,
    };
    let Some(authorize) = &p.authorize else {
        if p.device.is_some() {
            eprintln!(
                "error: provider `{}` has no [providers.{}.authorize] table (the browser flow), but it offers the device grant: tokenauth login {} --device",
                p.id, p.id, p.id
            );
            return Outcome::InvalidInput;
        }
        eprintln!(
            "error: provider `{}` has no [providers.{}.authorize] table, so it has no authorization-code grant to log in with",
            p.id, p.id
        );
        eprintln!(
            "  help: add one (docs/providers-toml.md, \"[authorize]\") with the provider's authorization URL and client_id"
        );
        return Outcome::InvalidInput;
    };
    let registered = authorize.redirect_uri.clone();
    if !args.paste && !registered.is_loopback() {
        eprintln!(
            "error: the redirect URI {} is not a loopback address, so tokenauth cannot receive the redirect",
            registered.uri
        );
        eprintln!(
            "  help: register http://127.0.0.1/callback with the provider, or run with --paste and paste the URL the browser ends on"
        );
        return Outcome::InvalidInput;
    }
    let fixed_port = (!registered.any_port).then(|| registered.uri.port_or_known_default());
    let port = match (fixed_port.flatten(), args.port) {
        (Some(fixed), Some(asked)) if fixed != asked => {
            eprintln!(
                "error: --port {asked}: the registered redirect URI {} needs port {fixed}",
                registered.uri
            );
            return Outcome::InvalidInput;
        }
        (Some(fixed), _) => fixed,
        (None, asked) => asked.unwrap_or(0),
    };
    let auth = match g.engine(providers).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    let handle = match auth.provider(&p.id) {
        Ok(h) => h,
        Err(e) => return report(&e),
    };
    let listener = if args.paste {
        None
    } else {
        match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("error: cannot listen on 127.0.0.1:{port} for the redirect: {e}");
                if port != 0 {
                    eprintln!(
                        "  help: free that port, or register a redirect URI without a port (any port then works)"
                    );
                }
                return Outcome::AuthFailure;
            }
        }
    };
    let mut redirect = registered.uri.clone();
    if registered.any_port {
        let actual = match &listener {
            Some(l) => l.local_addr().map(|a| a.port()).unwrap_or(port),
            None => args.port.unwrap_or(8400),
        };
        let _ = redirect.set_port(Some(actual));
    }
    let request = match handle.authorization_request(Some(&conn), Some(&redirect)) {
        Ok(r) => r,
        Err(e) => return report(&e),
    };
    eprintln!(
        "Open this URL in a browser to let tokenauth use {}:",
        p.name
    );
    eprintln!();
    eprintln!("  {}", request.url);
    eprintln!();
    if !args.no_browser && !args.paste && browser_available() {
        open_browser(request.url.as_str());
    }
    let result = match listener {
        Some(listener) => {
            eprintln!(
                "Waiting up to {} for the redirect to {} …",
                humantime::format_duration(args.timeout),
                request.redirect_uri
            );
            listen(&handle, &conn, &request, listener, args.timeout).await
        }
        None => {
            eprintln!("After consenting, paste the whole URL the browser was sent to, then Enter:");
            paste(&handle, &conn, &request, args.timeout).await
        }
    };
    match result {
        Ok(done) => {
            stored(g, &done, auth.clock().now());
            Outcome::Ok
        }
        Err(LoginError::Engine(e)) => {
            let outcome = report(&e);
            eprintln!("nothing was stored");
            outcome
        }
        Err(LoginError::Other(message)) => {
            eprintln!("error: {message}");
            eprintln!("nothing was stored");
            Outcome::AuthFailure
        }
    }
}

enum LoginError {
    Engine(Error),
    Other(String),
}

/// What was stored, never a token.
fn stored(g: &Global, done: &Authorized, now: std::time::SystemTime) {
    let place = match g.store.as_deref() {
        Some(s) if s.to_ascii_lowercase().starts_with("redis") => "in the Redis store".to_owned(),
        Some(dir) => format!("in {dir}"),
        None => {
            "in memory only (lost when this command exits: pass --store DIR to keep it)".to_owned()
        }
    };
    let lifetime = when(done.expires_at, now);
    if done.refresh_token_stored {
        println!(
            "stored a refresh token for {}/{} {place}; the access token expires {lifetime}",
            done.provider, done.connection
        );
    } else {
        println!(
            "the provider sent no refresh token for {}/{}: nothing stored; the access token expires {lifetime}",
            done.provider, done.connection
        );
    }
}

/// A browser can be opened: a terminal, a display (or macOS / Windows),
/// and not CI.
fn browser_available() -> bool {
    if std::env::var_os("CI").is_some() || !std::io::stderr().is_terminal() {
        return false;
    }
    cfg!(any(target_os = "macos", windows))
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// Starts the system's URL opener and does not wait for it.
fn open_browser(url: &str) {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        eprintln!("(could not start {program}: open the URL yourself)");
    }
}

/// Waits for the one request to the redirect URI's path; answers others
/// with 404.
async fn listen(
    handle: &ProviderHandle,
    conn: &Connection,
    request: &AuthorizationRequest,
    listener: TcpListener,
    timeout: Duration,
) -> Result<Authorized, LoginError> {
    let path = request.redirect_uri.path().to_owned();
    let wait = async {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let Some(target) = read_target(&mut stream).await else {
                let _ = respond(&mut stream, "400 Bad Request", "Bad request.").await;
                continue;
            };
            let (target_path, query) = target.split_once('?').unwrap_or((&target, ""));
            if target_path != path {
                let _ = respond(&mut stream, "404 Not Found", "Not found.").await;
                continue;
            }
            let mut callback = request.redirect_uri.clone();
            callback.set_query((!query.is_empty()).then_some(query));
            let result = handle
                .complete_authorization(Some(conn), callback.as_str(), &request.state)
                .await;
            let page = match &result {
                Ok(_) => "tokenauth is authorized. You can close this tab.".to_owned(),
                Err(e) => format!("tokenauth could not complete the login: {e}"),
            };
            let status = if result.is_ok() {
                "200 OK"
            } else {
                "400 Bad Request"
            };
            let _ = respond(&mut stream, status, &page).await;
            return result.map_err(LoginError::Engine);
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(LoginError::Other(format!(
            "no redirect to {} within {}: the login timed out (was the consent given, and did the browser come back to this address and port?)",
            request.redirect_uri,
            humantime::format_duration(timeout)
        ))),
    }
}

/// The request target of an HTTP/1 request head (at most 16 KiB), if it
/// is a GET.
async fn read_target(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() + n > 16 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = std::str::from_utf8(&buf).ok()?;
    let mut parts = head.lines().next()?.split(' ');
    (parts.next()? == "GET").then_some(())?;
    parts.next().map(str::to_owned)
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: &str,
    text: &str,
) -> std::io::Result<()> {
    let body = format!(
        "<!doctype html><html><head><title>tokenauth</title></head><body><p>{}</p></body></html>",
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    );
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

/// `--paste`: one line from stdin.
async fn paste(
    handle: &ProviderHandle,
    conn: &Connection,
    request: &AuthorizationRequest,
    timeout: Duration,
) -> Result<Authorized, LoginError> {
    let _ = std::io::stderr().flush();
    // A plain thread, not spawn_blocking: the runtime would wait for a
    // blocked read of stdin when it shuts down after the timeout.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = tx.send(std::io::stdin().lock().read_line(&mut line).map(|_| line));
    });
    let line = match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(line))) => line,
        Ok(_) => {
            return Err(LoginError::Other(
                "could not read the pasted URL from stdin".into(),
            ));
        }
        Err(_) => return Err(LoginError::Other("no URL pasted before the timeout".into())),
    };
    let line = line.trim();
    if Url::parse(line).is_err() {
        return Err(LoginError::Other(
            "paste the whole URL the browser was redirected to (it starts with the redirect URI)"
                .into(),
        ));
    }
    handle
        .complete_authorization(Some(conn), line, &request.state)
        .await
        .map_err(LoginError::Engine)
}
