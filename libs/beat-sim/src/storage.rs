//! Storage invariants of commitments-only delivery (BEAT3/BEAT4 as BFT storage): `RET-1`
//! retrievability and `RD-1` read consistency (see the table in [`crate::invariants`]).
//!
//! With `delivery = commitments_only` a committed batch carries one [`StoredCommitment`] per
//! included dispersal, and each replica keeps its verified fragments ([`Output::Stored`],
//! emitted just before the batch). A reader later fetches fragments from the replicas and
//! decodes. This module plays that reader for every committed epoch, once every honest replica
//! has committed it (so every fragment an honest replica will ever store for it is in): it
//! decodes each commitment from the fragments the *honest* replicas stored — a full read, and
//! for BEAT4 every group's partial read — and hands the decoded transactions back to the
//! [`Checker`](crate::invariants::Checker), for which "committed" then means "retrievable".
//!
//! The cost is bounded: each epoch is checked once, with one full decode per contribution
//! (`≤ n`), one re-dispersal per honest contribution, and for BEAT4 at most `k + groups`
//! partial reads per contribution, all of small payloads.
//!
//! [`Output::Stored`]: beat_core::Output::Stored

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use beat_core::{
    Batch, Content, Params, StoredCommitment, broadcast::BroadcastConfig,
    codec::decode_transactions, epoch::StoredFragments,
};
use beat_crypto::{
    Digest,
    avid_fp::{AvidFpCode, AvidFpError, Fpcc, Fragment},
};
use beat_types::{Committee, Epoch, NodeId, Transaction};

/// A contribution a reader retrieved: its proposer and the transactions it decodes to
/// (`None` if the decoded bytes are not a well-formed contribution).
#[derive(Debug)]
pub(crate) struct Retrieved {
    pub proposer: NodeId,
    pub transactions: Option<Vec<Transaction>>,
}

/// What checking one epoch found.
#[derive(Debug, Default)]
pub(crate) struct EpochCheck {
    /// `(invariant, detail)` for every violation.
    pub violations: Vec<(&'static str, String)>,
    /// The contributions that decoded.
    pub retrieved: Vec<Retrieved>,
}

impl EpochCheck {
    fn violate(&mut self, invariant: &'static str, detail: String) {
        self.violations.push((invariant, detail));
    }
}

/// Collects honest replicas' stored fragments and committed batches, and checks each epoch as
/// a reader would.
pub(crate) struct StorageCheck {
    code: Arc<AvidFpCode>,
    max_count: usize,
    max_tx_bytes: usize,
    /// Honest replicas' stored fragments per epoch, until the epoch is checked.
    stored: BTreeMap<Epoch, BTreeMap<NodeId, Vec<StoredFragments>>>,
    /// Replicas that adopted an epoch through catch-up: they keep only what they had verified,
    /// so the "a record for every committed dispersal" check does not apply to them.
    partial: BTreeSet<(Epoch, NodeId)>,
    /// The committed batch of each epoch, until it is checked.
    batches: BTreeMap<Epoch, Batch>,
    /// The commitment of each honest proposer's own dispersal, per epoch (from its `Val`).
    proposed: BTreeMap<(Epoch, NodeId), Digest>,
    /// The first epoch not checked yet.
    next: Epoch,
}

impl StorageCheck {
    pub fn new(committee: Committee, params: &Params) -> Self {
        Self {
            code: BroadcastConfig::new(committee, params).code,
            max_count: params.proposal_size(committee),
            max_tx_bytes: params.max_transaction_bytes,
            stored: BTreeMap::new(),
            batches: BTreeMap::new(),
            partial: BTreeSet::new(),
            proposed: BTreeMap::new(),
            next: Epoch::ZERO,
        }
    }

    /// Records the fragments an honest replica stored for `epoch`.
    pub fn on_stored(
        &mut self,
        node: NodeId,
        epoch: Epoch,
        fragments: &[StoredFragments],
        complete: bool,
    ) {
        if epoch >= self.next {
            if !complete {
                self.partial.insert((epoch, node));
            }
            self.stored
                .entry(epoch)
                .or_default()
                .entry(node)
                .or_default()
                .extend(fragments.iter().cloned());
        }
    }

    /// Records the commitment of an honest proposer's own dispersal.
    pub fn on_proposed(&mut self, proposer: NodeId, epoch: Epoch, fpcc: &Fpcc) {
        if epoch >= self.next {
            self.proposed.insert((epoch, proposer), fpcc.digest());
        }
    }

    /// Records an epoch's committed batch (the first honest commit of it; AGR-1 checks that the
    /// others match).
    pub fn on_committed(&mut self, batch: &Batch) {
        if batch.epoch >= self.next {
            self.batches
                .entry(batch.epoch)
                .or_insert_with(|| batch.clone());
        }
    }

    /// Checks every unchecked epoch below `committed_everywhere` (the lowest epoch some honest
    /// replica has not committed), in order.
    pub fn check_up_to(
        &mut self,
        committed_everywhere: Epoch,
        faulty: &BTreeSet<NodeId>,
    ) -> Vec<(Epoch, EpochCheck)> {
        let mut out = Vec::new();
        while self.next < committed_everywhere {
            let epoch = self.next;
            self.next = epoch.next();
            let stored = self.stored.remove(&epoch).unwrap_or_default();
            let proposed = {
                let later = self.proposed.split_off(&(epoch.next(), NodeId(0)));
                std::mem::replace(&mut self.proposed, later)
            };
            let Some(batch) = self.batches.remove(&epoch) else {
                continue;
            };
            out.push((epoch, self.check_epoch(&batch, &stored, &proposed, faulty)));
            self.partial.retain(|(e, _)| *e > epoch);
        }
        out
    }

    fn check_epoch(
        &self,
        batch: &Batch,
        stored: &BTreeMap<NodeId, Vec<StoredFragments>>,
        proposed: &BTreeMap<(Epoch, NodeId), Digest>,
        faulty: &BTreeSet<NodeId>,
    ) -> EpochCheck {
        let mut check = EpochCheck::default();
        let epoch = batch.epoch;
        let commitments: BTreeMap<NodeId, &StoredCommitment> = batch
            .contributions
            .iter()
            .filter_map(|c| match &c.content {
                Content::Stored(s) => Some((c.proposer, s)),
                _ => None,
            })
            .collect();
        for (node, records) in stored {
            for r in records {
                if !commitments.contains_key(&r.proposer) {
                    check.violate(
                        "RET-1",
                        format!(
                            "epoch {epoch}: node {node} stored fragments of proposer {}, whose \
                             dispersal was not committed",
                            r.proposer
                        ),
                    );
                }
            }
            for proposer in commitments.keys() {
                if self.partial.contains(&(epoch, *node)) {
                    break;
                }
                if !records.iter().any(|r| r.proposer == *proposer) {
                    check.violate(
                        "RET-1",
                        format!(
                            "epoch {epoch}: node {node} stored nothing for proposer {proposer}'s \
                             committed dispersal"
                        ),
                    );
                }
            }
        }
        for (proposer, commitment) in commitments {
            let honest = !faulty.contains(&proposer);
            if honest
                && let Some(own) = proposed.get(&(epoch, proposer))
                && *own != commitment.commitment
            {
                check.violate(
                    "RET-1",
                    format!(
                        "epoch {epoch}: the commitment committed for honest proposer {proposer} \
                         is not the one it dispersed"
                    ),
                );
            }
            self.check_contribution(&mut check, epoch, proposer, commitment, stored, honest);
        }
        check
    }

    /// RET-1 and RD-1 for one committed commitment.
    fn check_contribution(
        &self,
        check: &mut EpochCheck,
        epoch: Epoch,
        proposer: NodeId,
        commitment: &StoredCommitment,
        stored: &BTreeMap<NodeId, Vec<StoredFragments>>,
        honest: bool,
    ) {
        let mut fpcc = None;
        let mut fragments: Vec<Fragment> = Vec::new();
        for (node, records) in stored {
            for r in records.iter().filter(|r| r.proposer == proposer) {
                if r.fpcc.digest() != commitment.commitment
                    || r.fpcc.payload_len != commitment.payload_len
                {
                    check.violate(
                        "RET-1",
                        format!(
                            "epoch {epoch}: node {node} stored proposer {proposer}'s fragments \
                             under a cross-checksum that is not the committed one"
                        ),
                    );
                    continue;
                }
                fpcc.get_or_insert_with(|| r.fpcc.clone());
                fragments.extend(r.fragments.iter().cloned());
            }
        }
        let Some(fpcc) = fpcc else {
            check.violate(
                "RET-1",
                format!(
                    "epoch {epoch}: no honest replica stored the cross-checksum of proposer \
                     {proposer}'s committed dispersal"
                ),
            );
            return;
        };
        let n = self.code.n();
        let mds: Vec<Fragment> = fragments
            .iter()
            .filter(|f| (f.index as usize) < n)
            .cloned()
            .collect();
        let full = self.code.decode_reporting(&fpcc, &mds);
        match &full {
            Ok(outcome) if !outcome.rejected.is_empty() => check.violate(
                "RET-1",
                format!(
                    "epoch {epoch}: honest replicas stored fragments of proposer {proposer} that \
                     fail verification: {:?}",
                    outcome.rejected
                ),
            ),
            Ok(_) => {}
            Err(e) => check.violate(
                "RET-1",
                format!(
                    "epoch {epoch}: proposer {proposer}'s committed dispersal does not decode \
                     from the honest replicas' fragments: {e}"
                ),
            ),
        }
        let full = full.map(|o| o.payload);
        self.check_group_reads(check, epoch, proposer, &fpcc, &fragments, &full);
        let Ok(payload) = full else {
            return;
        };
        if honest
            && self
                .code
                .disperse(&payload)
                .is_ok_and(|(own, _)| own.digest() != commitment.commitment)
        {
            check.violate(
                "RET-1",
                format!(
                    "epoch {epoch}: honest proposer {proposer}'s dispersal decodes to a value \
                     that is not its contribution"
                ),
            );
        }
        check.retrieved.push(Retrieved {
            proposer,
            transactions: decode_transactions(&payload, self.max_count, self.max_tx_bytes),
        });
    }

    /// RD-1: every partial read that answers agrees with the full read. Each group is read
    /// from all honest fragments, and once more without each of its data fragments in turn (so
    /// that the local-parity repair is exercised whenever the parity was stored). A partial
    /// read that lacks fragments falls back to the full read and is not compared; neither is
    /// one made when the full read itself lacks fragments (RET-1 reports that).
    fn check_group_reads(
        &self,
        check: &mut EpochCheck,
        epoch: Epoch,
        proposer: NodeId,
        fpcc: &Fpcc,
        fragments: &[Fragment],
        full: &Result<Vec<u8>, AvidFpError>,
    ) {
        if matches!(full, Err(AvidFpError::NotEnoughFragments { .. })) {
            return;
        }
        for group in 0..self.code.group_count() {
            let members = self.code.group_fragments(group);
            let without = |dropped: Option<u32>| -> Vec<Fragment> {
                fragments
                    .iter()
                    .filter(|f| Some(f.index) != dropped)
                    .cloned()
                    .collect()
            };
            let reads = std::iter::once(None).chain(members.iter().copied().map(Some));
            for dropped in reads {
                let partial = self.code.read_group(fpcc, group, &without(dropped));
                let detail = match (&partial, full) {
                    (Err(AvidFpError::GroupUnrecoverable { .. }), _) => continue,
                    (Ok(read), Ok(payload)) => {
                        let range = read.byte_range.start as usize..read.byte_range.end as usize;
                        if payload.get(range) == Some(read.bytes.as_slice()) {
                            continue;
                        }
                        format!(
                            "group {group} reads bytes {:?} that differ from the full read's",
                            read.byte_range
                        )
                    }
                    (Ok(read), Err(e)) => format!(
                        "group {group} reads {} bytes but the full read refuses: {e}",
                        read.bytes.len()
                    ),
                    (Err(e), Ok(_)) => {
                        format!("the full read returns a value but group {group} refuses: {e}")
                    }
                    (Err(_), Err(_)) => continue,
                };
                let how = dropped.map_or(String::new(), |i| format!(" (without fragment {i})"));
                check.violate(
                    "RD-1",
                    format!("epoch {epoch}, proposer {proposer}: {detail}{how}"),
                );
                break;
            }
        }
    }
}
