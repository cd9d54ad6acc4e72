//! The sled store: the state snapshot after the last applied epoch, a bounded history of epoch
//! reports, and the feed's start counter.
//!
//! Layout (one sled tree, the default one):
//!
//! | key | value |
//! |---|---|
//! | `format` | `le32(STORE_FORMAT)` |
//! | `snapshot` | postcard [`Snapshot`]: parameters, applied epoch, hash chain, state body |
//! | `r` ‖ `be64(epoch)` | postcard [`EpochReport`] of that epoch (the last `report_history`) |
//! | `starts` | `be64`: how many times the feed has been started |
//!
//! After applying epoch `e` the snapshot (which holds `applied_epoch = e`), the report of `e` and
//! the removal of the report that leaves the history go in **one** sled batch, which sled applies
//! atomically: after a crash the store holds either epoch `e - 1` or epoch `e`, never a mix.
//! With `flush = "every_epoch"` the batch is flushed (`fsync`) before the epoch counts as
//! applied; with `flush = "background"` sled flushes every `flush_interval`, and a crash may lose
//! the last few epochs — they are applied again from the consensus history on restart.
//!
//! A store that cannot be opened or read, lacks its format marker, or whose snapshot fails to
//! decode or to match its own hash chain is reported as corrupt and the service refuses to start:
//! it never silently resets to genesis.

use std::path::{Path, PathBuf};

use crate::{
    config::{FlushPolicy, StoreConfig},
    market::{EpochReport, MarketParams, MarketState, SNAPSHOT_FORMAT, Snapshot, SnapshotError},
};

/// Version of the store layout.
pub const STORE_FORMAT: u32 = 1;

const FORMAT_KEY: &[u8] = b"format";
const SNAPSHOT_KEY: &[u8] = b"snapshot";
const STARTS_KEY: &[u8] = b"starts";
const REPORT_PREFIX: u8 = b'r';

fn report_key(epoch: u64) -> [u8; 9] {
    let mut key = [REPORT_PREFIX; 9];
    key[1..].copy_from_slice(&epoch.to_be_bytes());
    key
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open the directory.
    #[error("cannot open the store at {path}: {source}")]
    Open {
        /// Directory.
        path: PathBuf,
        /// Cause.
        source: sled::Error,
    },
    /// The content is not what this service wrote.
    #[error(
        "the store at {path} is corrupt: {problem}; refusing to start (move the directory away to \
         rebuild the state from the consensus history)"
    )]
    Corrupt {
        /// Directory.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The snapshot was computed with other market parameters.
    #[error("the store at {path} does not match the configuration: {source}")]
    Mismatch {
        /// Directory.
        path: PathBuf,
        /// Cause.
        source: SnapshotError,
    },
    /// A read or write failed.
    #[error("store I/O failed: {0}")]
    Io(#[from] sled::Error),
}

/// The sled store. Cloning shares the open database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    path: PathBuf,
    flush: FlushPolicy,
    report_history: u64,
}

impl Store {
    /// Opens (or creates) the store.
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let flush_every_ms = match config.flush {
            FlushPolicy::EveryEpoch => None,
            FlushPolicy::Background => Some(
                u64::try_from(config.flush_interval.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            ),
        };
        let path = config.path.clone();
        let sled_config = sled::Config::new()
            .path(&path)
            .flush_every_ms(flush_every_ms)
            // sled's page cache defaults to 1 GiB; bound it to the service's memory budget.
            .cache_capacity(32 * 1024 * 1024);
        // sled's background threads hold the database's file lock for a moment after the last
        // handle is dropped (and a restarted process's predecessor may still be exiting): a
        // lock conflict is retried for a bounded time before it is reported.
        let mut attempts = 0;
        let db = loop {
            match sled_config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if attempts < 50 && e.to_string().contains("could not acquire lock") =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(source) => return Err(StoreError::Open { path, source }),
            }
        };
        let store = Self {
            db,
            path,
            flush: config.flush,
            report_history: config.report_history,
        };
        store.check_format()?;
        Ok(store)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, problem: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            problem: problem.into(),
        }
    }

    fn check_format(&self) -> Result<(), StoreError> {
        match self.db.get(FORMAT_KEY)? {
            Some(v) if v.as_ref() == STORE_FORMAT.to_le_bytes() => Ok(()),
            Some(v) => Err(self.corrupt(format!("unknown format marker {:?}", v.as_ref()))),
            None if self.db.is_empty() => {
                self.db.insert(FORMAT_KEY, &STORE_FORMAT.to_le_bytes())?;
                self.db.flush()?;
                Ok(())
            }
            None => Err(self.corrupt("data without a format marker")),
        }
    }

    /// Loads the state after the last applied epoch (the genesis state if none was), checking
    /// the snapshot's hash chain and parameters, and drops reports beyond the history bound.
    pub fn load_state(&self, params: &MarketParams) -> Result<MarketState, StoreError> {
        let Some(bytes) = self.db.get(SNAPSHOT_KEY)? else {
            if self.db.scan_prefix([REPORT_PREFIX]).next().is_some() {
                return Err(self.corrupt("epoch reports without a snapshot"));
            }
            return Ok(MarketState::new(params.clone()));
        };
        let snapshot: Snapshot = postcard::from_bytes(&bytes).map_err(|e| {
            // The format number leads the encoding: name an earlier format rather than "does
            // not decode", with what to do about it.
            match postcard::take_from_bytes::<u32>(&bytes) {
                Ok((format @ 1.., _)) if format < SNAPSHOT_FORMAT => {
                    self.corrupt(SnapshotError::Format(format).to_string())
                }
                _ => self.corrupt(format!("the snapshot does not decode: {e}")),
            }
        })?;
        let state = MarketState::restore(params.clone(), &snapshot).map_err(|e| match e {
            SnapshotError::Params { .. } => StoreError::Mismatch {
                path: self.path.clone(),
                source: e,
            },
            other => self.corrupt(other.to_string()),
        })?;
        if let Some(applied) = state.applied_epoch() {
            let keep_from = (applied + 1).saturating_sub(self.report_history);
            let mut batch = sled::Batch::default();
            for key in self.db.range(report_key(0)..report_key(keep_from)).keys() {
                batch.remove(key?);
            }
            self.db.apply_batch(batch)?;
        }
        Ok(state)
    }

    /// Stores the snapshot after an epoch and the epoch's report in one atomic batch, and
    /// flushes it if the policy says so.
    pub fn commit(&self, snapshot: &Snapshot, report: &EpochReport) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_KEY, encode(snapshot));
        batch.insert(&report_key(report.epoch), encode(report));
        if let Some(old) = report.epoch.checked_sub(self.report_history) {
            batch.remove(&report_key(old));
        }
        self.db.apply_batch(batch)?;
        if self.flush == FlushPolicy::EveryEpoch {
            self.db.flush()?;
        }
        Ok(())
    }

    /// Up to `max` stored reports from epoch `from` on, in epoch order.
    pub fn reports(&self, from: u64, max: usize) -> Result<Vec<EpochReport>, StoreError> {
        self.db
            .range(report_key(from)..=report_key(u64::MAX))
            .values()
            .take(max)
            .map(|v| {
                let v = v?;
                postcard::from_bytes(&v)
                    .map_err(|e| self.corrupt(format!("an epoch report does not decode: {e}")))
            })
            .collect()
    }

    /// The oldest retained report's epoch.
    pub fn oldest_report(&self) -> Result<Option<u64>, StoreError> {
        let Some(key) = self.db.scan_prefix([REPORT_PREFIX]).keys().next() else {
            return Ok(None);
        };
        let key = key?;
        let epoch: [u8; 8] = key[1..]
            .try_into()
            .map_err(|_| self.corrupt("a report key is not 9 bytes"))?;
        Ok(Some(u64::from_be_bytes(epoch)))
    }

    /// Counts a start of the feed and returns the previous count (0 at the first start), flushed
    /// before it is used so that two starts never share a source name.
    pub fn next_feed_start(&self) -> Result<u64, StoreError> {
        let previous = match self.db.get(STARTS_KEY)? {
            None => 0,
            Some(v) => {
                let bytes: [u8; 8] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| self.corrupt("the feed start counter is not 8 bytes"))?;
                u64::from_be_bytes(bytes)
            }
        };
        self.db.insert(STARTS_KEY, &(previous + 1).to_be_bytes())?;
        self.db.flush()?;
        Ok(previous)
    }

    /// Flushes everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard encodes in-memory state")
}
