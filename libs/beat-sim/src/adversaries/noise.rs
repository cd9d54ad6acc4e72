//! Faulty replicas that stay silent, replay, inject garbage or flood far-future epochs.

use beat_core::{
    Batch, Message, aba, acs::SubsetMessage, avid, bracha, broadcast::BroadcastMessage, dispersal,
    epoch::EpochMessage,
};
use beat_crypto::{
    Digest,
    avid_fp::{Fpcc, Fragment},
    bls,
    merkle::MerkleProof,
};
use beat_types::{Epoch, NodeId};
use bytes::Bytes;
use rand_core::Rng;

use crate::adversary::{Adversary, Ctx};

/// Faulty replicas send nothing at all (they still receive).
pub struct Silent;

impl Adversary for Silent {
    fn name(&self) -> &'static str {
        "silent"
    }

    fn tamper(
        &mut self,
        _: NodeId,
        _: NodeId,
        _: Message,
        _: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        Vec::new()
    }
}

pub(crate) fn random_of<T: Copy>(items: &[T], rng: &mut impl Rng) -> Option<T> {
    (!items.is_empty()).then(|| items[(rng.next_u64() % items.len() as u64) as usize])
}

/// Faulty replicas send payloads that are not well-formed messages, through the replicas' byte
/// boundary: a valid encoding cut short, with trailing bytes, with an unknown version byte or
/// with a huge length claim spliced in; random bytes; an empty payload; now and then one byte
/// over the payload limit. They behave honestly otherwise. Each must cost the recipient a
/// `MalformedMessage` fault of the sender and nothing else (a mangled encoding that happens
/// to decode is a well-typed message from a faulty replica, which the protocol handles).
pub struct MalformedPayloads;

impl MalformedPayloads {
    fn mangle(valid: Vec<u8>, rng: &mut impl Rng) -> Vec<u8> {
        let mut bytes = valid;
        match rng.next_u32() % 50 {
            0..=9 => {
                let keep = (rng.next_u64() % bytes.len() as u64) as usize;
                bytes.truncate(keep);
            }
            10..=17 => bytes.push(rng.next_u32() as u8),
            18..=25 => bytes[0] = [0u8, 2, 0x7f, 0xff][(rng.next_u32() % 4) as usize],
            26..=35 => {
                // A postcard varint of u32::MAX: a sequence length nobody can allocate.
                let at = 1 + (rng.next_u64() % bytes.len() as u64) as usize;
                let at = at.min(bytes.len());
                bytes.splice(at..at, [0xff, 0xff, 0xff, 0xff, 0x0f]);
            }
            36..=44 => {
                let len = (rng.next_u32() % 256) as usize;
                bytes = vec![0u8; len];
                rng.fill_bytes(&mut bytes);
            }
            45..=48 => bytes.clear(),
            _ => bytes = vec![beat_core::wire::VERSION; crate::net::MAX_PAYLOAD_BYTES + 1],
        }
        bytes
    }
}

impl Adversary for MalformedPayloads {
    fn name(&self) -> &'static str {
        "malformed-payloads"
    }

    fn inject_bytes(&mut self, ctx: &mut Ctx<'_>) -> Vec<(NodeId, NodeId, Vec<u8>)> {
        if ctx.in_flight.is_empty() || !ctx.rng.next_u32().is_multiple_of(4) {
            return Vec::new();
        }
        let faulty: Vec<NodeId> = ctx.faulty.iter().copied().collect();
        let honest = ctx.honest();
        let i = (ctx.rng.next_u64() % ctx.in_flight.len() as u64) as usize;
        let valid = beat_core::wire::encode(&ctx.in_flight[i].message);
        let payload = Self::mangle(valid, ctx.rng);
        match (random_of(&faulty, ctx.rng), random_of(&honest, ctx.rng)) {
            (Some(from), Some(to)) => vec![(from, to, payload)],
            _ => Vec::new(),
        }
    }

    fn detectable(&self, _params: &beat_core::Params) -> bool {
        true
    }
}

/// Faulty replicas re-send eavesdropped messages, as their own, to random replicas (and keep
/// behaving honestly otherwise).
pub struct Replay;

impl Adversary for Replay {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn inject(&mut self, ctx: &mut Ctx<'_>) -> Vec<(NodeId, NodeId, Message)> {
        if ctx.in_flight.is_empty() || !ctx.rng.next_u32().is_multiple_of(3) {
            return Vec::new();
        }
        let faulty: Vec<NodeId> = ctx.faulty.iter().copied().collect();
        let honest = ctx.honest();
        let i = (ctx.rng.next_u64() % ctx.in_flight.len() as u64) as usize;
        let message = ctx.in_flight[i].message.clone();
        match (random_of(&faulty, ctx.rng), random_of(&honest, ctx.rng)) {
            (Some(from), Some(to)) => vec![(from, to, message)],
            _ => Vec::new(),
        }
    }

    fn detectable(&self, _params: &beat_core::Params) -> bool {
        true
    }
}

/// Builds a random, well-typed message with bogus contents for `epoch`.
pub(crate) fn garbage_message(ctx: &mut Ctx<'_>, from: NodeId, epoch: Epoch) -> Message {
    let n = ctx.committee.n() as u64;
    let rng = &mut *ctx.rng;
    let proposer = NodeId((rng.next_u64() % n) as u32);
    let round = rng.next_u32() % 6;
    let value = rng.next_u32().is_multiple_of(2);
    let mut bytes = vec![0u8; (rng.next_u32() % 64) as usize + 1];
    rng.fill_bytes(&mut bytes);
    let mut digest = [0u8; 32];
    rng.fill_bytes(&mut digest);
    let subset = |m: SubsetMessage| Message::Epoch {
        epoch,
        message: EpochMessage::Subset(m),
    };
    let agreement = |message| subset(SubsetMessage::Agreement { proposer, message });
    let variant = ctx.config.params.variant;
    let avid_kind = variant == beat_types::Variant::Beat0;
    let dispersal_kind = variant.is_storage();
    let n_fragments = ctx.committee.n();
    let broadcast = |message: bracha::Message| {
        let message = if dispersal_kind {
            // Garbage in AVID-FP form: a cross-checksum of the right shape that commits to
            // nothing, and a random fragment.
            let fpcc = Fpcc {
                payload_len: 64,
                fragment_hashes: vec![Digest(digest); n_fragments],
                fingerprints: vec![
                    [digest[0].into(), digest[1].into()];
                    (n_fragments.max(3) - 1) / 3 + 1
                ],
            };
            match message {
                bracha::Message::Val(shard) => {
                    BroadcastMessage::Dispersal(dispersal::Message::Val {
                        fpcc,
                        fragments: vec![Fragment {
                            index: proposer.0,
                            bytes: shard.to_vec(),
                        }],
                    })
                }
                bracha::Message::Echo(_) => {
                    BroadcastMessage::Dispersal(dispersal::Message::Echo(fpcc))
                }
                bracha::Message::Ready(d) => {
                    BroadcastMessage::Dispersal(dispersal::Message::Ready(d))
                }
            }
        } else if avid_kind {
            // The same garbage in AVID form: a random shard with a proof that cannot verify.
            match message {
                bracha::Message::Val(shard) => BroadcastMessage::Avid(avid::Message::Val {
                    root: Digest(digest),
                    proof: MerkleProof {
                        index: proposer.0,
                        siblings: vec![Digest(digest); 2],
                    },
                    shard,
                }),
                bracha::Message::Echo(shard) => BroadcastMessage::Avid(avid::Message::Echo {
                    root: Digest(digest),
                    proof: MerkleProof {
                        index: from.0,
                        siblings: vec![Digest(digest); 2],
                    },
                    shard,
                }),
                bracha::Message::Ready(d) => BroadcastMessage::Avid(avid::Message::Ready(d)),
            }
        } else {
            BroadcastMessage::Bracha(message)
        };
        subset(SubsetMessage::Broadcast { proposer, message })
    };
    match rng.next_u32() % 12 {
        0 => agreement(aba::Message::BVal { round, value }),
        1 => agreement(aba::Message::Aux { round, value }),
        2 => agreement(aba::Message::Conf {
            round: 2,
            values: aba::BoolSet::try_from((rng.next_u32() % 4) as u8).unwrap_or_default(),
        }),
        3 => agreement(aba::Message::Term(value)),
        4 => {
            let share = ctx
                .coin_secrets
                .iter()
                .find(|(id, _)| *id == from)
                .map(|(_, sk)| sk.sign(&bls::coin_message(&bytes)));
            match share {
                Some(share) => agreement(aba::Message::Coin { round: 2, share }),
                None => agreement(aba::Message::Term(value)),
            }
        }
        5 => broadcast(bracha::Message::Val(Bytes::from(bytes))),
        6 => broadcast(bracha::Message::Echo(Bytes::from(bytes))),
        7 => broadcast(bracha::Message::Ready(Digest(digest))),
        8 => Message::CatchUpResponse(vec![
            Batch {
                epoch,
                contributions: Vec::new(),
                ordered_labels: vec![Digest(digest)],
            }
            .into(),
        ]),
        // Another replica's commit share (eavesdropped, so that noise costs no signing), as
        // this replica's, and a "certificate" that is a share: valid group elements that fail
        // verification.
        9 | 10 => {
            let len = ctx.in_flight.len();
            let start = if len == 0 {
                0
            } else {
                rng.next_u32() as usize % len
            };
            let share = (0..len.min(64))
                .map(|k| &ctx.in_flight[(start + k) % len])
                .find_map(|e| match &e.message {
                    Message::CommitShare { share, .. } if e.from != from => Some(*share),
                    _ => None,
                });
            // A share's encoding is a signature's, so the conversion always succeeds.
            let signature = share.and_then(|s| bls::Signature::from_bytes(&s.to_bytes()).ok());
            match (share, signature) {
                (Some(share), _) if rng.next_u32().is_multiple_of(2) => Message::CommitShare {
                    epoch,
                    share,
                    wants: rng.next_u32().is_multiple_of(2),
                },
                (_, Some(signature)) => Message::Certificate(beat_core::CommitCertificate {
                    statement: beat_core::CommitStatement {
                        committee: ctx.config.committee_digest,
                        epoch,
                        batch: Digest(digest),
                        previous: Digest(digest),
                    },
                    signature,
                }),
                _ => Message::EpochStarted(epoch),
            }
        }
        _ => Message::EpochStarted(Epoch(epoch.0 + u64::from(rng.next_u32() % 8))),
    }
}

/// Faulty replicas inject random well-typed messages with bogus contents.
pub struct Garbage;

impl Adversary for Garbage {
    fn name(&self) -> &'static str {
        "garbage"
    }

    fn inject(&mut self, ctx: &mut Ctx<'_>) -> Vec<(NodeId, NodeId, Message)> {
        if !ctx.rng.next_u32().is_multiple_of(3) {
            return Vec::new();
        }
        let faulty: Vec<NodeId> = ctx.faulty.iter().copied().collect();
        let honest = ctx.honest();
        let (Some(from), Some(to)) = (random_of(&faulty, ctx.rng), random_of(&honest, ctx.rng))
        else {
            return Vec::new();
        };
        let epoch = Epoch(ctx.honest_epoch.0 + u64::from(ctx.rng.next_u32() % 2));
        vec![(from, to, garbage_message(ctx, from, epoch))]
    }

    fn detectable(&self, _params: &beat_core::Params) -> bool {
        true
    }
}

/// Faulty replicas flood epochs far beyond the window and lie about being far ahead, to make
/// honest replicas buffer unbounded state or stall.
pub struct FutureEpochFlood;

impl Adversary for FutureEpochFlood {
    fn name(&self) -> &'static str {
        "future-epoch-flood"
    }

    fn inject(&mut self, ctx: &mut Ctx<'_>) -> Vec<(NodeId, NodeId, Message)> {
        let faulty: Vec<NodeId> = ctx.faulty.iter().copied().collect();
        let honest = ctx.honest();
        let mut out = Vec::new();
        for _ in 0..2 {
            let (Some(from), Some(to)) = (random_of(&faulty, ctx.rng), random_of(&honest, ctx.rng))
            else {
                return out;
            };
            let ahead = match ctx.rng.next_u32() % 4 {
                0 => u64::from(ctx.rng.next_u32() % 4),
                1 => 4 + u64::from(ctx.rng.next_u32() % 1000),
                2 => 1_000_000 + u64::from(ctx.rng.next_u32()),
                _ => {
                    out.push((from, to, Message::EpochStarted(Epoch(u64::MAX - 1))));
                    continue;
                }
            };
            let epoch = Epoch(ctx.honest_epoch.0.saturating_add(ahead));
            out.push((from, to, garbage_message(ctx, from, epoch)));
        }
        out
    }
}
