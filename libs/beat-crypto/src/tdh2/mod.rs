//! TDH2 labelled threshold encryption (Shoup–Gennaro) over Ristretto255, hybrid with
//! ChaCha20-Poly1305.
//!
//! # Algorithm
//!
//! Generators `g` (the Ristretto basepoint) and `ḡ` (hashed to the group, unknown discrete log);
//! public key `h = g^x`; replica `i` holds `x_i = p(i+1)` and everyone knows `h_i = g^{x_i}`
//! ([`deal`]). With `H1`, `H2`, `H4` random oracles (SHA-256/SHA-512 under the tags in
//! [`crate::dst`]):
//!
//! ```text
//! Enc(k, L):   r, s ←$;  u = g^r; ū = ḡ^r; w = g^s; w̄ = ḡ^s
//!              c = k ⊕ H1(u, h^r);  kc = H(k);  body = AEAD_k(m, aad = L)
//!              e = H2(L, c, kc, H(body), u, w, ū, w̄);  f = s + r·e
//! VerifyCt:    w = g^f / u^e; w̄ = ḡ^f / ū^e; check e = H2(…)
//! DecShare_i:  only if VerifyCt and the label is the expected one:
//!              u_i = u^{x_i}; ŝ = H(x_i, C); û = u^ŝ; ĥ = g^ŝ
//!              e_i = H4(i, u, u_i, û, ĥ); f_i = ŝ + x_i·e_i
//! VerifyShare: û = u^{f_i} / u_i^{e_i}; ĥ = g^{f_i} / h_i^{e_i}; check e_i = H4(…)
//! Combine:     h^r = Π u_i^{λ_i} over t+1 shares; k = c ⊕ H1(u, h^r); check kc = H(k); open body
//! ```
//!
//! Decryption is optimistic ([`PublicKey::decrypt_optimistic`]): combine `t + 1` shares without
//! verifying them and accept the result if the key commitment matches; verify shares one by one
//! only if it does not.
//!
//! # References
//!
//! Shoup, Gennaro, "Securing threshold cryptosystems against chosen ciphertext attack",
//! J. Cryptology 15(2), 2002 (TDH2). Duan, Reiter, Zhang, BEAT, CCS 2018 (labels bind a
//! ciphertext to the one place it may be decrypted). de Valence et al., Ristretto255.
//!
//! # Deviations
//!
//! * Ristretto255 instead of P-256 (the BEAT prototype's group), as decided in the protocol
//!   reference.
//! * Hybrid encryption with a **key commitment** `kc = H(k)` bound into the proof.
//!   ChaCha20-Poly1305 is not key-committing: without `kc`, a Byzantine proposer colluding with
//!   Byzantine share holders could craft a body that authenticates under two keys, and two
//!   honest replicas that combined different share subsets would output different plaintexts
//!   (an agreement violation). With `kc`, any key that passes the check is *the* committed key.
//! * The body digest is bound into `H2`, so the ciphertext as a whole is non-malleable. Because
//!   the body enters only through its digest, `VerifyCt` and `DecShare` also run on a
//!   [`CiphertextHeader`] (the ciphertext with `H(body)` in place of the body): the keystore
//!   gets headers, not contributions.
//! * `H4` additionally binds the holder index and `u`, and the share nonce is derived
//!   deterministically from the secret share and the ciphertext, so the keystore needs no RNG and
//!   a restarted replica re-issues the identical share.

mod ciphertext;
mod hashing;
mod keys;
mod share;

pub use ciphertext::{
    CIPHERTEXT_OVERHEAD, Ciphertext, CiphertextHeader, HEADER_OVERHEAD, MAX_LABEL_LEN,
};
pub use keys::{PublicKey, SecretKeyShare, deal};
pub use share::{DecryptionShare, Undecryptable};

/// Errors of the TDH2 scheme.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Tdh2Error {
    /// A field was not a canonical point or scalar.
    #[error("invalid {0} encoding")]
    InvalidEncoding(&'static str),
    /// The ciphertext encoding is structurally wrong.
    #[error("malformed ciphertext: {0}")]
    Malformed(&'static str),
    /// The ciphertext encoding has an unknown version.
    #[error("unsupported ciphertext version {0}")]
    UnsupportedVersion(u8),
    /// The label exceeds [`MAX_LABEL_LEN`].
    #[error("label of {len} bytes exceeds the maximum of {max}")]
    LabelTooLong {
        /// Label length.
        len: usize,
        /// Maximum.
        max: usize,
    },
    /// The ciphertext's validity proof does not verify.
    #[error("ciphertext validity proof does not verify")]
    InvalidCiphertext,
    /// The ciphertext carries a label other than the expected one.
    #[error("ciphertext label does not match the expected label")]
    LabelMismatch,
    /// Fewer than `threshold + 1` shares were given.
    #[error("{have} shares given, {need} needed")]
    NotEnoughShares {
        /// Shares given.
        have: usize,
        /// Shares needed.
        need: usize,
    },
    /// The threshold must be below the number of shares.
    #[error("threshold {threshold} is not below the number of shares {n}")]
    BadThreshold {
        /// Requested threshold.
        threshold: usize,
        /// Number of shares.
        n: usize,
    },
    /// Key generation produced a zero share (probability 2^-252); run it again.
    #[error("degenerate key material")]
    DegenerateKey,
}

#[cfg(test)]
mod tests;
