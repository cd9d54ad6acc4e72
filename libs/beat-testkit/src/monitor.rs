//! Watching a cluster from the outside, through the public APIs only: per-replica status, and
//! agreement of the committed batches and of the market state across replicas.
//!
//! [`AgreementTracker`] follows `WatchBatches` (and `WatchState` when the state service runs)
//! on every replica, reconnecting after restarts, and compares what each replica reports for
//! each epoch. Any two replicas reporting different batch digests or state hashes for the same
//! epoch is a safety violation and is kept as a [`Divergence`].

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use beat_client::connect::{ClientAuth, market, ordering};
use beat_proto::{consensus::v1 as cpb, state::v1 as spb};
use parking_lot::Mutex;
use tokio::task::JoinSet;

/// One replica's status as its public APIs report it (`None`: unreachable).
#[derive(Clone, Debug, Default)]
pub struct ReplicaStatus {
    /// The consensus service's status.
    pub consensus: Option<cpb::StatusResponse>,
    /// The state service's status.
    pub state: Option<spb::StatusResponse>,
}

/// Asks every replica for its status with the credentials `auth` (each call bounded by
/// `timeout`).
pub async fn statuses(
    ordering_endpoints: &[String],
    market_endpoints: &[String],
    auth: &ClientAuth,
    timeout: Duration,
) -> Vec<ReplicaStatus> {
    /// One status call, bounded by `timeout`; `None` if it failed or timed out.
    async fn ask<T>(
        timeout: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Option<T> {
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(response)) => Some(response.into_inner()),
            _ => None,
        }
    }
    let mut set = JoinSet::new();
    for (i, ep) in ordering_endpoints.iter().enumerate() {
        let client = ordering(ep, auth);
        set.spawn(async move {
            let status = match client {
                Ok(mut c) => ask(timeout, c.status(cpb::StatusRequest {})).await,
                Err(_) => None,
            };
            (i, status.map(Ok))
        });
    }
    for (i, ep) in market_endpoints.iter().enumerate() {
        let client = market(ep, auth);
        set.spawn(async move {
            let status = match client {
                Ok(mut c) => ask(timeout, c.status(spb::StatusRequest {})).await,
                Err(_) => None,
            };
            (i, status.map(Err))
        });
    }
    let mut out =
        vec![ReplicaStatus::default(); ordering_endpoints.len().max(market_endpoints.len())];
    while let Some(Ok((i, r))) = set.join_next().await {
        match r {
            Some(Ok(c)) => out[i].consensus = Some(c),
            Some(Err(s)) => out[i].state = Some(s),
            None => {}
        }
    }
    out
}

/// What was compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The committed batch's digest.
    Batch,
    /// The market state hash after applying the epoch.
    State,
}

/// Two replicas disagreeing about an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Batch or state.
    pub subject: Subject,
    /// The epoch.
    pub epoch: u64,
    /// The first replica and what it reported.
    pub first: (usize, Vec<u8>),
    /// The disagreeing replica and what it reported.
    pub second: (usize, Vec<u8>),
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} of epoch {} differs: replica {} has {}, replica {} has {}",
            self.subject,
            self.epoch,
            self.first.0,
            hex::encode(&self.first.1),
            self.second.0,
            hex::encode(&self.second.1)
        )
    }
}

#[derive(Debug, Default)]
struct Ledger {
    n: usize,
    /// epoch → per replica digest (first reporter kept as reference).
    epochs: BTreeMap<u64, Vec<Option<Vec<u8>>>>,
    /// Per replica, the highest epoch reported.
    highest: Vec<Option<u64>>,
    /// Epochs every replica reported and that agreed.
    fully_checked: u64,
    divergences: Vec<Divergence>,
}

/// Epochs kept for comparison; older ones are dropped (an unreachable replica would otherwise
/// make the ledger grow forever). A replica lagging further than this is compared only from
/// where it resumes.
const LEDGER_EPOCHS: usize = 100_000;

impl Ledger {
    fn new(n: usize) -> Self {
        Self {
            n,
            highest: vec![None; n],
            ..Default::default()
        }
    }

    fn record(&mut self, subject: Subject, replica: usize, epoch: u64, digest: Vec<u8>) {
        let n = self.n;
        let slot = self.epochs.entry(epoch).or_insert_with(|| vec![None; n]);
        if let Some((j, other)) = slot
            .iter()
            .enumerate()
            .find_map(|(j, d)| d.as_ref().map(|d| (j, d)))
            && *other != digest
        {
            self.divergences.push(Divergence {
                subject,
                epoch,
                first: (j, other.clone()),
                second: (replica, digest.clone()),
            });
        }
        slot[replica] = Some(digest);
        self.highest[replica] = Some(self.highest[replica].map_or(epoch, |h| h.max(epoch)));
        if slot.iter().all(Option::is_some) {
            self.epochs.remove(&epoch);
            self.fully_checked += 1;
        }
        while self.epochs.len() > LEDGER_EPOCHS {
            self.epochs.pop_first();
        }
    }
}

/// A point-in-time view of agreement.
#[derive(Clone, Debug, Default)]
pub struct AgreementReport {
    /// Per replica, the highest committed epoch seen through `WatchBatches`.
    pub batch_highest: Vec<Option<u64>>,
    /// Epochs whose batch every replica reported, identically.
    pub batch_epochs_all_agree: u64,
    /// Per replica, the highest applied epoch seen through `WatchState`.
    pub state_highest: Vec<Option<u64>>,
    /// Epochs whose state hash every replica reported, identically.
    pub state_epochs_all_agree: u64,
    /// Every disagreement seen.
    pub divergences: Vec<Divergence>,
    /// Committed transactions seen at each replica (sum over its batches since tracking began).
    pub transactions: Vec<u64>,
}

#[derive(Debug)]
struct Shared {
    batches: Ledger,
    states: Ledger,
    transactions: Vec<u64>,
    /// Probe transactions in flight: plaintext → (submitted to, when).
    probes: std::collections::HashMap<Vec<u8>, (usize, tokio::time::Instant)>,
    /// Latest probe latencies (submit to commit at the replica it was submitted to).
    probe_latencies: std::collections::VecDeque<Duration>,
}

/// Probe latencies kept for the median.
const PROBE_WINDOW: usize = 32;

/// Follows every replica's committed batches (and state hashes) and compares them.
#[derive(Debug)]
pub struct AgreementTracker {
    shared: Arc<Mutex<Shared>>,
    tasks: JoinSet<()>,
}

impl AgreementTracker {
    /// Starts following `ordering` (and `market`, which may be empty) endpoints from
    /// `from_epoch`, with the credentials `auth`.
    pub fn start(
        ordering: Vec<String>,
        market: Vec<String>,
        from_epoch: u64,
        auth: ClientAuth,
    ) -> Self {
        let n = ordering.len();
        let shared = Arc::new(Mutex::new(Shared {
            batches: Ledger::new(n),
            states: Ledger::new(n),
            transactions: vec![0; n],
            probes: std::collections::HashMap::new(),
            probe_latencies: std::collections::VecDeque::new(),
        }));
        let mut tasks = JoinSet::new();
        for (i, ep) in ordering.into_iter().enumerate() {
            tasks.spawn(follow_batches(
                shared.clone(),
                i,
                ep,
                auth.clone(),
                from_epoch,
            ));
        }
        for (i, ep) in market.into_iter().enumerate() {
            tasks.spawn(follow_states(
                shared.clone(),
                i,
                ep,
                auth.clone(),
                from_epoch,
            ));
        }
        Self { shared, tasks }
    }

    /// The current view.
    pub fn report(&self) -> AgreementReport {
        let s = self.shared.lock();
        let mut divergences = s.batches.divergences.clone();
        divergences.extend(s.states.divergences.iter().cloned());
        AgreementReport {
            batch_highest: s.batches.highest.clone(),
            batch_epochs_all_agree: s.batches.fully_checked,
            state_highest: s.states.highest.clone(),
            state_epochs_all_agree: s.states.fully_checked,
            divergences,
            transactions: s.transactions.clone(),
        }
    }

    /// Records a probe transaction (its plaintext) submitted to `replica` just now; its commit
    /// at that replica is timed.
    pub fn probe(&self, plaintext: Vec<u8>, replica: usize) {
        let mut s = self.shared.lock();
        // Probes lost to a crashed replica would otherwise accumulate.
        if s.probes.len() > 1024 {
            s.probes.clear();
        }
        s.probes
            .insert(plaintext, (replica, tokio::time::Instant::now()));
    }

    /// The median of the latest probe latencies, if any committed.
    pub fn probe_latency(&self) -> Option<Duration> {
        let s = self.shared.lock();
        let mut v: Vec<Duration> = s.probe_latencies.iter().copied().collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }

    /// Stops following.
    pub fn stop(mut self) -> AgreementReport {
        self.tasks.abort_all();
        self.report()
    }
}

fn batch_tx_count(b: &beat_proto::common::v1::Batch) -> u64 {
    use beat_proto::common::v1::contribution::Content;
    b.contributions
        .iter()
        .map(|c| match &c.content {
            Some(Content::Transactions(t)) => t.transactions.len() as u64,
            _ => 0,
        })
        .sum()
}

fn observe_probes(s: &mut Shared, replica: usize, batch: &beat_proto::common::v1::Batch) {
    use beat_proto::common::v1::contribution::Content;
    for c in &batch.contributions {
        let Some(Content::Transactions(t)) = &c.content else {
            continue;
        };
        for tx in &t.transactions {
            if let Some(&(target, at)) = s.probes.get(tx.as_ref())
                && target == replica
            {
                s.probes.remove(tx.as_ref());
                s.probe_latencies.push_back(at.elapsed());
                if s.probe_latencies.len() > PROBE_WINDOW {
                    s.probe_latencies.pop_front();
                }
            }
        }
    }
}

async fn follow_batches(
    shared: Arc<Mutex<Shared>>,
    i: usize,
    endpoint: String,
    auth: ClientAuth,
    from: u64,
) {
    let mut next = from;
    loop {
        let result = async {
            let mut client = ordering(&endpoint, &auth)?;
            let mut stream = client
                .watch_batches(cpb::WatchBatchesRequest {
                    from_epoch: next,
                    certified: false,
                })
                .await?
                .into_inner();
            while let Some(msg) = stream.message().await? {
                let Some(batch) = msg.batch else { continue };
                let mut s = shared.lock();
                s.transactions[i] += batch_tx_count(&batch);
                if !s.probes.is_empty() {
                    observe_probes(&mut s, i, &batch);
                }
                s.batches
                    .record(Subject::Batch, i, batch.epoch, batch.digest.to_vec());
                next = batch.epoch + 1;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(replica = i, "WatchBatches: {e:#}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn follow_states(
    shared: Arc<Mutex<Shared>>,
    i: usize,
    endpoint: String,
    auth: ClientAuth,
    from: u64,
) {
    let mut next = from;
    loop {
        let result = async {
            let mut client = market(&endpoint, &auth)?;
            let mut stream = client
                .watch_state(spb::WatchStateRequest { from_epoch: next })
                .await?
                .into_inner();
            while let Some(msg) = stream.message().await? {
                let mut s = shared.lock();
                s.states
                    .record(Subject::State, i, msg.epoch, msg.state_hash.to_vec());
                next = msg.epoch + 1;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(replica = i, "WatchState: {e:#}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_detects_divergence_and_counts_full_agreement() {
        let mut l = Ledger::new(3);
        l.record(Subject::Batch, 0, 5, vec![1]);
        l.record(Subject::Batch, 1, 5, vec![1]);
        assert_eq!(l.fully_checked, 0);
        l.record(Subject::Batch, 2, 5, vec![1]);
        assert_eq!(l.fully_checked, 1);
        assert!(l.epochs.is_empty());
        l.record(Subject::Batch, 2, 6, vec![2]);
        l.record(Subject::Batch, 0, 6, vec![3]);
        assert_eq!(l.divergences.len(), 1);
        assert_eq!(l.divergences[0].first, (2, vec![2]));
        assert_eq!(l.divergences[0].second, (0, vec![3]));
        assert_eq!(l.highest, vec![Some(6), Some(5), Some(6)]);
    }
}
