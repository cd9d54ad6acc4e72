//! The signer actors: a `SyncArbiter` pool performing CPU-bound secret-key operations off the
//! I/O threads. Each handler forwards to the [`Keystore`] component.

use std::sync::Arc;

use actix::{Actor, Handler, Message, SyncContext};
use beat_core::{CoinId, CommitCertificate, CommitStatement, signing::PolicyError};
use beat_crypto::{bls::SignatureShare, identity::IdentitySignature, tdh2::DecryptionShare};
use beat_types::{Epoch, NodeId};
use bytes::Bytes;

use crate::component::{Keystore, Refusal, Sealed};

/// Holds a shared reference to the keystore on one pool thread.
pub struct SignerActor {
    /// The keystore.
    pub keystore: Arc<Keystore>,
}

impl Actor for SignerActor {
    type Context = SyncContext<Self>;
}

/// Sign coin names.
#[derive(Message)]
#[rtype(result = "Vec<SignatureShare>")]
pub struct SignCoins(pub Vec<CoinId>);

impl Handler<SignCoins> for SignerActor {
    type Result = Vec<SignatureShare>;

    fn handle(&mut self, msg: SignCoins, _: &mut SyncContext<Self>) -> Self::Result {
        self.keystore.coin_shares(&msg.0)
    }
}

/// Sign commit statements.
#[derive(Message)]
#[rtype(result = "Result<Vec<SignatureShare>, Refusal>")]
pub struct SignCommits(pub Vec<CommitStatement>);

impl Handler<SignCommits> for SignerActor {
    type Result = Result<Vec<SignatureShare>, Refusal>;

    fn handle(&mut self, msg: SignCommits, _: &mut SyncContext<Self>) -> Self::Result {
        self.keystore.commit_shares(&msg.0)
    }
}

/// One ciphertext to share: proposer, the ciphertext or its header, expected label.
pub type ShareItem = (NodeId, SealedBytes, Bytes);

/// A ciphertext as the request carried it (owned [`Sealed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealedBytes {
    /// The whole ciphertext.
    Whole(Bytes),
    /// Its header.
    Header(Bytes),
    /// The item set neither or both; refused.
    Ambiguous,
}

/// Produce decryption shares for items of one epoch.
#[derive(Message)]
#[rtype(result = "Vec<Result<DecryptionShare, Refusal>>")]
pub struct ShareDecryption {
    /// Epoch.
    pub epoch: Epoch,
    /// Items.
    pub items: Vec<ShareItem>,
}

impl Handler<ShareDecryption> for SignerActor {
    type Result = Vec<Result<DecryptionShare, Refusal>>;

    fn handle(&mut self, msg: ShareDecryption, _: &mut SyncContext<Self>) -> Self::Result {
        msg.items
            .iter()
            .map(|(proposer, ct, label)| {
                let sealed = match ct {
                    SealedBytes::Whole(b) => Sealed::Whole(b),
                    SealedBytes::Header(b) => Sealed::Header(b),
                    SealedBytes::Ambiguous => {
                        return Err(Refusal::Malformed(
                            "exactly one of ciphertext and ciphertext_header must be set"
                                .to_owned(),
                        ));
                    }
                };
                self.keystore
                    .decryption_share(msg.epoch, *proposer, sealed, label)
            })
            .collect()
    }
}

/// Check a presented commit certificate (one pairing check, off the I/O threads).
#[derive(Message)]
#[rtype(result = "Result<(), PolicyError>")]
pub struct CheckCertificate(pub CommitCertificate);

impl Handler<CheckCertificate> for SignerActor {
    type Result = Result<(), PolicyError>;

    fn handle(&mut self, msg: CheckCertificate, _: &mut SyncContext<Self>) -> Self::Result {
        self.keystore.check_certificate(&msg.0)
    }
}

/// Sign a handshake transcript.
#[derive(Message)]
#[rtype(result = "Result<IdentitySignature, Refusal>")]
pub struct SignHandshake {
    /// Context.
    pub context: String,
    /// Transcript digest.
    pub transcript: Bytes,
}

impl Handler<SignHandshake> for SignerActor {
    type Result = Result<IdentitySignature, Refusal>;

    fn handle(&mut self, msg: SignHandshake, _: &mut SyncContext<Self>) -> Self::Result {
        self.keystore.sign_handshake(&msg.context, &msg.transcript)
    }
}
