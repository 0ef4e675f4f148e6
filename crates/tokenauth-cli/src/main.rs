//! `tokenauth`: check, explain, test and demonstrate provider descriptions.
//!
//! Exit codes: `0` success, `1` an authentication or network failure,
//! `2` invalid input (a bad description, unknown provider, bad arguments).

mod check;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// HTTP authentication for any API provider described in TOML.
#[derive(Parser, Debug)]
#[command(name = "tokenauth", version, about, long_about = None)]
struct Cli {
    /// The provider description. Defaults to $TOKENAUTH_CONFIG, then ./providers.toml.
    #[arg(long, global = true, value_name = "FILE", env = "TOKENAUTH_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a description: every problem with file:line:column, exit 2 if invalid.
    Check {
        /// The file to check (overrides --config).
        file: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The outcome of a command, mapped to the documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    InvalidInput,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::InvalidInput => ExitCode::from(2),
        }
    }
}

fn config_path(cli: &Option<PathBuf>) -> PathBuf {
    cli.clone()
        .unwrap_or_else(|| PathBuf::from("providers.toml"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Check { file, json } => {
            check::run(&file.unwrap_or_else(|| config_path(&cli.config)), json)
        }
    };
    outcome.into()
}
