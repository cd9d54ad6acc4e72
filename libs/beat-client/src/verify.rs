//! Verifying committed batches against the committee file (docs/wire.md §6).

use std::{path::Path, sync::Arc};

use beat_config::CommitteeFile;
use beat_core::{
    Batch, CertificateError, CommitCertificate, CommitStatement, Content, Contribution, FaultKind,
    StoredCommitment,
};
use beat_crypto::{Digest, bls};
use beat_proto::common::v1 as pb;
use beat_types::{Epoch, NodeId, Transaction};

/// What a verifier needs of the committee: its digest and its group key.
#[derive(Clone, Debug)]
pub struct CommitteeInfo {
    /// The committee file's digest, which certificates name.
    pub digest: Digest,
    /// The threshold BLS group key.
    pub keys: Arc<bls::PublicKeySet>,
}

impl CommitteeInfo {
    /// From a committee file.
    pub fn from_file(file: &CommitteeFile) -> Self {
        Self {
            digest: file.digest(),
            keys: file.public_keys().coin,
        }
    }

    /// Reads a committee file.
    pub fn load(path: &Path) -> Result<Self, beat_config::CommitteeError> {
        Ok(Self::from_file(&CommitteeFile::load(path)?))
    }
}

/// Why a served batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The API message is malformed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The replica sent no certificate.
    #[error("epoch {0}: no commit certificate")]
    Uncertified(Epoch),
    /// The replica skipped or repeated an epoch.
    #[error("expected epoch {expected}, the replica sent epoch {got}")]
    OutOfOrder {
        /// The epoch expected next.
        expected: Epoch,
        /// The epoch sent.
        got: Epoch,
    },
    /// The certificate does not certify the batch.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

fn malformed(what: &'static str, reason: impl Into<String>) -> VerifyError {
    VerifyError::Malformed {
        what,
        reason: reason.into(),
    }
}

fn digest(bytes: &[u8], what: &'static str) -> Result<Digest, VerifyError> {
    <[u8; 32]>::try_from(bytes)
        .map(Digest)
        .map_err(|_| malformed(what, format!("{} bytes, not 32", bytes.len())))
}

/// The batch an API message describes (its digest is then [`Batch::digest`]); the message's own
/// `digest` field is ignored.
pub fn batch_from_proto(b: &pb::Batch) -> Result<Batch, VerifyError> {
    let mut contributions = Vec::with_capacity(b.contributions.len());
    for c in &b.contributions {
        let content = match &c.content {
            Some(pb::contribution::Content::Transactions(list)) => Content::Transactions(
                list.transactions
                    .iter()
                    .map(|t| Transaction::new(t.to_vec()))
                    .collect(),
            ),
            Some(pb::contribution::Content::Rejected(code)) => Content::Rejected(
                u32::try_from(*code)
                    .ok()
                    .and_then(FaultKind::from_reject_code)
                    .ok_or_else(|| malformed("batch", format!("unknown reject reason {code}")))?,
            ),
            Some(pb::contribution::Content::Stored(s)) => Content::Stored(StoredCommitment {
                commitment: digest(&s.commitment, "stored commitment")?,
                payload_len: s.payload_len,
            }),
            None => return Err(malformed("batch", "a contribution without content")),
        };
        contributions.push(Contribution {
            proposer: NodeId(c.proposer),
            content,
        });
    }
    Ok(Batch {
        epoch: Epoch(b.epoch),
        contributions,
        ordered_labels: b
            .ordered_labels
            .iter()
            .map(|l| digest(l, "ordered label"))
            .collect::<Result<_, _>>()?,
    })
}

/// The certificate an API message carries.
pub fn certificate_from_proto(c: &pb::CommitCertificate) -> Result<CommitCertificate, VerifyError> {
    let signature = <[u8; bls::Signature::LEN]>::try_from(c.signature.as_ref())
        .ok()
        .and_then(|b| bls::Signature::from_bytes(&b).ok())
        .ok_or_else(|| malformed("certificate", "the signature is not a G1 point"))?;
    Ok(CommitCertificate {
        statement: CommitStatement {
            committee: digest(&c.committee_digest, "committee digest")?,
            epoch: Epoch(c.epoch),
            batch: digest(&c.batch_digest, "batch digest")?,
            previous: digest(&c.previous, "previous link")?,
        },
        signature,
    })
}

/// A batch that passed verification.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Its epoch.
    pub epoch: Epoch,
    /// The batch, decoded.
    pub batch: Batch,
    /// The epoch's chain link: it names the whole history up to this epoch.
    pub link: Digest,
}

/// Verifies a stream of certified batches, in epoch order, each continuing the last.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    committee: CommitteeInfo,
    /// The next epoch and the link it must continue; `None` before the first batch of a
    /// verifier that starts mid-history.
    expected: Option<(Epoch, Digest)>,
}

impl ChainVerifier {
    /// Verifies from epoch 0.
    pub fn from_genesis(committee: CommitteeInfo) -> Self {
        let genesis = CommitStatement::genesis(committee.digest);
        Self {
            committee,
            expected: Some((Epoch::ZERO, genesis)),
        }
    }

    /// Verifies from wherever the first batch is: its certificate vouches for the history
    /// before it, which this verifier does not see.
    pub fn from_anywhere(committee: CommitteeInfo) -> Self {
        Self {
            committee,
            expected: None,
        }
    }

    /// Resumes after a verified epoch whose link is known (a client restarting from where it
    /// stopped).
    pub fn resume(committee: CommitteeInfo, last: Epoch, link: Digest) -> Self {
        Self {
            committee,
            expected: Some((last.next(), link)),
        }
    }

    /// The next epoch expected, if fixed.
    pub fn next_epoch(&self) -> Option<Epoch> {
        self.expected.map(|(e, _)| e)
    }

    /// Accepts the next batch without a certificate, as the chain's next link: the next
    /// certificate then vouches for it too (its `previous` covers this batch). For a store's
    /// last epochs, committed but not certified yet. Returns the link.
    pub fn extend_uncertified(&mut self, batch: &Batch) -> Result<Digest, VerifyError> {
        let Some((next, previous)) = self.expected else {
            return Err(VerifyError::Uncertified(batch.epoch));
        };
        if batch.epoch != next {
            return Err(VerifyError::OutOfOrder {
                expected: next,
                got: batch.epoch,
            });
        }
        let link = CommitStatement::new(self.committee.digest, batch, previous).link();
        self.expected = Some((next.next(), link));
        Ok(link)
    }

    /// Verifies the next batch and its certificate.
    pub fn verify(
        &mut self,
        batch: &pb::Batch,
        certificate: &pb::CommitCertificate,
    ) -> Result<Verified, VerifyError> {
        let batch = batch_from_proto(batch)?;
        let certificate = certificate_from_proto(certificate)?;
        self.verify_decoded(batch, &certificate)
    }

    /// [`Self::verify`] on decoded values.
    pub fn verify_decoded(
        &mut self,
        batch: Batch,
        certificate: &CommitCertificate,
    ) -> Result<Verified, VerifyError> {
        let previous = match self.expected {
            Some((next, link)) => {
                if batch.epoch != next {
                    return Err(VerifyError::OutOfOrder {
                        expected: next,
                        got: batch.epoch,
                    });
                }
                Some(link)
            }
            None => None,
        };
        let link = certificate.verify_batch(
            self.committee.digest,
            &self.committee.keys,
            &batch,
            previous,
        )?;
        let epoch = batch.epoch;
        self.expected = Some((epoch.next(), link));
        Ok(Verified { epoch, batch, link })
    }
}

#[cfg(test)]
pub(crate) mod tests;
