//! Faulty proposers and echoers that attack the reliable broadcast.

use std::collections::BTreeMap;

use beat_core::{
    Message, Target,
    acs::SubsetMessage,
    avid, bracha,
    broadcast::{Broadcast, BroadcastConfig, BroadcastMessage},
    client::{client_label, seal_client_transaction, sign_client_ciphertext},
    codec::{encode_transactions, epoch_label},
    dispersal,
    epoch::EpochMessage,
};
use beat_crypto::identity::IdentityKeypair;
use beat_types::{Epoch, NodeId, Transaction, Variant};
use bytes::Bytes;

use crate::adversary::{Adversary, Ctx};

/// If `message` is `from`'s own proposal (`Val` of its own broadcast), returns its epoch.
pub(crate) fn own_val(from: NodeId, message: &Message) -> Option<Epoch> {
    match message {
        Message::Epoch {
            epoch,
            message:
                EpochMessage::Subset(SubsetMessage::Broadcast {
                    proposer,
                    message: m,
                }),
        } if *proposer == from && m.is_val() => Some(*epoch),
        _ => None,
    }
}

/// The `Val` messages an honest proposer `proposer` would send for `value`, per recipient.
pub(crate) fn val_messages(
    ctx: &Ctx<'_>,
    proposer: NodeId,
    value: Bytes,
) -> BTreeMap<NodeId, BroadcastMessage> {
    let config = BroadcastConfig::new(ctx.committee, &ctx.config.params);
    let mut bc = Broadcast::new(&config, proposer, proposer);
    let step = bc.propose(value);
    let mut out = BTreeMap::new();
    for o in step.messages {
        if !o.message.is_val() {
            continue;
        }
        match o.target {
            Target::Node(to) => {
                out.insert(to, o.message);
            }
            Target::All => {
                for to in ctx.committee.members() {
                    out.entry(to).or_insert_with(|| o.message.clone());
                }
            }
        }
    }
    out
}

/// A valid contribution from `proposer` for `epoch` with made-up transactions, encoded (and
/// encrypted) exactly as an honest proposer would.
pub(crate) fn alternative_contribution(
    ctx: &mut Ctx<'_>,
    epoch: Epoch,
    proposer: NodeId,
    tag: &str,
) -> Bytes {
    let params = &ctx.config.params;
    let txs = vec![Transaction::new(
        format!("{tag}/{epoch}/{proposer}").into_bytes(),
    )];
    let plaintext = encode_transactions(&txs);
    if params.encrypts_contributions() {
        let ct = ctx
            .keys
            .encryption
            .encrypt(&epoch_label(epoch, proposer), &plaintext, ctx.rng);
        ct.map(|c| Bytes::from(c.to_bytes())).unwrap_or_default()
    } else if params.variant == Variant::Beat2 {
        // A client of the adversary's own, with a key of its own: a valid client transaction.
        let client = IdentityKeypair::generate(ctx.rng);
        let tx =
            seal_client_transaction(&client, &ctx.keys.encryption, epoch.0, &plaintext, ctx.rng);
        let txs: Vec<Transaction> = tx.into_iter().collect();
        Bytes::from(encode_transactions(&txs))
    } else {
        Bytes::from(plaintext)
    }
}

pub(crate) fn wrap(epoch: Epoch, proposer: NodeId, message: BroadcastMessage) -> Message {
    Message::Epoch {
        epoch,
        message: EpochMessage::Subset(SubsetMessage::Broadcast { proposer, message }),
    }
}

/// Faulty proposers send one valid proposal to the even-numbered replicas and a different valid
/// proposal to the odd-numbered ones. Reliable broadcast must deliver at most one of them, and
/// the same one everywhere.
#[derive(Default)]
pub struct EquivocatingProposer {
    alternatives: BTreeMap<(Epoch, NodeId), BTreeMap<NodeId, BroadcastMessage>>,
}

impl Adversary for EquivocatingProposer {
    fn name(&self) -> &'static str {
        "equivocating-proposer"
    }

    fn tamper(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: Message,
        ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        let Some(epoch) = own_val(from, &message) else {
            return vec![(to, message)];
        };
        if to.0.is_multiple_of(2) {
            return vec![(to, message)];
        }
        if let std::collections::btree_map::Entry::Vacant(e) =
            self.alternatives.entry((epoch, from))
        {
            let value = alternative_contribution(ctx, epoch, from, "equivocation");
            let vals = val_messages(ctx, from, value);
            e.insert(vals);
            self.alternatives = self
                .alternatives
                .split_off(&(Epoch(epoch.0.saturating_sub(4)), NodeId(0)));
        }
        match self
            .alternatives
            .get(&(epoch, from))
            .and_then(|m| m.get(&to))
        {
            Some(alt) => vec![(to, wrap(epoch, from, alt.clone()))],
            None => vec![(to, message)],
        }
    }
}

/// Faulty replicas corrupt the payload (value, shard or proof) of every broadcast message they
/// send to the even-numbered replicas.
pub struct BadShards;

impl BadShards {
    fn flip(bytes: &mut Bytes) {
        let mut v = bytes.to_vec();
        if let Some(b) = v.last_mut() {
            *b ^= 0x5a;
        } else {
            v.push(1);
        }
        *bytes = Bytes::from(v);
    }

    pub(crate) fn corrupt(message: &mut BroadcastMessage) {
        match message {
            BroadcastMessage::Avid(
                avid::Message::Val { shard, .. } | avid::Message::Echo { shard, .. },
            ) => {
                Self::flip(shard);
            }
            BroadcastMessage::Avid(avid::Message::Ready(d))
            | BroadcastMessage::Dispersal(dispersal::Message::Ready(d)) => d.0[0] ^= 1,
            BroadcastMessage::Dispersal(dispersal::Message::Val { fragments, .. }) => {
                for f in fragments {
                    if let Some(b) = f.bytes.last_mut() {
                        *b ^= 0x5a;
                    }
                }
            }
            BroadcastMessage::Dispersal(dispersal::Message::Echo(fpcc)) => {
                if let Some(fp) = fpcc.fingerprints.first_mut() {
                    fp[0] ^= 1;
                }
            }
            BroadcastMessage::Bracha(bracha::Message::Val(v) | bracha::Message::Echo(v)) => {
                let mut bytes = v.to_vec();
                if let Some(b) = bytes.last_mut() {
                    *b ^= 0x5a;
                } else {
                    bytes.push(1);
                }
                *v = Bytes::from(bytes);
            }
            BroadcastMessage::Bracha(bracha::Message::Ready(d)) => d.0[0] ^= 1,
        }
    }
}

impl Adversary for BadShards {
    fn name(&self) -> &'static str {
        "bad-shards"
    }

    fn tamper(
        &mut self,
        _from: NodeId,
        to: NodeId,
        mut message: Message,
        _: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        if to.0.is_multiple_of(2)
            && let Message::Epoch {
                message: EpochMessage::Subset(SubsetMessage::Broadcast { message: m, .. }),
                ..
            } = &mut message
        {
            Self::corrupt(m);
        }
        vec![(to, message)]
    }
}

/// Faulty proposers propose invalid contributions, the same to everyone so that they get
/// agreed on: garbage bytes, a valid ciphertext under another proposer's label, a contribution
/// that does not decode, or (BEAT2) client transactions that are not ciphertexts or whose
/// signature is not the labelled client's.
#[derive(Default)]
pub struct BadCiphertext {
    alternatives: BTreeMap<(Epoch, NodeId), BTreeMap<NodeId, BroadcastMessage>>,
}

impl BadCiphertext {
    fn bad_value(ctx: &mut Ctx<'_>, epoch: Epoch, proposer: NodeId) -> Bytes {
        let params = &ctx.config.params;
        let n = ctx.committee.n() as u32;
        let kinds = if params.variant == Variant::Beat2 {
            4
        } else {
            3
        };
        match epoch.0 % kinds {
            // Malformed: not a ciphertext and not a contribution.
            0 => Bytes::from_static(b"\x01garbage that is neither a ciphertext nor a list"),
            // Relabelled: a valid ciphertext, but under the next proposer's label.
            1 if params.encrypts_contributions() => {
                let other = NodeId((proposer.0 + 1) % n);
                let pt = encode_transactions(&[Transaction::new(b"stolen".to_vec())]);
                let ct = ctx
                    .keys
                    .encryption
                    .encrypt(&epoch_label(epoch, other), &pt, ctx.rng);
                Bytes::from(ct.map(|c| c.to_bytes()).unwrap_or_default())
            }
            // BEAT2: a contribution whose "client ciphertext" is a plaintext.
            1 if params.variant == Variant::Beat2 => {
                Bytes::from(encode_transactions(&[Transaction::new(
                    b"not a ciphertext".to_vec(),
                )]))
            }
            // BEAT2: a valid ciphertext under some client's label, signed by another key.
            2 if params.variant == Variant::Beat2 => {
                let client = IdentityKeypair::generate(ctx.rng);
                let forger = IdentityKeypair::generate(ctx.rng);
                let label = client_label(&client.public(), epoch.0);
                let ct = ctx.keys.encryption.encrypt(&label, b"forged", ctx.rng);
                let txs: Vec<Transaction> = ct
                    .map(|ct| sign_client_ciphertext(&forger, &ct))
                    .into_iter()
                    .collect();
                Bytes::from(encode_transactions(&txs))
            }
            // Relabelled to a future epoch.
            _ if params.encrypts_contributions() => {
                let pt = encode_transactions(&[Transaction::new(b"replayed".to_vec())]);
                let ct =
                    ctx.keys
                        .encryption
                        .encrypt(&epoch_label(epoch.next(), proposer), &pt, ctx.rng);
                Bytes::from(ct.map(|c| c.to_bytes()).unwrap_or_default())
            }
            // A list with trailing garbage.
            _ => {
                let mut bytes = encode_transactions(&[Transaction::new(b"x".to_vec())]);
                bytes.extend_from_slice(b"trailing");
                Bytes::from(bytes)
            }
        }
    }
}

impl Adversary for BadCiphertext {
    fn name(&self) -> &'static str {
        "bad-ciphertext"
    }

    fn tamper(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: Message,
        ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        let Some(epoch) = own_val(from, &message) else {
            return vec![(to, message)];
        };
        if let std::collections::btree_map::Entry::Vacant(e) =
            self.alternatives.entry((epoch, from))
        {
            let value = Self::bad_value(ctx, epoch, from);
            let vals = val_messages(ctx, from, value);
            e.insert(vals);
            self.alternatives = self
                .alternatives
                .split_off(&(Epoch(epoch.0.saturating_sub(4)), NodeId(0)));
        }
        match self
            .alternatives
            .get(&(epoch, from))
            .and_then(|m| m.get(&to))
        {
            Some(alt) => vec![(to, wrap(epoch, from, alt.clone()))],
            None => vec![(to, message)],
        }
    }

    fn detectable(&self, params: &beat_core::Params) -> bool {
        // Replicas that store commitments only never look inside a contribution: a malformed
        // one is the reader's to discover.
        !(params.variant.is_storage() && params.delivery == beat_core::Delivery::CommitmentsOnly)
    }
}
