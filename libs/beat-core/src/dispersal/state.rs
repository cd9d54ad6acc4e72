//! Dispersal state machine.

use std::{collections::BTreeMap, sync::Arc};

use beat_crypto::{
    Digest,
    avid_fp::{AvidFpCode, Fpcc, Fragment},
};
use beat_types::{Committee, NodeId};
use bytes::Bytes;

use super::Message;
use crate::{Fault, FaultKind, Step};

/// A completed dispersal, as seen by one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispersed {
    /// The agreed cross-checksum.
    pub fpcc: Fpcc,
    /// This replica's verified fragments (empty if the proposer never sent valid ones).
    pub fragments: Vec<Fragment>,
}

/// One AVID-FP dispersal instance, as seen by one replica.
#[derive(Debug)]
pub struct Dispersal {
    our_id: NodeId,
    proposer: NodeId,
    committee: Committee,
    code: Arc<AvidFpCode>,
    /// The proposer's VAL (digest) and the fragments it gave us, once verified.
    val: Option<(Digest, Vec<Fragment>)>,
    echo_sent: bool,
    ready_sent: bool,
    echoes: BTreeMap<NodeId, Digest>,
    echo_counts: BTreeMap<Digest, usize>,
    /// Cross-checksums seen in VAL/ECHO, by digest (at most one per sender).
    fpccs: BTreeMap<Digest, Fpcc>,
    readies: BTreeMap<NodeId, Digest>,
    ready_counts: BTreeMap<Digest, usize>,
    delivered: bool,
}

type DispersalStep = Step<Message, Dispersed>;

impl Dispersal {
    /// Creates the instance of `proposer`'s dispersal at `our_id`.
    pub fn new(
        our_id: NodeId,
        proposer: NodeId,
        committee: Committee,
        code: Arc<AvidFpCode>,
    ) -> Self {
        Self {
            our_id,
            proposer,
            committee,
            code,
            val: None,
            echo_sent: false,
            ready_sent: false,
            echoes: BTreeMap::new(),
            echo_counts: BTreeMap::new(),
            fpccs: BTreeMap::new(),
            readies: BTreeMap::new(),
            ready_counts: BTreeMap::new(),
            delivered: false,
        }
    }

    /// The cross-checksum with digest `commitment` and this replica's fragments verified against
    /// it, if the proposer's `Val` to this replica carried that cross-checksum. A replica that
    /// adopts the epoch through catch-up keeps them (they count toward the `k` every agreed
    /// dispersal needs for retrieval).
    pub fn fragments_for(&self, commitment: &Digest) -> Option<Dispersed> {
        let (digest, fragments) = self.val.as_ref()?;
        if digest != commitment {
            return None;
        }
        Some(Dispersed {
            fpcc: self.fpccs.get(digest)?.clone(),
            fragments: fragments.clone(),
        })
    }

    /// D1: disperses `value`. Only the proposer calls this.
    pub fn propose(&mut self, value: Bytes) -> DispersalStep {
        let mut step = Step::default();
        if self.our_id != self.proposer || self.val.is_some() {
            return step;
        }
        let Ok((fpcc, fragments)) = self.code.disperse(&value) else {
            // Values are bounded by the caller below the code's limit.
            return step;
        };
        let mut per_holder: BTreeMap<usize, Vec<Fragment>> = BTreeMap::new();
        for f in fragments {
            if let Some(holder) = self.code.holder_of(f.index as usize) {
                per_holder.entry(holder).or_default().push(f);
            }
        }
        let mut own = Vec::new();
        for (holder, fragments) in per_holder {
            let id = NodeId::from_index(holder);
            if id == self.our_id {
                own = fragments;
            } else {
                step.send(
                    id,
                    Message::Val {
                        fpcc: fpcc.clone(),
                        fragments,
                    },
                );
            }
        }
        step.extend(self.on_val(self.our_id, fpcc, own));
        step
    }

    /// Handles a message from `sender`.
    pub fn handle_message(&mut self, sender: NodeId, message: Message) -> DispersalStep {
        if self.delivered {
            return Step::default();
        }
        match message {
            Message::Val { fpcc, fragments } => self.on_val(sender, fpcc, fragments),
            Message::Echo(fpcc) => self.on_echo(sender, fpcc),
            Message::Ready(d) => self.on_ready(sender, d),
        }
    }

    fn fault(node: NodeId, kind: FaultKind) -> DispersalStep {
        let mut step = Step::default();
        step.fault(Fault::new(node, kind));
        step
    }

    /// The fragment indices this replica holds.
    fn ours(&self) -> Vec<u32> {
        (0..self.code.fragment_count())
            .filter(|i| self.code.holder_of(*i) == Some(self.our_id.index()))
            .map(|i| i as u32)
            .collect()
    }

    // D2
    fn on_val(&mut self, sender: NodeId, fpcc: Fpcc, fragments: Vec<Fragment>) -> DispersalStep {
        if sender != self.proposer {
            return Self::fault(sender, FaultKind::ValueFromNonProposer);
        }
        if fpcc.validate(&self.code).is_err() {
            return Self::fault(sender, FaultKind::InvalidCrossChecksum);
        }
        let digest = fpcc.digest();
        if let Some((seen, _)) = &self.val {
            return if *seen == digest {
                Step::default()
            } else {
                Self::fault(sender, FaultKind::ConflictingVal)
            };
        }
        let mut indices: Vec<u32> = fragments.iter().map(|f| f.index).collect();
        indices.sort_unstable();
        let valid = indices == self.ours()
            && fragments
                .iter()
                .all(|f| self.code.verify_fragment(&fpcc, f).is_ok());
        if !valid {
            return Self::fault(sender, FaultKind::InvalidFragment);
        }
        self.val = Some((digest, fragments));
        self.fpccs.entry(digest).or_insert_with(|| fpcc.clone());
        let mut step = Step::default();
        if !self.echo_sent {
            self.echo_sent = true;
            step.broadcast(Message::Echo(fpcc.clone()));
            step.extend(self.on_echo(self.our_id, fpcc));
        }
        step
    }

    // D3, D4
    fn on_echo(&mut self, sender: NodeId, fpcc: Fpcc) -> DispersalStep {
        if fpcc.validate(&self.code).is_err() {
            return Self::fault(sender, FaultKind::InvalidCrossChecksum);
        }
        let digest = fpcc.digest();
        match self.echoes.get(&sender) {
            Some(d) if *d == digest => return Step::default(),
            Some(_) => return Self::fault(sender, FaultKind::ConflictingEcho),
            None => {}
        }
        self.echoes.insert(sender, digest);
        self.fpccs.entry(digest).or_insert(fpcc);
        let count = self.echo_counts.entry(digest).or_default();
        *count += 1;
        let count = *count;
        let mut step = Step::default();
        if count >= self.committee.quorum() {
            step.extend(self.send_ready(digest));
        }
        step.extend(self.try_deliver(digest));
        step
    }

    // D4 (amplification), D5
    fn on_ready(&mut self, sender: NodeId, digest: Digest) -> DispersalStep {
        match self.readies.get(&sender) {
            Some(d) if *d == digest => return Step::default(),
            Some(_) => return Self::fault(sender, FaultKind::ConflictingReady),
            None => {}
        }
        self.readies.insert(sender, digest);
        let count = self.ready_counts.entry(digest).or_default();
        *count += 1;
        let count = *count;
        let mut step = Step::default();
        if count >= self.committee.f_plus_one() {
            step.extend(self.send_ready(digest));
        }
        step.extend(self.try_deliver(digest));
        step
    }

    fn send_ready(&mut self, digest: Digest) -> DispersalStep {
        let mut step = Step::default();
        if !self.ready_sent {
            self.ready_sent = true;
            step.broadcast(Message::Ready(digest));
            step.extend(self.on_ready(self.our_id, digest));
        }
        step
    }

    // D5
    fn try_deliver(&mut self, digest: Digest) -> DispersalStep {
        let mut step = Step::default();
        if self.delivered
            || self.ready_counts.get(&digest).copied().unwrap_or(0)
                < self.committee.two_f_plus_one()
        {
            return step;
        }
        let Some(fpcc) = self.fpccs.get(&digest).cloned() else {
            return step;
        };
        self.delivered = true;
        let fragments = match self.val.take() {
            Some((d, fragments)) if d == digest => fragments,
            _ => Vec::new(),
        };
        self.fpccs.clear();
        step.output(Dispersed { fpcc, fragments });
        step
    }
}
