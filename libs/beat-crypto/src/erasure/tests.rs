use proptest::prelude::*;

use super::*;

/// Every `k`-subset of `0..n`, as sorted index lists.
fn k_subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m >> i & 1 == 1).collect())
        .collect()
}

fn pick<'a>(shards: &'a [Vec<u8>], subset: &[usize]) -> Vec<(usize, &'a [u8])> {
    subset.iter().map(|&i| (i, shards[i].as_slice())).collect()
}

/// The shards of `subset` as leaves verified against `root`.
fn verified_leaves(
    tree: &MerkleTree,
    root: &Digest,
    shards: &[Vec<u8>],
    subset: &[usize],
) -> Vec<VerifiedLeaf> {
    subset
        .iter()
        .map(|&i| {
            tree.proof(i)
                .unwrap()
                .verify_leaf(root, bytes::Bytes::from(shards[i].clone()), shards.len())
                .expect("an honest proof verifies")
        })
        .collect()
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u8 ^ (i as u8).wrapping_mul(31)
        })
        .collect()
}

/// Encodes arbitrary framed bytes (possibly non-canonical) with a consistent codeword and tree,
/// as a faulty proposer could.
fn encode_raw(coder: &ErasureCoder, framed: &[u8], shard_len: usize) -> EncodedPayload {
    let mut shards: Vec<Vec<u8>> = framed.chunks(shard_len).map(<[u8]>::to_vec).collect();
    assert_eq!(shards.len(), coder.k());
    let parity = rs::encode_parity(&shards, coder.n() - coder.k()).unwrap();
    shards.extend(parity);
    let tree = MerkleTree::new(&shards);
    EncodedPayload { shards, tree }
}

fn framed_bytes(coder: &ErasureCoder, header: u64, body: &[u8], shard_len: usize) -> Vec<u8> {
    let mut framed = header.to_le_bytes().to_vec();
    framed.extend_from_slice(body);
    framed.resize(coder.k() * shard_len, 0);
    framed
}

fn committee_coder(n: usize) -> ErasureCoder {
    ErasureCoder::new(Committee::new(n).unwrap())
}

/// Payload lengths that exercise the framing boundaries of a `k`-shard code.
fn interesting_len(k: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1usize),
        0usize..3000,
        // Exactly filling 1..6 blocks per shard, and one byte more.
        (1usize..6).prop_map(move |m| m * 64 * k - HEADER_LEN),
        (1usize..6).prop_map(move |m| m * 64 * k - HEADER_LEN + 1),
        (1usize..40).prop_map(|m| m * 64),
        (0usize..400).prop_map(|m| 2 * m + 1),
    ]
}

fn n_and_len() -> impl Strategy<Value = (usize, usize)> {
    prop::sample::select(vec![4usize, 5, 7, 10]).prop_flat_map(|n| {
        let k = Committee::new(n).unwrap().data_shards();
        (Just(n), interesting_len(k))
    })
}

#[test]
fn shard_len_table() {
    let c = ErasureCoder::with_params(4, 2).unwrap();
    for (len, expected) in [
        (0, 64),
        (1, 64),
        (120, 64),
        (121, 128),
        (248, 128),
        (249, 192),
    ] {
        assert_eq!(c.shard_len(len), expected, "len {len}");
    }
    let one = ErasureCoder::with_params(3, 1).unwrap();
    assert_eq!(one.shard_len(56), 64);
    assert_eq!(one.shard_len(57), 128);
    assert_eq!(one.shard_len(usize::MAX) % SHARD_ALIGN, 0);
}

#[test]
fn params_validation() {
    assert!(ErasureCoder::with_params(4, 0).is_err());
    assert!(ErasureCoder::with_params(4, 5).is_err());
    assert!(ErasureCoder::with_params(0, 0).is_err());
    assert!(ErasureCoder::with_params(3, 3).is_ok());
    assert!(ErasureCoder::with_params(1, 1).is_ok());
    assert!(ErasureCoder::with_params(70_000, 10).is_err());
    let c = committee_coder(7);
    assert_eq!((c.n(), c.k()), (7, 3));
}

#[test]
fn no_parity_and_single_data_shard_round_trip() {
    for (n, k) in [(1, 1), (2, 2), (3, 3), (4, 1), (10, 1)] {
        let coder = ErasureCoder::with_params(n, k).unwrap();
        for len in [0, 1, 55, 56, 57, 1000] {
            let p = payload(len, 7);
            let enc = coder.encode(&p).unwrap();
            assert_eq!(enc.shards.len(), n);
            for subset in k_subsets(n, k) {
                let got = coder
                    .decode_verified(&pick(&enc.shards, &subset), &enc.root())
                    .unwrap();
                assert_eq!(got, p, "n {n} k {k} len {len} subset {subset:?}");
            }
        }
    }
}

#[test]
fn committee_coders_from_1_to_4_replicas() {
    for n in 1..=4 {
        let coder = committee_coder(n);
        let p = payload(300, n as u64);
        let enc = coder.encode(&p).unwrap();
        let all: Vec<usize> = (0..n).collect();
        assert_eq!(coder.decode(&pick(&enc.shards, &all)).unwrap(), p);
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let p = payload(700_000, 3);
    let coder = committee_coder(16);
    let one = coder.clone().with_threads(1).encode(&p).unwrap();
    for threads in [2, 3, 8] {
        let many = coder.clone().with_threads(threads);
        assert_eq!(many.encode(&p).unwrap(), one);
        let shards = pick(&one.shards, &(10..16).collect::<Vec<_>>());
        assert_eq!(many.decode_verified(&shards, &one.root()).unwrap(), p);
    }
}

#[test]
fn caller_misuse_is_reported() {
    let coder = committee_coder(4);
    let enc = coder.encode(b"hello").unwrap();
    let s = &enc.shards;
    assert_eq!(
        coder.decode(&[(0, &s[0]), (0, &s[0])]),
        Err(ErasureError::DuplicateShard { index: 0 })
    );
    assert_eq!(
        coder.decode(&[(4, &s[0]), (0, &s[0])]),
        Err(ErasureError::ShardIndexOutOfRange { index: 4, n: 4 })
    );
    assert_eq!(
        coder.decode(&[(1, &s[1])]),
        Err(ErasureError::NotEnoughShards { have: 1, need: 2 })
    );
    assert!(!ErasureError::NotEnoughShards { have: 1, need: 2 }.is_proposer_fault());
}

#[test]
fn max_payload_len_guards_encode_and_decode() {
    let coder = committee_coder(4).with_max_payload_len(1000);
    assert_eq!(coder.max_payload_len(), 1000);
    assert!(coder.encode(&[0u8; 1000]).is_ok());
    assert_eq!(
        coder.encode(&[0u8; 1001]).unwrap_err(),
        ErasureError::PayloadTooLarge {
            len: 1001,
            max: 1000
        }
    );
    // Shards longer than a 1000-byte payload needs are refused before decoding.
    let big = committee_coder(4).encode(&[1u8; 5000]).unwrap();
    let err = coder
        .decode(&[(0, &big.shards[0]), (1, &big.shards[1])])
        .unwrap_err();
    assert_eq!(
        err,
        ErasureError::ShardTooLong {
            shard_len: big.shards[0].len(),
            max: coder.shard_len(1000)
        }
    );
}

/// Framed bytes, shard length, and the expected error.
type FramingCase = (Vec<u8>, usize, fn(&ErasureError) -> bool);

#[test]
fn non_canonical_framing_is_rejected_by_every_subset() {
    let coder = committee_coder(7); // k = 3
    let s = 64;
    let cases: Vec<FramingCase> = vec![
        // Header larger than the capacity 3·64 − 8.
        (framed_bytes(&coder, 185, &[], s), s, |e| {
            matches!(
                e,
                ErasureError::LengthExceedsCapacity {
                    len: 185,
                    capacity: 184
                }
            )
        }),
        // Nonzero byte right after the payload.
        (framed_bytes(&coder, 3, &[1, 2, 3, 9], s), s, |e| {
            matches!(e, ErasureError::NonZeroPadding { offset: 11 })
        }),
        // Nonzero byte in the last byte of the last shard.
        (
            {
                let mut f = framed_bytes(&coder, 3, &[1, 2, 3], s);
                *f.last_mut().unwrap() = 1;
                f
            },
            s,
            |e| matches!(e, ErasureError::NonZeroPadding { offset: 191 }),
        ),
        // A 10-byte payload spread over 128-byte shards (canonical is 64).
        (framed_bytes(&coder, 10, &[5; 10], 128), 128, |e| {
            matches!(
                e,
                ErasureError::NonCanonicalShardLength {
                    shard_len: 128,
                    len: 10,
                    expected: 64
                }
            )
        }),
        // Shards of 66 bytes: even (so the codec accepts them) but not aligned.
        (framed_bytes(&coder, 10, &[5; 10], 66), 66, |e| {
            matches!(e, ErasureError::UnalignedShardLength { shard_len: 66 })
        }),
    ];
    for (framed, shard_len, expected) in cases {
        let enc = encode_raw(&coder, &framed, shard_len);
        for subset in k_subsets(7, 3) {
            let shards = pick(&enc.shards, &subset);
            let err = coder.decode(&shards).unwrap_err();
            assert!(expected(&err), "decode {subset:?}: {err:?}");
            let err = coder.decode_verified(&shards, &enc.root()).unwrap_err();
            assert!(expected(&err), "decode_verified {subset:?}: {err:?}");
            assert!(err.is_proposer_fault());
        }
    }
}

#[test]
fn mixed_shard_lengths_are_a_proposer_fault() {
    let coder = committee_coder(4);
    let a = coder.encode(&[1u8; 10]).unwrap();
    let b = coder.encode(&[1u8; 500]).unwrap();
    let err = coder
        .decode_verified(&[(0, &a.shards[0]), (1, &b.shards[1])], &a.root())
        .unwrap_err();
    assert!(matches!(
        err,
        ErasureError::ShardLengthMismatch { index: 1, .. }
    ));
    assert!(err.is_proposer_fault());
}

#[test]
fn wrong_root_is_a_root_mismatch() {
    let coder = committee_coder(4);
    let a = coder.encode(b"a").unwrap();
    let b = coder.encode(b"b").unwrap();
    let err = coder
        .decode_verified(&pick(&a.shards, &[0, 1]), &b.root())
        .unwrap_err();
    assert_eq!(
        err,
        ErasureError::RootMismatch {
            expected: b.root(),
            computed: a.root()
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decodes_from_every_k_subset((n, len) in n_and_len(), seed in any::<u64>()) {
        let coder = committee_coder(n);
        let p = payload(len, seed);
        let enc = coder.encode(&p).unwrap();
        prop_assert_eq!(enc.shards.len(), n);
        let shard_len = coder.shard_len(len);
        prop_assert!(enc.shards.iter().all(|s| s.len() == shard_len));
        // Systematic: the data shards are the framed payload.
        let mut framed: Vec<u8> = enc.shards[..coder.k()].concat();
        prop_assert_eq!(&framed[..HEADER_LEN], &(len as u64).to_le_bytes());
        framed.truncate(HEADER_LEN + len);
        prop_assert_eq!(&framed[HEADER_LEN..], p.as_slice());
        for subset in k_subsets(n, coder.k()) {
            let shards = pick(&enc.shards, &subset);
            prop_assert_eq!(&coder.decode(&shards).unwrap(), &p);
            prop_assert_eq!(&coder.decode_verified(&shards, &enc.root()).unwrap(), &p);
            let leaves = verified_leaves(&enc.tree, &enc.root(), &enc.shards, &subset);
            let leaves: Vec<&VerifiedLeaf> = leaves.iter().collect();
            prop_assert_eq!(&coder.decode_verified_leaves(&leaves, &enc.root()).unwrap(), &p);
        }
        // More than k shards are fine too.
        let all: Vec<usize> = (0..n).collect();
        prop_assert_eq!(&coder.decode(&pick(&enc.shards, &all)).unwrap(), &p);
    }

    #[test]
    fn flipped_bit_fails_merkle_proof(
        (n, len) in n_and_len(),
        seed in any::<u64>(),
        which in any::<prop::sample::Index>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let coder = committee_coder(n);
        let enc = coder.encode(&payload(len, seed)).unwrap();
        let i = which.index(n);
        let proof = enc.proof(i).unwrap();
        prop_assert!(proof.verify(&enc.root(), &enc.shards[i], n));
        let mut shard = enc.shards[i].clone();
        let b = bit.index(shard.len() * 8);
        shard[b / 8] ^= 1 << (b % 8);
        prop_assert!(!proof.verify(&enc.root(), &shard, n));
        // Nor does it verify at another index (unless that shard has the same bytes).
        for j in (0..n).filter(|&j| enc.shards[j] != enc.shards[i]) {
            prop_assert!(!enc.proof(j).unwrap().verify(&enc.root(), &enc.shards[i], n));
        }
    }

    #[test]
    fn inconsistent_proposer_is_caught_by_every_subset(
        (n, len) in n_and_len(),
        seed in any::<u64>(),
        which in any::<prop::sample::Index>(),
        noise in prop::collection::vec(any::<u8>(), 64..=64),
    ) {
        let coder = committee_coder(n);
        let p = payload(len, seed);
        let honest = coder.encode(&p).unwrap();
        // Replace one shard (parity or data) with random bytes and commit to the result.
        let bad = which.index(n);
        let mut shards = honest.shards.clone();
        for (i, b) in shards[bad].iter_mut().enumerate() {
            *b = noise[i % 64] ^ (i / 64) as u8;
        }
        prop_assume!(shards[bad] != honest.shards[bad]);
        let tree = MerkleTree::new(&shards);
        let root = tree.root();
        for subset in k_subsets(n, coder.k()) {
            // Every shard the replicas hold verifies against the committed root...
            for &i in &subset {
                prop_assert!(tree.proof(i).unwrap().verify(&root, &shards[i], n));
            }
            // ...yet every subset reaches the same verdict: the proposer is faulty.
            let err = coder.decode_verified(&pick(&shards, &subset), &root).unwrap_err();
            prop_assert!(
                matches!(err, ErasureError::RootMismatch { .. }),
                "subset {:?}: {:?}", subset, err
            );
            // Reusing the verified leaves' hashes reaches the same verdict, with the same
            // computed root.
            let leaves = verified_leaves(&tree, &root, &shards, &subset);
            let leaves: Vec<&VerifiedLeaf> = leaves.iter().collect();
            let reused = coder.decode_verified_leaves(&leaves, &root).unwrap_err();
            prop_assert_eq!(&reused, &err);
            prop_assert!(err.is_proposer_fault());
        }
    }
}
