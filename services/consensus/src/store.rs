//! Durable state: the write-ahead log, checkpoints, committed batches, stored fragments and
//! the proposal seed, in one sled database.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `"format"`, `"seed"`, `"checkpoint"` | format marker, the secret proposal seed, the last checkpoint with the WAL position after it |
//! | `wal` | sequence (u64 BE) | an event, postcard |
//! | `batches` | epoch (u64 BE) | a committed batch, postcard |
//! | `fragments` | epoch, proposer (u64 BE, u32 BE) | this replica's fragments of a dispersal, postcard |
//!
//! Every event is appended to the WAL before it is processed; [`Store::flush`] makes everything
//! written so far durable and runs before any effect leaves the process (group commit).

use std::path::Path;

use beat_core::{Batch, Checkpoint, Input, Message, ProposalSeed, Reply, epoch::StoredFragments};
use beat_types::{Epoch, NodeId};
use serde::{Deserialize, Serialize};

/// A logged event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalEvent {
    /// A local input (client submission).
    Input(Input),
    /// A message from a peer.
    Message(NodeId, Message),
    /// A keystore or storage reply.
    Reply(Reply),
}

/// Storage errors. Every one of them stops the service: a replica must not continue on a store
/// it cannot trust.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// Stored data does not decode.
    #[error(
        "corrupt store: {0}; refusing to start (restore from backup or remove the data directory to resync)"
    )]
    Corrupt(String),
    /// The OS random source failed.
    #[error("cannot read OS randomness: {0}")]
    Random(String),
}

const FORMAT: &[u8] = b"beat-consensus-store/1";

/// The consensus store.
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    wal: sled::Tree,
    batches: sled::Tree,
    fragments: sled::Tree,
    next_seq: u64,
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).unwrap_or_default()
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn fragment_key(epoch: Epoch, proposer: NodeId) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&epoch.0.to_be_bytes());
    k[8..].copy_from_slice(&proposer.0.to_be_bytes());
    k
}

#[derive(Serialize, Deserialize)]
struct StoredCheckpoint {
    checkpoint: Checkpoint,
    next_seq: u64,
}

/// sled page-cache budget.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            // sled's page cache defaults to 1 GiB; the hot data (WAL tail, last batches) is
            // small, and the service's memory budget is 100 MiB.
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let meta = db.open_tree("meta")?;
        match meta.get("format")? {
            Some(f) if f.as_ref() == FORMAT => {}
            Some(f) => {
                return Err(StoreError::Corrupt(format!(
                    "unknown store format {:?}",
                    String::from_utf8_lossy(&f)
                )));
            }
            None if db.tree_names().len() > 2 || !meta.is_empty() => {
                return Err(StoreError::Corrupt("store without a format marker".into()));
            }
            None => {
                meta.insert("format", FORMAT)?;
            }
        }
        let wal = db.open_tree("wal")?;
        let next_seq = match wal.last()? {
            Some((k, _)) => {
                let bytes: [u8; 8] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("WAL key".into()))?;
                u64::from_be_bytes(bytes) + 1
            }
            None => 0,
        };
        Ok(Self {
            meta,
            wal,
            batches: db.open_tree("batches")?,
            fragments: db.open_tree("fragments")?,
            db,
            next_seq,
        })
    }

    /// The secret proposal seed, created from OS randomness on first use.
    pub fn proposal_seed(&self) -> Result<ProposalSeed, StoreError> {
        if let Some(bytes) = self.meta.get("seed")? {
            let seed: [u8; 32] = bytes
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("proposal seed".into()))?;
            return Ok(ProposalSeed(seed));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| StoreError::Random(e.to_string()))?;
        self.meta.insert("seed", &seed[..])?;
        self.db.flush()?;
        Ok(ProposalSeed(seed))
    }

    /// Appends an event to the WAL; returns its sequence number.
    pub fn append(&mut self, event: &WalEvent) -> Result<u64, StoreError> {
        let seq = self.next_seq;
        self.wal.insert(seq_key(seq), encode(event))?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The last checkpoint and the WAL position replay starts from.
    pub fn checkpoint(&self) -> Result<Option<(Checkpoint, u64)>, StoreError> {
        match self.meta.get("checkpoint")? {
            Some(bytes) => {
                let stored: StoredCheckpoint = decode(&bytes, "checkpoint")?;
                Ok(Some((stored.checkpoint, stored.next_seq)))
            }
            None => Ok(None),
        }
    }

    /// Saves a checkpoint taken after the event with sequence `next_seq - 1` and drops the WAL
    /// before `next_seq` (a crash between the two leaves entries replay ignores).
    pub fn save_checkpoint(
        &mut self,
        checkpoint: &Checkpoint,
        next_seq: u64,
    ) -> Result<(), StoreError> {
        let stored = StoredCheckpoint {
            checkpoint: checkpoint.clone(),
            next_seq,
        };
        self.meta.insert("checkpoint", encode(&stored))?;
        let mut batch = sled::Batch::default();
        for key in self.wal.range(..seq_key(next_seq)).keys() {
            batch.remove(key?);
        }
        self.wal.apply_batch(batch)?;
        Ok(())
    }

    /// Logged events from `from` on, in order.
    pub fn wal_from(&self, from: u64) -> Result<Vec<(u64, WalEvent)>, StoreError> {
        self.wal
            .range(seq_key(from)..)
            .map(|r| {
                let (k, v) = r?;
                let seq = u64::from_be_bytes(
                    k.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("WAL key".into()))?,
                );
                Ok((seq, decode(&v, "WAL event")?))
            })
            .collect()
    }

    /// Stores a committed batch (idempotent).
    pub fn put_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        self.batches
            .insert(batch.epoch.0.to_be_bytes(), encode(batch))?;
        Ok(())
    }

    /// A committed batch.
    pub fn batch(&self, epoch: Epoch) -> Result<Option<Batch>, StoreError> {
        self.batches
            .get(epoch.0.to_be_bytes())?
            .map(|b| decode(&b, "batch"))
            .transpose()
    }

    /// Up to `count` committed batches from `from` on.
    pub fn batches_from(&self, from: Epoch, count: usize) -> Result<Vec<Batch>, StoreError> {
        self.batches
            .range(from.0.to_be_bytes()..)
            .values()
            .take(count)
            .map(|v| decode(&v?, "batch"))
            .collect()
    }

    /// The number of committed epochs (the next epoch to commit).
    pub fn committed_epochs(&self) -> Result<u64, StoreError> {
        Ok(match self.batches.last()? {
            Some((k, _)) => {
                let bytes: [u8; 8] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("batch key".into()))?;
                u64::from_be_bytes(bytes) + 1
            }
            None => 0,
        })
    }

    /// Stores this replica's fragments of an epoch's dispersals.
    pub fn put_fragments(
        &self,
        epoch: Epoch,
        fragments: &[StoredFragments],
    ) -> Result<(), StoreError> {
        for f in fragments {
            self.fragments
                .insert(fragment_key(epoch, f.proposer), encode(f))?;
        }
        Ok(())
    }

    /// This replica's fragments of `proposer`'s dispersal in `epoch`.
    pub fn fragments(
        &self,
        epoch: Epoch,
        proposer: NodeId,
    ) -> Result<Option<StoredFragments>, StoreError> {
        self.fragments
            .get(fragment_key(epoch, proposer))?
            .map(|b| decode(&b, "fragments"))
            .transpose()
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// A handle that flushes this store from another thread: everything written before
    /// [`Flusher::flush`] is called is durable when it returns.
    pub fn flusher(&self) -> Flusher {
        Flusher(self.db.clone())
    }
}

/// Flushes a [`Store`] from another thread (see [`Store::flusher`]).
#[derive(Clone)]
pub struct Flusher(sled::Db);

impl Flusher {
    /// Makes everything written before this call durable (`fsync`).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.0.flush()?;
        Ok(())
    }
}
