//! Throughput of the coding primitives: erasure coding with Merkle commitments (BEAT0) and
//! AVID-FP dispersal, verification and retrieval (BEAT3/BEAT4).
//!
//! Run with `cargo bench -p beat-crypto --bench coding`. Throughput is reported in payload
//! bytes (fragment bytes for `verify_fragment`).
// Benchmark code: an unwrap failure is a benchmark bug.
#![allow(clippy::unwrap_used, missing_docs)]

use std::{hint::black_box, time::Duration};

use beat_crypto::{
    avid_fp::{AvidFpCode, Layout},
    erasure::ErasureCoder,
};
use beat_types::Committee;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const SIZE: usize = 1 << 20;
const COMMITTEES: [usize; 3] = [4, 16, 64];

fn payload() -> Vec<u8> {
    (0..SIZE).map(|i| (i * 131 % 251) as u8).collect()
}

fn id(n: usize) -> BenchmarkId {
    BenchmarkId::from_parameter(format!("n={n} size=1MiB"))
}

fn erasure(c: &mut Criterion) {
    let payload = payload();
    let mut group = c.benchmark_group("erasure::encode");
    group.throughput(Throughput::Bytes(SIZE as u64));
    for n in COMMITTEES {
        let coder = ErasureCoder::new(Committee::new(n).unwrap());
        group.bench_function(id(n), |b| {
            b.iter(|| coder.encode(black_box(&payload)).unwrap())
        });
    }
    // The same on the calling thread only (the default hashes on up to 4 threads).
    for n in COMMITTEES {
        let coder = ErasureCoder::new(Committee::new(n).unwrap()).with_threads(1);
        let id = BenchmarkId::from_parameter(format!("n={n} size=1MiB threads=1"));
        group.bench_function(id, |b| {
            b.iter(|| coder.encode(black_box(&payload)).unwrap())
        });
    }
    group.finish();

    // Worst case for decoding: the last k shards, i.e. as many parity shards as possible.
    let mut group = c.benchmark_group("erasure::decode_verified");
    group.throughput(Throughput::Bytes(SIZE as u64));
    for n in COMMITTEES {
        let coder = ErasureCoder::new(Committee::new(n).unwrap());
        let encoded = coder.encode(&payload).unwrap();
        let root = encoded.root();
        let shards: Vec<(usize, &[u8])> = (n - coder.k()..n)
            .map(|i| (i, encoded.shards[i].as_slice()))
            .collect();
        group.bench_function(BenchmarkId::from_parameter(format!("n={n}")), |b| {
            b.iter(|| coder.decode_verified(black_box(&shards), &root).unwrap())
        });
    }
    group.finish();
}

fn avid_fp(c: &mut Criterion) {
    let payload = payload();
    let codes: Vec<(usize, AvidFpCode)> = COMMITTEES
        .iter()
        .map(|&n| {
            let committee = Committee::new(n).unwrap();
            (
                n,
                AvidFpCode::new(committee, Layout::pyramid(committee)).unwrap(),
            )
        })
        .collect();

    let mut group = c.benchmark_group("avidfp::disperse");
    group.throughput(Throughput::Bytes(SIZE as u64));
    for (n, code) in &codes {
        group.bench_function(id(*n), |b| {
            b.iter(|| code.disperse(black_box(&payload)).unwrap())
        });
    }
    group.finish();

    // A server verifying its (global parity) fragment of a 1 MiB dispersal.
    let mut group = c.benchmark_group("avidfp::verify_fragment");
    for (n, code) in &codes {
        let (fpcc, fragments) = code.disperse(&payload).unwrap();
        let fragment = &fragments[n - 1];
        group.throughput(Throughput::Bytes(fragment.bytes.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("n={n}")), |b| {
            b.iter(|| code.verify_fragment(&fpcc, black_box(fragment)).unwrap())
        });
    }
    group.finish();

    // A reader decoding from the last k MDS fragments (verification included).
    let mut group = c.benchmark_group("avidfp::decode");
    group.throughput(Throughput::Bytes(SIZE as u64));
    for (n, code) in &codes {
        let (fpcc, fragments) = code.disperse(&payload).unwrap();
        let chosen = fragments[n - code.k()..*n].to_vec();
        group.bench_function(id(*n), |b| {
            b.iter(|| code.decode(&fpcc, black_box(&chosen)).unwrap())
        });
    }
    group.finish();

    // A reader reading group 0, repairing its first data fragment from the local parity.
    let mut group = c.benchmark_group("avidfp::read_group");
    for (n, code) in &codes {
        let (fpcc, fragments) = code.disperse(&payload).unwrap();
        let needed = code.group_fragments(0);
        let mut chosen: Vec<_> = needed[1..]
            .iter()
            .map(|&i| fragments[i as usize].clone())
            .collect();
        chosen.push(fragments[code.local_parity_index(0).unwrap() as usize].clone());
        group.throughput(Throughput::Bytes(
            (needed.len() * fragments[0].bytes.len()) as u64,
        ));
        group.bench_function(
            BenchmarkId::from_parameter(format!("n={n} repair=1")),
            |b| b.iter(|| code.read_group(&fpcc, 0, black_box(&chosen)).unwrap()),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = erasure, avid_fp
}
criterion_main!(benches);
