//! Contribution encoding and ciphertext labels.
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
const CLIENT_LABEL_PREFIX: &[u8] = b"BEAT-CLIENT-V1/";

/// The label a BEAT2 client puts on a transaction: its identity and a request number, so the
/// ciphertext can only ever be decrypted as that request.
pub fn client_label(client: &[u8], request: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(CLIENT_LABEL_PREFIX.len() + client.len() + 9);
    out.extend_from_slice(CLIENT_LABEL_PREFIX);
    out.extend_from_slice(&(client.len() as u64).to_le_bytes());
    out.extend_from_slice(client);
    out.extend_from_slice(&request.to_le_bytes());
    out
}

/// Returns `true` for a well-formed BEAT2 client label.
pub fn is_client_label(label: &[u8]) -> bool {
    let Some(rest) = label.strip_prefix(CLIENT_LABEL_PREFIX) else {
        return false;
    };
    if rest.len() < 16 {
        return false;
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&rest[..8]);
    u64::from_le_bytes(len) == (rest.len() - 16) as u64
}

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
    fn labels_are_distinct_and_recognised() {
        assert_ne!(
            epoch_label(Epoch(1), NodeId(2)),
            epoch_label(Epoch(2), NodeId(1))
        );
        let l = client_label(b"alice", 7);
        assert!(is_client_label(&l));
        assert!(!is_client_label(&epoch_label(Epoch(1), NodeId(2))));
        assert!(!is_client_label(&l[..l.len() - 1]));
        assert_ne!(client_label(b"ab", 1), client_label(b"a", 1));
    }
}
