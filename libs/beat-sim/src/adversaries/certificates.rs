//! Faulty replicas against commit certificates (module `beat_core::node::certify`).

use beat_core::{CommitStatement, Message};
use beat_crypto::{Digest, bls};
use beat_types::NodeId;
use rand_core::Rng;

use super::selective::target;
use crate::adversary::{Adversary, Ctx, random_pick};

fn is_certification(message: &Message) -> bool {
    matches!(
        message,
        Message::CommitShare { .. } | Message::Certificate(_)
    )
}

/// Faulty replicas send their valid commit shares and certificates only to the honest
/// replicas other than one target; every share or certificate for the target is delivered
/// last (when nothing else is in flight, or the delay bound forces it); keystore replies come
/// back as late as the bound allows. The favoured replicas certify with the faulty shares and
/// the first honest one, and run ahead until the watermark holds them; the target must collect
/// f+1 honest shares or be sent a certificate (C4, C5), or ask for one when stalled (C7).
pub struct SelectiveCommitShares;

impl Adversary for SelectiveCommitShares {
    fn name(&self) -> &'static str {
        "selective-commit-shares"
    }

    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        let t = target(ctx);
        let len = ctx.in_flight.len();
        let start = random_pick(len, ctx.rng);
        (0..len)
            .map(|k| (start + k) % len)
            .find(|&i| {
                let e = &ctx.in_flight[i];
                !(e.to == t && is_certification(&e.message))
            })
            .unwrap_or(start)
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
        if is_certification(&message) && to == target(ctx) {
            return Vec::new();
        }
        vec![(to, message)]
    }
}

/// Faulty replicas sign, with their real key shares, a statement on another batch (a valid
/// group element that fails verification for the agreed statement) — or, for every third
/// epoch, send 48 random bytes (shares are decoded only when combined, C3) — to half the
/// honest replicas, nothing to the others. Certificates they pass on (as an epoch's combiner,
/// multicast to all, C3') go out valid to a third of the replicas, with the sender's own share
/// in place of the signature to another third — a valid point that fails the batch check —
/// and naming another batch (a real signature that no longer verifies) to the rest.
/// Honest replicas must certify anyway and blame the senders of what they combined or checked.
pub struct WrongCommitShares;

impl Adversary for WrongCommitShares {
    fn name(&self) -> &'static str {
        "wrong-commit-shares"
    }

    fn tamper(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: Message,
        ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        match message {
            Message::CommitShare { epoch, share, .. } => {
                if to.0 % 2 == 1 {
                    return Vec::new();
                }
                let forged = CommitStatement {
                    committee: ctx.config.committee_digest,
                    epoch,
                    batch: Digest([ctx.rng.next_u32() as u8; 32]),
                    previous: Digest::default(),
                };
                let share = if epoch.0.is_multiple_of(3) {
                    let mut bytes = [0u8; bls::EncodedShare::LEN];
                    ctx.rng.fill_bytes(&mut bytes);
                    bls::EncodedShare::from_bytes(&bytes)
                } else {
                    ctx.coin_secrets
                        .iter()
                        .find(|(id, _)| *id == from)
                        .map_or(share, |(_, sk)| sk.sign(&forged.message()).into())
                };
                // Asking for the certificate makes honest replicas answer with it.
                vec![(
                    to,
                    Message::CommitShare {
                        epoch,
                        share,
                        wants: true,
                    },
                )]
            }
            Message::Certificate(mut certificate) => {
                let own = ctx
                    .coin_secrets
                    .iter()
                    .find(|(id, _)| *id == from)
                    .map(|(_, sk)| sk.sign(&certificate.statement.message()))
                    .and_then(|share| bls::Signature::from_bytes(&share.to_bytes()).ok());
                // Per receiver: the valid certificate, a valid point that is not the
                // signature, or a real signature on a statement naming another batch (refused
                // on arrival at a replica that committed the epoch, at commit at one that had
                // not: C3').
                match (to.0 % 3, own) {
                    (0, _) => {}
                    (1, Some(signature)) => certificate.signature = signature,
                    _ => certificate.statement.batch = Digest([ctx.rng.next_u32() as u8; 32]),
                }
                vec![(to, Message::Certificate(certificate))]
            }
            other => vec![(to, other)],
        }
    }

    /// A bad share is looked at only when it is among the first f+1 combined (low ids help),
    /// and a moved certificate only by a replica that has not certified its epoch: attribution
    /// is likely, not certain, so it is reported rather than required (the core's unit tests
    /// require it).
    fn detectable(&self, _params: &beat_core::Params) -> bool {
        false
    }

    fn wants_low_ids(&self) -> bool {
        true
    }
}
