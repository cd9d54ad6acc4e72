//! The handshake (`beat.wire.v2`): a SIGMA-style authenticated key exchange.
//!
//! 1. The initiator sends Hello: version, replica index, committee digest, a 32-byte nonce, its
//!    gateway incarnation and a fresh X25519 ephemeral public key.
//! 2. The responder checks it (version, committee, a known index that is not its own) and
//!    answers with its own Hello. Before this it has sent nothing and asked the keystore for
//!    nothing, and it waits at most the hello deadline for the initiator's Hello.
//! 3. The initiator checks the responder's Hello (it must be the replica dialled) and proves
//!    first: Proof is the Ed25519 identity signature (context [`HANDSHAKE_CONTEXT`]) over
//!    SHA-256 of `u64be(len(I)) ‖ I ‖ u64be(len(R)) ‖ R ‖ role`, where `I` and `R` are the two
//!    Hello frames exactly as they crossed the wire and `role` is the signer's role (0
//!    initiator, 1 responder).
//! 4. The responder verifies it under the claimed replica's committee key, and only then has
//!    its own keystore sign the same transcript with role 1 and sends that Proof; the
//!    initiator verifies it.
//!
//! Both sides then derive the per-direction record keys from the X25519 shared secret and the
//! transcript hash ([`super::record`]); every later frame is a sealed record.
//!
//! Why this is enough (the SIGMA argument, signature variant as in ISO/IEC 9798-3): each
//! signature covers both ephemeral keys, so a party that signs commits to the one key exchange
//! it took part in; it covers both replica indices, so a proof cannot be misbound to another
//! peer; fresh nonces and ephemerals make every transcript unique, so a proof never verifies on
//! another connection; the role byte keeps a proof from being reflected to its signer. An
//! attacker who relays Hellos and Proofs unchanged between two honest gateways learns no key
//! and can only pass sealed records along or drop them. A responder signs nothing for a
//! stranger, so a port scanner cannot make the keystore sign (or make the responder call it).
//! A shared secret of all zeros (an ephemeral key of small order) is refused.
//!
//! A committee member that proves its identity again and again gets at most a small budget of
//! answers per second ([`ResponderBudget`]): otherwise one Byzantine peer could spend this
//! replica's keystore signatures at will and, through the keystore's own rate limit that all
//! peers share, keep honest peers' links from forming.

use std::{sync::Arc, time::Duration};

use beat_crypto::{
    Digest,
    identity::{IdentityPublicKey, IdentitySignature},
};
use beat_proto::wire::v2::{Hello, PeerFrame, Proof, peer_frame::Kind};
use beat_telemetry::limit::TokenBucket;
use beat_types::NodeId;
use bytes::Bytes;
use futures::SinkExt;
use sha2::{Digest as _, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey};

use super::{
    codec::{self, FrameError, FrameReader, FrameWriter},
    record::{RecordReader, RecordWriter, SessionKeys},
};
use crate::signer::{HANDSHAKE_CONTEXT, Signer, SignerError};

/// The link protocol version this gateway speaks.
pub const VERSION: u32 = 2;

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

/// The per-connection secrets of one handshake: the Hello nonce and the ephemeral key.
pub struct Secrets {
    /// The Hello nonce.
    pub nonce: [u8; 32],
    /// The X25519 ephemeral secret (wiped when dropped).
    pub ephemeral: EphemeralSecret,
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
    /// How many handshakes each peer gets answered (signed, as responder).
    pub responder_budget: Arc<ResponderBudget>,
}

/// Per-peer token buckets for the responder's signatures (step 4).
#[derive(Debug)]
pub struct ResponderBudget {
    rate: u32,
    burst: u32,
    peers: parking_lot::Mutex<std::collections::HashMap<NodeId, TokenBucket>>,
}

impl ResponderBudget {
    /// `burst` answers at once per peer, then `rate` per second.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate,
            burst,
            peers: parking_lot::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Takes one answer from `peer`'s budget (peers are committee members: the map holds at
    /// most n entries).
    pub fn allow(&self, peer: NodeId) -> bool {
        self.peers
            .lock()
            .entry(peer)
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst))
            .try_take()
    }
}

impl Default for ResponderBudget {
    /// 30 at once, then 2 per second: an honest peer re-forms its links (three transports)
    /// after a restart or a network change, far below that.
    fn default() -> Self {
        Self::new(2, 30)
    }
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
    /// The peer's ephemeral key gives an all-zero shared secret (a small-order point).
    #[error("peer's ephemeral key is not contributory")]
    WeakEphemeral,
    /// The peer's first frame did not arrive within the hello deadline.
    #[error("no Hello within {0:?}")]
    HelloTimeout(Duration),
    /// The peer proved its identity, but used up its budget of answered handshakes.
    #[error("replica {0} used up its handshake budget")]
    Budget(NodeId),
    /// Refused before the handshake: too many handshakes pending (from this source, or on
    /// this transport), or evicted for a newer one.
    #[error("refused at admission: {0}")]
    Admission(&'static str),
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
            Self::WeakEphemeral => "weak_ephemeral",
            Self::HelloTimeout(_) => "hello_timeout",
            Self::Admission(why) => why,
            Self::Budget(_) => "responder_budget",
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

/// SHA-256 of both Hellos, each length-prefixed: the HKDF salt of the record keys.
pub fn transcript_hash(initiator_hello: &[u8], responder_hello: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for hello in [initiator_hello, responder_hello] {
        h.update((hello.len() as u64).to_be_bytes());
        h.update(hello);
    }
    h.finalize().into()
}

/// An authenticated connection: the proven peer and the sealed record channel to it.
pub struct Session {
    /// The peer, proven by its signature.
    pub peer: PeerHello,
    /// Records in.
    pub reader: RecordReader,
    /// Records out.
    pub writer: RecordWriter,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Runs the handshake on a fresh connection (framed with the handshake frame limit). The
/// peer's first frame must arrive within `hello_timeout`; the caller bounds the whole.
pub async fn handshake(
    mut reader: FrameReader,
    mut writer: FrameWriter,
    local: &LocalIdentity,
    role: Role,
    secrets: Secrets,
    hello_timeout: Duration,
) -> Result<Session, HandshakeError> {
    let Secrets { nonce, ephemeral } = secrets;
    let ours = codec::encode(&PeerFrame {
        kind: Some(Kind::Hello(Hello {
            version: VERSION,
            replica: local.me.0,
            committee_digest: Bytes::copy_from_slice(local.committee_digest.as_bytes()),
            nonce: Bytes::copy_from_slice(&nonce),
            incarnation: local.incarnation,
            ephemeral: Bytes::copy_from_slice(PublicKey::from(&ephemeral).as_bytes()),
        })),
    });
    // Step 1 (initiator): Hello first. A responder stays silent until the initiator's Hello.
    if let Role::Initiator { .. } = role {
        writer
            .send(ours.clone())
            .await
            .map_err(HandshakeError::Io)?;
    }
    let theirs = tokio::time::timeout(hello_timeout, codec::next_raw(&mut reader))
        .await
        .map_err(|_| HandshakeError::HelloTimeout(hello_timeout))??
        .freeze();
    let Some(Kind::Hello(hello)) = codec::decode(theirs.clone())?.kind else {
        return Err(HandshakeError::Malformed("expected Hello"));
    };
    let (peer, their_ephemeral) = check_hello(&hello, local, role)?;
    let shared = ephemeral.diffie_hellman(&their_ephemeral);
    if !shared.was_contributory() {
        return Err(HandshakeError::WeakEphemeral);
    }
    // Step 2 (responder): answer with our Hello.
    if role == Role::Responder {
        writer
            .send(ours.clone())
            .await
            .map_err(HandshakeError::Io)?;
    }
    let (initiator, responder) = match role {
        Role::Initiator { .. } => (&ours, &theirs),
        Role::Responder => (&theirs, &ours),
    };
    match role {
        // Step 3: the initiator proves first, then checks the responder's proof (step 4).
        Role::Initiator { .. } => {
            send_proof(&mut writer, local, initiator, responder, role).await?;
            verify_proof(&mut reader, local, peer.replica, initiator, responder, role).await?;
        }
        // Step 4: the responder signs only for a peer that has proven its identity.
        Role::Responder => {
            verify_proof(&mut reader, local, peer.replica, initiator, responder, role).await?;
            if !local.responder_budget.allow(peer.replica) {
                return Err(HandshakeError::Budget(peer.replica));
            }
            send_proof(&mut writer, local, initiator, responder, role).await?;
        }
    }
    let keys = SessionKeys::derive(
        shared.as_bytes(),
        &transcript_hash(initiator, responder),
        role != Role::Responder,
    );
    let (reader, writer) = keys.seal(reader, writer);
    Ok(Session {
        peer,
        reader,
        writer,
    })
}

async fn send_proof(
    writer: &mut FrameWriter,
    local: &LocalIdentity,
    initiator: &[u8],
    responder: &[u8],
    role: Role,
) -> Result<(), HandshakeError> {
    let signature = local
        .signer
        .sign_handshake(transcript(initiator, responder, role.byte()))
        .await?;
    let proof = codec::encode(&PeerFrame {
        kind: Some(Kind::Proof(Proof {
            signature: Bytes::copy_from_slice(signature.as_bytes()),
        })),
    });
    writer.send(proof).await.map_err(HandshakeError::Io)
}

async fn verify_proof(
    reader: &mut FrameReader,
    local: &LocalIdentity,
    peer: NodeId,
    initiator: &[u8],
    responder: &[u8],
    role: Role,
) -> Result<(), HandshakeError> {
    let Some(Kind::Proof(proof)) = codec::decode(codec::next_raw(reader).await?.freeze())?.kind
    else {
        return Err(HandshakeError::Malformed("expected Proof"));
    };
    let bytes: &[u8; 64] = proof
        .signature
        .as_ref()
        .try_into()
        .map_err(|_| HandshakeError::Malformed("signature is not 64 bytes"))?;
    let signature =
        IdentitySignature::from_bytes(bytes).map_err(|_| HandshakeError::Signature(peer))?;
    let their_role = 1 - role.byte();
    local.identities[peer.index()]
        .verify(
            HANDSHAKE_CONTEXT.as_bytes(),
            &transcript(initiator, responder, their_role),
            &signature,
        )
        .map_err(|_| HandshakeError::Signature(peer))
}

fn check_hello(
    hello: &Hello,
    local: &LocalIdentity,
    role: Role,
) -> Result<(PeerHello, PublicKey), HandshakeError> {
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
    let ephemeral: [u8; 32] = hello
        .ephemeral
        .as_ref()
        .try_into()
        .map_err(|_| HandshakeError::Malformed("ephemeral key is not 32 bytes"))?;
    Ok((
        PeerHello {
            replica: NodeId(hello.replica),
            incarnation: hello.incarnation,
        },
        PublicKey::from(ephemeral),
    ))
}
