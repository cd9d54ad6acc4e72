//! Known-answer vectors for the erasure coder (Merkle roots) and AVID-FP (cross-checksum
//! digests).
//!
//! The vectors in `testdata/` pin the wire format: framing, shard and fragment layout,
//! generator coefficients, hashing and tags, evaluation points and fingerprints. Any change to
//! one of them changes a root or digest and fails this test. When a change is intended (and has
//! an ADR), regenerate with
//!
//! ```sh
//! BEAT_REGENERATE_KAT=1 cargo test -p beat-crypto --test kat
//! ```
//!
//! and commit the updated files.
// Test code: an unwrap failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use beat_crypto::{
    avid_fp::{AvidFpCode, Layout},
    erasure::ErasureCoder,
};
use beat_types::Committee;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const PAYLOAD_PATTERN: &str = "byte i of an L-byte payload is (i * 131 + L) mod 251";
const LENGTHS: [usize; 7] = [0, 1, 55, 56, 57, 1000, 65_536];

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 131 + len) % 251) as u8).collect()
}

#[derive(Serialize, Deserialize)]
struct KatFile<V> {
    description: String,
    payload: String,
    vectors: Vec<V>,
}

#[derive(Serialize, Deserialize)]
struct ErasureVector {
    n: usize,
    k: usize,
    payload_len: usize,
    shard_len: usize,
    root: String,
}

#[derive(Serialize, Deserialize)]
struct AvidFpVector {
    n: usize,
    k: usize,
    layout: Layout,
    payload_len: usize,
    fragment_len: usize,
    evaluation_points: [String; 2],
    fpcc_digest: String,
}

fn erasure_vectors() -> KatFile<ErasureVector> {
    let mut vectors = Vec::new();
    for n in [1, 3, 4, 7, 16] {
        let coder = ErasureCoder::new(Committee::new(n).unwrap());
        for len in LENGTHS {
            let encoded = coder.encode(&payload(len)).unwrap();
            vectors.push(ErasureVector {
                n,
                k: coder.k(),
                payload_len: len,
                shard_len: encoded.shards[0].len(),
                root: encoded.root().to_hex(),
            });
        }
    }
    KatFile {
        description: "erasure::ErasureCoder::new(Committee::new(n)).encode(payload).root()".into(),
        payload: PAYLOAD_PATTERN.into(),
        vectors,
    }
}

fn avidfp_vectors() -> KatFile<AvidFpVector> {
    let mut vectors = Vec::new();
    for n in [1, 4, 7, 16] {
        let committee = Committee::new(n).unwrap();
        for layout in [Layout::Mds, Layout::pyramid(committee)] {
            let code = AvidFpCode::new(committee, layout).unwrap();
            for len in LENGTHS {
                let (fpcc, fragments) = code.disperse(&payload(len)).unwrap();
                vectors.push(AvidFpVector {
                    n,
                    k: code.k(),
                    layout,
                    payload_len: len,
                    fragment_len: fragments[0].bytes.len(),
                    evaluation_points: fpcc.evaluation_points().map(|r| format!("{r:016x}")),
                    fpcc_digest: fpcc.digest().to_hex(),
                });
            }
        }
    }
    KatFile {
        description: "avid_fp::AvidFpCode::new(Committee::new(n), layout).disperse(payload): \
                      Fpcc::evaluation_points() and Fpcc::digest()"
            .into(),
        payload: PAYLOAD_PATTERN.into(),
        vectors,
    }
}

fn check_or_regenerate<V: Serialize>(file: &str, computed: &KatFile<V>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(file);
    let computed = serde_json::to_value(computed).unwrap();
    if std::env::var("BEAT_REGENERATE_KAT").is_ok_and(|v| v == "1") {
        let text = serde_json::to_string_pretty(&computed).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        eprintln!("regenerated {}", path.display());
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; generate it with BEAT_REGENERATE_KAT=1",
            path.display()
        )
    });
    let stored: Value = serde_json::from_str(&text).unwrap();
    if stored != computed {
        let (stored_v, computed_v) = (&stored["vectors"], &computed["vectors"]);
        let first_diff = (0..computed_v.as_array().map_or(0, Vec::len))
            .find(|&i| stored_v.get(i) != computed_v.get(i));
        panic!(
            "{} does not match the implementation (first differing vector: {first_diff:?})\n\
             stored:   {}\ncomputed: {}\n\
             If the format change is intended, regenerate with BEAT_REGENERATE_KAT=1.",
            path.display(),
            first_diff.map_or(Value::Null, |i| stored_v[i].clone()),
            first_diff.map_or(Value::Null, |i| computed_v[i].clone()),
        );
    }
}

#[test]
fn erasure_known_answers() {
    check_or_regenerate("erasure_kat.json", &erasure_vectors());
}

#[test]
fn avidfp_known_answers() {
    check_or_regenerate("avidfp_kat.json", &avidfp_vectors());
}
