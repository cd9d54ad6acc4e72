//! The BLS12-381 scalar field `Fr` and Lagrange interpolation at zero.
//!
//! A thin, safe wrapper over blst's field arithmetic. This file and `group.rs` hold the only
//! `unsafe` code in the workspace: calls into blst's C functions, each with a `SAFETY` note.

#![allow(unsafe_code)]

use std::fmt;

use blst::{
    blst_fr, blst_fr_add, blst_fr_eucl_inverse, blst_fr_from_scalar, blst_fr_from_uint64,
    blst_fr_mul, blst_fr_sub, blst_scalar, blst_scalar_fr_check, blst_scalar_from_bendian,
    blst_scalar_from_fr, blst_scalar_from_le_bytes,
};
use rand_core::CryptoRng;
use zeroize::Zeroize;

/// An element of the scalar field of BLS12-381 (order r ≈ 2^255).
///
/// Secret key shares are field elements, so the value is wiped on drop and `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Fr(blst_fr);

impl Fr {
    pub(crate) fn zero() -> Self {
        Self(blst_fr::default())
    }

    pub(crate) fn from_u64(value: u64) -> Self {
        let limbs = [value, 0, 0, 0];
        let mut out = blst_fr::default();
        // SAFETY: `out` and `limbs` are valid, properly aligned, non-overlapping buffers of
        // four limbs, as blst_fr_from_uint64 expects.
        unsafe { blst_fr_from_uint64(&mut out, limbs.as_ptr()) };
        Self(out)
    }

    /// The integer `value` (below 2^128, so below r) as a field element.
    pub(crate) fn from_u128(value: u128) -> Self {
        let limbs = [value as u64, (value >> 64) as u64, 0, 0];
        let mut out = blst_fr::default();
        // SAFETY: as in `from_u64`: four valid limbs in, one field element out.
        unsafe { blst_fr_from_uint64(&mut out, limbs.as_ptr()) };
        Self(out)
    }

    /// A uniformly random field element: 64 random bytes reduced modulo r (statistical distance
    /// from uniform below 2^-128).
    pub(crate) fn random(rng: &mut (impl CryptoRng + ?Sized)) -> Self {
        let mut wide = [0u8; 64];
        rng.fill_bytes(&mut wide);
        let fr = Self::from_wide_bytes(&wide);
        wide.zeroize();
        fr
    }

    /// Reduces 64 little-endian bytes modulo r.
    pub(crate) fn from_wide_bytes(bytes: &[u8; 64]) -> Self {
        let mut scalar = blst_scalar::default();
        // SAFETY: `bytes` is a valid buffer of the length passed; `scalar` is a valid output.
        // The return value only reports whether the result is non-zero, which callers that
        // need a non-zero element check themselves.
        unsafe { blst_scalar_from_le_bytes(&mut scalar, bytes.as_ptr(), bytes.len()) };
        Self::from_scalar_unchecked(&scalar)
    }

    /// Parses 32 big-endian bytes, rejecting values ≥ r (non-canonical encodings).
    pub(crate) fn from_bytes_be(bytes: &[u8; 32]) -> Option<Self> {
        let mut scalar = blst_scalar::default();
        // SAFETY: `bytes` holds exactly the 32 bytes blst_scalar_from_bendian reads.
        unsafe { blst_scalar_from_bendian(&mut scalar, bytes.as_ptr()) };
        // SAFETY: `scalar` is a valid, initialised blst_scalar.
        if unsafe { blst_scalar_fr_check(&scalar) } {
            Some(Self::from_scalar_unchecked(&scalar))
        } else {
            None
        }
    }

    /// Encodes as 32 big-endian bytes (the canonical form).
    pub(crate) fn to_bytes_be(&self) -> [u8; 32] {
        let scalar = self.to_scalar();
        let mut out = [0u8; 32];
        // SAFETY: `out` has room for the 32 bytes written.
        unsafe { blst::blst_bendian_from_scalar(out.as_mut_ptr(), &scalar) };
        out
    }

    /// The little-endian scalar form blst's point multiplication takes.
    pub(crate) fn to_scalar(&self) -> blst_scalar {
        let mut scalar = blst_scalar::default();
        // SAFETY: both arguments are valid, initialised values of the right types.
        unsafe { blst_scalar_from_fr(&mut scalar, &self.0) };
        scalar
    }

    fn from_scalar_unchecked(scalar: &blst_scalar) -> Self {
        let mut out = blst_fr::default();
        // SAFETY: `scalar` is a valid blst_scalar below r (reduced or checked by the caller).
        unsafe { blst_fr_from_scalar(&mut out, scalar) };
        Self(out)
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0 == blst_fr::default()
    }

    pub(crate) fn add(&self, other: &Self) -> Self {
        let mut out = blst_fr::default();
        // SAFETY: valid inputs and output; blst allows any aliasing pattern here.
        unsafe { blst_fr_add(&mut out, &self.0, &other.0) };
        Self(out)
    }

    pub(crate) fn sub(&self, other: &Self) -> Self {
        let mut out = blst_fr::default();
        // SAFETY: as for `add`.
        unsafe { blst_fr_sub(&mut out, &self.0, &other.0) };
        Self(out)
    }

    pub(crate) fn mul(&self, other: &Self) -> Self {
        let mut out = blst_fr::default();
        // SAFETY: as for `add`.
        unsafe { blst_fr_mul(&mut out, &self.0, &other.0) };
        Self(out)
    }

    /// The multiplicative inverse; `None` for zero.
    pub(crate) fn inverse(&self) -> Option<Self> {
        if self.is_zero() {
            return None;
        }
        let mut out = blst_fr::default();
        // SAFETY: as for `add`; the input is non-zero so the inverse exists.
        unsafe { blst_fr_eucl_inverse(&mut out, &self.0) };
        Some(Self(out))
    }
}

impl Zeroize for Fr {
    fn zeroize(&mut self) {
        self.0.l.zeroize();
    }
}

impl Drop for Fr {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl fmt::Debug for Fr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fr(<redacted>)")
    }
}

/// Evaluates the polynomial with the given coefficients (constant term first) at `x`.
pub(crate) fn eval_poly(coefficients: &[Fr], x: &Fr) -> Fr {
    coefficients
        .iter()
        .rev()
        .fold(Fr::zero(), |acc, c| acc.mul(x).add(c))
}

/// Lagrange coefficients for interpolating at zero from the evaluation points `xs` (distinct,
/// non-zero). Returns `None` if two points coincide or one is zero.
pub(crate) fn lagrange_at_zero(xs: &[u64]) -> Option<Vec<Fr>> {
    let points: Vec<Fr> = xs.iter().map(|&x| Fr::from_u64(x)).collect();
    let mut out = Vec::with_capacity(points.len());
    for (i, xi) in points.iter().enumerate() {
        // λ_i(0) = Π_{j≠i} x_j / (x_j − x_i)
        let mut num = Fr::from_u64(1);
        let mut den = Fr::from_u64(1);
        for (j, xj) in points.iter().enumerate() {
            if i != j {
                num = num.mul(xj);
                den = den.mul(&xj.sub(xi));
            }
        }
        if xi.is_zero() {
            return None;
        }
        out.push(num.mul(&den.inverse()?));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_encoding_round_trips_and_rejects_overflow() {
        let x = Fr::from_u64(123_456_789);
        let bytes = x.to_bytes_be();
        assert_eq!(Fr::from_bytes_be(&bytes).unwrap(), x);
        assert!(Fr::from_bytes_be(&[0xff; 32]).is_none());
    }

    #[test]
    fn inverse_and_interpolation() {
        let x = Fr::from_u64(7);
        assert_eq!(x.mul(&x.inverse().unwrap()), Fr::from_u64(1));
        assert!(Fr::zero().inverse().is_none());
        // p(x) = 5 + 3x + 2x²; interpolate p(0) from points 1, 2, 3.
        let coeffs = [Fr::from_u64(5), Fr::from_u64(3), Fr::from_u64(2)];
        let xs = [1, 2, 3];
        let lambdas = lagrange_at_zero(&xs).unwrap();
        let p0 = xs.iter().zip(&lambdas).fold(Fr::zero(), |acc, (&x, l)| {
            acc.add(&eval_poly(&coeffs, &Fr::from_u64(x)).mul(l))
        });
        assert_eq!(p0, Fr::from_u64(5));
        assert!(lagrange_at_zero(&[1, 1]).is_none());
        assert!(lagrange_at_zero(&[0, 1]).is_none());
    }
}
