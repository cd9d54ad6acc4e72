//! `beat devnet`: a local cluster (keys, configs and processes) that orders a market-data feed.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use beat_provision::layout::Service;
use beat_testkit::cluster::{ClusterSpec, FeedSpec};

use super::{current_exe, runtime};
use crate::{
    cli::ParamsArgs,
    devnet::{DevnetOptions, default_dir, devnet},
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cluster directory (keys, configs, data, logs); reused across runs.
    #[arg(long, default_value_os_t = default_dir())]
    dir: PathBuf,
    /// Number of replicas (tolerates ⌊(n−1)/3⌋ Byzantine).
    #[arg(long, short = 'n', visible_alias = "nodes", default_value_t = 4)]
    replicas: usize,
    #[command(flatten)]
    params: ParamsArgs,
    /// First port; replica i's ports are base + 100·k + i.
    #[arg(long, default_value_t = 17_000)]
    base_port: u16,
    /// Synthetic market events per second per replica (0: no feed).
    #[arg(long, default_value_t = 200)]
    feed_rate: u32,
    /// Symbols of the synthetic feed.
    #[arg(long, value_delimiter = ',', default_value = "BTC-USD,ETH-USD,SOL-USD")]
    symbols: Vec<String>,
    /// Run the ordering services only (no state service, no feed).
    #[arg(long)]
    no_state: bool,
    /// Stop after this long (e.g. 60s); exit code 1 unless progress was made safely.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Delete the directory first.
    #[arg(long)]
    fresh: bool,
    /// Serve the public APIs over TLS with client certificates and bearer tokens (issued into
    /// <dir>/tls/), as a production committee would.
    #[arg(long)]
    tls: bool,
    /// Status line interval.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    interval: Duration,
    /// Log filter of the services (their logs go to <dir>/replica-<i>/logs/).
    #[arg(
        long,
        default_value = "info,sled=warn,h2=warn,tower=warn,hyper=warn,actix_server=warn"
    )]
    log_filter: String,
}

/// Runs the cluster until interrupted or `--duration` is up.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut spec = ClusterSpec::new(&a.dir, current_exe()?);
    spec.replicas = a.replicas;
    spec.base_port = a.base_port;
    spec.params = a.params.params();
    spec.log_filter = a.log_filter;
    spec.tls = a.tls;
    if a.no_state {
        spec.services = vec![Service::Keystore, Service::Gateway, Service::Consensus];
    } else if a.feed_rate > 0 {
        spec.feed = Some(FeedSpec {
            events_per_second: a.feed_rate,
            symbols: a.symbols,
        });
    }
    runtime()?.block_on(devnet(DevnetOptions {
        spec,
        fresh: a.fresh,
        duration: a.duration,
        interval: a.interval,
    }))
}
