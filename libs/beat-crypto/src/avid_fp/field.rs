//! GF(2^64) as a tower over reed-solomon-simd's own GF(2^16).
//!
//! * GF(2^16): the field in which reed-solomon-simd computes, with its exp/log tables
//!   ([`reed_solomon_simd::engine::tables`]); its elements are `u16` in the library's (Cantor
//!   basis) representation, addition is XOR and 1 is `0x0001`.
//! * GF(2^32) = GF(2^16)\[y\]/(y² + y + β), an element `a0 + a1·y` stored as `a0 | a1 << 16`.
//! * GF(2^64) = GF(2^32)\[z\]/(z² + z + γ), an element `b0 + b1·z` stored as `b0 | b1 << 32`.
//!
//! `y² + y + β` is irreducible over GF(q) exactly when the absolute trace of β is 1, and so is
//! `z² + z + γ`; [`BETA`] and [`GAMMA`] are the smallest such constants as integers (the tests
//! re-derive them and check irreducibility directly). In reed-solomon-simd's Cantor basis the
//! trace of a GF(2^16) element is its top bit, hence β = `0x8000`; the GF(2)-trace of
//! `a0 + a1·y` is the trace of `a1`, hence γ = `0x8000·y`. A GF(2^64) element therefore has four GF(2^16)
//! coordinates on the basis `1, y, z, y·z`, in its four 16-bit lanes, and multiplying by a
//! subfield element `g` scales each lane by `g` ([`scale`]).

pub(crate) use crate::rs::gf16_mul;
use reed_solomon_simd::engine::tables::{get_exp_log, mul};

/// β: the smallest GF(2^16) element of trace 1, so that y² + y + β is irreducible.
pub(crate) const BETA: u16 = 0x8000;

/// γ: the smallest GF(2^32) element of trace 1, so that z² + z + γ is irreducible.
pub(crate) const GAMMA: u32 = 0x8000_0000;

/// Multiplies in GF(2^32) (Karatsuba over GF(2^16)).
pub(crate) fn gf32_mul(a: u32, b: u32) -> u32 {
    let (a0, a1) = (a as u16, (a >> 16) as u16);
    let (b0, b1) = (b as u16, (b >> 16) as u16);
    let m0 = gf16_mul(a0, b0);
    let m1 = gf16_mul(a1, b1);
    let m2 = gf16_mul(a0 ^ a1, b0 ^ b1);
    // (a0 + a1 y)(b0 + b1 y) = m0 + β m1 + (m2 + m0) y, using y² = y + β.
    let c0 = m0 ^ gf16_mul(m1, BETA);
    let c1 = m2 ^ m0;
    u32::from(c0) | u32::from(c1) << 16
}

/// Multiplies in GF(2^64) (Karatsuba over GF(2^32)).
pub(crate) fn gf64_mul(a: u64, b: u64) -> u64 {
    let (a0, a1) = (a as u32, (a >> 32) as u32);
    let (b0, b1) = (b as u32, (b >> 32) as u32);
    let m0 = gf32_mul(a0, b0);
    let m1 = gf32_mul(a1, b1);
    let m2 = gf32_mul(a0 ^ a1, b0 ^ b1);
    let c0 = m0 ^ gf32_mul(m1, GAMMA);
    let c1 = m2 ^ m0;
    u64::from(c0) | u64::from(c1) << 32
}

/// Returns `x^e` in GF(2^64).
pub(crate) fn gf64_pow(mut x: u64, mut e: u64) -> u64 {
    let mut acc = 1;
    while e > 0 {
        if e & 1 == 1 {
            acc = gf64_mul(acc, x);
        }
        x = gf64_mul(x, x);
        e >>= 1;
    }
    acc
}

/// Multiplies the GF(2^64) element `x` by the subfield element `g`: each 16-bit coordinate is
/// multiplied by `g` in GF(2^16).
pub(crate) fn scale(g: u16, x: u64) -> u64 {
    if g == 0 {
        return 0;
    }
    let t = get_exp_log();
    let log_g = t.log[usize::from(g)];
    (0..4).fold(0, |acc, lane| {
        let c = (x >> (16 * lane)) as u16;
        acc | u64::from(mul(c, log_g, &t.exp, &t.log)) << (16 * lane)
    })
}

/// Multiplication by a fixed GF(2^64) element `r`, by table lookup.
///
/// Multiplication by `r` is GF(2)-linear, so `x·r` is the XOR over the eight bytes `x_i` of `x`
/// of `(x_i << 8i)·r`, each read from a 256-entry table (16 KiB in all).
pub(crate) struct MulTable {
    tables: [[u64; 256]; 8],
}

impl MulTable {
    /// Builds the tables for multiplication by `r`.
    #[cfg(test)]
    pub(crate) fn new(r: u64) -> Box<Self> {
        Self::conjugated(r, |x| x, |x| x)
    }

    /// Builds the tables for the GF(2)-linear map `x ↦ out(into(x)·r)`, where `into` and `out`
    /// are GF(2)-linear (bit permutations, in practice).
    pub(crate) fn conjugated(
        r: u64,
        into: impl Fn(u64) -> u64,
        out: impl Fn(u64) -> u64,
    ) -> Box<Self> {
        let mut t = Box::new(Self {
            tables: [[0; 256]; 8],
        });
        for (i, table) in t.tables.iter_mut().enumerate() {
            let basis: [u64; 8] =
                std::array::from_fn(|bit| out(gf64_mul(into(1 << (8 * i + bit)), r)));
            for v in 1..256usize {
                let low = v.trailing_zeros() as usize;
                table[v] = table[v & (v - 1)] ^ basis[low];
            }
        }
        t
    }

    /// Returns `x·r` (or the conjugated map's image of `x`).
    #[inline(always)]
    pub(crate) fn mul(&self, x: u64) -> u64 {
        let b = x.to_le_bytes();
        let t = &self.tables;
        (t[0][usize::from(b[0])] ^ t[1][usize::from(b[1])])
            ^ (t[2][usize::from(b[2])] ^ t[3][usize::from(b[3])])
            ^ ((t[4][usize::from(b[4])] ^ t[5][usize::from(b[5])])
                ^ (t[6][usize::from(b[6])] ^ t[7][usize::from(b[7])]))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use reed_solomon_simd::engine::GF_MODULUS;

    use super::*;

    fn square16(x: u16) -> u16 {
        gf16_mul(x, x)
    }

    /// Absolute trace of a GF(2^16) element: Σ x^(2^i), i < 16.
    fn trace16(x: u16) -> u16 {
        let mut acc = 0;
        let mut p = x;
        for _ in 0..16 {
            acc ^= p;
            p = square16(p);
        }
        acc
    }

    /// Absolute trace of a GF(2^32) element: Σ x^(2^i), i < 32.
    fn trace32(x: u32) -> u32 {
        let mut acc = 0;
        let mut p = x;
        for _ in 0..32 {
            acc ^= p;
            p = gf32_mul(p, p);
        }
        acc
    }

    fn pow16(mut base: u16, mut e: u32) -> u16 {
        let mut acc = 1;
        while e > 0 {
            if e & 1 == 1 {
                acc = gf16_mul(acc, base);
            }
            base = gf16_mul(base, base);
            e >>= 1;
        }
        acc
    }

    #[test]
    fn gf16_is_the_field_of_the_codec() {
        // 1 is the identity, 0 absorbs, and every nonzero element has order dividing 2^16 − 1.
        for x in [1u16, 2, 3, 0x1234, 0xFFFF, 0x8000] {
            assert_eq!(gf16_mul(x, 1), x);
            assert_eq!(gf16_mul(1, x), x);
            assert_eq!(gf16_mul(x, 0), 0);
            assert_eq!(gf16_mul(0, x), 0);
            assert_eq!(pow16(x, u32::from(GF_MODULUS)), 1);
        }
    }

    #[test]
    fn beta_and_gamma_are_the_smallest_trace_one_constants() {
        // The trace is GF(2)-linear, so its values on the bit basis determine it: if it
        // vanishes on every bit below the top one and is 1 on the top bit, the smallest integer
        // of trace 1 is the top bit.
        let t16: Vec<u16> = (0..16).map(|b| trace16(1 << b)).collect();
        assert!(t16[..15].iter().all(|&t| t == 0), "{t16:?}");
        assert_eq!(t16[15], 1);
        assert_eq!(trace16(BETA), 1);
        assert_eq!(BETA, 1 << 15);
        let t32: Vec<u32> = (0..32).map(|b| trace32(1 << b)).collect();
        assert!(t32[..31].iter().all(|&t| t == 0), "{t32:?}");
        assert_eq!(t32[31], 1);
        assert_eq!(trace32(GAMMA), 1);
        assert_eq!(GAMMA, 1 << 31);
        // Spot-check linearity.
        for (a, b) in [(0x1234u16, 0xF00Du16), (0x8001, 0x7FFF)] {
            assert_eq!(trace16(a ^ b), trace16(a) ^ trace16(b));
        }
    }

    #[test]
    fn tower_polynomials_are_irreducible() {
        // R = GF(q)[t]/(t² + t + c) splits as GF(q) × GF(q) iff the polynomial has a root (it
        // has no repeated root in characteristic 2), and then every element, t included,
        // satisfies x^q = x. So t^q ≠ t proves R is the field GF(q²).
        let y: u32 = 1 << 16;
        let mut p = y;
        for _ in 0..16 {
            p = gf32_mul(p, p);
        }
        assert_ne!(p, y, "y^(2^16) = y: y² + y + β is reducible");
        let z: u64 = 1 << 32;
        let mut p = z;
        for _ in 0..32 {
            p = gf64_mul(p, p);
        }
        assert_ne!(p, z, "z^(2^32) = z: z² + z + γ is reducible");
        // And x^(2^64) = x holds in GF(2^64).
        let x = 0x0123_4567_89AB_CDEFu64;
        let mut p = x;
        for _ in 0..64 {
            p = gf64_mul(p, p);
        }
        assert_eq!(p, x);
    }

    proptest! {
        #[test]
        fn gf64_is_a_commutative_ring_with_subfield_scaling(
            a in any::<u64>(), b in any::<u64>(), c in any::<u64>(), g in any::<u16>()
        ) {
            prop_assert_eq!(gf64_mul(a, b), gf64_mul(b, a));
            prop_assert_eq!(gf64_mul(gf64_mul(a, b), c), gf64_mul(a, gf64_mul(b, c)));
            prop_assert_eq!(gf64_mul(a, b ^ c), gf64_mul(a, b) ^ gf64_mul(a, c));
            prop_assert_eq!(gf64_mul(a, 1), a);
            // A subfield element embedded in the lowest lane multiplies lane-wise.
            prop_assert_eq!(gf64_mul(u64::from(g), a), scale(g, a));
        }

        #[test]
        fn nonzero_elements_are_invertible(a in 1u64..) {
            // a^(2^64 − 2) = a^(−1): square-and-multiply with all exponent bits but bit 0 set.
            let mut inv = 1u64;
            let mut p = a;
            for bit in 0..64 {
                if bit != 0 {
                    inv = gf64_mul(inv, p);
                }
                p = gf64_mul(p, p);
            }
            prop_assert_eq!(gf64_mul(a, inv), 1);
        }

        #[test]
        fn pow_matches_repeated_multiplication(x in any::<u64>(), e in 0u64..40) {
            let mut expected = 1;
            for _ in 0..e {
                expected = gf64_mul(expected, x);
            }
            prop_assert_eq!(gf64_pow(x, e), expected);
        }

        #[test]
        fn table_multiplication_matches(r in any::<u64>(), x in any::<u64>()) {
            prop_assert_eq!(MulTable::new(r).mul(x), gf64_mul(x, r));
        }
    }
}
