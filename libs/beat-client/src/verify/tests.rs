use std::collections::BTreeMap;

use beat_crypto::dealer::deal;
use beat_types::Committee;
use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

pub(crate) struct Committee4 {
    pub(crate) info: CommitteeInfo,
    shares: Vec<bls::SecretKeyShare>,
}

pub(crate) fn committee() -> Committee4 {
    let c = Committee::new(4).unwrap();
    let (keys, secrets) = deal(c, &mut ChaCha20Rng::seed_from_u64(5)).unwrap();
    Committee4 {
        info: CommitteeInfo {
            digest: Digest([9; 32]),
            keys: Arc::new(keys.coin),
        },
        shares: secrets.into_iter().map(|s| s.coin).collect(),
    }
}

pub(crate) fn proto_batch(epoch: u64, txs: &[&[u8]]) -> pb::Batch {
    pb::Batch {
        epoch,
        contributions: vec![
            pb::Contribution {
                proposer: 1,
                content: Some(pb::contribution::Content::Transactions(
                    pb::TransactionList {
                        transactions: txs.iter().map(|t| Bytes::copy_from_slice(t)).collect(),
                    },
                )),
            },
            pb::Contribution {
                proposer: 3,
                content: Some(pb::contribution::Content::Rejected(
                    pb::RejectReason::Undecryptable as i32,
                )),
            },
        ],
        ordered_labels: vec![],
        digest: Bytes::new(),
    }
}

/// Certifies `batch` after `previous` as f+1 replicas would.
pub(crate) fn certify(
    c: &Committee4,
    batch: &pb::Batch,
    previous: Digest,
) -> pb::CommitCertificate {
    let statement =
        CommitStatement::new(c.info.digest, &batch_from_proto(batch).unwrap(), previous);
    let shares: BTreeMap<NodeId, bls::SignatureShare> = c
        .shares
        .iter()
        .skip(2)
        .map(|s| (s.holder(), s.sign(&statement.message())))
        .collect();
    let signature = c.info.keys.combine_unchecked(&shares).unwrap();
    pb::CommitCertificate {
        committee_digest: Bytes::copy_from_slice(statement.committee.as_bytes()),
        epoch: statement.epoch.0,
        batch_digest: Bytes::copy_from_slice(statement.batch.as_bytes()),
        previous: Bytes::copy_from_slice(statement.previous.as_bytes()),
        signature: Bytes::copy_from_slice(&signature.to_bytes()),
    }
}

pub(crate) fn link(c: &Committee4, batch: &pb::Batch, previous: Digest) -> Digest {
    CommitStatement::new(c.info.digest, &batch_from_proto(batch).unwrap(), previous).link()
}

#[test]
fn a_certified_history_verifies_and_every_alteration_is_caught() {
    let c = committee();
    let genesis = CommitStatement::genesis(c.info.digest);
    let b0 = proto_batch(0, &[b"a", b"b"]);
    let c0 = certify(&c, &b0, genesis);
    let b1 = proto_batch(1, &[b"c"]);
    let l0 = link(&c, &b0, genesis);
    let c1 = certify(&c, &b1, l0);

    let mut chain = ChainVerifier::from_genesis(c.info.clone());
    assert_eq!(chain.verify(&b0, &c0).unwrap().link, l0);
    chain.verify(&b1, &c1).unwrap();

    // A transaction altered, dropped or reordered: the digest no longer matches.
    let mut altered = b0.clone();
    if let Some(pb::contribution::Content::Transactions(l)) = &mut altered.contributions[0].content
    {
        l.transactions.swap(0, 1);
    }
    let err = ChainVerifier::from_genesis(c.info.clone())
        .verify(&altered, &c0)
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Certificate(CertificateError::WrongBatch { .. })
        ),
        "{err}"
    );

    // A rejected contribution shown under another reason changes the digest too.
    let mut reason = b0.clone();
    reason.contributions[1].content = Some(pb::contribution::Content::Rejected(
        pb::RejectReason::Malformed as i32,
    ));
    assert!(
        ChainVerifier::from_genesis(c.info.clone())
            .verify(&reason, &c0)
            .is_err()
    );

    // A skipped epoch, and a forked history (epoch 1 certified after another epoch 0).
    let err = ChainVerifier::from_genesis(c.info.clone())
        .verify(&b1, &c1)
        .unwrap_err();
    assert!(matches!(err, VerifyError::OutOfOrder { .. }), "{err}");
    let other0 = proto_batch(0, &[b"x"]);
    let mut forked = ChainVerifier::from_genesis(c.info.clone());
    forked
        .verify(&other0, &certify(&c, &other0, genesis))
        .unwrap();
    let err = forked.verify(&b1, &c1).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Certificate(CertificateError::WrongHistory { .. })
        ),
        "{err}"
    );

    // A signature that is not the committee's on this statement (another epoch's).
    let mut bad = c0.clone();
    bad.signature = c1.signature.clone();
    let err = ChainVerifier::from_genesis(c.info.clone())
        .verify(&b0, &bad)
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Certificate(CertificateError::BadSignature(_))
        ),
        "{err}"
    );

    // Another committee's certificate.
    let mut other = c.info.clone();
    other.digest = Digest([1; 32]);
    assert!(ChainVerifier::from_genesis(other).verify(&b0, &c0).is_err());

    // Mid-history: the first certificate vouches for what came before.
    let mut late = ChainVerifier::from_anywhere(c.info);
    late.verify(&b1, &c1).unwrap();
    assert_eq!(late.next_epoch(), Some(Epoch(2)));
}

#[test]
fn malformed_messages_are_refused_with_a_reason() {
    let c = committee();
    let b0 = proto_batch(0, &[b"a"]);
    let mut c0 = certify(&c, &b0, CommitStatement::genesis(c.info.digest));
    c0.signature = Bytes::from_static(&[0; 48]);
    let err = ChainVerifier::from_genesis(c.info)
        .verify(&b0, &c0)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Malformed { .. }), "{err}");
    let mut b = b0;
    b.contributions[0].content = Some(pb::contribution::Content::Rejected(99));
    assert!(matches!(
        batch_from_proto(&b),
        Err(VerifyError::Malformed { .. })
    ));
}
