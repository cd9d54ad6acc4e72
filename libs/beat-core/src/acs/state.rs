//! Asynchronous common subset state machine.

use std::{collections::BTreeMap, sync::Arc};

use beat_crypto::bls;
use beat_types::{Committee, Epoch, NodeId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{
    Step,
    aba::{self, BinaryAgreement},
    broadcast::{Broadcast, BroadcastConfig, BroadcastMessage, Delivered},
};

/// A message of the common subset: to one proposer's broadcast or binary agreement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubsetMessage {
    /// For the broadcast of `proposer`'s contribution.
    Broadcast {
        /// Whose broadcast.
        proposer: NodeId,
        /// The message.
        message: BroadcastMessage,
    },
    /// For the agreement on including `proposer`'s contribution.
    Agreement {
        /// Whose agreement.
        proposer: NodeId,
        /// The message.
        message: aba::Message,
    },
}

/// The agreed subset: the delivered value of every included proposer, in proposer order.
pub type SubsetOutput = Vec<(NodeId, Delivered)>;

/// One epoch's common subset, as seen by one replica.
#[derive(Debug)]
pub struct Subset {
    committee: Committee,
    broadcasts: BTreeMap<NodeId, Broadcast>,
    agreements: BTreeMap<NodeId, BinaryAgreement>,
    delivered: BTreeMap<NodeId, Delivered>,
    decisions: BTreeMap<NodeId, bool>,
    proposed: bool,
    done: bool,
}

impl Subset {
    /// Creates the subset of `epoch` at replica `our_id`.
    pub fn new(
        our_id: NodeId,
        committee: Committee,
        epoch: Epoch,
        broadcast: &BroadcastConfig,
        coin_keys: Arc<bls::PublicKeySet>,
        max_future_rounds: u32,
    ) -> Self {
        let broadcasts = committee
            .members()
            .map(|p| (p, Broadcast::new(broadcast, our_id, p)))
            .collect();
        let agreements = committee
            .members()
            .map(|p| {
                let aba = BinaryAgreement::new(
                    our_id,
                    committee,
                    coin_keys.clone(),
                    epoch,
                    p,
                    max_future_rounds,
                );
                (p, aba)
            })
            .collect();
        Self {
            committee,
            broadcasts,
            agreements,
            delivered: BTreeMap::new(),
            decisions: BTreeMap::new(),
            proposed: false,
            done: false,
        }
    }

    /// Returns `true` once this replica has proposed.
    pub fn has_proposed(&self) -> bool {
        self.proposed
    }

    /// Returns `true` once the subset was output.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// `proposer`'s dispersal under the cross-checksum `commitment` as this replica holds it:
    /// delivered, or still in progress with a verified `Val`.
    pub fn dispersed_fragments(
        &self,
        proposer: NodeId,
        commitment: &beat_crypto::Digest,
    ) -> Option<crate::dispersal::Dispersed> {
        match self.delivered.get(&proposer) {
            Some(Delivered::Dispersed(d)) if d.fpcc.digest() == *commitment => Some(d.clone()),
            _ => self
                .broadcasts
                .get(&proposer)
                .and_then(|b| b.dispersed_fragments(commitment)),
        }
    }

    /// The agreements that have not decided yet, with their rounds.
    pub fn undecided_agreements(&self) -> Vec<(NodeId, u32)> {
        self.agreements
            .iter()
            .filter(|(_, a)| a.decision().is_none())
            .map(|(p, a)| (*p, a.round()))
            .collect()
    }

    /// The broadcasts delivered here so far.
    pub fn delivered(&self) -> usize {
        self.delivered.len()
    }

    /// The proposers whose agreement has decided so far (for status reporting).
    pub fn decided(&self) -> usize {
        self.decisions.len()
    }

    /// Coin shares requested from the keystore and not received yet.
    pub fn pending_coin_requests(&self) -> Vec<crate::CoinId> {
        self.agreements
            .values()
            .flat_map(BinaryAgreement::pending_coin_requests)
            .collect()
    }

    /// Ends this subset at this replica (its epoch is over): every agreement stops
    /// participating and only keeps what it owes others (relays, late coin shares). Returns
    /// them.
    pub fn into_agreements(self) -> BTreeMap<NodeId, BinaryAgreement> {
        let mut agreements = self.agreements;
        for aba in agreements.values_mut() {
            aba.retire();
        }
        agreements
    }

    /// S1: broadcasts this replica's proposal.
    pub fn propose(&mut self, our_id: NodeId, value: Bytes) -> Step<SubsetMessage, SubsetOutput> {
        let mut step = Step::default();
        if self.proposed {
            return step;
        }
        self.proposed = true;
        if let Some(bc) = self.broadcasts.get_mut(&our_id) {
            let sub = bc.propose(value);
            let out = sub.absorb_into(&mut step, wrap_broadcast(our_id));
            self.on_delivered(our_id, out, &mut step);
        }
        step
    }

    /// Handles a message from `sender`.
    pub fn handle_message(
        &mut self,
        sender: NodeId,
        message: SubsetMessage,
    ) -> Step<SubsetMessage, SubsetOutput> {
        let mut step = Step::default();
        match message {
            // Once the subset is output, no broadcast is needed any more: every included
            // proposer's value was delivered here, so this replica already sent everything
            // the broadcast asks of it.
            SubsetMessage::Broadcast { .. } if self.done => {}
            SubsetMessage::Broadcast { proposer, message } => {
                if let Some(bc) = self.broadcasts.get_mut(&proposer) {
                    let sub = bc.handle_message(sender, message);
                    let out = sub.absorb_into(&mut step, wrap_broadcast(proposer));
                    self.on_delivered(proposer, out, &mut step);
                }
            }
            SubsetMessage::Agreement { proposer, message } => {
                if let Some(aba) = self.agreements.get_mut(&proposer) {
                    let sub = aba.handle_message(sender, message);
                    let out = sub.absorb_into(&mut step, wrap_agreement(proposer));
                    self.on_decided(proposer, out, &mut step);
                }
            }
        }
        step
    }

    /// Routes this replica's own coin share (from the keystore) to agreement `instance`.
    pub fn handle_coin_share(
        &mut self,
        instance: NodeId,
        round: u32,
        share: bls::SignatureShare,
    ) -> Step<SubsetMessage, SubsetOutput> {
        let mut step = Step::default();
        if let Some(aba) = self.agreements.get_mut(&instance) {
            let sub = aba.handle_coin_share(round, share);
            let out = sub.absorb_into(&mut step, wrap_agreement(instance));
            self.on_decided(instance, out, &mut step);
        }
        step
    }

    // S2
    fn on_delivered(
        &mut self,
        proposer: NodeId,
        delivered: Vec<Delivered>,
        step: &mut Step<SubsetMessage, SubsetOutput>,
    ) {
        for value in delivered {
            self.delivered.insert(proposer, value);
            if let Some(aba) = self.agreements.get_mut(&proposer)
                && aba.accepts_input()
            {
                let sub = aba.propose(true);
                let out = sub.absorb_into(step, wrap_agreement(proposer));
                self.on_decided(proposer, out, step);
            }
        }
        self.try_output(step);
    }

    // S3
    fn on_decided(
        &mut self,
        proposer: NodeId,
        decisions: Vec<bool>,
        step: &mut Step<SubsetMessage, SubsetOutput>,
    ) {
        for b in decisions {
            self.decisions.insert(proposer, b);
            if !b {
                // hbbft issue 313: nobody needs this broadcast any more.
                self.broadcasts.remove(&proposer);
                self.delivered.remove(&proposer);
            }
        }
        let ones = self.decisions.values().filter(|b| **b).count();
        if ones >= self.committee.quorum() {
            let undecided: Vec<NodeId> = self
                .agreements
                .iter()
                .filter(|(_, a)| a.accepts_input())
                .map(|(p, _)| *p)
                .collect();
            for p in undecided {
                if let Some(aba) = self.agreements.get_mut(&p) {
                    let sub = aba.propose(false);
                    let out = sub.absorb_into(step, wrap_agreement(p));
                    // Recursion depth is bounded by n: each call decides at most one instance.
                    self.on_decided(p, out, step);
                }
            }
        }
        self.try_output(step);
    }

    // S4
    fn try_output(&mut self, step: &mut Step<SubsetMessage, SubsetOutput>) {
        if self.done || self.decisions.len() < self.committee.n() {
            return;
        }
        let included: Vec<NodeId> = self
            .decisions
            .iter()
            .filter(|(_, b)| **b)
            .map(|(p, _)| *p)
            .collect();
        if !included.iter().all(|p| self.delivered.contains_key(p)) {
            return;
        }
        self.done = true;
        let output = included
            .into_iter()
            .filter_map(|p| self.delivered.remove(&p).map(|v| (p, v)))
            .collect();
        step.output(output);
        // Every agreement decided, so each now only relays (R1 in module `aba`); they stay
        // to answer for their rounds.
        self.broadcasts.clear();
    }
}

fn wrap_broadcast(proposer: NodeId) -> impl Fn(BroadcastMessage) -> SubsetMessage {
    move |message| SubsetMessage::Broadcast { proposer, message }
}

fn wrap_agreement(proposer: NodeId) -> impl Fn(aba::Message) -> SubsetMessage {
    move |message| SubsetMessage::Agreement { proposer, message }
}
