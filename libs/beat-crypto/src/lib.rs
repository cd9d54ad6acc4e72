//! Threshold cryptography, erasure coding and key material for BEAT.
//!
//! This crate owns every cryptographic primitive the protocol core and the keystore service
//! share. It is pure computation: it reads no clock, randomness is always an argument, and it
//! performs no I/O (no files, no environment variables, no network). [`keystore_file`] defines
//! the keystore container format over bytes; reading and writing keystore files and reading
//! passphrases from files and environment variables is the keystore service's job (the
//! `beat_keystore::file` module).
//!
//! | module | primitive | used by |
//! |---|---|---|
//! | [`hash`] | SHA-256 with length-prefixed, domain-separated framing | everything |
//! | [`dst`] | the domain-separation tags | everything |
//! | [`bls`] | threshold BLS12-381 signatures and the common coin | binary agreement, keystore |
//! | [`tdh2`] | TDH2 labelled threshold encryption on Ristretto255 + ChaCha20-Poly1305 | BEAT0–2 decryption, keystore, BEAT2 clients |
//! | [`threshold`] | the outcome of optimistic share combination | both threshold schemes |
//! | [`identity`] | Ed25519 replica and client identities, domain-separated signatures | handshakes, client requests |
//! | [`keystore_file`] | passphrase-encrypted key container (Argon2id + ChaCha20-Poly1305) | keystore service, key generation tools |
//! | [`dealer`] | the trusted-dealer key ceremony: per-replica secrets and the public committee keys | `beat keygen`, tests |
//! | [`merkle`] | binary SHA-256 Merkle trees with index-bound leaves and canonical proofs | AVID broadcast (BEAT0) |
//! | [`avid_fp`] | AVID-FP fingerprinted cross-checksums over GF(2^64), MDS and pyramid layouts, partial reads | verifiable dispersal (BEAT3, BEAT4) |
//! | [`erasure`] | systematic `(n, n−2f)` Reed–Solomon coding with canonical framing and a re-encoding check | AVID broadcast (BEAT0) |
//!
//! # Conventions
//!
//! * Every fallible operation returns a typed error (`thiserror`); nothing panics on input that
//!   came from outside the process.
//! * Secret material implements `Zeroize` and is wiped on drop; its `Debug` output is redacted.
//! * Deserialization rejects non-canonical encodings (scalars ≥ the group order, points off
//!   the curve or outside the prime-order subgroup, identity points where they make no sense),
//!   so that equal values always have equal encodings.
//! * Every hash, hash-to-curve and key derivation is bound to a tag from [`dst`].
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod avid_fp;
pub mod bls;
pub mod dealer;
pub mod dst;
mod encoding;
pub mod erasure;
pub mod hash;
pub mod identity;
pub mod keystore_file;
pub mod merkle;
mod par;
mod public_keys;
mod rs;
pub mod tdh2;
pub mod threshold;

pub use hash::Digest;
pub use public_keys::PublicKeys;
