//! Faulty proposers that withhold their proposal from some replicas or never propose, and
//! faulty replicas that equivocate in the broadcast's ECHO and READY phases.

use std::collections::BTreeMap;

use beat_core::{
    Message, avid, bracha, broadcast::BroadcastMessage, dispersal, epoch::EpochMessage,
};
use beat_types::{Epoch, NodeId};

use super::broadcast::{alternative_contribution, own_val, val_messages, wrap};
use crate::adversary::{Adversary, Ctx};

/// How many replicas a [`PartialVal`] proposer reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// `n − f` replicas (itself included): the most a faulty proposer can withhold while its
    /// broadcast may still complete.
    Quorum,
    /// `k = n − 2f` replicas (itself included): exactly enough to decode an erasure-coded
    /// value, too few for Bracha's echo quorum.
    DataShards,
}

/// A faulty proposer whose `Val` reaches only some replicas (chosen per epoch by the seed).
/// Every honest replica must still agree on whether its value is included, and those that
/// never got a `Val` must still deliver it when it is.
pub struct PartialVal {
    reach: Reach,
    chosen: BTreeMap<(Epoch, NodeId), Vec<NodeId>>,
}

impl PartialVal {
    /// A proposer reaching `reach` replicas.
    pub fn new(reach: Reach) -> Self {
        Self {
            reach,
            chosen: BTreeMap::new(),
        }
    }
}

impl Adversary for PartialVal {
    fn name(&self) -> &'static str {
        match self.reach {
            Reach::Quorum => "partial-val",
            Reach::DataShards => "partial-val-k",
        }
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
        let (n, f) = (ctx.committee.n(), ctx.committee.f());
        let count = match self.reach {
            Reach::Quorum => n - f,
            Reach::DataShards => n - 2 * f,
        };
        let chosen = self.chosen.entry((epoch, from)).or_insert_with(|| {
            // The proposer itself counts as reached; choose the others by the seed.
            let mut others: Vec<NodeId> = ctx.committee.members().filter(|p| *p != from).collect();
            for i in (1..others.len()).rev() {
                let j = (rand_core::Rng::next_u64(ctx.rng) % (i as u64 + 1)) as usize;
                others.swap(i, j);
            }
            others.truncate(count.saturating_sub(1));
            others
        });
        let reached = chosen.contains(&to);
        self.chosen = self
            .chosen
            .split_off(&(Epoch(epoch.0.saturating_sub(4)), NodeId(0)));
        if reached {
            vec![(to, message)]
        } else {
            Vec::new()
        }
    }
}

/// Faulty replicas take part in everyone else's broadcasts and agreements but never propose:
/// their own `Val` never leaves. Their agreements must decide 0 and the epoch go on.
pub struct SilentProposer;

impl Adversary for SilentProposer {
    fn name(&self) -> &'static str {
        "silent-proposer"
    }

    fn tamper(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: Message,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        if own_val(from, &message).is_some() {
            return Vec::new();
        }
        vec![(to, message)]
    }
}

/// Faulty replicas equivocate in other proposers' broadcasts: to the odd-numbered replicas
/// they send `Echo` and `Ready` for a different value (a well-formed one, with valid proofs
/// for its own commitment), to the even-numbered ones the real thing, and to the lowest honest
/// replica both (a detectable conflict). Reliable broadcast must still deliver one value, the
/// same everywhere.
#[derive(Default)]
pub struct EquivocatingEcho {
    /// Per (epoch, proposer): the alternative `Val` each replica would get for a made-up value,
    /// from which the alternative echoes are taken.
    alternatives: BTreeMap<(Epoch, NodeId), BTreeMap<NodeId, BroadcastMessage>>,
}

impl EquivocatingEcho {
    /// The alternative of `message` (an Echo or Ready by `from` in `proposer`'s broadcast).
    fn alternative(
        &mut self,
        ctx: &mut Ctx<'_>,
        epoch: Epoch,
        proposer: NodeId,
        from: NodeId,
        message: &BroadcastMessage,
    ) -> Option<BroadcastMessage> {
        if let std::collections::btree_map::Entry::Vacant(e) =
            self.alternatives.entry((epoch, proposer))
        {
            let value = alternative_contribution(ctx, epoch, proposer, "echo-equivocation");
            e.insert(val_messages(ctx, proposer, value));
            self.alternatives = self
                .alternatives
                .split_off(&(Epoch(epoch.0.saturating_sub(4)), NodeId(0)));
        }
        let own = self.alternatives.get(&(epoch, proposer))?.get(&from)?;
        Some(match (message, own) {
            (
                BroadcastMessage::Bracha(bracha::Message::Echo(_)),
                BroadcastMessage::Bracha(bracha::Message::Val(v)),
            ) => BroadcastMessage::Bracha(bracha::Message::Echo(v.clone())),
            (
                BroadcastMessage::Bracha(bracha::Message::Ready(_)),
                BroadcastMessage::Bracha(bracha::Message::Val(v)),
            ) => BroadcastMessage::Bracha(bracha::Message::Ready(beat_core::bracha::digest(v))),
            (
                BroadcastMessage::Avid(avid::Message::Echo { .. }),
                BroadcastMessage::Avid(avid::Message::Val { root, proof, shard }),
            ) => BroadcastMessage::Avid(avid::Message::Echo {
                root: *root,
                proof: proof.clone(),
                shard: shard.clone(),
            }),
            (
                BroadcastMessage::Avid(avid::Message::Ready(_)),
                BroadcastMessage::Avid(avid::Message::Val { root, .. }),
            ) => BroadcastMessage::Avid(avid::Message::Ready(*root)),
            (
                BroadcastMessage::Dispersal(dispersal::Message::Echo(_)),
                BroadcastMessage::Dispersal(dispersal::Message::Val { fpcc, .. }),
            ) => BroadcastMessage::Dispersal(dispersal::Message::Echo(fpcc.clone())),
            (
                BroadcastMessage::Dispersal(dispersal::Message::Ready(_)),
                BroadcastMessage::Dispersal(dispersal::Message::Val { fpcc, .. }),
            ) => BroadcastMessage::Dispersal(dispersal::Message::Ready(fpcc.digest())),
            _ => return None,
        })
    }
}

impl Adversary for EquivocatingEcho {
    fn name(&self) -> &'static str {
        "equivocating-echo"
    }

    fn tamper(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: Message,
        ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        let Message::Epoch {
            epoch,
            message:
                EpochMessage::Subset(beat_core::acs::SubsetMessage::Broadcast {
                    proposer,
                    message: inner,
                }),
        } = &message
        else {
            return vec![(to, message)];
        };
        let (epoch, proposer) = (*epoch, *proposer);
        if proposer == from || inner.is_val() {
            return vec![(to, message)];
        }
        let Some(alt) = self.alternative(ctx, epoch, proposer, from, inner) else {
            return vec![(to, message)];
        };
        let alt = wrap(epoch, proposer, alt);
        if ctx.honest().first() == Some(&to) {
            vec![(to, message), (to, alt)]
        } else if to.0 % 2 == 1 {
            vec![(to, alt)]
        } else {
            vec![(to, message)]
        }
    }

    fn detectable(&self, _params: &beat_core::Params) -> bool {
        true
    }
}
