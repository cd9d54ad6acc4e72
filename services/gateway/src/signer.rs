//! Handshake signatures. The gateway never holds the identity key: [`KeystoreSigner`] asks the
//! keystore service; [`InMemorySigner`] holds a key pair for tests and tools.

use std::time::Duration;

use beat_crypto::{
    Digest,
    identity::{IdentityKeypair, IdentityPublicKey, IdentitySignature},
};
use beat_proto::keystore::v1::{
    PublicKeysRequest, SignHandshakeRequest, keystore_service_client::KeystoreServiceClient,
};
use beat_types::NodeId;
use bytes::Bytes;
use futures::future::BoxFuture;
use tonic::transport::Channel;

/// The only context handshake transcripts are signed in.
pub const HANDSHAKE_CONTEXT: &str = "beat/peer-handshake/v2";

/// Why a signature or the public keys could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The keystore endpoint is not a valid URI.
    #[error("invalid keystore endpoint {endpoint}: {reason}")]
    Endpoint {
        /// The configured endpoint.
        endpoint: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The keystore call failed.
    #[error("keystore call failed: {0}")]
    Keystore(#[from] tonic::Status),
    /// The keystore answered with something that does not parse.
    #[error("keystore answer is malformed: {0}")]
    Malformed(&'static str),
}

/// What the signer says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerKeys {
    /// The replica whose identity key signs.
    pub replica: NodeId,
    /// That key's public half.
    pub identity: IdentityPublicKey,
    /// The committee the key belongs to.
    pub committee_digest: Digest,
}

/// Signs handshake transcripts with this replica's identity key.
pub trait Signer: Send + Sync + 'static {
    /// Signs a 32-byte transcript digest in [`HANDSHAKE_CONTEXT`].
    fn sign_handshake(
        &self,
        transcript: [u8; 32],
    ) -> BoxFuture<'_, Result<IdentitySignature, SignerError>>;

    /// The replica, identity and committee the signer holds a key for.
    fn public_keys(&self) -> BoxFuture<'_, Result<SignerKeys, SignerError>>;
}

// === impl KeystoreSigner ===

/// Signs through `beat.keystore.v1.KeystoreService/SignHandshake`.
#[derive(Clone, Debug)]
pub struct KeystoreSigner {
    client: KeystoreServiceClient<Channel>,
}

impl KeystoreSigner {
    /// Creates a client of the keystore at `endpoint`; it connects lazily, so the keystore may
    /// start later. Every call has the deadline `timeout`.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<Self, SignerError> {
        let channel =
            beat_telemetry::local::lazy_channel(endpoint, timeout, true).map_err(|e| {
                SignerError::Endpoint {
                    endpoint: e.endpoint,
                    reason: e.reason,
                }
            })?;
        Ok(Self {
            client: KeystoreServiceClient::new(channel),
        })
    }
}

impl Signer for KeystoreSigner {
    fn sign_handshake(
        &self,
        transcript: [u8; 32],
    ) -> BoxFuture<'_, Result<IdentitySignature, SignerError>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            let response = client
                .sign_handshake(SignHandshakeRequest {
                    context: HANDSHAKE_CONTEXT.to_owned(),
                    transcript: Bytes::copy_from_slice(&transcript),
                })
                .await?
                .into_inner();
            let bytes: &[u8; 64] = response
                .signature
                .as_ref()
                .try_into()
                .map_err(|_| SignerError::Malformed("signature is not 64 bytes"))?;
            IdentitySignature::from_bytes(bytes)
                .map_err(|_| SignerError::Malformed("signature is not canonical"))
        })
    }

    fn public_keys(&self) -> BoxFuture<'_, Result<SignerKeys, SignerError>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            let response = client.public_keys(PublicKeysRequest {}).await?.into_inner();
            let identity: &[u8; 32] = response
                .identity
                .as_ref()
                .try_into()
                .map_err(|_| SignerError::Malformed("identity is not 32 bytes"))?;
            let digest: [u8; 32] = response
                .committee_digest
                .as_ref()
                .try_into()
                .map_err(|_| SignerError::Malformed("committee digest is not 32 bytes"))?;
            Ok(SignerKeys {
                replica: NodeId(response.replica),
                identity: IdentityPublicKey::from_bytes(identity)
                    .map_err(|_| SignerError::Malformed("identity is not a valid key"))?,
                committee_digest: Digest(digest),
            })
        })
    }
}

// === impl InMemorySigner ===

/// Holds the identity key pair in memory. For tests and tools only: in a deployment the key
/// stays in the keystore.
#[derive(Debug)]
pub struct InMemorySigner {
    keypair: IdentityKeypair,
    replica: NodeId,
    committee_digest: Digest,
}

impl InMemorySigner {
    /// Wraps `keypair` as the identity of `replica` in the committee with `committee_digest`.
    pub fn new(keypair: IdentityKeypair, replica: NodeId, committee_digest: Digest) -> Self {
        Self {
            keypair,
            replica,
            committee_digest,
        }
    }
}

impl Signer for InMemorySigner {
    fn sign_handshake(
        &self,
        transcript: [u8; 32],
    ) -> BoxFuture<'_, Result<IdentitySignature, SignerError>> {
        let signature = self.keypair.sign(HANDSHAKE_CONTEXT.as_bytes(), &transcript);
        Box::pin(std::future::ready(Ok(signature)))
    }

    fn public_keys(&self) -> BoxFuture<'_, Result<SignerKeys, SignerError>> {
        Box::pin(std::future::ready(Ok(SignerKeys {
            replica: self.replica,
            identity: self.keypair.public(),
            committee_digest: self.committee_digest,
        })))
    }
}
