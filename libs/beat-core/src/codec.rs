//! Contribution encoding and replica ciphertext labels (BEAT2 client labels are in
//! [`crate::client`]).
//!
//! A contribution is a list of transactions, encoded with postcard (a length-prefixed sequence of
//! length-prefixed byte strings). Every honest replica decodes the same bytes the same way, so a
//! contribution that fails to decode is rejected by all of them together.

use beat_types::{Epoch, NodeId, Transaction};

/// The label that binds a BEAT0/1 (and encrypted BEAT3/4) contribution to the one epoch and
/// proposer it may be decrypted for (protocol reference, "labels" decision).
pub fn epoch_label(epoch: Epoch, proposer: NodeId) -> Vec<u8> {
    let mut out = Vec::with_capacity(EPOCH_LABEL_PREFIX.len() + 12);
    out.extend_from_slice(EPOCH_LABEL_PREFIX);
    out.extend_from_slice(&epoch.0.to_le_bytes());
    out.extend_from_slice(&proposer.0.to_le_bytes());
    out
}

const EPOCH_LABEL_PREFIX: &[u8] = b"BEAT-EPOCH-V1/";

/// Encodes a contribution.
pub fn encode_transactions(txs: &[Transaction]) -> Vec<u8> {
    // Serializing a Vec of byte strings into a Vec cannot fail.
    postcard::to_allocvec(txs).unwrap_or_default()
}

/// Decodes a contribution, rejecting trailing bytes, empty transactions, transactions above
/// `max_tx_bytes` and more than `max_count` transactions.
pub fn decode_transactions(
    bytes: &[u8],
    max_count: usize,
    max_tx_bytes: usize,
) -> Option<Vec<Transaction>> {
    let (txs, rest): (Vec<Transaction>, &[u8]) = postcard::take_from_bytes(bytes).ok()?;
    let well_formed = rest.is_empty()
        && txs.len() <= max_count
        && txs.iter().all(|t| !t.is_empty() && t.len() <= max_tx_bytes);
    well_formed.then_some(txs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contributions_round_trip_and_reject_bad_input() {
        let txs = vec![
            Transaction::new(vec![1; 10]),
            Transaction::new(vec![2; 300]),
        ];
        let bytes = encode_transactions(&txs);
        assert_eq!(decode_transactions(&bytes, 10, 300), Some(txs));
        assert_eq!(decode_transactions(&bytes, 1, 300), None, "too many");
        assert_eq!(decode_transactions(&bytes, 10, 299), None, "too large");
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(decode_transactions(&trailing, 10, 300), None);
        assert_eq!(
            decode_transactions(&bytes[..bytes.len() - 1], 10, 300),
            None
        );
        assert_eq!(
            decode_transactions(&encode_transactions(&[]), 10, 10),
            Some(vec![])
        );
        let empty_tx = encode_transactions(&[Transaction::new(vec![])]);
        assert_eq!(decode_transactions(&empty_tx, 10, 10), None);
        // A huge declared length must fail without allocating it.
        assert_eq!(
            decode_transactions(&[0xff, 0xff, 0xff, 0xff, 0x0f], 10, 10),
            None
        );
    }

    #[test]
    fn epoch_labels_are_distinct() {
        assert_ne!(
            epoch_label(Epoch(1), NodeId(2)),
            epoch_label(Epoch(2), NodeId(1))
        );
    }
}
