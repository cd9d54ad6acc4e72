//! The command line: parses it and hands each subcommand to its module under `commands`.

use std::{path::PathBuf, process::ExitCode};

use beat_core::{Delivery, Params};
use beat_types::Variant;
use clap::{Args, Parser, Subcommand, ValueEnum};

use beat_provision::layout::Service;

use crate::commands;

/// BEAT: asynchronous BFT ordering (BEAT0–BEAT4) as gRPC services.
#[derive(Parser, Debug)]
#[command(name = "beat", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    auth: ClientAuthArgs,
}

/// Credentials for the public APIs (`https://` endpoints, tokens), for every client command.
#[derive(Args, Debug, Default)]
struct ClientAuthArgs {
    /// The CA that issued the replicas' API certificates (PEM; `https://` endpoints).
    #[arg(long, global = true, env = "BEAT_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// A client certificate for mutual TLS (PEM), with --key-file.
    #[arg(long, global = true, env = "BEAT_CERT_FILE", requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "BEAT_KEY_FILE", requires = "cert_file")]
    key_file: Option<PathBuf>,
    /// A file holding the bearer token to send.
    #[arg(long, global = true, env = "BEAT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The name the servers' certificates carry, if not the endpoint's host.
    #[arg(long, global = true)]
    tls_domain: Option<String>,
}

impl ClientAuthArgs {
    fn auth(&self) -> beat_client::connect::ClientAuth {
        beat_client::connect::ClientAuth {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            token_file: self.token_file.clone(),
            tls_domain: self.tls_domain.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a local cluster (keys, configs and processes) that orders a market-data feed.
    Devnet(commands::devnet::Args),
    /// Run one service of a replica in the foreground.
    Run(commands::run::Args),
    /// Exit 0 if one service of this replica is ready (its ops `/readyz`); a container check.
    Health(commands::health::Args),
    /// Generate a committee's keys (trusted dealer) and each replica's encrypted keystore.
    Keygen(commands::keygen::Args),
    /// Print this replica's onion endpoint for the committee file, creating the onion-service
    /// identity in the gateway's Tor state directory if needed (no network is used).
    TorAddress(commands::address::TorArgs),
    /// Print this replica's I2P destination for the committee file, having the SAM bridge
    /// generate it (SIGNATURE_TYPE=7) into the gateway's key file if there is none yet.
    I2pAddress(commands::address::I2pArgs),
    /// Submit transactions to a replica's ordering API.
    Submit(commands::submit::Args),
    /// Print committed batches as a replica reports them.
    Watch(commands::watch::Args),
    /// Check a replica's committed history against the committee file: every batch's commit
    /// certificate, its digest and the chain (a live replica, or a stopped one's data directory).
    Verify(commands::verify::Args),
    /// Print the status of replicas.
    Status(commands::status::Args),
    /// Query a replica's market state.
    #[command(subcommand)]
    Market(commands::market::Command),
    /// Measure throughput, latency and memory under an open-loop load.
    Bench(commands::bench::Args),
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub(crate) enum ServiceArg {
    Gateway,
    Keystore,
    Consensus,
    State,
}

impl From<ServiceArg> for Service {
    fn from(s: ServiceArg) -> Self {
        match s {
            ServiceArg::Gateway => Self::Gateway,
            ServiceArg::Keystore => Self::Keystore,
            ServiceArg::Consensus => Self::Consensus,
            ServiceArg::State => Self::State,
        }
    }
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub(crate) enum DeliveryArg {
    Full,
    CommitmentsOnly,
}

/// Consensus parameters written into a new committee file.
#[derive(Args, Debug, Clone)]
pub(crate) struct ParamsArgs {
    /// Protocol variant: beat0 … beat4.
    #[arg(long, default_value = "beat0")]
    variant: Variant,
    /// The most transactions per epoch (B): each replica proposes what it has pending, up to
    /// ⌈B/n⌉, so batches follow the load and B is only a cap.
    #[arg(long, default_value_t = Params::default().batch_size)]
    batch_size: usize,
    /// BEAT3/BEAT4: deliver full batches or commitments only.
    #[arg(long, value_enum, default_value = "full")]
    delivery: DeliveryArg,
    /// BEAT3/BEAT4: threshold-encrypt contributions before dispersal.
    #[arg(long)]
    encrypt_storage: bool,
}

impl ParamsArgs {
    pub(crate) fn params(&self) -> Params {
        Params {
            variant: self.variant,
            batch_size: self.batch_size,
            delivery: match self.delivery {
                DeliveryArg::Full => Delivery::Full,
                DeliveryArg::CommitmentsOnly => Delivery::CommitmentsOnly,
            },
            encrypt_storage: self.encrypt_storage,
            ..Params::default()
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    crate::api::use_client_auth(cli.auth.auth());
    match cli.command {
        Command::Run(a) => commands::run::run(a),
        Command::Health(a) => commands::health::run(a),
        Command::Devnet(a) => commands::devnet::run(a),
        Command::Keygen(a) => commands::keygen::run(a),
        Command::TorAddress(a) => commands::address::tor(a),
        Command::I2pAddress(a) => commands::address::i2p(a),
        Command::Submit(a) => commands::submit::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Watch(a) => commands::watch::run(a),
        Command::Status(a) => commands::status::run(a),
        Command::Market(c) => commands::market::run(c),
        Command::Bench(a) => commands::bench::run(a),
    }
}

/// The whole command line: parses `std::env::args` and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("beat: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
