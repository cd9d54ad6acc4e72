use std::{fs, path::Path};

use proptest::prelude::*;
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

use super::*;
use crate::identity::IdentityKeypair;

const FAST: KdfParams = KdfParams::insecure_fast_for_tests();
const PAYLOAD: &[u8] = b"threshold key share and identity secret";
/// A ceiling that keeps every mutated header cheap to open (at most 1 MiB, 4 passes).
const TEST_CEILING: KdfParams = KdfParams {
    m_cost_kib: 1024,
    t_cost: 4,
    p_cost: 4,
};

fn passphrase(s: &str) -> Passphrase {
    Passphrase::new(s.to_owned()).unwrap()
}

fn sealed(seed: u64) -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    seal(&passphrase("hunter2"), PAYLOAD, FAST, &mut rng).unwrap()
}

fn kdf_runs() -> usize {
    KDF_RUNS.with(|runs| runs.get())
}

/// Runs `f` and asserts that it never ran the KDF.
fn without_kdf<T>(f: impl FnOnce() -> T) -> T {
    let before = kdf_runs();
    let out = f();
    assert_eq!(kdf_runs(), before, "the KDF ran");
    out
}

fn with_params(file: &[u8], params: KdfParams) -> Vec<u8> {
    let mut file = file.to_vec();
    file[11..15].copy_from_slice(&params.m_cost_kib.to_le_bytes());
    file[15..19].copy_from_slice(&params.t_cost.to_le_bytes());
    file[19..23].copy_from_slice(&params.p_cost.to_le_bytes());
    file
}

// === seal / open ===

#[test]
fn round_trip() {
    let file = sealed(1);
    assert_eq!(file.len(), HEADER_LEN + PAYLOAD.len() + TAG_LEN);
    let opened = open(&passphrase("hunter2"), &file).unwrap();
    assert_eq!(opened.as_slice(), PAYLOAD);
}

#[test]
fn empty_payload_round_trip() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let file = seal(&passphrase("p"), b"", FAST, &mut rng).unwrap();
    assert_eq!(file.len(), HEADER_LEN + TAG_LEN);
    assert!(open(&passphrase("p"), &file).unwrap().is_empty());
}

#[test]
fn identity_keypair_round_trips_through_a_keystore() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let keypair = IdentityKeypair::generate(&mut rng);
    let payload = Zeroizing::new(postcard::to_allocvec(&keypair).unwrap());
    let file = seal(&passphrase("p"), &payload, FAST, &mut rng).unwrap();
    // The secret must not appear in the clear anywhere in the file.
    assert!(!file.windows(payload.len()).any(|w| w == payload.as_slice()));
    let opened = open(&passphrase("p"), &file).unwrap();
    let back: IdentityKeypair = postcard::from_bytes(&opened).unwrap();
    assert_eq!(back.public(), keypair.public());
}

#[test]
fn sealing_is_randomized() {
    let (a, b) = (sealed(4), sealed(5));
    assert_ne!(a[23..39], b[23..39], "salt");
    assert_ne!(a[39..51], b[39..51], "nonce");
    assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..], "ciphertext");
}

#[test]
fn header_fields_sit_at_the_documented_offsets() {
    let salt = [0x11; SALT_LEN];
    let nonce = [0x22; NONCE_LEN];
    let params = KdfParams {
        m_cost_kib: 16,
        t_cost: 2,
        p_cost: 2,
    };
    let file = seal_with(&passphrase("p"), b"abc", params, &salt, &nonce).unwrap();
    assert_eq!(&file[0..8], b"BEATKEYS");
    assert_eq!(&file[8..10], &1u16.to_le_bytes());
    assert_eq!(file[10], KDF_ARGON2ID);
    assert_eq!(&file[11..15], &params.m_cost_kib.to_le_bytes());
    assert_eq!(&file[15..19], &2u32.to_le_bytes());
    assert_eq!(&file[19..23], &2u32.to_le_bytes());
    assert_eq!(&file[23..39], &salt);
    assert_eq!(&file[39..51], &nonce);
    assert_eq!(&file[51..55], &3u32.to_le_bytes());
    assert_eq!(HEADER_LEN, 55);
    assert_eq!(file.len(), 55 + 3 + 16);
}

#[test]
fn wrong_passphrase_fails() {
    let file = sealed(6);
    for wrong in ["hunter3", "hunter2 ", "Hunter2", "hunter2\n"] {
        let err = open(&passphrase(wrong), &file).unwrap_err();
        assert!(
            matches!(err, KeystoreFileError::WrongPassphraseOrCorrupt),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "wrong passphrase or the file is corrupted");
    }
}

/// Which errors a flip in each header region may produce. Anything else, and any `Ok`, fails.
fn assert_flip_fails(file: &[u8], position: usize, mask: u8) {
    let mut corrupt = file.to_vec();
    corrupt[position] ^= mask;
    let result = open_with_kdf_ceiling(&passphrase("hunter2"), &corrupt, &TEST_CEILING);
    let err = match result {
        Ok(payload) => panic!(
            "flip at {position} with {mask:#04x} opened to {:?}",
            payload.as_slice()
        ),
        Err(err) => err,
    };
    let expected = match position {
        0..8 => matches!(err, KeystoreFileError::NotAKeystore),
        8..10 => matches!(err, KeystoreFileError::UnsupportedVersion { .. }),
        10 => matches!(err, KeystoreFileError::UnsupportedKdf { .. }),
        11..23 => matches!(
            err,
            KeystoreFileError::UnsafeKdfParams { .. } | KeystoreFileError::WrongPassphraseOrCorrupt
        ),
        51..55 => matches!(
            err,
            KeystoreFileError::Truncated { .. }
                | KeystoreFileError::Malformed { .. }
                | KeystoreFileError::PayloadTooLarge { .. }
        ),
        _ => matches!(err, KeystoreFileError::WrongPassphraseOrCorrupt),
    };
    assert!(
        expected,
        "flip at {position} with {mask:#04x} gave unexpected {err:?}"
    );
}

#[test]
fn every_single_byte_flip_fails() {
    let file = sealed(7);
    for position in 0..file.len() {
        for mask in [0x01, 0x80, 0xff] {
            assert_flip_fails(&file, position, mask);
        }
    }
}

proptest! {
    #[test]
    fn any_byte_flip_fails(position in 0..HEADER_LEN + PAYLOAD.len() + TAG_LEN, mask in 1u8..=255) {
        assert_flip_fails(&sealed(8), position, mask);
    }

    #[test]
    fn any_payload_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..512), seed in any::<u64>()) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let file = seal(&passphrase("p"), &payload, FAST, &mut rng).unwrap();
        let opened = open(&passphrase("p"), &file).unwrap();
        prop_assert_eq!(opened.as_slice(), payload.as_slice());
    }
}

#[test]
fn truncation_at_every_length_fails_cleanly() {
    let file = sealed(9);
    for len in 0..file.len() {
        let err = without_kdf(|| open(&passphrase("hunter2"), &file[..len])).unwrap_err();
        let expected = if len < HEADER_LEN {
            HEADER_LEN
        } else {
            file.len()
        };
        assert!(
            matches!(err, KeystoreFileError::Truncated { expected: e, found } if e == expected && found == len),
            "length {len}: {err:?}"
        );
    }
}

#[test]
fn trailing_bytes_are_rejected_before_the_kdf() {
    let mut file = sealed(10);
    file.push(0);
    let err = without_kdf(|| open(&passphrase("hunter2"), &file)).unwrap_err();
    assert!(
        matches!(err, KeystoreFileError::Malformed { .. }),
        "{err:?}"
    );
}

#[test]
fn bad_magic_is_not_a_keystore() {
    let mut file = sealed(11);
    file[0] = b'X';
    for bytes in [&file[..], b"hello", b"{\"json\": true}", b"BEATKEYZ"] {
        let err = without_kdf(|| open(&passphrase("p"), bytes)).unwrap_err();
        assert!(matches!(err, KeystoreFileError::NotAKeystore), "{err:?}");
    }
}

#[test]
fn future_and_zero_versions_are_unsupported() {
    for version in [0u16, 2, u16::MAX] {
        let mut file = sealed(12);
        file[8..10].copy_from_slice(&version.to_le_bytes());
        let err = without_kdf(|| open(&passphrase("hunter2"), &file)).unwrap_err();
        assert!(
            matches!(err, KeystoreFileError::UnsupportedVersion { found, supported: 1 } if found == version),
            "{err:?}"
        );
    }
}

#[test]
fn unknown_kdf_is_unsupported() {
    let mut file = sealed(13);
    file[10] = 2;
    let err = without_kdf(|| open(&passphrase("hunter2"), &file)).unwrap_err();
    assert!(
        matches!(err, KeystoreFileError::UnsupportedKdf { id: 2 }),
        "{err:?}"
    );
}

#[test]
fn absurd_kdf_params_are_rejected_without_running_the_kdf() {
    let file = sealed(14);
    let absurd = [
        KdfParams {
            m_cost_kib: u32::MAX,
            ..FAST
        },
        KdfParams {
            m_cost_kib: KdfParams::MAX_M_COST_KIB + 1,
            ..FAST
        },
        KdfParams { t_cost: 0, ..FAST },
        KdfParams {
            t_cost: u32::MAX,
            ..FAST
        },
        KdfParams {
            t_cost: KdfParams::MAX_T_COST + 1,
            ..FAST
        },
        KdfParams { p_cost: 0, ..FAST },
        KdfParams {
            p_cost: u32::MAX,
            ..FAST
        },
        KdfParams {
            m_cost_kib: 64,
            p_cost: KdfParams::MAX_P_COST + 1,
            ..FAST
        },
        // Less than 8 KiB per lane.
        KdfParams {
            m_cost_kib: 7,
            ..FAST
        },
        KdfParams {
            m_cost_kib: 0,
            ..FAST
        },
        KdfParams {
            m_cost_kib: 15,
            p_cost: 2,
            ..FAST
        },
    ];
    for params in absurd {
        let err =
            without_kdf(|| open(&passphrase("hunter2"), &with_params(&file, params))).unwrap_err();
        assert!(
            matches!(err, KeystoreFileError::UnsafeKdfParams { params: p, .. } if p == params),
            "{params}: {err:?}"
        );
        assert!(params.validate().is_err());
        // Sealing with them is refused the same way.
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        let err = without_kdf(|| seal(&passphrase("p"), b"x", params, &mut rng)).unwrap_err();
        assert!(
            matches!(err, KeystoreFileError::UnsafeKdfParams { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn kdf_ceiling_is_enforced_before_the_kdf() {
    let file = with_params(&sealed(15), KdfParams::default());
    let err = without_kdf(|| open_with_kdf_ceiling(&passphrase("hunter2"), &file, &TEST_CEILING))
        .unwrap_err();
    assert!(
        matches!(err, KeystoreFileError::UnsafeKdfParams { .. }),
        "{err:?}"
    );
    // Within the ceiling the file opens.
    let file = sealed(15);
    assert!(open_with_kdf_ceiling(&passphrase("hunter2"), &file, &TEST_CEILING).is_ok());
}

#[test]
fn oversized_declared_payload_is_rejected_before_the_kdf() {
    let mut file = sealed(16);
    file[51..55].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = without_kdf(|| open(&passphrase("hunter2"), &file)).unwrap_err();
    assert!(
        matches!(err, KeystoreFileError::PayloadTooLarge { .. }),
        "{err:?}"
    );
}

#[test]
fn oversized_payload_is_refused_by_seal() {
    let payload = vec![0u8; MAX_PAYLOAD_LEN + 1];
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let err = without_kdf(|| seal(&passphrase("p"), &payload, FAST, &mut rng)).unwrap_err();
    assert!(
        matches!(err, KeystoreFileError::PayloadTooLarge { len, .. } if len == MAX_PAYLOAD_LEN + 1),
        "{err:?}"
    );
}

#[test]
fn kdf_param_presets() {
    let default = KdfParams::default();
    assert!(default.validate().is_ok());
    assert!(default.m_cost_kib >= 64 * 1024 && default.t_cost >= 3);
    assert!(FAST.validate().is_ok());
    assert!(KdfParams::UPPER_BOUNDS.validate().is_ok());
    assert_eq!(default.to_string(), "m_cost_kib=65536 t_cost=3 p_cost=1");
}

// === passphrases ===

#[test]
fn passphrase_rejects_empty_and_over_long() {
    assert!(matches!(
        Passphrase::new(String::new()),
        Err(KeystoreFileError::EmptyPassphrase)
    ));
    assert!(Passphrase::new("x".repeat(Passphrase::MAX_LEN)).is_ok());
    assert!(matches!(
        Passphrase::new("x".repeat(Passphrase::MAX_LEN + 1)),
        Err(KeystoreFileError::PassphraseTooLong { .. })
    ));
}

#[test]
fn passphrase_debug_is_redacted() {
    let shown = format!("{:?}", passphrase("hunter2"));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(shown, "Passphrase(<redacted>)");
}

#[test]
fn passphrase_from_bytes_takes_the_bytes_as_they_are() {
    assert!(matches!(
        Passphrase::from_bytes(Zeroizing::new(Vec::new())),
        Err(KeystoreFileError::EmptyPassphrase)
    ));
    assert!(matches!(
        Passphrase::from_bytes(Zeroizing::new(vec![b'x'; Passphrase::MAX_LEN + 1])),
        Err(KeystoreFileError::PassphraseTooLong { .. })
    ));
    for bytes in [&b"hunter2"[..], b" hunter2 \t\n", b"\xff\xfe binary"] {
        let from_bytes = Passphrase::from_bytes(Zeroizing::new(bytes.to_vec())).unwrap();
        assert_eq!(from_bytes.as_bytes(), bytes);
    }
    assert_eq!(
        Passphrase::from_bytes(Zeroizing::new(vec![b'x'; Passphrase::MAX_LEN]))
            .unwrap()
            .as_bytes()
            .len(),
        Passphrase::MAX_LEN
    );
    // `new` is `from_bytes` of the UTF-8 encoding: a file sealed with one opens with the other.
    let file = sealed(17);
    let raw = Passphrase::from_bytes(Zeroizing::new(b"hunter2".to_vec())).unwrap();
    assert!(open(&raw, &file).is_ok());
}

// === errors ===

#[test]
fn error_messages_are_lowercase_without_trailing_punctuation() {
    let errors = [
        KeystoreFileError::NotAKeystore,
        KeystoreFileError::UnsupportedVersion {
            found: 2,
            supported: 1,
        },
        KeystoreFileError::UnsupportedKdf { id: 9 },
        KeystoreFileError::Truncated {
            expected: 55,
            found: 3,
        },
        KeystoreFileError::Malformed { reason: "x" },
        KeystoreFileError::UnsafeKdfParams {
            params: FAST,
            reason: "x",
        },
        KeystoreFileError::PayloadTooLarge { len: 2, max: 1 },
        KeystoreFileError::WrongPassphraseOrCorrupt,
        KeystoreFileError::EmptyPassphrase,
        KeystoreFileError::PassphraseTooLong { max: 1 },
    ];
    for err in errors {
        let msg = err.to_string();
        assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
        assert!(!msg.ends_with('.'), "{msg}");
    }
}

// === known-answer vector ===

/// The committed known-answer vector: fixed inputs and the exact file they must produce.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Kat {
    comment: String,
    passphrase: String,
    salt: String,
    nonce: String,
    kdf: KdfParams,
    payload: String,
    file: String,
}

impl Kat {
    fn compute() -> Self {
        let passphrase_text = "correct horse battery staple";
        let salt: [u8; SALT_LEN] = std::array::from_fn(|i| i as u8);
        let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| 0xa0 + i as u8);
        let payload = b"BEAT keystore known-answer payload";
        let file = seal_with(&passphrase(passphrase_text), payload, FAST, &salt, &nonce).unwrap();
        Self {
            comment: "BEAT keystore file format version 1. Regenerate with BEAT_REGENERATE_KAT=1 \
                      only for an intentional, versioned format change."
                .into(),
            passphrase: passphrase_text.into(),
            salt: hex::encode(salt),
            nonce: hex::encode(nonce),
            kdf: FAST,
            payload: hex::encode(payload),
            file: hex::encode(file),
        }
    }
}

#[test]
fn known_answer_vector_matches_committed_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/keystore_kat.json");
    let computed = Kat::compute();
    if std::env::var_os("BEAT_REGENERATE_KAT").is_some_and(|v| v == "1") {
        let json = serde_json::to_string_pretty(&computed).unwrap();
        fs::write(&path, json + "\n").unwrap();
    }
    let committed = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with BEAT_REGENERATE_KAT=1",
            path.display()
        )
    });
    let committed: Kat = serde_json::from_str(&committed).unwrap();
    assert_eq!(
        committed, computed,
        "the keystore file format changed; if that is intended, bump FORMAT_VERSION and \
         regenerate with BEAT_REGENERATE_KAT=1"
    );
    // The committed bytes open to the committed payload: files written by earlier builds of
    // this format version stay readable.
    let file = hex::decode(&committed.file).unwrap();
    let opened = open(&passphrase(&committed.passphrase), &file).unwrap();
    assert_eq!(hex::encode(opened.as_slice()), committed.payload);
}
