//! BLS12-381 group elements: G1 (signatures, 48-byte compressed) and G2 (public keys, 96-byte
//! compressed), hash-to-G1, multi-scalar multiplication and the pairing check.
//!
//! This is the "minimal signature size" instantiation: signature shares travel on the wire in
//! every random-coin round, public keys are exchanged once at key generation.

#![allow(unsafe_code)]

use std::sync::LazyLock;

use blst::{
    BLST_ERROR, blst_fp6, blst_fp12, blst_hash_to_g1, blst_miller_loop_lines, blst_p1,
    blst_p1_affine, blst_p1_affine_compress, blst_p1_affine_in_g1, blst_p1_affine_is_inf,
    blst_p1_from_affine, blst_p1_mult, blst_p1_to_affine, blst_p1_uncompress,
    blst_p1s_mult_pippenger, blst_p1s_mult_pippenger_scratch_sizeof, blst_p2, blst_p2_affine,
    blst_p2_affine_compress, blst_p2_affine_generator, blst_p2_affine_in_g2, blst_p2_affine_is_inf,
    blst_p2_to_affine, blst_p2_uncompress, blst_precompute_lines, blst_sk_to_pk_in_g2,
};

use super::field::Fr;

/// A point of G1 in affine form that is known to be in the prime-order subgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct G1(blst_p1_affine);

/// A point of G2 in affine form that is known to be in the prime-order subgroup and not the
/// identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct G2(blst_p2_affine);

impl G1 {
    pub(crate) const COMPRESSED_LEN: usize = 48;

    /// Hashes `msg` to G1 (RFC 9380 `hash_to_curve`, SSWU, random oracle) under `dst`.
    pub(crate) fn hash_to(msg: &[u8], dst: &[u8]) -> Self {
        let mut point = blst_p1::default();
        // SAFETY: message and DST pointers are valid for the lengths passed; the augmentation
        // string is empty (null pointer with length zero is accepted by blst).
        unsafe {
            blst_hash_to_g1(
                &mut point,
                msg.as_ptr(),
                msg.len(),
                dst.as_ptr(),
                dst.len(),
                std::ptr::null(),
                0,
            );
        }
        Self::from_projective(&point)
    }

    fn from_projective(point: &blst_p1) -> Self {
        let mut affine = blst_p1_affine::default();
        // SAFETY: valid input point and output buffer.
        unsafe { blst_p1_to_affine(&mut affine, point) };
        Self(affine)
    }

    /// Returns `self · scalar`.
    pub(crate) fn mul(&self, scalar: &Fr) -> Self {
        Self::from_projective(&sum_of_products(
            std::slice::from_ref(&self.0),
            std::slice::from_ref(scalar),
            255,
        ))
    }

    /// Returns `Σ scalars[i] · points[i]` (Pippenger's algorithm in blst, on the calling
    /// thread).
    ///
    /// blst's `MultiPoint::mult` hands small inputs to its thread pool, one point per worker;
    /// for the `f + 1` points of a threshold combination that costs ≈ 1.7× the CPU of the serial
    /// algorithm (6 points: 0.70 ms against 0.40 ms of process CPU on the 2-vCPU development
    /// box) and takes a second core from a replica whose other services need it.
    pub(crate) fn multi_mul(points: &[Self], scalars: &[Fr]) -> Self {
        Self::multi_mul_bits(points, scalars, 255)
    }

    /// [`Self::multi_mul`] for scalars known to be below `2^bits` (`bits ≤ 255`): blst reads
    /// only the low `bits` bits, so 128-bit scalars (the random coefficients of a batch check)
    /// cost about half the doublings.
    pub(crate) fn multi_mul_bits(points: &[Self], scalars: &[Fr], bits: usize) -> Self {
        debug_assert_eq!(points.len(), scalars.len());
        let affines: Vec<blst_p1_affine> = points.iter().map(|p| p.0).collect();
        Self::from_projective(&sum_of_products(&affines, scalars, bits))
    }

    /// Interpolates from compressed points that were only decompressed — on the curve, but not
    /// checked to be in G1 (the check costs about half of a decoding): `Σ scalars[i] · P_i`,
    /// returned only if the sum is a point of G1 other than the identity. `Err(Some(i))`:
    /// encoding `i` is not a curve point; `Err(None)`: the sum is not in G1.
    ///
    /// Points outside G1 make the sum meaningless (blst's multiplication assumes the subgroup),
    /// but never unsafe, and a sum that is checked afterwards — in G1, then against a pairing —
    /// is the right one whatever its inputs were: this is how threshold shares that are
    /// combined rather than verified one by one skip the per-share subgroup check.
    pub(crate) fn interpolate_encoded(
        encodings: &[[u8; Self::COMPRESSED_LEN]],
        scalars: &[Fr],
    ) -> Result<Self, Option<usize>> {
        let mut affines = Vec::with_capacity(encodings.len());
        for (i, bytes) in encodings.iter().enumerate() {
            let mut affine = blst_p1_affine::default();
            // SAFETY: `bytes` holds the 48 bytes blst_p1_uncompress reads.
            if unsafe { blst_p1_uncompress(&mut affine, bytes.as_ptr()) }
                != BLST_ERROR::BLST_SUCCESS
            {
                return Err(Some(i));
            }
            affines.push(affine);
        }
        let sum = Self::from_projective(&sum_of_products(&affines, scalars, 255));
        // SAFETY: `sum.0` is a valid affine point.
        let in_group = unsafe { blst_p1_affine_in_g1(&sum.0) };
        if in_group && !sum.is_identity() {
            Ok(sum)
        } else {
            Err(None)
        }
    }

    /// Parses a compressed point, rejecting encodings off the curve, outside the prime-order
    /// subgroup, or of the identity.
    pub(crate) fn from_compressed(bytes: &[u8; Self::COMPRESSED_LEN]) -> Option<Self> {
        let mut affine = blst_p1_affine::default();
        // SAFETY: `bytes` holds the 48 bytes blst_p1_uncompress reads.
        if unsafe { blst_p1_uncompress(&mut affine, bytes.as_ptr()) } != BLST_ERROR::BLST_SUCCESS {
            return None;
        }
        // SAFETY: `affine` was initialised by a successful uncompress.
        let valid = unsafe { blst_p1_affine_in_g1(&affine) && !blst_p1_affine_is_inf(&affine) };
        valid.then_some(Self(affine))
    }

    pub(crate) fn to_compressed(self) -> [u8; Self::COMPRESSED_LEN] {
        let mut out = [0u8; Self::COMPRESSED_LEN];
        // SAFETY: `out` has room for the 48 bytes written.
        unsafe { blst_p1_affine_compress(out.as_mut_ptr(), &self.0) };
        out
    }

    pub(crate) fn is_identity(&self) -> bool {
        // SAFETY: `self.0` is a valid affine point.
        unsafe { blst_p1_affine_is_inf(&self.0) }
    }
}

impl G2 {
    pub(crate) const COMPRESSED_LEN: usize = 96;

    /// Returns `g2 · scalar` for the standard generator `g2`.
    pub(crate) fn generator_mul(scalar: &Fr) -> Self {
        let s = scalar.to_scalar();
        let mut projective = blst_p2::default();
        let mut affine = blst_p2_affine::default();
        // SAFETY: valid scalar input and output buffers.
        unsafe {
            blst_sk_to_pk_in_g2(&mut projective, &s);
            blst_p2_to_affine(&mut affine, &projective);
        }
        Self(affine)
    }

    /// Parses a compressed point, rejecting encodings off the curve, outside the prime-order
    /// subgroup, or of the identity.
    pub(crate) fn from_compressed(bytes: &[u8; Self::COMPRESSED_LEN]) -> Option<Self> {
        let mut affine = blst_p2_affine::default();
        // SAFETY: `bytes` holds the 96 bytes blst_p2_uncompress reads.
        if unsafe { blst_p2_uncompress(&mut affine, bytes.as_ptr()) } != BLST_ERROR::BLST_SUCCESS {
            return None;
        }
        // SAFETY: `affine` was initialised by a successful uncompress.
        let valid = unsafe { blst_p2_affine_in_g2(&affine) && !blst_p2_affine_is_inf(&affine) };
        valid.then_some(Self(affine))
    }

    pub(crate) fn to_compressed(self) -> [u8; Self::COMPRESSED_LEN] {
        let mut out = [0u8; Self::COMPRESSED_LEN];
        // SAFETY: `out` has room for the 96 bytes written.
        unsafe { blst_p2_affine_compress(out.as_mut_ptr(), &self.0) };
        out
    }
}

/// `Σ scalars[i] · points[i]` for affine points and scalars below `2^bits` (`bits ≤ 255`):
/// blst's serial Pippenger, on the calling thread (see [`G1::multi_mul`]).
fn sum_of_products(points: &[blst_p1_affine], scalars: &[Fr], bits: usize) -> blst_p1 {
    debug_assert_eq!(points.len(), scalars.len());
    debug_assert!((1..=255).contains(&bits));
    let bits = bits.clamp(1, 255);
    let n = points.len().min(scalars.len());
    let mut out = blst_p1::default();
    if n == 0 {
        // The empty sum (the identity); blst is not asked about zero points.
        return out;
    }
    if n == 1 {
        let s = scalars[0].to_scalar();
        let mut projective = blst_p1::default();
        // SAFETY: valid point and outputs; the scalar buffer holds 32 little-endian bytes, of
        // which the `bits ≤ 255` low bits passed are read.
        unsafe {
            blst_p1_from_affine(&mut projective, &points[0]);
            blst_p1_mult(&mut out, &projective, s.b.as_ptr(), bits);
        }
        return out;
    }
    // blst reads contiguous scalars at a stride of ⌈bits / 8⌉ bytes.
    let stride = bits.div_ceil(8);
    let mut bytes = Vec::with_capacity(stride * n);
    for s in &scalars[..n] {
        bytes.extend_from_slice(&s.to_scalar().b[..stride]);
    }
    // SAFETY: scratch_sizeof returns the scratch size in bytes for `n` points.
    let words = unsafe { blst_p1s_mult_pippenger_scratch_sizeof(n) }.div_ceil(8);
    let mut scratch = vec![0u64; words];
    // The "array of pointers" form: one pointer to `n` contiguous elements, null-terminated.
    let point_ptrs: [*const blst_p1_affine; 2] = [points.as_ptr(), std::ptr::null()];
    let scalar_ptrs: [*const u8; 2] = [bytes.as_ptr(), std::ptr::null()];
    // SAFETY: `points` holds at least `n` valid points and `bytes` `n` little-endian scalars of
    // `stride` bytes each, of which the `bits ≤ 255` low bits are read; `scratch` has the size
    // blst asked for.
    unsafe {
        blst_p1s_mult_pippenger(
            &mut out,
            point_ptrs.as_ptr(),
            n,
            scalar_ptrs.as_ptr(),
            bits,
            scratch.as_mut_ptr(),
        );
    }
    zeroize::Zeroize::zeroize(&mut bytes);
    out
}

/// Number of line values blst precomputes for the Miller loop of BLS12-381 (its `Qlines[68]`).
const MILLER_LINES: usize = 68;

/// A G2 point with the line functions of its Miller loop precomputed.
///
/// Every pairing the protocol evaluates has a fixed G2 argument — the generator, the group key
/// or a replica's key share, all known from the committee file — so the G2 half of each Miller
/// loop (the doubling and addition steps in Fp2 and their line coefficients) can be computed
/// once per key instead of once per check. What remains per check is evaluating the lines at the
/// G1 point and the Fp12 arithmetic; the result is the same Miller-loop value
/// (`tests::prepared_lines_give_the_same_miller_loop`).
pub(crate) struct G2Lines(Box<[blst_fp6; MILLER_LINES]>);

impl G2Lines {
    /// Precomputes the lines of `q` (≈ 20 KB).
    pub(crate) fn new(q: &G2) -> Self {
        let mut lines = Box::new([blst_fp6::default(); MILLER_LINES]);
        // SAFETY: `lines` holds the 68 Fp6 values blst_precompute_lines writes; `q` is a valid
        // affine point.
        unsafe { blst_precompute_lines(lines.as_mut_ptr(), &q.0) };
        Self(lines)
    }

    /// The Miller loop of `e(p, q)`.
    fn miller_loop(&self, p: &G1) -> blst_fp12 {
        let mut out = blst_fp12::default();
        // SAFETY: `self.0` holds the 68 precomputed lines blst_miller_loop_lines reads; `p` is a
        // valid affine point.
        unsafe { blst_miller_loop_lines(&mut out, self.0.as_ptr(), &p.0) };
        out
    }
}

/// The generator of G2 with its lines precomputed (the left side of every check).
static GENERATOR_LINES: LazyLock<G2Lines> = LazyLock::new(|| {
    // SAFETY: blst returns a pointer to its static, initialised generator.
    G2Lines::new(&G2(unsafe { *blst_p2_affine_generator() }))
});

/// Checks `e(signature, g2) == e(message_point, public_key)`, i.e. that `signature` is the
/// signature on the hashed message under the key whose lines are `public_key`: two Miller
/// loops on precomputed lines and one final exponentiation.
pub(crate) fn pairing_check(signature: &G1, message_point: &G1, public_key: &G2Lines) -> bool {
    if signature.is_identity() {
        return false;
    }
    let lhs = GENERATOR_LINES.miller_loop(signature);
    let rhs = public_key.miller_loop(message_point);
    blst_fp12::finalverify(&lhs, &rhs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_encodings_round_trip_and_reject_garbage() {
        let h = G1::hash_to(b"m", b"DST");
        assert_eq!(G1::from_compressed(&h.to_compressed()), Some(h));
        assert!(G1::from_compressed(&[0u8; 48]).is_none());
        assert!(G1::from_compressed(&[0xffu8; 48]).is_none());
        // The compressed identity (0xc0 followed by zeros) is well-formed but rejected.
        let mut inf = [0u8; 48];
        inf[0] = 0xc0;
        assert!(G1::from_compressed(&inf).is_none());

        let pk = G2::generator_mul(&Fr::from_u64(9));
        assert_eq!(G2::from_compressed(&pk.to_compressed()), Some(pk));
        let mut inf2 = [0u8; 96];
        inf2[0] = 0xc0;
        assert!(G2::from_compressed(&inf2).is_none());
    }

    #[test]
    fn prepared_lines_give_the_same_miller_loop() {
        for k in [1u64, 7, 1 << 40] {
            let q = G2::generator_mul(&Fr::from_u64(k));
            let p = G1::hash_to(&k.to_le_bytes(), b"DST");
            let direct = blst_fp12::miller_loop(&q.0, &p.0);
            assert_eq!(G2Lines::new(&q).miller_loop(&p), direct);
        }
    }

    #[test]
    fn pairing_check_accepts_only_the_right_signature() {
        let x = Fr::from_u64(42);
        let pk = G2::generator_mul(&x);
        let h = G1::hash_to(b"message", b"DST");
        let sig = h.mul(&x);
        let pk = G2Lines::new(&pk);
        assert!(pairing_check(&sig, &h, &pk));
        assert!(!pairing_check(&h.mul(&Fr::from_u64(43)), &h, &pk));
        let other = G1::hash_to(b"other", b"DST");
        assert!(!pairing_check(&sig, &other, &pk));
    }

    #[test]
    fn multi_mul_matches_sum_of_products() {
        let p = G1::hash_to(b"p", b"DST");
        let q = G1::hash_to(b"q", b"DST");
        let a = Fr::from_u64(3);
        let b = Fr::from_u64(5);
        // 3p + 5q computed two ways: via MSM and via p·3 + q·5 = (p + q·(5/3))·3 is awkward, so
        // compare against the MSM of the single-scalar products using a pairing-free identity:
        // (3p + 5q) == MSM([p, q], [3, 5]) == MSM([3p, 5q], [1, 1]).
        let lhs = G1::multi_mul(&[p, q], &[a.clone(), b.clone()]);
        let rhs = G1::multi_mul(&[p.mul(&a), q.mul(&b)], &[Fr::from_u64(1), Fr::from_u64(1)]);
        assert_eq!(lhs, rhs);
        assert!(G1::multi_mul(&[], &[]).is_identity());
    }

    #[test]
    fn short_scalar_multi_mul_matches_the_full_one() {
        let points: Vec<G1> = (0u8..5).map(|i| G1::hash_to(&[i], b"DST")).collect();
        let scalars: Vec<Fr> = (0u128..5)
            .map(|i| Fr::from_u128(u128::MAX - i * 0x1234_5678_9abc_def0))
            .collect();
        for k in 1..=points.len() {
            assert_eq!(
                G1::multi_mul_bits(&points[..k], &scalars[..k], 128),
                G1::multi_mul(&points[..k], &scalars[..k])
            );
        }
        let wide = Fr::from_u64(1).add(&Fr::from_u128(u128::MAX));
        assert_ne!(
            G1::multi_mul_bits(&points[..1], std::slice::from_ref(&wide), 128),
            points[0].mul(&wide),
            "bits beyond the 128 passed are not read"
        );
    }

    #[test]
    fn multi_mul_interpolates_in_the_exponent() {
        // Shares h·p(x) of a degree-5 polynomial at six points combine with the Lagrange
        // coefficients into h·p(0), computed independently by one multiplication.
        let h = G1::hash_to(b"h", b"DST");
        let coeffs: Vec<Fr> = [11u64, 3, 5, 7, 13, 17].map(Fr::from_u64).to_vec();
        let xs = [1u64, 2, 4, 5, 9, 16];
        let shares: Vec<G1> = xs
            .iter()
            .map(|&x| h.mul(&super::super::field::eval_poly(&coeffs, &Fr::from_u64(x))))
            .collect();
        let lambdas = super::super::field::lagrange_at_zero(&xs).unwrap();
        assert_eq!(G1::multi_mul(&shares, &lambdas), h.mul(&coeffs[0]));
    }
}
