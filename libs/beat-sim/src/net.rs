//! The virtual network: replicas, messages in flight, and one delivery per crank.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap},
    sync::Arc,
    time::Duration,
};

use beat_core::{
    BeatNode, Checkpoint, CommittedBatch, Config, Input, Message, NodeStep, Outgoing, Output,
    Params, ProposalSeed, PublicKeys, Reply, Request, Target, acs::SubsetMessage,
    broadcast::BroadcastMessage, dispersal, epoch::EpochMessage, sender_queue::SenderQueue,
    signing::SigningPolicy,
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

/// An event a replica processes, as its service would log it before processing (write-ahead).
#[derive(Clone, Debug)]
pub enum Event {
    /// A local input.
    Input(Input),
    /// A message from a peer.
    Message(NodeId, Message),
    /// A keystore or storage reply.
    Reply(Reply),
}

/// One simulated replica (honest or faulty).
pub struct SimNode {
    /// The protocol core.
    pub node: BeatNode,
    config: Config,
    seed: ProposalSeed,
    /// Its keystore.
    pub keystore: SimKeystore,
    /// Everything it committed, in order.
    pub log: Vec<CommittedBatch>,
    /// Its sender-side queue.
    pub queue: SenderQueue,
    /// The last checkpoint and the events processed since.
    checkpoint: Option<Checkpoint>,
    /// The core's checkpoint interval, in epochs.
    checkpoint_every: u64,
    wal: Vec<Event>,
    /// Messages emitted by the event that produced the last checkpoint and every event since.
    sent_since_checkpoint: Vec<Outgoing<Message>>,
    /// Times this replica was restarted.
    pub restarts: u64,
    /// The epoch it recovered into at its last restart.
    recovered_into: Option<Epoch>,
    /// Time spent in its protocol code and keystore (measured only when benchmarking).
    pub busy: Duration,
    /// Messages and bytes it sent.
    pub sent_messages: u64,
    /// Bytes it sent (postcard encoding; counted only when benchmarking).
    pub sent_bytes: u64,
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
            let checkpoint_every = 1 + u64::from(id.0) % 3;
            let mut node = BeatNode::new(config.clone(), ProposalSeed(seed))?;
            node.set_checkpoint_interval(checkpoint_every);
            nodes.insert(
                id,
                SimNode {
                    node,
                    checkpoint_every,
                    config,
                    seed: ProposalSeed(seed),
                    checkpoint: None,
                    wal: Vec::new(),
                    sent_since_checkpoint: Vec::new(),
                    restarts: 0,
                    recovered_into: None,
                    keystore: SimKeystore {
                        coin,
                        decryption: dec,
                        encryption_key: keys.encryption.clone(),
                        coin_shares_served: 0,
                        policy: SigningPolicy::for_params(&self.params, committee_digest),
                    },
                    log: Vec::new(),
                    queue: SenderQueue::for_params(id, committee, &self.params),
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
        if sim.node.peers_ahead() < self.committee.f_plus_one() && !sim.node.awaits_certificates() {
            return;
        }
        match sim.apply(Event::Input(Input::Stalled), measure) {
            Ok(step) => self.run_step(id, step),
            Err(e) => self.checker.on_error(id, &e.to_string(), self.crank),
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
            let again: Vec<Outgoing<Message>> = sim
                .sent_since_checkpoint
                .iter()
                .filter(|o| matches!(o.target, Target::All) || o.target == Target::Node(id))
                .map(|o| Outgoing {
                    target: Target::Node(id),
                    message: o.message.clone(),
                })
                .collect();
            let ready = sim.queue.outgoing(again);
            self.send_all(peer, ready);
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
        let step = sim.apply(Event::Input(Input::Submit(txs)), measure)?;
        self.run_step(to, step);
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
        match sim.rebuild() {
            Ok((replayed, unexpected)) => {
                if unexpected > 0 {
                    self.checker.on_restart_divergence(id, unexpected, crank);
                }
                let pending = sim.node.pending_requests();
                let ready = sim.queue.outgoing(replayed);
                self.send_all(id, ready);
                let step = NodeStep {
                    requests: pending,
                    ..NodeStep::default()
                };
                self.run_step(id, step);
            }
            Err(e) => self
                .checker
                .on_error(id, &format!("restart failed: {e}"), crank),
        }
    }

    /// Whether the adversary lets faulty replicas receive client transactions.
    pub fn faulty_get_inputs(&self) -> bool {
        self.adversary.faulty_get_inputs()
    }

    fn honest_epoch(&self) -> Epoch {
        self.honest()
            .filter_map(|id| self.nodes.get(&id).map(|n| n.node.epoch()))
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

    /// Sends what replica `id` produced: outputs and faults go to the checker, requests to its
    /// keystore (whose replies are fed back as logged events), messages through its sender
    /// queue — and, for a faulty replica, through the adversary.
    fn run_step(&mut self, id: NodeId, step: NodeStep) {
        let mut pending = vec![step];
        while let Some(step) = pending.pop() {
            let measure = self.measure;
            let Some(sim) = self.nodes.get_mut(&id) else {
                return;
            };
            let honest = !self.faulty.contains(&id);
            for out in step.outputs {
                match out {
                    Output::Committed(batch) => {
                        if honest {
                            self.checker.on_commit(id, &batch, self.crank);
                        }
                        sim.log.push(batch.into());
                    }
                    Output::Certified(certificate) => {
                        if honest {
                            self.checker.on_certified(id, &certificate, self.crank);
                        }
                        // Storage keeps the certificate with its batch, as the service does.
                        let epoch = certificate.statement.epoch;
                        if let Ok(i) = sim.log.binary_search_by_key(&epoch, |b| b.batch.epoch) {
                            sim.log[i].certificate = Some(certificate);
                        }
                    }
                    Output::Stored {
                        epoch,
                        fragments,
                        complete,
                    } if honest => {
                        self.checker.on_stored(id, epoch, &fragments, complete);
                    }
                    Output::Stored { .. } | Output::Checkpoint(_) => {}
                }
            }
            if honest {
                for fault in &step.faults {
                    self.checker.on_fault(id, fault, self.crank);
                }
                for out in &step.messages {
                    if let Some((epoch, fpcc)) = own_dispersal(id, &out.message) {
                        self.checker.on_dispersed(id, epoch, fpcc);
                    }
                }
            }
            for request in step.requests {
                let policy = sim.keystore.check(&request, sim.node.latest_certificate());
                if !self.faulty.contains(&id) {
                    self.checker.on_request(id, &sim.node, &request, self.crank);
                    if let Err(refusal) = policy {
                        self.checker.on_refused(id, &refusal, self.crank);
                    }
                }
                let SimNode {
                    keystore,
                    log,
                    busy,
                    ..
                } = &mut *sim;
                let synchronous = matches!(request, Request::ReadCommitted { .. });
                let reply: Reply = timed(measure, busy, || keystore.serve(request, log));
                if synchronous || self.immediate_replies {
                    // A storage read is served by the replica's own process, within the event.
                    match sim.apply(Event::Reply(reply), measure) {
                        Ok(next) => pending.push(next),
                        Err(e) => self.checker.on_error(id, &e.to_string(), self.crank),
                    }
                } else {
                    self.replies.push(PendingReply {
                        node: id,
                        reply,
                        issued_at: self.crank,
                    });
                }
            }
            let ready = sim.queue.outgoing(step.messages);
            self.send_all(id, ready);
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
                    sim.sent_bytes += postcard::to_allocvec(&message).map_or(0, |b| b.len() as u64);
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
        self.checker.after_delivery(&self.nodes, self.crank);
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
            && self
                .nodes
                .get(&id)
                .is_some_and(|s| s.recovered_into.is_none_or(|epoch| s.node.epoch() > epoch))
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
            .filter_map(|id| self.nodes.get(&id).map(|s| (id, s.node.epoch())))
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
            self.checker.check_quiescent(&self.nodes, self.crank);
            return;
        }
        let after: BTreeMap<NodeId, Epoch> = before
            .keys()
            .filter_map(|id| self.nodes.get(id).map(|s| (*id, s.node.epoch())))
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
        match sim.apply(Event::Reply(reply), measure) {
            Ok(step) => self.run_step(node, step),
            Err(e) => self.checker.on_error(node, &e.to_string(), self.crank),
        }
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

    fn deliver(&mut self, envelope: Envelope) {
        let Envelope {
            from, to, message, ..
        } = envelope;
        let measure = self.measure;
        let Some(sim) = self.nodes.get_mut(&to) else {
            return;
        };
        let released = sim.queue.incoming(from, &message);
        let result = sim.apply(Event::Message(from, message), measure);
        self.send_all(to, released);
        match result {
            Ok(step) => self.run_step(to, step),
            Err(e) => self.checker.on_error(to, &e.to_string(), self.crank),
        }
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

impl SimNode {
    /// Logs `event` (write-ahead) and processes it. A peer message the core would ignore is
    /// dropped unlogged, as the consensus service does ([`BeatNode::is_relevant`]): the sweeps
    /// then check that dropping it changes nothing (a wrongly dropped message shows up as lost
    /// liveness, a wrongly skipped log entry as a divergent replay in `RST-1`).
    fn apply(&mut self, event: Event, measure: bool) -> Result<NodeStep, beat_core::Error> {
        if let Event::Message(from, message) = &event
            && !self.node.is_relevant(*from, message)
        {
            return Ok(NodeStep::default());
        }
        self.wal.push(event.clone());
        let Self { node, busy, .. } = self;
        let step = timed(measure, busy, || match event {
            Event::Input(input) => node.handle_input(input),
            Event::Message(from, message) => node.handle_message(from, message),
            Event::Reply(reply) => node.handle_reply(reply),
        })?;
        self.note(&step);
        Ok(step)
    }

    /// Keeps the last checkpoint and the messages sent since (for `RST-1`).
    fn note(&mut self, step: &NodeStep) {
        let checkpoint = step.outputs.iter().rev().find_map(|o| match o {
            Output::Checkpoint(c) => Some(c),
            Output::Committed(_) | Output::Stored { .. } | Output::Certified(_) => None,
        });
        if let Some(c) = checkpoint {
            self.checkpoint = Some((**c).clone());
            // Replay starts after the event that produced the checkpoint.
            self.wal.clear();
            self.sent_since_checkpoint.clear();
        }
        self.sent_since_checkpoint
            .extend(step.messages.iter().cloned());
    }

    /// Rebuilds the core from the last checkpoint and the logged events. Returns the messages
    /// the replay produced and how many of them had not been sent before.
    fn rebuild(&mut self) -> Result<(Vec<Outgoing<Message>>, usize), beat_core::Error> {
        let mut node = match &self.checkpoint {
            Some(c) => {
                BeatNode::from_checkpoint(self.config.clone(), self.seed.clone(), c.clone())?
            }
            None => BeatNode::new(self.config.clone(), self.seed.clone())?,
        };
        node.set_checkpoint_interval(self.checkpoint_every);
        let mut replayed = Vec::new();
        if self.checkpoint.is_some() {
            replayed.extend(node.resume().messages);
        }
        for event in self.wal.clone() {
            let step = match event {
                Event::Input(input) => node.handle_input(input),
                Event::Message(from, message) => node.handle_message(from, message),
                Event::Reply(reply) => node.handle_reply(reply),
            }?;
            replayed.extend(step.messages);
        }
        // Every replayed message must be one of those sent before (as a multiset).
        let mut before = self.sent_since_checkpoint.clone();
        let mut unexpected = 0;
        for m in &replayed {
            match before.iter().position(|b| b == m) {
                Some(i) => {
                    before.swap_remove(i);
                }
                None => unexpected += 1,
            }
        }
        self.node = node;
        self.restarts += 1;
        self.recovered_into = Some(self.node.epoch());
        self.queue = SenderQueue::for_params(
            self.config.our_id,
            self.config.committee,
            &self.config.params,
        );
        self.queue.assume_peers_at(self.node.epoch());
        Ok((replayed, unexpected))
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
        sim.checkpoint = None; // replay from genesis, where replica 2 proposed epoch 0
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
}
