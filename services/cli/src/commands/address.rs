//! `beat tor-address` and `beat i2p-address`: this replica's onion endpoint or I2P destination
//! for the committee file, created in the gateway's key store if there is none yet.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;

use super::runtime;

#[derive(clap::Args, Debug)]
pub struct TorArgs {
    /// The gateway's configuration file: its `[tor]` section says where the keys are.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override `tor.state_dir` (where the onion-service identity key is kept).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Override `tor.cache_dir`.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Override `tor.arti_config` (an extra arti TOML file, e.g. a private network's).
    #[arg(long)]
    arti_config: Option<PathBuf>,
    /// Override `tor.nickname`.
    #[arg(long)]
    nickname: Option<String>,
    /// Override `tor.onion_port`.
    #[arg(long)]
    onion_port: Option<u16>,
}

#[derive(clap::Args, Debug)]
pub struct I2pArgs {
    /// The gateway's configuration file: its `[i2p]` section names the bridge and key file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override `i2p.sam` (the SAM bridge, host:port).
    #[arg(long)]
    sam: Option<String>,
    /// Override `i2p.key_file`.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Print the `.b32.i2p` name instead of the full base64 destination.
    #[arg(long)]
    b32: bool,
}

/// Prints the onion endpoint, creating the onion-service identity if needed (no network is used).
pub fn tor(a: TorArgs) -> anyhow::Result<ExitCode> {
    let gateway: beat_gateway::config::Config = beat_config::load("gateway", a.config.as_deref())?;
    let mut tor = gateway.tor;
    if let Some(d) = a.state_dir {
        tor.state_dir = d;
    }
    if let Some(d) = a.cache_dir {
        tor.cache_dir = d;
    }
    if a.arti_config.is_some() {
        tor.arti_config = a.arti_config;
    }
    if let Some(n) = a.nickname {
        tor.nickname = n;
    }
    if let Some(p) = a.onion_port {
        tor.onion_port = p;
    }
    println!("{}", beat_gateway::transport::onion_endpoint(&tor)?);
    Ok(ExitCode::SUCCESS)
}

/// Prints the I2P destination (or its `.b32.i2p` name), having the SAM bridge generate it if
/// the key file has none yet.
pub fn i2p(a: I2pArgs) -> anyhow::Result<ExitCode> {
    let gateway: beat_gateway::config::Config = beat_config::load("gateway", a.config.as_deref())?;
    let mut i2p = gateway.i2p;
    if let Some(s) = a.sam {
        i2p.sam = s;
    }
    if let Some(k) = a.key_file {
        i2p.key_file = k;
    }
    let destination = runtime()?.block_on(beat_gateway::transport::i2p_destination(&i2p))?;
    if a.b32 {
        let name = beat_gateway::transport::b32_address(&destination)
            .context("the destination is not valid base64")?;
        println!("{name}");
    } else {
        println!("{destination}");
    }
    Ok(ExitCode::SUCCESS)
}
