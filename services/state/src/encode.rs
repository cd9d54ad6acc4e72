//! Turning market events into consensus transactions, as the committee's variant requires.
//!
//! A transaction is the protobuf encoding of one `MarketEvent` (deterministic, so resubmitting
//! an event yields the same bytes and consensus suppresses the duplicate). In BEAT2 clients
//! encrypt, and the state service is the client: the transaction is the TDH2 ciphertext of that
//! encoding under the client label (service key, [`request_id`]`(source, sequence)`), signed
//! with the service's client key (`beat_client::client::Sealer`). The label is consensus's
//! duplicate-suppression key, so a resubmitted event — also after a restart, the key being
//! persistent ([`crate::client_key`]) — is ordered once although its ciphertext differs.
//!
//! Each replica's state service has a key of its own, so the same event published at two
//! replicas gets two labels and may be ordered twice; the market applies an ordered
//! `(source, sequence)` once either way.

use std::sync::Arc;

use beat_client::client::Sealer;
use beat_config::CommitteeFile;
use beat_crypto::{hash::hash_parts, identity::IdentityKeypair};
use beat_proto::state::v1 as pb;
use beat_types::Delivery;
use beat_types::Variant;
use bytes::Bytes;
use prost::Message as _;
use rand::{SeedableRng as _, rngs::SysRng};
use rand_chacha::ChaCha20Rng;
use rand_core::CryptoRng;

/// Domain separation of [`request_id`].
const REQUEST_ID_DST: &[u8] = b"_BEAT_STATE_REQUEST_ID";

/// The BEAT2 request id of the event `(source, sequence)`: the first 8 bytes, little-endian, of
/// `H(_BEAT_STATE_REQUEST_ID, source, sequence)` (length-prefixed parts, so distinct pairs hash
/// distinct inputs).
///
/// A u64 keeps client labels fixed-size. Two events collide only by chance: with at most `m`
/// labels remembered at once (the buffer plus the duplicate-suppression window, well under 10⁶
/// with the default parameters) the chance that any two collide is below m²/2⁶⁵ ≈ 3·10⁻⁸, and
/// a collision would drop the later event as a duplicate. Publishers choose their sources and
/// sequences but not this service's key, so they cannot aim a collision at another source's
/// event without a second preimage of a 64-bit hash.
pub fn request_id(source: &str, sequence: u64) -> u64 {
    let digest = hash_parts(
        REQUEST_ID_DST,
        &[source.as_bytes(), &sequence.to_le_bytes()],
    );
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest.0[..8]);
    u64::from_le_bytes(id)
}

/// Why the committee cannot be served.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitteeError {
    /// BEAT3/BEAT4 delivering only commitments: the state service needs the transactions.
    #[error(
        "the committee runs {variant} with params.delivery = \"commitments_only\": consensus \
         outputs only commitments, but the state service needs full batches (set delivery = \
         \"full\")"
    )]
    CommitmentsOnly {
        /// The variant.
        variant: Variant,
    },
    /// A BEAT2 committee, but no client key to sign with.
    #[error("the committee runs BEAT2, whose transactions must be signed by a client key")]
    MissingClientKey,
}

/// Why events could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The operating system's RNG failed.
    #[error("no randomness for encryption: {0}")]
    Randomness(String),
    /// TDH2 refused to encrypt.
    #[error("cannot encrypt event ({event_source}, {sequence}): {error}")]
    Encrypt {
        /// The event's source.
        event_source: String,
        /// Its sequence number.
        sequence: u64,
        /// Cause.
        error: String,
    },
}

/// Encodes events as the committee's transactions: the protobuf encoding, sealed in BEAT2 by
/// the service's client key ([`beat_client::client::Sealer`]) as request
/// [`request_id`]`(source, sequence)`.
pub struct TxEncoder {
    sealer: Sealer,
}

impl std::fmt::Debug for TxEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxEncoder")
            .field("encrypts", &self.encrypts())
            .finish()
    }
}

impl TxEncoder {
    /// Checks that the state service can serve `committee` (it needs full batches) and returns
    /// whether the encoder needs a client key (BEAT2).
    pub fn needs_client_key(committee: &CommitteeFile) -> Result<bool, CommitteeError> {
        let params = &committee.params;
        if params.variant.is_storage() && params.delivery == Delivery::CommitmentsOnly {
            return Err(CommitteeError::CommitmentsOnly {
                variant: params.variant,
            });
        }
        Ok(params.variant == Variant::Beat2)
    }

    /// The encoder for a committee; `client` is the service's client key, required for BEAT2
    /// and ignored otherwise.
    pub fn for_committee(
        committee: &CommitteeFile,
        client: Option<IdentityKeypair>,
    ) -> Result<Self, CommitteeError> {
        let client = match Self::needs_client_key(committee)? {
            false => None,
            true => Some(Arc::new(client.ok_or(CommitteeError::MissingClientKey)?)),
        };
        let sealer = Sealer::for_committee(committee, client)
            .map_err(|_| CommitteeError::MissingClientKey)?;
        Ok(Self { sealer })
    }

    /// Whether encoding encrypts (and is worth moving off the I/O threads).
    pub fn encrypts(&self) -> bool {
        self.sealer.encrypts()
    }

    /// Encodes one event with `rng` for the encryption randomness.
    pub fn encode(
        &self,
        event: &pb::MarketEvent,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Bytes, EncodeError> {
        let plain = event.encode_to_vec();
        if !self.encrypts() {
            return Ok(Bytes::from(plain));
        }
        let request = request_id(&event.source, event.sequence);
        self.sealer
            .seal(request, &plain, rng)
            .map(Bytes::from)
            .map_err(|error| EncodeError::Encrypt {
                event_source: event.source.clone(),
                sequence: event.sequence,
                error: error.to_string(),
            })
    }

    /// Encodes events, drawing fresh encryption randomness from the operating system.
    pub fn encode_all(&self, events: &[pb::MarketEvent]) -> Result<Vec<Bytes>, EncodeError> {
        let mut rng = match self.encrypts() {
            false => None,
            true => Some(
                ChaCha20Rng::try_from_rng(&mut SysRng)
                    .map_err(|e| EncodeError::Randomness(e.to_string()))?,
            ),
        };
        events
            .iter()
            .map(|e| match &mut rng {
                Some(rng) => self.encode(e, rng),
                None => Ok(Bytes::from(e.encode_to_vec())),
            })
            .collect()
    }

    /// [`Self::encode_all`] off the async I/O threads when it encrypts.
    pub async fn encode_all_blocking(
        self: &Arc<Self>,
        events: Vec<pb::MarketEvent>,
    ) -> Result<Vec<Bytes>, EncodeError> {
        if !self.encrypts() {
            return self.encode_all(&events);
        }
        let encoder = self.clone();
        tokio::task::spawn_blocking(move || encoder.encode_all(&events))
            .await
            .map_err(|e| EncodeError::Randomness(format!("encryption task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use beat_config::{Endpoints, ReplicaEntry};
    use beat_core::{
        Params,
        client::{ClientTransaction, client_label},
    };
    use beat_crypto::dealer::{ReplicaSecrets, deal};
    use beat_types::{Committee, NodeId};
    use rand_chacha::ChaCha20Rng;

    use super::*;

    fn committee(variant: Variant, delivery: Delivery) -> (CommitteeFile, Vec<ReplicaSecrets>) {
        let c = Committee::new(4).unwrap();
        let (keys, secrets) = deal(c, &mut ChaCha20Rng::seed_from_u64(5)).unwrap();
        let file = CommitteeFile {
            format: 1,
            name: "t".into(),
            params: Params {
                variant,
                delivery,
                ..Params::default()
            },
            keys,
            replicas: (0..4)
                .map(|i| ReplicaEntry {
                    id: NodeId(i),
                    endpoints: Endpoints {
                        tcp: Some(format!("127.0.0.1:{}", 7000 + i)),
                        ..Endpoints::default()
                    },
                })
                .collect(),
        };
        (file, secrets)
    }

    fn event() -> pb::MarketEvent {
        pb::MarketEvent {
            source: "alice".into(),
            sequence: 42,
            event: Some(pb::market_event::Event::Cancel(pb::CancelOrder {
                order_id: "o1".into(),
            })),
            signature: Default::default(),
        }
    }

    #[test]
    fn commitments_only_storage_committees_are_refused() {
        for variant in [Variant::Beat3, Variant::Beat4] {
            let (file, _) = committee(variant, Delivery::CommitmentsOnly);
            let err = TxEncoder::for_committee(&file, None).err().unwrap();
            assert_eq!(err, CommitteeError::CommitmentsOnly { variant });
            assert!(err.to_string().contains("commitments_only"));
            let (file, _) = committee(variant, Delivery::Full);
            assert!(!TxEncoder::for_committee(&file, None).unwrap().encrypts());
        }
        for variant in [Variant::Beat0, Variant::Beat1] {
            let (file, _) = committee(variant, Delivery::Full);
            assert!(!TxEncoder::for_committee(&file, None).unwrap().encrypts());
        }
        let (file, _) = committee(Variant::Beat2, Delivery::Full);
        assert_eq!(TxEncoder::needs_client_key(&file), Ok(true));
        assert!(matches!(
            TxEncoder::for_committee(&file, None),
            Err(CommitteeError::MissingClientKey)
        ));
    }

    #[test]
    fn plain_transactions_are_the_deterministic_encoding() {
        let (file, _) = committee(Variant::Beat0, Delivery::Full);
        let encoder = TxEncoder::for_committee(&file, None).unwrap();
        let a = encoder.encode_all(&[event()]).unwrap();
        let b = encoder.encode_all(&[event()]).unwrap();
        assert_eq!(a, b, "a resubmission has the same bytes");
        assert_eq!(a[0].as_ref(), event().encode_to_vec().as_slice());
    }

    fn client(seed: u64) -> IdentityKeypair {
        IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(seed))
    }

    #[test]
    fn beat2_transactions_are_sealed_under_the_event_label() {
        let (file, secrets) = committee(Variant::Beat2, Delivery::Full);
        let encoder = TxEncoder::for_committee(&file, Some(client(1))).unwrap();
        assert!(encoder.encrypts());
        let txs = encoder.encode_all(&[event(), event()]).unwrap();
        assert_ne!(txs[0], txs[1], "fresh randomness per encryption");
        let key = &file.keys.encryption;
        let label = client_label(&client(1).public(), request_id("alice", 42));
        for tx in &txs {
            let parsed = ClientTransaction::from_bytes(tx).unwrap();
            parsed.verify(key).unwrap();
            let ct = parsed.ciphertext();
            assert_eq!(ct.label(), label.as_slice());
            // f + 1 = 2 shares decrypt it to the event's encoding.
            let shares: BTreeMap<_, _> = secrets[..2]
                .iter()
                .map(|s| {
                    let share = s.decryption.decryption_share(key, ct, ct.label()).unwrap();
                    (s.node, share)
                })
                .collect();
            let plain = key.combine_verified(ct, &shares).unwrap().unwrap();
            assert_eq!(plain, event().encode_to_vec());
        }
        // The same key (a restarted service) gives the same label; another key another one.
        let again = TxEncoder::for_committee(&file, Some(client(1))).unwrap();
        let other = TxEncoder::for_committee(&file, Some(client(2))).unwrap();
        let label_of = |encoder: &TxEncoder| {
            let tx = encoder.encode_all(&[event()]).unwrap().remove(0);
            ClientTransaction::from_bytes(&tx)
                .unwrap()
                .ciphertext()
                .label()
                .to_vec()
        };
        assert_eq!(label_of(&again), label);
        assert_ne!(label_of(&other), label);
    }

    #[test]
    fn request_ids_separate_sources_and_sequences() {
        assert_eq!(request_id("alice", 42), request_id("alice", 42));
        assert_ne!(request_id("alice", 42), request_id("alice", 43));
        assert_ne!(request_id("alice", 42), request_id("bob", 42));
        // Length-prefixed hashing: moving bytes between source and sequence changes the id.
        assert_ne!(request_id("a", 0x62), request_id("ab", 0));
    }
}
