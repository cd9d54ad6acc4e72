//! Known-answer vectors for the threshold schemes: fixed seeds → exact encodings.
//!
//! Any change to key generation, hashing, domain-separation tags or encodings changes these
//! values and fails this test, making a format change visible in review. To accept an
//! intentional change, regenerate with `BEAT_REGENERATE_KAT=1 cargo test -p beat-crypto --test
//! kat_threshold` and explain the change (it breaks existing keys and ciphertexts: ADR).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use beat_crypto::{bls, tdh2};
use beat_types::NodeId;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/threshold_kat.json");

fn compute() -> Value {
    let mut cases = Vec::new();
    for (seed, n) in [(1u64, 4usize), (2, 7)] {
        let t = (n - 1) / 3;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (bls_pk, bls_sk) = bls::deal(n, t, &mut rng).unwrap();
        let msg = bls::coin_message(b"epoch 1/instance 0/round 2");
        let shares: BTreeMap<NodeId, bls::SignatureShare> = bls_sk
            .iter()
            .map(|sk| (sk.holder(), sk.sign(&msg)))
            .collect();
        let sig = bls_pk.combine_optimistic(&msg, &shares).value.unwrap();

        let (tdh_pk, tdh_sk) = tdh2::deal(n, t, &mut rng).unwrap();
        let ct = tdh_pk
            .encrypt(b"epoch 1/proposer 0", b"known answer", &mut rng)
            .unwrap();
        let share = tdh_sk[0]
            .decryption_share(&tdh_pk, &ct, ct.label())
            .unwrap();
        cases.push(json!({
            "seed": seed,
            "n": n,
            "bls_public_key_set": serde_json::to_value(&bls_pk).unwrap(),
            "bls_share_0": hex::encode(shares[&NodeId(0)].to_bytes()),
            "bls_signature": hex::encode(sig.to_bytes()),
            "coin_bit": bls::coin_bit(&sig),
            "tdh2_public_key": serde_json::to_value(&tdh_pk).unwrap(),
            "tdh2_ciphertext": hex::encode(ct.to_bytes()),
            "tdh2_share_0": hex::encode(share.to_bytes()),
        }));
    }
    json!({ "format": 1, "cases": cases })
}

#[test]
fn threshold_known_answers_match() {
    let computed = compute();
    if std::env::var_os("BEAT_REGENERATE_KAT").is_some() {
        std::fs::write(
            PATH,
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
        return;
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert_eq!(
        computed, committed,
        "known-answer vectors changed (see module docs)"
    );
}

/// The committed vectors also decode and verify through the public API.
#[test]
fn committed_vectors_verify() {
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    for case in committed["cases"].as_array().unwrap() {
        let pk: tdh2::PublicKey = serde_json::from_value(case["tdh2_public_key"].clone()).unwrap();
        let ct = tdh2::Ciphertext::from_bytes(
            &hex::decode(case["tdh2_ciphertext"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        pk.verify_ciphertext(&ct).unwrap();
        let share_bytes: [u8; 96] = hex::decode(case["tdh2_share_0"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let share = tdh2::DecryptionShare::from_bytes(&share_bytes).unwrap();
        assert!(pk.verify_share(&ct, NodeId(0), &share));

        let pks: bls::PublicKeySet =
            serde_json::from_value(case["bls_public_key_set"].clone()).unwrap();
        let sig_bytes: [u8; 48] = hex::decode(case["bls_signature"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let sig = bls::Signature::from_bytes(&sig_bytes).unwrap();
        assert!(pks.verify(&bls::coin_message(b"epoch 1/instance 0/round 2"), &sig));
        assert_eq!(bls::coin_bit(&sig), case["coin_bit"].as_bool().unwrap());
    }
}
