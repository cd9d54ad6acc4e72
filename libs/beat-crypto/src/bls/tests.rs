use std::collections::BTreeMap;

use beat_types::NodeId;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::dst;

fn keys(n: usize, t: usize, seed: u64) -> (PublicKeySet, Vec<SecretKeyShare>) {
    deal(n, t, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap()
}

fn msg(m: &[u8]) -> HashedMessage {
    HashedMessage::new(dst::COIN_HASH_TO_G1, m)
}

fn shares_of(
    secrets: &[SecretKeyShare],
    holders: &[usize],
    m: &HashedMessage,
) -> BTreeMap<NodeId, SignatureShare> {
    holders
        .iter()
        .map(|&i| (NodeId::from_index(i), secrets[i].sign(m)))
        .collect()
}

/// Picks a subset of `0..n` of size `k` from a bitmask-like seed.
fn subset(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut all: Vec<usize> = (0..n).collect();
    for i in (1..all.len()).rev() {
        let j = (rand_core::Rng::next_u64(&mut rng) % (i as u64 + 1)) as usize;
        all.swap(i, j);
    }
    all.truncate(k);
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any t+1 shares combine to the same signature, which verifies under the group key.
    #[test]
    fn any_t_plus_1_shares_give_the_same_signature(n in 1usize..12, s1: u64, s2: u64) {
        let t = (n - 1) / 3;
        let (pks, sks) = keys(n, t, 7);
        let m = msg(b"coin 1/2/3");
        let a = pks.combine_unchecked(&shares_of(&sks, &subset(n, t + 1, s1), &m)).unwrap();
        let b = pks.combine_unchecked(&shares_of(&sks, &subset(n, t + 1, s2), &m)).unwrap();
        prop_assert_eq!(a, b);
        prop_assert!(pks.verify(&m, &a));
    }

    /// t shares interpolated as if they were enough give a signature that does not verify.
    #[test]
    fn t_shares_do_not_give_the_signature(n in 4usize..12, s: u64) {
        let t = (n - 1) / 3;
        let (pks, sks) = keys(n, t, 8);
        let m = msg(b"coin");
        let holders = subset(n, t, s);
        let shares = shares_of(&sks, &holders, &m);
        let weaker = PublicKeySet::new(t - 1, *pks.public_key(), (0..n)
            .map(|i| *pks.share(NodeId::from_index(i)).unwrap()).collect()).unwrap();
        let sig = weaker.combine_unchecked(&shares).unwrap();
        prop_assert!(!pks.verify(&m, &sig));
        prop_assert!(pks.combine_unchecked(&shares).is_err());
    }
}

#[test]
fn every_share_verifies_against_its_own_key_only() {
    let (pks, sks) = keys(4, 1, 1);
    let m = msg(b"m");
    for (i, sk) in sks.iter().enumerate() {
        let share = sk.sign(&m);
        for j in 0..4 {
            assert_eq!(pks.verify_share(NodeId::from_index(j), &m, &share), i == j);
        }
        assert!(!pks.verify_share(NodeId::from_index(i), &msg(b"other"), &share));
        assert!(!pks.verify_share(NodeId(99), &m, &share));
    }
}

#[test]
fn optimistic_combine_names_wrong_duplicated_and_foreign_shares() {
    let n = 7;
    let (pks, sks) = keys(n, 2, 2);
    let (_, foreign) = keys(n, 2, 3);
    let m = msg(b"coin");
    let honest = pks
        .combine_unchecked(&shares_of(&sks, &[0, 1, 2], &m))
        .unwrap();

    let mut shares = shares_of(&sks, &[3, 4, 5, 6], &m);
    // Wrong: node 0 signs a different message.
    shares.insert(NodeId(0), sks[0].sign(&msg(b"other coin")));
    // Duplicated: node 1 replays node 3's valid share as its own.
    let dup = shares[&NodeId(3)];
    shares.insert(NodeId(1), dup);
    // Foreign: node 2 signs with a key from another key set.
    shares.insert(NodeId(2), foreign[2].sign(&m));

    let out = pks.combine_optimistic(&m, &shares);
    assert_eq!(out.value, Some(honest));
    assert_eq!(out.invalid_shares, vec![NodeId(0), NodeId(1), NodeId(2)]);
}

#[test]
fn optimistic_combine_waits_when_too_few_valid_shares() {
    let (pks, sks) = keys(4, 1, 4);
    let m = msg(b"coin");
    let mut shares = shares_of(&sks, &[0], &m);
    assert_eq!(pks.combine_optimistic(&m, &shares).value, None);
    shares.insert(NodeId(1), sks[1].sign(&msg(b"x")));
    let out = pks.combine_optimistic(&m, &shares);
    assert_eq!(out.value, None);
    assert_eq!(out.invalid_shares, vec![NodeId(1)]);
    shares.remove(&NodeId(1));
    shares.insert(NodeId(3), sks[3].sign(&m));
    let out = pks.combine_optimistic(&m, &shares);
    assert!(out.value.is_some());
    assert!(out.invalid_shares.is_empty());
}

#[test]
fn optimistic_combine_reports_shares_from_unknown_holders() {
    let (pks, sks) = keys(4, 1, 5);
    let m = msg(b"coin");
    let mut shares = shares_of(&sks, &[0, 1], &m);
    shares.insert(NodeId(9), sks[2].sign(&m));
    let out = pks.combine_optimistic(&m, &shares);
    assert!(out.value.is_some());
    assert_eq!(out.invalid_shares, vec![NodeId(9)]);
}

#[test]
fn single_replica_committee_signs_alone() {
    let (pks, sks) = keys(1, 0, 6);
    let m = msg(b"solo");
    let out = pks.combine_optimistic(&m, &shares_of(&sks, &[0], &m));
    assert!(pks.verify(&m, &out.value.unwrap()));
}

#[test]
fn deal_rejects_bad_thresholds() {
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    assert!(deal(0, 0, &mut rng).is_err());
    assert!(deal(4, 4, &mut rng).is_err());
}

#[test]
fn coin_is_deterministic_per_name_and_differs_across_names() {
    let (pks, sks) = keys(4, 1, 9);
    let coin = |name: &[u8], holders: &[usize]| {
        let m = coin_message(name);
        coin_bit(
            &pks.combine_optimistic(&m, &shares_of(&sks, holders, &m))
                .value
                .unwrap(),
        )
    };
    assert_eq!(coin(b"e1/i0/r2", &[0, 1]), coin(b"e1/i0/r2", &[2, 3]));
    let bits: Vec<bool> = (0..64)
        .map(|i| coin(format!("n{i}").as_bytes(), &[0, 3]))
        .collect();
    assert!(bits.iter().any(|b| *b) && bits.iter().any(|b| !*b));
}

/// Statistical fairness: 2000 coins; the number of ones is Binomial(2000, 1/2) with standard
/// deviation ≈ 22.4. Accepting 1000 ± 120 (≈ 5.4σ) fails a fair coin with probability < 1e-7
/// and a coin biased by 6% or more with overwhelming probability. The keys are fixed, so the
/// test is deterministic.
#[test]
fn coin_is_statistically_fair() {
    let (pks, sks) = keys(4, 1, 10);
    let ones = (0..2000u32)
        .filter(|i| {
            let m = coin_message(&i.to_le_bytes());
            let sig = pks
                .combine_unchecked(&shares_of(&sks, &[1, 2], &m))
                .unwrap();
            coin_bit(&sig)
        })
        .count();
    assert!((880..=1120).contains(&ones), "ones = {ones}");
}

#[test]
fn encodings_round_trip_and_reject_tampering() {
    let (pks, sks) = keys(4, 1, 11);
    let m = msg(b"m");
    let share = sks[0].sign(&m);
    assert_eq!(
        SignatureShare::from_bytes(&share.to_bytes()).unwrap(),
        share
    );
    let mut bad = share.to_bytes();
    bad[5] ^= 1;
    // Either not a point, or a different point that fails verification.
    if let Ok(s) = SignatureShare::from_bytes(&bad) {
        assert!(!pks.verify_share(NodeId(0), &m, &s));
    }

    let json = serde_json::to_string(&pks).unwrap();
    let back: PublicKeySet = serde_json::from_str(&json).unwrap();
    assert_eq!(back, pks);
    let bin = postcard::to_allocvec(&share).unwrap();
    assert_eq!(postcard::from_bytes::<SignatureShare>(&bin).unwrap(), share);
    assert!(postcard::from_bytes::<SignatureShare>(&[48, 0, 1]).is_err());

    let secret_json = serde_json::to_string(&sks[1]).unwrap();
    let secret_back: SecretKeyShare = serde_json::from_str(&secret_json).unwrap();
    assert_eq!(secret_back, sks[1]);
    assert!(!format!("{:?}", sks[1]).contains(&secret_json[20..40]));
}

/// `k` messages and their combined signatures under one key set.
fn signed_batch(
    pk: &PublicKeySet,
    secrets: &[SecretKeyShare],
    t: usize,
    k: usize,
    tag: u64,
) -> Vec<(HashedMessage, Signature)> {
    (0..k as u64)
        .map(|i| {
            let m = msg(&[tag.to_le_bytes(), i.to_le_bytes()].concat());
            let holders: Vec<usize> = (0..=t).collect();
            let sig = pk
                .combine_unchecked(&shares_of(secrets, &holders, &m))
                .unwrap();
            (m, sig)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A batch of valid signatures passes; replacing any one of them by a signature on another
    /// message, by a single share, or swapping two signatures fails it.
    #[test]
    fn batch_verification_accepts_valid_batches_only(
        k in 1usize..6,
        bad in 0usize..6,
        tag: u64,
        seed: u64,
    ) {
        let (pk, secrets) = keys(7, 2, seed);
        let batch = signed_batch(&pk, &secrets, 2, k, tag);
        prop_assert!(pk.verify_batch(&batch));
        prop_assert!(batch.iter().all(|(m, s)| pk.verify(m, s)));
        let bad = bad % k;

        let mut foreign = batch.clone();
        foreign[bad].1 = signed_batch(&pk, &secrets, 2, 1, tag.wrapping_add(1))[0].1;
        prop_assert!(!pk.verify_batch(&foreign));

        let mut share = batch.clone();
        share[bad].1 = Signature(secrets[0].sign(&share[bad].0).0);
        prop_assert!(!pk.verify_batch(&share));

        if k > 1 {
            let mut swapped = batch;
            let other = (bad + 1) % k;
            let (a, b) = (swapped[bad].1, swapped[other].1);
            swapped[bad].1 = b;
            swapped[other].1 = a;
            prop_assert!(!pk.verify_batch(&swapped));
        }
    }
}

#[test]
fn batch_verification_is_not_fooled_by_errors_that_cancel() {
    // σ₁ + Δ and σ₂ − Δ pass the naive check e(σ₁' + σ₂', g₂) = e(H₁ + H₂, pk); the random
    // coefficients make the errors count with different weights.
    let (pk, secrets) = keys(4, 1, 7);
    let batch = signed_batch(&pk, &secrets, 1, 2, 99);
    let delta = group::G1::hash_to(b"delta", b"DST");
    let one = field::Fr::from_u64(1);
    let minus_one = field::Fr::zero().sub(&one);
    let mut forged = batch.clone();
    forged[0].1 = Signature(group::G1::multi_mul(
        &[batch[0].1.0, delta],
        &[one.clone(), one.clone()],
    ));
    forged[1].1 = Signature(group::G1::multi_mul(
        &[batch[1].1.0, delta],
        &[one.clone(), minus_one],
    ));
    let naive_sig =
        group::G1::multi_mul(&[forged[0].1.0, forged[1].1.0], &[one.clone(), one.clone()]);
    let naive_msg = group::G1::multi_mul(&[batch[0].0.0, batch[1].0.0], &[one.clone(), one]);
    assert!(
        group::pairing_check(&naive_sig, &naive_msg, pk.group_lines()),
        "the forgery does fool an unweighted sum"
    );
    assert!(!pk.verify_batch(&forged));
    assert!(pk.verify_batch(&batch));
}

#[test]
fn batch_verification_of_nothing_and_of_the_identity() {
    let (pk, secrets) = keys(4, 1, 3);
    assert!(pk.verify_batch(&[]));
    let mut batch = signed_batch(&pk, &secrets, 1, 3, 5);
    batch[2].1 = Signature(group::G1::multi_mul(&[], &[]));
    assert!(!pk.verify_batch(&batch));
}

/// A compressed curve point outside G1: the first x with a point on the curve (the cofactor is
/// large, so such a point is in the prime-order subgroup with negligible probability).
fn point_outside_g1() -> [u8; 48] {
    for x in 1u8..=255 {
        let mut bytes = [0u8; 48];
        bytes[0] = 0x80; // compressed, not the identity, the smaller y
        bytes[47] = x;
        if SignatureShare::from_bytes(&bytes).is_err()
            && group::G1::interpolate_encoded(&[bytes], &[field::Fr::from_u64(1)]) != Err(Some(0))
        {
            return bytes;
        }
    }
    unreachable!("half of all x have a curve point");
}

#[test]
fn encoded_shares_combine_like_decoded_ones_and_refuse_bad_points() {
    let (pk, secrets) = keys(7, 2, 11);
    let m = msg(b"statement");
    let decoded = shares_of(&secrets, &[0, 2, 5], &m);
    let encoded: BTreeMap<NodeId, EncodedShare> = decoded
        .iter()
        .map(|(h, s)| (*h, EncodedShare::from(*s)))
        .collect();
    let signature = pk.combine_encoded(&encoded).unwrap();
    assert_eq!(signature, pk.combine_unchecked(&decoded).unwrap());
    assert!(pk.verify(&m, &signature));

    // Same wire encoding as a decoded share; decoding checks what combining skipped.
    let share = decoded[&NodeId(2)];
    assert_eq!(
        postcard::to_allocvec(&share).unwrap(),
        postcard::to_allocvec(&EncodedShare::from(share)).unwrap()
    );
    let back: EncodedShare = postcard::from_bytes(&postcard::to_allocvec(&share).unwrap()).unwrap();
    assert_eq!(back.decode().unwrap(), share);

    // A curve point outside G1 as a share: decoding refuses it; combining either refuses the
    // result (not in G1) or returns one that does not verify (the Lagrange coefficient can be
    // a multiple of the small-order part's order, which then vanishes) — never a signature.
    let outside = EncodedShare::from_bytes(&point_outside_g1());
    assert!(outside.decode().is_err());
    for holder in [0, 2, 5] {
        let mut bad = encoded.clone();
        bad.insert(NodeId(holder), outside);
        match pk.combine_encoded(&bad) {
            Err(e) => assert_eq!(e, BlsError::InvalidEncoding("combined signature")),
            Ok(s) => assert!(!pk.verify(&m, &s) && !pk.verify_batch(&[(m, s), (m, signature)])),
        }
    }
    // A small scalar keeps the small-order part: the sum is not in G1.
    assert_eq!(
        group::G1::interpolate_encoded(&[outside.to_bytes()], &[field::Fr::from_u64(5)]),
        Err(None)
    );
    // Not a point at all: the holder is named.
    let mut garbage = encoded.clone();
    garbage.insert(NodeId(5), EncodedShare::from_bytes(&[0xff; 48]));
    assert_eq!(
        pk.combine_encoded(&garbage),
        Err(BlsError::InvalidShareEncoding(NodeId(5)))
    );
    // A valid share from another holder's key: combines, but does not verify.
    let mut wrong = encoded;
    wrong.insert(NodeId(0), EncodedShare::from(secrets[1].sign(&m)));
    let combined = pk.combine_encoded(&wrong).unwrap();
    assert!(!pk.verify(&m, &combined));
}
