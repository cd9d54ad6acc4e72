//! End-to-end scenarios against a real BEAT cluster: replicas run as processes on loopback
//! ([`beat_testkit::cluster::Cluster`]), load goes through the public gRPC APIs only, and agreement
//! is checked from the outside.
//!
//! The helpers here are what the scenarios in `tests/` share: market events as transactions,
//! submission with receipts, and collecting a replica's committed batches until given
//! transactions appear. [`compose`] drives the same checks against the Compose cluster of
//! containers (`compose.yaml`).

pub mod firewall;
pub mod networks;
pub mod ports;
pub mod transports;

use std::{
    collections::{BTreeMap, HashSet},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context, bail};
use beat_cli::api::{market_client, ordering_client};
use beat_client::client::{Client, ClientConfig};
pub use beat_client::verify::CommitteeInfo;
use beat_proto::{
    common::v1::{Batch, contribution::Content},
    consensus::v1 as cpb,
    state::v1 as spb,
};
use bytes::Bytes;
use prost::Message as _;

pub mod compose;

/// The market source name this test process publishes under: every event of [`market_tx`] is
/// from `e2e:<name>`, signed with [`market_key`].
pub const MARKET_SOURCE: &str = "e2e";

/// This process's market source key (random per process).
pub fn market_key() -> &'static beat_crypto::identity::IdentityKeypair {
    static KEY: std::sync::LazyLock<beat_crypto::identity::IdentityKeypair> =
        std::sync::LazyLock::new(|| {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).expect("OS randomness");
            beat_crypto::identity::IdentityKeypair::from_secret_bytes(secret)
        });
    &KEY
}

/// Registers [`MARKET_SOURCE`] in `spec`'s market, so its state services apply [`market_tx`]'s
/// events (a cluster's market is never open).
pub fn register_market_source(spec: &mut beat_testkit::cluster::ClusterSpec) {
    spec.market_sources
        .insert(MARKET_SOURCE.to_owned(), market_key().public());
}

/// A fresh directory for one scenario under the system temporary directory.
pub fn scenario_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("beat-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The `k`-th market event of source `source`, encoded as a transaction. Events cycle through
/// orders on both sides around a mid of 10,000 (so some cross and trade), quotes, trade prints
/// and cancels of earlier orders. The event is from `e2e:<source>`, signed with [`market_key`]
/// (register it with [`register_market_source`]).
pub fn market_tx(source: &str, k: u64) -> Vec<u8> {
    use spb::market_event::Event;
    let symbol = ["BTC-USD", "ETH-USD"][(k % 2) as usize].to_owned();
    let event = match k % 5 {
        0 | 1 => Event::Order(spb::NewOrder {
            order_id: format!("{source}-{k}"),
            symbol,
            side: if k % 10 < 5 {
                spb::Side::Buy
            } else {
                spb::Side::Sell
            } as i32,
            price: 9_995 + (k % 11) as i64,
            quantity: 1 + k % 7,
        }),
        2 => Event::Quote(spb::Quote {
            symbol,
            bid_price: 9_990 + (k % 5) as i64,
            bid_size: 1 + k % 3,
            ask_price: 10_005 + (k % 5) as i64,
            ask_size: 1 + k % 4,
        }),
        3 => Event::Trade(spb::TradePrint {
            symbol,
            price: 9_998 + (k % 5) as i64,
            quantity: 1 + k % 9,
        }),
        _ => Event::Cancel(spb::CancelOrder {
            order_id: format!("{source}-{}", k.saturating_sub(4)),
        }),
    };
    let mut event = spb::MarketEvent {
        source: format!("{MARKET_SOURCE}:{source}"),
        sequence: k,
        event: Some(event),
        signature: Default::default(),
    };
    beat_state::market::sources::sign(&mut event, market_key());
    event.encode_to_vec()
}

/// Submits `txs` to `endpoint` in requests of `chunk`; fails unless every transaction is
/// acknowledged as accepted.
pub async fn submit_all(endpoint: &str, txs: &[Vec<u8>], chunk: usize) -> anyhow::Result<()> {
    let mut client = ordering_client(endpoint)?;
    for part in txs.chunks(chunk) {
        let r = client
            .submit(cpb::SubmitRequest {
                transactions: part.iter().cloned().map(Bytes::from).collect(),
            })
            .await
            .with_context(|| format!("Submit to {endpoint}"))?
            .into_inner();
        anyhow::ensure!(
            r.receipts.len() == part.len(),
            "{} receipts for {} transactions",
            r.receipts.len(),
            part.len()
        );
        for (i, rc) in r.receipts.iter().enumerate() {
            anyhow::ensure!(
                rc.admission == cpb::Admission::Accepted as i32,
                "transaction {i} of a request to {endpoint} was not accepted: {:?}",
                rc.admission
            );
        }
    }
    Ok(())
}

/// The committed transactions of a batch, in order.
pub fn transactions(b: &Batch) -> impl Iterator<Item = &Bytes> {
    b.contributions.iter().flat_map(|c| match &c.content {
        Some(Content::Transactions(t)) => t.transactions.iter(),
        _ => [].iter(),
    })
}

/// Streams `endpoint`'s batches from `from_epoch` until every transaction of `wanted` has been
/// committed; returns the batches (epoch-ordered, consecutive). Fails after `timeout`, and at
/// once if the replica serves a batch that does not verify against `committee`.
///
/// The stream is `beat_client`'s verified watch ([`beat_client::client::Client::watch`]) of
/// this one replica: every batch comes with its commit certificate and continues the certified
/// chain, so each scenario's agreement check runs on history a client would accept. It
/// reconnects and resumes on its own while the replica is starting or restarting.
pub async fn batches_until(
    endpoint: &str,
    committee: &CommitteeInfo,
    from_epoch: u64,
    wanted: &HashSet<Vec<u8>>,
    timeout: Duration,
) -> anyhow::Result<Vec<Batch>> {
    use futures::StreamExt as _;

    let mut missing: HashSet<&[u8]> = wanted.iter().map(Vec::as_slice).collect();
    let mut out: Vec<Batch> = Vec::new();
    let mut config = ClientConfig::new(vec![endpoint.to_owned()]);
    config.auth = beat_cli::api::client_auth();
    // Reconnect quickly: a replica the scenario restarts is back within seconds.
    config.backoff_max = Duration::from_secs(1);
    let client = Client::new(config)?;
    let collect = async {
        let mut stream = std::pin::pin!(client.watch(committee.clone(), from_epoch));
        while let Some(item) = stream.next().await {
            let watched = item.with_context(|| format!("verified watch of {endpoint}"))?;
            let batch = &watched.verified.batch;
            let b = beat_consensus::convert::batch(batch, &batch.digest());
            for tx in transactions(&b) {
                missing.remove(tx.as_ref());
            }
            out.push(b);
            if missing.is_empty() {
                return anyhow::Ok(());
            }
        }
        bail!("the verified watch of {endpoint} ended")
    };
    match tokio::time::timeout(timeout, collect).await {
        Ok(r) => r?,
        Err(_) => bail!(
            "{endpoint}: {} of {} transactions not committed after {timeout:?} (reached epoch {})",
            missing.len(),
            wanted.len(),
            out.last().map_or(from_epoch, |b| b.epoch + 1)
        ),
    }
    Ok(out)
}

/// Checks that the replicas' batch sequences agree wherever they overlap (same epochs, same
/// digests and contents) and that no transaction is committed twice in any of them.
pub fn check_same_order(per_replica: &[Vec<Batch>]) -> anyhow::Result<()> {
    let mut by_epoch: BTreeMap<u64, (usize, &Batch)> = BTreeMap::new();
    for (r, batches) in per_replica.iter().enumerate() {
        let mut seen = HashSet::new();
        for b in batches {
            for tx in transactions(b) {
                if !seen.insert(tx.clone()) {
                    bail!(
                        "replica {r} committed a transaction twice (epoch {})",
                        b.epoch
                    );
                }
            }
            match by_epoch.get(&b.epoch) {
                Some((other, ob)) if *ob != b => bail!(
                    "epoch {}: replica {other} committed {} but replica {r} committed {}",
                    b.epoch,
                    hex(&ob.digest),
                    hex(&b.digest)
                ),
                Some(_) => {}
                None => {
                    by_epoch.insert(b.epoch, (r, b));
                }
            }
        }
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What served history is verified against: `cluster`'s committee.
pub fn committee_of(cluster: &beat_testkit::cluster::Cluster) -> CommitteeInfo {
    CommitteeInfo::from_file(cluster.committee())
}

/// Each replica's consensus epoch (the next epoch it will commit).
pub async fn epochs(endpoints: &[String]) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in endpoints {
        let mut c = ordering_client(e)?;
        out.push(
            c.status(cpb::StatusRequest {})
                .await
                .with_context(|| format!("Status of {e}"))?
                .into_inner()
                .epoch,
        );
    }
    Ok(out)
}

/// Waits until each market service has applied `epoch` (or later) and returns their
/// `GetState` answers.
pub async fn states_at_least(
    endpoints: &[String],
    epoch: u64,
    timeout: Duration,
) -> anyhow::Result<Vec<spb::GetStateResponse>> {
    let wait = async {
        loop {
            let mut all = Vec::new();
            for e in endpoints {
                let Ok(mut c) = market_client(e) else { break };
                match c.get_state(spb::GetStateRequest {}).await {
                    Ok(r) if r.get_ref().epoch.is_some_and(|x| x >= epoch) => {
                        all.push(r.into_inner());
                    }
                    _ => break,
                }
            }
            if all.len() == endpoints.len() {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(timeout, wait).await.map_err(|_| {
        anyhow::anyhow!("market services did not all apply epoch {epoch} within {timeout:?}")
    })
}

/// Applied and rejected market events over epochs `0..=through`, summed from `WatchState`.
pub async fn market_event_totals(
    endpoint: &str,
    through: u64,
    timeout: Duration,
) -> anyhow::Result<(u64, u64)> {
    let sum = async {
        let mut client = market_client(endpoint)?;
        let mut stream = client
            .watch_state(spb::WatchStateRequest { from_epoch: 0 })
            .await?
            .into_inner();
        let (mut applied, mut rejected) = (0u64, 0u64);
        while let Some(r) = stream.message().await? {
            applied += u64::from(r.events);
            rejected += u64::from(r.rejected);
            if r.epoch >= through {
                return Ok((applied, rejected));
            }
        }
        bail!("WatchState on {endpoint} ended before epoch {through}")
    };
    tokio::time::timeout(timeout, sum)
        .await
        .map_err(|_| anyhow::anyhow!("WatchState on {endpoint} did not reach epoch {through}"))?
}

/// Submits `txs` round-robin over `endpoints` in concurrent requests of `chunk`; fails unless
/// every transaction is acknowledged as accepted.
pub async fn submit_spread(
    endpoints: &[String],
    txs: &[Vec<u8>],
    chunk: usize,
) -> anyhow::Result<()> {
    let mut set = tokio::task::JoinSet::new();
    for (k, part) in txs.chunks(chunk).enumerate() {
        let ep = endpoints[k % endpoints.len()].clone();
        let part = part.to_vec();
        set.spawn(async move { submit_all(&ep, &part, chunk).await });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// Waits until every endpoint has committed all of `txs` (from `from_epoch` on), each served
/// batch verified against `committee` ([`batches_until`]), checks that their batches agree
/// ([`check_same_order`]) and returns the next epoch after the last batch the slowest of them
/// needed.
pub async fn committed_everywhere(
    endpoints: &[String],
    committee: &CommitteeInfo,
    from_epoch: u64,
    txs: &[Vec<u8>],
    timeout: Duration,
) -> anyhow::Result<u64> {
    let wanted: HashSet<Vec<u8>> = txs.iter().cloned().collect();
    let mut set = tokio::task::JoinSet::new();
    for ep in endpoints {
        let ep = ep.clone();
        let wanted = wanted.clone();
        let committee = committee.clone();
        set.spawn(async move {
            let r = batches_until(&ep, &committee, from_epoch, &wanted, timeout).await;
            (ep, r)
        });
    }
    let mut per_replica = Vec::new();
    while let Some(r) = set.join_next().await {
        let (ep, batches) = r?;
        per_replica.push(batches.with_context(|| ep.clone())?);
    }
    check_same_order(&per_replica)?;
    Ok(per_replica
        .iter()
        .filter_map(|b| b.last().map(|b| b.epoch + 1))
        .min()
        .unwrap_or(from_epoch))
}

/// Market services at `endpoints` reach `epoch`, then (once quiet) all report the same epoch
/// and state hash; returns that state.
pub async fn same_market_state(
    endpoints: &[String],
    epoch: u64,
    timeout: Duration,
) -> anyhow::Result<spb::GetStateResponse> {
    let states = states_at_least(endpoints, epoch, timeout).await?;
    let max_epoch = states.iter().filter_map(|s| s.epoch).max().unwrap_or(epoch);
    let states = states_at_least(endpoints, max_epoch, timeout).await?;
    let first = &states[0];
    for (k, s) in states.iter().enumerate() {
        anyhow::ensure!(
            s.epoch == first.epoch && s.state_hash == first.state_hash,
            "{} market state at epoch {:?} differs from {} at epoch {:?}",
            endpoints[k],
            s.epoch,
            endpoints[0],
            first.epoch
        );
    }
    Ok(first.clone())
}
