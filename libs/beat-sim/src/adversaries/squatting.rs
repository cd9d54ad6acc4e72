//! Label squatting: censorship through BEAT2's duplicate suppression.
//!
//! BEAT2 orders each client request once, keyed by the label its ciphertext carries. Labels are
//! predictable — the simulator's workload, like most clients, numbers its requests 0, 1, 2, … —
//! so a faulty proposer that learns a client's identity can encrypt junk under that client's
//! future labels. Were such ciphertexts ordered, the labels would be spent and the client's
//! real requests suppressed everywhere. Since labels name the client's public key and the
//! client must sign the ciphertext, the squatter (who can sign only with its own key) is
//! rejected at E3 and blamed, and the labels stay unspent.
//!
//! The same squatter also takes the clients' *own* envelopes it eavesdropped and flips their
//! version byte (a single transaction presented as a bundle, a bundle as a single transaction).
//! The signature is genuine but was made in the other version's context, so the flipped
//! envelope must be refused like a forgery: were it ordered, the client's label would be spent
//! on a plaintext read the wrong way and its real request suppressed — which the run's
//! liveness check would report.

use std::collections::BTreeMap;

use beat_core::{
    Message,
    acs::SubsetMessage,
    bracha,
    broadcast::BroadcastMessage,
    client::{
        CLIENT_BUNDLE_VERSION, CLIENT_TRANSACTION_VERSION, ClientTransaction, client_label,
        sign_client_ciphertext,
    },
    codec::{decode_transactions, encode_transactions},
    epoch::EpochMessage,
};
use beat_crypto::identity::{IdentityKeypair, IdentityPublicKey};
use beat_types::{Epoch, NodeId, Transaction, Variant};
use bytes::Bytes;

use super::broadcast::{own_val, val_messages, wrap};
use crate::adversary::{Adversary, Ctx};

/// Genuine envelopes a squatting proposal re-proposes with their version flipped.
const FLIPPED_PER_PROPOSAL: usize = 4;

/// Faulty proposers in BEAT2 replace their proposal with valid TDH2 ciphertexts of junk under
/// the labels of requests honest clients have not been served yet: for every client seen in a
/// proposal (their own, or one eavesdropped in flight), the request numbers just above the
/// highest one seen. They sign with a key of their own — the best they can do. Ahead of those
/// go the last few genuine envelopes seen, with their version byte flipped. Every recipient
/// gets the same proposal, so it is agreed on. In the other variants they behave honestly.
#[derive(Default)]
pub struct LabelSquatting {
    /// Clients seen, with the next request number to squat.
    clients: BTreeMap<IdentityPublicKey, u64>,
    /// The most recent genuine client envelopes seen (at most [`FLIPPED_PER_PROPOSAL`]).
    seen: Vec<Transaction>,
    /// The squatter's own signing key.
    key: Option<IdentityKeypair>,
    /// Per (epoch, faulty proposer): the squatting proposal's `Val` per recipient, or `None`
    /// where it proposed honestly.
    alternatives: BTreeMap<(Epoch, NodeId), Option<BTreeMap<NodeId, BroadcastMessage>>>,
}

impl LabelSquatting {
    /// Learns the clients and request numbers of the client transactions in `value`.
    fn learn(&mut self, value: &[u8]) {
        let Some(txs) = decode_transactions(value, usize::MAX, usize::MAX) else {
            return;
        };
        for tx in txs {
            if let Ok(parsed) = ClientTransaction::from_bytes(tx.as_bytes()) {
                let label = parsed.label();
                let next = self.clients.entry(label.client).or_default();
                *next = (*next).max(label.request.saturating_add(1));
                if !self.seen.contains(&tx) {
                    self.seen.push(tx);
                }
            }
        }
        let excess = self.seen.len().saturating_sub(FLIPPED_PER_PROPOSAL);
        self.seen.drain(..excess);
    }

    /// Learns from every proposal in flight (the adversary eavesdrops).
    fn eavesdrop(&mut self, ctx: &Ctx<'_>) {
        for envelope in ctx.in_flight {
            if let Message::Epoch {
                message:
                    EpochMessage::Subset(SubsetMessage::Broadcast {
                        message:
                            BroadcastMessage::Bracha(
                                bracha::Message::Val(value) | bracha::Message::Echo(value),
                            ),
                        ..
                    }),
                ..
            } = &envelope.message
            {
                self.learn(value);
            }
        }
    }

    /// A full proposal of junk under the next labels of the clients seen, round robin.
    fn squatting_value(&mut self, ctx: &mut Ctx<'_>, epoch: Epoch, proposer: NodeId) -> Bytes {
        let count = ctx.config.params.proposal_size(ctx.committee);
        let key = self
            .key
            .get_or_insert_with(|| IdentityKeypair::generate(ctx.rng));
        let mut txs = Vec::with_capacity(count);
        // Genuine envelopes, version flipped: a single transaction read as a bundle and back.
        for tx in self.seen.iter().take(count) {
            let mut bytes = tx.as_bytes().to_vec();
            bytes[0] = match bytes[0] {
                CLIENT_TRANSACTION_VERSION => CLIENT_BUNDLE_VERSION,
                _ => CLIENT_TRANSACTION_VERSION,
            };
            txs.push(Transaction::new(bytes));
        }
        let clients: Vec<IdentityPublicKey> = self.clients.keys().copied().collect();
        let squatted = count.saturating_sub(txs.len());
        for (i, client) in clients.iter().cycle().take(squatted).enumerate() {
            let Some(next) = self.clients.get_mut(client) else {
                continue;
            };
            let label = client_label(client, *next);
            *next = next.saturating_add(1);
            let junk = format!("squatted/{epoch}/{proposer}/{i}");
            if let Ok(ct) = ctx
                .keys
                .encryption
                .encrypt(&label, junk.as_bytes(), ctx.rng)
            {
                txs.push(sign_client_ciphertext(key, &ct));
            }
        }
        Bytes::from(encode_transactions(&txs))
    }
}

impl Adversary for LabelSquatting {
    fn name(&self) -> &'static str {
        "label-squatting"
    }

    fn tamper(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: Message,
        ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        if ctx.config.params.variant != Variant::Beat2 {
            return vec![(to, message)];
        }
        let Some(epoch) = own_val(from, &message) else {
            return vec![(to, message)];
        };
        if !self.alternatives.contains_key(&(epoch, from)) {
            if let Message::Epoch {
                message:
                    EpochMessage::Subset(SubsetMessage::Broadcast {
                        message: BroadcastMessage::Bracha(bracha::Message::Val(value)),
                        ..
                    }),
                ..
            } = &message
            {
                self.learn(value);
            }
            self.eavesdrop(ctx);
            // Nothing to squat yet: propose honestly, the same to everyone.
            let vals = if self.clients.is_empty() {
                None
            } else {
                let value = self.squatting_value(ctx, epoch, from);
                Some(val_messages(ctx, from, value))
            };
            self.alternatives.insert((epoch, from), vals);
            self.alternatives = self
                .alternatives
                .split_off(&(Epoch(epoch.0.saturating_sub(4)), NodeId(0)));
        }
        match self
            .alternatives
            .get(&(epoch, from))
            .and_then(|m| m.as_ref())
            .and_then(|m| m.get(&to))
        {
            Some(alt) => vec![(to, wrap(epoch, from, alt.clone()))],
            None => vec![(to, message)],
        }
    }

    fn detectable(&self, params: &beat_core::Params) -> bool {
        params.variant == Variant::Beat2
    }
}
