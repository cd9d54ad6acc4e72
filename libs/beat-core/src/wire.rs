//! The node-to-node payload encoding: a version byte followed by the postcard encoding of
//! [`crate::Message`] (documented in `docs/wire.md`). The gateway carries it opaquely.

mod budget;

use crate::Message;
use serde::Deserialize;

pub use budget::{Budget, Budgeted};

/// The current payload version.
pub const VERSION: u8 = 1;

/// How much memory a payload may decode into: `DECODE_INFLATION` times its length, and never
/// less than `DECODE_INFLATION / 2` times the payload limit. A payload of one-byte empty
/// vectors would decode into about 24 times its size; with this bound the largest payload
/// takes at most four times its size (64 MiB at the default 16 MiB limit), and a bigger claim
/// is a malformed message. Small messages always fit, whatever their transactions, and
/// honest catch-up answers are cut to half of the floor (the replica host's `EventLog::batches_within`).
pub const DECODE_INFLATION: usize = 4;

/// The allocation budget of a payload of `len` bytes under the payload limit `max`.
pub fn decode_budget(len: usize, max: usize) -> usize {
    len.saturating_mul(DECODE_INFLATION)
        .max(max.saturating_mul(DECODE_INFLATION / 2))
}

/// Why a payload was rejected.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Empty or unknown version.
    #[error("unsupported payload version {0:?}")]
    Version(Option<u8>),
    /// The payload exceeds the size limit.
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The message does not decode (or has trailing bytes).
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encodes a message.
pub fn encode(message: &Message) -> Vec<u8> {
    let mut out = vec![VERSION];
    // Serializing an in-memory message into a Vec cannot fail.
    if let Ok(body) = postcard::to_allocvec(message) {
        out.extend_from_slice(&body);
    }
    out
}

/// Decodes a payload, rejecting unknown versions, oversized payloads, trailing bytes and
/// payloads that would take more memory than [`decode_budget`] allows.
pub fn decode(payload: &[u8], max: usize) -> Result<Message, WireError> {
    if payload.len() > max {
        return Err(WireError::TooLarge {
            len: payload.len(),
            max,
        });
    }
    match payload.split_first() {
        Some((&VERSION, body)) => {
            let budget = Budget::new(decode_budget(payload.len(), max));
            let (message, rest) = decode_budgeted(body, &budget)?;
            if rest.is_empty() {
                Ok(message)
            } else {
                Err(WireError::Malformed(format!(
                    "{} trailing bytes",
                    rest.len()
                )))
            }
        }
        Some((v, _)) => Err(WireError::Version(Some(*v))),
        None => Err(WireError::Version(None)),
    }
}

/// Decodes one message from the front of `body` within `budget`; returns the rest.
fn decode_budgeted<'a>(body: &'a [u8], budget: &Budget) -> Result<(Message, &'a [u8]), WireError> {
    let malformed = |e: postcard::Error| WireError::Malformed(e.to_string());
    let mut de = postcard::Deserializer::from_bytes(body);
    let message = Message::deserialize(Budgeted::new(&mut de, budget)).map_err(|e| {
        if budget.left() == 0 {
            WireError::Malformed(budget::EXCEEDED.to_owned())
        } else {
            malformed(e)
        }
    })?;
    let rest = de.finalize().map_err(malformed)?;
    Ok((message, rest))
}

#[cfg(test)]
mod tests {
    use beat_types::Epoch;

    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_payloads() {
        let m = Message::EpochStarted(Epoch(42));
        let bytes = encode(&m);
        assert_eq!(decode(&bytes, 1024).unwrap(), m);
        assert!(matches!(decode(&[], 1024), Err(WireError::Version(None))));
        assert!(matches!(
            decode(&[2, 0], 1024),
            Err(WireError::Version(Some(2)))
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode(&trailing, 1024),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(decode(&bytes, 1), Err(WireError::TooLarge { .. })));
        assert!(matches!(
            decode(&[1, 0xff, 0xff], 1024),
            Err(WireError::Malformed(_))
        ));
    }

    fn catch_up(batches: usize, txs: usize, tx_len: usize) -> Message {
        use crate::{Batch, Content, Contribution};
        use beat_types::{NodeId, Transaction};
        Message::CatchUpResponse(
            (0..batches)
                .map(|e| Batch {
                    epoch: Epoch(e as u64),
                    contributions: (0..4)
                        .map(|p| Contribution {
                            proposer: NodeId(p),
                            content: Content::Transactions(
                                (0..txs)
                                    .map(|i| Transaction::new(vec![(i % 251) as u8; tx_len]))
                                    .collect(),
                            ),
                        })
                        .collect(),
                    ordered_labels: vec![],
                })
                .map(Into::into)
                .collect(),
        )
    }

    /// What decoding `payload` charges.
    fn charged(payload: &[u8]) -> usize {
        let budget = Budget::new(usize::MAX);
        decode_budgeted(&payload[1..], &budget).unwrap();
        usize::MAX - budget.left()
    }

    #[test]
    fn honest_messages_decode_within_small_multiples_of_their_size() {
        for (txs, tx_len) in [(1000, 250), (1000, 64), (2000, 16)] {
            let m = catch_up(4, txs, tx_len);
            let bytes = encode(&m);
            let ratio = charged(&bytes) as f64 / bytes.len() as f64;
            // Each transaction costs its bytes and a 32-byte handle (`Bytes`): 16-byte ones
            // decode into ≈ 2.8 times their encoding, well within `DECODE_INFLATION`.
            assert!(ratio < 3.0, "{txs} × {tx_len} B: {ratio:.2}×");
            assert!(ratio < DECODE_INFLATION as f64);
            assert_eq!(decode(&bytes, 16 << 20).unwrap(), m);
        }
    }

    /// A payload of empty transactions would decode into ~24 times its size: refused once it
    /// exceeds the budget, while a small one (within the floor) still decodes.
    #[test]
    fn a_payload_of_empty_vectors_is_refused_before_it_allocates() {
        let max = 1 << 20;
        let bomb = encode(&catch_up(1, 200_000, 0));
        assert!(bomb.len() < max);
        let ratio = charged(&bomb) as f64 / bomb.len() as f64;
        assert!(ratio > 20.0, "{ratio:.1}×");
        let err = decode(&bomb, max).unwrap_err();
        assert!(
            matches!(&err, WireError::Malformed(m) if m == budget::EXCEEDED),
            "{err}"
        );
        // The same structure, small: within the floor.
        let small = encode(&catch_up(1, 2_000, 0));
        assert!(decode(&small, max).is_ok());
    }

    /// Nesting cannot hide an allocation: every level is charged.
    #[test]
    fn nested_collections_are_charged_at_every_level() {
        let budget = Budget::new(usize::MAX);
        let v: Vec<Vec<Option<[u8; 32]>>> = vec![vec![None; 100]; 10];
        let bytes = postcard::to_allocvec(&v).unwrap();
        let _: Vec<Vec<Option<[u8; 32]>>> = serde::Deserialize::deserialize(Budgeted::new(
            &mut postcard::Deserializer::from_bytes(&bytes),
            &budget,
        ))
        .unwrap();
        let charged = usize::MAX - budget.left();
        assert_eq!(
            charged,
            10 * size_of::<Vec<Option<[u8; 32]>>>() + 1000 * size_of::<Option<[u8; 32]>>()
        );
    }
}
