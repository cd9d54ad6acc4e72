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

/// A pending decryption item as stored: the ciphertext in its wire encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PendingItem {
    slot: CiphertextSlot,
    ciphertext: Vec<u8>,
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
                        ciphertext: i.ciphertext.to_bytes(),
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
                        let ciphertext = tdh2::Ciphertext::from_bytes(&item.ciphertext)
                            .map_err(|_| bad("an undecodable pending ciphertext"))?;
                        Ok(DecryptionItem {
                            slot: item.slot,
                            ciphertext: Arc::new(ciphertext),
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
