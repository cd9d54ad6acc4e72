//! Per-operation cost of the threshold schemes for n ∈ {4, 16, 64} (f = ⌊(n−1)/3⌋, t = f).
//!
//! Run: `cargo bench -p beat-crypto --bench threshold`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::{collections::BTreeMap, hint::black_box};

use beat_crypto::{bls, tdh2};
use beat_types::NodeId;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const SIZES: [usize; 3] = [4, 16, 64];

fn bls_benches(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut g = c.benchmark_group("bls");
    for n in SIZES {
        let t = (n - 1) / 3;
        let (pks, sks) = bls::deal(n, t, &mut rng).unwrap();
        let msg = bls::coin_message(b"epoch 7/instance 3/round 2");
        let shares: BTreeMap<NodeId, bls::SignatureShare> =
            sks.iter().map(|sk| (sk.holder(), sk.sign(&msg))).collect();
        let first: BTreeMap<_, _> = shares.iter().take(t + 1).map(|(k, v)| (*k, *v)).collect();
        let key = format!("n={n}");
        if n == SIZES[0] {
            g.bench_function("hash_to_g1", |b| {
                b.iter(|| bls::coin_message(black_box(b"epoch 7/instance 3/round 2")))
            });
            g.bench_function("sign_share", |b| b.iter(|| sks[0].sign(black_box(&msg))));
            // What every received share costs before anything else: decompression and the
            // subgroup check.
            let encoded = shares[&NodeId(0)].to_bytes();
            g.bench_function("share_from_bytes", |b| {
                b.iter(|| bls::SignatureShare::from_bytes(black_box(&encoded)).unwrap())
            });
            g.bench_function("verify_share", |b| {
                b.iter(|| pks.verify_share(NodeId(0), &msg, black_box(&shares[&NodeId(0)])))
            });
            // Commit certificates checked one by one against in one batch (per batch of k).
            for k in [1usize, 2, 4, 8] {
                let batch: Vec<(bls::HashedMessage, bls::Signature)> = (0..k as u64)
                    .map(|i| {
                        let m = bls::coin_message(&i.to_le_bytes());
                        let s: BTreeMap<NodeId, bls::SignatureShare> = sks
                            .iter()
                            .take(t + 1)
                            .map(|sk| (sk.holder(), sk.sign(&m)))
                            .collect();
                        (m, pks.combine_unchecked(&s).unwrap())
                    })
                    .collect();
                g.bench_function(BenchmarkId::new("verify_each", k), |b| {
                    b.iter(|| batch.iter().all(|(m, s)| pks.verify(m, black_box(s))))
                });
                g.bench_function(BenchmarkId::new("verify_batch", k), |b| {
                    b.iter(|| pks.verify_batch(black_box(&batch)))
                });
            }
        }
        // The coin as the protocol runs it: combine f+1 shares, verify once, take the bit.
        g.bench_function(BenchmarkId::new("coin", &key), |b| {
            b.iter(|| {
                let sig = pks
                    .combine_optimistic(&msg, black_box(&first))
                    .value
                    .unwrap();
                bls::coin_bit(&sig)
            })
        });
        // The interpolation alone (a commit certificate's candidate, checked in batches).
        g.bench_function(BenchmarkId::new("combine", &key), |b| {
            b.iter(|| pks.combine_unchecked(black_box(&first)).unwrap())
        });
        // The same from shares as received (decompressed here, one subgroup check).
        let encoded: BTreeMap<NodeId, bls::EncodedShare> =
            first.iter().map(|(h, s)| (*h, (*s).into())).collect();
        g.bench_function(BenchmarkId::new("combine_encoded", &key), |b| {
            b.iter(|| pks.combine_encoded(black_box(&encoded)).unwrap())
        });
        // Worst case: one bad share among the first f+1 forces per-share verification.
        let mut with_bad = first.clone();
        with_bad.insert(NodeId(0), sks[0].sign(&bls::coin_message(b"other")));
        for (h, s) in shares.iter().skip(t + 1).take(1) {
            with_bad.insert(*h, *s);
        }
        g.bench_function(BenchmarkId::new("coin_with_bad_share", &key), |b| {
            b.iter(|| pks.combine_optimistic(&msg, black_box(&with_bad)))
        });
    }
    g.finish();
}

fn tdh2_benches(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut g = c.benchmark_group("tdh2");
    // A BEAT0 proposal at B = 1000 transactions of 250 bytes and n = 16: B/n · 250 ≈ 16 KB.
    let payload = vec![0x5au8; 16 * 1024];
    for n in SIZES {
        let t = (n - 1) / 3;
        let (pk, sks) = tdh2::deal(n, t, &mut rng).unwrap();
        let ct = pk
            .encrypt(b"epoch 1/proposer 0", &payload, &mut rng)
            .unwrap();
        let shares: BTreeMap<NodeId, tdh2::DecryptionShare> = sks
            .iter()
            .map(|sk| {
                (
                    sk.holder(),
                    sk.decryption_share(&pk, &ct, ct.label()).unwrap(),
                )
            })
            .collect();
        let first: BTreeMap<_, _> = shares.iter().take(t + 1).map(|(k, v)| (*k, *v)).collect();
        let key = format!("n={n}");
        if n == SIZES[0] {
            g.throughput(Throughput::Bytes(payload.len() as u64));
            g.bench_function("encrypt/size=16KiB", |b| {
                b.iter(|| pk.encrypt(b"epoch 1/proposer 0", black_box(&payload), &mut rng))
            });
            g.bench_function("verify_ciphertext/size=16KiB", |b| {
                b.iter(|| pk.verify_ciphertext(black_box(&ct)))
            });
            g.throughput(Throughput::Elements(1));
            // The validity proof alone (the body's digest given): what a replica checks per
            // proposal once the digest is known.
            let header = ct.header();
            g.bench_function("verify_header", |b| {
                b.iter(|| pk.verify_header(black_box(&header)))
            });
            g.bench_function("decryption_share", |b| {
                b.iter(|| sks[0].decryption_share(&pk, black_box(&ct), ct.label()))
            });
            g.bench_function("verify_share", |b| {
                b.iter(|| pk.verify_share(&ct, NodeId(0), black_box(&shares[&NodeId(0)])))
            });
        }
        g.bench_function(BenchmarkId::new("decrypt_optimistic", &key), |b| {
            b.iter(|| pk.decrypt_optimistic(&ct, black_box(&first)))
        });
        let mut with_bad = first.clone();
        let other = pk.encrypt(b"epoch 1/proposer 0", b"x", &mut rng).unwrap();
        with_bad.insert(
            NodeId(0),
            sks[0].decryption_share(&pk, &other, other.label()).unwrap(),
        );
        for (h, s) in shares.iter().skip(t + 1).take(1) {
            with_bad.insert(*h, *s);
        }
        g.bench_function(BenchmarkId::new("decrypt_with_bad_share", &key), |b| {
            b.iter(|| pk.decrypt_optimistic(&ct, black_box(&with_bad)))
        });
    }
    g.finish();
}

criterion_group!(benches, bls_benches, tdh2_benches);
criterion_main!(benches);
