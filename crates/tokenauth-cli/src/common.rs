//! What the commands share: loading the description, building the HTTP
//! client and the engine, choosing a connection, reporting errors.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokenauth_core::store::{FileStore, TokenStore};
use tokenauth_core::{Connection, Error, Provider, Providers, TokenAuth};

use crate::{ConnectionArgs, Global, Outcome};

impl Global {
    /// `--config`, else `$TOKENAUTH_CONFIG`, else `./providers.toml`: the
    /// library's [`Providers::env_path`] rule, with the flag first.
    pub(crate) fn config_path(&self) -> PathBuf {
        self.config.clone().unwrap_or_else(Providers::env_path)
    }

    /// Loads the description, printing every problem on failure.
    pub(crate) fn load(&self) -> Result<Providers, Outcome> {
        Providers::from_path(self.config_path()).map_err(|e| {
            eprint!("{e}");
            if e.diagnostics().is_empty() {
                eprintln!();
            }
            Outcome::InvalidInput
        })
    }

    /// A reqwest client builder honouring `--resolve` and `--cacert`.
    pub(crate) fn client_builder(&self) -> Result<reqwest::ClientBuilder, Outcome> {
        let mut builder = reqwest::Client::builder();
        for spec in &self.resolve {
            let Some((host, addr)) = parse_resolve(spec) else {
                eprintln!(
                    "error: --resolve {spec}: expected HOST:PORT:ADDR, e.g. api.2ba.nl:443:127.0.0.1:8443"
                );
                return Err(Outcome::InvalidInput);
            };
            builder = builder.resolve(&host, addr);
        }
        if let Some(path) = &self.cacert {
            let pem = std::fs::read(path).map_err(|e| {
                eprintln!("error: cannot read --cacert {}: {e}", path.display());
                Outcome::InvalidInput
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                eprintln!(
                    "error: --cacert {} holds no usable PEM certificate: {e}",
                    path.display()
                );
                Outcome::InvalidInput
            })?;
            builder = builder.tls_certs_only(certs);
        }
        Ok(builder)
    }

    /// The engine over `providers`, with this command line's client and store.
    pub(crate) async fn engine(&self, providers: Providers) -> Result<TokenAuth, Outcome> {
        let mut builder = TokenAuth::builder(providers).http_client_builder(self.client_builder()?);
        if let Some(store) = self.token_store().await? {
            builder = builder.store(store);
        }
        builder.build().map_err(|e| report(&e))
    }

    /// The store `--store` names: a Redis URL, else a directory.
    pub(crate) async fn token_store(&self) -> Result<Option<Arc<dyn TokenStore>>, Outcome> {
        let Some(spec) = &self.store else {
            return Ok(None);
        };
        if !is_redis_url(spec) {
            return Ok(Some(Arc::new(FileStore::new(spec))));
        }
        // The URL may hold a password: it is never printed.
        match tokenauth_redis::RedisStore::builder(spec.as_str())
            .build()
            .await
        {
            Ok(store) => Ok(Some(Arc::new(store))),
            Err(e) => {
                eprintln!("error: --store: the Redis store could not be opened: {e}");
                Err(Outcome::InvalidInput)
            }
        }
    }
}

/// The store `spec` names, for messages: a Redis URL never shows its
/// password (or anything but its scheme and host).
pub(crate) fn report_store(spec: &str) -> String {
    if !is_redis_url(spec) {
        return format!("the file store {spec}");
    }
    match url::Url::parse(spec) {
        Ok(url) => format!(
            "the Redis store at {}://{}",
            url.scheme(),
            url.host_str().unwrap_or("?")
        ),
        Err(_) => "the Redis store".to_owned(),
    }
}

/// True for a `redis://` or `rediss://` URL (the Redis store), as opposed
/// to a directory (the file store).
fn is_redis_url(spec: &str) -> bool {
    ["redis://", "rediss://"].iter().any(|scheme| {
        spec.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    })
}

/// `HOST:PORT:ADDR` where ADDR is `IP:PORT` or `[IPv6]:PORT`. The port in
/// HOST:PORT is accepted for curl compatibility; reqwest uses ADDR's port.
pub(crate) fn parse_resolve(spec: &str) -> Option<(String, SocketAddr)> {
    let (host, rest) = spec.split_once(':')?;
    let (_port, addr) = rest.split_once(':')?;
    let addr: SocketAddr = addr.parse().ok()?;
    (!host.is_empty()).then(|| (host.to_owned(), addr))
}

/// Finds the provider, or says which ids exist.
pub(crate) fn provider<'p>(providers: &'p Providers, id: &str) -> Result<&'p Provider, Outcome> {
    providers.get(id).ok_or_else(|| {
        eprintln!(
            "error: no provider `{id}` in the description; it has: {}",
            providers.ids().collect::<Vec<_>>().join(", ")
        );
        Outcome::InvalidInput
    })
}

/// Loads the description and finds the provider and the connection a
/// command works with: the common start of `explain`, `token`, `test` and
/// `request`.
pub(crate) fn open(
    g: &Global,
    id: &str,
    args: &ConnectionArgs,
) -> Result<(Providers, Provider, Connection), Outcome> {
    let providers = g.load()?;
    let p = provider(&providers, id)?.clone();
    let conn = connection(&p, args)?;
    Ok((providers, p, conn))
}

/// The connection: inputs from `--input`, else their environment variable.
/// Missing inputs are left out; the engine names them (and their variable)
/// when they are needed.
pub(crate) fn connection(
    provider: &Provider,
    args: &ConnectionArgs,
) -> Result<Connection, Outcome> {
    let mut overrides = Vec::new();
    for spec in &args.inputs {
        let Some((name, value)) = spec.split_once('=') else {
            eprintln!("error: --input {spec}: expected NAME=VALUE");
            return Err(Outcome::InvalidInput);
        };
        let Some(input) = provider.input(name) else {
            let names: Vec<&str> = provider.inputs.iter().map(|i| i.name.as_str()).collect();
            eprintln!(
                "error: --input {name}: `{}` has no input `{name}`; its inputs are: {}",
                provider.id,
                names.join(", ")
            );
            return Err(Outcome::InvalidInput);
        };
        if input.secret {
            eprintln!(
                "warning: secret input `{name}` given on the command line: it may end up in shell history; prefer ${}",
                input.env.as_deref().unwrap_or("an environment variable")
            );
        }
        overrides.push((name.to_owned(), value.to_owned()));
    }
    Ok(env_connection(provider, &args.connection, &overrides))
}

/// Connection `id` of `provider`: each input from `overrides` (the last one
/// given wins), else its environment variable. Missing inputs are left out;
/// the engine names them (and their variable) when they are needed.
pub(crate) fn env_connection(
    provider: &Provider,
    id: &str,
    overrides: &[(String, String)],
) -> Connection {
    let mut conn = Connection::new(id);
    for input in &provider.inputs {
        let value = overrides
            .iter()
            .rev()
            .find(|(n, _)| *n == input.name)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                input
                    .env
                    .as_deref()
                    .and_then(|var| std::env::var(var).ok())
                    .filter(|v| !v.is_empty())
            });
        if let Some(value) = value {
            conn = if input.secret {
                conn.with_secret(input.name.clone(), value)
            } else {
                conn.with_input(input.name.clone(), value)
            };
        }
    }
    conn
}

/// A credential of `conn` for provider `id` of `auth` (fetched, or from
/// the engine's cache).
pub(crate) async fn credential(
    auth: &TokenAuth,
    id: &str,
    conn: &Connection,
) -> Result<tokenauth_core::Credential, Error> {
    auth.provider(id)?.credential(Some(conn)).await
}

/// Prints an engine error and maps it to an exit code: problems with what
/// the user gave are 2, failures at the provider or the network are 1.
pub(crate) fn report(e: &Error) -> Outcome {
    eprintln!("error: {e}");
    // The store's own error says which file and what to do about it (it
    // holds no secret: file names are hashes).
    if let Error::Store { source, .. } = e {
        eprintln!("  cause: {source}");
    }
    classify(e)
}

/// What to do about `e` that only the command line knows: where this run's
/// refresh tokens live. Printed after [`report`].
pub(crate) fn hint(g: &Global, e: &Error) -> Option<String> {
    let Error::NoRefreshToken {
        provider,
        connection,
        ..
    } = e
    else {
        return None;
    };
    let get = "get a refresh token from the provider (`tokenauth login PROVIDER --store …` for one with an [authorize] table, else its console)";
    let put = format!(
        "tokenauth --store STORE store put {provider} --connection {connection} < token.txt"
    );
    Some(match &g.store {
        None => format!(
            "hint: without --store the refresh tokens of this run are kept in memory only, so there is none to start from: {get}, put it in a store with `{put}` (a directory or redis://…), and pass that --store here; later refreshes keep it up to date"
        ),
        Some(_) => format!(
            "hint: {get} and put it in this store: `{put}` (it reads the token from stdin); later refreshes keep it up to date"
        ),
    })
}

pub(crate) fn classify(e: &Error) -> Outcome {
    match e {
        Error::MissingInput { .. }
        | Error::InvalidInput { .. }
        | Error::UnknownProvider { .. }
        | Error::Config(_)
        | Error::InvalidHeaderValue { .. }
        | Error::NoRefreshToken { .. } => Outcome::InvalidInput,
        _ => Outcome::AuthFailure,
    }
}

/// Runs a command's future on a small runtime.
pub(crate) fn block_on(f: impl Future<Output = Outcome>) -> Outcome {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            Outcome::AuthFailure
        }
    }
}

/// `-v` tracing to stderr. Credentials are sensitive header values and
/// secret types, so they never reach these logs.
///
/// `-v` is one line per token fetch or renewal (core's INFO events) and
/// every warning; `-vv` adds the token endpoint's replies, retries and
/// routing (DEBUG); `-vvv` everything. Other crates log warnings only.
/// `RUST_LOG`, when set, is the base filter and the `-v` flags are layered
/// on it (what it turns on in other crates, such as hyper, is theirs).
pub(crate) fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => None,
        1 => Some("info"),
        2 => Some("debug"),
        _ => Some("trace"),
    };
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    if level.is_none() && rust_log.is_none() {
        return;
    }
    let ours = level.map_or_else(String::new, |level| {
        format!(",tokenauth_core={level},tokenauth_cli={level}")
    });
    let filter = match rust_log {
        Some(base) => tracing_subscriber::EnvFilter::try_new(format!("{base}{ours}"))
            .unwrap_or_else(|e| {
                eprintln!("warning: RUST_LOG={base:?} is not a valid filter ({e}); ignoring it");
                tracing_subscriber::EnvFilter::new(format!("warn{ours}"))
            }),
        None => tracing_subscriber::EnvFilter::new(format!("warn{ours}")),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    LOGGING.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Set by [`init_tracing`]: log lines go to stderr, so no spinner there.
static LOGGING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A spinner on stderr while `f` runs; hidden when stderr is not a terminal,
/// and left out with `-v` (it would tear the log lines).
pub(crate) async fn with_spinner<T>(message: String, f: impl Future<Output = T>) -> T {
    if LOGGING.load(std::sync::atomic::Ordering::Relaxed) {
        return f.await;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let out = f.await;
    bar.finish_and_clear();
    out
}

/// `ab…yz (43 characters)`: enough to tell tokens apart, not to use one.
/// At most 4 characters are shown, and never more than a quarter of the
/// token (half from each end); a token under 4 characters shows none.
pub(crate) fn mask(secret: &str) -> String {
    let n = secret.chars().count();
    let shown = (n / 4).min(4);
    if shown == 0 {
        return format!("[{n} characters, masked]");
    }
    let tail_len = shown / 2;
    let head: String = secret.chars().take(shown - tail_len).collect();
    let tail: String = secret.chars().skip(n - tail_len).collect();
    format!("{head}…{tail} ({n} characters)")
}

/// `2026-11-22T15:04:05Z (in 59m 59s)`.
pub(crate) fn when(t: std::time::SystemTime, now: std::time::SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(t);
    match t.duration_since(now) {
        Ok(d) => format!(
            "{stamp} (in {})",
            humantime::format_duration(std::time::Duration::from_secs(d.as_secs()))
        ),
        Err(_) => format!("{stamp} (past)"),
    }
}

#[cfg(test)]
mod tests {
    use super::mask;

    /// The characters of `masked` that come from the token.
    fn shown(masked: &str) -> usize {
        match masked.split_once(" (") {
            Some((visible, _)) => visible.chars().count() - 1,
            None => 0,
        }
    }

    #[test]
    fn mask_shows_at_most_four_characters_and_at_most_a_quarter() {
        assert_eq!(mask("0123456789abcdef"), "01…ef (16 characters)");
        assert_eq!(
            mask("0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"),
            "01…FG (43 characters)"
        );
        assert_eq!(mask("0123456789ab"), "01…b (12 characters)");
        assert_eq!(mask("01234567"), "0…7 (8 characters)");
        assert_eq!(mask("01234"), "0… (5 characters)");
        assert_eq!(mask("012"), "[3 characters, masked]");
        assert_eq!(mask(""), "[0 characters, masked]");
        for n in 0..100 {
            let token: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let k = shown(&mask(&token));
            assert!(k <= 4 && 4 * k <= n, "{n} characters: {}", mask(&token));
        }
    }

    #[test]
    fn mask_counts_characters_not_bytes() {
        assert_eq!(mask("ééééééééééééééé€"), "éé…é€ (16 characters)");
        assert_eq!(mask("日本語のトークン"), "日…ン (8 characters)");
        assert_eq!(mask("🔑🔑🔑"), "[3 characters, masked]");
    }
}
