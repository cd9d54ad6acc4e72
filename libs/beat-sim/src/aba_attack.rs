//! The HoneyBadgerBFT issue-59 attack on binary agreement, as a regression harness.
//!
//! MacBrough's attack (amiller/HoneyBadgerBFT issue 59) on MMR binary agreement with a threshold
//! coin: the adversary, holding f coin shares, learns each random coin as soon as one honest
//! replica releases its share, and then schedules the remaining `BVAL`/`AUX` messages so that
//! honest replicas end the round with values that disagree with the coin — forever. BEAT's
//! prototype and HoneyBadgerBFT are not live against it.
//!
//! This harness runs one agreement instance with an adaptive scheduler that does exactly that:
//!
//! * faulty replicas (the f lowest ids, whose shares the adversary holds) send `BVAL` for both
//!   values in every round, withhold their coin shares, and once a round's coin `s` is known send
//!   `AUX(¬s)` and `CONF({0,1})`;
//! * the scheduler knows the fixed coins of rounds ≡ 0 and ≡ 1 (mod 3) in advance, eavesdrops
//!   every coin share in flight and computes each random coin as soon as it can;
//! * it delivers messages carrying `¬s` to honest replicas first and holds messages carrying `s`
//!   back, and delays coin shares to honest replicas — and each replica's own share coming back
//!   from its keystore, a separate event — as long as it can;
//! * like every adversary here it must deliver honest-to-honest messages within a finite bound.
//!
//! With the CONF round, no honest replica releases its share before n−f replicas fixed their
//! values, so the steering comes too late: every run must terminate with agreement within
//! `max_rounds`. Steering the fixed-coin rounds keeps the agreement going into later random
//! rounds (a sweep of seeds reaches round 5 and beyond), where the late-share rule R2 and the
//! relay rule R1 of decided replicas are what let the last replicas finish.

use std::{collections::BTreeMap, sync::Arc};

use beat_core::{
    CoinId, Request,
    aba::{self, BinaryAgreement, BoolSet},
};
use beat_crypto::bls;
use beat_types::{Committee, Epoch, NodeId};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::invariants::Violation;

/// The outcome of one attacked agreement.
#[derive(Clone, Debug)]
pub struct AttackReport {
    /// Broken invariants (agreement `AGR-1`, termination `LIV-1`, `FLT-1`).
    pub violations: Vec<Violation>,
    /// The highest round any honest replica reached.
    pub max_round: u32,
    /// Deliveries.
    pub cranks: u64,
    /// Faults attributed to faulty replicas.
    pub attributed: u64,
}

struct Flight {
    from: NodeId,
    to: NodeId,
    message: aba::Message,
    sent_at: u64,
}

/// What the faulty replicas do with their coin shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultyShares {
    /// Withhold them (the issue-59 attack).
    Withhold,
    /// Send invalid ones (signatures on another message) to every honest replica; they must be
    /// attributed whenever a random-coin round is reached (`FLT-2`).
    Invalid,
}

/// Runs the attack on a committee of `n` with `seed`; fails liveness beyond `max_rounds`.
pub fn run(
    n: usize,
    seed: u64,
    max_rounds: u32,
    shares: FaultyShares,
) -> anyhow::Result<AttackReport> {
    let committee = Committee::new(n)?;
    let f = committee.f();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (pks, sks) = bls::deal(n, f, &mut rng)?;
    let pks = Arc::new(pks);
    let epoch = Epoch(seed);
    let instance = NodeId(0);
    let faulty: Vec<NodeId> = committee.members().take(f).collect();
    let honest: Vec<NodeId> = committee.members().skip(f).collect();
    // Group 1 of the split the scheduler maintains in fixed-coin rounds.
    let split: Vec<NodeId> = honest
        .iter()
        .copied()
        .take(honest.len().div_ceil(3))
        .collect();
    let mut nodes: BTreeMap<NodeId, BinaryAgreement> = honest
        .iter()
        .map(|id| {
            (
                *id,
                BinaryAgreement::new(*id, committee, pks.clone(), epoch, instance, 1024),
            )
        })
        .collect();
    let mut queue: Vec<Flight> = Vec::new();
    let mut crank = 0u64;
    let max_delay = 20 * (n * n) as u64;
    let mut violations = Vec::new();
    let mut decided: BTreeMap<NodeId, bool> = BTreeMap::new();
    let mut attributed = 0u64;
    // Coin shares the adversary has seen per round (its own plus eavesdropped honest ones).
    let mut seen_shares: BTreeMap<u32, BTreeMap<NodeId, bls::SignatureShare>> = BTreeMap::new();
    let mut coins: BTreeMap<u32, bool> = BTreeMap::new();
    let mut faulty_aux_sent: BTreeMap<u32, bool> = BTreeMap::new();
    // Keystore replies on their way back: (replica, round, share, requested at).
    let mut replies: Vec<(NodeId, u32, bls::SignatureShare, u64)> = Vec::new();
    // The fixed coins are public.
    for round in (0..max_rounds).filter(|r| r % 3 != 2) {
        coins.insert(round, round % 3 == 0);
    }

    // Faulty replicas vote both values in every round up front.
    for round in 0..max_rounds {
        for from in &faulty {
            for to in &honest {
                for value in [false, true] {
                    queue.push(Flight {
                        from: *from,
                        to: *to,
                        message: aba::Message::BVal { round, value },
                        sent_at: 0,
                    });
                }
                if round % 3 == 2 {
                    queue.push(Flight {
                        from: *from,
                        to: *to,
                        message: aba::Message::Conf {
                            round,
                            values: BoolSet::BOTH,
                        },
                        sent_at: 0,
                    });
                    if shares == FaultyShares::Invalid {
                        let share = sks[from.index()].sign(&bls::coin_message(b"not the coin"));
                        queue.push(Flight {
                            from: *from,
                            to: *to,
                            message: aba::Message::Coin { round, share },
                            sent_at: 0,
                        });
                    }
                }
            }
        }
    }

    let mut pending: Vec<(NodeId, beat_core::Step<aba::Message, bool>)> = Vec::new();
    for (i, id) in honest.iter().enumerate() {
        let step = nodes
            .get_mut(id)
            .map(|a| a.propose(i % 2 == 0))
            .unwrap_or_default();
        pending.push((*id, step));
    }

    loop {
        // Apply steps: outputs, faults, coin requests (served at once), messages.
        while let Some((id, step)) = pending.pop() {
            for b in step.outputs {
                if let Some(prev) = decided.insert(id, b)
                    && prev != b
                {
                    violations.push(Violation {
                        invariant: "AGR-1",
                        crank,
                        detail: format!("node {id} decided twice"),
                    });
                }
            }
            for fault in step.faults {
                if faulty.contains(&fault.node) {
                    attributed += 1;
                } else {
                    violations.push(Violation {
                        invariant: "FLT-1",
                        crank,
                        detail: format!("{fault}"),
                    });
                }
            }
            for request in step.requests {
                if let Request::CoinShare(CoinId { round, .. }) = request {
                    let share = sks[id.index()].sign(
                        &CoinId {
                            epoch,
                            instance,
                            round,
                        }
                        .message(),
                    );
                    replies.push((id, round, share, crank));
                }
            }
            for out in step.messages {
                let targets: Vec<NodeId> = match out.target {
                    beat_core::Target::All => committee.members().filter(|t| *t != id).collect(),
                    beat_core::Target::Node(t) => vec![t],
                };
                for to in targets {
                    if let aba::Message::Coin { round, share } = &out.message {
                        seen_shares.entry(*round).or_default().insert(id, *share);
                    }
                    if nodes.contains_key(&to) {
                        queue.push(Flight {
                            from: id,
                            to,
                            message: out.message.clone(),
                            sent_at: crank,
                        });
                    }
                }
            }
        }
        // Learn coins: f faulty shares plus one honest share determine the coin.
        for (round, shares) in &mut seen_shares {
            if coins.contains_key(round) || shares.is_empty() {
                continue;
            }
            let id = CoinId {
                epoch,
                instance,
                round: *round,
            };
            let msg = id.message();
            for fid in &faulty {
                shares.insert(*fid, sks[fid.index()].sign(&msg));
            }
            if let Some(sig) = pks.combine_optimistic(&msg, shares).value {
                coins.insert(*round, bls::coin_bit(&sig));
            }
        }
        for (round, s) in &coins {
            if faulty_aux_sent.insert(*round, true).is_none() {
                for from in &faulty {
                    for to in &honest {
                        // A fixed coin is known before the round: keep the honest replicas
                        // split (group 1 towards ¬s, group 2 towards {0, 1}, so est = s).
                        // A random coin is learned late: push everyone towards ¬s.
                        let value = if round % 3 != 2 && !split.contains(to) {
                            *s
                        } else {
                            !*s
                        };
                        queue.push(Flight {
                            from: *from,
                            to: *to,
                            message: aba::Message::Aux {
                                round: *round,
                                value,
                            },
                            sent_at: crank,
                        });
                    }
                }
            }
        }
        // A keystore reply comes back only when nothing else is left, or when overdue.
        if let Some(i) = replies
            .iter()
            .position(|r| queue.is_empty() || crank - r.3 > max_delay)
        {
            let (id, round, share, _) = replies.swap_remove(i);
            crank += 1;
            let next = nodes
                .get_mut(&id)
                .map(|a| a.handle_coin_share(round, share))
                .unwrap_or_default();
            pending.push((id, next));
            continue;
        }
        if decided.len() == honest.len() && queue.is_empty() {
            break;
        }
        if queue.is_empty() {
            break;
        }
        let max_round = nodes
            .values()
            .map(BinaryAgreement::round)
            .max()
            .unwrap_or(0);
        if max_round >= max_rounds || crank > 50_000_000 {
            break;
        }
        // Schedule: forced delivery of an overdue honest message, else by preference.
        let overdue = queue
            .iter()
            .enumerate()
            .filter(|(_, m)| !faulty.contains(&m.from) && crank - m.sent_at > max_delay)
            .min_by_key(|(_, m)| m.sent_at)
            .map(|(i, _)| i);
        let index = overdue.unwrap_or_else(|| {
            let score = |m: &Flight| -> u8 {
                let carries = |v: bool| match &m.message {
                    aba::Message::BVal { value, .. } | aba::Message::Aux { value, .. } => {
                        *value == v
                    }
                    aba::Message::Conf { values, .. } => values.contains(v),
                    aba::Message::Term(b) => *b == v,
                    aba::Message::Coin { .. } => false,
                };
                let round = match &m.message {
                    aba::Message::BVal { round, .. }
                    | aba::Message::Aux { round, .. }
                    | aba::Message::Conf { round, .. }
                    | aba::Message::Coin { round, .. } => Some(*round),
                    aba::Message::Term(_) => None,
                };
                let fixed = round.is_some_and(|r| r % 3 != 2);
                let bval = matches!(m.message, aba::Message::BVal { .. });
                match (round.and_then(|r| coins.get(&r)), &m.message) {
                    // Coin shares reach honest replicas last, except invalid faulty ones, which
                    // the adversary wants counted among the first f+1.
                    (_, aba::Message::Coin { .. }) if faulty.contains(&m.from) => 3,
                    (_, aba::Message::Coin { .. }) => 0,
                    // Fixed coin s, group 2: BVAL(¬s) first (AUX(¬s)), then s into bin_values
                    // too, so that vals = {0, 1} and est = s.
                    (Some(s), _) if fixed && !split.contains(&m.to) => match (bval, carries(!*s)) {
                        (true, true) => 4,
                        (true, false) => 3,
                        (false, false) if faulty.contains(&m.from) => 3,
                        _ => 1,
                    },
                    (Some(s), _) if carries(!*s) => 4,
                    (Some(s), _) if carries(*s) => 0,
                    _ => 2,
                }
            };
            let best = queue.iter().map(score).max().unwrap_or(0);
            let candidates: Vec<usize> = (0..queue.len())
                .filter(|i| score(&queue[*i]) == best)
                .collect();
            candidates[(rng.next_u64() % candidates.len() as u64) as usize]
        });
        let Flight {
            from, to, message, ..
        } = queue.swap_remove(index);
        crank += 1;
        if let Some(node) = nodes.get_mut(&to) {
            let step = node.handle_message(from, message);
            pending.push((to, step));
        }
    }

    let max_round = nodes
        .values()
        .map(BinaryAgreement::round)
        .max()
        .unwrap_or(0);
    if decided.len() != honest.len() {
        violations.push(Violation {
            invariant: "LIV-1",
            crank,
            detail: format!(
                "{} of {} honest replicas decided; reached round {max_round}",
                decided.len(),
                honest.len()
            ),
        });
    }
    if shares == FaultyShares::Invalid && max_round >= 3 && attributed == 0 && f > 0 {
        violations.push(Violation {
            invariant: "FLT-2",
            crank,
            detail: format!("random rounds were reached (round {max_round}) but no invalid coin share was attributed"),
        });
    }
    let values: Vec<bool> = decided.values().copied().collect();
    if values.windows(2).any(|w| w[0] != w[1]) {
        violations.push(Violation {
            invariant: "AGR-1",
            crank,
            detail: format!("decisions {decided:?}"),
        });
    }
    Ok(AttackReport {
        violations,
        max_round,
        cranks: crank,
        attributed,
    })
}
