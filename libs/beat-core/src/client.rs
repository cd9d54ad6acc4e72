//! BEAT2 client transactions: authenticated client labels and the signed envelope.
//!
//! In BEAT2 clients threshold-encrypt their own transactions, and the replicas order each
//! request once: the ciphertext's *label* names the request and is the duplicate-suppression
//! key. An unauthenticated label would let one faulty proposer order junk ciphertexts under
//! honest clients' predictable labels and so spend them — their real requests would then be
//! suppressed everywhere (censorship). So a label names the client by its Ed25519 public key,
//! and the transaction carries the client's signature over the whole ciphertext, label
//! included: only the holder of the key can put anything under its labels.
//!
//! # Label (55 bytes)
//!
//! | field | bytes |
//! |---|---|
//! | prefix `BEAT-CLIENT-V2/` | 15 |
//! | client public key (Ed25519, canonical, prime-order) | 32 |
//! | request id, u64 LE | 8 |
//!
//! The request id is the client's to choose; a client that re-sends a request under the same id
//! has it ordered once. A client deriving ids from something else (the state service hashes
//! `(source, sequence)`) must keep the derivation collision-free within the committee's
//! duplicate-suppression window.
//!
//! # Envelope (the BEAT2 transaction)
//!
//! | field | bytes |
//! |---|---|
//! | version (= 1) | 1 |
//! | signature `R ‖ s` (Ed25519, canonical `s`) | 64 |
//! | TDH2 ciphertext, canonical encoding ([`tdh2::Ciphertext`]), to the end | ≥ 270 |
//!
//! The signature is made by the label's client in the context [`CLIENT_TRANSACTION_CONTEXT`]
//! over the ciphertext bytes exactly as they appear in the envelope
//! ([`beat_crypto::identity`] describes the framing).
//!
//! # Checks
//!
//! [`ClientTransaction::from_bytes`] parses strictly (the version, the signature's `s`, the
//! ciphertext with no trailing bytes, a well-formed client label with a valid key) and never
//! panics. [`ClientTransaction::verify`] checks the signature, then the ciphertext's validity
//! proof. A replica runs both at admission (a client gets an error) and again when an agreed
//! proposal is planned for decryption: there an invalid transaction is the proposer's fault
//! (honest proposers only propose admitted transactions), contributes nothing and leaves its
//! label unspent.

use beat_crypto::{
    identity::{IdentityError, IdentityKeypair, IdentityPublicKey, IdentitySignature},
    tdh2,
};
use beat_types::Transaction;
use rand_core::CryptoRng;

/// The prefix of every BEAT2 client label.
pub const CLIENT_LABEL_PREFIX: &[u8] = b"BEAT-CLIENT-V2/";

/// The length of a client label: prefix, public key and request id.
pub const CLIENT_LABEL_LEN: usize = CLIENT_LABEL_PREFIX.len() + IdentityPublicKey::LEN + 8;

/// The envelope version.
pub const CLIENT_TRANSACTION_VERSION: u8 = 1;

/// The signing context of client transactions.
pub const CLIENT_TRANSACTION_CONTEXT: &[u8] = b"beat/client-transaction/v1";

/// Bytes of the envelope around the ciphertext: version and signature.
pub const CLIENT_TRANSACTION_OVERHEAD: usize = 1 + IdentitySignature::LEN;

/// Why bytes are not a valid client transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientTransactionError {
    /// Too short to hold the version and the signature.
    #[error("client transaction of {len} bytes is shorter than its envelope")]
    Truncated {
        /// Length.
        len: usize,
    },
    /// An envelope version other than [`CLIENT_TRANSACTION_VERSION`].
    #[error("unsupported client transaction version {0}")]
    UnsupportedVersion(u8),
    /// The signature's encoding is not canonical.
    #[error("malformed signature: {0}")]
    MalformedSignature(IdentityError),
    /// The ciphertext does not parse.
    #[error("malformed ciphertext: {0}")]
    MalformedCiphertext(tdh2::Tdh2Error),
    /// The label is not `prefix ‖ key ‖ request id`.
    #[error("the ciphertext's label is not a client label")]
    NotClientLabel,
    /// The label's public key is not a valid identity key.
    #[error("invalid client key in the label: {0}")]
    InvalidClientKey(IdentityError),
    /// The signature does not verify under the label's client key.
    #[error("signature does not verify for the label's client")]
    BadSignature,
    /// The ciphertext's validity proof does not verify.
    #[error("invalid ciphertext: {0}")]
    InvalidCiphertext(tdh2::Tdh2Error),
}

// === impl ClientLabel ===

/// A parsed client label: who asks, and which of its requests this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientLabel {
    /// The client's identity key, which must sign the transaction.
    pub client: IdentityPublicKey,
    /// The client's request id.
    pub request: u64,
}

impl ClientLabel {
    /// The label's encoding (see the [module docs](self)).
    pub fn to_bytes(&self) -> [u8; CLIENT_LABEL_LEN] {
        let mut out = [0u8; CLIENT_LABEL_LEN];
        let (prefix, rest) = out.split_at_mut(CLIENT_LABEL_PREFIX.len());
        let (key, request) = rest.split_at_mut(IdentityPublicKey::LEN);
        prefix.copy_from_slice(CLIENT_LABEL_PREFIX);
        key.copy_from_slice(self.client.as_bytes());
        request.copy_from_slice(&self.request.to_le_bytes());
        out
    }

    /// Parses a label, rejecting any other length or prefix and invalid keys.
    pub fn parse(label: &[u8]) -> Result<Self, ClientTransactionError> {
        let rest = label
            .strip_prefix(CLIENT_LABEL_PREFIX)
            .ok_or(ClientTransactionError::NotClientLabel)?;
        let (key, request) = rest
            .split_first_chunk::<{ IdentityPublicKey::LEN }>()
            .ok_or(ClientTransactionError::NotClientLabel)?;
        let request: [u8; 8] = request
            .try_into()
            .map_err(|_| ClientTransactionError::NotClientLabel)?;
        let client =
            IdentityPublicKey::from_bytes(key).map_err(ClientTransactionError::InvalidClientKey)?;
        Ok(Self {
            client,
            request: u64::from_le_bytes(request),
        })
    }
}

/// The label of `client`'s request `request`.
pub fn client_label(client: &IdentityPublicKey, request: u64) -> Vec<u8> {
    ClientLabel {
        client: *client,
        request,
    }
    .to_bytes()
    .to_vec()
}

/// Returns `true` for a well-formed client label (with a valid client key).
pub fn is_client_label(label: &[u8]) -> bool {
    ClientLabel::parse(label).is_ok()
}

// === impl ClientTransaction ===

/// A parsed, not yet verified, client transaction borrowing its ciphertext bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTransaction<'a> {
    label: ClientLabel,
    signature: IdentitySignature,
    ciphertext_bytes: &'a [u8],
    ciphertext: tdh2::Ciphertext,
}

impl<'a> ClientTransaction<'a> {
    /// Parses an envelope strictly (see the [module docs](self)); verifies nothing
    /// cryptographic but the encodings.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, ClientTransactionError> {
        let len = bytes.len();
        let (&version, rest) = bytes
            .split_first()
            .ok_or(ClientTransactionError::Truncated { len })?;
        if version != CLIENT_TRANSACTION_VERSION {
            return Err(ClientTransactionError::UnsupportedVersion(version));
        }
        let (signature, ciphertext_bytes) = rest
            .split_first_chunk::<{ IdentitySignature::LEN }>()
            .ok_or(ClientTransactionError::Truncated { len })?;
        let signature = IdentitySignature::from_bytes(signature)
            .map_err(ClientTransactionError::MalformedSignature)?;
        let ciphertext = tdh2::Ciphertext::from_bytes(ciphertext_bytes)
            .map_err(ClientTransactionError::MalformedCiphertext)?;
        let label = ClientLabel::parse(ciphertext.label())?;
        Ok(Self {
            label,
            signature,
            ciphertext_bytes,
            ciphertext,
        })
    }

    /// Checks the client's signature, then the ciphertext's validity proof under `encryption`.
    pub fn verify(&self, encryption: &tdh2::PublicKey) -> Result<(), ClientTransactionError> {
        self.label
            .client
            .verify(
                CLIENT_TRANSACTION_CONTEXT,
                self.ciphertext_bytes,
                &self.signature,
            )
            .map_err(|_| ClientTransactionError::BadSignature)?;
        encryption
            .verify_ciphertext(&self.ciphertext)
            .map_err(ClientTransactionError::InvalidCiphertext)
    }

    /// The parsed label.
    pub fn label(&self) -> &ClientLabel {
        &self.label
    }

    /// The ciphertext.
    pub fn ciphertext(&self) -> &tdh2::Ciphertext {
        &self.ciphertext
    }

    /// The client's signature.
    pub fn signature(&self) -> &IdentitySignature {
        &self.signature
    }

    /// Gives up the envelope, keeping the ciphertext.
    pub fn into_ciphertext(self) -> tdh2::Ciphertext {
        self.ciphertext
    }
}

/// Wraps `ciphertext` in an envelope signed by `signer`. The result verifies only if `signer`
/// is the client named in the ciphertext's label; [`seal_client_transaction`] is the usual way
/// to build one.
pub fn sign_client_ciphertext(
    signer: &IdentityKeypair,
    ciphertext: &tdh2::Ciphertext,
) -> Transaction {
    let ciphertext_bytes = ciphertext.to_bytes();
    let signature = signer.sign(CLIENT_TRANSACTION_CONTEXT, &ciphertext_bytes);
    envelope(&signature, &ciphertext_bytes)
}

/// Encodes an envelope from its parts, without checking them.
pub fn envelope(signature: &IdentitySignature, ciphertext_bytes: &[u8]) -> Transaction {
    let mut out = Vec::with_capacity(CLIENT_TRANSACTION_OVERHEAD + ciphertext_bytes.len());
    out.push(CLIENT_TRANSACTION_VERSION);
    out.extend_from_slice(signature.as_bytes());
    out.extend_from_slice(ciphertext_bytes);
    Transaction::new(out)
}

/// Encrypts `plaintext` to the committee key `encryption` as `client`'s request `request` and
/// signs it: a complete BEAT2 transaction.
///
/// ```
/// use beat_core::client::{ClientTransaction, seal_client_transaction};
/// use beat_crypto::{dealer::deal, identity::IdentityKeypair};
/// use beat_types::Committee;
/// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
///
/// let mut rng = ChaCha20Rng::seed_from_u64(1);
/// let (keys, _) = deal(Committee::new(4).unwrap(), &mut rng).unwrap();
/// let client = IdentityKeypair::generate(&mut rng);
/// let tx = seal_client_transaction(&client, &keys.encryption, 7, b"buy 1 BTC", &mut rng).unwrap();
///
/// let parsed = ClientTransaction::from_bytes(tx.as_bytes()).unwrap();
/// assert_eq!(parsed.label().client, client.public());
/// assert_eq!(parsed.label().request, 7);
/// assert!(parsed.verify(&keys.encryption).is_ok());
/// ```
pub fn seal_client_transaction(
    client: &IdentityKeypair,
    encryption: &tdh2::PublicKey,
    request: u64,
    plaintext: &[u8],
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<Transaction, tdh2::Tdh2Error> {
    let label = client_label(&client.public(), request);
    let ciphertext = encryption.encrypt(&label, plaintext, rng)?;
    Ok(sign_client_ciphertext(client, &ciphertext))
}

#[cfg(test)]
mod tests;
