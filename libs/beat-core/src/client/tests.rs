use std::sync::OnceLock;

use beat_crypto::dealer::{CommitteeKeys, deal};
use beat_types::{Committee, Epoch, NodeId};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::codec::epoch_label;

fn keys() -> &'static CommitteeKeys {
    static KEYS: OnceLock<CommitteeKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        deal(
            Committee::new(4).unwrap(),
            &mut ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap()
        .0
    })
}

fn client(seed: u64) -> IdentityKeypair {
    IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(seed))
}

fn sealed(client: &IdentityKeypair, request: u64) -> Transaction {
    let mut rng = ChaCha20Rng::seed_from_u64(request);
    seal_client_transaction(client, &keys().encryption, request, b"buy 1", &mut rng).unwrap()
}

fn check(bytes: &[u8]) -> Result<(), ClientTransactionError> {
    ClientTransaction::from_bytes(bytes)?.verify(&keys().encryption)
}

#[test]
fn labels_round_trip_and_have_a_fixed_layout() {
    let alice = client(1).public();
    let label = client_label(&alice, 7);
    assert_eq!(label.len(), CLIENT_LABEL_LEN);
    assert_eq!(&label[..15], b"BEAT-CLIENT-V2/");
    assert_eq!(&label[15..47], alice.as_bytes());
    assert_eq!(&label[47..], &7u64.to_le_bytes());
    assert_eq!(
        ClientLabel::parse(&label),
        Ok(ClientLabel {
            client: alice,
            request: 7
        })
    );
    assert!(is_client_label(&label));
    assert_ne!(
        client_label(&alice, 1),
        client_label(&client(2).public(), 1)
    );
    assert_ne!(client_label(&alice, 1), client_label(&alice, 2));
}

#[test]
fn malformed_labels_are_not_client_labels() {
    let label = client_label(&client(1).public(), 7);
    let mut long = label.clone();
    long.push(0);
    let mut v1 = b"BEAT-CLIENT-V1/".to_vec();
    v1.extend_from_slice(&label[15..]);
    for (what, bad) in [
        ("short", label[..label.len() - 1].to_vec()),
        ("long", long),
        ("old prefix", v1),
        ("epoch label", epoch_label(Epoch(1), NodeId(2))),
        ("empty", Vec::new()),
    ] {
        assert_eq!(
            ClientLabel::parse(&bad),
            Err(ClientTransactionError::NotClientLabel),
            "{what}"
        );
        assert!(!is_client_label(&bad), "{what}");
    }
    // The identity point is a small-order key: it could sign for anything.
    let mut weak = label;
    weak[15..47].copy_from_slice(&{
        let mut identity = [0u8; 32];
        identity[0] = 1;
        identity
    });
    assert_eq!(
        ClientLabel::parse(&weak),
        Err(ClientTransactionError::InvalidClientKey(
            IdentityError::WeakPublicKey
        ))
    );
}

#[test]
fn a_sealed_transaction_parses_and_verifies() {
    let alice = client(1);
    let tx = sealed(&alice, 42);
    let parsed = ClientTransaction::from_bytes(tx.as_bytes()).unwrap();
    assert_eq!(parsed.label().client, alice.public());
    assert_eq!(parsed.label().request, 42);
    assert_eq!(
        parsed.ciphertext().label(),
        client_label(&alice.public(), 42)
    );
    assert_eq!(parsed.verify(&keys().encryption), Ok(()));
    assert_eq!(
        tx.len(),
        CLIENT_TRANSACTION_OVERHEAD + parsed.ciphertext().encoded_len()
    );
    // The envelope re-encodes to the same bytes.
    let again = envelope(
        parsed.signature(),
        &parsed.clone().into_ciphertext().to_bytes(),
    );
    assert_eq!(again, tx);
}

#[test]
fn a_ciphertext_under_someone_elses_label_does_not_verify() {
    // The squatter encrypts validly under Alice's label but can only sign with its own key.
    let (alice, mallory) = (client(1), client(2));
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let ct = keys()
        .encryption
        .encrypt(&client_label(&alice.public(), 0), b"junk", &mut rng)
        .unwrap();
    let tx = sign_client_ciphertext(&mallory, &ct);
    let parsed = ClientTransaction::from_bytes(tx.as_bytes()).unwrap();
    assert_eq!(
        parsed.verify(&keys().encryption),
        Err(ClientTransactionError::BadSignature)
    );
    // Alice's own signature on that ciphertext verifies, whoever relays it.
    assert_eq!(
        check(sign_client_ciphertext(&alice, &ct).as_bytes()),
        Ok(())
    );
}

#[test]
fn a_signature_does_not_carry_over_to_another_ciphertext() {
    let alice = client(1);
    let (a, b) = (sealed(&alice, 1), sealed(&alice, 2));
    let mut spliced = a.as_bytes()[..CLIENT_TRANSACTION_OVERHEAD].to_vec();
    spliced.extend_from_slice(&b.as_bytes()[CLIENT_TRANSACTION_OVERHEAD..]);
    assert_eq!(check(&spliced), Err(ClientTransactionError::BadSignature));
}

#[test]
fn a_signed_but_invalid_ciphertext_is_rejected() {
    // The client signs a ciphertext whose body was changed after encryption: the signature
    // verifies, the TDH2 validity proof (which binds the body) does not.
    let alice = client(1);
    let tx = sealed(&alice, 3);
    let mut ct_bytes = tx.as_bytes()[CLIENT_TRANSACTION_OVERHEAD..].to_vec();
    let last = ct_bytes.len() - 1;
    ct_bytes[last] ^= 1;
    let ct = tdh2::Ciphertext::from_bytes(&ct_bytes).unwrap();
    assert_eq!(
        check(sign_client_ciphertext(&alice, &ct).as_bytes()),
        Err(ClientTransactionError::InvalidCiphertext(
            tdh2::Tdh2Error::InvalidCiphertext
        ))
    );
}

#[test]
fn envelopes_are_parsed_strictly() {
    let alice = client(1);
    let tx = sealed(&alice, 5).0;
    let mut version = tx.clone();
    version[0] = 2;
    let mut trailing = tx.clone();
    trailing.push(0);
    let mut non_canonical_s = tx.clone();
    non_canonical_s[64] = 0xff;
    assert_eq!(
        check(&[]),
        Err(ClientTransactionError::Truncated { len: 0 })
    );
    assert_eq!(
        check(&tx[..CLIENT_TRANSACTION_OVERHEAD - 1]),
        Err(ClientTransactionError::Truncated {
            len: CLIENT_TRANSACTION_OVERHEAD - 1
        })
    );
    assert_eq!(
        check(&version),
        Err(ClientTransactionError::UnsupportedVersion(2))
    );
    assert!(matches!(
        check(&trailing),
        Err(ClientTransactionError::MalformedCiphertext(_))
    ));
    assert!(matches!(
        check(&tx[..tx.len() - 1]),
        Err(ClientTransactionError::MalformedCiphertext(_))
    ));
    assert!(matches!(
        check(&non_canonical_s),
        Err(ClientTransactionError::MalformedSignature(_))
    ));
    // A bare ciphertext (the pre-envelope format) is not a client transaction.
    let bare = ClientTransaction::from_bytes(&tx)
        .unwrap()
        .into_ciphertext();
    assert!(check(&bare.to_bytes()).is_err());
    // A correctly signed ciphertext under a replica's epoch label is not a client transaction.
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let ct = keys()
        .encryption
        .encrypt(&epoch_label(Epoch(0), NodeId(0)), b"x", &mut rng)
        .unwrap();
    assert_eq!(
        check(sign_client_ciphertext(&alice, &ct).as_bytes()),
        Err(ClientTransactionError::NotClientLabel)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = check(&bytes);
        let mut enveloped = vec![CLIENT_TRANSACTION_VERSION];
        enveloped.extend_from_slice(&bytes);
        let _ = check(&enveloped);
    }

    #[test]
    fn any_changed_byte_fails(position in any::<prop::sample::Index>(), xor in 1u8..) {
        let tx = sealed(&client(1), 9).0;
        let mut bad = tx.clone();
        bad[position.index(tx.len())] ^= xor;
        prop_assert!(check(&bad).is_err());
    }
}
