//! Adversaries that only choose the delivery order.

use beat_types::NodeId;
use rand_core::Rng;

use crate::adversary::{Adversary, Ctx, random_pick};

/// Random delivery order; faulty replicas behave honestly.
pub struct Benign;

impl Adversary for Benign {
    fn name(&self) -> &'static str {
        "benign"
    }
}

/// Oldest message first.
pub struct Fifo;

impl Adversary for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        ctx.in_flight
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.sent_at)
            .map_or(0, |(i, _)| i)
    }

    fn pick_reply(&mut self, ctx: &mut Ctx<'_>) -> Option<usize> {
        let oldest_message = ctx.in_flight.iter().map(|e| e.sent_at).min();
        ctx.replies
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| r.issued_at)
            .filter(|(_, r)| oldest_message.is_none_or(|m| r.issued_at <= m))
            .map(|(i, _)| i)
    }
}

/// Always delivers to the lowest-numbered replica first (hbbft's `NodeOrderAdversary`).
pub struct FirstDelivery;

impl Adversary for FirstDelivery {
    fn name(&self) -> &'static str {
        "first-delivery"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        ctx.in_flight
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| (e.to, e.sent_at))
            .map_or(0, |(i, _)| i)
    }
}

/// Picks a random message not matching `avoid`, trying a few times before giving up.
fn pick_avoiding(ctx: &mut Ctx<'_>, avoid: impl Fn(NodeId, NodeId) -> bool) -> usize {
    let len = ctx.in_flight.len();
    for _ in 0..16 {
        let i = random_pick(len, ctx.rng);
        let e = &ctx.in_flight[i];
        if !avoid(e.from, e.to) {
            return i;
        }
    }
    let start = random_pick(len, ctx.rng);
    (0..len)
        .map(|k| (start + k) % len)
        .find(|&i| !avoid(ctx.in_flight[i].from, ctx.in_flight[i].to))
        .unwrap_or(start)
}

/// Delays everything to and from one honest replica (the highest-numbered) as long as the
/// eventual-delivery bound allows.
#[derive(Default)]
pub struct Lagging {
    target: Option<NodeId>,
}

impl Adversary for Lagging {
    fn name(&self) -> &'static str {
        "lagging"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        let target = *self
            .target
            .get_or_insert_with(|| ctx.honest().last().copied().unwrap_or(NodeId(0)));
        pick_avoiding(ctx, |from, to| from == target || to == target)
    }
}

/// Splits the honest replicas into two halves (chosen by the seed) and delays traffic between
/// them as long as the bound allows: a network partition that heals only through the
/// eventual-delivery guarantee.
#[derive(Default)]
pub struct Partition {
    side_a: Option<Vec<NodeId>>,
}

impl Adversary for Partition {
    fn name(&self) -> &'static str {
        "partition"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        if self.side_a.is_none() {
            let mut honest = ctx.honest();
            for i in (1..honest.len()).rev() {
                honest.swap(i, (ctx.rng.next_u64() % (i as u64 + 1)) as usize);
            }
            honest.truncate(honest.len() / 2);
            self.side_a = Some(honest);
        }
        let a = self.side_a.clone().unwrap_or_default();
        let faulty = ctx.faulty.clone();
        pick_avoiding(ctx, |from, to| {
            !faulty.contains(&from)
                && !faulty.contains(&to)
                && (a.contains(&from) != a.contains(&to))
        })
    }
}

/// Crashes and restarts honest replicas at random moments: each restart rebuilds the replica
/// from its last checkpoint and write-ahead log (`RST-1` checks that it sends nothing new), and
/// messages addressed to it while it is "down" are simply delivered late.
#[derive(Default)]
pub struct CrashRestart {
    next: Option<u64>,
}

impl Adversary for CrashRestart {
    fn name(&self) -> &'static str {
        "crash-restart"
    }

    fn restart(&mut self, ctx: &mut Ctx<'_>) -> Option<NodeId> {
        let n = ctx.committee.n() as u64;
        let next = *self
            .next
            .get_or_insert_with(|| ctx.crank + 20 * n + ctx.rng.next_u64() % (40 * n));
        if ctx.crank < next {
            return None;
        }
        self.next = Some(ctx.crank + 20 * n + ctx.rng.next_u64() % (60 * n * n));
        let honest = ctx.honest();
        (!honest.is_empty()).then(|| honest[(ctx.rng.next_u64() % honest.len() as u64) as usize])
    }
}

/// Makes one honest replica fall far behind — further than the others' future-epoch window
/// and their send queues' deferral — by delaying everything to and from it with a much larger
/// (still finite) delivery bound, over a workload long enough for the others to run ahead and
/// then go idle. The lagging replica must come back by catch-up, with nobody submitting any
/// more (the idle-lag bug: catch-up waited for peers that never advanced again).
#[derive(Default)]
pub struct LaggingPastWindow {
    target: Option<NodeId>,
}

impl Adversary for LaggingPastWindow {
    fn name(&self) -> &'static str {
        "lagging-past-window"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        let target = *self
            .target
            .get_or_insert_with(|| ctx.honest().last().copied().unwrap_or(NodeId(0)));
        pick_avoiding(ctx, |from, to| from == target || to == target)
    }

    fn delay_bound(&self, n: usize) -> Option<u64> {
        Some(2_000 * (n * n) as u64)
    }

    fn workload_scale(&self) -> usize {
        6
    }
}

/// Keeps excluding one honest proposer: every message of its broadcast instance waits as long
/// as the delivery bound allows, so its agreement tends to decide 0 epoch after epoch. Its
/// clients' transactions, given to every honest replica, must still be committed within the
/// censorship bound (CEN-1) through the other proposers.
#[derive(Default)]
pub struct ExcludeProposer {
    target: Option<NodeId>,
}

impl Adversary for ExcludeProposer {
    fn name(&self) -> &'static str {
        "exclude-proposer"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        let target = *self.target.get_or_insert_with(|| {
            let honest = ctx.honest();
            honest
                .get((ctx.rng.next_u64() % honest.len().max(1) as u64) as usize)
                .copied()
                .unwrap_or(NodeId(0))
        });
        let excluded = |e: &crate::adversary::Envelope| {
            matches!(
                &e.message,
                beat_core::Message::Epoch {
                    message: beat_core::epoch::EpochMessage::Subset(
                        beat_core::acs::SubsetMessage::Broadcast { proposer, .. }
                    ),
                    ..
                } if *proposer == target
            )
        };
        let len = ctx.in_flight.len();
        let start = random_pick(len, ctx.rng);
        (0..len)
            .map(|k| (start + k) % len)
            .find(|&i| !excluded(&ctx.in_flight[i]))
            .unwrap_or(start)
    }
}

/// Makes one honest replica lag (its traffic waits as long as the bound allows) and now and
/// then restarts its gateway: messages in flight to it are lost, and peers re-send only what
/// they sent since their last checkpoint. The replica then misses messages for good and must
/// catch up from committed batches — also when it is only one or two epochs behind an idle
/// cluster, where peers never get `catch_up_lag` epochs ahead (N5': the stall timer).
#[derive(Default)]
pub struct LinkReset {
    target: Option<NodeId>,
    next: Option<u64>,
}

impl Adversary for LinkReset {
    fn name(&self) -> &'static str {
        "link-reset"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        let target = *self
            .target
            .get_or_insert_with(|| ctx.honest().last().copied().unwrap_or(NodeId(0)));
        pick_avoiding(ctx, |from, to| from == target || to == target)
    }

    fn reset_links(&mut self, ctx: &mut Ctx<'_>) -> Option<NodeId> {
        let n = ctx.committee.n() as u64;
        let next = *self
            .next
            .get_or_insert_with(|| ctx.crank + 30 * n + ctx.rng.next_u64() % (60 * n));
        if ctx.crank < next {
            return None;
        }
        self.next = Some(ctx.crank + 30 * n + ctx.rng.next_u64() % (120 * n));
        self.target
    }

    fn workload_scale(&self) -> usize {
        3
    }
}
