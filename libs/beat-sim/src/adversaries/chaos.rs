//! The composite random adversary: seeded, it draws its own mixture of behaviours and then
//! decides message by message among delivering, delaying, dropping (a faulty replica's),
//! mutating, replaying, duplicating and sending selectively, with late keystore replies, stall
//! timers that fire whenever they like, and the occasional crash-restart of an honest replica. The named adversaries are heuristics someone
//! wrote; seed sweeps of this one explore combinations nobody wrote (hbbft's `RandomAdversary`
//! and commonware's disrupter are the precedent).

use std::collections::BTreeSet;

use beat_core::{
    Message, aba, acs::SubsetMessage, broadcast::BroadcastMessage, epoch::EpochMessage,
};
use beat_crypto::bls;
use beat_types::{Epoch, NodeId};
use rand_core::Rng;

use super::{
    broadcast::BadShards,
    noise::{garbage_message, random_of},
};
use crate::adversary::{Adversary, Ctx, random_pick};

/// Per-mille probabilities, drawn once per run from the seed.
#[derive(Clone, Debug)]
struct Mix {
    /// A faulty replica's message is dropped.
    drop: u32,
    /// … rewritten into a wrong one.
    mutate: u32,
    /// … sent twice.
    duplicate: u32,
    /// … sent only if the recipient is in the sender's favoured set for that epoch.
    selective: u32,
    /// Before a delivery, a faulty replica replays an eavesdropped message.
    replay: u32,
    /// … or injects a random well-typed message.
    garbage: u32,
    /// The next event is a keystore reply (if any is pending) rather than a message.
    reply: u32,
    /// The next message avoids the current victim's traffic.
    starve: u32,
    /// An honest replica crashes and recovers before a delivery.
    restart: u32,
    /// An honest replica's stall timer fires (spuriously, or not) before a delivery.
    stall: u32,
}

impl Mix {
    fn draw(rng: &mut impl Rng) -> Self {
        let mut p = |max: u32| rng.next_u32() % (max + 1);
        Self {
            drop: p(300),
            mutate: 20 + p(200),
            duplicate: p(100),
            selective: p(500),
            replay: p(300),
            garbage: 10 + p(100),
            reply: p(1000),
            starve: p(950),
            restart: p(2),
            stall: p(20),
        }
    }
}

/// The composite random adversary (see the module docs).
#[derive(Default)]
pub struct Chaos {
    mix: Option<Mix>,
    /// The replica whose traffic is currently delayed, and until which crank.
    victim: Option<(NodeId, u64)>,
    /// Per (faulty sender, epoch): the replicas it favours with selective sends.
    favoured: Option<(NodeId, Epoch, BTreeSet<NodeId>)>,
}

fn roll(rng: &mut impl Rng, per_mille: u32) -> bool {
    rng.next_u32() % 1000 < per_mille
}

impl Chaos {
    fn mix(&mut self, ctx: &mut Ctx<'_>) -> Mix {
        self.mix.get_or_insert_with(|| Mix::draw(ctx.rng)).clone()
    }

    fn is_favoured(&mut self, from: NodeId, to: NodeId, epoch: Epoch, ctx: &mut Ctx<'_>) -> bool {
        let stale = self
            .favoured
            .as_ref()
            .is_none_or(|(f, e, _)| *f != from || *e != epoch);
        if stale {
            let set = ctx
                .committee
                .members()
                .filter(|_| ctx.rng.next_u32().is_multiple_of(2))
                .collect();
            self.favoured = Some((from, epoch, set));
        }
        self.favoured
            .as_ref()
            .is_some_and(|(_, _, set)| set.contains(&to))
    }

    /// A wrong version of `message` that a faulty `from` could have sent.
    fn mutate(from: NodeId, message: Message, ctx: &mut Ctx<'_>) -> Message {
        match message {
            Message::Epoch { epoch, message } => {
                let message = match message {
                    EpochMessage::Subset(SubsetMessage::Agreement { proposer, message }) => {
                        let message = match message {
                            aba::Message::BVal { round, value } => aba::Message::BVal {
                                round,
                                value: !value,
                            },
                            aba::Message::Aux { round, value } => aba::Message::Aux {
                                round,
                                value: !value,
                            },
                            aba::Message::Conf { round, values } => aba::Message::Conf {
                                round,
                                values: if values == aba::BoolSet::BOTH {
                                    aba::BoolSet::single(ctx.rng.next_u32().is_multiple_of(2))
                                } else {
                                    aba::BoolSet::BOTH
                                },
                            },
                            aba::Message::Term(b) => aba::Message::Term(!b),
                            aba::Message::Coin { round, share } => {
                                let bad = ctx
                                    .coin_secrets
                                    .iter()
                                    .find(|(id, _)| *id == from)
                                    .map(|(_, sk)| sk.sign(&bls::coin_message(b"chaos")));
                                aba::Message::Coin {
                                    round,
                                    share: bad.unwrap_or(share),
                                }
                            }
                        };
                        EpochMessage::Subset(SubsetMessage::Agreement { proposer, message })
                    }
                    EpochMessage::Subset(SubsetMessage::Broadcast {
                        proposer,
                        mut message,
                    }) => {
                        corrupt(&mut message);
                        EpochMessage::Subset(SubsetMessage::Broadcast { proposer, message })
                    }
                    EpochMessage::DecryptionShares(mut shares) => {
                        // Shares moved to other slots: valid group elements that fail there.
                        if shares.len() > 1 {
                            let last = shares.len() - 1;
                            let first_share = shares[0].1;
                            shares[0].1 = shares[last].1;
                            shares[last].1 = first_share;
                        } else {
                            shares.clear();
                        }
                        EpochMessage::DecryptionShares(shares)
                    }
                    EpochMessage::Fragments(mut fragments) => {
                        for (_, fragment) in &mut fragments {
                            if let Some(b) = fragment.bytes.first_mut() {
                                *b ^= 0xa5;
                            }
                        }
                        EpochMessage::Fragments(fragments)
                    }
                };
                Message::Epoch { epoch, message }
            }
            Message::EpochStarted(e) => Message::EpochStarted(Epoch(
                e.0.saturating_add(1 + u64::from(ctx.rng.next_u32() % 6)),
            )),
            Message::CatchUpRequest { from, count } => Message::CatchUpRequest {
                from: Epoch(from.0.saturating_sub(1)),
                count: count.saturating_mul(2),
            },
            Message::CatchUpResponse(mut batches) => {
                batches.reverse();
                Message::CatchUpResponse(batches)
            }
            Message::CommitShare { epoch, share, .. } => {
                let bad = ctx
                    .coin_secrets
                    .iter()
                    .find(|(id, _)| *id == from)
                    .map(|(_, sk)| bls::EncodedShare::from(sk.sign(&bls::coin_message(b"chaos"))));
                Message::CommitShare {
                    epoch,
                    share: bad.unwrap_or(share),
                    wants: true,
                }
            }
            // A real certificate moved to the next epoch: its signature no longer verifies.
            Message::Certificate(mut certificate) => {
                certificate.statement.epoch = certificate.statement.epoch.next();
                Message::Certificate(certificate)
            }
        }
    }
}

fn corrupt(message: &mut BroadcastMessage) {
    BadShards::corrupt(message);
}

impl Adversary for Chaos {
    fn name(&self) -> &'static str {
        "chaos"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        let mix = self.mix(ctx);
        let len = ctx.in_flight.len();
        if self.victim.is_none_or(|(_, until)| ctx.crank >= until) {
            let n = ctx.committee.n() as u64;
            let victim = NodeId((ctx.rng.next_u64() % n) as u32);
            let until = ctx.crank + 20 * n + ctx.rng.next_u64() % (200 * n);
            self.victim = Some((victim, until));
        }
        let start = random_pick(len, ctx.rng);
        let Some((victim, _)) = self.victim else {
            return start;
        };
        if !roll(ctx.rng, mix.starve) {
            return start;
        }
        (0..len)
            .map(|k| (start + k) % len)
            .find(|&i| {
                let e = &ctx.in_flight[i];
                e.from != victim && e.to != victim
            })
            .unwrap_or(start)
    }

    fn pick_reply(&mut self, ctx: &mut Ctx<'_>) -> Option<usize> {
        let mix = self.mix(ctx);
        roll(ctx.rng, mix.reply).then(|| random_pick(ctx.replies.len(), ctx.rng))
    }

    fn tamper(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: Message,
        ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        let mix = self.mix(ctx);
        if roll(ctx.rng, mix.drop) {
            return Vec::new();
        }
        if let Some(epoch) = message.epoch()
            && roll(ctx.rng, mix.selective)
            && !self.is_favoured(from, to, epoch, ctx)
        {
            return Vec::new();
        }
        let message = if roll(ctx.rng, mix.mutate) {
            Self::mutate(from, message, ctx)
        } else {
            message
        };
        if roll(ctx.rng, mix.duplicate) {
            vec![(to, message.clone()), (to, message)]
        } else {
            vec![(to, message)]
        }
    }

    fn inject(&mut self, ctx: &mut Ctx<'_>) -> Vec<(NodeId, NodeId, Message)> {
        let mix = self.mix(ctx);
        let faulty: Vec<NodeId> = ctx.faulty.iter().copied().collect();
        let honest = ctx.honest();
        let (Some(from), Some(to)) = (random_of(&faulty, ctx.rng), random_of(&honest, ctx.rng))
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if !ctx.in_flight.is_empty() && roll(ctx.rng, mix.replay) {
            let i = random_pick(ctx.in_flight.len(), ctx.rng);
            out.push((from, to, ctx.in_flight[i].message.clone()));
        }
        if roll(ctx.rng, mix.garbage) {
            let epoch = Epoch(ctx.honest_epoch.0 + u64::from(ctx.rng.next_u32() % 3));
            out.push((from, to, garbage_message(ctx, from, epoch)));
        }
        out
    }

    fn restart(&mut self, ctx: &mut Ctx<'_>) -> Option<NodeId> {
        let mix = self.mix(ctx);
        if !roll(ctx.rng, mix.restart) {
            return None;
        }
        random_of(&ctx.honest(), ctx.rng)
    }

    fn stall(&mut self, ctx: &mut Ctx<'_>) -> Option<NodeId> {
        let mix = self.mix(ctx);
        if !roll(ctx.rng, mix.stall) {
            return None;
        }
        random_of(&ctx.honest(), ctx.rng)
    }

    fn detectable(&self, _params: &beat_core::Params) -> bool {
        true
    }
}
