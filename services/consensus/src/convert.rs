//! Conversions between the protocol's types and the API's protobuf messages.

use beat_core::{Batch, Content, FaultKind};
use beat_proto::common::v1 as pb;
use beat_types::Variant;
use bytes::Bytes;

/// A committed batch in API form.
pub fn batch(b: &Batch) -> pb::Batch {
    pb::Batch {
        epoch: b.epoch.0,
        contributions: b
            .contributions
            .iter()
            .map(|c| pb::Contribution {
                proposer: c.proposer.0,
                content: Some(match &c.content {
                    Content::Transactions(txs) => {
                        pb::contribution::Content::Transactions(pb::TransactionList {
                            transactions: txs
                                .iter()
                                .map(|t| Bytes::copy_from_slice(t.as_bytes()))
                                .collect(),
                        })
                    }
                    Content::Rejected(kind) => {
                        pb::contribution::Content::Rejected(reject_reason(*kind) as i32)
                    }
                    Content::Stored(s) => pb::contribution::Content::Stored(pb::StoredCommitment {
                        commitment: Bytes::copy_from_slice(s.commitment.as_bytes()),
                        payload_len: s.payload_len,
                    }),
                }),
            })
            .collect(),
        ordered_labels: b
            .ordered_labels
            .iter()
            .map(|d| Bytes::copy_from_slice(d.as_bytes()))
            .collect(),
        digest: Bytes::copy_from_slice(b.digest().as_bytes()),
    }
}

fn reject_reason(kind: FaultKind) -> pb::RejectReason {
    match kind {
        FaultKind::UndecodableValue => pb::RejectReason::Undecodable,
        FaultKind::InvalidCiphertext => pb::RejectReason::InvalidCiphertext,
        FaultKind::UndecryptableCiphertext => pb::RejectReason::Undecryptable,
        _ => pb::RejectReason::Malformed,
    }
}

/// A variant in API form.
pub fn variant(v: Variant) -> pb::Variant {
    match v {
        Variant::Beat0 => pb::Variant::Beat0,
        Variant::Beat1 => pb::Variant::Beat1,
        Variant::Beat2 => pb::Variant::Beat2,
        Variant::Beat3 => pb::Variant::Beat3,
        Variant::Beat4 => pb::Variant::Beat4,
    }
}
