//! Faulty replicas that send *valid* material to only some honest replicas, and schedules
//! that starve one honest replica of the votes it needs.
//!
//! These are the strategies that found the liveness bugs the other adversaries missed: an
//! honest replica that can already combine `f+1` shares (some of them a faulty replica's,
//! sent only to it) moves on before the keystore returns its own share; if it then dropped that
//! share, replicas that were not sent the faulty share would never reach `f+1` (rule R2). And
//! an honest replica that moved to the next round or decided must keep relaying BVAL votes of
//! the rounds it left, or a replica still in them never gathers `n−f` AUX (rule R1).

use beat_core::{
    Message,
    aba::{self},
    acs::SubsetMessage,
    avid, bracha,
    broadcast::BroadcastMessage,
    dispersal,
    epoch::EpochMessage,
};
use beat_types::NodeId;

use super::{
    agreement::map_agreement,
    shares::{split_inputs_pick, vote_against_fixed_coins},
};
use crate::adversary::{Adversary, Ctx, Envelope, random_pick};

/// The honest replica the selective adversaries leave out: the highest-numbered one.
pub(crate) fn target(ctx: &Ctx<'_>) -> NodeId {
    ctx.honest().last().copied().unwrap_or(NodeId(0))
}

/// Faulty replicas send their valid coin shares only to the honest replicas other than one
/// target, vote against the fixed coins so that random-coin rounds happen, and keystore replies
/// come back as late as the delivery bound allows. The favoured replicas combine `f+1` shares
/// (the faulty ones plus the first honest one released) before their own share returns; the
/// target needs `f+1` honest shares, so every honest share must be released however late.
pub struct SelectiveCoinShares;

impl Adversary for SelectiveCoinShares {
    fn name(&self) -> &'static str {
        "selective-coin-shares"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        split_inputs_pick(ctx)
    }

    fn pick_reply(&mut self, _ctx: &mut Ctx<'_>) -> Option<usize> {
        None
    }

    fn tamper(
        &mut self,
        _from: NodeId,
        to: NodeId,
        message: Message,
        ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        let is_coin = matches!(
            &message,
            Message::Epoch {
                message: EpochMessage::Subset(SubsetMessage::Agreement {
                    message: aba::Message::Coin { .. },
                    ..
                }),
                ..
            }
        );
        if is_coin && to == target(ctx) {
            return Vec::new();
        }
        vec![(to, vote_against_fixed_coins(message, ctx))]
    }
}

/// Faulty replicas send their valid decryption shares only to the honest replicas other than
/// one target, and keystore replies come back as late as the delivery bound allows. The
/// favoured replicas decrypt with the faulty shares and the first honest ones released, and
/// move on before their own shares return; the target needs `f+1` honest shares.
pub struct SelectiveDecryptionShares;

impl Adversary for SelectiveDecryptionShares {
    fn name(&self) -> &'static str {
        "selective-decryption-shares"
    }

    fn pick_reply(&mut self, _ctx: &mut Ctx<'_>) -> Option<usize> {
        None
    }

    fn tamper(
        &mut self,
        _from: NodeId,
        to: NodeId,
        message: Message,
        ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        let is_share = matches!(
            &message,
            Message::Epoch {
                message: EpochMessage::DecryptionShares(_),
                ..
            }
        );
        if is_share && to == target(ctx) {
            return Vec::new();
        }
        vec![(to, message)]
    }
}

/// Starves honest replicas of the relays they need (bug found on 2026-12-03: replicas dropped
/// the BVAL relay of rounds they had left, HoneyBadgerBFT-style).
///
/// It attacks the agreement on the highest-numbered honest replica `P`'s proposal and splits
/// the honest replicas into three groups: `D` (`P` and the `f − 1` lowest others), `B` (the
/// next one) and `C` (the rest, `f` of them). `P`'s broadcast reaches `C` only as late as the
/// delivery bound allows, and `B` gets its READYs that late (it echoes, so `D` can deliver), so
/// `B` and `C` input 0 while `D` (which gets the other agreements' votes late) inputs 1. Faulty replicas vote
/// BVAL(1) to `D` and `B` and BVAL(0) to `C`, AUX(1) to `D` and AUX(0) to `B` and `C`, and BVAL(0)
/// reaches `D` after everything else. So `B` sees `1` first and votes AUX(1); `D` gathers
/// `n − f` AUX(1) (its own, the faulty ones and `B`'s), decides 1 and moves on before it has
/// seen `f + 1` BVAL(0). `B` still needs `0` in its `bin_values` to count `C`'s AUX(0), and only
/// `D`'s relay of BVAL(0) — after `D` decided — can put it there (R1). Without that relay every
/// honest replica stalls: `B` in round 0, `C` in round 1, and `|D| = f` TERMs are too few.
#[derive(Default)]
pub struct RelayStarvation {
    groups: Option<Groups>,
}

struct Groups {
    proposer: NodeId,
    deciders: Vec<NodeId>,
    believers: Vec<NodeId>,
}

impl Groups {
    fn new(ctx: &Ctx<'_>) -> Self {
        let honest = ctx.honest();
        let f = ctx.committee.f();
        let proposer = honest.last().copied().unwrap_or(NodeId(0));
        let mut deciders = vec![proposer];
        deciders.extend(
            honest
                .iter()
                .copied()
                .filter(|p| *p != proposer)
                .take(f.saturating_sub(1)),
        );
        let believers = honest
            .iter()
            .copied()
            .filter(|p| !deciders.contains(p))
            .take(1)
            .collect();
        Self {
            proposer,
            deciders,
            believers,
        }
    }
}

fn is_ready(message: &BroadcastMessage) -> bool {
    matches!(
        message,
        BroadcastMessage::Bracha(bracha::Message::Ready(_))
            | BroadcastMessage::Avid(avid::Message::Ready(_))
            | BroadcastMessage::Dispersal(dispersal::Message::Ready(_))
    )
}

/// `(proposer, agreement message)` if `message` belongs to an agreement.
fn agreement_of(message: &Message) -> Option<(NodeId, &aba::Message)> {
    match message {
        Message::Epoch {
            message: EpochMessage::Subset(SubsetMessage::Agreement { proposer, message }),
            ..
        } => Some((*proposer, message)),
        _ => None,
    }
}

impl Adversary for RelayStarvation {
    fn name(&self) -> &'static str {
        "relay-starvation"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        let g = self.groups.get_or_insert_with(|| Groups::new(ctx));
        let rank = |e: &Envelope| -> u8 {
            let to_decider = g.deciders.contains(&e.to);
            match &e.message {
                // P's proposal reaches C last, and B echoes it but gets its READYs last.
                Message::Epoch {
                    message: EpochMessage::Subset(SubsetMessage::Broadcast { proposer, message }),
                    ..
                } if *proposer == g.proposer
                    && !to_decider
                    && (!g.believers.contains(&e.to) || is_ready(message)) =>
                {
                    1
                }
                _ => match agreement_of(&e.message) {
                    Some((p, aba::Message::BVal { value: false, .. }))
                        if p == g.proposer && to_decider =>
                    {
                        2
                    }
                    // D decides the other agreements late, so it delivers P's proposal (and
                    // inputs 1) before n − f of them decided 1 (which would make it input 0).
                    Some((p, _)) if p != g.proposer && to_decider => 1,
                    _ => 0,
                },
            }
        };
        let len = ctx.in_flight.len();
        let start = random_pick(len, ctx.rng);
        let best = ctx.in_flight.iter().map(rank).min().unwrap_or(0);
        (0..len)
            .map(|k| (start + k) % len)
            .find(|&i| rank(&ctx.in_flight[i]) == best)
            .unwrap_or(start)
    }

    fn tamper(
        &mut self,
        _from: NodeId,
        to: NodeId,
        message: Message,
        ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        let g = self.groups.get_or_insert_with(|| Groups::new(ctx));
        let Some((proposer, _)) = agreement_of(&message) else {
            return vec![(to, message)];
        };
        if proposer != g.proposer {
            return vec![(to, message)];
        }
        let decider = g.deciders.contains(&to);
        let believer = g.believers.contains(&to);
        let message = map_agreement(message, |m| match m {
            aba::Message::BVal { round, .. } => aba::Message::BVal {
                round,
                value: decider || believer,
            },
            aba::Message::Aux { round, .. } => aba::Message::Aux {
                round,
                value: decider,
            },
            other => other,
        });
        // No faulty TERM: the deciders' own TERMs must stay too few to decide anyone else.
        if matches!(agreement_of(&message), Some((_, aba::Message::Term(_)))) {
            return Vec::new();
        }
        vec![(to, message)]
    }
}
