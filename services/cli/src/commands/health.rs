//! `beat health [<service>]`: exit 0 if one service of this replica is ready (its ops `/readyz`),
//! the containers' health check.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use super::runtime;
use crate::cli::ServiceArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service (as for `beat run`).
    #[arg(env = "BEAT_SERVICE")]
    service: Option<ServiceArg>,
    /// The service's configuration file (as for `beat run`); its `ops_listen` is asked.
    #[arg(long, short, env = "BEAT_CONFIG")]
    config: Option<PathBuf>,
    /// Ask this ops address instead of reading a configuration.
    #[arg(long, conflicts_with_all = ["service", "config"])]
    ops: Option<std::net::SocketAddr>,
    /// Give up after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    timeout: Duration,
}

/// Asks the service's ops `/readyz`: success if it is ready.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let addr = match (a.ops, a.service) {
        (Some(addr), _) => addr,
        (None, Some(s)) => crate::health::ops_address(s.into(), a.config.as_deref())?,
        (None, None) => anyhow::bail!("give a service (or BEAT_SERVICE) or --ops ADDRESS"),
    };
    if runtime()?.block_on(crate::health::is_ready(addr, a.timeout)) {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("beat: {addr} is not ready");
        Ok(ExitCode::FAILURE)
    }
}
