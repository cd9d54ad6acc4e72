//! Bracha broadcast state machine.

use std::collections::BTreeMap;

use beat_crypto::{Digest, hash::hash};
use beat_types::{Committee, NodeId};
use bytes::Bytes;

use super::Message;
use crate::{Fault, FaultKind, Step};

const VALUE_DIGEST_DST: &[u8] = b"_BEAT_CORE_BRACHA_VALUE";

/// The digest a `Ready` carries for `value` (B3).
pub fn digest(value: &[u8]) -> Digest {
    hash(VALUE_DIGEST_DST, value)
}

/// One Bracha broadcast instance, as seen by one replica.
#[derive(Debug)]
pub struct Bracha {
    our_id: NodeId,
    proposer: NodeId,
    committee: Committee,
    max_value_len: usize,
    /// Digest of the proposer's VAL, once received.
    val: Option<Digest>,
    echo_sent: bool,
    ready_sent: bool,
    /// Each replica's echo (one per replica).
    echoes: BTreeMap<NodeId, Digest>,
    /// Each replica's ready (one per replica).
    readies: BTreeMap<NodeId, Digest>,
    echo_counts: BTreeMap<Digest, usize>,
    ready_counts: BTreeMap<Digest, usize>,
    /// Values seen in VAL/ECHO messages, by digest. At most one per sender, so at most n.
    values: BTreeMap<Digest, Bytes>,
    delivered: bool,
}

impl Bracha {
    /// Creates the instance of `proposer`'s broadcast at replica `our_id`.
    pub fn new(
        our_id: NodeId,
        proposer: NodeId,
        committee: Committee,
        max_value_len: usize,
    ) -> Self {
        Self {
            our_id,
            proposer,
            committee,
            max_value_len,
            val: None,
            echo_sent: false,
            ready_sent: false,
            echoes: BTreeMap::new(),
            readies: BTreeMap::new(),
            echo_counts: BTreeMap::new(),
            ready_counts: BTreeMap::new(),
            values: BTreeMap::new(),
            delivered: false,
        }
    }

    /// Returns `true` once the value has been delivered.
    pub fn is_delivered(&self) -> bool {
        self.delivered
    }

    /// Broadcasts `value`; only the proposer calls this (B1).
    pub fn propose(&mut self, value: Bytes) -> Step<Message, Bytes> {
        let mut step = Step::default();
        if self.our_id != self.proposer || self.val.is_some() {
            return step;
        }
        step.broadcast(Message::Val(value.clone()));
        step.extend(self.on_val(self.our_id, value));
        step
    }

    /// Handles a message from `sender`.
    pub fn handle_message(&mut self, sender: NodeId, message: Message) -> Step<Message, Bytes> {
        if self.delivered {
            // Everything this replica had to send it has sent; later messages change nothing.
            return Step::default();
        }
        match message {
            Message::Val(value) => self.on_val(sender, value),
            Message::Echo(value) => self.on_echo(sender, value),
            Message::Ready(d) => self.on_ready(sender, d),
        }
    }

    fn fault(sender: NodeId, kind: FaultKind) -> Step<Message, Bytes> {
        let mut step = Step::default();
        step.fault(Fault::new(sender, kind));
        step
    }

    // B2
    fn on_val(&mut self, sender: NodeId, value: Bytes) -> Step<Message, Bytes> {
        if sender != self.proposer {
            return Self::fault(sender, FaultKind::ValueFromNonProposer);
        }
        if value.len() > self.max_value_len {
            return Self::fault(sender, FaultKind::OversizedValue);
        }
        let d = digest(&value);
        match self.val {
            Some(seen) if seen == d => return Step::default(),
            Some(_) => return Self::fault(sender, FaultKind::ConflictingVal),
            None => self.val = Some(d),
        }
        self.values.entry(d).or_insert_with(|| value.clone());
        let mut step = Step::default();
        if !self.echo_sent {
            self.echo_sent = true;
            step.broadcast(Message::Echo(value.clone()));
            step.extend(self.on_echo(self.our_id, value));
        }
        step
    }

    // B3 (echo quorum)
    fn on_echo(&mut self, sender: NodeId, value: Bytes) -> Step<Message, Bytes> {
        if value.len() > self.max_value_len {
            return Self::fault(sender, FaultKind::OversizedValue);
        }
        let d = digest(&value);
        match self.echoes.get(&sender) {
            Some(seen) if *seen == d => return Step::default(),
            Some(_) => return Self::fault(sender, FaultKind::ConflictingEcho),
            None => {}
        }
        self.echoes.insert(sender, d);
        self.values.entry(d).or_insert(value);
        let mut step = Step::default();
        let count = self.echo_counts.entry(d).or_default();
        *count += 1;
        if *count >= self.committee.echo_threshold() {
            step.extend(self.send_ready(d));
        }
        if self.ready_counts.get(&d).copied().unwrap_or(0) >= self.committee.two_f_plus_one() {
            step.extend(self.try_deliver(d));
        }
        step
    }

    // B3 (amplification) and B4
    fn on_ready(&mut self, sender: NodeId, d: Digest) -> Step<Message, Bytes> {
        match self.readies.get(&sender) {
            Some(seen) if *seen == d => return Step::default(),
            Some(_) => return Self::fault(sender, FaultKind::ConflictingReady),
            None => {}
        }
        self.readies.insert(sender, d);
        let count = self.ready_counts.entry(d).or_default();
        *count += 1;
        let count = *count;
        let mut step = Step::default();
        if count >= self.committee.f_plus_one() {
            step.extend(self.send_ready(d));
        }
        if count >= self.committee.two_f_plus_one() {
            step.extend(self.try_deliver(d));
        }
        step
    }

    fn send_ready(&mut self, d: Digest) -> Step<Message, Bytes> {
        let mut step = Step::default();
        if !self.ready_sent {
            self.ready_sent = true;
            step.broadcast(Message::Ready(d));
            step.extend(self.on_ready(self.our_id, d));
        }
        step
    }

    /// B4: `d` has 2f+1 READYs; deliver once its value is known.
    fn try_deliver(&mut self, d: Digest) -> Step<Message, Bytes> {
        let mut step = Step::default();
        if self.delivered {
            return step;
        }
        if let Some(value) = self.values.get(&d) {
            self.delivered = true;
            step.output(value.clone());
            // Values of other digests can never be delivered now; free them.
            self.values.clear();
        }
        step
    }
}
