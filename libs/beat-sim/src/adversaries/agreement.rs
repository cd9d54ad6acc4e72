//! Faulty replicas that attack binary agreement.

use beat_core::{
    Message,
    aba::{self, BoolSet},
    acs::SubsetMessage,
    epoch::EpochMessage,
};
use beat_types::NodeId;

use crate::adversary::{Adversary, Ctx};

/// Applies `f` to the agreement message inside `message`, if it is one.
pub(crate) fn map_agreement(
    message: Message,
    f: impl FnOnce(aba::Message) -> aba::Message,
) -> Message {
    match message {
        Message::Epoch {
            epoch,
            message: EpochMessage::Subset(SubsetMessage::Agreement { proposer, message }),
        } => Message::Epoch {
            epoch,
            message: EpochMessage::Subset(SubsetMessage::Agreement {
                proposer,
                message: f(message),
            }),
        },
        other => other,
    }
}

fn set_value(m: aba::Message, value: impl Fn(bool) -> bool) -> aba::Message {
    match m {
        aba::Message::BVal { round, value: v } => aba::Message::BVal {
            round,
            value: value(v),
        },
        aba::Message::Aux { round, value: v } => aba::Message::Aux {
            round,
            value: value(v),
        },
        aba::Message::Conf { round, values } => {
            let values = match values.definite() {
                Some(b) => BoolSet::single(value(b)),
                None => values,
            };
            aba::Message::Conf { round, values }
        }
        aba::Message::Term(b) => aba::Message::Term(value(b)),
        coin @ aba::Message::Coin { .. } => coin,
    }
}

/// Faulty replicas vote 0 in every agreement, whatever they should vote.
pub struct AbaAlwaysZero;

impl Adversary for AbaAlwaysZero {
    fn name(&self) -> &'static str {
        "aba-always-zero"
    }

    fn tamper(
        &mut self,
        _: NodeId,
        to: NodeId,
        message: Message,
        _: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        vec![(to, map_agreement(message, |m| set_value(m, |_| false)))]
    }
}

/// Faulty replicas vote the opposite of what their honest code votes.
pub struct AbaOpposite;

impl Adversary for AbaOpposite {
    fn name(&self) -> &'static str {
        "aba-opposite"
    }

    fn tamper(
        &mut self,
        _: NodeId,
        to: NodeId,
        message: Message,
        _: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        vec![(to, map_agreement(message, |m| set_value(m, |b| !b)))]
    }
}

/// Faulty replicas tell even-numbered replicas one value and odd-numbered ones the other, and
/// send replica 0 both values of AUX (a detectable conflict).
pub struct AbaEquivocation;

impl Adversary for AbaEquivocation {
    fn name(&self) -> &'static str {
        "aba-equivocation"
    }

    fn tamper(
        &mut self,
        _: NodeId,
        to: NodeId,
        message: Message,
        ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        let side = to.0.is_multiple_of(2);
        let mut out = vec![(
            to,
            map_agreement(message.clone(), |m| set_value(m, |_| side)),
        )];
        let first_honest = ctx.honest().first().copied();
        if Some(to) == first_honest {
            let conflicting = map_agreement(message, |m| match m {
                aba::Message::Aux { round, .. } => aba::Message::Aux {
                    round,
                    value: !side,
                },
                aba::Message::Term(_) => aba::Message::Term(!side),
                other => set_value(other, |_| side),
            });
            out.push((to, conflicting));
        }
        out
    }

    fn detectable(&self, _params: &beat_core::Params) -> bool {
        true
    }
}
