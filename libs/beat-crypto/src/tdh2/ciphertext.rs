//! Labelled TDH2 ciphertexts: encryption, the canonical encoding and the validity check.

use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit,
    aead::{Aead, Payload},
};
use curve25519_dalek::{
    RistrettoPoint, Scalar,
    traits::{Identity, VartimePrecomputedMultiscalarMul as _},
};
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use super::{
    PublicKey, Tdh2Error,
    hashing::{body_digest, g_bar_table, g_bar_vartime, hash_to_scalar, key_commitment, key_mask},
    keys::{Point, scalar_from_bytes},
};
use crate::dst;

/// The longest label accepted. Labels name where a ciphertext may be decrypted (BEAT0/1:
/// epoch and proposer; BEAT2: client and request), so they are short.
pub const MAX_LABEL_LEN: usize = 1024;

/// The current encoding version.
const VERSION: u8 = 1;

/// Bytes of a ciphertext beyond its label and plaintext: version, lengths, six 32-byte fields
/// and the AEAD tag.
pub const CIPHERTEXT_OVERHEAD: usize = 1 + 2 + 6 * 32 + 4 + 16;

/// A labelled, CCA-secure hybrid ciphertext.
///
/// TDH2 encapsulates a fresh 256-bit key `k`; ChaCha20-Poly1305 under `k` (zero nonce, the key
/// is never reused) encrypts the payload with the label as associated data. The validity proof
/// `(e, f)` binds the label, the masked key, the key commitment and the body digest, so no
/// part can be changed without invalidating the ciphertext.
///
/// # Encoding ([`Ciphertext::to_bytes`])
///
/// | field | bytes |
/// |---|---|
/// | version (= 1) | 1 |
/// | label length, u16 LE | 2 |
/// | label | ≤ 1024 |
/// | masked key `k ⊕ H1(u, h^r)` | 32 |
/// | key commitment `H(k)` | 32 |
/// | `u = g^r` | 32 |
/// | `ū = ḡ^r` | 32 |
/// | `e` | 32 |
/// | `f` | 32 |
/// | body length, u32 LE | 4 |
/// | body (AEAD ciphertext and tag) | ≥ 16 |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ciphertext {
    pub(super) label: Vec<u8>,
    pub(super) masked_key: [u8; 32],
    pub(super) key_commitment: [u8; 32],
    pub(super) u: Point,
    pub(super) u_bar: Point,
    pub(super) e: Scalar,
    pub(super) f: Scalar,
    pub(super) body: Vec<u8>,
}

impl Ciphertext {
    /// The label the ciphertext was encrypted under.
    pub fn label(&self) -> &[u8] {
        &self.label
    }

    /// Length of the canonical encoding.
    pub fn encoded_len(&self) -> usize {
        CIPHERTEXT_OVERHEAD - 16 + self.label.len() + self.body.len()
    }

    /// The canonical encoding (see the type documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        put_common(
            &mut out,
            VERSION,
            &self.label,
            [
                &self.masked_key,
                &self.key_commitment,
                &self.u.bytes,
                &self.u_bar.bytes,
                self.e.as_bytes(),
                self.f.as_bytes(),
            ],
        );
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// The header of this ciphertext (hashes the body once). Unverified: see
    /// [`PublicKey::verified_header`] for the check and the header in one pass.
    pub fn header(&self) -> CiphertextHeader {
        CiphertextHeader {
            label: self.label.clone(),
            masked_key: self.masked_key,
            key_commitment: self.key_commitment,
            u: self.u,
            u_bar: self.u_bar,
            e: self.e,
            f: self.f,
            body_digest: body_digest(&self.body),
        }
    }

    /// Parses the canonical encoding, rejecting unknown versions, oversized labels, invalid or
    /// identity points, non-canonical scalars, short bodies and trailing bytes. A ciphertext that
    /// parses is well-formed; whether it is *valid* is [`PublicKey::verify_ciphertext`]'s job.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Tdh2Error> {
        let mut r = Reader(bytes);
        let version = r.take::<1>()?[0];
        if version != VERSION {
            return Err(Tdh2Error::UnsupportedVersion(version));
        }
        let (label, masked_key, key_commitment, u, u_bar, e, f) = r.common()?;
        let body_len = u32::from_le_bytes(r.take::<4>()?) as usize;
        if body_len < 16 {
            return Err(Tdh2Error::Malformed("body shorter than the AEAD tag"));
        }
        let body = r.take_slice(body_len)?.to_vec();
        if !r.0.is_empty() {
            return Err(Tdh2Error::Malformed("trailing bytes"));
        }
        Ok(Self {
            label,
            masked_key,
            key_commitment,
            u,
            u_bar,
            e,
            f,
            body,
        })
    }
}

/// The encoding version of a [`CiphertextHeader`]; distinct from every ciphertext version, so
/// that the first byte tells the two encodings apart.
const HEADER_VERSION: u8 = 0x81;

/// Bytes of a header beyond its label: version, label length and seven 32-byte fields.
pub const HEADER_OVERHEAD: usize = 1 + 2 + 7 * 32;

/// Everything a share holder needs of a [`Ciphertext`]: the ciphertext without its body, and
/// the body's digest `H(body)` in its place.
///
/// The validity proof binds the body only through `H(body)` (`e = H2(L, c, kc, H(body), u, w,
/// ū, w̄)`), and a decryption share depends only on `u` (and the proof nonce on `u, e, f`). So
/// checking a header ([`PublicKey::verify_header`]) is the same check as checking the whole
/// ciphertext, and a share produced from the header is the share of the ciphertext: the
/// keystore never needs the body. Whoever holds the body (the core) hashes it once, when it
/// verifies the ciphertext ([`PublicKey::verified_header`]), and sends a few hundred bytes to
/// the keystore instead of the whole contribution.
///
/// A header is not a way to smuggle a different body past the keystore: a valid proof for
/// `(…, H(body), …)` can only be produced by whoever chose `r` (the encryptor), and a share
/// for this `u` decrypts exactly the key committed to by `kc`, which opens only a body that
/// authenticates under it and its label.
///
/// # Encoding ([`CiphertextHeader::to_bytes`])
///
/// | field | bytes |
/// |---|---|
/// | version (= 0x81) | 1 |
/// | label length, u16 LE | 2 |
/// | label | ≤ 1024 |
/// | masked key, key commitment, `u`, `ū`, `e`, `f` (as in [`Ciphertext`]) | 6 × 32 |
/// | body digest `H(body)` | 32 |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiphertextHeader {
    label: Vec<u8>,
    masked_key: [u8; 32],
    key_commitment: [u8; 32],
    pub(super) u: Point,
    u_bar: Point,
    pub(super) e: Scalar,
    pub(super) f: Scalar,
    body_digest: [u8; 32],
}

impl CiphertextHeader {
    /// The label the ciphertext was encrypted under.
    pub fn label(&self) -> &[u8] {
        &self.label
    }

    /// The canonical encoding (see the type documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_OVERHEAD + self.label.len());
        put_common(
            &mut out,
            HEADER_VERSION,
            &self.label,
            [
                &self.masked_key,
                &self.key_commitment,
                &self.u.bytes,
                &self.u_bar.bytes,
                self.e.as_bytes(),
                self.f.as_bytes(),
            ],
        );
        out.extend_from_slice(&self.body_digest);
        out
    }

    /// Parses the canonical encoding of a header, with the same checks as
    /// [`Ciphertext::from_bytes`] (version, label length, points, scalars, trailing bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Tdh2Error> {
        let mut r = Reader(bytes);
        let version = r.take::<1>()?[0];
        if version != HEADER_VERSION {
            return Err(Tdh2Error::UnsupportedVersion(version));
        }
        let (label, masked_key, key_commitment, u, u_bar, e, f) = r.common()?;
        let body_digest = r.take::<32>()?;
        if !r.0.is_empty() {
            return Err(Tdh2Error::Malformed("trailing bytes"));
        }
        Ok(Self {
            label,
            masked_key,
            key_commitment,
            u,
            u_bar,
            e,
            f,
            body_digest,
        })
    }

    /// Parses either encoding: a header, or a whole ciphertext (whose body is then hashed). For
    /// readers of data written before headers existed.
    pub fn from_header_or_ciphertext(bytes: &[u8]) -> Result<Self, Tdh2Error> {
        if bytes.first() == Some(&HEADER_VERSION) {
            Self::from_bytes(bytes)
        } else {
            Ciphertext::from_bytes(bytes).map(|ct| ct.header())
        }
    }
}

/// Writes what a ciphertext and its header share, in encoding order: the version, the label
/// with its length, then the masked key, key commitment, `u`, `ū`, `e` and `f` (read back by
/// `Reader::common`).
fn put_common(out: &mut Vec<u8>, version: u8, label: &[u8], fixed: [&[u8; 32]; 6]) {
    out.push(version);
    // The label length was checked against MAX_LABEL_LEN when the value was created.
    out.extend_from_slice(&(label.len() as u16).to_le_bytes());
    out.extend_from_slice(label);
    for field in fixed {
        out.extend_from_slice(field);
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take_slice(&mut self, len: usize) -> Result<&[u8], Tdh2Error> {
        if self.0.len() < len {
            return Err(Tdh2Error::Malformed("truncated"));
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(head)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], Tdh2Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take_slice(N)?);
        Ok(out)
    }

    /// The fields a ciphertext and its header share, in encoding order: label, masked key, key
    /// commitment, `u`, `ū`, `e`, `f`.
    #[allow(clippy::type_complexity)]
    fn common(
        &mut self,
    ) -> Result<(Vec<u8>, [u8; 32], [u8; 32], Point, Point, Scalar, Scalar), Tdh2Error> {
        let label_len = u16::from_le_bytes(self.take::<2>()?) as usize;
        if label_len > MAX_LABEL_LEN {
            return Err(Tdh2Error::LabelTooLong {
                len: label_len,
                max: MAX_LABEL_LEN,
            });
        }
        let label = self.take_slice(label_len)?.to_vec();
        let masked_key = self.take::<32>()?;
        let key_commitment = self.take::<32>()?;
        let u = Point::from_bytes(&self.take::<32>()?, "ciphertext u")?;
        let u_bar = Point::from_bytes(&self.take::<32>()?, "ciphertext u-bar")?;
        let e = scalar_from_bytes(&self.take::<32>()?, "ciphertext e")?;
        let f = scalar_from_bytes(&self.take::<32>()?, "ciphertext f")?;
        Ok((label, masked_key, key_commitment, u, u_bar, e, f))
    }
}

/// H2: the validity-proof challenge over everything the ciphertext commits to.
pub(super) fn challenge(
    ct_label: &[u8],
    masked_key: &[u8; 32],
    key_commitment: &[u8; 32],
    body_digest: &[u8; 32],
    [u, u_bar]: [&[u8; 32]; 2],
    [w, w_bar]: [&RistrettoPoint; 2],
) -> Scalar {
    hash_to_scalar(
        dst::TDH2_CHALLENGE,
        &[
            ct_label,
            masked_key,
            key_commitment,
            body_digest,
            u,
            w.compress().as_bytes(),
            u_bar,
            w_bar.compress().as_bytes(),
        ],
    )
}

impl PublicKey {
    /// Encrypts `plaintext` under `label` (TDH2 `Enc`, hybrid with ChaCha20-Poly1305).
    pub fn encrypt(
        &self,
        label: &[u8],
        plaintext: &[u8],
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Ciphertext, Tdh2Error> {
        if label.len() > MAX_LABEL_LEN {
            return Err(Tdh2Error::LabelTooLong {
                len: label.len(),
                max: MAX_LABEL_LEN,
            });
        }
        if plaintext.len() > u32::MAX as usize - 16 {
            return Err(Tdh2Error::Malformed("plaintext too long"));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        let mut r = Scalar::random(rng);
        let mut s = Scalar::random(rng);
        let g_bar = g_bar_table();

        let u = Point::new(RistrettoPoint::mul_base(&r));
        let u_bar = Point::new(g_bar * &r);
        let w = RistrettoPoint::mul_base(&s);
        let w_bar = g_bar * &s;
        let shared = r * self.h.point;
        let mask = key_mask(&u.bytes, &shared);
        let mut masked_key = [0u8; 32];
        for (out, (k, m)) in masked_key.iter_mut().zip(key.iter().zip(mask)) {
            *out = k ^ m;
        }
        let key_commitment = key_commitment(&key);
        let body = ChaCha20Poly1305::new_from_slice(key.as_ref())
            .map_err(|_| Tdh2Error::Malformed("symmetric key length"))?
            .encrypt(
                &[0u8; 12].into(),
                Payload {
                    msg: plaintext,
                    aad: label,
                },
            )
            .map_err(|_| Tdh2Error::Malformed("plaintext too long"))?;
        let e = challenge(
            label,
            &masked_key,
            &key_commitment,
            &body_digest(&body),
            [&u.bytes, &u_bar.bytes],
            [&w, &w_bar],
        );
        let f = s + r * e;
        r.zeroize();
        s.zeroize();
        Ok(Ciphertext {
            label: label.to_vec(),
            masked_key,
            key_commitment,
            u,
            u_bar,
            e,
            f,
            body,
        })
    }

    /// Checks the ciphertext's validity proof (TDH2 `VerifyCt`): recomputes `w = g^f / u^e`,
    /// `w̄ = ḡ^f / ū^e` and compares the challenge. Costs two double-scalar multiplications
    /// (each with one fixed base, g or ḡ, from a precomputed table) and one pass of SHA-256 over
    /// the body.
    pub fn verify_ciphertext(&self, ct: &Ciphertext) -> Result<(), Tdh2Error> {
        self.verify_header(&ct.header())
    }

    /// Checks validity and that the ciphertext carries `expected_label`.
    pub fn verify_ciphertext_with_label(
        &self,
        ct: &Ciphertext,
        expected_label: &[u8],
    ) -> Result<(), Tdh2Error> {
        self.verified_header(ct, expected_label).map(drop)
    }

    /// Checks validity and the label as [`Self::verify_ciphertext_with_label`] does, and returns
    /// the header it checked, so that the body is hashed once for both.
    pub fn verified_header(
        &self,
        ct: &Ciphertext,
        expected_label: &[u8],
    ) -> Result<CiphertextHeader, Tdh2Error> {
        if ct.label != expected_label {
            return Err(Tdh2Error::LabelMismatch);
        }
        let header = ct.header();
        self.verify_header(&header)?;
        Ok(header)
    }

    /// Checks a header's validity proof: the ciphertext's validity check (`VerifyCt`) with the
    /// body's digest given instead of the body. Valid for a header exactly when it is valid for
    /// every ciphertext whose body has that digest.
    pub fn verify_header(&self, h: &CiphertextHeader) -> Result<(), Tdh2Error> {
        let minus_e = -h.e;
        let w = RistrettoPoint::vartime_double_scalar_mul_basepoint(&minus_e, &h.u.point, &h.f);
        let w_bar =
            g_bar_vartime().vartime_mixed_multiscalar_mul([h.f], [minus_e], [h.u_bar.point]);
        if w == RistrettoPoint::identity() || w_bar == RistrettoPoint::identity() {
            return Err(Tdh2Error::InvalidCiphertext);
        }
        let e = challenge(
            &h.label,
            &h.masked_key,
            &h.key_commitment,
            &h.body_digest,
            [&h.u.bytes, &h.u_bar.bytes],
            [&w, &w_bar],
        );
        if e == h.e {
            Ok(())
        } else {
            Err(Tdh2Error::InvalidCiphertext)
        }
    }

    /// Checks a header's validity and that it carries `expected_label`.
    pub fn verify_header_with_label(
        &self,
        h: &CiphertextHeader,
        expected_label: &[u8],
    ) -> Result<(), Tdh2Error> {
        if h.label != expected_label {
            return Err(Tdh2Error::LabelMismatch);
        }
        self.verify_header(h)
    }
}
