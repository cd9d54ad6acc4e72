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
