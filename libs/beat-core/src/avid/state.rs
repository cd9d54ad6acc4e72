//! AVID broadcast state machine.

use std::{collections::BTreeMap, sync::Arc};

use beat_crypto::{
    Digest,
    erasure::ErasureCoder,
    merkle::{MerkleProof, VerifiedLeaf},
};
use beat_types::{Committee, NodeId};
use bytes::Bytes;

use super::Message;
use crate::{Fault, FaultKind, Step};

/// What an AVID instance delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AvidOutput {
    /// The proposer's value.
    Value(Bytes),
    /// ⊥: the proposer dispersed shards that are not a codeword of a canonically framed value.
    Undecodable,
}

/// One AVID broadcast instance, as seen by one replica.
#[derive(Debug)]
pub struct Avid {
    our_id: NodeId,
    proposer: NodeId,
    committee: Committee,
    coder: Arc<ErasureCoder>,
    max_shard_len: usize,
    val: Option<Digest>,
    echo_sent: bool,
    ready_sent: bool,
    /// Each replica's echoed shard (one per replica) under its root, with the leaf hash its
    /// proof check computed (reused when the tree is rebuilt on delivery).
    echoes: BTreeMap<NodeId, (Digest, VerifiedLeaf)>,
    echo_counts: BTreeMap<Digest, usize>,
    readies: BTreeMap<NodeId, Digest>,
    ready_counts: BTreeMap<Digest, usize>,
    delivered: bool,
}

type AvidStep = Step<Message, AvidOutput>;

impl Avid {
    /// Creates the instance of `proposer`'s broadcast at `our_id`; values are at most
    /// `max_value_len` bytes.
    pub fn new(
        our_id: NodeId,
        proposer: NodeId,
        committee: Committee,
        coder: Arc<ErasureCoder>,
        max_value_len: usize,
    ) -> Self {
        let max_shard_len = coder.shard_len(max_value_len);
        Self {
            our_id,
            proposer,
            committee,
            coder,
            max_shard_len,
            val: None,
            echo_sent: false,
            ready_sent: false,
            echoes: BTreeMap::new(),
            echo_counts: BTreeMap::new(),
            readies: BTreeMap::new(),
            ready_counts: BTreeMap::new(),
            delivered: false,
        }
    }

    /// V1: encodes `value` and sends each replica its shard. Only the proposer calls this.
    pub fn propose(&mut self, value: Bytes) -> AvidStep {
        let mut step = Step::default();
        if self.our_id != self.proposer || self.val.is_some() {
            return step;
        }
        let Ok(encoded) = self.coder.encode(&value) else {
            // Values are bounded by the caller below the coder's limit; an oversized one is
            // dropped rather than proposed.
            return step;
        };
        let root = encoded.root();
        let mut own = None;
        for (i, shard) in encoded.shards.iter().enumerate() {
            let Some(proof) = encoded.proof(i) else {
                continue;
            };
            let shard = Bytes::from(shard.clone());
            let id = NodeId::from_index(i);
            if id == self.our_id {
                own = Some((proof, shard));
            } else {
                step.send(id, Message::Val { root, proof, shard });
            }
        }
        if let Some((proof, shard)) = own {
            step.extend(self.on_val(self.our_id, root, proof, shard));
        }
        step
    }

    /// Handles a message from `sender`.
    pub fn handle_message(&mut self, sender: NodeId, message: Message) -> AvidStep {
        if self.delivered {
            return Step::default();
        }
        match message {
            Message::Val { root, proof, shard } => self.on_val(sender, root, proof, shard),
            Message::Echo { root, proof, shard } => self.on_echo(sender, root, proof, shard),
            Message::Ready(root) => self.on_ready(sender, root),
        }
    }

    fn fault(node: NodeId, kind: FaultKind) -> AvidStep {
        let mut step = Step::default();
        step.fault(Fault::new(node, kind));
        step
    }

    /// Checks that `shard` is leaf `index` under `root`.
    fn valid_shard(
        &self,
        root: &Digest,
        proof: &MerkleProof,
        shard: Bytes,
        index: NodeId,
    ) -> Option<VerifiedLeaf> {
        if proof.index != index.0 {
            return None;
        }
        proof.verify_leaf(root, shard, self.committee.n())
    }

    // V2
    fn on_val(
        &mut self,
        sender: NodeId,
        root: Digest,
        proof: MerkleProof,
        shard: Bytes,
    ) -> AvidStep {
        if sender != self.proposer {
            return Self::fault(sender, FaultKind::ValueFromNonProposer);
        }
        if shard.len() > self.max_shard_len {
            return Self::fault(sender, FaultKind::OversizedValue);
        }
        let Some(leaf) = self.valid_shard(&root, &proof, shard.clone(), self.our_id) else {
            return Self::fault(sender, FaultKind::InvalidShard);
        };
        match self.val {
            Some(seen) if seen == root => return Step::default(),
            Some(_) => return Self::fault(sender, FaultKind::ConflictingVal),
            None => self.val = Some(root),
        }
        let mut step = Step::default();
        if !self.echo_sent {
            self.echo_sent = true;
            step.broadcast(Message::Echo { root, proof, shard });
            // Our own echo: its proof was just checked.
            step.extend(self.record_echo(self.our_id, root, leaf));
        }
        step
    }

    // V3, V4
    fn on_echo(
        &mut self,
        sender: NodeId,
        root: Digest,
        proof: MerkleProof,
        shard: Bytes,
    ) -> AvidStep {
        if shard.len() > self.max_shard_len {
            return Self::fault(sender, FaultKind::OversizedValue);
        }
        let Some(leaf) = self.valid_shard(&root, &proof, shard, sender) else {
            return Self::fault(sender, FaultKind::InvalidShard);
        };
        self.record_echo(sender, root, leaf)
    }

    // V3, V4, for a shard whose proof verified.
    fn record_echo(&mut self, sender: NodeId, root: Digest, leaf: VerifiedLeaf) -> AvidStep {
        match self.echoes.get(&sender) {
            Some((r, l)) if *r == root && l.bytes() == leaf.bytes() => return Step::default(),
            Some(_) => return Self::fault(sender, FaultKind::ConflictingEcho),
            None => {}
        }
        self.echoes.insert(sender, (root, leaf));
        let count = self.echo_counts.entry(root).or_default();
        *count += 1;
        let count = *count;
        let mut step = Step::default();
        if count >= self.committee.quorum() {
            step.extend(self.send_ready(root));
        }
        step.extend(self.try_deliver(root));
        step
    }

    // V4 (amplification), V5
    fn on_ready(&mut self, sender: NodeId, root: Digest) -> AvidStep {
        match self.readies.get(&sender) {
            Some(r) if *r == root => return Step::default(),
            Some(_) => return Self::fault(sender, FaultKind::ConflictingReady),
            None => {}
        }
        self.readies.insert(sender, root);
        let count = self.ready_counts.entry(root).or_default();
        *count += 1;
        let count = *count;
        let mut step = Step::default();
        if count >= self.committee.f_plus_one() {
            step.extend(self.send_ready(root));
        }
        step.extend(self.try_deliver(root));
        step
    }

    fn send_ready(&mut self, root: Digest) -> AvidStep {
        let mut step = Step::default();
        if !self.ready_sent {
            self.ready_sent = true;
            step.broadcast(Message::Ready(root));
            step.extend(self.on_ready(self.our_id, root));
        }
        step
    }

    // V5
    fn try_deliver(&mut self, root: Digest) -> AvidStep {
        let mut step = Step::default();
        if self.delivered
            || self.ready_counts.get(&root).copied().unwrap_or(0) < self.committee.two_f_plus_one()
            || self.echo_counts.get(&root).copied().unwrap_or(0) < self.coder.k()
        {
            return step;
        }
        let leaves: Vec<&VerifiedLeaf> = self
            .echoes
            .values()
            .filter(|(r, _)| *r == root)
            .map(|(_, leaf)| leaf)
            .take(self.coder.k())
            .collect();
        let output = match self.coder.decode_verified_leaves(&leaves, &root) {
            Ok(value) => AvidOutput::Value(Bytes::from(value)),
            Err(e) if e.is_proposer_fault() => {
                step.fault(Fault::new(self.proposer, FaultKind::UndecodableValue));
                AvidOutput::Undecodable
            }
            // Shards whose proofs verified against one root cannot produce any other error;
            // wait rather than deliver something unjustified.
            Err(_) => return step,
        };
        self.delivered = true;
        self.echoes.clear();
        step.output(output);
        step
    }
}
