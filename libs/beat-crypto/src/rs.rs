//! Systematic Reed–Solomon coding of equal-length shards over reed-solomon-simd.
//!
//! Shards `0..k` are the data ("original") shards, unchanged; shards `k..n` are the parity
//! ("recovery") shards `0..n−k` of reed-solomon-simd. The library needs at least one recovery
//! shard, so the `n = k` case (committees of at most three replicas, `f = 0`) is handled here:
//! there is no parity and decoding needs every data shard.
//!
//! Shard lengths are multiples of 64 bytes, so every 64-byte block of a shard holds 32
//! GF(2^16) symbols: bytes `0..32` are their low bytes and bytes `32..64` their high bytes.

use reed_solomon_simd::{
    Error, ReedSolomonDecoder, ReedSolomonEncoder,
    engine::{
        GF_MODULUS,
        tables::{get_exp_log, mul},
    },
};

/// Multiplies in reed-solomon-simd's GF(2^16) (its Cantor-basis representation).
#[inline]
pub(crate) fn gf16_mul(a: u16, b: u16) -> u16 {
    if b == 0 {
        // `mul` takes log(b), and log(0) is not defined.
        return 0;
    }
    let t = get_exp_log();
    mul(a, t.log[usize::from(b)], &t.exp, &t.log)
}

/// The multiplicative inverse in reed-solomon-simd's GF(2^16); `None` for zero.
pub(crate) fn gf16_inv(a: u16) -> Option<u16> {
    if a == 0 {
        return None;
    }
    let t = get_exp_log();
    let log = t.log[usize::from(a)];
    let inv_log = (GF_MODULUS - log) % GF_MODULUS;
    Some(t.exp[usize::from(inv_log)])
}

/// GF(2^16) symbol `p` of a shard in reed-solomon-simd's layout (in each 64-byte block the
/// first 32 bytes are the low bytes of 32 symbols, the last 32 their high bytes).
pub(crate) fn symbol(shard: &[u8], p: usize) -> Option<u16> {
    let base = 64 * (p / 32) + p % 32;
    Some(u16::from_le_bytes([
        *shard.get(base)?,
        *shard.get(base + 32)?,
    ]))
}

/// The coefficients of reed-solomon-simd's parity shards: `rows[i][j] = G[k + i][j]`, so that
/// parity shard `i` is `Σ_j G[k+i][j]·d_j` at every symbol position.
///
/// Computed empirically: encoding is GF(2^16)-linear and the same at every symbol position, so
/// one encoding in which data shard `j` holds the symbol 1 at position `j` and zeros elsewhere
/// yields `G[k+i][j]` as symbol `j` of parity shard `i`.
pub(crate) fn parity_coefficients(k: usize, parity: usize) -> Result<Vec<Vec<u16>>, Error> {
    if parity == 0 {
        return Ok(Vec::new());
    }
    let shard_len = 64 * k.div_ceil(32);
    let unit: Vec<Vec<u8>> = (0..k)
        .map(|j| {
            let mut shard = vec![0u8; shard_len];
            if let Some(low) = shard.get_mut(64 * (j / 32) + j % 32) {
                *low = 1;
            }
            shard
        })
        .collect();
    let parity_shards = encode_parity(&unit, parity)?;
    Ok(parity_shards
        .iter()
        .map(|shard| (0..k).map(|j| symbol(shard, j).unwrap_or(0)).collect())
        .collect())
}

/// Multiplication by a fixed GF(2^16) constant: it is GF(2)-linear, so two 256-entry tables
/// (low byte, high byte) give any product with two lookups and an XOR.
struct MulTable {
    lo: [u16; 256],
    hi: [u16; 256],
}

impl MulTable {
    fn new(c: u16) -> Self {
        let mut lo = [0u16; 256];
        let mut hi = [0u16; 256];
        for x in 0..256u16 {
            lo[usize::from(x)] = gf16_mul(x, c);
            hi[usize::from(x)] = gf16_mul(x << 8, c);
        }
        Self { lo, hi }
    }

    /// `acc ^= c · src`, symbol by symbol, in reed-solomon-simd's shard layout.
    fn mul_add(&self, acc: &mut [u8], src: &[u8]) {
        for (a, s) in acc.chunks_exact_mut(64).zip(src.chunks_exact(64)) {
            let (a_lo, a_hi) = a.split_at_mut(32);
            let (s_lo, s_hi) = s.split_at(32);
            for t in 0..32 {
                let p = self.lo[usize::from(s_lo[t])] ^ self.hi[usize::from(s_hi[t])];
                a_lo[t] ^= p as u8;
                a_hi[t] ^= (p >> 8) as u8;
            }
        }
    }
}

/// Inverts a square matrix over GF(2^16) by Gauss–Jordan elimination; `None` if singular.
fn invert(mut m: Vec<Vec<u16>>) -> Option<Vec<Vec<u16>>> {
    let size = m.len();
    let mut inv: Vec<Vec<u16>> = (0..size)
        .map(|i| (0..size).map(|j| u16::from(i == j)).collect())
        .collect();
    for col in 0..size {
        let pivot = (col..size).find(|&r| m[r][col] != 0)?;
        m.swap(col, pivot);
        inv.swap(col, pivot);
        let scale = gf16_inv(m[col][col])?;
        for j in 0..size {
            m[col][j] = gf16_mul(m[col][j], scale);
            inv[col][j] = gf16_mul(inv[col][j], scale);
        }
        for r in 0..size {
            if r != col && m[r][col] != 0 {
                let factor = m[r][col];
                for j in 0..size {
                    m[r][j] ^= gf16_mul(m[col][j], factor);
                    inv[r][j] ^= gf16_mul(inv[col][j], factor);
                }
            }
        }
    }
    Some(inv)
}

/// Above this many symbol multiply-adds, reed-solomon-simd's FFT decoder (with its fixed cost
/// of evaluating the erasure locator over all 2^16 field points, about a millisecond) is
/// cheaper than solving directly.
const DIRECT_SOLVE_LIMIT: usize = 1 << 21;

/// Recovers the missing data shards from `k` distinct shards by solving with the generator
/// matrix `rows` (see [`parity_coefficients`]): subtract the known data shards from the chosen
/// parity shards, then apply the inverse of the parity rows restricted to the missing columns.
/// Returns `None` when the direct solve would be more expensive than the FFT decoder.
fn recover_direct(
    rows: &[Vec<u16>],
    k: usize,
    shard_len: usize,
    shards: &[(usize, &[u8])],
    data: &mut [Option<Vec<u8>>],
) -> Option<()> {
    let missing: Vec<usize> = (0..k).filter(|j| data[*j].is_none()).collect();
    let m = missing.len();
    if m == 0 {
        return Some(());
    }
    if m * (k + m) * (shard_len / 2) > DIRECT_SOLVE_LIMIT || !shard_len.is_multiple_of(64) {
        return None;
    }
    let parities: Vec<(usize, &[u8])> = shards
        .iter()
        .filter(|(i, _)| *i >= k)
        .take(m)
        .map(|(i, b)| (*i - k, *b))
        .collect();
    if parities.len() < m {
        return None;
    }
    // r_p = s_p − Σ_{known j} G[p][j]·d_j
    let mut residues: Vec<Vec<u8>> = Vec::with_capacity(m);
    for (p, bytes) in &parities {
        let row = rows.get(*p)?;
        let mut r = bytes.to_vec();
        for (j, d) in data.iter().enumerate().take(k) {
            if let Some(d) = d
                && row[j] != 0
            {
                MulTable::new(row[j]).mul_add(&mut r, d);
            }
        }
        residues.push(r);
    }
    let a: Vec<Vec<u16>> = parities
        .iter()
        .map(|(p, _)| missing.iter().map(|j| rows[*p][*j]).collect())
        .collect();
    let a_inv = invert(a)?;
    for (x, j) in missing.iter().enumerate() {
        let mut out = vec![0u8; shard_len];
        for (y, r) in residues.iter().enumerate() {
            let c = a_inv[x][y];
            if c != 0 {
                MulTable::new(c).mul_add(&mut out, r);
            }
        }
        data[*j] = Some(out);
    }
    Some(())
}

/// Returns `true` if reed-solomon-simd supports `k` data and `parity` parity shards (always true
/// for `parity = 0`, which needs no codec).
pub(crate) fn supports(k: usize, parity: usize) -> bool {
    k > 0 && (parity == 0 || ReedSolomonEncoder::supports(k, parity))
}

/// Returns the `parity` parity shards of `data` (`k = data.len()` shards of equal length).
pub(crate) fn encode_parity<D: AsRef<[u8]>>(
    data: &[D],
    parity: usize,
) -> Result<Vec<Vec<u8>>, Error> {
    if parity == 0 {
        return Ok(Vec::new());
    }
    let shard_len = data.first().map_or(0, |d| d.as_ref().len());
    let mut encoder = ReedSolomonEncoder::new(data.len(), parity, shard_len)?;
    for d in data {
        encoder.add_original_shard(d)?;
    }
    let result = encoder.encode()?;
    Ok(result.recovery_iter().map(<[u8]>::to_vec).collect())
}

/// Returns the `k` data shards from exactly `k` distinct shards `(index, bytes)` of an `(n, k)`
/// code (`parity = n − k`), all of length `shard_len`. `rows` are the code's parity
/// coefficients ([`parity_coefficients`]); small decodes solve with them directly, large ones
/// use reed-solomon-simd's decoder. Both give the same result (the code is linear).
///
/// The caller checks indices, distinctness and lengths; the codec re-checks them and any
/// violation comes back as an error rather than a panic.
pub(crate) fn recover_data(
    rows: &[Vec<u16>],
    k: usize,
    parity: usize,
    shard_len: usize,
    shards: &[(usize, &[u8])],
) -> Result<Vec<Vec<u8>>, Error> {
    let mut data: Vec<Option<Vec<u8>>> = vec![None; k];
    for &(index, bytes) in shards {
        if let Some(slot) = data.get_mut(index) {
            *slot = Some(bytes.to_vec());
        }
    }
    if data.iter().any(Option::is_none) && rows.len() == parity {
        let _ = recover_direct(rows, k, shard_len, shards, &mut data);
    }
    if data.iter().any(Option::is_none) {
        let mut decoder = ReedSolomonDecoder::new(k, parity, shard_len)?;
        for &(index, bytes) in shards {
            if index < k {
                decoder.add_original_shard(index, bytes)?;
            } else {
                decoder.add_recovery_shard(index - k, bytes)?;
            }
        }
        let result = decoder.decode()?;
        for (index, restored) in result.restored_original_iter() {
            if let Some(slot) = data.get_mut(index) {
                *slot = Some(restored.to_vec());
            }
        }
    }
    data.into_iter()
        .map(|d| {
            d.ok_or(Error::NotEnoughShards {
                original_count: k,
                original_received_count: shards.iter().filter(|(i, _)| *i < k).count(),
                recovery_received_count: shards.iter().filter(|(i, _)| *i >= k).count(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systematic_round_trip_including_no_parity() {
        for (n, k) in [(1, 1), (3, 3), (4, 2), (7, 3), (5, 1)] {
            let data: Vec<Vec<u8>> = (0..k).map(|i| vec![i as u8 + 1; 128]).collect();
            let parity = encode_parity(&data, n - k).unwrap();
            assert_eq!(parity.len(), n - k);
            let all: Vec<&[u8]> = data.iter().chain(&parity).map(Vec::as_slice).collect();
            // The last k shards: as many parity shards as possible.
            let chosen: Vec<(usize, &[u8])> = (n - k..n).map(|i| (i, all[i])).collect();
            let rows = parity_coefficients(k, n - k).unwrap();
            assert_eq!(recover_data(&rows, k, n - k, 128, &chosen).unwrap(), data);
            assert_eq!(recover_data(&[], k, n - k, 128, &chosen).unwrap(), data);
        }
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The direct solve and reed-solomon-simd's decoder agree on every shard subset.
        #[test]
        fn direct_solve_matches_the_fft_decoder(
            (n, k) in (2usize..20).prop_flat_map(|n| (Just(n), 1..=n)),
            blocks in 1usize..4,
            seed in any::<u64>(),
        ) {
            let mut x = seed | 1;
            let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
            let len = 64 * blocks;
            let data: Vec<Vec<u8>> = (0..k).map(|_| (0..len).map(|_| next() as u8).collect()).collect();
            let parity = encode_parity(&data, n - k).unwrap();
            let all: Vec<&[u8]> = data.iter().chain(&parity).map(Vec::as_slice).collect();
            let mut order: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() { order.swap(i, (next() % (i as u64 + 1)) as usize); }
            let mut chosen: Vec<(usize, &[u8])> = order[..k].iter().map(|&i| (i, all[i])).collect();
            chosen.sort_unstable_by_key(|(i, _)| *i);
            let rows = parity_coefficients(k, n - k).unwrap();
            let direct = recover_data(&rows, k, n - k, len, &chosen).unwrap();
            let fft = recover_data(&[], k, n - k, len, &chosen).unwrap();
            prop_assert_eq!(&direct, &data);
            prop_assert_eq!(direct, fft);
        }
    }

    #[test]
    fn inverses_and_matrix_inversion() {
        for a in [1u16, 2, 3, 0x8000, 0xffff, 12345] {
            assert_eq!(gf16_mul(a, gf16_inv(a).unwrap()), 1);
        }
        assert_eq!(gf16_inv(0), None);
        assert!(invert(vec![vec![0, 0], vec![0, 0]]).is_none());
        let m = vec![vec![3u16, 7], vec![11, 13]];
        let inv = invert(m.clone()).unwrap();
        for (i, row) in m.iter().enumerate() {
            for j in 0..2 {
                let v = row
                    .iter()
                    .zip(&inv)
                    .fold(0u16, |acc, (a, inv_row)| acc ^ gf16_mul(*a, inv_row[j]));
                assert_eq!(v, u16::from(i == j));
            }
        }
    }

    #[test]
    fn too_few_shards_is_an_error_not_a_panic() {
        let data = [vec![1u8; 64], vec![2u8; 64]];
        let parity = encode_parity(&data, 2).unwrap();
        let rows = parity_coefficients(2, 2).unwrap();
        assert!(recover_data(&rows, 2, 2, 64, &[(3, &parity[1])]).is_err());
        assert!(recover_data(&[], 3, 0, 64, &[(0, &data[0]), (1, &data[1])]).is_err());
    }
}
