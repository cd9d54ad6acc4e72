//! Threshold decryption of the agreed contributions (HoneyBadgerBFT Fig. 1, lines after ACS;
//! BEAT paper §4).
//!
//! # Algorithm
//!
//! ```text
//! D1  for every ciphertext of the agreed subset that verifies and carries its expected label:
//!     ask the keystore for my decryption share (one batched request)
//! D2  multicast all my shares in one message, whenever the keystore returns them — even after
//!     this replica decrypted every ciphertext from others' shares and left the epoch (a faulty
//!     replica may have sent its valid shares to only some replicas; the others need every
//!     honest share, rule R2 in module `aba`)
//! D3  per ciphertext, once f+1 shares are in: combine optimistically; on failure verify the
//!     shares one by one, attribute the invalid ones and wait for more
//! D4  when every ciphertext is decrypted (or proven undecryptable), the epoch is decided
//! ```
//!
//! The set of ciphertexts is a deterministic function of the agreed subset (and, in BEAT2, of
//! the committed history), so every honest replica asks for and expects shares for exactly the
//! same slots; shares for any other slot are a fault.
//!
//! # References
//!
//! Shoup, Gennaro (TDH2); Miller et al., HoneyBadgerBFT, CCS 2016, §4.4; protocol reference
//! pitfall 5 (wait for f+1 *valid* shares; verify the ciphertext before releasing a share).
//!
//! # Deviations
//!
//! Shares are combined before being verified (optimistic combination, see `beat_crypto::tdh2`).

mod state;

pub use state::Decryption;
