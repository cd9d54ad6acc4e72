//! The keystore component: the replica's secrets and the operations on them. Synchronous,
//! testable without actix or sockets.

use std::sync::Arc;

use beat_core::{
    CoinId, CommitCertificate, CommitStatement, Params,
    client::is_client_label,
    signing::{self, PolicyError, SigningPolicy},
};
use beat_crypto::{
    Digest,
    bls::SignatureShare,
    dealer::{CommitteeKeys, ReplicaSecrets},
    identity::{IdentityPublicKey, IdentitySignature},
    tdh2::{self, Ciphertext, CiphertextHeader, DecryptionShare},
};
use beat_types::{Epoch, NodeId};

/// A ciphertext as a decryption-share request carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sealed<'a> {
    /// The whole ciphertext, in its canonical encoding (requests from consensus services that
    /// predate headers).
    Whole(&'a [u8]),
    /// The ciphertext's header ([`CiphertextHeader`]): what consensus sends, and all the
    /// keystore needs.
    Header(&'a [u8]),
}

/// The only context the identity key signs in.
pub const HANDSHAKE_CONTEXT: &str = "beat/peer-handshake/v2";

/// Why an operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The ciphertext does not parse.
    #[error("malformed ciphertext: {0}")]
    Malformed(String),
    /// The ciphertext does not verify or does not carry the expected label.
    #[error("ciphertext rejected: {0}")]
    Rejected(tdh2::Tdh2Error),
    /// The expected label is neither the (epoch, proposer) label nor a client label.
    #[error(
        "label is neither the label of (epoch {epoch}, proposer {proposer}) nor a client label"
    )]
    UnexpectedLabel {
        /// Epoch.
        epoch: Epoch,
        /// Proposer.
        proposer: NodeId,
    },
    /// The handshake context is not the peer-handshake context.
    #[error("signing context {0:?} is not allowed")]
    Context(String),
    /// A commit statement names another committee.
    #[error("the statement of epoch {epoch} names committee {found}, this keystore's is {ours}")]
    Committee {
        /// The statement's epoch.
        epoch: Epoch,
        /// The committee it names.
        found: Digest,
        /// This keystore's.
        ours: Digest,
    },
}

/// One replica's secret keys and the public description they belong to.
pub struct Keystore {
    secrets: ReplicaSecrets,
    keys: Arc<CommitteeKeys>,
    committee_digest: Digest,
    signing_window: u64,
}

impl Keystore {
    /// Wraps secrets after checking that they are `replica`'s secrets of `keys`.
    pub fn new(
        secrets: ReplicaSecrets,
        keys: Arc<CommitteeKeys>,
        committee_digest: Digest,
        replica: NodeId,
    ) -> Result<Self, String> {
        if secrets.node != replica {
            return Err(format!(
                "the keystore file holds the keys of replica {}, configured as replica {replica}",
                secrets.node
            ));
        }
        secrets.check_against(&keys).map_err(|e| e.to_string())?;
        Ok(Self {
            secrets,
            keys,
            committee_digest,
            signing_window: SigningPolicy::for_params(&Params::default(), committee_digest)
                .window(),
        })
    }

    /// Takes the signing window from the committee's parameters (module
    /// [`beat_core::signing`]): `certify_window + 1`.
    #[must_use]
    pub fn with_params(mut self, params: &Params) -> Self {
        self.signing_window = SigningPolicy::for_params(params, self.committee_digest).window();
        self
    }

    /// A fresh signing horizon for this keystore's committee and window.
    pub fn signing_policy(&self) -> SigningPolicy {
        SigningPolicy::new(self.signing_window, self.committee_digest)
    }

    /// Checks that a presented certificate is this committee's (one pairing check).
    pub fn check_certificate(&self, certificate: &CommitCertificate) -> Result<(), PolicyError> {
        signing::check_certificate(self.committee_digest, &self.keys.coin, certificate)
    }

    /// This replica.
    pub fn replica(&self) -> NodeId {
        self.secrets.node
    }

    /// The identity public key.
    pub fn identity(&self) -> IdentityPublicKey {
        self.secrets.identity.public()
    }

    /// The committee digest.
    pub fn committee_digest(&self) -> Digest {
        self.committee_digest
    }

    /// Signs coin names.
    pub fn coin_shares(&self, coins: &[CoinId]) -> Vec<SignatureShare> {
        coins
            .iter()
            .map(|id| self.secrets.coin.sign(&id.message()))
            .collect()
    }

    /// Signs commit statements (module [`beat_core::certificate`]) under the commit
    /// hash-to-curve tag, refusing the whole request if one names another committee: a
    /// certificate this key helps form is only ever one of its own committee.
    pub fn commit_shares(
        &self,
        statements: &[CommitStatement],
    ) -> Result<Vec<SignatureShare>, Refusal> {
        if let Some(s) = statements
            .iter()
            .find(|s| s.committee != self.committee_digest)
        {
            return Err(Refusal::Committee {
                epoch: s.epoch,
                found: s.committee,
                ours: self.committee_digest,
            });
        }
        Ok(statements
            .iter()
            .map(|s| self.secrets.coin.sign(&s.message()))
            .collect())
    }

    /// Produces a decryption share, or refuses: the ciphertext (or its header) must parse, carry
    /// the expected label, verify, and the expected label must be the label of
    /// `(epoch, proposer)` or a well-formed BEAT2 client label (prefix, valid client key,
    /// request id; [`beat_core::client`]) — so a compromised consensus process cannot obtain a
    /// share for an arbitrary label either. The keystore sees the ciphertext's header, not the
    /// client's envelope: the client's signature is consensus's to check, at admission and
    /// again at E3.
    ///
    /// A header gives a compromised consensus nothing a whole ciphertext would not: its
    /// validity proof binds the body's digest, so only a header of a ciphertext someone
    /// actually encrypted verifies, and the share is the share of that ciphertext
    /// ([`CiphertextHeader`]).
    pub fn decryption_share(
        &self,
        epoch: Epoch,
        proposer: NodeId,
        ciphertext: Sealed<'_>,
        expected_label: &[u8],
    ) -> Result<DecryptionShare, Refusal> {
        let own_label = beat_core::codec::epoch_label(epoch, proposer);
        if expected_label != own_label.as_slice() && !is_client_label(expected_label) {
            return Err(Refusal::UnexpectedLabel { epoch, proposer });
        }
        let header = match ciphertext {
            Sealed::Whole(bytes) => Ciphertext::from_bytes(bytes).map(|ct| ct.header()),
            Sealed::Header(bytes) => CiphertextHeader::from_bytes(bytes),
        }
        .map_err(|e| Refusal::Malformed(e.to_string()))?;
        self.secrets
            .decryption
            .header_decryption_share(&self.keys.encryption, &header, expected_label)
            .map_err(Refusal::Rejected)
    }

    /// Signs a handshake transcript.
    pub fn sign_handshake(
        &self,
        context: &str,
        transcript: &[u8],
    ) -> Result<IdentitySignature, Refusal> {
        if context != HANDSHAKE_CONTEXT {
            return Err(Refusal::Context(context.to_owned()));
        }
        Ok(self.secrets.identity.sign(context.as_bytes(), transcript))
    }
}
