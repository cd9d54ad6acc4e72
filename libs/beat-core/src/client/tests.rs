use std::sync::OnceLock;

use beat_crypto::dealer::{CommitteeKeys, ReplicaSecrets, deal};
use beat_types::{Committee, Epoch, NodeId};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::codec::epoch_label;

fn dealt() -> &'static (CommitteeKeys, Vec<ReplicaSecrets>) {
    static KEYS: OnceLock<(CommitteeKeys, Vec<ReplicaSecrets>)> = OnceLock::new();
    KEYS.get_or_init(|| {
        deal(
            Committee::new(4).unwrap(),
            &mut ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap()
    })
}

fn keys() -> &'static CommitteeKeys {
    &dealt().0
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
    let tx = sealed(&alice, 5).into_vec();
    let mut version = tx.clone();
    version[0] = 3;
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
        Err(ClientTransactionError::UnsupportedVersion(3))
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

fn bundle(client: &IdentityKeypair, request: u64, txs: &[&[u8]]) -> Transaction {
    let mut rng = ChaCha20Rng::seed_from_u64(request);
    seal_client_bundle(client, &keys().encryption, request, txs, &mut rng).unwrap()
}

fn decrypted(tx: &Transaction) -> Vec<u8> {
    // The committee's own decryption, as the replicas' shares would combine it.
    let parsed = ClientTransaction::from_bytes(tx.as_bytes()).unwrap();
    let ct = parsed.ciphertext();
    let shares = dealt()
        .1
        .iter()
        .take(2)
        .map(|s| {
            let share = s
                .decryption
                .decryption_share(&keys().encryption, ct, ct.label())
                .unwrap();
            (s.node, share)
        })
        .collect();
    keys()
        .encryption
        .combine_verified(ct, &shares)
        .unwrap()
        .unwrap()
}

#[test]
fn a_sealed_bundle_verifies_and_opens_to_its_transactions_in_order() {
    let alice = client(1);
    let orders: [&[u8]; 3] = [b"buy 1", b"sell 2", b"buy 3"];
    let tx = bundle(&alice, 11, &orders);
    let parsed = ClientTransaction::from_bytes(tx.as_bytes()).unwrap();
    assert_eq!(tx.as_bytes()[0], CLIENT_BUNDLE_VERSION);
    assert_eq!(parsed.kind(), EnvelopeKind::Bundle);
    assert_eq!(parsed.label().request, 11);
    assert_eq!(parsed.verify(&keys().encryption), Ok(()));
    let opened = EnvelopeKind::Bundle.open(&decrypted(&tx), 64).unwrap();
    assert_eq!(
        opened,
        orders
            .iter()
            .map(|o| Transaction::new(o.to_vec()))
            .collect::<Vec<_>>()
    );
    // A single transaction opens to itself, whatever its bytes look like.
    let single = sealed(&alice, 12);
    assert_eq!(
        ClientTransaction::from_bytes(single.as_bytes())
            .unwrap()
            .kind(),
        EnvelopeKind::Single
    );
    assert_eq!(
        EnvelopeKind::Single.open(&decrypted(&single), 64),
        Some(vec![Transaction::new(b"buy 1".to_vec())])
    );
}

#[test]
fn flipping_the_envelope_version_breaks_the_signature() {
    // A proposer cannot make a single transaction's plaintext be read as a bundle, nor the
    // reverse: the version selects the signing context.
    let alice = client(1);
    let mut single = sealed(&alice, 1).into_vec();
    single[0] = CLIENT_BUNDLE_VERSION;
    assert_eq!(check(&single), Err(ClientTransactionError::BadSignature));
    let mut bundled = bundle(&alice, 2, &[b"a", b"b"]).into_vec();
    bundled[0] = CLIENT_TRANSACTION_VERSION;
    assert_eq!(check(&bundled), Err(ClientTransactionError::BadSignature));
}

#[test]
fn bundles_are_bounded_and_malformed_plaintexts_commit_nothing() {
    let alice = client(1);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let seal = |txs: &[&[u8]], rng: &mut ChaCha20Rng| {
        seal_client_bundle(&alice, &keys().encryption, 1, txs, rng)
    };
    assert_eq!(seal(&[], &mut rng), Err(BundleError::Count(0)));
    let many = vec![&b"x"[..]; MAX_BUNDLE_TRANSACTIONS + 1];
    assert_eq!(
        seal(&many, &mut rng),
        Err(BundleError::Count(MAX_BUNDLE_TRANSACTIONS + 1))
    );
    assert!(seal(&many[..MAX_BUNDLE_TRANSACTIONS], &mut rng).is_ok());
    assert_eq!(
        seal(&[b"a", b"", b"c"], &mut rng),
        Err(BundleError::EmptyTransaction(1))
    );
    // What a client could have encrypted by hand under a bundle envelope: each commits nothing.
    let encode = |txs: &[&[u8]]| {
        crate::codec::encode_transactions(
            &txs.iter()
                .map(|t| Transaction::new(t.to_vec()))
                .collect::<Vec<_>>(),
        )
    };
    let too_many = encode(&vec![&b"x"[..]; MAX_BUNDLE_TRANSACTIONS + 1]);
    let mut trailing = encode(&[b"a"]);
    trailing.push(0);
    for (what, plaintext) in [
        ("empty bundle", encode(&[])),
        ("empty transaction", encode(&[b"a", b""])),
        ("oversized transaction", encode(&[&[7u8; 65][..]])),
        ("too many", too_many),
        ("trailing bytes", trailing),
        ("not an encoding", b"buy 1".to_vec()),
        ("nothing", Vec::new()),
    ] {
        assert_eq!(EnvelopeKind::Bundle.open(&plaintext, 64), None, "{what}");
    }
    assert_eq!(EnvelopeKind::Single.open(&[], 64), None);
    assert_eq!(EnvelopeKind::Single.open(&[1; 65], 64), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_plaintexts_never_panic_a_bundle(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Some(txs) = EnvelopeKind::Bundle.open(&bytes, 64) {
            prop_assert!(!txs.is_empty() && txs.len() <= MAX_BUNDLE_TRANSACTIONS);
            prop_assert!(txs.iter().all(|t| !t.is_empty() && t.len() <= 64));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = check(&bytes);
        let mut enveloped = vec![CLIENT_TRANSACTION_VERSION];
        enveloped.extend_from_slice(&bytes);
        let _ = check(&enveloped);
    }

    #[test]
    fn any_changed_byte_fails(position in any::<prop::sample::Index>(), xor in 1u8..) {
        let tx = sealed(&client(1), 9).into_vec();
        let mut bad = tx.clone();
        bad[position.index(tx.len())] ^= xor;
        prop_assert!(check(&bad).is_err());
    }
}
