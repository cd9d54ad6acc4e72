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
//! | version: 1 = one transaction, 2 = a bundle | 1 |
//! | signature `R ‖ s` (Ed25519, canonical `s`) | 64 |
//! | TDH2 ciphertext, canonical encoding ([`tdh2::Ciphertext`]), to the end | ≥ 270 |
//!
//! The signature is made by the label's client over the ciphertext bytes exactly as they appear
//! in the envelope ([`beat_crypto::identity`] describes the framing), in the context of the
//! version: [`CLIENT_TRANSACTION_CONTEXT`] for version 1, [`CLIENT_BUNDLE_CONTEXT`] for
//! version 2. The version byte itself is not signed; the context is, so a proposer that flips
//! the version makes the signature fail rather than change how the plaintext is read.
//!
//! # Bundles (version 2)
//!
//! Every BEAT2 ciphertext costs each replica a signature check, two ciphertext-validity checks
//! (core and keystore), a decryption share and a combine — about 0.4 ms per replica on this
//! project's reference box, whatever the plaintext's size. A client that submits many
//! transactions may therefore seal up to [`MAX_BUNDLE_TRANSACTIONS`] of them under one
//! ciphertext, one label and one signature. The plaintext is then the contribution encoding
//! ([`crate::codec::encode_transactions`]) of the bundled transactions, each non-empty; the
//! whole envelope obeys the same `max_transaction_bytes` as a single transaction, so a bundle
//! adds nothing to what a proposal may weigh. The bundle is ordered as one request: one label,
//! spent once; after decryption its transactions are committed in bundle order, in place of
//! the envelope. A bundle whose plaintext does not decode commits nothing and spends its label,
//! like a ciphertext that does not decrypt — the client, not the proposer, erred. The count
//! limit bounds what one envelope can expand to (at most `64 ×` the proposal's envelopes).
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

use crate::codec::{decode_transactions, encode_transactions};

/// The prefix of every BEAT2 client label.
pub const CLIENT_LABEL_PREFIX: &[u8] = b"BEAT-CLIENT-V2/";

/// The length of a client label: prefix, public key and request id.
pub const CLIENT_LABEL_LEN: usize = CLIENT_LABEL_PREFIX.len() + IdentityPublicKey::LEN + 8;

/// The envelope version of a single transaction.
pub const CLIENT_TRANSACTION_VERSION: u8 = 1;

/// The envelope version of a bundle of transactions (see the [module docs](self)).
pub const CLIENT_BUNDLE_VERSION: u8 = 2;

/// The signing context of single client transactions.
pub const CLIENT_TRANSACTION_CONTEXT: &[u8] = b"beat/client-transaction/v1";

/// The signing context of client bundles.
pub const CLIENT_BUNDLE_CONTEXT: &[u8] = b"beat/client-bundle/v1";

/// The most transactions one bundle may hold.
pub const MAX_BUNDLE_TRANSACTIONS: usize = 64;

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
    /// An envelope version other than [`CLIENT_TRANSACTION_VERSION`] and
    /// [`CLIENT_BUNDLE_VERSION`].
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

/// Why transactions cannot be sealed as a bundle.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// A bundle holds at least one transaction and at most [`MAX_BUNDLE_TRANSACTIONS`].
    #[error("a bundle holds 1..={MAX_BUNDLE_TRANSACTIONS} transactions, not {0}")]
    Count(usize),
    /// Bundled transactions are non-empty.
    #[error("bundled transaction {0} is empty")]
    EmptyTransaction(usize),
    /// Encryption failed.
    #[error("encryption failed: {0}")]
    Encryption(#[from] tdh2::Tdh2Error),
}

/// What an envelope's plaintext is: one transaction or a bundle of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EnvelopeKind {
    /// Version 1: the plaintext is the transaction.
    Single,
    /// Version 2: the plaintext encodes up to [`MAX_BUNDLE_TRANSACTIONS`] transactions.
    Bundle,
}

impl EnvelopeKind {
    fn from_version(version: u8) -> Result<Self, ClientTransactionError> {
        match version {
            CLIENT_TRANSACTION_VERSION => Ok(Self::Single),
            CLIENT_BUNDLE_VERSION => Ok(Self::Bundle),
            other => Err(ClientTransactionError::UnsupportedVersion(other)),
        }
    }

    /// The envelope's version byte.
    pub fn version(self) -> u8 {
        match self {
            Self::Single => CLIENT_TRANSACTION_VERSION,
            Self::Bundle => CLIENT_BUNDLE_VERSION,
        }
    }

    /// The signing context.
    pub fn context(self) -> &'static [u8] {
        match self {
            Self::Single => CLIENT_TRANSACTION_CONTEXT,
            Self::Bundle => CLIENT_BUNDLE_CONTEXT,
        }
    }

    /// The transactions a decrypted plaintext of this kind commits, or `None` if it commits
    /// nothing: an empty single transaction or one above `max_transaction_bytes`, or a bundle
    /// that does not decode, is empty, holds more than [`MAX_BUNDLE_TRANSACTIONS`] or holds an
    /// empty or oversized transaction.
    pub fn open(self, plaintext: &[u8], max_transaction_bytes: usize) -> Option<Vec<Transaction>> {
        match self {
            Self::Single => (!plaintext.is_empty() && plaintext.len() <= max_transaction_bytes)
                .then(|| vec![Transaction::new(plaintext.to_vec())]),
            Self::Bundle => {
                decode_transactions(plaintext, MAX_BUNDLE_TRANSACTIONS, max_transaction_bytes)
                    .filter(|txs| !txs.is_empty())
            }
        }
    }
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
    kind: EnvelopeKind,
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
        let kind = EnvelopeKind::from_version(version)?;
        let (signature, ciphertext_bytes) = rest
            .split_first_chunk::<{ IdentitySignature::LEN }>()
            .ok_or(ClientTransactionError::Truncated { len })?;
        let signature = IdentitySignature::from_bytes(signature)
            .map_err(ClientTransactionError::MalformedSignature)?;
        let ciphertext = tdh2::Ciphertext::from_bytes(ciphertext_bytes)
            .map_err(ClientTransactionError::MalformedCiphertext)?;
        let label = ClientLabel::parse(ciphertext.label())?;
        Ok(Self {
            kind,
            label,
            signature,
            ciphertext_bytes,
            ciphertext,
        })
    }

    /// Checks the client's signature in the context of the envelope's kind, then the
    /// ciphertext's validity proof under `encryption`.
    pub fn verify(&self, encryption: &tdh2::PublicKey) -> Result<(), ClientTransactionError> {
        self.verified_header(encryption).map(drop)
    }

    /// [`Self::verify`], returning the ciphertext's header (what the keystore is sent), so that
    /// the body is hashed once for both.
    pub fn verified_header(
        &self,
        encryption: &tdh2::PublicKey,
    ) -> Result<tdh2::CiphertextHeader, ClientTransactionError> {
        self.label
            .client
            .verify(self.kind.context(), self.ciphertext_bytes, &self.signature)
            .map_err(|_| ClientTransactionError::BadSignature)?;
        let header = self.ciphertext.header();
        encryption
            .verify_header(&header)
            .map_err(ClientTransactionError::InvalidCiphertext)?;
        Ok(header)
    }

    /// Whether the envelope holds one transaction or a bundle.
    pub fn kind(&self) -> EnvelopeKind {
        self.kind
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
    sign_envelope(signer, EnvelopeKind::Single, ciphertext)
}

/// Wraps `ciphertext` in an envelope of `kind` signed by `signer` (see
/// [`sign_client_ciphertext`]).
pub fn sign_envelope(
    signer: &IdentityKeypair,
    kind: EnvelopeKind,
    ciphertext: &tdh2::Ciphertext,
) -> Transaction {
    let ciphertext_bytes = ciphertext.to_bytes();
    let signature = signer.sign(kind.context(), &ciphertext_bytes);
    envelope_of_kind(kind, &signature, &ciphertext_bytes)
}

/// Encodes a single transaction's envelope from its parts, without checking them.
pub fn envelope(signature: &IdentitySignature, ciphertext_bytes: &[u8]) -> Transaction {
    envelope_of_kind(EnvelopeKind::Single, signature, ciphertext_bytes)
}

/// Encodes an envelope of `kind` from its parts, without checking them.
pub fn envelope_of_kind(
    kind: EnvelopeKind,
    signature: &IdentitySignature,
    ciphertext_bytes: &[u8],
) -> Transaction {
    let mut out = Vec::with_capacity(CLIENT_TRANSACTION_OVERHEAD + ciphertext_bytes.len());
    out.push(kind.version());
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

/// Encrypts `transactions` as one bundle (see the [module docs](self)) to the committee key
/// `encryption`, as `client`'s request `request`, and signs it: one BEAT2 transaction that
/// commits all of them, in order, or none. The caller keeps the envelope within the committee's
/// `max_transaction_bytes`; admission refuses a larger one.
///
/// ```
/// use beat_core::client::{ClientTransaction, EnvelopeKind, seal_client_bundle};
/// use beat_crypto::{dealer::deal, identity::IdentityKeypair};
/// use beat_types::Committee;
/// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
///
/// let mut rng = ChaCha20Rng::seed_from_u64(1);
/// let (keys, _) = deal(Committee::new(4).unwrap(), &mut rng).unwrap();
/// let client = IdentityKeypair::generate(&mut rng);
/// let orders: [&[u8]; 2] = [b"buy 1 BTC", b"sell 2 ETH"];
/// let tx = seal_client_bundle(&client, &keys.encryption, 8, &orders, &mut rng).unwrap();
///
/// let parsed = ClientTransaction::from_bytes(tx.as_bytes()).unwrap();
/// assert_eq!(parsed.kind(), EnvelopeKind::Bundle);
/// assert!(parsed.verify(&keys.encryption).is_ok());
/// ```
pub fn seal_client_bundle(
    client: &IdentityKeypair,
    encryption: &tdh2::PublicKey,
    request: u64,
    transactions: &[&[u8]],
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<Transaction, BundleError> {
    if transactions.is_empty() || transactions.len() > MAX_BUNDLE_TRANSACTIONS {
        return Err(BundleError::Count(transactions.len()));
    }
    if let Some(empty) = transactions.iter().position(|t| t.is_empty()) {
        return Err(BundleError::EmptyTransaction(empty));
    }
    let txs: Vec<Transaction> = transactions
        .iter()
        .map(|t| Transaction::new(t.to_vec()))
        .collect();
    let label = client_label(&client.public(), request);
    let ciphertext = encryption.encrypt(&label, &encode_transactions(&txs), rng)?;
    Ok(sign_envelope(client, EnvelopeKind::Bundle, &ciphertext))
}

#[cfg(test)]
mod tests;
