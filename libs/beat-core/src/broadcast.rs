//! The reliable-broadcast layer of an epoch, one kind per variant family.
//!
//! BEAT's variants differ in how a proposal reaches the other replicas (BEAT paper §4–§7):
//! Bracha's replicated broadcast (BEAT1, BEAT2), AVID erasure-coded broadcast (BEAT0) and AVID-FP
//! verifiable dispersal (BEAT3, BEAT4). The asynchronous common subset only needs "deliver" from
//! each of them, so this module wraps them behind one interface.

use std::sync::Arc;

use beat_crypto::{
    avid_fp::{AvidFpCode, Layout},
    erasure::ErasureCoder,
};
use beat_types::{Committee, NodeId, Variant};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Params, Step, avid, bracha, dispersal};

/// Which broadcast an epoch uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BroadcastKind {
    /// Bracha's reliable broadcast.
    Bracha,
    /// AVID erasure-coded reliable broadcast.
    Avid,
    /// AVID-FP verifiable dispersal.
    Dispersal,
}

/// Everything needed to create broadcast instances: built once per replica and shared.
#[derive(Clone, Debug)]
pub struct BroadcastConfig {
    /// The kind.
    pub kind: BroadcastKind,
    /// The committee.
    pub committee: Committee,
    /// Largest value accepted.
    pub max_value_len: usize,
    /// The erasure coder (AVID).
    pub coder: Arc<ErasureCoder>,
    /// The fingerprinted code (AVID-FP; BEAT4 with the pyramid layout).
    pub code: Arc<AvidFpCode>,
}

impl BroadcastConfig {
    /// The broadcast configuration for `params`.
    pub fn new(committee: Committee, params: &Params) -> Self {
        let kind = match params.variant {
            Variant::Beat0 => BroadcastKind::Avid,
            Variant::Beat1 | Variant::Beat2 => BroadcastKind::Bracha,
            Variant::Beat3 | Variant::Beat4 => BroadcastKind::Dispersal,
        };
        let max_value_len = crate::config::max_value_bytes(params);
        // The core never spawns threads: one thread for hashing shards.
        let coder = Arc::new(
            ErasureCoder::new(committee)
                .with_max_payload_len(max_value_len)
                .with_threads(1),
        );
        let layout = match params.variant {
            Variant::Beat4 => Layout::Pyramid {
                groups: params.pyramid_groups.clamp(1, committee.data_shards()),
            },
            _ => Layout::Mds,
        };
        // The parameters were validated (n ≤ the committee bound, groups clamped to 1..=k), so
        // the code exists; fall back to the MDS layout rather than fail.
        let code = AvidFpCode::new(committee, layout)
            .or_else(|_| AvidFpCode::new(committee, Layout::Mds))
            .map(|c| Arc::new(c.with_max_payload_len(max_value_len).with_threads(1)))
            .unwrap_or_else(|e| Arc::new(unreachable_code(e)));
        Self {
            kind,
            committee,
            max_value_len,
            coder,
            code,
        }
    }
}

/// A message of one broadcast instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BroadcastMessage {
    /// Bracha.
    Bracha(bracha::Message),
    /// AVID.
    Avid(avid::Message),
    /// AVID-FP.
    Dispersal(dispersal::Message),
}

impl BroadcastMessage {
    /// Returns `true` for the proposer's initial message (`Val`).
    pub fn is_val(&self) -> bool {
        match self {
            Self::Bracha(m) => matches!(m, bracha::Message::Val(_)),
            Self::Avid(m) => matches!(m, avid::Message::Val { .. }),
            Self::Dispersal(m) => matches!(m, dispersal::Message::Val { .. }),
        }
    }
}

/// What a broadcast instance delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// The proposer's whole value.
    Value(Bytes),
    /// ⊥: the proposer's dispersal does not decode to a value; every honest replica agrees.
    Undecodable,
    /// A completed AVID-FP dispersal: the agreed cross-checksum and this replica's fragments.
    Dispersed(dispersal::Dispersed),
}

/// One broadcast instance of any kind.
#[derive(Debug)]
pub enum Broadcast {
    /// Bracha.
    Bracha(bracha::Bracha),
    /// AVID.
    Avid(avid::Avid),
    /// AVID-FP.
    Dispersal(dispersal::Dispersal),
}

impl Broadcast {
    /// Creates the instance of `proposer`'s broadcast at `our_id`.
    pub fn new(config: &BroadcastConfig, our_id: NodeId, proposer: NodeId) -> Self {
        match config.kind {
            BroadcastKind::Bracha => Self::Bracha(bracha::Bracha::new(
                our_id,
                proposer,
                config.committee,
                config.max_value_len,
            )),
            BroadcastKind::Avid => Self::Avid(avid::Avid::new(
                our_id,
                proposer,
                config.committee,
                config.coder.clone(),
                config.max_value_len,
            )),
            BroadcastKind::Dispersal => Self::Dispersal(dispersal::Dispersal::new(
                our_id,
                proposer,
                config.committee,
                config.code.clone(),
            )),
        }
    }

    /// AVID-FP: this replica's verified fragments under the cross-checksum `commitment`, if it
    /// got them (see [`dispersal::Dispersal::fragments_for`]); `None` for other kinds.
    pub fn dispersed_fragments(
        &self,
        commitment: &beat_crypto::Digest,
    ) -> Option<dispersal::Dispersed> {
        match self {
            Self::Dispersal(d) => d.fragments_for(commitment),
            Self::Bracha(_) | Self::Avid(_) => None,
        }
    }

    /// Proposes `value` (only meaningful at the proposer).
    pub fn propose(&mut self, value: Bytes) -> Step<BroadcastMessage, Delivered> {
        match self {
            Self::Bracha(b) => lift(b.propose(value), BroadcastMessage::Bracha, Delivered::Value),
            Self::Avid(b) => lift(b.propose(value), BroadcastMessage::Avid, avid_output),
            Self::Dispersal(b) => lift(
                b.propose(value),
                BroadcastMessage::Dispersal,
                Delivered::Dispersed,
            ),
        }
    }

    /// Handles a message from `sender`. A message of another kind than the instance's is
    /// ignored: a correct replica never sends one, and the epoch routes by kind anyway.
    pub fn handle_message(
        &mut self,
        sender: NodeId,
        message: BroadcastMessage,
    ) -> Step<BroadcastMessage, Delivered> {
        match (self, message) {
            (Self::Bracha(b), BroadcastMessage::Bracha(m)) => lift(
                b.handle_message(sender, m),
                BroadcastMessage::Bracha,
                Delivered::Value,
            ),
            (Self::Avid(b), BroadcastMessage::Avid(m)) => lift(
                b.handle_message(sender, m),
                BroadcastMessage::Avid,
                avid_output,
            ),
            (Self::Dispersal(b), BroadcastMessage::Dispersal(m)) => lift(
                b.handle_message(sender, m),
                BroadcastMessage::Dispersal,
                Delivered::Dispersed,
            ),
            // A message of another broadcast kind: a correct replica never sends one (every
            // replica runs the committee's variant). Listed explicitly so that adding a kind
            // cannot silently drop its messages.
            (Self::Bracha(_), BroadcastMessage::Avid(_) | BroadcastMessage::Dispersal(_))
            | (Self::Avid(_), BroadcastMessage::Bracha(_) | BroadcastMessage::Dispersal(_))
            | (Self::Dispersal(_), BroadcastMessage::Bracha(_) | BroadcastMessage::Avid(_)) => {
                Step::default()
            }
        }
    }
}

fn avid_output(o: avid::AvidOutput) -> Delivered {
    match o {
        avid::AvidOutput::Value(v) => Delivered::Value(v),
        avid::AvidOutput::Undecodable => Delivered::Undecodable,
    }
}

fn lift<M, O>(
    step: Step<M, O>,
    wrap: impl Fn(M) -> BroadcastMessage,
    out: impl Fn(O) -> Delivered,
) -> Step<BroadcastMessage, Delivered> {
    let mut lifted = Step::default();
    let outputs = step.absorb_into(&mut lifted, wrap);
    lifted.outputs.extend(outputs.into_iter().map(out));
    lifted
}

/// The AVID-FP code cannot fail to build for a validated committee (n ≤ 1024 is far within
/// reed-solomon-simd's limits); this documents that instead of panicking silently.
#[cold]
fn unreachable_code(e: beat_crypto::avid_fp::AvidFpError) -> AvidFpCode {
    // With MDS layout and n ≤ MAX_COMMITTEE_SIZE the constructor only fails on invalid
    // parameters, which Committee rules out; keep a valid single-shard code as the last resort.
    let _ = e;
    #[allow(clippy::expect_used)]
    AvidFpCode::with_params(1, 1, Layout::Mds).expect("a 1-of-1 code always exists")
}
