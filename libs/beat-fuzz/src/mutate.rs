//! The mutator: structure-blind byte edits, stacked, with the edits that break length-prefixed
//! and varint encodings most often (huge lengths, truncation, duplicated and spliced ranges).

use rand::RngExt as _;
use rand_chacha::ChaCha20Rng;

/// Bytes that sit on boundaries of integer and length fields.
const INTERESTING: [u8; 10] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x20, 0x10, 0x08];

/// Applies one to eight edits to `input` (splicing from `other`), keeping it under `max_len`.
pub fn mutate(input: &[u8], other: &[u8], max_len: usize, rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    let edits = 1 + rng.random_range(0..8usize).min(rng.random_range(0..8usize));
    for _ in 0..edits {
        edit(&mut out, other, rng);
    }
    out.truncate(max_len);
    out
}

fn edit(out: &mut Vec<u8>, other: &[u8], rng: &mut ChaCha20Rng) {
    let len = out.len();
    let at = |rng: &mut ChaCha20Rng, len: usize| {
        if len == 0 {
            0
        } else {
            rng.random_range(0..len)
        }
    };
    match rng.random_range(0..11u8) {
        0 if len > 0 => {
            let i = at(rng, len);
            out[i] ^= 1 << rng.random_range(0..8u8);
        }
        1 if len > 0 => {
            let i = at(rng, len);
            out[i] = rng.random();
        }
        2 if len > 0 => {
            let i = at(rng, len);
            out[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
        }
        3 => {
            // A varint of a huge or boundary value (a length or count field).
            let value: u64 = match rng.random_range(0..4u8) {
                0 => u64::MAX,
                1 => u64::from(u32::MAX),
                2 => 1 << rng.random_range(7..40u32),
                _ => rng.random(),
            };
            let i = at(rng, len + 1).min(len);
            let mut varint = Vec::new();
            let mut v = value;
            loop {
                let byte = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    varint.push(byte);
                    break;
                }
                varint.push(byte | 0x80);
            }
            let end = (i + rng.random_range(0..=varint.len())).min(len);
            out.splice(i..end, varint);
        }
        4 if len > 0 => {
            let i = at(rng, len);
            let n = rng.random_range(1..=(len - i).min(64));
            out.drain(i..i + n);
        }
        5 => {
            let i = at(rng, len + 1).min(len);
            let n = rng.random_range(1..=16usize);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            out.splice(i..i, bytes);
        }
        6 if len > 0 => {
            // Duplicate a range (repeated records, repeated fields).
            let i = at(rng, len);
            let n = rng.random_range(1..=(len - i).min(256));
            let copy = out[i..i + n].to_vec();
            let j = at(rng, len + 1).min(len);
            out.splice(j..j, copy);
        }
        7 if !other.is_empty() => {
            // Splice the tail of another input.
            let i = at(rng, len + 1).min(len);
            let j = rng.random_range(0..other.len());
            out.truncate(i);
            out.extend_from_slice(&other[j..]);
        }
        8 if len > 0 => out.truncate(at(rng, len)),
        9 if len >= 2 => {
            // Swap two bytes.
            let (i, j) = (at(rng, len), at(rng, len));
            out.swap(i, j);
        }
        _ if len > 0 => {
            // Add or subtract a small amount (counters, lengths, indices).
            let i = at(rng, len);
            let delta: i8 = rng.random_range(-16..=16);
            out[i] = out[i].wrapping_add(delta as u8);
        }
        _ => out.push(rng.random()),
    }
}
