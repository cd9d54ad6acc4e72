//! The node-to-node payload encoding: a version byte followed by the postcard encoding of
//! [`beat_core::Message`] (documented in `docs/wire.md`). The gateway carries it opaquely.

use beat_core::Message;

/// The current payload version.
pub const VERSION: u8 = 1;

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

/// Decodes a payload, rejecting unknown versions, oversized payloads and trailing bytes.
pub fn decode(payload: &[u8], max: usize) -> Result<Message, WireError> {
    if payload.len() > max {
        return Err(WireError::TooLarge {
            len: payload.len(),
            max,
        });
    }
    match payload.split_first() {
        Some((&VERSION, body)) => {
            let (message, rest): (Message, &[u8]) =
                postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
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
}
