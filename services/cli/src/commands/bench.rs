//! `beat bench`: throughput, latency and memory under an open-loop load, on fresh local
//! clusters or an existing one.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use beat_config::CommitteeFile;
use beat_core::Params;
use beat_crypto::keystore_file::KdfParams;
use beat_types::Variant;

use super::{current_exe, runtime};
use beat_provision::layout::Service;
use beat_testkit::cluster::ClusterSpec;

use crate::bench::{LoadOptions, LocalBench, run_load, run_local};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Variants to measure, each on a fresh local cluster.
    #[arg(long, value_delimiter = ',', default_value = "beat0")]
    variant: Vec<Variant>,
    /// Committee sizes to measure.
    #[arg(long, short = 'n', value_delimiter = ',', default_value = "4")]
    replicas: Vec<usize>,
    /// The most transactions per epoch (B; proposals follow the load up to ⌈B/n⌉).
    #[arg(long, default_value_t = beat_types::Params::default().batch_size)]
    batch_size: usize,
    /// Offered load, transactions per second.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Measured window.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    duration: Duration,
    /// Warm-up before the window.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    warmup: Duration,
    /// Transaction size in bytes.
    #[arg(long, default_value_t = 250)]
    tx_bytes: usize,
    /// Most Submit calls in flight.
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// Bench an existing cluster at these ordering endpoints instead of starting one.
    #[arg(long)]
    endpoint: Vec<String>,
    /// With --endpoint: the committee file (needed for BEAT2).
    #[arg(long)]
    committee: Option<PathBuf>,
    /// First port of the local cluster.
    #[arg(long, default_value_t = 18_000)]
    base_port: u16,
    /// Directory of the local cluster (deleted before; kept after with --keep).
    #[arg(long, default_value = "target/bench-cluster")]
    dir: PathBuf,
    /// Keep the local cluster's directory (logs) afterwards.
    #[arg(long)]
    keep: bool,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Serve the local cluster's ordering APIs over TLS with client certificates and bearer
    /// tokens (as `devnet --tls`), to measure what that costs.
    #[arg(long)]
    tls: bool,
    /// Add this one-way delay between the local cluster's replicas (a relay in front of each
    /// peer port), to measure as if they were a network apart, e.g. `5ms`.
    #[arg(long, value_parser = humantime::parse_duration)]
    peer_delay: Option<Duration>,
}

/// Runs the load against `--endpoint`, or against a fresh local cluster per committee size and
/// variant; prints the results (and writes them to `--json`).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let load = LoadOptions {
        endpoints: args.endpoint.clone(),
        watch: args.endpoint.first().cloned().unwrap_or_default(),
        committee: args
            .committee
            .as_deref()
            .map(CommitteeFile::load)
            .transpose()?,
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        tx_bytes: args.tx_bytes,
        max_in_flight: args.max_in_flight,
        drain: Duration::from_secs(30),
    };
    if !args.endpoint.is_empty() {
        let report = rt.block_on(run_load(load))?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        if let Some(p) = &args.json {
            std::fs::write(p, serde_json::to_vec_pretty(&report)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut reports = Vec::new();
    for &n in &args.replicas {
        for &variant in &args.variant {
            let mut spec = ClusterSpec::new(&args.dir, current_exe()?);
            spec.replicas = n;
            spec.base_port = args.base_port;
            spec.params = Params {
                variant,
                batch_size: args.batch_size,
                ..Params::default()
            };
            spec.services = vec![Service::Keystore, Service::Gateway, Service::Consensus];
            spec.kdf = KdfParams::insecure_fast_for_tests();
            spec.log_filter = "warn".to_owned();
            spec.tls = args.tls;
            let r = rt.block_on(run_local(LocalBench {
                spec,
                load: load.clone(),
                keep: args.keep,
                peer_delay: args.peer_delay.filter(|d| !d.is_zero()),
            }))?;
            print_bench(&r);
            reports.push(r);
        }
    }
    let doc = serde_json::json!({
        "machine": machine_description(),
        "runs": reports,
    });
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&doc)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_bench(r: &crate::bench::LocalReport) {
    let l = &r.load;
    let rss: Vec<String> = r
        .peak_rss_mib
        .iter()
        .map(|(k, v)| format!("{k} {v:.0}"))
        .collect();
    let cpu: Vec<String> = r
        .cpu_cores
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect();
    let cpu_total: f64 = r.cpu_cores.values().sum();
    println!(
        "{:<6}{}{} n={:<3} offered {:>6} tx/s  committed {:>8.0} tx/s  latency p50 {:>7.1} ms p99 {:>7.1} ms max {:>7.1} ms  epochs {:>5}  shed {}  errors {}  peak RSS MiB: {}  CPU cores: {} (total {cpu_total:.2})",
        r.variant,
        if r.tls { "+tls" } else { "" },
        if r.peer_delay_ms > 0.0 {
            format!("+{}ms", r.peer_delay_ms)
        } else {
            String::new()
        },
        r.n,
        l.offered_rate,
        l.throughput_tps,
        l.latency_ms.p50,
        l.latency_ms.p99,
        l.latency_ms.max,
        l.epochs,
        l.shed,
        l.submit_errors,
        rss.join(", "),
        cpu.join(", ")
    );
}

fn machine_description() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    serde_json::json!({
        "cpu": cpu,
        "threads": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "os": std::env::consts::OS,
    })
}
