//! `beat bench`: an open-loop load generator against the ordering API.
//!
//! Transactions are offered at a fixed rate whether or not earlier ones were committed (open
//! loop), so queueing shows up as latency rather than as a silently lower offered load. Each
//! transaction carries the run id and its sequence number; a watcher on one replica's
//! `WatchBatches` stream matches committed transactions to their submit time. Latency is
//! submit-call start to the batch arriving at the watcher, recorded in an HDR histogram for
//! transactions submitted after the warm-up. Throughput is committed transactions per second
//! over the measured window. Submissions that cannot start because `max_in_flight` calls are
//! already outstanding are counted as `shed` (the cluster, or this machine, is saturated).
//!
//! Without `--endpoint`, the bench starts its own cluster (keystore, gateway and consensus per
//! replica, as processes) in a temporary directory and reports the peak resident memory of
//! every process as well.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use beat_config::CommitteeFile;
use beat_proto::{common::v1::contribution::Content, consensus::v1 as cpb};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::{sync::Semaphore, time::Instant};

use crate::{api::ordering_client, client::TxPreparer};

const MAGIC: &[u8; 8] = b"BEATBNCH";
const HEADER: usize = 24;

/// What to offer.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Ordering endpoints to submit to, round-robin.
    pub endpoints: Vec<String>,
    /// The endpoint whose committed batches are watched.
    pub watch: String,
    /// The committee (needed for BEAT2 client encryption).
    pub committee: Option<CommitteeFile>,
    /// Offered transactions per second (all endpoints together).
    pub rate: u64,
    /// Length of the measured window.
    pub duration: Duration,
    /// Load before the measured window (not recorded).
    pub warmup: Duration,
    /// Size of each transaction in bytes (at least 24).
    pub tx_bytes: usize,
    /// Most Submit calls outstanding at once.
    pub max_in_flight: usize,
    /// How long to wait after the load for the last commits.
    pub drain: Duration,
}

/// Latency summary in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// The outcome of a load run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Offered rate (tx/s).
    pub offered_rate: u64,
    /// Transaction size (bytes).
    pub tx_bytes: usize,
    /// Transactions whose Submit call was made, warm-up included.
    pub submitted: u64,
    /// Transactions not submitted because too many calls were outstanding.
    pub shed: u64,
    /// Failed Submit calls.
    pub submit_errors: u64,
    /// Submitted transactions seen committed, warm-up included.
    pub committed: u64,
    /// Transactions submitted in the measured window and committed.
    pub measured_committed: u64,
    /// Transactions submitted in the measured window.
    pub measured_submitted: u64,
    /// `measured_committed` / window length.
    pub throughput_tps: f64,
    /// Submit-to-commit latency of measured transactions.
    pub latency_ms: Latency,
    /// Epochs committed during the run.
    pub epochs: u64,
    /// Length of the measured window in seconds.
    pub window_s: f64,
}

struct Shared {
    submit_at: Vec<AtomicU64>,
    histogram: Mutex<Histogram<u64>>,
    committed: AtomicU64,
    measured_committed: AtomicU64,
    epochs: AtomicU64,
}

fn make_tx(run: u64, seq: u64, size: usize) -> Vec<u8> {
    let mut tx = Vec::with_capacity(size);
    tx.extend_from_slice(MAGIC);
    tx.extend_from_slice(&run.to_le_bytes());
    tx.extend_from_slice(&seq.to_le_bytes());
    // Distinct filler so equal-length transactions do not compress into each other anywhere.
    let mut x = seq ^ run.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    while tx.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        tx.push(x as u8);
    }
    tx
}

fn parse_tx(run: u64, tx: &[u8]) -> Option<u64> {
    if tx.len() < HEADER || &tx[..8] != MAGIC || tx[8..16] != run.to_le_bytes() {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&tx[16..24]);
    Some(u64::from_le_bytes(seq))
}

/// Runs the load and reports.
pub async fn run_load(options: LoadOptions) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(options.rate > 0, "the rate must be positive");
    anyhow::ensure!(
        options.tx_bytes >= HEADER,
        "transactions must be at least {HEADER} bytes"
    );
    anyhow::ensure!(!options.endpoints.is_empty(), "no endpoint to submit to");
    let total_secs = (options.warmup + options.duration).as_secs_f64();
    let capacity = (options.rate as f64 * total_secs * 1.05) as usize + 1024;
    anyhow::ensure!(
        capacity <= 50_000_000,
        "rate × duration is too large for one run ({capacity} transactions)"
    );
    let mut run_bytes = [0u8; 8];
    getrandom::fill(&mut run_bytes).map_err(|e| anyhow::anyhow!("OS randomness: {e}"))?;
    let run = u64::from_le_bytes(run_bytes);
    let shared = Arc::new(Shared {
        submit_at: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        histogram: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3)?),
        committed: AtomicU64::new(0),
        measured_committed: AtomicU64::new(0),
        epochs: AtomicU64::new(0),
    });
    let t0 = Instant::now();
    let measure_from = options.warmup.as_micros() as u64;
    let measure_to = measure_from + options.duration.as_micros() as u64;

    // Watch commits from the replica's current epoch.
    let mut watch_client = ordering_client(&options.watch)?;
    let start_epoch = watch_client
        .status(cpb::StatusRequest {})
        .await?
        .into_inner()
        .epoch;
    let mut stream = watch_client
        .watch_batches(cpb::WatchBatchesRequest {
            from_epoch: start_epoch,
            certified: false,
        })
        .await?
        .into_inner();
    let watcher = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = stream.message().await {
                let Some(batch) = msg.batch else { continue };
                let now = t0.elapsed().as_micros() as u64 + 1;
                shared.epochs.fetch_add(1, Ordering::Relaxed);
                for c in &batch.contributions {
                    let Some(Content::Transactions(list)) = &c.content else {
                        continue;
                    };
                    for tx in &list.transactions {
                        let Some(seq) = parse_tx(run, tx) else {
                            continue;
                        };
                        let Some(slot) = shared.submit_at.get(seq as usize) else {
                            continue;
                        };
                        // Swap to 0 so a transaction is counted once.
                        let at = slot.swap(0, Ordering::AcqRel);
                        if at == 0 {
                            continue;
                        }
                        let at = at - 1;
                        shared.committed.fetch_add(1, Ordering::Relaxed);
                        if (measure_from..measure_to).contains(&at) {
                            shared.measured_committed.fetch_add(1, Ordering::Relaxed);
                            let mut h = shared.histogram.lock();
                            let _ = h.record(now.saturating_sub(at).max(1));
                        }
                    }
                }
            }
        })
    };

    let clients = options
        .endpoints
        .iter()
        .map(|e| ordering_client(e))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let preparer = Arc::new(Mutex::new(TxPreparer::new(options.committee.as_ref())?));
    let in_flight = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
    let errors = Arc::new(AtomicU64::new(0));
    let mut submitted = 0u64;
    let mut measured_submitted = 0u64;
    let mut shed = 0u64;
    let tick = Duration::from_millis(10);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = t0 + options.warmup + options.duration;
    let mut next_client = 0usize;
    let mut seq = 0u64;
    loop {
        interval.tick().await;
        let now = Instant::now();
        if now >= end {
            break;
        }
        // Transactions due by now minus those already offered.
        let due = (t0.elapsed().as_secs_f64() * options.rate as f64) as u64;
        let k = due.saturating_sub(seq);
        if k == 0 {
            continue;
        }
        let first = seq;
        seq += k;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            shed += k;
            continue;
        };
        let at = t0.elapsed().as_micros() as u64;
        if (measure_from..measure_to).contains(&at) {
            measured_submitted += k;
        }
        submitted += k;
        let mut client = clients[next_client % clients.len()].clone();
        next_client += 1;
        let shared = shared.clone();
        let errors = errors.clone();
        let preparer = preparer.clone();
        let tx_bytes = options.tx_bytes;
        tokio::spawn(async move {
            let _permit = permit;
            let prepared = tokio::task::spawn_blocking(move || {
                let mut p = preparer.lock();
                (first..first + k)
                    .map(|s| p.prepare(&make_tx(run, s, tx_bytes)))
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .await;
            let Ok(Ok(transactions)) = prepared else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let at = t0.elapsed().as_micros() as u64 + 1;
            for s in first..first + k {
                if let Some(slot) = shared.submit_at.get(s as usize) {
                    slot.store(at, Ordering::Release);
                }
            }
            if client
                .submit(cpb::SubmitRequest {
                    transactions: transactions.into_iter().map(bytes::Bytes::from).collect(),
                })
                .await
                .is_err()
            {
                errors.fetch_add(1, Ordering::Relaxed);
                for s in first..first + k {
                    if let Some(slot) = shared.submit_at.get(s as usize) {
                        slot.store(0, Ordering::Release);
                    }
                }
            }
        });
    }
    // Drain: wait for outstanding calls, then for commits of what was accepted.
    let _ = in_flight
        .acquire_many(options.max_in_flight.max(1) as u32)
        .await;
    let drain_end = Instant::now() + options.drain;
    while Instant::now() < drain_end {
        let pending = shared
            .submit_at
            .iter()
            .take(seq as usize)
            .any(|s| s.load(Ordering::Acquire) != 0);
        if !pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watcher.abort();
    let h = shared.histogram.lock();
    let ms = |us: u64| us as f64 / 1000.0;
    let measured_committed = shared.measured_committed.load(Ordering::Relaxed);
    Ok(LoadReport {
        offered_rate: options.rate,
        tx_bytes: options.tx_bytes,
        submitted,
        shed,
        submit_errors: errors.load(Ordering::Relaxed),
        committed: shared.committed.load(Ordering::Relaxed),
        measured_committed,
        measured_submitted,
        throughput_tps: measured_committed as f64 / options.duration.as_secs_f64(),
        latency_ms: if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
                mean: h.mean() / 1000.0,
            }
        },
        epochs: shared.epochs.load(Ordering::Relaxed),
        window_s: options.duration.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_transactions_round_trip_and_ignore_others() {
        let tx = make_tx(7, 42, 100);
        assert_eq!(tx.len(), 100);
        assert_eq!(parse_tx(7, &tx), Some(42));
        assert_eq!(parse_tx(8, &tx), None);
        assert_eq!(parse_tx(7, &tx[..20]), None);
        assert_ne!(make_tx(7, 1, 64), make_tx(7, 2, 64));
    }
}

/// A bench against a cluster this command starts.
#[derive(Clone, Debug)]
pub struct LocalBench {
    /// The cluster to start (its directory is deleted first and afterwards).
    pub spec: beat_testkit::cluster::ClusterSpec,
    /// The load (endpoints are filled in).
    pub load: LoadOptions,
    /// Keep the cluster directory (logs) afterwards.
    pub keep: bool,
    /// One-way delay added between replicas (a relay in front of each peer port), or none.
    pub peer_delay: Option<Duration>,
}

/// Aborts the tasks when dropped.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The outcome of a local bench.
#[derive(Clone, Debug, Serialize)]
pub struct LocalReport {
    /// The variant.
    pub variant: String,
    /// Replicas.
    pub n: usize,
    /// Batch size `B`.
    pub batch_size: usize,
    /// Whether the ordering APIs served TLS with client certificates and tokens.
    pub tls: bool,
    /// One-way delay added between replicas, in milliseconds (0: none).
    pub peer_delay_ms: f64,
    /// The load result.
    pub load: LoadReport,
    /// Per service, the largest peak resident memory of any replica's process, in MiB.
    pub peak_rss_mib: std::collections::BTreeMap<String, f64>,
    /// Per service summed over the replicas, and for the load generator (`load`), the CPU
    /// used during the load (warm-up and drain included), in cores: CPU seconds over wall
    /// seconds. Their total against the machine's cores says whether it was saturated.
    pub cpu_cores: std::collections::BTreeMap<String, f64>,
}

/// Starts a fresh cluster, runs the load against it and stops it.
pub async fn run_local(bench: LocalBench) -> anyhow::Result<LocalReport> {
    use beat_testkit::cluster::{Cluster, process_cpu_seconds};
    if bench.spec.dir.exists() {
        std::fs::remove_dir_all(&bench.spec.dir)?;
    }
    if let Some(warning) = bench.spec.port_warning() {
        eprintln!("bench: warning: {warning}");
    }
    let mut spec = bench.spec.clone();
    let mut relays = Vec::new();
    if let Some(delay) = bench.peer_delay {
        spec.endpoints = Some(
            (0..spec.replicas)
                .map(|i| beat_config::Endpoints {
                    tcp: Some(spec.ports(i).peer_relay().to_string()),
                    tor: None,
                    i2p: None,
                })
                .collect(),
        );
        for i in 0..spec.replicas {
            relays.push(
                beat_testkit::delay::spawn_delay_relay(
                    spec.ports(i).peer_relay(),
                    spec.ports(i).peer(),
                    delay,
                )
                .await?,
            );
        }
    }
    let _relays = AbortOnDrop(relays);
    let mut cluster = Cluster::prepare(spec)?;
    crate::api::use_client_auth(cluster.client_auth());
    cluster.start_all()?;
    cluster.wait_all_ready(Duration::from_secs(60)).await?;
    let n = cluster.n();
    let mut load = bench.load.clone();
    load.endpoints = (0..n).map(|i| cluster.ordering_endpoint(i)).collect();
    load.watch = cluster.ordering_endpoint(0);
    load.committee = Some(cluster.committee().clone());
    let cpu_before = cluster.cpu_seconds();
    let self_before = process_cpu_seconds(std::process::id());
    let started = tokio::time::Instant::now();
    let result = run_load(load).await;
    let wall = started.elapsed().as_secs_f64().max(f64::EPSILON);
    let mut cpu_cores = std::collections::BTreeMap::new();
    for (key, after) in cluster.cpu_seconds() {
        if let Some(before) = cpu_before.get(&key) {
            *cpu_cores.entry(key.1.name().to_owned()).or_insert(0.0) += (after - before) / wall;
        }
    }
    if let (Some(before), Some(after)) = (self_before, process_cpu_seconds(std::process::id())) {
        cpu_cores.insert("load".to_owned(), (after - before) / wall);
    }
    let mut peak = std::collections::BTreeMap::new();
    for ((_, service), kib) in cluster.peak_rss_kib() {
        let e = peak.entry(service.name().to_owned()).or_insert(0.0f64);
        *e = e.max(kib as f64 / 1024.0);
    }
    let crashed = cluster.reap_exited();
    cluster.stop_all(Duration::from_secs(10));
    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    if !bench.keep && crashed.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Some(e) = crashed.first() {
        anyhow::bail!(
            "replica {} {} exited during the bench ({}); see {}",
            e.replica,
            e.service.name(),
            e.status,
            e.log.display()
        );
    }
    Ok(LocalReport {
        variant: bench.spec.params.variant.to_string(),
        n,
        batch_size: bench.spec.params.batch_size,
        tls: bench.spec.tls,
        peer_delay_ms: bench.peer_delay.map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        load: result?,
        peak_rss_mib: peak,
        cpu_cores,
    })
}
