//! `tokenauth`: check, explain, test and demonstrate provider descriptions.
//!
//! Exit codes: `0` success, `1` an authentication or network failure,
//! `2` invalid input (a bad description, an unknown provider, a missing
//! input, bad arguments).

mod check;
mod common;
mod demo;
mod explain;
mod login;
mod login_device;
mod proxy;
mod request;
mod store_cmd;
mod test_cmd;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// HTTP authentication for any API provider described in TOML.
#[derive(Parser, Debug)]
#[command(name = "tokenauth", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: Global,

    #[command(subcommand)]
    command: Command,
}

/// Options every command accepts.
#[derive(Args, Debug, Clone)]
pub(crate) struct Global {
    /// The provider description [default: $TOKENAUTH_CONFIG, else ./providers.toml]
    #[arg(long, global = true, value_name = "FILE", env = "TOKENAUTH_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Log what happens to stderr (-v info, -vv debug, -vvv trace); secrets are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Send requests for HOST:PORT to ADDR instead of resolving HOST (like curl's --resolve), e.g. api.2ba.nl:443:127.0.0.1:8443
    #[arg(long, global = true, value_name = "HOST:PORT:ADDR")]
    pub(crate) resolve: Vec<String>,

    /// Trust only the CA certificates in this PEM file (e.g. the emulator's CA).
    #[arg(long, global = true, value_name = "PEM")]
    pub(crate) cacert: Option<PathBuf>,

    /// Keep tokens where they survive between runs and are shared by
    /// processes: a directory (file store, 0600), or a Redis URL
    /// (redis://HOST:PORT/DB, rediss:// for TLS; tokens are encrypted with
    /// the key in $TOKENAUTH_STORE_KEY).
    #[arg(
        long,
        global = true,
        env = "TOKENAUTH_STORE",
        // Help would print the variable's value: a Redis URL may hold a
        // password.
        hide_env_values = true,
        value_name = "DIR|redis://…"
    )]
    pub(crate) store: Option<String>,
}

/// Which connection's inputs to use.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ConnectionArgs {
    /// The connection name (keys the cache and the refresh-token store).
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub(crate) connection: String,

    /// Set an input directly, overriding its environment variable (repeatable).
    /// Prefer environment variables for secrets: command lines end up in shell history.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub(crate) inputs: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the main job with no credentials or network: the built-in emulator, the three seed providers, the middleware.
    /// With --store redis://HOST:PORT/DB, worker processes then share one token through Redis.
    Demo(demo::DemoArgs),
    /// One worker process of `tokenauth demo --store redis://…` (started by the demo).
    #[command(name = "demo-worker", hide = true)]
    DemoWorker(demo::WorkerArgs),
    /// Validate a description: every problem with file:line:column; exit 2 if invalid.
    Check {
        /// The file to check (overrides --config).
        file: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of providers.toml (for editors), generated from the loader: `tokenauth schema > providers.schema.json`.
    Schema,
    /// Show the exact token request a provider would send and the credential it would attach, secrets masked.
    Explain {
        /// The provider id.
        provider: String,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Fetch a token with the configured inputs and show its type, expiry and a masked value.
    Token {
        /// The provider id.
        provider: String,
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Print the whole token (a warning goes to stderr on a terminal).
        #[arg(long)]
        reveal: bool,
        /// Get a new token now, even when the store holds a valid one that
        /// another process fetched (log in or refresh; with a shared store,
        /// the new token is published for the others).
        #[arg(long)]
        renew: bool,
    },
    /// Send a request through the middleware (curl-like) and print the status and body; exit 1 on a 4xx/5xx.
    Request {
        /// The provider whose credential to attach (the URL must lie in its api prefixes).
        provider: String,
        /// The URL.
        url: String,
        /// The method.
        #[arg(
            short = 'X',
            long = "request",
            value_name = "METHOD",
            default_value = "GET"
        )]
        method: String,
        /// A request body, sent as given.
        #[arg(short = 'd', long = "data", value_name = "BODY")]
        data: Option<String>,
        /// An extra header, 'Name: value' (repeatable).
        #[arg(short = 'H', long = "header", value_name = "HEADER")]
        headers: Vec<String>,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Manage the token store (--store): `store put PROVIDER` gives a connection its first refresh token, read from stdin.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Get a person's consent and store the refresh token it yields (--store DIR|redis://…): the authorization-code grant in a browser (RFC 8252 loopback redirect), or with --device the device grant (RFC 8628).
    Login(login::LoginArgs),
    /// Serve the providers to workers in any language: a local authenticating proxy, /{provider}/{path} -> the provider's API with its credential (see README "From Python, TypeScript, Go…").
    Proxy(proxy::ProxyArgs),
    /// Prove a description works: inputs, login, injection and the provider's [test] request, step by step.
    Test {
        /// The provider id.
        provider: String,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
}

/// `tokenauth store …`.
#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Store a connection's refresh token, read from stdin (never from the command line): the first token of a refresh-only provider, or a new one after a consent elsewhere.
    Put {
        /// The provider id.
        provider: String,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
}

/// The outcome of a command, mapped to the documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    AuthFailure,
    InvalidInput,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::AuthFailure => ExitCode::from(1),
            Outcome::InvalidInput => ExitCode::from(2),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    common::init_tracing(cli.global.verbose);
    let g = &cli.global;
    let outcome = match cli.command {
        Command::Demo(args) => common::block_on(demo::run(g, &args)),
        Command::DemoWorker(args) => common::block_on(demo::worker(g, &args)),
        Command::Check { file, json } => check::run(&file.unwrap_or_else(|| g.config_path()), json),
        Command::Schema => {
            print!("{}", tokenauth_core::config::json_schema());
            Outcome::Ok
        }
        Command::Explain { provider, conn } => explain::run(g, &provider, &conn),
        Command::Token {
            provider,
            conn,
            reveal,
            renew,
        } => common::block_on(token::run(g, &provider, &conn, reveal, renew)),
        Command::Request {
            provider,
            url,
            method,
            data,
            headers,
            conn,
        } => common::block_on(request::run(
            g,
            request::RequestArgs {
                provider: &provider,
                url: &url,
                method: &method,
                data: data.as_deref(),
                headers: &headers,
                conn: &conn,
            },
        )),
        Command::Login(args) if args.device => {
            common::block_on(login_device::run(g, &args.provider, &args.conn))
        }
        Command::Login(args) => common::block_on(login::run(g, &args)),
        Command::Test { provider, conn } => common::block_on(test_cmd::run(g, &provider, &conn)),
        Command::Proxy(args) => common::block_on(proxy::run(g, &args)),
        Command::Store(StoreCommand::Put { provider, conn }) => {
            common::block_on(store_cmd::put(g, &provider, &conn))
        }
    };
    outcome.into()
}
