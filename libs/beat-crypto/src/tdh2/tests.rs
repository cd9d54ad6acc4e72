use std::collections::BTreeMap;

use beat_types::NodeId;
use curve25519_dalek::{RistrettoPoint, Scalar};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::{ciphertext::challenge, hashing::g_bar, keys::Point, *};

fn keys(n: usize, seed: u64) -> (PublicKey, Vec<SecretKeyShare>) {
    deal(n, (n - 1) / 3, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap()
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn shares_for(
    pk: &PublicKey,
    sks: &[SecretKeyShare],
    ct: &Ciphertext,
    holders: impl IntoIterator<Item = usize>,
) -> BTreeMap<NodeId, DecryptionShare> {
    holders
        .into_iter()
        .map(|i| {
            (
                NodeId::from_index(i),
                sks[i].decryption_share(pk, ct, ct.label()).unwrap(),
            )
        })
        .collect()
}

fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut r = rng(seed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, (r.next_u64() % (i as u64 + 1)) as usize);
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any t+1 valid shares decrypt to the plaintext; t shares do not suffice.
    #[test]
    fn any_t_plus_1_shares_decrypt(n in 1usize..11, len in 0usize..2000, seed: u64) {
        let (pk, sks) = keys(n, 1);
        let t = pk.threshold();
        let mut payload = vec![0u8; len];
        rng(seed).fill_bytes(&mut payload);
        let ct = pk.encrypt(b"epoch 3/proposer 1", &payload, &mut rng(seed ^ 1)).unwrap();
        pk.verify_ciphertext(&ct).unwrap();
        let order = shuffled(n, seed);
        let shares = shares_for(&pk, &sks, &ct, order[..t + 1].iter().copied());
        let out = pk.decrypt_optimistic(&ct, &shares);
        prop_assert_eq!(out.value, Some(Ok(payload)));
        prop_assert!(out.invalid_shares.is_empty());
        if t > 0 {
            let fewer = shares_for(&pk, &sks, &ct, order[..t].iter().copied());
            prop_assert_eq!(pk.decrypt_optimistic(&ct, &fewer).value, None);
            prop_assert!(pk.combine_verified(&ct, &fewer).is_err());
        }
    }

    /// A header checks exactly as its ciphertext does and gets the identical share, and its
    /// encoding round-trips; flipping any bit of the header's encoding makes it unparseable or
    /// invalid, and no share is released for it.
    #[test]
    fn headers_verify_and_share_like_their_ciphertexts(
        len in 0usize..600,
        pos in 0usize..1000,
        bit in 0u8..8,
        seed in any::<u64>(),
    ) {
        let (pk, sks) = keys(4, 21);
        let ct = pk.encrypt(b"epoch 9/proposer 1", &vec![5u8; len], &mut rng(seed)).unwrap();
        let header = pk.verified_header(&ct, ct.label()).unwrap();
        prop_assert_eq!(&header, &ct.header());
        let bytes = header.to_bytes();
        prop_assert_eq!(bytes.len(), HEADER_OVERHEAD + ct.label().len());
        prop_assert_eq!(CiphertextHeader::from_bytes(&bytes), Ok(header.clone()));
        prop_assert_eq!(CiphertextHeader::from_header_or_ciphertext(&bytes), Ok(header.clone()));
        prop_assert_eq!(
            CiphertextHeader::from_header_or_ciphertext(&ct.to_bytes()),
            Ok(header.clone())
        );
        for sk in &sks {
            prop_assert_eq!(
                sk.header_decryption_share(&pk, &header, ct.label()),
                sk.decryption_share(&pk, &ct, ct.label())
            );
        }
        prop_assert_eq!(
            sks[0].header_decryption_share(&pk, &header, b"epoch 9/proposer 2"),
            Err(Tdh2Error::LabelMismatch)
        );
        let mut tampered = bytes;
        let pos = pos % tampered.len();
        tampered[pos] ^= 1 << bit;
        if let Ok(bad) = CiphertextHeader::from_bytes(&tampered) {
            prop_assert!(pk.verify_header(&bad).is_err());
            prop_assert!(sks[1].header_decryption_share(&pk, &bad, bad.label()).is_err());
        }
    }

    /// Flipping any byte of a ciphertext's encoding makes it unparseable or invalid, and no
    /// replica releases a share for it.
    #[test]
    fn tampered_ciphertexts_are_rejected_before_any_share(pos in 0usize..400, bit in 0u8..8) {
        let (pk, sks) = keys(4, 2);
        let ct = pk.encrypt(b"label", &[7u8; 150], &mut rng(3)).unwrap();
        let mut bytes = ct.to_bytes();
        let pos = pos % bytes.len();
        bytes[pos] ^= 1 << bit;
        if let Ok(bad) = Ciphertext::from_bytes(&bytes) {
            prop_assert!(pk.verify_ciphertext(&bad).is_err());
            for sk in &sks {
                prop_assert!(sk.decryption_share(&pk, &bad, bad.label()).is_err());
            }
        }
    }
}

/// A header whose digest names a different body is invalid: the proof binds the digest.
#[test]
fn a_header_with_another_bodys_digest_is_invalid() {
    let (pk, sks) = keys(4, 22);
    let ct = pk.encrypt(b"L", b"the real body", &mut rng(23)).unwrap();
    let mut header = ct.header();
    let mut bytes = header.to_bytes();
    let n = bytes.len();
    bytes[n - 32..].copy_from_slice(&super::hashing::body_digest(b"another body"));
    header = CiphertextHeader::from_bytes(&bytes).unwrap();
    assert_eq!(pk.verify_header(&header), Err(Tdh2Error::InvalidCiphertext));
    assert!(sks[0].header_decryption_share(&pk, &header, b"L").is_err());
    // And the two encodings are not confused.
    assert!(Ciphertext::from_bytes(&ct.header().to_bytes()).is_err());
    assert!(CiphertextHeader::from_bytes(&ct.to_bytes()).is_err());
}

#[test]
fn relabelled_ciphertext_gets_no_share() {
    let (pk, sks) = keys(4, 4);
    let ct = pk
        .encrypt(b"epoch 1/proposer 2", b"secret batch", &mut rng(5))
        .unwrap();
    assert_eq!(
        sks[0].decryption_share(&pk, &ct, b"epoch 1/proposer 3"),
        Err(Tdh2Error::LabelMismatch)
    );
    // Re-labelling in place (a Byzantine proposer re-proposing an honest ciphertext as its own)
    // breaks the validity proof.
    let mut stolen = ct;
    stolen.label = b"epoch 1/proposer 3".to_vec();
    assert_eq!(
        pk.verify_ciphertext(&stolen),
        Err(Tdh2Error::InvalidCiphertext)
    );
    assert!(
        sks[0]
            .decryption_share(&pk, &stolen, b"epoch 1/proposer 3")
            .is_err()
    );
}

#[test]
fn wrong_duplicated_and_foreign_shares_are_named() {
    let (pk, sks) = keys(7, 6);
    let (_, foreign) = keys(7, 7);
    let ct = pk.encrypt(b"L", b"payload", &mut rng(8)).unwrap();
    let other = pk.encrypt(b"L", b"other", &mut rng(9)).unwrap();
    let mut shares = shares_for(&pk, &sks, &ct, 3..7);
    // Wrong: share for a different ciphertext.
    shares.insert(
        NodeId(0),
        sks[0].decryption_share(&pk, &other, b"L").unwrap(),
    );
    // Duplicated: node 1 replays node 3's share.
    let dup = shares[&NodeId(3)];
    shares.insert(NodeId(1), dup);
    // Foreign: computed with a key share from another deal. The foreign public key is needed to
    // produce it because the ciphertext is not valid under it; fabricate it directly instead.
    let forged = DecryptionShare::from_bytes(&{
        let mut b = shares[&NodeId(4)].to_bytes();
        b[..32].copy_from_slice((foreign[2].x * ct.u.point).compress().as_bytes());
        b
    })
    .unwrap();
    shares.insert(NodeId(2), forged);
    let out = pk.decrypt_optimistic(&ct, &shares);
    assert_eq!(out.value, Some(Ok(b"payload".to_vec())));
    assert_eq!(out.invalid_shares, vec![NodeId(0), NodeId(1), NodeId(2)]);
    for (h, s) in &shares {
        assert_eq!(pk.verify_share(&ct, *h, s), h.0 >= 3, "holder {h}");
    }
}

#[test]
fn too_few_valid_shares_waits_and_reports() {
    let (pk, sks) = keys(4, 10);
    let ct = pk.encrypt(b"L", b"x", &mut rng(11)).unwrap();
    let other = pk.encrypt(b"L", b"y", &mut rng(12)).unwrap();
    let mut shares = shares_for(&pk, &sks, &ct, [0]);
    shares.insert(
        NodeId(1),
        sks[1].decryption_share(&pk, &other, b"L").unwrap(),
    );
    let out = pk.decrypt_optimistic(&ct, &shares);
    assert_eq!(out.value, None);
    assert_eq!(out.invalid_shares, vec![NodeId(1)]);
}

/// Builds a ciphertext with a valid proof whose key commitment does not match the encapsulated
/// key, as a Byzantine proposer could.
fn inconsistent_commitment(pk: &PublicKey, seed: u64) -> Ciphertext {
    let mut good = pk.encrypt(b"L", b"payload", &mut rng(seed)).unwrap();
    good.key_commitment = [0x42; 32];
    let s = Scalar::from(99u64);
    let r = Scalar::from(1234u64);
    let u = Point::new(RistrettoPoint::mul_base(&r));
    let u_bar = Point::new(r * g_bar());
    let w = RistrettoPoint::mul_base(&s);
    let w_bar = s * g_bar();
    good.u = u;
    good.u_bar = u_bar;
    good.e = challenge(
        &good.label,
        &good.masked_key,
        &good.key_commitment,
        &super::hashing::body_digest(&good.body),
        [&u.bytes, &u_bar.bytes],
        [&w, &w_bar],
    );
    good.f = s + r * good.e;
    good
}

#[test]
fn inconsistent_key_commitment_is_undecryptable_for_every_share_subset() {
    let (pk, sks) = keys(7, 13);
    let ct = inconsistent_commitment(&pk, 14);
    pk.verify_ciphertext(&ct).unwrap();
    for seed in 0..10 {
        let order = shuffled(7, seed);
        let shares = shares_for(&pk, &sks, &ct, order[..3].iter().copied());
        let out = pk.decrypt_optimistic(&ct, &shares);
        assert_eq!(out.value, Some(Err(Undecryptable)));
        assert!(out.invalid_shares.is_empty());
    }
}

#[test]
fn encoding_round_trips_and_rejects_malformed_input() {
    let (pk, _) = keys(4, 15);
    let ct = pk.encrypt(b"label", b"hello", &mut rng(16)).unwrap();
    let bytes = ct.to_bytes();
    assert_eq!(bytes.len(), CIPHERTEXT_OVERHEAD + 5 + 5);
    assert_eq!(bytes.len(), ct.encoded_len());
    assert_eq!(Ciphertext::from_bytes(&bytes).unwrap(), ct);
    for cut in 0..bytes.len() {
        assert!(Ciphertext::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(Ciphertext::from_bytes(&trailing).is_err());
    let mut version = bytes;
    version[0] = 2;
    assert_eq!(
        Ciphertext::from_bytes(&version),
        Err(Tdh2Error::UnsupportedVersion(2))
    );
    assert!(matches!(
        pk.encrypt(&[0u8; MAX_LABEL_LEN + 1], b"", &mut rng(1)),
        Err(Tdh2Error::LabelTooLong { .. })
    ));
}

#[test]
fn shares_are_deterministic_and_serialize_canonically() {
    let (pk, sks) = keys(4, 17);
    let ct = pk.encrypt(b"L", b"m", &mut rng(18)).unwrap();
    let a = sks[2].decryption_share(&pk, &ct, b"L").unwrap();
    let b = sks[2].decryption_share(&pk, &ct, b"L").unwrap();
    assert_eq!(a, b);
    assert_eq!(DecryptionShare::from_bytes(&a.to_bytes()).unwrap(), a);
    let bin = postcard::to_allocvec(&a).unwrap();
    assert_eq!(postcard::from_bytes::<DecryptionShare>(&bin).unwrap(), a);
    let mut bad = a.to_bytes();
    bad[63] = 0xff; // e_i no longer canonical
    assert!(DecryptionShare::from_bytes(&bad).is_err());

    let json = serde_json::to_string(&pk).unwrap();
    assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), pk);
    let sk_json = serde_json::to_string(&sks[0]).unwrap();
    assert_eq!(
        serde_json::from_str::<SecretKeyShare>(&sk_json).unwrap(),
        sks[0]
    );
    assert!(!format!("{:?}", sks[0]).contains(&sk_json[20..40]));
}

#[test]
fn single_replica_committee_decrypts_alone() {
    let (pk, sks) = keys(1, 19);
    let ct = pk.encrypt(b"L", b"solo", &mut rng(20)).unwrap();
    let shares = shares_for(&pk, &sks, &ct, [0]);
    assert_eq!(
        pk.decrypt_optimistic(&ct, &shares).value,
        Some(Ok(b"solo".to_vec()))
    );
}
