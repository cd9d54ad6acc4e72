//! A scenario: a variant (with its storage profile), a committee, an adversary and a seed, run
//! against a workload.

use std::time::Duration;

use beat_core::{
    Params,
    client::{MAX_BUNDLE_TRANSACTIONS, seal_client_bundle, seal_client_transaction},
};
use beat_crypto::identity::IdentityKeypair;
use beat_types::{Epoch, NodeId, Transaction, Variant};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::Serialize;

pub use crate::profile::{Profile, ProfileParseError, Storage};
use crate::{adversaries, invariants::Violation, net::VirtualNet};

/// One simulated run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The BEAT variant and its storage profile.
    pub profile: Profile,
    /// Committee size.
    pub n: usize,
    /// Faulty replicas (at most f).
    pub faulty: usize,
    /// Adversary name (see [`adversaries::NAMES`]).
    pub adversary: String,
    /// The seed: the same seed reproduces the run exactly.
    pub seed: u64,
    /// Transactions in the workload, each given to every honest replica.
    pub transactions: usize,
    /// Transaction size in bytes.
    pub tx_size: usize,
    /// `B`.
    pub batch_size: usize,
    /// Delivery budget; exceeding it is a liveness violation.
    pub max_cranks: u64,
}

impl Scenario {
    /// A small default scenario for `profile` (a [`Variant`] means its full-delivery profile),
    /// `n` (with f at its maximum) and `adversary`.
    pub fn new(profile: impl Into<Profile>, n: usize, adversary: &str, seed: u64) -> Self {
        let f = (n.max(1) - 1) / 3;
        Self {
            profile: profile.into(),
            n,
            faulty: f,
            adversary: adversary.to_owned(),
            seed,
            transactions: 3 * n,
            tx_size: 32,
            batch_size: 2 * n,
            max_cranks: 4_000_000,
        }
    }

    /// The BEAT variant.
    pub fn variant(&self) -> Variant {
        self.profile.variant
    }

    /// The protocol parameters the scenario runs with.
    pub fn params(&self) -> Params {
        let mut params = Params {
            batch_size: self.batch_size,
            max_transaction_bytes: (self.tx_size + 512).max(1024),
            ..Params::default()
        };
        self.profile.apply(&mut params);
        params
    }

    /// Runs the scenario and checks every invariant.
    pub fn run(&self) -> anyhow::Result<Report> {
        let adversary = adversaries::by_name(&self.adversary)
            .ok_or_else(|| anyhow::anyhow!("unknown adversary {:?}", self.adversary))?;
        let transactions = self.transactions * adversary.workload_scale();
        let mut net = VirtualNet::builder(self.n)
            .faulty(self.faulty)
            .seed(self.seed)
            .params(self.params())
            .adversary(adversary)
            .build()?;
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed ^ 0xdead_beef);
        let workload = workload(
            self.variant(),
            &net,
            transactions,
            self.tx_size,
            self.seed,
            SCENARIO_BUNDLES,
            &mut rng,
        )?;
        let recipients: Vec<NodeId> = net
            .committee
            .members()
            .filter(|id| !net.faulty.contains(id) || net.faulty_get_inputs())
            .collect();
        for committed in workload.iter().flat_map(|(_, committed)| committed) {
            net.checker.expect(committed, Epoch::ZERO);
        }
        let submitted: Vec<Transaction> = workload.iter().map(|(s, _)| s.clone()).collect();
        for id in recipients {
            net.submit(id, submitted.clone())?;
        }
        let mut completed = false;
        let mut quiet = 0;
        while net.cranks() < self.max_cranks {
            if net.checker.workload_done() {
                completed = true;
                break;
            }
            if net.crank() {
                quiet = 0;
                continue;
            }
            // Nothing in flight and the workload not done: the hosts' stall timers fire (N5').
            quiet += 1;
            if quiet > 2 {
                break;
            }
            net.stall_all();
        }
        if completed {
            // No honest replica may be left behind once the load stops (TRM-1).
            // Draining takes a few deliveries; a cluster that stays busy is judged after as many
            // as the run took (at least 50,000).
            net.drain(net.cranks().max(50_000));
        }
        let params = self.params();
        let per_epoch = params.proposal_size(net.committee);
        let bound = (transactions.div_ceil(per_epoch) + 2 * self.n + 8) as u64;
        let cranks = net.cranks();
        net.checker.finish(completed, cranks, bound);
        Ok(Report {
            violations: net.checker.violations.clone(),
            epochs: net.checker.min_epochs(),
            cranks,
            forced: net.stats.forced,
            detections: net.checker.detections,
            max_epochs_in_memory: net.checker.max_epochs_in_memory,
            max_lag: net.checker.max_lag,
            random_coins: net
                .nodes
                .values()
                .map(|s| s.keystore.coin_shares_served)
                .sum(),
            restarts: net.nodes.values().map(|s| s.restarts).sum(),
            peak_in_flight: net.stats.peak_in_flight,
            started_early: net.checker.started_early.len() as u64,
        })
    }
}

/// How a BEAT2 workload packs its transactions into envelopes: the `i`-th envelope holds
/// `sizes[i % sizes.len()]` of them — one as a single transaction, more as a bundle
/// ([`beat_core::client`]). Ignored by the other variants.
pub const SCENARIO_BUNDLES: &[usize] = &[1, 2, 1, 3];

/// The workload: `(what is submitted, what gets committed)` per envelope. In BEAT2 one client,
/// with a key drawn from `rng`, seals its `i`-th envelope as request `i` (predictable labels, as
/// most clients' are), `bundles` transactions at a time (see [`SCENARIO_BUNDLES`]), and the
/// replicas commit the plaintexts; elsewhere each transaction is its own envelope. `count`
/// counts transactions, not envelopes.
pub fn workload(
    variant: Variant,
    net: &VirtualNet,
    count: usize,
    size: usize,
    seed: u64,
    bundles: &[usize],
    rng: &mut ChaCha20Rng,
) -> anyhow::Result<Vec<(Transaction, Vec<Transaction>)>> {
    let plain: Vec<Transaction> = (0..count)
        .map(|i| {
            let mut bytes = format!("tx/{seed}/{i}/").into_bytes();
            bytes.resize(size.max(bytes.len()), b'.');
            Transaction::new(bytes)
        })
        .collect();
    if variant != Variant::Beat2 {
        return Ok(plain.into_iter().map(|t| (t.clone(), vec![t])).collect());
    }
    anyhow::ensure!(
        !bundles.is_empty()
            && bundles
                .iter()
                .all(|&k| (1..=MAX_BUNDLE_TRANSACTIONS).contains(&k)),
        "bundle sizes must be in 1..={MAX_BUNDLE_TRANSACTIONS}"
    );
    let client = IdentityKeypair::generate(rng);
    let mut out = Vec::new();
    let mut rest = plain.as_slice();
    for (request, &k) in bundles.iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let (group, tail) = rest.split_at(k.min(rest.len()));
        rest = tail;
        let request = request as u64;
        let tx = match group {
            [one] => seal_client_transaction(
                &client,
                &net.keys.encryption,
                request,
                one.as_bytes(),
                rng,
            )?,
            _ => {
                let refs: Vec<&[u8]> = group.iter().map(Transaction::as_bytes).collect();
                seal_client_bundle(&client, &net.keys.encryption, request, &refs, rng)?
            }
        };
        out.push((tx, group.to_vec()));
    }
    Ok(out)
}

/// What a run found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Broken invariants.
    #[serde(skip)]
    pub violations: Vec<Violation>,
    /// Epochs committed by every honest replica.
    pub epochs: u64,
    /// Deliveries.
    pub cranks: u64,
    /// Deliveries forced by the eventual-delivery bound.
    pub forced: u64,
    /// Faults attributed to faulty replicas by honest ones.
    pub detections: u64,
    /// Most epochs an honest replica held in memory.
    pub max_epochs_in_memory: usize,
    /// The widest gap between two honest replicas' epochs during the run.
    pub max_lag: u64,
    /// Coin shares released by all replicas (random-coin rounds × replicas reaching them).
    pub random_coins: u64,
    /// Replica restarts (crash-restart adversary).
    pub restarts: u64,
    /// The most messages in flight at once.
    pub peak_in_flight: usize,
    /// Epochs honest replicas started before committing the one before (pipelining), summed
    /// over the replicas.
    pub started_early: u64,
}

/// Parameters of `beat-sim bench`.
#[derive(Clone, Debug)]
pub struct Bench {
    /// Variant and, for BEAT3/BEAT4, storage profile (full or commitments-only delivery,
    /// encrypted or not).
    pub profile: Profile,
    /// Committee size.
    pub n: usize,
    /// `B`.
    pub batch: usize,
    /// Transaction size.
    pub tx_size: usize,
    /// BEAT2: transactions per client envelope (1: each sealed alone; more: bundles, module
    /// [`beat_core::client`]). `batch` still counts envelopes, as the protocol's `B` does.
    pub bundle: usize,
    /// Epochs to run.
    pub epochs: u64,
    /// Seed.
    pub seed: u64,
}

/// Benchmark results (per replica and epoch, averaged over all replicas).
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Variant.
    pub variant: String,
    /// Committee size.
    pub n: usize,
    /// `B`.
    pub batch: usize,
    /// Transaction size.
    pub tx_size: usize,
    /// BEAT2: transactions per client envelope.
    pub bundle: usize,
    /// Epochs committed.
    pub epochs: u64,
    /// Transactions committed (per replica).
    pub txs_committed: u64,
    /// CPU time per replica per epoch, in milliseconds (protocol code and keystore).
    pub cpu_ms_per_node_epoch: f64,
    /// CPU time per replica per committed transaction, in microseconds: the figure that
    /// compares runs whose epochs hold different numbers of transactions (bundles).
    pub cpu_us_per_transaction: f64,
    /// Messages sent per replica per epoch.
    pub msgs_per_node_epoch: f64,
    /// Bytes sent per replica per epoch (postcard encoding).
    pub bytes_per_node_epoch: f64,
}

impl Bench {
    /// Runs the benchmark: no faulty replicas, FIFO delivery (zero network delay), every
    /// replica given a disjoint `B/n` share of each epoch's transactions so that an epoch
    /// commits about `B` of them.
    pub fn run(&self) -> anyhow::Result<BenchReport> {
        let bundle = if self.profile.variant == Variant::Beat2 {
            self.bundle.max(1)
        } else {
            1
        };
        // An envelope holds `bundle` transactions with their length prefixes, and the
        // ciphertext's own overhead.
        let mut params = Params {
            batch_size: self.batch,
            max_transaction_bytes: ((self.tx_size + 8) * bundle + 512).max(1024),
            ..Params::default()
        };
        self.profile.apply(&mut params);
        let mut net = VirtualNet::builder(self.n)
            .seed(self.seed)
            .params(params.clone())
            .adversary(Box::new(adversaries::Fifo))
            .measure(true)
            .build()?;
        let per_node = params.proposal_size(net.committee);
        let total = per_node * self.n * self.epochs as usize * bundle;
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed);
        let workload = workload(
            self.profile.variant,
            &net,
            total,
            self.tx_size,
            self.seed,
            &[bundle],
            &mut rng,
        )?;
        let ids: Vec<NodeId> = net.committee.members().collect();
        let mut per_replica: Vec<Vec<Transaction>> = vec![Vec::new(); self.n];
        for (i, (submitted, committed)) in workload.iter().enumerate() {
            for tx in committed {
                net.checker.expect(tx, Epoch::ZERO);
            }
            per_replica[i % self.n].push(submitted.clone());
        }
        for (id, txs) in ids.iter().zip(per_replica) {
            net.submit(*id, txs)?;
        }
        while !net.checker.workload_done() && net.crank() {}
        // What the epochs still owe once the workload is committed counts too: the last
        // epochs' commit certificates (a loaded replica checks them in batches, C3), settled
        // as a host's stall timer would.
        net.drain(net.cranks().max(50_000));
        anyhow::ensure!(
            net.checker.violations.is_empty(),
            "violations: {:?}",
            net.checker.violations
        );
        let epochs = net.checker.min_epochs().max(1);
        let node_epochs = (self.n as u64 * epochs) as f64;
        let busy: Duration = net.nodes.values().map(|s| s.busy).sum();
        let msgs: u64 = net.nodes.values().map(|s| s.sent_messages).sum();
        let bytes: u64 = net.nodes.values().map(|s| s.sent_bytes).sum();
        // Commitments-only batches carry no transactions: count what the checker saw stored.
        let committed = if self.profile.is_commitments_only() {
            net.checker.stored_transactions() as u64
        } else {
            net.nodes.values().next().map_or(0, |s| {
                s.log()
                    .iter()
                    .map(|b| b.batch.transaction_count() as u64)
                    .sum()
            })
        };
        Ok(BenchReport {
            variant: self.profile.to_string(),
            n: self.n,
            batch: self.batch,
            tx_size: self.tx_size,
            bundle,
            epochs,
            txs_committed: committed,
            cpu_ms_per_node_epoch: busy.as_secs_f64() * 1000.0 / node_epochs,
            cpu_us_per_transaction: busy.as_secs_f64() * 1e6
                / (self.n as f64 * committed.max(1) as f64),
            msgs_per_node_epoch: msgs as f64 / node_epochs,
            bytes_per_node_epoch: bytes as f64 / node_epochs,
        })
    }
}
