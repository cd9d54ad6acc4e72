//! The virtual network: replicas, messages in flight, and one delivery per crank.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap},
    sync::Arc,
    time::Duration,
};

use beat_core::{
    BeatNode, CommittedBatch, Config, Message, Params, ProposalSeed, PublicKeys, Reply,
    acs::SubsetMessage,
    broadcast::BroadcastMessage,
    dispersal,
    epoch::EpochMessage,
    replica::{MemoryLog, Ready, Replica, Settings},
    signing::SigningPolicy,
    wire,
};
use beat_crypto::{avid_fp::Fpcc, bls, tdh2};
use beat_types::{Committee, Epoch, NodeId, Transaction};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::{
    adversary::{Adversary, Ctx, Envelope, PendingReply},
    invariants::Checker,
    keystore::SimKeystore,
};

/// The largest payload a simulated replica accepts from a peer (the consensus service's
/// default `max_payload_bytes`).
pub const MAX_PAYLOAD_BYTES: usize = 16 << 20;

/// One simulated replica (honest or faulty): the shipped replica host over an in-memory log,
/// and its keystore.
pub struct SimNode {
    /// The replica host, as the consensus service runs it.
    pub replica: Replica<MemoryLog>,
    config: Config,
    seed: ProposalSeed,
    settings: Settings,
    /// Its keystore.
    pub keystore: SimKeystore,
    /// Times this replica was restarted.
    pub restarts: u64,
    /// The epoch it recovered into at its last restart.
    recovered_into: Option<Epoch>,
    /// Time spent in its replica host and keystore (measured only when benchmarking).
    pub busy: Duration,
    /// Messages it sent.
    pub sent_messages: u64,
    /// Bytes it sent (wire encoding; counted only when benchmarking).
    pub sent_bytes: u64,
}

impl SimNode {
    /// The protocol core.
    pub fn node(&self) -> &BeatNode {
        self.replica.node()
    }

    /// Everything it committed, in order.
    pub fn log(&self) -> &[CommittedBatch] {
        self.replica.log().committed()
    }
}

/// The simulator's logs cannot fail.
fn infallible<T>(r: Result<T, std::convert::Infallible>) -> T {
    match r {
        Ok(t) => t,
        Err(never) => match never {},
    }
}

/// Network statistics.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Messages delivered.
    pub delivered: u64,
    /// Deliveries forced by the eventual-delivery bound.
    pub forced: u64,
    /// Peer-link resets (messages in flight lost, recent ones re-sent).
    pub link_resets: u64,
    /// The most messages in flight at once.
    pub peak_in_flight: usize,
}

/// The seeded virtual network.
pub struct VirtualNet {
    /// The committee.
    pub committee: Committee,
    /// Public keys.
    pub keys: PublicKeys,
    /// Every replica.
    pub nodes: BTreeMap<NodeId, SimNode>,
    /// The faulty replicas.
    pub faulty: BTreeSet<NodeId>,
    coin_secrets: Vec<(NodeId, bls::SecretKeyShare)>,
    decryption_secrets: Vec<(NodeId, tdh2::SecretKeyShare)>,
    faulty_config: Config,
    queue: Vec<Envelope>,
    /// Keystore replies on their way back (separate, later events).
    replies: Vec<PendingReply>,
    seqs: Vec<u64>,
    positions: HashMap<u64, usize>,
    /// Honest-to-honest messages by age, for the eventual-delivery bound (lazy deletion).
    ages: BinaryHeap<Reverse<(u64, u64)>>,
    next_seq: u64,
    adversary: Box<dyn Adversary>,
    rng: ChaCha20Rng,
    crank: u64,
    max_delay: u64,
    measure: bool,
    /// Serve keystore requests within the step that made them (benchmarks only).
    immediate_replies: bool,
    /// Set while draining: faulty replicas stop injecting and the adversary stops crashing
    /// replicas, so that the network can become quiescent (its schedule still applies).
    quiesce: bool,
    /// Invariant checks, run after every delivery.
    pub checker: Checker,
    /// Statistics.
    pub stats: Stats,
}

/// Builds a [`VirtualNet`].
pub struct Builder {
    n: usize,
    faulty: usize,
    seed: u64,
    params: Params,
    adversary: Box<dyn Adversary>,
    max_delay: Option<u64>,
    measure: bool,
    faulty_ids: Option<BTreeSet<NodeId>>,
}

impl Builder {
    /// Number of faulty replicas (default: none).
    pub fn faulty(mut self, f: usize) -> Self {
        self.faulty = f;
        self
    }

    /// Exactly which replicas are faulty (default: chosen by the seed).
    pub fn faulty_ids(mut self, ids: BTreeSet<NodeId>) -> Self {
        self.faulty = ids.len();
        self.faulty_ids = Some(ids);
        self
    }

    /// The seed that determines keys, schedule and every random choice.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Protocol parameters.
    pub fn params(mut self, params: Params) -> Self {
        self.params = params;
        self
    }

    /// The adversary.
    pub fn adversary(mut self, adversary: Box<dyn Adversary>) -> Self {
        self.adversary = adversary;
        self
    }

    /// The eventual-delivery bound, in deliveries (default: 40·n²).
    pub fn max_delay(mut self, cranks: u64) -> Self {
        self.max_delay = Some(cranks);
        self
    }

    /// Measure time and bytes per replica (benchmarks).
    pub fn measure(mut self, on: bool) -> Self {
        self.measure = on;
        self
    }

    /// Deals keys and creates the replicas.
    pub fn build(self) -> anyhow::Result<VirtualNet> {
        let committee = Committee::new(self.n)?;
        anyhow::ensure!(
            self.faulty <= committee.f(),
            "{} faulty replicas exceed f = {} for n = {}",
            self.faulty,
            committee.f(),
            self.n
        );
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed);
        let (coin_pk, coin_sk) = bls::deal(self.n, committee.f(), &mut rng)?;
        let (enc_pk, enc_sk) = tdh2::deal(self.n, committee.f(), &mut rng)?;
        let keys = PublicKeys {
            coin: Arc::new(coin_pk),
            encryption: Arc::new(enc_pk),
        };
        // The committee file's digest in a deployment; here one per run.
        let committee_digest =
            beat_crypto::hash::hash(b"_BEAT_SIM_COMMITTEE", &self.seed.to_le_bytes());
        let faulty = match self.faulty_ids {
            Some(ids) => ids,
            None if self.adversary.wants_low_ids() => {
                committee.members().take(self.faulty).collect()
            }
            None => {
                let mut ids: Vec<NodeId> = committee.members().collect();
                for i in (1..ids.len()).rev() {
                    ids.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                }
                ids.into_iter().take(self.faulty).collect()
            }
        };
        let mut nodes = BTreeMap::new();
        let mut coin_secrets = Vec::new();
        let mut decryption_secrets = Vec::new();
        for (coin, dec) in coin_sk.into_iter().zip(enc_sk) {
            let id = coin.holder();
            if faulty.contains(&id) {
                coin_secrets.push((id, coin.clone()));
                decryption_secrets.push((id, dec.clone()));
            }
            let config = Config {
                our_id: id,
                committee,
                committee_digest,
                keys: keys.clone(),
                params: self.params.clone(),
            };
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            // Replicas checkpoint every 1, 2 or 3 epochs, so crash-restart replays cover both
            // a checkpoint at the last epoch boundary and a WAL that spans several epochs.
            // Pipelined replicas (all but every fourth, so that both kinds run together) take
            // their checkpoints as barriers; a period of 1 would leave nothing to pipeline, so
            // theirs are 2, 3 or 4 and crash-restarts land with the next epoch under way.
            let pipelining = id.0 % 4 != 3;
            let checkpoint_every = u64::from(pipelining) + 1 + u64::from(id.0) % 3;
            let settings = Settings {
                max_payload_bytes: MAX_PAYLOAD_BYTES,
                checkpoint_every,
                pipelining,
            };
            let (replica, _) = Replica::open(
                config.clone(),
                ProposalSeed(seed),
                MemoryLog::default(),
                settings,
            )?;
            nodes.insert(
                id,
                SimNode {
                    replica,
                    config,
                    seed: ProposalSeed(seed),
                    settings,
                    restarts: 0,
                    recovered_into: None,
                    keystore: SimKeystore {
                        coin,
                        decryption: dec,
                        encryption_key: keys.encryption.clone(),
                        coin_shares_served: 0,
                        policy: SigningPolicy::for_params(&self.params, committee_digest),
                    },
                    busy: Duration::ZERO,
                    sent_messages: 0,
                    sent_bytes: 0,
                },
            );
        }
        let faulty_config = Config {
            our_id: faulty.iter().next().copied().unwrap_or(NodeId(0)),
            committee,
            committee_digest,
            keys: keys.clone(),
            params: self.params.clone(),
        };
        let n = self.n as u64;
        let checker = Checker::new(committee, faulty.clone(), self.params.clone())
            .with_certificates(committee_digest, keys.coin.clone());
        let max_delay = self
            .max_delay
            .or_else(|| self.adversary.delay_bound(self.n))
            .unwrap_or(40 * n * n);
        Ok(VirtualNet {
            committee,
            keys,
            nodes,
            faulty,
            coin_secrets,
            decryption_secrets,
            faulty_config,
            queue: Vec::new(),
            replies: Vec::new(),
            seqs: Vec::new(),
            positions: HashMap::new(),
            ages: BinaryHeap::new(),
            next_seq: 0,
            adversary: self.adversary,
            rng: ChaCha20Rng::seed_from_u64(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            crank: 0,
            max_delay,
            measure: self.measure,
            immediate_replies: self.measure,
            quiesce: false,
            checker,
            stats: Stats::default(),
        })
    }
}

/// Runs `f` and adds its duration to `busy` when measuring. The simulator's only use of the
/// clock: benchmark accounting, never protocol behaviour.
#[allow(clippy::disallowed_methods)]
fn timed<T>(measure: bool, busy: &mut Duration, f: impl FnOnce() -> T) -> T {
    if !measure {
        return f();
    }
    let start = std::time::Instant::now();
    let out = f();
    *busy += start.elapsed();
    out
}

impl VirtualNet {
    /// Starts building a network of `n` replicas.
    pub fn builder(n: usize) -> Builder {
        Builder {
            n,
            faulty: 0,
            seed: 0,
            params: Params::default(),
            adversary: Box::new(crate::adversaries::Benign),
            max_delay: None,
            measure: false,
            faulty_ids: None,
        }
    }

    /// The adversary's name.
    pub fn adversary_name(&self) -> &'static str {
        self.adversary.name()
    }

    /// Honest replicas.
    pub fn honest(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.committee
            .members()
            .filter(|id| !self.faulty.contains(id))
    }

    /// Deliveries so far.
    pub fn cranks(&self) -> u64 {
        self.crank
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Keystore replies not yet returned.
    pub fn pending_replies(&self) -> usize {
        self.replies.len()
    }

    /// Tells replica `id` it made no progress for a while, as its host's timer would (the
    /// consensus service does so after `stall_catch_up_ms` without a new epoch while f+1 peers
    /// are ahead).
    pub fn stall(&mut self, id: NodeId) {
        let measure = self.measure;
        let Some(sim) = self.nodes.get_mut(&id) else {
            return;
        };
        let SimNode { replica, busy, .. } = sim;
        if let Some(ready) = timed(measure, busy, || infallible(replica.stalled())) {
            self.perform(id, ready);
        }
    }

    /// Resets replica `id`'s peer links (see [`Adversary::reset_links`]): messages in flight to
    /// it are lost, and every peer re-sends what it sent since its last checkpoint.
    pub fn reset_links(&mut self, id: NodeId) {
        let lost: Vec<usize> = (0..self.queue.len())
            .rev()
            .filter(|&i| self.queue[i].to == id)
            .collect();
        for i in lost {
            let _ = self.take(i);
        }
        self.stats.link_resets += 1;
        let peers: Vec<NodeId> = self.committee.members().filter(|p| *p != id).collect();
        for peer in peers {
            let Some(sim) = self.nodes.get_mut(&peer) else {
                continue;
            };
            let again = sim.replica.resend(Some(id));
            self.send_all(peer, again.messages);
        }
    }

    /// Fires every honest replica's stall timer (the network is quiescent).
    pub fn stall_all(&mut self) {
        for id in self.honest().collect::<Vec<_>>() {
            self.stall(id);
        }
    }

    /// Submits transactions to replica `to` as a client would.
    pub fn submit(&mut self, to: NodeId, txs: Vec<Transaction>) -> anyhow::Result<()> {
        let measure = self.measure;
        let sim = self
            .nodes
            .get_mut(&to)
            .ok_or_else(|| anyhow::anyhow!("no replica {to}"))?;
        let SimNode { replica, busy, .. } = sim;
        let (_, ready) = timed(measure, busy, || {
            let submission = replica.admit(txs, usize::MAX)?;
            anyhow::Ok(infallible(replica.submit(submission)))
        })?;
        self.perform(to, ready);
        Ok(())
    }

    /// Restarts honest replica `id` as its service would after a crash: rebuild the core from
    /// its last checkpoint, resume, replay the logged events, re-issue pending keystore
    /// requests, and re-send what the replay produced. Checks `RST-1`: the rebuilt replica
    /// sends nothing it had not sent before.
    pub fn restart(&mut self, id: NodeId) {
        let crank = self.crank;
        // Keystore calls in progress are lost with the process; the rebuilt replica asks again.
        self.replies.retain(|r| r.node != id);
        let Some(sim) = self.nodes.get_mut(&id) else {
            return;
        };
        let sent_before = sim.replica.sent_since_checkpoint().to_vec();
        let log = std::mem::take(sim.replica.log_mut());
        let opened = Replica::open(sim.config.clone(), sim.seed.clone(), log, sim.settings);
        let (replica, recovery) = match opened {
            Ok(r) => r,
            Err(e) => {
                self.checker
                    .on_error(id, &format!("restart failed: {e}"), crank);
                return;
            }
        };
        sim.replica = replica;
        // Fragments the replay stored again were reported the first time.
        sim.replica.log_mut().take_stored();
        sim.restarts += 1;
        sim.recovered_into = Some(sim.replica.epoch());
        // Every replayed message must be one of those sent before (as a multiset).
        let mut before = sent_before;
        let mut unexpected = 0;
        for m in &recovery.replayed {
            match before.iter().position(|b| b == m) {
                Some(i) => {
                    before.swap_remove(i);
                }
                None => unexpected += 1,
            }
        }
        if unexpected > 0 {
            self.checker.on_restart_divergence(id, unexpected, crank);
        }
        if recovery.refused > 0 {
            self.checker.on_error(
                id,
                &format!("{} logged events were refused on replay", recovery.refused),
                crank,
            );
        }
        self.perform(id, recovery.ready);
    }

    /// Whether the adversary lets faulty replicas receive client transactions.
    pub fn faulty_get_inputs(&self) -> bool {
        self.adversary.faulty_get_inputs()
    }

    fn honest_epoch(&self) -> Epoch {
        self.honest()
            .filter_map(|id| self.nodes.get(&id).map(|n| n.replica.epoch()))
            .max()
            .unwrap_or_default()
    }

    fn with_ctx<T>(&mut self, f: impl FnOnce(&mut dyn Adversary, &mut Ctx<'_>) -> T) -> T {
        let honest_epoch = self.honest_epoch();
        let mut ctx = Ctx {
            committee: self.committee,
            faulty: &self.faulty,
            keys: &self.keys,
            coin_secrets: &self.coin_secrets,
            decryption_secrets: &self.decryption_secrets,
            config: &self.faulty_config,
            rng: &mut self.rng,
            crank: self.crank,
            honest_epoch,
            in_flight: &self.queue,
            replies: &self.replies,
        };
        f(self.adversary.as_mut(), &mut ctx)
    }

    fn enqueue(&mut self, from: NodeId, to: NodeId, message: Message) {
        if from == to || !self.committee.contains(to) {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if !self.faulty.contains(&from) && !self.faulty.contains(&to) {
            self.ages.push(Reverse((self.crank, seq)));
        }
        self.positions.insert(seq, self.queue.len());
        self.seqs.push(seq);
        self.queue.push(Envelope {
            from,
            to,
            message,
            sent_at: self.crank,
        });
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.queue.len());
    }

    fn take(&mut self, index: usize) -> Envelope {
        let seq = self.seqs.swap_remove(index);
        self.positions.remove(&seq);
        if index < self.seqs.len() {
            self.positions.insert(self.seqs[index], index);
        }
        self.queue.swap_remove(index)
    }

    /// Performs what replica `id`'s host returned: commits, stored fragments and faults go to
    /// the checker, requests to its keystore (whose replies are fed back as logged events),
    /// messages to the network — for a faulty replica, through the adversary.
    fn perform(&mut self, id: NodeId, ready: Ready) {
        let mut pending = vec![ready];
        while let Some(ready) = pending.pop() {
            let measure = self.measure;
            let Some(sim) = self.nodes.get_mut(&id) else {
                return;
            };
            let honest = !self.faulty.contains(&id);
            // Fragments are stored before their epoch's batch is output (Output::Stored).
            for (epoch, fragments, complete) in sim.replica.log_mut().take_stored() {
                if honest {
                    self.checker.on_stored(id, epoch, &fragments, complete);
                }
            }
            if honest {
                for event in &ready.committed {
                    match &event.certificate {
                        None => self.checker.on_commit(id, &event.batch, self.crank),
                        Some(c) => self.checker.on_certified(id, c, self.crank),
                    }
                }
                for fault in &ready.faults {
                    self.checker.on_fault(id, fault, self.crank);
                }
                for e in &ready.refused {
                    self.checker.on_error(id, &e.to_string(), self.crank);
                }
                for (_, message) in &ready.messages {
                    if let Some((epoch, fpcc)) = own_dispersal(id, message) {
                        self.checker.on_dispersed(id, epoch, fpcc);
                    }
                }
            }
            for request in ready.requests {
                let policy = sim
                    .keystore
                    .check(&request, sim.replica.node().latest_certificate());
                if honest {
                    self.checker
                        .on_request(id, sim.replica.node(), &request, self.crank);
                    if let Err(refusal) = policy {
                        self.checker.on_refused(id, &refusal, self.crank);
                    }
                }
                let SimNode {
                    keystore,
                    replica,
                    busy,
                    ..
                } = &mut *sim;
                let Some(reply) = timed(measure, busy, || keystore.serve(request)) else {
                    continue;
                };
                if self.immediate_replies {
                    pending.push(timed(measure, busy, || infallible(replica.reply(reply))));
                } else {
                    self.replies.push(PendingReply {
                        node: id,
                        reply,
                        issued_at: self.crank,
                    });
                }
            }
            self.send_all(id, ready.messages);
        }
    }

    fn send_all(&mut self, from: NodeId, messages: Vec<(NodeId, Message)>) {
        let faulty = self.faulty.contains(&from);
        for (to, message) in messages {
            let out = if faulty {
                self.with_ctx(|adv, ctx| adv.tamper(from, to, message, ctx))
            } else {
                vec![(to, message)]
            };
            for (to, message) in out {
                if self.measure
                    && let Some(sim) = self.nodes.get_mut(&from)
                {
                    sim.sent_messages += 1;
                    sim.sent_bytes += wire::encode(&message).len() as u64;
                } else if let Some(sim) = self.nodes.get_mut(&from) {
                    sim.sent_messages += 1;
                }
                self.enqueue(from, to, message);
            }
        }
    }

    /// Delivers one message. Returns `false` when nothing is in flight.
    pub fn crank(&mut self) -> bool {
        if !self.quiesce {
            self.adversary_acts();
        }
        if self.queue.is_empty() && self.replies.is_empty() {
            return false;
        }
        let forced_message = self.forced_index();
        let reply = if forced_message.is_some() {
            None
        } else if let Some(i) = self.overdue_reply() {
            Some(i)
        } else if self.queue.is_empty() {
            Some(0)
        } else if self.replies.is_empty() {
            None
        } else {
            self.with_ctx(|adv, ctx| adv.pick_reply(ctx))
                .map(|i| i.min(self.replies.len() - 1))
        };
        self.crank += 1;
        self.stats.delivered += 1;
        if let Some(i) = reply {
            let PendingReply { node, reply, .. } = self.replies.remove(i);
            self.deliver_reply(node, reply);
        } else {
            let index = forced_message.unwrap_or_else(|| {
                let i = self.with_ctx(|adv, ctx| adv.pick(ctx));
                i.min(self.queue.len() - 1)
            });
            let envelope = self.take(index);
            self.deliver(envelope);
        }
        self.checker
            .after_delivery(|id| self.nodes.get(&id).map(SimNode::node), self.crank);
        true
    }

    /// Crashes, stall timers and injected messages, as the adversary decides.
    ///
    /// The crash-recovery model: an honest replica the adversary crashes recovers at once from
    /// its log, and crashes again only after it has moved past the epoch it recovered into. A
    /// replica that crashes forever without progress is a crashed replica, which counts
    /// against `f`; and since recovery re-sends what the replay produced (everything since the
    /// last checkpoint), crashes that outpace epochs would grow the network's load without
    /// bound (beat0, n = 16, chaos, seed 316832001 once crashed a replica every ~490
    /// deliveries, 8,226 times, with 6 million messages in flight and nothing committed).
    fn adversary_acts(&mut self) {
        if let Some(id) = self.with_ctx(|adv, ctx| adv.restart(ctx))
            && !self.faulty.contains(&id)
            && self.nodes.get(&id).is_some_and(|s| {
                s.recovered_into
                    .is_none_or(|epoch| s.replica.epoch() > epoch)
            })
        {
            self.restart(id);
        }
        if let Some(id) = self.with_ctx(|adv, ctx| adv.stall(ctx))
            && !self.faulty.contains(&id)
        {
            self.stall(id);
        }
        if let Some(id) = self.with_ctx(|adv, ctx| adv.reset_links(ctx))
            && !self.faulty.contains(&id)
        {
            self.reset_links(id);
        }
        let raw = self.with_ctx(|adv, ctx| adv.inject_bytes(ctx));
        for (from, to, payload) in raw {
            if self.faulty.contains(&from) && from != to {
                self.deliver_bytes(from, to, &payload);
            }
        }
        let injected = self.with_ctx(|adv, ctx| adv.inject(ctx));
        for (from, to, message) in injected {
            if self.faulty.contains(&from) {
                self.enqueue(from, to, message);
            }
        }
    }

    /// Delivers everything in flight (the adversary injecting and crashing nothing more, its
    /// schedule still applying), firing the honest replicas' stall timers whenever the network
    /// falls quiet, then checks that nobody is stranded (`TRM-1`). At most `budget` deliveries:
    /// a cluster may legitimately stay busy (with commitments-only delivery a replica that the
    /// schedule keeps excluding never sees its transactions committed, so it keeps proposing);
    /// then every honest replica must at least have kept up — none may sit still behind another.
    pub fn drain(&mut self, budget: u64) {
        self.quiesce = true;
        let before: BTreeMap<NodeId, Epoch> = self
            .honest()
            .filter_map(|id| self.nodes.get(&id).map(|s| (id, s.replica.epoch())))
            .collect();
        let limit = self.crank.saturating_add(budget);
        let mut quiet_stalls = 0;
        while self.crank < limit {
            if self.crank() {
                continue;
            }
            // Quiet: stall timers fire; if they start nothing, the run is settled.
            let in_flight = self.queue.len() + self.replies.len();
            self.stall_all();
            if self.queue.len() + self.replies.len() == in_flight {
                quiet_stalls += 1;
            }
            if quiet_stalls >= 2 {
                break;
            }
        }
        self.quiesce = false;
        if self.queue.is_empty() && self.replies.is_empty() {
            self.checker
                .check_quiescent(|id| self.nodes.get(&id).map(SimNode::node), self.crank);
            return;
        }
        let after: BTreeMap<NodeId, Epoch> = before
            .keys()
            .filter_map(|id| self.nodes.get(id).map(|s| (*id, s.replica.epoch())))
            .collect();
        let highest = after.values().copied().max().unwrap_or_default();
        let stuck: Vec<String> = after
            .iter()
            .filter(|(id, e)| **e < highest && before.get(id) == Some(*e))
            .map(|(id, e)| format!("node {id} stayed at epoch {e} while others reached {highest}"))
            .collect();
        if !stuck.is_empty() || after == before {
            self.checker.on_no_quiescence(self.crank, &stuck);
        }
    }

    /// The oldest keystore reply to an honest replica, if it exceeded the delay bound.
    fn overdue_reply(&self) -> Option<usize> {
        self.replies
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                !self.faulty.contains(&r.node) && self.crank - r.issued_at > self.max_delay
            })
            .min_by_key(|(_, r)| r.issued_at)
            .map(|(i, _)| i)
    }

    fn deliver_reply(&mut self, node: NodeId, reply: Reply) {
        let measure = self.measure;
        let Some(sim) = self.nodes.get_mut(&node) else {
            return;
        };
        let SimNode { replica, busy, .. } = sim;
        let ready = timed(measure, busy, || infallible(replica.reply(reply)));
        self.perform(node, ready);
    }

    /// The oldest honest-to-honest message, if it exceeded the delay bound.
    fn forced_index(&mut self) -> Option<usize> {
        while let Some(Reverse((sent_at, seq))) = self.ages.peek().copied() {
            match self.positions.get(&seq) {
                None => {
                    self.ages.pop();
                }
                Some(&index) => {
                    if self.crank - sent_at > self.max_delay {
                        self.ages.pop();
                        self.stats.forced += 1;
                        return Some(index);
                    }
                    return None;
                }
            }
        }
        None
    }

    /// Delivers a message as bytes: the recipient's host decodes it, as the consensus service
    /// does with what its gateway hands it.
    fn deliver(&mut self, envelope: Envelope) {
        let Envelope {
            from, to, message, ..
        } = envelope;
        let payload = wire::encode(&message);
        self.deliver_bytes(from, to, &payload);
    }

    /// Hands `payload` from `from` to replica `to`'s host.
    fn deliver_bytes(&mut self, from: NodeId, to: NodeId, payload: &[u8]) {
        let measure = self.measure;
        let Some(sim) = self.nodes.get_mut(&to) else {
            return;
        };
        let SimNode { replica, busy, .. } = sim;
        let ready = timed(measure, busy, || infallible(replica.inbound(from, payload)));
        self.perform(to, ready);
    }
}

/// If `message` is `proposer`'s `Val` of its own AVID-FP dispersal, returns its epoch and
/// cross-checksum.
fn own_dispersal(proposer: NodeId, message: &Message) -> Option<(Epoch, &Fpcc)> {
    match message {
        Message::Epoch {
            epoch,
            message:
                EpochMessage::Subset(SubsetMessage::Broadcast {
                    proposer: p,
                    message: BroadcastMessage::Dispersal(dispersal::Message::Val { fpcc, .. }),
                }),
        } if *p == proposer => Some((*epoch, fpcc)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use beat_types::{NodeId, Transaction, Variant};

    use super::*;

    fn net() -> VirtualNet {
        let params = Params {
            variant: Variant::Beat0,
            batch_size: 8,
            ..Params::default()
        };
        let mut net = VirtualNet::builder(4)
            .seed(3)
            .params(params)
            .build()
            .unwrap();
        let txs: Vec<Transaction> = (0..24)
            .map(|i| Transaction::new(vec![i as u8 + 1; 8]))
            .collect();
        for tx in &txs {
            net.checker.expect(tx, beat_types::Epoch::ZERO);
        }
        for id in 0..4 {
            net.submit(NodeId(id), txs.clone()).unwrap();
        }
        for _ in 0..300 {
            net.crank();
        }
        net
    }

    #[test]
    fn a_faithful_restart_sends_nothing_new_and_the_run_completes() {
        let mut net = net();
        net.restart(NodeId(2));
        while net.crank() {}
        assert_eq!(net.nodes[&NodeId(2)].restarts, 1);
        assert!(
            net.checker.violations.is_empty(),
            "{:?}",
            net.checker.violations
        );
        assert!(net.checker.min_epochs() >= 3);
    }

    /// A restart with another proposal seed re-proposes differently: RST-1 must catch it.
    #[test]
    fn a_restart_that_would_equivocate_is_detected() {
        let mut net = net();
        let sim = net.nodes.get_mut(&NodeId(2)).unwrap();
        // Replay from genesis, where replica 2 proposed epoch 0.
        sim.replica.log_mut().forget_checkpoint();
        sim.seed = ProposalSeed([7; 32]);
        net.restart(NodeId(2));
        assert!(
            net.checker
                .violations
                .iter()
                .any(|v| v.invariant == "RST-1"),
            "{:?}",
            net.checker.violations
        );
    }

    /// Bytes that are no message reach the shipped decoder: the sender is blamed, the
    /// recipient logs nothing and moves on.
    #[test]
    fn a_malformed_payload_is_a_fault_of_its_sender_and_nothing_else() {
        let mut net = VirtualNet::builder(4)
            .seed(5)
            .faulty_ids([NodeId(3)].into())
            .build()
            .unwrap();
        let logged = net.nodes[&NodeId(0)].replica.log().logged();
        let mut truncated = wire::encode(&Message::EpochStarted(Epoch(1)));
        truncated.pop();
        for payload in [
            vec![],
            vec![0xff, 1, 2],
            truncated,
            vec![1; MAX_PAYLOAD_BYTES + 1],
        ] {
            net.deliver_bytes(NodeId(3), NodeId(0), &payload);
        }
        assert_eq!(net.checker.detections, 4);
        assert!(
            net.checker.violations.is_empty(),
            "{:?}",
            net.checker.violations
        );
        assert_eq!(net.nodes[&NodeId(0)].replica.log().logged(), logged);
        // The same from an honest replica would be a false accusation: FLT-1 must see it.
        net.deliver_bytes(NodeId(1), NodeId(0), &[0xff]);
        assert!(
            net.checker
                .violations
                .iter()
                .any(|v| v.invariant == "FLT-1")
        );
    }
}
