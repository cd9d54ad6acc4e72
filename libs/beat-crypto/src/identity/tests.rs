use curve25519_dalek::{
    Scalar,
    constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION},
    edwards::CompressedEdwardsY,
};
use proptest::prelude::*;
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

use super::*;

const CTX: &[u8] = b"peer-handshake";

fn keypair(seed: u64) -> IdentityKeypair {
    IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(seed))
}

#[test]
fn sign_verify_round_trip() {
    let kp = keypair(1);
    let sig = kp.sign(CTX, b"hello");
    assert_eq!(kp.public().verify(CTX, b"hello", &sig), Ok(()));
    // Empty context and message are legal inputs.
    let sig = kp.sign(b"", b"");
    assert_eq!(kp.public().verify(b"", b"", &sig), Ok(()));
}

#[test]
fn signature_is_deterministic_and_bound_to_framing() {
    let kp = keypair(2);
    assert_eq!(kp.sign(CTX, b"m"), kp.sign(CTX, b"m"));
    // Moving bytes between context and message must not produce the same signed value.
    let sig = kp.sign(b"ab", b"c");
    assert_eq!(
        kp.public().verify(b"a", b"bc", &sig),
        Err(IdentityError::InvalidSignature)
    );
}

#[test]
fn wrong_context_fails() {
    let kp = keypair(3);
    let sig = kp.sign(b"peer-handshake", b"hello");
    assert_eq!(
        kp.public().verify(b"client-request", b"hello", &sig),
        Err(IdentityError::InvalidSignature)
    );
}

#[test]
fn wrong_message_fails() {
    let kp = keypair(4);
    let sig = kp.sign(CTX, b"hello");
    assert_eq!(
        kp.public().verify(CTX, b"hellp", &sig),
        Err(IdentityError::InvalidSignature)
    );
}

#[test]
fn wrong_key_fails() {
    let sig = keypair(5).sign(CTX, b"hello");
    assert_eq!(
        keypair(6).public().verify(CTX, b"hello", &sig),
        Err(IdentityError::InvalidSignature)
    );
}

#[test]
fn signature_is_not_plain_ed25519_over_the_message() {
    // Guards against dropping the domain separation: a raw Ed25519 signature over the message
    // must not be accepted.
    let kp = keypair(7);
    let raw = kp.signing.sign(b"hello").to_bytes();
    let raw = IdentitySignature::from_bytes(&raw).unwrap();
    assert_eq!(
        kp.public().verify(CTX, b"hello", &raw),
        Err(IdentityError::InvalidSignature)
    );
}

#[test]
fn from_secret_bytes_matches_rfc8032_test_vector_1() {
    // RFC 8032 §7.1, TEST 1: the secret determines the public key.
    let secret: [u8; 32] =
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap()
            .try_into()
            .unwrap();
    let kp = IdentityKeypair::from_secret_bytes(secret);
    assert_eq!(
        kp.public().to_hex(),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
}

proptest! {
    #[test]
    fn any_flipped_signature_bit_fails(bit in 0usize..512, msg in any::<Vec<u8>>()) {
        let kp = keypair(8);
        let mut bytes = kp.sign(CTX, &msg).to_bytes();
        bytes[bit / 8] ^= 1 << (bit % 8);
        // Either the parser rejects it (non-canonical s) or verification does.
        if let Ok(sig) = IdentitySignature::from_bytes(&bytes) {
            prop_assert_eq!(
                kp.public().verify(CTX, &msg, &sig),
                Err(IdentityError::InvalidSignature)
            );
        }
    }

    #[test]
    fn round_trip_for_any_context_and_message(
        seed in any::<u64>(),
        ctx in any::<Vec<u8>>(),
        msg in any::<Vec<u8>>(),
    ) {
        let kp = keypair(seed);
        let sig = kp.sign(&ctx, &msg);
        prop_assert_eq!(kp.public().verify(&ctx, &msg, &sig), Ok(()));
    }
}

#[test]
fn signature_with_s_plus_group_order_is_rejected() {
    // s' = s + ℓ is the classic malleability: it must fail at parse time.
    let kp = keypair(9);
    let sig = kp.sign(CTX, b"hello").to_bytes();
    // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
    let ell: [u8; 32] =
        hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
            .unwrap()
            .try_into()
            .unwrap();
    let mut s_plus_ell = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(ell[i]) + carry;
        s_plus_ell[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "s + ℓ fits in 256 bits");
    let mut malleated = sig;
    malleated[32..].copy_from_slice(&s_plus_ell);
    assert_eq!(
        IdentitySignature::from_bytes(&malleated),
        Err(IdentityError::NonCanonicalSignature)
    );
}

#[test]
fn small_order_public_keys_are_rejected() {
    for point in EIGHT_TORSION {
        let bytes = point.compress().to_bytes();
        assert_eq!(
            IdentityPublicKey::from_bytes(&bytes),
            Err(IdentityError::WeakPublicKey),
            "{}",
            hex::encode(bytes)
        );
    }
}

#[test]
fn torsioned_public_key_is_rejected() {
    let a = ED25519_BASEPOINT_POINT * Scalar::from(123_456_789u64);
    let good = a.compress().to_bytes();
    assert!(IdentityPublicKey::from_bytes(&good).is_ok());
    let mixed = (a + EIGHT_TORSION[1]).compress().to_bytes();
    assert_eq!(
        IdentityPublicKey::from_bytes(&mixed),
        Err(IdentityError::TorsionedPublicKey)
    );
}

#[test]
fn non_canonical_public_key_encodings_are_rejected() {
    // y + p for y in 0..19 is an alternative encoding of y; try both signs of x.
    let mut rejected_non_canonical = 0;
    for y in 0u8..19 {
        for sign in [0u8, 0x80] {
            let mut bytes = [0xffu8; 32];
            bytes[0] = 0xed + y;
            bytes[31] = 0x7f | sign;
            let result = IdentityPublicKey::from_bytes(&bytes);
            assert!(result.is_err(), "accepted {}", hex::encode(bytes));
            if CompressedEdwardsY(bytes)
                .decompress()
                .is_some_and(|p| !p.is_small_order())
            {
                assert_eq!(result, Err(IdentityError::NonCanonicalPublicKey));
                rejected_non_canonical += 1;
            }
        }
    }
    // The check above must have exercised the canonicality test on at least one encoding that
    // would otherwise pass every other check.
    assert!(rejected_non_canonical > 0);
}

#[test]
fn off_curve_public_key_is_rejected() {
    // y = 2 is not the y-coordinate of any point on edwards25519.
    let mut bytes = [0u8; 32];
    bytes[0] = 2;
    assert_eq!(
        IdentityPublicKey::from_bytes(&bytes),
        Err(IdentityError::InvalidPublicKey)
    );
}

#[test]
fn public_key_hex_display_and_parse() {
    let pk = keypair(10).public();
    let shown = pk.to_string();
    assert_eq!(shown.len(), 64);
    assert_eq!(shown, hex::encode(pk.to_bytes()));
    assert_eq!(shown.parse::<IdentityPublicKey>(), Ok(pk));
    assert_eq!(
        "zz".parse::<IdentityPublicKey>(),
        Err(IdentityError::InvalidPublicKey)
    );
}

#[test]
fn serde_json_uses_hex() {
    let kp = keypair(11);
    let pk = kp.public();
    let sig = kp.sign(CTX, b"m");

    let json = serde_json::to_string(&pk).unwrap();
    assert_eq!(json, format!("\"{}\"", pk.to_hex()));
    assert_eq!(
        serde_json::from_str::<IdentityPublicKey>(&json).unwrap(),
        pk
    );

    let json = serde_json::to_string(&sig).unwrap();
    assert_eq!(json, format!("\"{}\"", sig.to_hex()));
    assert_eq!(
        serde_json::from_str::<IdentitySignature>(&json).unwrap(),
        sig
    );

    let json = serde_json::to_string(&kp).unwrap();
    assert_eq!(json, format!("\"{}\"", hex::encode(kp.signing.as_bytes())));
    let back: IdentityKeypair = serde_json::from_str(&json).unwrap();
    assert_eq!(back.public(), pk);
}

#[test]
fn postcard_uses_bytes() {
    let kp = keypair(12);
    let pk = kp.public();
    let sig = kp.sign(CTX, b"m");

    let bytes = postcard::to_allocvec(&pk).unwrap();
    // One varint length byte, then the raw encoding.
    assert_eq!(bytes.len(), 1 + 32);
    assert_eq!(&bytes[1..], pk.as_bytes());
    assert_eq!(
        postcard::from_bytes::<IdentityPublicKey>(&bytes).unwrap(),
        pk
    );

    let bytes = postcard::to_allocvec(&sig).unwrap();
    assert_eq!(bytes.len(), 1 + 64);
    assert_eq!(
        postcard::from_bytes::<IdentitySignature>(&bytes).unwrap(),
        sig
    );

    let bytes = postcard::to_allocvec(&kp).unwrap();
    assert_eq!(&bytes[1..], kp.signing.as_bytes());
    let back: IdentityKeypair = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back.public(), pk);
}

#[test]
fn deserialization_applies_validation() {
    let weak = hex::encode(EIGHT_TORSION[0].compress().to_bytes());
    assert!(serde_json::from_str::<IdentityPublicKey>(&format!("\"{weak}\"")).is_err());
    // Wrong lengths, in both representations.
    assert!(serde_json::from_str::<IdentityPublicKey>("\"abcd\"").is_err());
    assert!(postcard::from_bytes::<IdentityPublicKey>(&[3, 1, 2, 3]).is_err());
    let short = hex::encode([0u8; 63]);
    assert!(serde_json::from_str::<IdentitySignature>(&format!("\"{short}\"")).is_err());
    // Non-canonical s.
    let mut sig = [0u8; 64];
    sig[32..].fill(0xff);
    assert!(
        serde_json::from_str::<IdentitySignature>(&format!("\"{}\"", hex::encode(sig))).is_err()
    );
}

#[test]
fn debug_never_shows_the_secret() {
    let kp = keypair(13);
    let secret_hex = hex::encode(kp.signing.as_bytes());
    let upper = secret_hex.to_uppercase();
    for shown in [format!("{kp:?}"), format!("{kp:#?}")] {
        assert!(!shown.contains(&secret_hex), "{shown}");
        assert!(!shown.contains(&upper), "{shown}");
        assert!(
            !shown.contains(&format!("{:?}", kp.signing.as_bytes())),
            "{shown}"
        );
        // Nor any 8-byte window of it, in case of truncation or reformatting.
        for window in secret_hex.as_bytes().windows(16) {
            assert!(
                !shown.contains(std::str::from_utf8(window).unwrap()),
                "{shown}"
            );
        }
        assert!(shown.contains(&kp.public().to_hex()), "{shown}");
    }
}

/// `from_bytes` remembers keys that passed its checks: a remembered key decodes to the same
/// key, a torsioned key stays rejected however often it is asked for (nothing but validated
/// keys is ever remembered), and a full table starts afresh rather than growing.
#[test]
fn remembered_keys_give_the_same_answers_as_the_checks() {
    let good = keypair(41).public();
    let bytes = good.to_bytes();
    for _ in 0..3 {
        assert_eq!(IdentityPublicKey::from_bytes(&bytes).unwrap(), good);
        assert!(VALIDATED_KEYS.lock().contains_key(&bytes));
    }

    let point = CompressedEdwardsY(good.to_bytes()).decompress().unwrap();
    let torsion = EIGHT_TORSION[1];
    let torsioned = (point + torsion).compress().to_bytes();
    for _ in 0..3 {
        assert!(matches!(
            IdentityPublicKey::from_bytes(&torsioned),
            Err(IdentityError::TorsionedPublicKey)
        ));
        assert!(!VALIDATED_KEYS.lock().contains_key(&torsioned));
    }

    for seed in 0..VALIDATED_KEYS_CAPACITY as u64 + 8 {
        IdentityPublicKey::from_bytes(&keypair(1_000 + seed).public().to_bytes()).unwrap();
    }
    assert!(VALIDATED_KEYS.lock().len() <= VALIDATED_KEYS_CAPACITY);
    assert_eq!(IdentityPublicKey::from_bytes(&bytes).unwrap(), good);
}
