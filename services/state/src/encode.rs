//! Turning market events into consensus transactions, as the committee's variant requires.
//!
//! A transaction is the protobuf encoding of one `MarketEvent` (deterministic, so resubmitting
//! an event yields the same bytes and consensus suppresses the duplicate). In BEAT2 clients
//! encrypt: the transaction is the TDH2 ciphertext of that encoding under
//! `client_label(source, sequence)`, which is also consensus's duplicate-suppression key, so a
//! resubmitted event is ordered once although its ciphertext differs.

use std::sync::Arc;

use beat_config::CommitteeFile;
use beat_core::{Delivery, codec::client_label};
use beat_crypto::tdh2;
use beat_proto::state::v1 as pb;
use beat_types::Variant;
use bytes::Bytes;
use prost::Message as _;
use rand::{SeedableRng as _, rngs::SysRng};
use rand_chacha::ChaCha20Rng;
use rand_core::CryptoRng;

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
        error: tdh2::Tdh2Error,
    },
}

/// Encodes events as the committee's transactions.
#[derive(Clone, Debug)]
pub enum TxEncoder {
    /// BEAT0/1/3/4: the protobuf encoding.
    Plain,
    /// BEAT2: a TDH2 ciphertext of the encoding under the client label.
    ClientEncrypted(Arc<tdh2::PublicKey>),
}

impl TxEncoder {
    /// The encoder for a committee, refusing committees that deliver commitments only.
    pub fn for_committee(committee: &CommitteeFile) -> Result<Self, CommitteeError> {
        let params = &committee.params;
        if params.variant.is_storage() && params.delivery == Delivery::CommitmentsOnly {
            return Err(CommitteeError::CommitmentsOnly {
                variant: params.variant,
            });
        }
        Ok(match params.variant {
            Variant::Beat2 => Self::ClientEncrypted(committee.public_keys().encryption),
            _ => Self::Plain,
        })
    }

    /// Whether encoding encrypts (and is worth moving off the I/O threads).
    pub fn encrypts(&self) -> bool {
        matches!(self, Self::ClientEncrypted(_))
    }

    /// Encodes one event with `rng` for the encryption randomness.
    pub fn encode(
        &self,
        event: &pb::MarketEvent,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Bytes, EncodeError> {
        let plain = event.encode_to_vec();
        match self {
            Self::Plain => Ok(Bytes::from(plain)),
            Self::ClientEncrypted(key) => {
                let label = client_label(event.source.as_bytes(), event.sequence);
                let ct =
                    key.encrypt(&label, &plain, rng)
                        .map_err(|error| EncodeError::Encrypt {
                            event_source: event.source.clone(),
                            sequence: event.sequence,
                            error,
                        })?;
                Ok(Bytes::from(ct.to_bytes()))
            }
        }
    }

    /// Encodes events, drawing fresh encryption randomness from the operating system.
    pub fn encode_all(&self, events: &[pb::MarketEvent]) -> Result<Vec<Bytes>, EncodeError> {
        let mut rng = match self {
            Self::Plain => None,
            Self::ClientEncrypted(_) => Some(
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
    use beat_core::Params;
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
        }
    }

    #[test]
    fn commitments_only_storage_committees_are_refused() {
        for variant in [Variant::Beat3, Variant::Beat4] {
            let (file, _) = committee(variant, Delivery::CommitmentsOnly);
            let err = TxEncoder::for_committee(&file).unwrap_err();
            assert_eq!(err, CommitteeError::CommitmentsOnly { variant });
            assert!(err.to_string().contains("commitments_only"));
            let (file, _) = committee(variant, Delivery::Full);
            assert!(matches!(
                TxEncoder::for_committee(&file),
                Ok(TxEncoder::Plain)
            ));
        }
        for variant in [Variant::Beat0, Variant::Beat1] {
            let (file, _) = committee(variant, Delivery::Full);
            assert!(matches!(
                TxEncoder::for_committee(&file),
                Ok(TxEncoder::Plain)
            ));
        }
    }

    #[test]
    fn plain_transactions_are_the_deterministic_encoding() {
        let (file, _) = committee(Variant::Beat0, Delivery::Full);
        let encoder = TxEncoder::for_committee(&file).unwrap();
        let a = encoder.encode_all(&[event()]).unwrap();
        let b = encoder.encode_all(&[event()]).unwrap();
        assert_eq!(a, b, "a resubmission has the same bytes");
        assert_eq!(a[0].as_ref(), event().encode_to_vec().as_slice());
    }

    #[test]
    fn beat2_transactions_are_client_ciphertexts_under_the_event_label() {
        let (file, secrets) = committee(Variant::Beat2, Delivery::Full);
        let encoder = TxEncoder::for_committee(&file).unwrap();
        assert!(encoder.encrypts());
        let txs = encoder.encode_all(&[event(), event()]).unwrap();
        assert_ne!(txs[0], txs[1], "fresh randomness per encryption");
        let key = &file.keys.encryption;
        for tx in &txs {
            let ct = tdh2::Ciphertext::from_bytes(tx).unwrap();
            assert_eq!(ct.label(), client_label(b"alice", 42).as_slice());
            key.verify_ciphertext(&ct).unwrap();
            // f + 1 = 2 shares decrypt it to the event's encoding.
            let shares: BTreeMap<_, _> = secrets[..2]
                .iter()
                .map(|s| {
                    let share = s.decryption.decryption_share(key, &ct, ct.label()).unwrap();
                    (s.node, share)
                })
                .collect();
            let plain = key.combine_verified(&ct, &shares).unwrap().unwrap();
            assert_eq!(plain, event().encode_to_vec());
        }
    }
}
