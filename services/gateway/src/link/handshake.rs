//! The mutual handshake (`beat.wire.v1` Hello and Proof).
//!
//! Both sides send Hello at once, check the other's, then send Proof: the identity signature
//! over SHA-256 of `u64be(len(I)) ‖ I ‖ u64be(len(R)) ‖ R ‖ role`, where `I` and `R` are the
//! initiator's and responder's Hello frames exactly as they crossed the wire and `role` is the
//! signer's role (0 initiator, 1 responder). Fresh nonces make every transcript unique, so a
//! proof cannot be replayed on another connection, and the role byte keeps a proof from being
//! reflected back to its signer.

use std::sync::Arc;

use beat_crypto::{
    Digest,
    identity::{IdentityPublicKey, IdentitySignature},
};
use beat_proto::wire::v1::{Hello, PeerFrame, Proof, peer_frame::Kind};
use beat_types::NodeId;
use bytes::Bytes;
use futures::SinkExt;
use sha2::{Digest as _, Sha256};

use super::codec::{self, FrameError, FrameReader, FrameWriter};
use crate::signer::{HANDSHAKE_CONTEXT, Signer, SignerError};

/// The link protocol version this gateway speaks.
pub const VERSION: u32 = 1;

/// Which side of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// This side dialled `expected`.
    Initiator {
        /// The replica whose endpoint was dialled.
        expected: NodeId,
    },
    /// This side accepted the connection.
    Responder,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Self::Initiator { .. } => 0,
            Self::Responder => 1,
        }
    }
}

/// This replica as the handshake presents it.
pub struct LocalIdentity {
    /// This replica.
    pub me: NodeId,
    /// This gateway process's incarnation.
    pub incarnation: u64,
    /// The committee digest.
    pub committee_digest: Digest,
    /// Every replica's identity key, by index.
    pub identities: Vec<IdentityPublicKey>,
    /// Signs this side's proof.
    pub signer: Arc<dyn Signer>,
}

/// The authenticated peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHello {
    /// Its replica index, proven by its signature.
    pub replica: NodeId,
    /// Its gateway's incarnation.
    pub incarnation: u64,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Reading a frame failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Writing failed.
    #[error("connection error: {0}")]
    Io(std::io::Error),
    /// The peer sent something other than the expected message, or a malformed one.
    #[error("malformed handshake: {0}")]
    Malformed(&'static str),
    /// The peer speaks another protocol version.
    #[error("peer speaks link protocol version {0}, this gateway {VERSION}")]
    Version(u32),
    /// The peer runs with another committee.
    #[error("peer runs with another committee")]
    Committee,
    /// The peer claims an index outside the committee.
    #[error("peer claims replica {0}, which is not in the committee")]
    UnknownReplica(u32),
    /// The peer claims to be this replica (a connection to ourselves).
    #[error("peer claims to be this replica")]
    SelfConnection,
    /// The dialled peer claims to be another replica.
    #[error("dialled replica {expected} but the peer claims replica {claimed}")]
    WrongReplica {
        /// Dialled.
        expected: NodeId,
        /// Claimed.
        claimed: u32,
    },
    /// The proof does not verify under the claimed replica's identity key.
    #[error("peer's proof does not verify for replica {0}")]
    Signature(NodeId),
    /// This side could not sign.
    #[error("cannot sign the handshake: {0}")]
    Signer(#[from] SignerError),
    /// The handshake took too long.
    #[error("handshake timed out")]
    Timeout,
    /// The peer's incarnation was replaced by a newer one.
    #[error("peer incarnation {0} was replaced by a newer one")]
    StaleIncarnation(u64),
}

impl HandshakeError {
    /// The metric label (`beat_gateway_handshake_failures_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Frame(e) => e.reason(),
            Self::Io(_) => "io",
            Self::Malformed(_) => "malformed",
            Self::Version(_) => "version",
            Self::Committee => "committee",
            Self::UnknownReplica(_) => "unknown_replica",
            Self::SelfConnection => "self_connection",
            Self::WrongReplica { .. } => "wrong_replica",
            Self::Signature(_) => "signature",
            Self::Signer(_) => "signer",
            Self::Timeout => "timeout",
            Self::StaleIncarnation(_) => "stale_incarnation",
        }
    }
}

/// The digest a proof signs.
pub fn transcript(initiator_hello: &[u8], responder_hello: &[u8], role: u8) -> [u8; 32] {
    let mut h = Sha256::new();
    for hello in [initiator_hello, responder_hello] {
        h.update((hello.len() as u64).to_be_bytes());
        h.update(hello);
    }
    h.update([role]);
    h.finalize().into()
}

/// Runs the handshake on a fresh connection. The caller bounds it in time.
pub async fn handshake(
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
    local: &LocalIdentity,
    role: Role,
    nonce: [u8; 32],
) -> Result<PeerHello, HandshakeError> {
    let ours = codec::encode(&PeerFrame {
        kind: Some(Kind::Hello(Hello {
            version: VERSION,
            replica: local.me.0,
            committee_digest: Bytes::copy_from_slice(local.committee_digest.as_bytes()),
            nonce: Bytes::copy_from_slice(&nonce),
            incarnation: local.incarnation,
        })),
    });
    writer
        .send(ours.clone())
        .await
        .map_err(HandshakeError::Io)?;
    let theirs = codec::next_raw(reader).await?.freeze();
    let Some(Kind::Hello(hello)) = codec::decode(theirs.clone())?.kind else {
        return Err(HandshakeError::Malformed("expected Hello"));
    };
    let peer = check_hello(&hello, local, role)?;
    let (initiator, responder) = match role {
        Role::Initiator { .. } => (&ours, &theirs),
        Role::Responder => (&theirs, &ours),
    };
    let signature = local
        .signer
        .sign_handshake(transcript(initiator, responder, role.byte()))
        .await?;
    let proof = codec::encode(&PeerFrame {
        kind: Some(Kind::Proof(Proof {
            signature: Bytes::copy_from_slice(signature.as_bytes()),
        })),
    });
    writer.send(proof).await.map_err(HandshakeError::Io)?;
    let Some(Kind::Proof(proof)) = codec::decode(codec::next_raw(reader).await?.freeze())?.kind
    else {
        return Err(HandshakeError::Malformed("expected Proof"));
    };
    let bytes: &[u8; 64] = proof
        .signature
        .as_ref()
        .try_into()
        .map_err(|_| HandshakeError::Malformed("signature is not 64 bytes"))?;
    let signature = IdentitySignature::from_bytes(bytes)
        .map_err(|_| HandshakeError::Signature(peer.replica))?;
    let their_role = 1 - role.byte();
    local.identities[peer.replica.index()]
        .verify(
            HANDSHAKE_CONTEXT.as_bytes(),
            &transcript(initiator, responder, their_role),
            &signature,
        )
        .map_err(|_| HandshakeError::Signature(peer.replica))?;
    Ok(peer)
}

fn check_hello(
    hello: &Hello,
    local: &LocalIdentity,
    role: Role,
) -> Result<PeerHello, HandshakeError> {
    if hello.version != VERSION {
        return Err(HandshakeError::Version(hello.version));
    }
    if hello.committee_digest.as_ref() != local.committee_digest.as_bytes() {
        return Err(HandshakeError::Committee);
    }
    if hello.nonce.len() != 32 {
        return Err(HandshakeError::Malformed("nonce is not 32 bytes"));
    }
    if hello.replica as usize >= local.identities.len() {
        return Err(HandshakeError::UnknownReplica(hello.replica));
    }
    if hello.replica == local.me.0 {
        return Err(HandshakeError::SelfConnection);
    }
    if let Role::Initiator { expected } = role
        && hello.replica != expected.0
    {
        return Err(HandshakeError::WrongReplica {
            expected,
            claimed: hello.replica,
        });
    }
    Ok(PeerHello {
        replica: NodeId(hello.replica),
        incarnation: hello.incarnation,
    })
}
