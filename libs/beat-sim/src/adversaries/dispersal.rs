//! Faulty proposers that attack AVID-FP dispersal (BEAT3, BEAT4) with fragments or
//! cross-checksums no honest proposer would produce.
//!
//! Each replaces a faulty proposer's `Val` messages by its own dispersal of a valid
//! contribution with made-up transactions, and rewrites the faulty replicas' `Echo` and
//! `Ready` of the honest cross-checksum (which their honest code sends) to the one each
//! recipient was given, so that the attack can complete where the protocol lets it. For BEAT0–2
//! they behave honestly.
//!
//! * `non-codeword-dispersal`: one parity fragment (global or local; held by an honest replica,
//!   in turn) is corrupted and the cross-checksum committed to it, so its hash matches but its
//!   fingerprint cannot. Its holder reports `InvalidFragment`; with `n − f` other echoes the
//!   dispersal may still complete, and readers decode from the consistent fragments.
//! * `fingerprint-inconsistent`: the fingerprint of one data fragment is altered, so that
//!   fragment and every parity computed from it fail verification. In even epochs every
//!   replica gets the altered cross-checksum; in odd ones a random subset does and the others
//!   the consistent one (two cross-checksums in one dispersal: at most one may complete).
//! * `nonzero-padding`: a codeword whose padding after the payload is not zero — every padding
//!   byte (over every group that holds padding) in even epochs, only the last one in odd
//!   epochs. This is the bug-5 attack on partial reads: a reader of a group without the
//!   padding must get the same answer as a full reader (`RD-1`). The padding is not part of
//!   the dispersed value (`beat_crypto::avid_fp`, *Deviations*), so every reader gets the
//!   contribution and there is nothing to detect.

use std::{collections::BTreeMap, sync::Arc};

use beat_core::{
    Message,
    acs::SubsetMessage,
    broadcast::{BroadcastConfig, BroadcastMessage},
    dispersal,
    epoch::EpochMessage,
};
use beat_crypto::{
    Digest,
    avid_fp::{AvidFpCode, Fpcc, Fragment},
};
use beat_types::{Committee, Epoch, NodeId};
use rand_core::Rng;

use super::broadcast::{alternative_contribution, wrap};
use crate::adversary::{Adversary, Ctx};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attack {
    NonCodeword,
    FingerprintInconsistent,
    NonzeroPadding,
}

/// What a faulty proposer sends for one of its dispersals instead of the honest one.
struct Plan {
    /// The digest of the cross-checksum its honest code dispersed (what its echoes carry).
    honest: Digest,
    /// Per recipient: the cross-checksum and the fragments it is sent.
    sent: BTreeMap<NodeId, (Fpcc, Vec<Fragment>)>,
}

/// A faulty proposer that disperses inconsistent or non-canonical data (see the module docs).
pub struct DispersalAttack {
    attack: Attack,
    code: Option<(Committee, Arc<AvidFpCode>)>,
    /// `None`: this dispersal is sent honestly (the attack does not apply to it).
    plans: BTreeMap<(Epoch, NodeId), Option<Plan>>,
}

impl DispersalAttack {
    fn new(attack: Attack) -> Self {
        Self {
            attack,
            code: None,
            plans: BTreeMap::new(),
        }
    }

    /// `non-codeword-dispersal`.
    pub fn non_codeword() -> Self {
        Self::new(Attack::NonCodeword)
    }

    /// `fingerprint-inconsistent`.
    pub fn fingerprint_inconsistent() -> Self {
        Self::new(Attack::FingerprintInconsistent)
    }

    /// `nonzero-padding`.
    pub fn nonzero_padding() -> Self {
        Self::new(Attack::NonzeroPadding)
    }

    fn code(&mut self, ctx: &Ctx<'_>) -> Arc<AvidFpCode> {
        match &self.code {
            Some((committee, code)) if *committee == ctx.committee => code.clone(),
            _ => {
                let code = BroadcastConfig::new(ctx.committee, &ctx.config.params).code;
                self.code = Some((ctx.committee, code.clone()));
                code
            }
        }
    }

    /// Builds what `proposer` sends for its dispersal in `epoch`, whose honest cross-checksum
    /// has digest `honest`. `None` if the attack does not apply (no padding to fill) or the
    /// value cannot be dispersed.
    fn plan(
        &mut self,
        ctx: &mut Ctx<'_>,
        epoch: Epoch,
        proposer: NodeId,
        honest: Digest,
    ) -> Option<Plan> {
        let code = self.code(ctx);
        let value = alternative_contribution(ctx, epoch, proposer, self.name());
        let len = value.len();
        let (k, count) = (code.k(), code.fragment_count());
        let (fpcc, fragments, altered) = match self.attack {
            Attack::NonCodeword => {
                let (_, mut fragments) = code.disperse(&value).ok()?;
                // A parity whose holder is honest, so that the fault is seen.
                let parities: Vec<usize> = (k..count)
                    .filter(|&i| {
                        code.holder_of(i)
                            .is_some_and(|h| !ctx.faulty.contains(&NodeId::from_index(h)))
                    })
                    .collect();
                let bad = *parities.get(epoch.0 as usize % parities.len().max(1))?;
                for b in fragments.get_mut(bad)?.bytes.iter_mut().take(8) {
                    *b ^= 0x5a;
                }
                let fpcc = code.cross_checksum(len as u64, &fragments).ok()?;
                (fpcc, fragments, None)
            }
            Attack::FingerprintInconsistent => {
                let (fpcc, fragments) = code.disperse(&value).ok()?;
                let mut bad = fpcc.clone();
                let j = epoch.0 as usize % k;
                bad.fingerprints.get_mut(j)?[0] ^= 1;
                (fpcc, fragments, Some(bad))
            }
            Attack::NonzeroPadding => {
                let padded = k * code.fragment_len(len as u64);
                if padded == len {
                    return None;
                }
                let mut data = value.to_vec();
                if epoch.0.is_multiple_of(2) {
                    data.extend((len..padded).map(|i| (i as u8) | 1));
                } else {
                    data.resize(padded, 0);
                    *data.last_mut()? = 0x5a;
                }
                // The same fragment length: `padded` is k·S with S a multiple of 64.
                let (_, fragments) = code.disperse(&data).ok()?;
                let fpcc = code.cross_checksum(len as u64, &fragments).ok()?;
                (fpcc, fragments, None)
            }
        };
        let mut per_holder: BTreeMap<NodeId, Vec<Fragment>> = BTreeMap::new();
        for f in fragments {
            if let Some(h) = code.holder_of(f.index as usize) {
                per_holder.entry(NodeId::from_index(h)).or_default().push(f);
            }
        }
        let everyone = epoch.0.is_multiple_of(2);
        let sent = per_holder
            .into_iter()
            .map(|(to, fragments)| {
                let given = match &altered {
                    Some(bad) if everyone || ctx.rng.next_u32() & 1 == 0 => bad.clone(),
                    _ => fpcc.clone(),
                };
                (to, (given, fragments))
            })
            .collect();
        Some(Plan { honest, sent })
    }
}

impl Adversary for DispersalAttack {
    fn name(&self) -> &'static str {
        match self.attack {
            Attack::NonCodeword => "non-codeword-dispersal",
            Attack::FingerprintInconsistent => "fingerprint-inconsistent",
            Attack::NonzeroPadding => "nonzero-padding",
        }
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
                EpochMessage::Subset(SubsetMessage::Broadcast {
                    proposer,
                    message: BroadcastMessage::Dispersal(m),
                }),
        } = &message
        else {
            return vec![(to, message)];
        };
        let (epoch, proposer) = (*epoch, *proposer);
        if !ctx.faulty.contains(&proposer) {
            return vec![(to, message)];
        }
        if let dispersal::Message::Val { fpcc, .. } = m
            && proposer == from
            && !self.plans.contains_key(&(epoch, proposer))
        {
            let plan = self.plan(ctx, epoch, proposer, fpcc.digest());
            self.plans.insert((epoch, proposer), plan);
            self.plans = self
                .plans
                .split_off(&(Epoch(epoch.0.saturating_sub(4)), NodeId(0)));
        }
        let Some(Some(plan)) = self.plans.get(&(epoch, proposer)) else {
            return vec![(to, message)];
        };
        let Some((given, fragments)) = plan.sent.get(&to) else {
            return vec![(to, message)];
        };
        let replaced = match m {
            dispersal::Message::Val { .. } if proposer == from => dispersal::Message::Val {
                fpcc: given.clone(),
                fragments: fragments.clone(),
            },
            dispersal::Message::Echo(fpcc) if fpcc.digest() == plan.honest => {
                dispersal::Message::Echo(given.clone())
            }
            dispersal::Message::Ready(d) if *d == plan.honest => {
                dispersal::Message::Ready(given.digest())
            }
            _ => return vec![(to, message)],
        };
        vec![(
            to,
            wrap(epoch, proposer, BroadcastMessage::Dispersal(replaced)),
        )]
    }

    fn detectable(&self, params: &beat_core::Params) -> bool {
        // Padding is not part of the value: non-zero padding is not a fault.
        params.variant.is_storage() && self.attack != Attack::NonzeroPadding
    }
}
