//! `beat market`: queries a replica's market state, and creates market sources' keys.

use std::{path::PathBuf, process::ExitCode};

use super::runtime;
use crate::client;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Per-symbol statistics and the state hash.
    State {
        /// Market API endpoint.
        #[arg(long, short, default_value = "http://127.0.0.1:17400")]
        endpoint: String,
    },
    /// One symbol's order book.
    Book {
        /// The symbol.
        symbol: String,
        /// Market API endpoint.
        #[arg(long, short, default_value = "http://127.0.0.1:17400")]
        endpoint: String,
        /// Price levels per side.
        #[arg(long, default_value_t = 10)]
        depth: u32,
    },
    /// Create a market source's Ed25519 key (mode 0600; kept if it exists) and print the line
    /// that registers it in every replica's `[market.sources]`.
    SourceKey {
        /// The source name it will own (and every `<name>:<suffix>`).
        name: String,
        /// The key file.
        #[arg(long, short)]
        out: PathBuf,
    },
}

/// Runs one `market` subcommand.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::SourceKey { name, out } => {
            beat_state::market::sources::validate_name(&name).map_err(anyhow::Error::msg)?;
            let key = beat_state::client_key::load_or_create(&out)?.public();
            println!("# [market.sources] of every replica's state.toml:");
            println!("{name:?} = \"{key}\"");
            Ok(ExitCode::SUCCESS)
        }
        Command::State { endpoint } => {
            runtime()?.block_on(client::market_state(&endpoint))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Book {
            symbol,
            endpoint,
            depth,
        } => {
            runtime()?.block_on(client::market_book(&endpoint, &symbol, depth))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
