//! What a replica still owes an epoch it has left (liveness rules R1 and R2, module docs).
//!
//! Leaving an epoch — by committing it, or by catching up past it — does not end this
//! replica's obligations to the replicas still in it. Their binary agreements wait for `n−f`
//! AUX votes, which needs every honest replica to keep relaying BVAL votes on `f+1` (R1); their
//! coins and decryptions wait for `f+1` shares, which needs every share this replica requested
//! to be released when the keystore returns it, however late (R2). A [`RetiredEpoch`] keeps
//! exactly that: the epoch's agreements in relay-only mode and the decryption request whose
//! reply has not come back. The node keeps the last `catch_up_lag` epochs it left; a replica
//! further behind than that is brought forward by catch-up instead.

use std::{collections::BTreeMap, sync::Arc};

use beat_crypto::{bls, tdh2};
use beat_types::{Epoch, NodeId};
use serde::{Deserialize, Serialize};

use super::EpochMessage;
use crate::{
    CiphertextSlot, DecryptionItem, Error, Request, Step,
    aba::{AgreementRelay, BinaryAgreement},
    acs::SubsetMessage,
    config::Config,
};

/// A left epoch's remaining obligations at one replica.
#[derive(Debug)]
pub(crate) struct RetiredEpoch {
    epoch: Epoch,
    agreements: BTreeMap<NodeId, BinaryAgreement>,
    /// This replica's decryption-share request, until the keystore answers it.
    decryption: Option<Vec<DecryptionItem>>,
}

/// A [`RetiredEpoch`] as stored in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RetiredSnapshot {
    agreements: BTreeMap<NodeId, AgreementRelay>,
    decryption: Option<Vec<PendingItem>>,
}

/// A pending decryption item as stored: the ciphertext's header in its encoding
/// ([`tdh2::CiphertextHeader::to_bytes`]). Checkpoints written before headers existed hold the
/// whole ciphertext in this field; both parse ([`tdh2::CiphertextHeader::from_header_or_ciphertext`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PendingItem {
    slot: CiphertextSlot,
    header: Vec<u8>,
    expected_label: Vec<u8>,
}

type EpochStep = Step<EpochMessage, ()>;

impl RetiredEpoch {
    pub fn new(
        epoch: Epoch,
        agreements: BTreeMap<NodeId, BinaryAgreement>,
        decryption: Option<Vec<DecryptionItem>>,
    ) -> Self {
        Self {
            epoch,
            agreements,
            decryption,
        }
    }

    /// R1: routes agreement votes to the relaying agreements; nothing else is owed.
    pub fn handle_message(&mut self, sender: NodeId, message: EpochMessage) -> EpochStep {
        let mut step = Step::default();
        if let EpochMessage::Subset(SubsetMessage::Agreement { proposer, message }) = message
            && let Some(aba) = self.agreements.get_mut(&proposer)
        {
            let sub = aba.handle_message(sender, message);
            let _: Vec<bool> = sub.absorb_into(&mut step, |message| {
                EpochMessage::Subset(SubsetMessage::Agreement { proposer, message })
            });
        }
        step
    }

    /// R2: releases a late coin share of one of this epoch's agreements.
    pub fn handle_coin_share(
        &mut self,
        instance: NodeId,
        round: u32,
        share: bls::SignatureShare,
    ) -> EpochStep {
        let mut step = Step::default();
        if let Some(aba) = self.agreements.get_mut(&instance) {
            let sub = aba.handle_coin_share(round, share);
            let _: Vec<bool> = sub.absorb_into(&mut step, |message| {
                EpochMessage::Subset(SubsetMessage::Agreement {
                    proposer: instance,
                    message,
                })
            });
        }
        step
    }

    /// Marks the decryption request answered (the caller broadcasts the shares, R2).
    pub fn on_own_shares(&mut self) {
        self.decryption = None;
    }

    /// Keystore requests still unanswered (re-issued after a restart).
    pub fn pending_requests(&self) -> Vec<Request> {
        let mut out: Vec<Request> = self
            .agreements
            .values()
            .flat_map(BinaryAgreement::pending_coin_requests)
            .map(Request::CoinShare)
            .collect();
        if let Some(items) = &self.decryption {
            out.push(Request::DecryptionShares {
                epoch: self.epoch,
                items: items.clone(),
            });
        }
        out
    }

    pub fn snapshot(&self) -> RetiredSnapshot {
        RetiredSnapshot {
            agreements: self
                .agreements
                .iter()
                .filter_map(|(p, aba)| aba.relay().map(|r| (*p, r)))
                .collect(),
            decryption: self.decryption.as_ref().map(|items| {
                items
                    .iter()
                    .map(|i| PendingItem {
                        slot: i.slot,
                        header: i.header.to_bytes(),
                        expected_label: i.expected_label.clone(),
                    })
                    .collect()
            }),
        }
    }

    pub fn from_snapshot(
        config: &Config,
        epoch: Epoch,
        snapshot: RetiredSnapshot,
    ) -> Result<Self, Error> {
        let bad = |reason: &str| Error::BadCheckpoint {
            epoch,
            reason: reason.to_owned(),
        };
        let mut agreements = BTreeMap::new();
        for (proposer, relay) in snapshot.agreements {
            if !config.committee.contains(proposer) {
                return Err(bad("a retired agreement for a non-member"));
            }
            let aba = BinaryAgreement::from_relay(
                config.our_id,
                config.committee,
                config.keys.coin.clone(),
                epoch,
                proposer,
                config.params.max_future_rounds,
                relay,
            );
            agreements.insert(proposer, aba);
        }
        let decryption = match snapshot.decryption {
            None => None,
            Some(items) => Some(
                items
                    .into_iter()
                    .map(|item| {
                        let header =
                            tdh2::CiphertextHeader::from_header_or_ciphertext(&item.header)
                                .map_err(|_| bad("an undecodable pending ciphertext"))?;
                        Ok(DecryptionItem {
                            slot: item.slot,
                            header: Arc::new(header),
                            expected_label: item.expected_label,
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()?,
            ),
        };
        Ok(Self {
            epoch,
            agreements,
            decryption,
        })
    }
}

#[cfg(test)]
mod tests {
    use beat_crypto::{Digest, bls};
    use beat_types::Committee;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::{Params, PublicKeys, codec::epoch_label};

    /// A retired epoch's pending decryption request is stored as headers now; checkpoints
    /// written before hold whole ciphertexts in the same field. Both restore to the same
    /// request, and a snapshot round-trips through postcard.
    #[test]
    fn pending_items_restore_from_headers_and_from_whole_ciphertexts() {
        let committee = Committee::new(4).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(17);
        let (coin, _) = bls::deal(4, committee.f(), &mut rng).unwrap();
        let (encryption, _) = tdh2::deal(4, committee.f(), &mut rng).unwrap();
        let label = epoch_label(Epoch(6), NodeId(2));
        let ct = encryption.encrypt(&label, &[9u8; 700], &mut rng).unwrap();
        let config = Config {
            our_id: NodeId(0),
            committee,
            committee_digest: Digest([1; 32]),
            keys: PublicKeys {
                coin: Arc::new(coin),
                encryption: Arc::new(encryption),
            },
            params: Params::default(),
        };
        let slot = CiphertextSlot {
            proposer: NodeId(2),
            index: 0,
        };
        let item = DecryptionItem {
            slot,
            header: Arc::new(ct.header()),
            expected_label: label.clone(),
        };
        let retired = RetiredEpoch::new(Epoch(6), BTreeMap::new(), Some(vec![item.clone()]));
        let snapshot: RetiredSnapshot =
            postcard::from_bytes(&postcard::to_allocvec(&retired.snapshot()).unwrap()).unwrap();
        let expected = vec![Request::DecryptionShares {
            epoch: Epoch(6),
            items: vec![item],
        }];
        let restored = RetiredEpoch::from_snapshot(&config, Epoch(6), snapshot).unwrap();
        assert_eq!(restored.pending_requests(), expected);

        let old = RetiredSnapshot {
            agreements: BTreeMap::new(),
            decryption: Some(vec![PendingItem {
                slot,
                header: ct.to_bytes(),
                expected_label: label,
            }]),
        };
        let restored = RetiredEpoch::from_snapshot(&config, Epoch(6), old).unwrap();
        assert_eq!(restored.pending_requests(), expected);
    }
}
