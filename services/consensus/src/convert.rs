//! Conversions between the protocol's types and the API's protobuf messages.

use beat_core::{Batch, CommitCertificate, Content, epoch::StoredFragments};
use beat_crypto::Digest;
use beat_proto::{common::v1 as pb, consensus::v1 as consensus_pb};
use beat_types::Variant;
use bytes::Bytes;

/// A committed batch in API form. `digest` is its [`Batch::digest`]: a live commit carries it
/// from the certification step, which hashed the batch already. The transactions share their
/// bytes with `b` (nothing is copied).
pub fn batch(b: &Batch, digest: &Digest) -> pb::Batch {
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
                            transactions: txs.iter().map(|t| t.bytes().clone()).collect(),
                        })
                    }
                    Content::Rejected(kind) => pb::contribution::Content::Rejected(
                        // The core's reject code is the API's enumeration value.
                        kind.reject_code() as i32,
                    ),
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
        digest: Bytes::copy_from_slice(digest.as_bytes()),
    }
}

/// A commit certificate in API form.
pub fn certificate(c: &CommitCertificate) -> pb::CommitCertificate {
    let s = &c.statement;
    pb::CommitCertificate {
        committee_digest: Bytes::copy_from_slice(s.committee.as_bytes()),
        epoch: s.epoch.0,
        batch_digest: Bytes::copy_from_slice(s.batch.as_bytes()),
        previous: Bytes::copy_from_slice(s.previous.as_bytes()),
        signature: Bytes::copy_from_slice(&c.signature.to_bytes()),
    }
}

/// A replica's stored fragments of one dispersal in API form, or `None` if it holds none (the
/// proposer never sent it valid ones).
pub fn read_fragment_response(
    stored: &StoredFragments,
) -> Option<consensus_pb::ReadFragmentResponse> {
    let mut fragments = stored.fragments.clone();
    fragments.sort_by_key(|f| f.index);
    let first = fragments.first()?;
    Some(consensus_pb::ReadFragmentResponse {
        index: first.index,
        fragment: Bytes::copy_from_slice(&first.bytes),
        // Serializing a cross-checksum into a Vec cannot fail.
        cross_checksum: Bytes::from(postcard::to_allocvec(&stored.fpcc).unwrap_or_default()),
        fragments: fragments
            .iter()
            .map(|f| consensus_pb::StoredFragment {
                index: f.index,
                data: Bytes::copy_from_slice(&f.bytes),
            })
            .collect(),
    })
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
