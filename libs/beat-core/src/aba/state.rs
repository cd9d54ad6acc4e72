//! Binary agreement state machine.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use beat_crypto::bls;
use beat_types::{Committee, Epoch, NodeId};

use serde::{Deserialize, Serialize};

use super::{BoolSet, Message};
use crate::{CoinId, Fault, FaultKind, Request, Step};

/// The decided bit.
pub type AbaOutput = bool;

/// The BVAL senders of one round and the BVALs this replica sent in it: the part of a round
/// that outlives it, because the relay rule R1 keeps applying to it (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BvalRound {
    /// Senders of BVAL(b), indexed by b.
    senders: [BTreeSet<NodeId>; 2],
    /// Whether this replica sent BVAL(b), indexed by b.
    sent: [bool; 2],
}

/// What a binary agreement instance still owes others once it only relays (decided, or its
/// epoch is over): kept in checkpoints, restored with [`BinaryAgreement::from_relay`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementRelay {
    decision: Option<bool>,
    terms: [BTreeSet<NodeId>; 2],
    bvals: BTreeMap<u32, BvalRound>,
    requested_coins: BTreeSet<u32>,
}

/// Per-round state.
#[derive(Debug, Default)]
struct RoundState {
    bval: BvalRound,
    bin_values: BoolSet,
    aux: BTreeMap<NodeId, bool>,
    aux_sent: bool,
    /// A4 result.
    vals: Option<BoolSet>,
    conf: BTreeMap<NodeId, BoolSet>,
    conf_sent: bool,
    /// A6 result.
    conf_vals: Option<BoolSet>,
    coin_shares: BTreeMap<NodeId, bls::SignatureShare>,
    /// Senders whose share failed verification in this round; further shares are ignored.
    bad_coin_senders: BTreeSet<NodeId>,
    share_requested: bool,
    coin_message: Option<bls::HashedMessage>,
    coin: Option<bool>,
}

/// One binary agreement instance, as seen by one replica.
#[derive(Debug)]
pub struct BinaryAgreement {
    our_id: NodeId,
    committee: Committee,
    coin_keys: Arc<bls::PublicKeySet>,
    epoch: Epoch,
    instance: NodeId,
    max_future_rounds: u32,
    round: u32,
    estimate: Option<bool>,
    decision: Option<bool>,
    /// Set once the instance decided or was retired: it then only relays (R1) and releases
    /// late coin shares (R2).
    relay_only: bool,
    /// Senders of TERM(b), indexed by b.
    terms: [BTreeSet<NodeId>; 2],
    /// The current round and buffered future rounds (while participating).
    rounds: BTreeMap<u32, RoundState>,
    /// BVAL bookkeeping of the rounds this replica left, and of every round once it only
    /// relays (R1).
    past: BTreeMap<u32, BvalRound>,
    /// Rounds whose coin share was requested from the keystore and has not come back (R2).
    requested_coins: BTreeSet<u32>,
}

fn idx(b: bool) -> usize {
    usize::from(b)
}

impl BinaryAgreement {
    /// Creates instance `instance` of `epoch` at replica `our_id`.
    pub fn new(
        our_id: NodeId,
        committee: Committee,
        coin_keys: Arc<bls::PublicKeySet>,
        epoch: Epoch,
        instance: NodeId,
        max_future_rounds: u32,
    ) -> Self {
        Self {
            our_id,
            committee,
            coin_keys,
            epoch,
            instance,
            max_future_rounds,
            round: 0,
            estimate: None,
            decision: None,
            relay_only: false,
            terms: Default::default(),
            rounds: BTreeMap::new(),
            past: BTreeMap::new(),
            requested_coins: BTreeSet::new(),
        }
    }

    /// Restores an instance that only relays, from [`Self::relay`] (a checkpoint).
    pub fn from_relay(
        our_id: NodeId,
        committee: Committee,
        coin_keys: Arc<bls::PublicKeySet>,
        epoch: Epoch,
        instance: NodeId,
        max_future_rounds: u32,
        relay: AgreementRelay,
    ) -> Self {
        let mut aba = Self::new(
            our_id,
            committee,
            coin_keys,
            epoch,
            instance,
            max_future_rounds,
        );
        aba.relay_only = true;
        aba.decision = relay.decision;
        aba.estimate = relay.decision;
        aba.terms = relay.terms;
        aba.round = relay.bvals.keys().next_back().copied().unwrap_or(0);
        aba.past = relay.bvals;
        aba.requested_coins = relay.requested_coins;
        aba
    }

    /// What this instance still owes others, if it only relays (decided or retired).
    pub fn relay(&self) -> Option<AgreementRelay> {
        self.relay_only.then(|| AgreementRelay {
            decision: self.decision,
            terms: self.terms.clone(),
            bvals: self.past.clone(),
            requested_coins: self.requested_coins.clone(),
        })
    }

    /// The decision, once made.
    pub fn decision(&self) -> Option<bool> {
        self.decision
    }

    /// Returns `true` once decided. A decided instance takes part in no further round; it
    /// keeps relaying BVAL votes (R1) and releasing late coin shares (R2).
    pub fn is_terminated(&self) -> bool {
        self.decision.is_some()
    }

    /// Returns `true` while the instance still takes an input: round 0 and no estimate yet.
    pub fn accepts_input(&self) -> bool {
        !self.relay_only && self.round == 0 && self.estimate.is_none()
    }

    /// The current round (for status and tests).
    pub fn round(&self) -> u32 {
        self.round
    }

    /// Coin shares this instance asked the keystore for and has not received yet, however old
    /// their round (R2: each must still be released when it arrives).
    pub fn pending_coin_requests(&self) -> impl Iterator<Item = CoinId> + '_ {
        self.requested_coins.iter().map(|&round| CoinId {
            epoch: self.epoch,
            instance: self.instance,
            round,
        })
    }

    /// Stops participating without a decision (its epoch ended through catch-up): from now on
    /// the instance only relays (R1) and releases late coin shares (R2).
    pub fn retire(&mut self) {
        if self.relay_only {
            return;
        }
        self.relay_only = true;
        for (round, rs) in std::mem::take(&mut self.rounds) {
            self.past.insert(round, rs.bval);
        }
    }

    /// Sets the input (A1 of round 0). Ignored unless [`Self::accepts_input`].
    pub fn propose(&mut self, value: bool) -> Step<Message, AbaOutput> {
        let mut step = Step::default();
        if !self.accepts_input() {
            return step;
        }
        self.estimate = Some(value);
        self.send_bval(0, value, &mut step);
        self.progress(&mut step);
        step
    }

    /// Handles a message from `sender`.
    pub fn handle_message(&mut self, sender: NodeId, message: Message) -> Step<Message, AbaOutput> {
        let mut step = Step::default();
        if !self.committee.contains(sender) {
            return step;
        }
        if self.relay_only {
            match message {
                Message::BVal { round, value } => {
                    self.on_past_bval(sender, round, value, &mut step)
                }
                Message::Term(b) => {
                    self.record_term(sender, b, &mut step);
                }
                // Nothing else is owed once the instance only relays.
                Message::Aux { .. } | Message::Conf { .. } | Message::Coin { .. } => {}
            }
            return step;
        }
        match message {
            Message::Term(b) => self.on_term(sender, b, &mut step),
            Message::BVal { round, value } if round < self.round => {
                self.on_past_bval(sender, round, value, &mut step);
            }
            Message::BVal { round, value } => {
                if let Some(rs) = self.round_state(round) {
                    rs.bval.senders[idx(value)].insert(sender);
                }
            }
            Message::Aux { round, value } => {
                if let Some(rs) = self.round_state(round) {
                    match rs.aux.get(&sender) {
                        Some(v) if *v != value => {
                            step.fault(Fault::new(sender, FaultKind::ConflictingAux));
                        }
                        Some(_) => {}
                        None => {
                            rs.aux.insert(sender, value);
                        }
                    }
                }
            }
            Message::Conf { round, values } => {
                if values.is_empty() {
                    step.fault(Fault::new(sender, FaultKind::InvalidConf));
                } else if is_random_round(round)
                    && let Some(rs) = self.round_state(round)
                {
                    match rs.conf.get(&sender) {
                        Some(v) if *v != values => {
                            step.fault(Fault::new(sender, FaultKind::ConflictingConf));
                        }
                        Some(_) => {}
                        None => {
                            rs.conf.insert(sender, values);
                        }
                    }
                }
            }
            Message::Coin { round, share } => {
                if !is_random_round(round) {
                    step.fault(Fault::new(sender, FaultKind::UnexpectedCoinShare));
                } else if let Some(rs) = self.round_state(round)
                    && !rs.bad_coin_senders.contains(&sender)
                {
                    match rs.coin_shares.get(&sender) {
                        Some(s) if *s != share => {
                            step.fault(Fault::new(sender, FaultKind::ConflictingCoinShare));
                        }
                        Some(_) => {}
                        None => {
                            rs.coin_shares.insert(sender, share);
                        }
                    }
                }
            }
        }
        self.progress(&mut step);
        step
    }

    /// Handles this replica's own coin share for `round`, returned by the keystore (A7).
    ///
    /// R2: a share that was requested is broadcast whenever it arrives — even if the round is
    /// over or the instance decided meanwhile (having combined `f+1` shares from others), because
    /// replicas still in that round may need it to reach `f+1` when a faulty replica sent its
    /// share to only some of them.
    pub fn handle_coin_share(
        &mut self,
        round: u32,
        share: bls::SignatureShare,
    ) -> Step<Message, AbaOutput> {
        let mut step = Step::default();
        if !self.requested_coins.remove(&round) {
            // Never requested, or already released (a repeated reply).
            return step;
        }
        step.broadcast(Message::Coin { round, share });
        let our_id = self.our_id;
        if !self.relay_only
            && let Some(rs) = self.rounds.get_mut(&round)
        {
            rs.coin_shares.entry(our_id).or_insert(share);
            self.progress(&mut step);
        }
        step
    }

    /// The state of `round`, unless it is over or too far ahead.
    fn round_state(&mut self, round: u32) -> Option<&mut RoundState> {
        if round < self.round || round - self.round > self.max_future_rounds {
            return None;
        }
        Some(self.rounds.entry(round).or_default())
    }

    /// R1: a BVAL for a round this replica left (or for any round once it only relays) is
    /// still counted, and relayed on `f+1` like A2. A decided replica's TERM(b) stands for
    /// BVAL(b) in every round (T1), so it relays only the other value.
    fn on_past_bval(
        &mut self,
        sender: NodeId,
        round: u32,
        value: bool,
        step: &mut Step<Message, AbaOutput>,
    ) {
        if round.saturating_sub(self.round) > self.max_future_rounds {
            return;
        }
        if self.decision == Some(value) {
            return;
        }
        let f1 = self.committee.f_plus_one();
        let our_id = self.our_id;
        let br = self.past.entry(round).or_default();
        br.senders[idx(value)].insert(sender);
        let count = br.senders[idx(value)]
            .union(&self.terms[idx(value)])
            .count();
        if count >= f1 && !br.sent[idx(value)] {
            br.sent[idx(value)] = true;
            br.senders[idx(value)].insert(our_id);
            step.broadcast(Message::BVal { round, value });
        }
    }

    fn send_bval(&mut self, round: u32, value: bool, step: &mut Step<Message, AbaOutput>) {
        let our_id = self.our_id;
        if let Some(rs) = self.round_state(round)
            && !rs.bval.sent[idx(value)]
        {
            rs.bval.sent[idx(value)] = true;
            rs.bval.senders[idx(value)].insert(our_id);
            step.broadcast(Message::BVal { round, value });
        }
    }

    /// Records a TERM; returns `false` if it conflicts with an earlier one from `sender`.
    fn record_term(
        &mut self,
        sender: NodeId,
        b: bool,
        step: &mut Step<Message, AbaOutput>,
    ) -> bool {
        if self.terms[idx(!b)].contains(&sender) {
            step.fault(Fault::new(sender, FaultKind::ConflictingTerm));
            return false;
        }
        self.terms[idx(b)].insert(sender);
        true
    }

    // T1, T2
    fn on_term(&mut self, sender: NodeId, b: bool, step: &mut Step<Message, AbaOutput>) {
        if self.record_term(sender, b, step)
            && self.terms[idx(b)].len() >= self.committee.f_plus_one()
        {
            self.decide(b, step);
        }
    }

    /// Decides `b`, multicasts TERM(b) and from now on only relays: the BVAL bookkeeping of
    /// the current and buffered rounds moves to `past` (R1), everything else is dropped.
    fn decide(&mut self, b: bool, step: &mut Step<Message, AbaOutput>) {
        if self.decision.is_some() {
            return;
        }
        self.decision = Some(b);
        step.output(b);
        step.broadcast(Message::Term(b));
        self.relay_only = true;
        for (round, rs) in std::mem::take(&mut self.rounds) {
            self.past.insert(round, rs.bval);
        }
    }

    fn progress(&mut self, step: &mut Step<Message, AbaOutput>) {
        while !self.relay_only && self.progress_round(step) {}
    }

    /// Applies every rule of the current round whose condition holds. Returns `true` if
    /// anything changed (so the caller evaluates again).
    fn progress_round(&mut self, step: &mut Step<Message, AbaOutput>) -> bool {
        let round = self.round;
        let our_id = self.our_id;
        let f1 = self.committee.f_plus_one();
        let q2 = self.committee.two_f_plus_one();
        let quorum = self.committee.quorum();
        let committee = self.committee;
        let coin_id = CoinId {
            epoch: self.epoch,
            instance: self.instance,
            round,
        };
        let mut changed = false;

        let terms = &self.terms;
        let coin_keys = &self.coin_keys;
        let rs = self.rounds.entry(round).or_default();
        // A2, A3 (TERM senders count as BVAL senders, T1).
        for b in [false, true] {
            let count = rs.bval.senders[idx(b)].union(&terms[idx(b)]).count();
            if count >= f1 && !rs.bval.sent[idx(b)] {
                rs.bval.sent[idx(b)] = true;
                rs.bval.senders[idx(b)].insert(our_id);
                step.broadcast(Message::BVal { round, value: b });
                changed = true;
            }
            let count = rs.bval.senders[idx(b)].union(&terms[idx(b)]).count();
            if count >= q2 && rs.bin_values.insert(b) {
                changed = true;
                if !rs.aux_sent {
                    rs.aux_sent = true;
                    rs.aux.insert(our_id, b);
                    step.broadcast(Message::Aux { round, value: b });
                }
            }
        }

        // A4 (TERM senders count as AUX senders, T1).
        if rs.vals.is_none() && !rs.bin_values.is_empty() {
            let mut count = 0;
            let mut vals = BoolSet::NONE;
            for m in committee.members() {
                let value = term_value(terms, &m).or_else(|| rs.aux.get(&m).copied());
                if let Some(v) = value
                    && rs.bin_values.contains(v)
                {
                    count += 1;
                    vals.insert(v);
                }
            }
            if count >= quorum {
                rs.vals = Some(vals);
                changed = true;
            }
        }
        let Some(vals) = rs.vals else {
            return changed;
        };

        // A5–A7
        let (coin, final_vals) = match round % 3 {
            0 => (Some(true), vals),
            1 => (Some(false), vals),
            _ => {
                if !rs.conf_sent {
                    rs.conf_sent = true;
                    rs.conf.insert(our_id, vals);
                    step.broadcast(Message::Conf {
                        round,
                        values: vals,
                    });
                    changed = true;
                }
                if rs.conf_vals.is_none() {
                    let mut count = 0;
                    let mut union = BoolSet::NONE;
                    for m in committee.members() {
                        let set = term_value(terms, &m)
                            .map(BoolSet::single)
                            .or_else(|| rs.conf.get(&m).copied());
                        if let Some(set) = set
                            && set.is_subset(rs.bin_values)
                        {
                            count += 1;
                            union = union.union(set);
                        }
                    }
                    if count >= quorum {
                        rs.conf_vals = Some(union);
                        changed = true;
                    }
                }
                let Some(conf_vals) = rs.conf_vals else {
                    return changed;
                };
                if !rs.share_requested {
                    rs.share_requested = true;
                    self.requested_coins.insert(round);
                    step.request(Request::CoinShare(coin_id));
                    changed = true;
                }
                if rs.coin.is_none() && rs.coin_shares.len() >= f1 {
                    let message = *rs.coin_message.get_or_insert_with(|| coin_id.message());
                    let combined = coin_keys.combine_optimistic(&message, &rs.coin_shares);
                    for bad in combined.invalid_shares {
                        rs.coin_shares.remove(&bad);
                        rs.bad_coin_senders.insert(bad);
                        step.fault(Fault::new(bad, FaultKind::InvalidCoinShare));
                    }
                    if let Some(sig) = combined.value {
                        rs.coin = Some(bls::coin_bit(&sig));
                        changed = true;
                    }
                }
                (rs.coin, conf_vals)
            }
        };
        let Some(s) = coin else {
            return changed;
        };

        // A8
        let estimate = match final_vals.definite() {
            Some(b) => {
                if b == s {
                    self.estimate = Some(b);
                    self.decide(b, step);
                    return true;
                }
                b
            }
            None => s,
        };
        self.estimate = Some(estimate);
        // A9, then A1 of the next round. The round left keeps its BVAL bookkeeping (R1).
        let left = self.round;
        self.round += 1;
        let later = self.rounds.split_off(&self.round);
        for (round, rs) in std::mem::replace(&mut self.rounds, later) {
            debug_assert_eq!(round, left);
            self.past.insert(round, rs.bval);
        }
        self.send_bval(self.round, estimate, step);
        true
    }
}

/// Rounds `r ≡ 2 (mod 3)` use the threshold coin; the others are fixed to 1 and 0 (A5).
fn is_random_round(round: u32) -> bool {
    round % 3 == 2
}

fn term_value(terms: &[BTreeSet<NodeId>; 2], node: &NodeId) -> Option<bool> {
    if terms[1].contains(node) {
        Some(true)
    } else if terms[0].contains(node) {
        Some(false)
    } else {
        None
    }
}
