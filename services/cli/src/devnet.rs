//! `beat devnet`: a local cluster doing the main job, with nothing to set up.
//!
//! Generates keys (first run), starts every service of every replica as its own process, lets
//! each replica's synthetic feed publish market events, and prints once per interval what the
//! public APIs report: epochs, committed transactions and their rate, and whether every replica
//! agrees on every committed batch and market state hash. Ctrl-C stops it gracefully; started
//! again on the same directory it resumes where it stopped.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use beat_provision::layout::Service;
use beat_testkit::{
    cluster::{Cluster, ClusterSpec},
    monitor::{AgreementTracker, statuses},
};

/// Options of `beat devnet`.
#[derive(Clone, Debug)]
pub struct DevnetOptions {
    /// The cluster.
    pub spec: ClusterSpec,
    /// Delete the directory first.
    pub fresh: bool,
    /// Stop after this long (forever if `None`).
    pub duration: Option<Duration>,
    /// How often to print a status line.
    pub interval: Duration,
}

fn print_banner(cluster: &Cluster) {
    let c = cluster.committee();
    println!(
        "devnet: {} replicas, {} (batch size {}), f = {}, directory {}",
        cluster.n(),
        c.params.variant,
        c.params.batch_size,
        c.committee().f(),
        cluster.dir().display()
    );
    for i in 0..cluster.n() {
        let p = cluster.ports(i);
        let state = if cluster.spec().services.contains(&Service::State) {
            format!("  market API {}", cluster.market_endpoint(i))
        } else {
            String::new()
        };
        println!(
            "  replica {i}: ordering API {}{state}  peers {}  logs {}",
            cluster.ordering_endpoint(i),
            p.peer(),
            cluster
                .log_path(i, Service::Consensus)
                .parent()
                .map_or_else(String::new, |d| d.display().to_string())
        );
    }
    let auth = cluster.client_auth();
    let flags = match (
        &auth.ca_file,
        &auth.cert_file,
        &auth.key_file,
        &auth.token_file,
    ) {
        (Some(ca), Some(cert), Some(key), Some(token)) => format!(
            " --ca-file {} --cert-file {} --key-file {} --token-file {}",
            ca.display(),
            cert.display(),
            key.display(),
            token.display()
        ),
        _ => String::new(),
    };
    println!(
        "try: beat status --devnet {dir}{flags}   beat submit --endpoint {}{flags} hello   beat watch --endpoint {}{flags}",
        cluster.ordering_endpoint(0),
        cluster.ordering_endpoint(1),
        dir = cluster.dir().display()
    );
}

fn fmt_epochs(v: &[Option<u64>]) -> String {
    v.iter()
        .map(|e| e.map_or_else(|| "-".to_owned(), |e| e.to_string()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs the devnet until Ctrl-C/SIGTERM or `duration`. Exit code 0 if it made progress and no
/// replica diverged or crashed, 1 otherwise.
pub async fn devnet(options: DevnetOptions) -> anyhow::Result<ExitCode> {
    if options.fresh && options.spec.dir.exists() {
        std::fs::remove_dir_all(&options.spec.dir)?;
    }
    if let Some(warning) = options.spec.port_warning() {
        eprintln!("devnet: warning: {warning}");
    }
    let mut cluster = Cluster::prepare(options.spec)?;
    let auth = cluster.client_auth();
    crate::api::use_client_auth(auth.clone());
    print_banner(&cluster);
    cluster.start_all()?;
    cluster.wait_all_ready(Duration::from_secs(60)).await?;
    println!(
        "devnet: all {} services ready; Ctrl-C to stop",
        cluster.n() * cluster.spec().services.len()
    );

    let n = cluster.n();
    let ordering: Vec<String> = (0..n).map(|i| cluster.ordering_endpoint(i)).collect();
    let market: Vec<String> = if cluster.spec().services.contains(&Service::State) {
        (0..n).map(|i| cluster.market_endpoint(i)).collect()
    } else {
        Vec::new()
    };
    // Compare from the epoch the cluster is at now (a resumed devnet has history).
    let first = statuses(&ordering, &[], &auth, Duration::from_secs(2)).await;
    let from_epoch = first
        .iter()
        .filter_map(|s| s.consensus.as_ref().map(|c| c.epoch))
        .min()
        .unwrap_or(0);
    let tracker =
        AgreementTracker::start(ordering.clone(), market.clone(), from_epoch, auth.clone());

    let started = tokio::time::Instant::now();
    let shutdown = beat_telemetry::shutdown::signal();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(options.interval);
    tick.tick().await;
    let mut last_tx = 0u64;
    let mut last_at = started;
    let mut crashed = false;
    let mut probes = crate::client::TxPreparer::new(Some(cluster.committee()))?;
    let mut probe_seq = 0u64;
    let mut reason = "stopped";
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        for e in cluster.reap_exited() {
            crashed = true;
            eprintln!(
                "devnet: replica {} {} exited ({}); last lines of {}:",
                e.replica,
                e.service.name(),
                e.status,
                e.log.display()
            );
            if let Ok(text) = std::fs::read_to_string(&e.log) {
                let lines: Vec<_> = text.lines().collect();
                for l in &lines[lines.len().saturating_sub(10)..] {
                    eprintln!("    {l}");
                }
            }
        }
        // One probe transaction per interval, to a different replica each time, timed from
        // Submit to its commit at that replica. The state service rejects it as malformed
        // (every replica alike); it carries no market event.
        let target = (probe_seq as usize) % n;
        let plain = format!("devnet-probe/{}/{probe_seq}", std::process::id()).into_bytes();
        probe_seq += 1;
        if let Ok(tx) = probes.prepare(&plain) {
            tracker.probe(plain, target);
            let endpoint = ordering[target].clone();
            tokio::spawn(async move {
                if let Ok(mut c) = crate::api::ordering_client(&endpoint) {
                    let _ = c
                        .submit(beat_proto::consensus::v1::SubmitRequest {
                            transactions: vec![bytes::Bytes::from(tx)],
                        })
                        .await;
                }
            });
        }
        let st = statuses(&ordering, &market, &auth, Duration::from_secs(1)).await;
        let report = tracker.report();
        let epochs: Vec<Option<u64>> = st
            .iter()
            .map(|s| s.consensus.as_ref().map(|c| c.epoch))
            .collect();
        let tx = st
            .iter()
            .filter_map(|s| s.consensus.as_ref().map(|c| c.committed_transactions))
            .max()
            .unwrap_or(0);
        let now = tokio::time::Instant::now();
        let rate = (tx.saturating_sub(last_tx)) as f64
            / now.duration_since(last_at).as_secs_f64().max(1e-3);
        last_tx = tx;
        last_at = now;
        let faults: u64 = st
            .iter()
            .filter_map(|s| s.consensus.as_ref().map(|c| c.faults_observed))
            .sum();
        let state = if market.is_empty() {
            String::new()
        } else {
            format!(
                "  state epochs [{}] hashes agree on {}",
                fmt_epochs(&report.state_highest),
                report.state_epochs_all_agree
            )
        };
        let latency = tracker.probe_latency().map_or_else(
            || "-".to_owned(),
            |d| format!("{:.0} ms", d.as_secs_f64() * 1e3),
        );
        println!(
            "[{:>5.0}s] epochs [{}]  committed {tx} tx ({rate:.0} tx/s)  latency {latency}  batches agree on {}{state}  faults {faults}{}",
            started.elapsed().as_secs_f64(),
            fmt_epochs(&epochs),
            report.batch_epochs_all_agree,
            if report.divergences.is_empty() {
                ""
            } else {
                "  DIVERGENCE"
            },
        );
        for d in &report.divergences {
            eprintln!("devnet: SAFETY VIOLATION: {d}");
        }
        if let Some(d) = options.duration
            && started.elapsed() >= d
        {
            reason = "duration reached";
            break;
        }
    }
    let report = tracker.stop();
    println!("devnet: {reason}; stopping");
    cluster.stop_all(Duration::from_secs(10));
    let progressed = report.batch_epochs_all_agree > 0;
    println!(
        "devnet: {} epochs agreed by all replicas, {} state hashes agreed, {} divergences{}",
        report.batch_epochs_all_agree,
        report.state_epochs_all_agree,
        report.divergences.len(),
        if crashed { ", a process crashed" } else { "" }
    );
    Ok(
        if report.divergences.is_empty() && !crashed && (progressed || options.duration.is_none()) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// The default devnet directory: `./.devnet`.
pub fn default_dir() -> PathBuf {
    PathBuf::from(".devnet")
}
