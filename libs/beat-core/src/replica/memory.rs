//! An [`EventLog`] in memory (raft-rs's `MemStorage` plays the same part): what a replica's
//! disk holds, for the simulator and for tests. It survives a simulated crash — hand it (or a
//! clone) to a new [`Replica::open`](super::Replica::open) — so a restart runs the shipped replay
//! over exactly what was logged.

use std::convert::Infallible;

use beat_types::Epoch;

use super::{Event, EventLog};
use crate::{Batch, Checkpoint, CommitCertificate, CommittedBatch, epoch::StoredFragments};

/// One replica's storage.
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    next_seq: u64,
    /// Events logged since the last checkpoint (earlier ones are dropped, as on disk).
    events: Vec<(u64, Event)>,
    /// The last checkpoint and where replay starts.
    checkpoint: Option<(Checkpoint, u64)>,
    /// Every committed batch, in epoch order, with its certificate once certified.
    committed: Vec<CommittedBatch>,
    /// Fragments stored since the network last collected them for the checker.
    stored: Vec<(Epoch, Vec<StoredFragments>, bool)>,
}

impl MemoryLog {
    /// Everything committed, in order.
    pub fn committed(&self) -> &[CommittedBatch] {
        &self.committed
    }

    /// Events logged since the last checkpoint.
    pub fn logged(&self) -> usize {
        self.events.len()
    }

    /// Events ever appended (the next sequence number).
    pub fn appended(&self) -> u64 {
        self.next_seq
    }

    /// The events logged since the last checkpoint, with their sequence numbers.
    pub fn events(&self) -> &[(u64, Event)] {
        &self.events
    }

    /// Forgets the checkpoint: the next open replays the events still held from a fresh node
    /// (what a lost checkpoint file does to the consensus store).
    pub fn forget_checkpoint(&mut self) {
        self.checkpoint = None;
    }

    /// Takes the fragments stored since the last call (`Output::Stored`, in order).
    pub fn take_stored(&mut self) -> Vec<(Epoch, Vec<StoredFragments>, bool)> {
        std::mem::take(&mut self.stored)
    }

    fn position(&self, epoch: Epoch) -> Result<usize, usize> {
        self.committed
            .binary_search_by_key(&epoch, |b| b.batch.epoch)
    }
}

impl EventLog for MemoryLog {
    type Error = Infallible;

    fn append(&mut self, event: &Event) -> Result<u64, Infallible> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.events.push((seq, event.clone()));
        Ok(seq)
    }

    fn checkpoint(&self) -> Result<Option<(Checkpoint, u64)>, Infallible> {
        Ok(self.checkpoint.clone())
    }

    fn save_checkpoint(&mut self, checkpoint: Checkpoint, next: u64) -> Result<(), Infallible> {
        self.checkpoint = Some((checkpoint, next));
        self.events.retain(|(seq, _)| *seq >= next);
        Ok(())
    }

    fn events_from(&self, from: u64) -> Result<Vec<(u64, Event)>, Infallible> {
        Ok(self
            .events
            .iter()
            .filter(|(seq, _)| *seq >= from)
            .cloned()
            .collect())
    }

    /// Idempotent: a replayed batch is the one stored already (a replay that commits
    /// something else is an equivocation `RST-1` reports from the messages it sends).
    fn put_batch(&mut self, batch: &Batch) -> Result<(), Infallible> {
        if let Err(i) = self.position(batch.epoch) {
            self.committed.insert(
                i,
                CommittedBatch {
                    batch: batch.clone(),
                    certificate: None,
                },
            );
        }
        Ok(())
    }

    fn put_certificate(&mut self, certificate: &CommitCertificate) -> Result<(), Infallible> {
        if let Ok(i) = self.position(certificate.statement.epoch) {
            self.committed[i].certificate = Some(*certificate);
        }
        Ok(())
    }

    fn batch(&self, epoch: Epoch) -> Result<Option<Batch>, Infallible> {
        Ok(self
            .position(epoch)
            .ok()
            .map(|i| self.committed[i].batch.clone()))
    }

    fn batches_within(
        &self,
        from: Epoch,
        count: usize,
        max_bytes: usize,
    ) -> Result<Vec<CommittedBatch>, Infallible> {
        let start = self.position(from).unwrap_or_else(|i| i);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for b in self.committed[start..].iter().take(count) {
            bytes = bytes.saturating_add(postcard::to_allocvec(&b.batch).map_or(0, |v| v.len()));
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(b.clone());
        }
        Ok(out)
    }

    fn put_fragments(
        &mut self,
        epoch: Epoch,
        fragments: &[StoredFragments],
        complete: bool,
    ) -> Result<(), Infallible> {
        self.stored.push((epoch, fragments.to_vec(), complete));
        Ok(())
    }
}
