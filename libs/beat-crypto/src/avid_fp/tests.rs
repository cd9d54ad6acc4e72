use proptest::prelude::*;

use super::{
    field::gf16_mul,
    fingerprint::{Fingerprinter, evaluation_points, fragment_hash},
    *,
};
use crate::rs;

/// Every `k`-subset of `0..n`, as sorted index lists.
fn k_subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m >> i & 1 == 1).collect())
        .collect()
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(i as u64 | 1) >> 29) as u8 ^ i as u8)
        .collect()
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn code(n: usize, layout: Layout) -> AvidFpCode {
    AvidFpCode::new(beat_types::Committee::new(n).unwrap(), layout).unwrap()
}

/// Builds the cross-checksum a (possibly faulty) proposer publishes for arbitrary fragments:
/// hashes of every fragment, points from them, fingerprints of the data fragments.
fn commit(code: &AvidFpCode, payload_len: u64, bytes: &[Vec<u8>]) -> (Fpcc, Vec<Fragment>) {
    let fragment_hashes: Vec<_> = bytes
        .iter()
        .enumerate()
        .map(|(i, b)| fragment_hash(i as u32, b))
        .collect();
    let points = evaluation_points(payload_len, &fragment_hashes);
    let fp = Fingerprinter::new(points, bytes[0].len());
    let fingerprints = bytes[..code.k()]
        .iter()
        .map(|d| fp.fingerprint(d))
        .collect();
    let fragments = bytes
        .iter()
        .enumerate()
        .map(|(i, b)| Fragment {
            index: i as u32,
            bytes: b.clone(),
        })
        .collect();
    let fpcc = Fpcc {
        payload_len,
        fragment_hashes,
        fingerprints,
    };
    (fpcc, fragments)
}

fn symbol(shard: &[u8], p: usize) -> u16 {
    let base = 64 * (p / 32) + p % 32;
    u16::from_le_bytes([shard[base], shard[base + 32]])
}

fn layouts(k: usize) -> Vec<Layout> {
    let mut l = vec![Layout::Mds];
    l.extend((1..=k.min(3)).map(|groups| Layout::Pyramid { groups }));
    l
}

fn n_layout_len() -> impl Strategy<Value = (usize, Layout, usize)> {
    prop::sample::select(vec![4usize, 5, 7, 10]).prop_flat_map(|n| {
        let k = beat_types::Committee::new(n).unwrap().data_shards();
        let len = prop_oneof![
            Just(0usize),
            Just(1usize),
            0usize..3000,
            (1usize..5).prop_map(move |m| m * 64 * k),
            (1usize..5).prop_map(move |m| m * 64 * k + 1),
            (0usize..600).prop_map(|m| 2 * m + 1),
        ];
        (Just(n), prop::sample::select(layouts(k)), len)
    })
}

// --- generator coefficients ---

#[test]
fn encoding_is_gf16_linear_with_the_cached_coefficients_at_every_symbol_position() {
    for (n, k) in [
        (4, 2),
        (7, 3),
        (10, 4),
        (16, 6),
        (64, 22),
        (100, 34),
        (40, 33),
        (5, 1),
    ] {
        let code = AvidFpCode::with_params(n, k, Layout::Mds).unwrap();
        let shard_len = 3 * 64;
        let data: Vec<Vec<u8>> = (0..k).map(|j| noise(shard_len, j as u64 + 99)).collect();
        let parity = rs::encode_parity(&data, n - k).unwrap();
        for (i, shard) in parity.iter().enumerate() {
            for p in 0..shard_len / 2 {
                let expected = (0..k).fold(0u16, |acc, j| {
                    let g = code.generator_coefficient(k + i, j).unwrap();
                    acc ^ gf16_mul(g, symbol(&data[j], p))
                });
                assert_eq!(
                    symbol(shard, p),
                    expected,
                    "n {n} k {k} parity {i} symbol {p}"
                );
            }
        }
        // Identity rows for data fragments; nothing beyond the code.
        assert_eq!(code.generator_coefficient(0, 0), Some(1));
        assert_eq!(
            code.generator_coefficient(k - 1, 0),
            Some(u16::from(k == 1))
        );
        assert_eq!(code.generator_coefficient(n, 0), None);
        assert_eq!(code.generator_coefficient(0, k), None);
    }
}

// --- construction and helpers ---

#[test]
fn parameters_groups_and_holders() {
    let c = code(7, Layout::pyramid(beat_types::Committee::new(7).unwrap()));
    assert_eq!(
        (c.n(), c.k(), c.group_count(), c.fragment_count()),
        (7, 3, 2, 9)
    );
    assert_eq!(c.group_fragments(0), vec![0, 1]);
    assert_eq!(c.group_fragments(1), vec![2]);
    assert!(c.group_fragments(2).is_empty());
    assert_eq!(c.group_of_data_fragment(1), Some(0));
    assert_eq!(c.group_of_data_fragment(2), Some(1));
    assert_eq!(c.group_of_data_fragment(3), None);
    assert_eq!(c.local_parity_index(0), Some(7));
    assert_eq!(c.local_parity_index(1), Some(8));
    assert_eq!(c.local_parity_index(2), None);
    let holders: Vec<_> = (0..10).map(|i| c.holder_of(i)).collect();
    let expected = [0, 1, 2, 3, 4, 5, 6, 3, 4].map(Some);
    assert_eq!(holders[..9], expected);
    assert_eq!(holders[9], None);

    // Groups as even as possible.
    let c = AvidFpCode::with_params(22, 10, Layout::Pyramid { groups: 3 }).unwrap();
    let sizes: Vec<usize> = (0..3).map(|g| c.group_fragments(g).len()).collect();
    assert_eq!(sizes, [4, 3, 3]);

    // Defaults: min(2, k) groups.
    assert_eq!(
        Layout::pyramid(beat_types::Committee::new(4).unwrap()),
        Layout::Pyramid { groups: 2 }
    );
    assert_eq!(
        Layout::pyramid(beat_types::Committee::new(1).unwrap()),
        Layout::Pyramid { groups: 1 }
    );
    let mds = code(4, Layout::Mds);
    assert_eq!((mds.group_count(), mds.fragment_count()), (0, 4));
    assert_eq!(mds.holder_of(4), None);

    assert_eq!(
        AvidFpCode::with_params(4, 2, Layout::Pyramid { groups: 0 }),
        Err(AvidFpError::InvalidGroups { groups: 0, k: 2 })
    );
    assert_eq!(
        AvidFpCode::with_params(4, 2, Layout::Pyramid { groups: 3 }),
        Err(AvidFpError::InvalidGroups { groups: 3, k: 2 })
    );
    assert!(AvidFpCode::with_params(4, 0, Layout::Mds).is_err());
    assert!(AvidFpCode::with_params(4, 5, Layout::Mds).is_err());
}

#[test]
fn dispersal_does_not_depend_on_thread_count() {
    let p = payload(700_000, 1);
    let c = code(16, Layout::Pyramid { groups: 2 });
    let one = c.clone().with_threads(1).disperse(&p).unwrap();
    for threads in [2, 3, 8] {
        assert_eq!(c.clone().with_threads(threads).disperse(&p).unwrap(), one);
    }
}

#[test]
fn fragment_len_is_canonical() {
    let c = code(7, Layout::Mds); // k = 3
    for (len, s) in [
        (0, 64),
        (1, 64),
        (192, 64),
        (193, 128),
        (384, 128),
        (385, 192),
    ] {
        assert_eq!(c.fragment_len(len), s, "len {len}");
    }
}

#[test]
fn small_committees_without_parity_work() {
    for n in 1..=3 {
        for layout in layouts(n) {
            let c = code(n, layout);
            let p = payload(500, n as u64);
            let (fpcc, frags) = c.disperse(&p).unwrap();
            assert_eq!(frags.len(), n + c.group_count());
            for f in &frags {
                c.verify_fragment(&fpcc, f).unwrap();
            }
            assert_eq!(c.decode(&fpcc, &frags).unwrap(), p);
            let missing_one = &frags[1..];
            assert!(matches!(
                c.decode(&fpcc, missing_one),
                Err(AvidFpError::NotEnoughFragments { .. })
            ));
        }
    }
}

#[test]
fn fpcc_shape_is_validated() {
    let c = code(4, Layout::pyramid(beat_types::Committee::new(4).unwrap()));
    let (fpcc, frags) = c.disperse(b"abc").unwrap();
    fpcc.validate(&c).unwrap();
    let mut short = fpcc.clone();
    short.fragment_hashes.pop();
    assert_eq!(
        c.verify_fragment(&short, &frags[0]),
        Err(AvidFpError::FpccShape {
            field: FpccField::FragmentHashes,
            got: 5,
            expected: 6
        })
    );
    let mut extra = fpcc.clone();
    extra.fingerprints.push([0, 0]);
    assert!(matches!(
        extra.validate(&c),
        Err(AvidFpError::FpccShape {
            field: FpccField::Fingerprints,
            ..
        })
    ));
    let mut huge = fpcc.clone();
    huge.payload_len = u64::MAX;
    assert!(matches!(
        c.decode(&huge, &frags),
        Err(AvidFpError::PayloadTooLarge { .. })
    ));
    // The MDS code rejects a pyramid cross-checksum.
    assert!(fpcc.validate(&code(4, Layout::Mds)).is_err());
    let small = code(4, Layout::Mds).with_max_payload_len(10);
    assert!(matches!(
        small.disperse(&[0u8; 11]),
        Err(AvidFpError::PayloadTooLarge { len: 11, max: 10 })
    ));
}

#[test]
fn wire_types_round_trip_through_serde() {
    let c = code(4, Layout::Mds);
    let (fpcc, frags) = c.disperse(b"serde").unwrap();
    let json = serde_json::to_string(&fpcc).unwrap();
    let back: Fpcc = serde_json::from_str(&json).unwrap();
    assert_eq!(back, fpcc);
    assert_eq!(back.digest(), fpcc.digest());
    let json = serde_json::to_string(&frags[2]).unwrap();
    assert_eq!(serde_json::from_str::<Fragment>(&json).unwrap(), frags[2]);
    let layout = serde_json::to_string(&Layout::Pyramid { groups: 2 }).unwrap();
    assert_eq!(
        serde_json::from_str::<Layout>(&layout).unwrap(),
        Layout::Pyramid { groups: 2 }
    );
}

#[test]
fn digest_covers_every_field() {
    let c = code(4, Layout::Mds);
    let (fpcc, _) = c.disperse(b"digest").unwrap();
    let d = fpcc.digest();
    let mut a = fpcc.clone();
    a.payload_len += 1;
    let mut b = fpcc.clone();
    b.fragment_hashes.swap(0, 1);
    let mut e = fpcc;
    e.fingerprints[1][1] ^= 1;
    for other in [a, b, e] {
        assert_ne!(other.digest(), d);
    }
}

#[test]
fn cross_checksum_is_the_commit_step_of_disperse() {
    for n in [4, 7] {
        for layout in layouts(beat_types::Committee::new(n).unwrap().data_shards()) {
            let c = code(n, layout);
            let p = payload(300, n as u64);
            let (fpcc, frags) = c.disperse(&p).unwrap();
            assert_eq!(c.cross_checksum(300, &frags), Ok(fpcc));
            // An inconsistent dispersal gets the commitment a faulty proposer would publish.
            let mut bytes: Vec<Vec<u8>> = frags.iter().map(|f| f.bytes.clone()).collect();
            let last = bytes.len() - 1;
            bytes[last] = noise(bytes[last].len(), 4);
            let (expected, bad) = commit(&c, 300, &bytes);
            assert_eq!(c.cross_checksum(300, &bad), Ok(expected));
        }
    }
    let c = code(4, Layout::Mds);
    let (_, frags) = c.disperse(b"shape").unwrap();
    assert_eq!(
        c.cross_checksum(5, &frags[1..]),
        Err(AvidFpError::FragmentCount {
            got: 3,
            expected: 4
        })
    );
    let mut swapped = frags.clone();
    swapped.swap(1, 2);
    assert_eq!(
        c.cross_checksum(5, &swapped),
        Err(AvidFpError::FragmentOrder {
            position: 1,
            index: 2
        })
    );
    let mut short = frags.clone();
    short[3].bytes.truncate(10);
    assert_eq!(
        c.cross_checksum(5, &short),
        Err(AvidFpError::FragmentLength {
            index: 3,
            len: 10,
            expected: 64
        })
    );
    // 64-byte fragments hold up to 128 payload bytes at k = 2, no more.
    assert!(matches!(
        c.cross_checksum(129, &frags),
        Err(AvidFpError::FragmentLength { .. })
    ));
    assert!(matches!(
        c.with_max_payload_len(4).cross_checksum(5, &frags),
        Err(AvidFpError::PayloadTooLarge { len: 5, max: 4 })
    ));
}

// --- verification ---

#[test]
fn every_single_fragment_corruption_fails_verification() {
    for n in [4, 7] {
        for layout in layouts(beat_types::Committee::new(n).unwrap().data_shards()) {
            let c = code(n, layout);
            let p = payload(700, n as u64);
            let (fpcc, frags) = c.disperse(&p).unwrap();
            let count = frags.len();
            for (i, f) in frags.iter().enumerate() {
                c.verify_fragment(&fpcc, f).unwrap();
                // Every bit of the first and last block, and some in between.
                let len = f.bytes.len();
                for bit in (0..512)
                    .chain((512..len * 8 - 512).step_by(97))
                    .chain(len * 8 - 512..len * 8)
                {
                    let mut bad = f.clone();
                    bad.bytes[bit / 8] ^= 1 << (bit % 8);
                    let err = c.verify_fragment(&fpcc, &bad).unwrap_err();
                    assert_eq!(err, AvidFpError::FragmentHashMismatch { index: i as u32 });
                    assert!(err.is_bad_fragment());
                }
                // Wrong index, including out of range (a fragment with the same bytes at j,
                // such as the local parity of a one-fragment group, is legitimately valid).
                for j in 0..=count {
                    if frags.get(j).is_some_and(|o| o.bytes == f.bytes) {
                        continue;
                    }
                    let bad = Fragment {
                        index: j as u32,
                        bytes: f.bytes.clone(),
                    };
                    assert!(
                        c.verify_fragment(&fpcc, &bad)
                            .unwrap_err()
                            .is_bad_fragment()
                    );
                }
                // Wrong length.
                for new_len in [0, len - 64, len - 2, len + 2, len + 64] {
                    let mut bad = f.clone();
                    bad.bytes.resize(new_len, 0);
                    assert!(matches!(
                        c.verify_fragment(&fpcc, &bad),
                        Err(AvidFpError::FragmentLength { .. })
                    ));
                }
                // Swapped with another fragment.
                for other in frags.iter().filter(|o| o.bytes != f.bytes) {
                    let bad = Fragment {
                        index: f.index,
                        bytes: other.bytes.clone(),
                    };
                    assert!(c.verify_fragment(&fpcc, &bad).is_err());
                }
            }
        }
    }
}

#[test]
fn inconsistent_parity_is_caught_by_its_fingerprint() {
    for n in [4, 5, 7, 10] {
        let k = beat_types::Committee::new(n).unwrap().data_shards();
        let c = code(n, Layout::Pyramid { groups: k.min(2) });
        let p = payload(1000, 3);
        let (_, honest) = c.disperse(&p).unwrap();
        // Replace each parity fragment (global or local) in turn with random bytes, and commit
        // to it: its hash is right, its fingerprint cannot be.
        for bad in k..c.fragment_count() {
            let mut bytes: Vec<Vec<u8>> = honest.iter().map(|f| f.bytes.clone()).collect();
            bytes[bad] = noise(bytes[bad].len(), bad as u64);
            let (fpcc, frags) = commit(&c, p.len() as u64, &bytes);
            for f in &frags {
                let result = c.verify_fragment(&fpcc, f);
                if f.index as usize == bad {
                    assert_eq!(
                        result,
                        Err(AvidFpError::FingerprintMismatch { index: bad as u32 })
                    );
                } else {
                    assert_eq!(result, Ok(()), "n {n} bad {bad} fragment {}", f.index);
                }
            }
            // A reader given k fragments including the bad one cannot decode...
            let with_bad: Vec<Fragment> = frags[..k - 1]
                .iter()
                .chain([&frags[bad]])
                .cloned()
                .collect();
            if bad < n {
                assert_eq!(
                    c.decode(&fpcc, &with_bad),
                    Err(AvidFpError::NotEnoughFragments {
                        have: k - 1,
                        need: k,
                        rejected: vec![bad as u32]
                    })
                );
            }
            // ...and with every fragment, decodes the payload and reports the bad one.
            let outcome = c.decode_reporting(&fpcc, &frags).unwrap();
            assert_eq!(outcome.payload, p);
            assert!(outcome.rejected.iter().all(|r| r.index as usize == bad));
        }
    }
}

#[test]
fn inconsistent_data_fragment_fails_every_parity_it_feeds() {
    let c = code(7, Layout::Pyramid { groups: 2 }); // k = 3, groups {0,1} {2}
    let p = payload(500, 9);
    let (_, honest) = c.disperse(&p).unwrap();
    let mut bytes: Vec<Vec<u8>> = honest.iter().map(|f| f.bytes.clone()).collect();
    bytes[1] = noise(bytes[1].len(), 1);
    let (fpcc, frags) = commit(&c, p.len() as u64, &bytes);
    let failing: Vec<u32> = frags
        .iter()
        .filter(|f| c.verify_fragment(&fpcc, f).is_err())
        .map(|f| f.index)
        .collect();
    // Global parities 3..7 and the local parity of group 0 (fragment 7) depend on fragment 1.
    assert_eq!(failing, vec![3, 4, 5, 6, 7]);
}

// --- decoding ---

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decodes_from_every_k_subset((n, layout, len) in n_layout_len(), seed in any::<u64>()) {
        let c = code(n, layout);
        let p = payload(len, seed);
        let (fpcc, frags) = c.disperse(&p).unwrap();
        prop_assert_eq!(frags.len(), c.fragment_count());
        for f in &frags {
            prop_assert_eq!(c.verify_fragment(&fpcc, f), Ok(()));
        }
        for subset in k_subsets(n, c.k()) {
            let chosen: Vec<Fragment> = subset.iter().map(|&i| frags[i].clone()).collect();
            prop_assert_eq!(&c.decode(&fpcc, &chosen).unwrap(), &p);
        }
    }

    #[test]
    fn decode_drops_and_reports_bad_fragments(
        (n, layout, len) in n_layout_len(),
        seed in any::<u64>(),
        which in any::<prop::sample::Index>(),
    ) {
        let c = code(n, layout);
        let p = payload(len, seed);
        let (fpcc, mut frags) = c.disperse(&p).unwrap();
        // Corrupt up to 2f MDS fragments, starting at a random one.
        let f = (n - c.k()) / 2;
        let first = which.index(n);
        let bad: Vec<u32> = (0..2 * f).map(|d| ((first + d) % n) as u32).collect();
        for &b in &bad {
            frags[b as usize].bytes[0] ^= 0x40;
        }
        let outcome = c.decode_reporting(&fpcc, &frags).unwrap();
        prop_assert_eq!(&outcome.payload, &p);
        let mut reported: Vec<u32> = outcome.rejected.iter().map(|r| r.index).collect();
        reported.sort_unstable();
        let mut expected = bad.clone();
        expected.sort_unstable();
        // Verification stops after k good fragments; everything it rejected was bad.
        prop_assert!(reported.iter().all(|r| expected.contains(r)));
        // Duplicates: a good copy after a bad one with the same index is used.
        let mut with_dupes = frags.clone();
        for &b in &bad {
            with_dupes.push(c.disperse(&p).unwrap().1[b as usize].clone());
        }
        prop_assert_eq!(&c.decode(&fpcc, &with_dupes).unwrap(), &p);
    }
}

/// Commits to `data` (k data fragments, possibly with non-zero padding) as a dispersal of a
/// `payload_len`-byte payload: a valid codeword, as a faulty proposer would build it.
fn disperse_data(c: &AvidFpCode, payload_len: u64, data: &[u8]) -> (Fpcc, Vec<Fragment>) {
    // `data` fills k·S bytes, so disperse lays it out with the same fragment length.
    assert_eq!(data.len(), c.k() * c.fragment_len(payload_len));
    let (_, fragments) = c.disperse(data).unwrap();
    let fpcc = c.cross_checksum(payload_len, &fragments).unwrap();
    (fpcc, fragments)
}

/// Issue 12, bug 5: a valid codeword whose padding is non-zero outside the group being read.
/// The value is the first `payload_len` bytes; full and partial readers return the same bytes.
#[test]
fn nonzero_padding_in_another_group_reads_the_same_through_read_group_and_decode() {
    let c = code(7, Layout::Pyramid { groups: 2 }); // k = 3, groups {0, 1} {2}, S = 64
    let p = payload(100, 5);
    let mut data = p.clone();
    data.resize(3 * 64, 0);
    data[138] = 7; // padding in fragment 2, group 1
    data[191] = 9;
    let (fpcc, frags) = disperse_data(&c, 100, &data);
    for f in &frags {
        c.verify_fragment(&fpcc, f).unwrap();
    }
    for subset in k_subsets(7, 3) {
        let chosen: Vec<Fragment> = subset.iter().map(|&i| frags[i].clone()).collect();
        assert_eq!(c.decode(&fpcc, &chosen).unwrap(), p, "subset {subset:?}");
    }
    let group0 = c.read_group(&fpcc, 0, &frags[..2]).unwrap();
    assert_eq!((group0.byte_range, group0.bytes), (0..100, p));
    // Group 1 holds padding only, non-zero or not: nothing of the payload.
    let group1 = c.read_group(&fpcc, 1, &frags[2..3]).unwrap();
    assert_eq!(group1.byte_range, 100..100);
    assert!(group1.bytes.is_empty());
    // Repaired from the local parity, group 1's read is the same.
    let repaired = c.read_group(&fpcc, 1, &[frags[8].clone()]).unwrap();
    assert_eq!(repaired.repaired, Some(2));
    assert_eq!(repaired.bytes, group1.bytes);
    // The same value with canonical padding has another cross-checksum: the commitment, not
    // the value, is what replicas agree on.
    assert_ne!(c.disperse(&payload(100, 5)).unwrap().0, fpcc);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the padding holds, every group's partial read equals the full read's bytes in
    /// its range, and the full read is the payload.
    #[test]
    fn read_group_agrees_with_decode_whatever_the_padding(
        n in prop::sample::select(vec![4usize, 5, 7, 10, 16]),
        groups_pick in any::<prop::sample::Index>(),
        len in 0usize..3000,
        seed in any::<u64>(),
        padding_seed in any::<u64>(),
        dense in any::<bool>(),
    ) {
        let k = beat_types::Committee::new(n).unwrap().data_shards();
        let groups = 1 + groups_pick.index(k);
        let c = code(n, Layout::Pyramid { groups });
        let p = payload(len, seed);
        let s = c.fragment_len(len as u64);
        let mut data = p.clone();
        // Either every padding byte random, or a single non-zero byte somewhere in it.
        let pad = k * s - len;
        if dense {
            data.extend(noise(pad, padding_seed));
        } else {
            data.resize(k * s, 0);
            if pad > 0 {
                data[len + (padding_seed % pad as u64) as usize] = 0x80;
            }
        }
        let (fpcc, frags) = disperse_data(&c, len as u64, &data);
        let full = c.decode(&fpcc, &frags).unwrap();
        prop_assert_eq!(&full, &p);
        let mut reassembled = Vec::new();
        for g in 0..groups {
            let needed = c.group_fragments(g);
            let given: Vec<Fragment> =
                needed.iter().map(|&i| frags[i as usize].clone()).collect();
            let read = c.read_group(&fpcc, g, &given).unwrap();
            let range = read.byte_range.start as usize..read.byte_range.end as usize;
            prop_assert_eq!(&read.bytes[..], &full[range.clone()]);
            // Repairing any one data fragment from the local parity gives the same bytes.
            let parity = frags[c.local_parity_index(g).unwrap() as usize].clone();
            for missing in 0..given.len() {
                let mut partial = given.clone();
                partial.remove(missing);
                partial.push(parity.clone());
                let repaired = c.read_group(&fpcc, g, &partial).unwrap();
                prop_assert_eq!(&repaired.bytes, &read.bytes);
            }
            reassembled.extend_from_slice(&read.bytes);
        }
        prop_assert_eq!(reassembled, p);
    }
}

// --- pyramid partial reads ---

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn read_group_returns_exactly_the_group_bytes(
        n in prop::sample::select(vec![4usize, 5, 7, 10, 16]),
        groups_pick in any::<prop::sample::Index>(),
        len in 0usize..5000,
        seed in any::<u64>(),
    ) {
        let k = beat_types::Committee::new(n).unwrap().data_shards();
        let groups = 1 + groups_pick.index(k);
        let c = code(n, Layout::Pyramid { groups });
        let p = payload(len, seed);
        let (fpcc, frags) = c.disperse(&p).unwrap();
        let s = c.fragment_len(len as u64) as u64;
        let mut reassembled = Vec::new();
        for g in 0..groups {
            let needed = c.group_fragments(g);
            let parity = c.local_parity_index(g).unwrap() as usize;
            prop_assert_eq!(c.holder_of(parity), Some((k + g) % n));
            // Only the group's data fragments.
            let given: Vec<Fragment> = needed.iter().map(|&i| frags[i as usize].clone()).collect();
            let read = c.read_group(&fpcc, g, &given).unwrap();
            let start = (u64::from(needed[0]) * s).min(len as u64);
            let end = ((u64::from(*needed.last().unwrap()) + 1) * s).min(len as u64);
            prop_assert_eq!(read.byte_range.clone(), start..end);
            prop_assert_eq!(&read.bytes[..], &p[start as usize..end as usize]);
            prop_assert_eq!(read.repaired, None);
            reassembled.extend_from_slice(&read.bytes);

            // Repair each data fragment in turn, missing or corrupted, from the local parity.
            for (pos, &missing) in needed.iter().enumerate() {
                let mut partial: Vec<Fragment> = given.clone();
                if pos % 2 == 0 {
                    partial.remove(pos);
                } else {
                    partial[pos].bytes[3] ^= 1;
                }
                let unrecoverable = matches!(
                    c.read_group(&fpcc, g, &partial),
                    Err(AvidFpError::GroupUnrecoverable { missing: ref m, .. }) if m == &vec![missing]
                );
                prop_assert!(unrecoverable);
                partial.push(frags[parity].clone());
                let repaired = c.read_group(&fpcc, g, &partial).unwrap();
                prop_assert_eq!(&repaired.bytes, &read.bytes);
                prop_assert_eq!(repaired.repaired, Some(missing));
                prop_assert_eq!(repaired.rejected.len(), pos % 2);
                // A bad local parity does not help.
                let last = partial.len() - 1;
                partial[last].bytes[0] ^= 1;
                prop_assert!(c.read_group(&fpcc, g, &partial).is_err());
            }

            // Two missing data fragments: refuse, and say which.
            if needed.len() >= 2 {
                let partial: Vec<Fragment> = given[2..]
                    .iter()
                    .cloned()
                    .chain([frags[parity].clone()])
                    .collect();
                prop_assert_eq!(
                    c.read_group(&fpcc, g, &partial),
                    Err(AvidFpError::GroupUnrecoverable {
                        group: g,
                        missing: needed[..2].to_vec(),
                        local_parity: parity as u32,
                        rejected: vec![],
                    })
                );
            }
        }
        prop_assert_eq!(reassembled, p);
    }
}

#[test]
fn read_group_argument_errors() {
    let mds = code(4, Layout::Mds);
    let (fpcc, frags) = mds.disperse(b"x").unwrap();
    assert_eq!(
        mds.read_group(&fpcc, 0, &frags),
        Err(AvidFpError::NotPyramid)
    );
    let pyr = code(4, Layout::Pyramid { groups: 2 });
    let (fpcc, frags) = pyr.disperse(b"x").unwrap();
    assert_eq!(
        pyr.read_group(&fpcc, 2, &frags),
        Err(AvidFpError::GroupOutOfRange {
            group: 2,
            groups: 2
        })
    );
    // Group 1 of a 1-byte payload is pure padding: empty range, no bytes.
    let read = pyr.read_group(&fpcc, 1, &frags).unwrap();
    assert_eq!(read.byte_range, 1..1);
    assert!(read.bytes.is_empty());
}
