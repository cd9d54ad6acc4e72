//! Commit certificates: a committee signature on each committed epoch, verifiable offline.
//!
//! # Algorithm
//!
//! After committing epoch `e` with batch `B`, a replica forms the **statement**
//!
//! ```text
//! S_e = (committee digest, e, digest(B), L_{e-1})        L_{-1} = H(GENESIS, committee digest)
//! L_e = H(STATEMENT, committee digest, e, digest(B), L_{e-1})
//! ```
//!
//! and asks its keystore for a threshold BLS share on `L_e` (hashed to G1 under
//! [`beat_crypto::dst::COMMIT_HASH_TO_G1`]), which it broadcasts. Any `f + 1` valid shares combine
//! into the unique BLS signature on `L_e` under the committee's group key: the **certificate**.
//! Since honest replicas sign only what they committed and at most `f` replicas are faulty, a
//! certificate proves that at least one honest replica — hence, by agreement, every honest
//! replica — committed `B` at `e` after the history `L_{e-1}` names. A client that holds only the
//! committee file (group key and digest) verifies one replica's answer without trusting it, and
//! one certificate on `L_e` vouches for the whole prefix `0..=e`: `L` is a hash chain.
//!
//! The chain is over batch digests, not over earlier certificates, so signing epoch `e` never
//! waits for the certificate of `e − 1`.
//!
//! # Deviation
//!
//! The BEAT paper has no commit certificates; this is the checkpoint certificate of PBFT
//! (Castro and Liskov, OSDI 1999, §4.3) in threshold form, including its watermark: a replica
//! commits at most `certify_window` epochs past its oldest uncertified one
//! ([`crate::Params::certify_window`]), which bounds what it keeps for certification and makes
//! every committed epoch certified at every honest replica (module `node::certify`).

use beat_crypto::{Digest, bls, dst, hash::Hasher};
use beat_types::Epoch;
use serde::{Deserialize, Serialize};

use crate::Batch;

/// What a commit certificate certifies: batch `batch` was committed at `epoch` by the committee
/// `committee`, after the history whose chain link is `previous`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitStatement {
    /// Digest of the committee file (keys and protocol parameters).
    pub committee: Digest,
    /// The epoch.
    pub epoch: Epoch,
    /// [`Batch::digest`] of the committed batch.
    pub batch: Digest,
    /// The chain link of epoch `epoch − 1` ([`Self::genesis`] for epoch 0).
    pub previous: Digest,
}

impl CommitStatement {
    /// The statement for `batch`, committed after the history ending in link `previous`.
    pub fn new(committee: Digest, batch: &Batch, previous: Digest) -> Self {
        Self {
            committee,
            epoch: batch.epoch,
            batch: batch.digest(),
            previous,
        }
    }

    /// The chain link before epoch 0.
    pub fn genesis(committee: Digest) -> Digest {
        let mut h = Hasher::new(dst::COMMIT_GENESIS);
        h.part(committee.as_bytes());
        h.finish()
    }

    /// This epoch's chain link `L_e`: what the certificate signs, and the `previous` of the next
    /// epoch's statement.
    pub fn link(&self) -> Digest {
        let mut h = Hasher::new(dst::COMMIT_STATEMENT);
        h.part(self.committee.as_bytes())
            .u64(self.epoch.0)
            .part(self.batch.as_bytes())
            .part(self.previous.as_bytes());
        h.finish()
    }

    /// The link hashed to G1: the message the threshold key signs.
    pub fn message(&self) -> bls::HashedMessage {
        bls::HashedMessage::new(dst::COMMIT_HASH_TO_G1, self.link().as_bytes())
    }
}

/// A commit certificate: the committee's threshold signature on a [`CommitStatement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCertificate {
    /// What is certified.
    pub statement: CommitStatement,
    /// The unique BLS signature on `statement.link()` under the committee's group key.
    pub signature: bls::Signature,
}

/// Why a certificate was refused by [`CommitCertificate::verify_batch`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The certificate names another committee.
    #[error("the certificate is for committee {found}, not {expected}")]
    WrongCommittee {
        /// The verifier's committee digest.
        expected: Digest,
        /// The certificate's.
        found: Digest,
    },
    /// The certificate is for another epoch than the batch.
    #[error("the certificate is for epoch {certified}, the batch is epoch {batch}")]
    WrongEpoch {
        /// The certificate's epoch.
        certified: Epoch,
        /// The batch's epoch.
        batch: Epoch,
    },
    /// The batch's digest is not the certified one: the batch was altered.
    #[error("epoch {epoch}: the batch digest {batch} is not the certified {certified}")]
    WrongBatch {
        /// The epoch.
        epoch: Epoch,
        /// The certified digest.
        certified: Digest,
        /// The batch's.
        batch: Digest,
    },
    /// The certificate does not continue the history the verifier holds.
    #[error("epoch {epoch}: the certificate continues history {certified}, not {expected}")]
    WrongHistory {
        /// The epoch.
        epoch: Epoch,
        /// The verifier's chain link of the previous epoch.
        expected: Digest,
        /// The certificate's.
        certified: Digest,
    },
    /// The signature is not the committee's.
    #[error("epoch {0}: the signature is not the committee's")]
    BadSignature(Epoch),
}

impl CommitCertificate {
    /// Checks the signature against the committee's group key (one pairing check).
    pub fn verify_signature(&self, keys: &bls::PublicKeySet) -> bool {
        keys.verify(&self.statement.message(), &self.signature)
    }

    /// Checks that this certifies `batch` under `committee` and `keys`; if `previous` is given,
    /// also that it continues that history. Returns the epoch's chain link.
    pub fn verify_batch(
        &self,
        committee: Digest,
        keys: &bls::PublicKeySet,
        batch: &Batch,
        previous: Option<Digest>,
    ) -> Result<Digest, CertificateError> {
        let s = &self.statement;
        if s.committee != committee {
            return Err(CertificateError::WrongCommittee {
                expected: committee,
                found: s.committee,
            });
        }
        if s.epoch != batch.epoch {
            return Err(CertificateError::WrongEpoch {
                certified: s.epoch,
                batch: batch.epoch,
            });
        }
        let digest = batch.digest();
        if s.batch != digest {
            return Err(CertificateError::WrongBatch {
                epoch: s.epoch,
                certified: s.batch,
                batch: digest,
            });
        }
        if let Some(expected) = previous
            && expected != s.previous
        {
            return Err(CertificateError::WrongHistory {
                epoch: s.epoch,
                expected,
                certified: s.previous,
            });
        }
        if !self.verify_signature(keys) {
            return Err(CertificateError::BadSignature(s.epoch));
        }
        Ok(s.link())
    }
}

/// A committed batch with its certificate once the replica holds one (what storage serves and
/// catch-up carries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedBatch {
    /// The batch.
    pub batch: Batch,
    /// Its certificate, if this replica had certified the epoch when it read the batch.
    pub certificate: Option<CommitCertificate>,
}

impl From<Batch> for CommittedBatch {
    fn from(batch: Batch) -> Self {
        Self {
            batch,
            certificate: None,
        }
    }
}
