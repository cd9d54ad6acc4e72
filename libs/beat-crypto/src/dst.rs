//! Domain-separation tags.
//!
//! Every hash, hash-to-curve and key derivation in BEAT is bound to one of these tags
//! (`_BEAT_<CRATE>_<OPERATION>`). Changing a tag changes every value derived with it and breaks
//! compatibility with existing keys, ciphertexts and stored data: it needs an ADR.

/// BLS12-381 hash-to-G1 for common-coin signature shares.
pub const COIN_HASH_TO_G1: &[u8] = b"_BEAT_CRYPTO_COIN_BLS12381G1_XMD:SHA-256_SSWU_RO_";
/// Coin name → message bytes signed by the coin.
pub const COIN_NAME: &[u8] = b"_BEAT_CRYPTO_COIN_NAME";
/// Combined coin signature → coin bit.
pub const COIN_BIT: &[u8] = b"_BEAT_CRYPTO_COIN_BIT";

/// TDH2: derivation of the second generator ḡ.
pub const TDH2_GENERATOR: &[u8] = b"_BEAT_CRYPTO_TDH2_GENERATOR";
/// TDH2: H1, the key-encapsulation mask `H1(h^r)`.
pub const TDH2_MASK: &[u8] = b"_BEAT_CRYPTO_TDH2_MASK";
/// TDH2: H2, the ciphertext-validity challenge.
pub const TDH2_CHALLENGE: &[u8] = b"_BEAT_CRYPTO_TDH2_CHALLENGE";
/// TDH2: H4, the decryption-share DLEQ challenge.
pub const TDH2_SHARE_CHALLENGE: &[u8] = b"_BEAT_CRYPTO_TDH2_SHARE_CHALLENGE";
/// TDH2: deterministic nonce of a decryption share's DLEQ proof.
pub const TDH2_SHARE_NONCE: &[u8] = b"_BEAT_CRYPTO_TDH2_SHARE_NONCE";
/// TDH2: commitment to the encapsulated symmetric key (makes the hybrid scheme key-committing).
pub const TDH2_KEY_COMMITMENT: &[u8] = b"_BEAT_CRYPTO_TDH2_KEY_COMMITMENT";
/// TDH2: digest of the AEAD body bound into the validity proof.
pub const TDH2_BODY: &[u8] = b"_BEAT_CRYPTO_TDH2_BODY";

/// Erasure coding: Merkle leaves.
pub const MERKLE_LEAF: &[u8] = b"_BEAT_CRYPTO_MERKLE_LEAF";
/// Erasure coding: Merkle interior nodes.
pub const MERKLE_NODE: &[u8] = b"_BEAT_CRYPTO_MERKLE_NODE";
/// Erasure coding: the padding leaf of non-power-of-two trees.
pub const MERKLE_EMPTY: &[u8] = b"_BEAT_CRYPTO_MERKLE_EMPTY";

/// AVID-FP: fragment hashes in the cross-checksum.
pub const AVIDFP_FRAGMENT: &[u8] = b"_BEAT_CRYPTO_AVIDFP_FRAGMENT";
/// AVID-FP: fingerprint evaluation points derived from the cross-checksum.
pub const AVIDFP_POINTS: &[u8] = b"_BEAT_CRYPTO_AVIDFP_POINTS";
/// AVID-FP: digest of a fingerprinted cross-checksum.
pub const AVIDFP_COMMITMENT: &[u8] = b"_BEAT_CRYPTO_AVIDFP_COMMITMENT";

/// Ed25519 identity signatures (replica and client).
pub const IDENTITY_SIGN: &[u8] = b"_BEAT_CRYPTO_IDENTITY_SIGN";

/// Keystore file: associated data of the encrypted payload.
pub const KEYSTORE_FILE: &[u8] = b"_BEAT_CRYPTO_KEYSTORE_FILE";

/// Committee file: digest of the public committee description.
pub const COMMITTEE: &[u8] = b"_BEAT_CRYPTO_COMMITTEE";

/// BLS12-381 hash-to-G1 for commit-certificate signature shares. The same key shares sign coins
/// and commits; the two hash-to-curve tags keep a coin share from ever being a commit share.
pub const COMMIT_HASH_TO_G1: &[u8] = b"_BEAT_CRYPTO_COMMIT_BLS12381G1_XMD:SHA-256_SSWU_RO_";
/// Commit statement (committee, epoch, batch digest, previous link) → the chain link signed.
pub const COMMIT_STATEMENT: &[u8] = b"_BEAT_CRYPTO_COMMIT_STATEMENT";
/// The chain link before epoch 0, derived from the committee digest.
pub const COMMIT_GENESIS: &[u8] = b"_BEAT_CRYPTO_COMMIT_GENESIS";
/// Batch verification of threshold BLS signatures: the transcript from which the random
/// coefficients of the small-exponents test are derived (Fiat–Shamir).
pub const BLS_BATCH_VERIFY: &[u8] = b"_BEAT_CRYPTO_BLS_BATCH_VERIFY";
