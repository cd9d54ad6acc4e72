//! Share collection and combination for one epoch's ciphertexts.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use beat_crypto::tdh2::{self, Ciphertext, CiphertextHeader, DecryptionShare, Undecryptable};
use beat_types::{Committee, Epoch, NodeId};

use crate::{CiphertextSlot, DecryptionItem, Fault, FaultKind, Request};

/// A ciphertext to decrypt, verified against its expected label: where it sits, the ciphertext,
/// its header (what the keystore is sent) and the label.
pub type VerifiedCiphertext = (
    CiphertextSlot,
    Arc<Ciphertext>,
    Arc<CiphertextHeader>,
    Vec<u8>,
);

#[derive(Debug)]
struct Slot {
    ciphertext: Arc<Ciphertext>,
    header: Arc<CiphertextHeader>,
    label: Vec<u8>,
    shares: BTreeMap<NodeId, DecryptionShare>,
    bad: BTreeSet<NodeId>,
    result: Option<Result<Vec<u8>, Undecryptable>>,
}

/// The decryption phase of one epoch.
#[derive(Debug)]
pub struct Decryption {
    keys: Arc<tdh2::PublicKey>,
    committee: Committee,
    slots: BTreeMap<CiphertextSlot, Slot>,
    pending: usize,
}

impl Decryption {
    /// Starts decrypting `ciphertexts`, each already verified against its expected label and
    /// given with its header.
    pub fn new(
        keys: Arc<tdh2::PublicKey>,
        committee: Committee,
        ciphertexts: Vec<VerifiedCiphertext>,
    ) -> Self {
        let slots: BTreeMap<_, _> = ciphertexts
            .into_iter()
            .map(|(slot, ciphertext, header, label)| {
                (
                    slot,
                    Slot {
                        ciphertext,
                        header,
                        label,
                        shares: BTreeMap::new(),
                        bad: BTreeSet::new(),
                        result: None,
                    },
                )
            })
            .collect();
        let pending = slots.len();
        Self {
            keys,
            committee,
            slots,
            pending,
        }
    }

    /// D1: the keystore request for this replica's shares, if there is anything to decrypt.
    pub fn request(&self, epoch: Epoch) -> Option<Request> {
        if self.slots.is_empty() {
            return None;
        }
        let items = self
            .slots
            .iter()
            .map(|(slot, s)| DecryptionItem {
                slot: *slot,
                header: s.header.clone(),
                expected_label: s.label.clone(),
            })
            .collect();
        Some(Request::DecryptionShares { epoch, items })
    }

    /// Returns `true` once every slot has a result.
    pub fn is_done(&self) -> bool {
        self.pending == 0
    }

    /// The result of `slot`, once known.
    pub fn result(&self, slot: &CiphertextSlot) -> Option<&Result<Vec<u8>, Undecryptable>> {
        self.slots.get(slot).and_then(|s| s.result.as_ref())
    }

    /// D3: adds `sender`'s shares (this replica's own included) and combines where possible.
    /// Returns the faults observed.
    pub fn add_shares(
        &mut self,
        sender: NodeId,
        shares: impl IntoIterator<Item = (CiphertextSlot, DecryptionShare)>,
    ) -> Vec<Fault> {
        let mut faults = Vec::new();
        let mut unexpected = false;
        let mut touched = BTreeSet::new();
        for (slot_id, share) in shares {
            let Some(slot) = self.slots.get_mut(&slot_id) else {
                unexpected = true;
                continue;
            };
            if slot.result.is_some() || slot.bad.contains(&sender) {
                continue;
            }
            match slot.shares.get(&sender) {
                Some(s) if *s != share => {
                    faults.push(Fault::new(sender, FaultKind::ConflictingDecryptionShare));
                }
                Some(_) => {}
                None => {
                    slot.shares.insert(sender, share);
                    touched.insert(slot_id);
                }
            }
        }
        if unexpected {
            faults.push(Fault::new(sender, FaultKind::UnexpectedDecryptionShares));
        }
        for slot_id in touched {
            self.try_combine(slot_id, &mut faults);
        }
        faults
    }

    fn try_combine(&mut self, slot_id: CiphertextSlot, faults: &mut Vec<Fault>) {
        let needed = self.committee.f_plus_one();
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return;
        };
        if slot.result.is_some() || slot.shares.len() < needed {
            return;
        }
        let combined = self.keys.decrypt_optimistic(&slot.ciphertext, &slot.shares);
        for bad in combined.invalid_shares {
            slot.shares.remove(&bad);
            slot.bad.insert(bad);
            faults.push(Fault::new(bad, FaultKind::InvalidDecryptionShare));
        }
        if let Some(result) = combined.value {
            slot.result = Some(result);
            slot.shares.clear();
            self.pending -= 1;
        }
    }
}
