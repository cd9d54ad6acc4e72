//! What a [`Replica`](super::Replica) needs from durable storage: a write-ahead log of the
//! events it processes, the last checkpoint, and the committed history it serves to peers.

use beat_types::{Epoch, NodeId};
use serde::{Deserialize, Serialize};

use crate::{
    Batch, Checkpoint, CommitCertificate, CommittedBatch, Input, Message, Reply,
    epoch::StoredFragments,
};

/// An event a replica processes, logged before it is processed (write-ahead). Its serde layout
/// is the consensus service's on-disk WAL record: change it only with a store format bump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A local input (client submission, stall report).
    Input(Input),
    /// A message from a peer.
    Message(NodeId, Message),
    /// A keystore or storage reply.
    Reply(Reply),
}

/// Durable storage of one replica, as the [`Replica`](super::Replica) host uses it.
///
/// Contract (what replay relies on):
/// - [`append`](Self::append) numbers events consecutively; an event is durable no later than
///   the host performs any effect of it (the host flushes before sending, `docs/ARCHITECTURE.md`
///   §4).
/// - [`save_checkpoint`](Self::save_checkpoint)`(c, next)` makes `c` the state to restart from
///   and replay start at event `next`; events below `next` may be dropped. Batches,
///   certificates and fragments stored before it must be durable by then.
/// - The `put_*` writes are idempotent: replay performs them again.
pub trait EventLog {
    /// Why storage failed. Every such error stops the replica: it must not go on over a log
    /// it cannot trust.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Appends `event`; returns its sequence number.
    fn append(&mut self, event: &Event) -> Result<u64, Self::Error>;

    /// The last checkpoint and the sequence number replay starts from.
    fn checkpoint(&self) -> Result<Option<(Checkpoint, u64)>, Self::Error>;

    /// Saves `checkpoint`, taken after event `next - 1`. It may become durable after this
    /// returns (a host may write it in the background while events go on being appended), but
    /// events below `next` are dropped only once it is, and an error in writing it is returned
    /// by a later call at the latest.
    fn save_checkpoint(&mut self, checkpoint: Checkpoint, next: u64) -> Result<(), Self::Error>;

    /// Waits until the last saved checkpoint is durable (a no-op for a log that saves them
    /// synchronously).
    fn finish_checkpoint(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// The logged events from `from` on, in order.
    fn events_from(&self, from: u64) -> Result<Vec<(u64, Event)>, Self::Error>;

    /// Stores a committed batch.
    fn put_batch(&mut self, batch: &Batch) -> Result<(), Self::Error>;

    /// Stores a commit certificate.
    fn put_certificate(&mut self, certificate: &CommitCertificate) -> Result<(), Self::Error>;

    /// A committed batch.
    fn batch(&self, epoch: Epoch) -> Result<Option<Batch>, Self::Error>;

    /// Up to `count` committed batches from `from` on, with their certificates, whose
    /// encodings add up to at most `max_bytes` (but always the first, if it exists): a
    /// catch-up answer must fit in the asking peer's payload limit.
    fn batches_within(
        &self,
        from: Epoch,
        count: usize,
        max_bytes: usize,
    ) -> Result<Vec<CommittedBatch>, Self::Error>;

    /// Stores this replica's verified fragments of an epoch's dispersals (BEAT3/BEAT4 with
    /// commitments-only delivery); `complete` as in [`Output::Stored`](crate::Output::Stored).
    fn put_fragments(
        &mut self,
        epoch: Epoch,
        fragments: &[StoredFragments],
        complete: bool,
    ) -> Result<(), Self::Error>;
}
