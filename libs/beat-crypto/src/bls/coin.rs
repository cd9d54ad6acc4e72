//! The threshold common coin: coin name → unique combined signature → bit.

use super::{HashedMessage, Signature};
use crate::{dst, hash::hash};

/// The message signed for a coin: the coin's name hashed to G1.
///
/// The name must identify the coin uniquely across the whole deployment — the protocol core
/// uses (epoch, binary-agreement instance, round) — because the same name always yields the
/// same coin (protocol reference, pitfall 4d).
pub fn coin_message(name: &[u8]) -> HashedMessage {
    HashedMessage::new(dst::COIN_HASH_TO_G1, &hash(dst::COIN_NAME, name).0)
}

/// The coin bit: the parity of all 256 bits of a hash of the combined signature (protocol
/// reference, pitfall 4c: use the whole hash, never the name).
pub fn coin_bit(signature: &Signature) -> bool {
    let digest = hash(dst::COIN_BIT, &signature.to_bytes());
    digest.0.iter().fold(0u8, |acc, b| acc ^ b).count_ones() % 2 == 1
}
