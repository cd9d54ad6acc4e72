//! A minimal seeded network for sub-protocol unit tests.
//!
//! Delivers one message at a time in an order chosen by a seeded RNG, so each test runs many
//! schedules. The full adversarial simulator with named adversaries lives in `beat-sim`; this is
//! only enough to exercise one sub-protocol instance per replica.

use std::collections::BTreeMap;

use beat_types::NodeId;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::{Fault, Request, Step, Target};

/// What the network needs from one replica's instance.
pub(crate) trait Node {
    type Message: Clone + std::fmt::Debug;
    type Output: Clone + std::fmt::Debug;
    fn handle(&mut self, from: NodeId, msg: Self::Message) -> Step<Self::Message, Self::Output>;
    /// Serves a keystore request and returns the resulting step.
    fn serve(&mut self, _request: Request) -> Step<Self::Message, Self::Output> {
        Step::default()
    }
}

pub(crate) struct TestNet<N: Node> {
    pub nodes: BTreeMap<NodeId, N>,
    /// Replicas whose outgoing messages are dropped (silent) — they still receive.
    pub silent: Vec<NodeId>,
    queue: Vec<(NodeId, NodeId, N::Message)>,
    pub outputs: BTreeMap<NodeId, Vec<N::Output>>,
    pub faults: BTreeMap<NodeId, Vec<Fault>>,
    rng: ChaCha20Rng,
    pub delivered: usize,
}

impl<N: Node> TestNet<N> {
    pub fn new(nodes: impl IntoIterator<Item = (NodeId, N)>, seed: u64) -> Self {
        Self {
            nodes: nodes.into_iter().collect(),
            silent: Vec::new(),
            queue: Vec::new(),
            outputs: BTreeMap::new(),
            faults: BTreeMap::new(),
            rng: ChaCha20Rng::seed_from_u64(seed),
            delivered: 0,
        }
    }

    /// Returns `true` if no message is in flight.
    pub fn is_quiet(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues and records everything `from` produced.
    pub fn absorb(&mut self, from: NodeId, step: Step<N::Message, N::Output>) {
        self.outputs.entry(from).or_default().extend(step.outputs);
        self.faults.entry(from).or_default().extend(step.faults);
        for request in step.requests {
            let node = self.nodes.get_mut(&from).expect("known node");
            let reply = node.serve(request);
            self.absorb(from, reply);
        }
        if self.silent.contains(&from) {
            return;
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for out in step.messages {
            match out.target {
                Target::All => {
                    for to in ids.iter().filter(|id| **id != from) {
                        self.queue.push((from, *to, out.message.clone()));
                    }
                }
                Target::Node(to) => self.queue.push((from, to, out.message)),
            }
        }
    }

    /// Injects a message as if `from` had sent it to `to`.
    pub fn inject(&mut self, from: NodeId, to: NodeId, msg: N::Message) {
        self.queue.push((from, to, msg));
    }

    /// Delivers one random queued message; returns `false` when the queue is empty.
    pub fn crank(&mut self) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        let i = (self.rng.next_u64() % self.queue.len() as u64) as usize;
        let (from, to, msg) = self.queue.swap_remove(i);
        self.delivered += 1;
        if let Some(node) = self.nodes.get_mut(&to) {
            let step = node.handle(from, msg);
            self.absorb(to, step);
        }
        true
    }

    pub fn run(&mut self, limit: usize) {
        while self.crank() {
            assert!(self.delivered < limit, "message limit exceeded: livelock?");
        }
    }

    pub fn faults_against(&self, node: NodeId) -> usize {
        self.faults
            .values()
            .flatten()
            .filter(|f| f.node == node)
            .count()
    }
}
