//! Durable state of the consensus service, in `data_dir`:
//!
//! | where | what |
//! |---|---|
//! | `wal/` | the write-ahead log: every event (client input, peer message, keystore reply) before it is processed, keyed by sequence number ([`SegmentLog`]) |
//! | `batches/` | committed batches, keyed by epoch ([`SegmentLog`]) |
//! | `certificates/` | commit certificates, keyed by epoch ([`SegmentLog`]) |
//! | `fragments/` | this replica's fragments of each agreed dispersal (BEAT3/4), keyed by epoch and proposer ([`SegmentLog`]) |
//! | `FORMAT` | the format marker |
//! | `seed` | the secret proposal seed (mode 0600) |
//! | `checkpoint5` | the last checkpoint and the WAL position after it, CRC-protected, replaced atomically (write, sync, rename, sync the directory) |
//! | `checkpoint` | the same in format 4 (before pipelining), read once after an upgrade and removed at the first new checkpoint |
//!
//! **Durability.** [`Store::flush`] (`fdatasync` of the WAL) runs before any effect of the
//! logged events leaves the process (the actor's group commit), so a restarted replica replays
//! to the same state and never contradicts what it sent. Batches, certificates and fragments are
//! derived from the WAL and need no sync of their own until a checkpoint:
//! [`Store::save_checkpoint`] syncs them, then replaces the checkpoint file — on a thread of its
//! own, while the consensus thread goes on appending — and only once that is done deletes the
//! WAL segments the checkpoint covers. A crash between checkpoints, or while one is being
//! written, loses nothing: replay from the last durable checkpoint re-creates every later batch
//! and fragment.
//!
//! (Up to format 1 all of this lived in sled, which kept every inserted value — batches,
//! checkpoints with the whole transaction buffer — in memory: 400 MiB after 30 s at 20,000
//! tx/s.)

use std::{
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
};

use beat_core::{
    Batch, Checkpoint, CommitCertificate, CommittedBatch, ProposalSeed, UnpipelinedCheckpoint,
    epoch::StoredFragments, replica::EventLog,
};
use beat_types::{Epoch, NodeId};
use serde::{Deserialize, Serialize};

use crate::segments::{LogReader, LogSyncer, SegmentError, SegmentLog};

/// A logged event: the replica host's [`beat_core::replica::Event`] (its serde layout is this
/// store's WAL record).
pub use beat_core::replica::Event as WalEvent;

/// Storage errors. Every one of them stops the service: a replica must not continue on a store
/// it cannot trust.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Stored data does not decode.
    #[error(
        "corrupt store: {0}; refusing to start (restore from backup or remove the data directory to resync)"
    )]
    Corrupt(String),
    /// The OS random source failed.
    #[error("cannot read OS randomness: {0}")]
    Random(String),
    /// The write-ahead log or the batch log failed (a file operation, or an earlier failure
    /// that poisoned it).
    #[error("storage I/O error: {0}")]
    Log(#[source] SegmentError),
    /// A store file could not be read or written.
    #[error("storage I/O error: {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl From<SegmentError> for StoreError {
    fn from(e: SegmentError) -> Self {
        match e {
            // Damage is corruption of the store, with the store's message and advice.
            SegmentError::Corrupt(what) => Self::Corrupt(what),
            other => Self::Log(other),
        }
    }
}

/// Format 5: checkpoints record whether the replica pipelines (module `beat_core::node`, P5),
/// in the file `checkpoint5`. A format-4 store is upgraded in place: its `checkpoint` is read
/// as a replica that does not pipeline, and the first new checkpoint replaces it and the
/// marker. Format 4: checkpoints carry the certification state (commit certificates) and the
/// store keeps certificates; format-3 checkpoints do not decode as format 4. Format 3 added the
/// epochs a replica left and still relays for (liveness rules R1 and R2 of the core).
const FORMAT: &[u8] = b"beat-consensus-store/5";
/// The format upgraded in place (see [`FORMAT`]).
const FORMAT_4: &[u8] = b"beat-consensus-store/4";
/// The checkpoint file of [`FORMAT`], and that of [`FORMAT_4`].
const CHECKPOINT: &str = "checkpoint5";
const CHECKPOINT_4: &str = "checkpoint";
/// Earlier formats, refused with the reason.
const EARLIER_FORMATS: &[(&[u8], &str)] = &[
    (
        b"beat-consensus-store/2",
        "whose checkpoints lack the relay state of left epochs",
    ),
    (
        b"beat-consensus-store/3",
        "whose checkpoints lack the commit-certificate state",
    ),
];
/// WAL segments rotate at checkpoints; this bounds one between them.
const WAL_SEGMENT_BYTES: u64 = 256 << 20;
/// Batch segments: a few hundred epochs at full load each.
const BATCH_SEGMENT_BYTES: u64 = 64 << 20;
/// Certificate segments: about 100,000 epochs each (a certificate is about 180 bytes).
const CERTIFICATE_SEGMENT_BYTES: u64 = 16 << 20;

/// Reads committed batches and their certificates from any thread, beside the store's owner
/// (see [`crate::segments::LogReader`]).
#[derive(Clone, Debug)]
pub struct BatchReader {
    batches: LogReader,
    certificates: LogReader,
}

impl BatchReader {
    /// Up to `count` committed batches from `from` on whose stored encodings add up to at most
    /// `max_bytes`, and whose decoded forms to at most `2 · max_bytes` of memory (as
    /// [`crate::wire::Budget`] charges it) — but always the first one, if it exists: a
    /// catch-up answer must fit in the peer's payload limit and decode within its allocation
    /// budget (batches of tiny transactions take far more memory than bytes), and the peer asks
    /// again from where the answer ends.
    pub fn batches_within(
        &self,
        from: Epoch,
        count: usize,
        max_bytes: usize,
    ) -> Result<Vec<CommittedBatch>, StoreError> {
        let (mut bytes, mut memory) = (0usize, 0usize);
        let mut out = Vec::new();
        for (_, v) in self.batches.range(from.0, count)? {
            let budget = crate::wire::Budget::new(usize::MAX);
            let batch = Batch::deserialize(crate::wire::Budgeted::new(
                &mut postcard::Deserializer::from_bytes(&v),
                &budget,
            ))
            .map_err(|e| StoreError::Corrupt(format!("batch: {e}")))?;
            bytes = bytes.saturating_add(v.len());
            memory = memory.saturating_add(usize::MAX - budget.left());
            if (bytes > max_bytes || memory > max_bytes.saturating_mul(2)) && !out.is_empty() {
                break;
            }
            let certificate = self
                .certificates
                .get(batch.epoch.0)?
                .map(|b| decode(&b, "certificate"))
                .transpose()?;
            out.push(CommittedBatch { batch, certificate });
        }
        Ok(out)
    }

    /// The stored size of `epoch`'s batch, without reading it.
    pub fn stored_len(&self, epoch: Epoch) -> Option<usize> {
        self.batches.len_of(epoch.0)
    }

    /// The number of committed epochs (the next epoch to commit).
    pub fn committed_epochs(&self) -> u64 {
        self.batches.last_key().map_or(0, |k| k + 1)
    }
}

/// The consensus store.
pub struct Store {
    dir: PathBuf,
    wal: SegmentLog,
    batches: SegmentLog,
    certificates: SegmentLog,
    fragments: SegmentLog,
    next_seq: u64,
    /// A format-4 store, upgraded at its first new checkpoint.
    upgrading: bool,
    /// The checkpoint being written in the background, if any (at most one).
    writing: Option<CheckpointJob>,
}

/// A checkpoint being made durable on its own thread ([`Store::save_checkpoint`]).
struct CheckpointJob {
    next_seq: u64,
    upgrading: bool,
    thread: std::thread::JoinHandle<Result<(), StoreError>>,
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Fragments are keyed by epoch and proposer in one `u64` (committees are far smaller than
/// 2^16 replicas; epochs far fewer than 2^48).
fn fragment_key(epoch: Epoch, proposer: NodeId) -> u64 {
    (epoch.0 << 16) | u64::from(proposer.0 & 0xffff)
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Replaces `dir/name` with `bytes` atomically and durably: a crash leaves the old or the new
/// content, never a mix.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    replace_file_with(dir, name, |file| file.write_all(bytes))
}

/// [`replace_file`] with the content written by `write` into the (unbuffered) temporary file.
fn replace_file_with(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(|e| io(&tmp, e))?;
    write(&mut file).map_err(|e| io(&tmp, e))?;
    file.sync_all().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

/// The last checkpoint: the current format's file if there is one (it is always the newer:
/// it replaces the old one, which is removed only after the marker), else format 4's.
fn read_checkpoint(dir: &Path) -> Result<Option<(Checkpoint, u64)>, StoreError> {
    if let Some(bytes) = read_checked(&dir.join(CHECKPOINT))? {
        let stored: StoredCheckpoint = decode(&bytes, "checkpoint")?;
        return Ok(Some((stored.checkpoint, stored.next_seq)));
    }
    let Some(bytes) = read_checked(&dir.join(CHECKPOINT_4))? else {
        return Ok(None);
    };
    let stored: StoredCheckpoint4 = decode(&bytes, "format-4 checkpoint")?;
    Ok(Some((stored.checkpoint.into(), stored.next_seq)))
}

/// Writes `crc32 (LE) | postcard(value)` to `file` without holding the encoding in memory: a
/// checkpoint at 50,000 tx/s is tens of MiB (the duplicate window alone is 64 epochs of up to
/// B digests), and encoding it into a growing vector and then copying it behind its checksum
/// held up to three times that at once — the largest peak in the consensus service's heap
/// profile (docs/benchmarks.md, "Where the consensus service's memory goes").
fn write_with_crc<T: Serialize>(file: &mut File, value: &T) -> std::io::Result<()> {
    use std::io::{Seek as _, SeekFrom};

    /// Feeds everything written through it to the checksum.
    struct Checksummed<W> {
        inner: W,
        crc: crc32fast::Hasher,
    }
    impl<W: std::io::Write> std::io::Write for Checksummed<W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.inner.write(buf)?;
            self.crc.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }

    file.write_all(&[0; 4])?;
    let writer = Checksummed {
        inner: std::io::BufWriter::with_capacity(1 << 16, &mut *file),
        crc: crc32fast::Hasher::new(),
    };
    let mut writer = postcard::to_io(value, writer).map_err(std::io::Error::other)?;
    writer.flush()?;
    let Checksummed { inner, crc } = writer;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    let crc = crc.finalize();
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&crc.to_le_bytes())
}

/// `crc32 (LE) | payload`.
fn with_crc(payload: &[u8]) -> Vec<u8> {
    let mut out = crc32fast::hash(payload).to_le_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn read_checked(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, e)),
    };
    if bytes.len() < 4 || crc32fast::hash(&bytes[4..]).to_le_bytes() != bytes[..4] {
        return Err(StoreError::Corrupt(format!(
            "{} does not verify (checksum)",
            path.display()
        )));
    }
    let mut bytes = bytes;
    bytes.drain(..4);
    Ok(Some(bytes))
}

#[derive(Serialize, Deserialize)]
struct StoredCheckpoint {
    checkpoint: Checkpoint,
    next_seq: u64,
}

/// [`StoredCheckpoint`] to write, borrowing the checkpoint (same encoding).
#[derive(Serialize)]
struct StoredCheckpointRef<'a> {
    checkpoint: &'a Checkpoint,
    next_seq: u64,
}

/// [`StoredCheckpoint`] of format 4.
#[derive(Serialize, Deserialize)]
struct StoredCheckpoint4 {
    checkpoint: UnpipelinedCheckpoint,
    next_seq: u64,
}

impl Store {
    /// Opens (or creates) the store in the directory `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| io(path, e))?;
        let marker = path.join("FORMAT");
        let mut upgrading = false;
        match std::fs::read(&marker) {
            Ok(f) if f == FORMAT => {}
            Ok(f) if f == FORMAT_4 => upgrading = true,
            Ok(f) => {
                if let Some((name, why)) = EARLIER_FORMATS.iter().find(|(n, _)| *n == f) {
                    return Err(StoreError::Corrupt(format!(
                        "{} holds a store of an earlier format ({}, {why}); remove it to resync \
                         this replica from its peers",
                        path.display(),
                        String::from_utf8_lossy(name)
                    )));
                }
                return Err(StoreError::Corrupt(format!(
                    "unknown store format {:?} in {}",
                    String::from_utf8_lossy(&f),
                    marker.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if path.join("conf").exists() {
                    return Err(StoreError::Corrupt(format!(
                        "{} holds a store of an earlier format (beat-consensus-store/1); \
                         remove it to resync this replica from its peers",
                        path.display()
                    )));
                }
                if path.join("wal").exists()
                    || path.join(CHECKPOINT).exists()
                    || path.join(CHECKPOINT_4).exists()
                {
                    return Err(StoreError::Corrupt(format!(
                        "{} holds a store without a format marker",
                        path.display()
                    )));
                }
                replace_file(path, "FORMAT", FORMAT)?;
            }
            Err(e) => return Err(io(&marker, e)),
        }
        let checkpoint = read_checkpoint(path)?;
        let wal = SegmentLog::open(&path.join("wal"), WAL_SEGMENT_BYTES)?;
        let next_seq = wal
            .last_key()
            .map(|k| k + 1)
            .into_iter()
            .chain(checkpoint.as_ref().map(|(_, next)| *next))
            .max()
            .unwrap_or(0);
        Ok(Self {
            dir: path.to_owned(),
            wal,
            batches: SegmentLog::open(&path.join("batches"), BATCH_SEGMENT_BYTES)?,
            certificates: SegmentLog::open(&path.join("certificates"), CERTIFICATE_SEGMENT_BYTES)?,
            fragments: SegmentLog::open(&path.join("fragments"), BATCH_SEGMENT_BYTES)?,
            next_seq,
            upgrading,
            writing: None,
        })
    }

    /// The secret proposal seed, created from OS randomness on first use.
    pub fn proposal_seed(&self) -> Result<ProposalSeed, StoreError> {
        let path = self.dir.join("seed");
        if let Some(bytes) = read_checked(&path)? {
            let seed: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt(format!("{}: not 32 bytes", path.display())))?;
            return Ok(ProposalSeed(seed));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| StoreError::Random(e.to_string()))?;
        replace_file(&self.dir, "seed", &with_crc(&seed))?;
        Ok(ProposalSeed(seed))
    }

    /// Appends an event to the WAL; returns its sequence number.
    pub fn append(&mut self, event: &WalEvent) -> Result<u64, StoreError> {
        self.reap_checkpoint()?;
        let seq = self.next_seq;
        self.wal.append(seq, &encode(event))?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The last checkpoint and the WAL position replay starts from.
    pub fn checkpoint(&self) -> Result<Option<(Checkpoint, u64)>, StoreError> {
        read_checkpoint(&self.dir)
    }

    /// Saves a checkpoint taken after the event with sequence `next_seq - 1` and drops the WAL
    /// before `next_seq`, writing it **on its own thread** while events go on being appended.
    ///
    /// Order: batches, certificates and fragments synced, checkpoint replaced (write, sync,
    /// rename, sync the directory), and only then — back on the caller's thread, at the next
    /// append or save after the writer finished ([`Self::finish_checkpoint`]) — the WAL segments
    /// below `next_seq` deleted. A crash at any point before leaves the previous checkpoint and
    /// every event after it; one after leaves segments that replay skips. At most one checkpoint
    /// is in flight: a save waits for the one before.
    ///
    /// Why a thread: at 50,000 tx/s a checkpoint is tens of MiB (the duplicate window), and
    /// writing and syncing it held the consensus thread for 110–270 ms every 8 epochs, at every
    /// replica at about the same epoch (docs/benchmarks.md, "Checkpoints off the consensus
    /// thread").
    pub fn save_checkpoint(
        &mut self,
        checkpoint: Checkpoint,
        next_seq: u64,
    ) -> Result<(), StoreError> {
        self.finish_checkpoint()?;
        // Events after the checkpoint may already be logged; their segment stays.
        if self.next_seq == next_seq {
            self.wal.rotate()?;
        }
        let derived = [
            self.batches.syncer(),
            self.certificates.syncer(),
            self.fragments.syncer(),
        ];
        let dir = self.dir.clone();
        let upgrading = self.upgrading;
        let thread = std::thread::Builder::new()
            .name("beat-checkpoint".to_owned())
            .spawn(move || {
                // Everything derived from events before the checkpoint: rotated segments were
                // synced when they were closed, and each syncer syncs the segment active now.
                for log in &derived {
                    log.sync()?;
                }
                let stored = StoredCheckpointRef {
                    checkpoint: &checkpoint,
                    next_seq,
                };
                replace_file_with(&dir, CHECKPOINT, |file| write_with_crc(file, &stored))?;
                if upgrading {
                    // The new checkpoint supersedes the format-4 one: the marker first, so that
                    // a crash in between leaves a format-5 store that still reads the newer
                    // file.
                    replace_file(&dir, "FORMAT", FORMAT)?;
                    let old = dir.join(CHECKPOINT_4);
                    match std::fs::remove_file(&old) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(&old, e)),
                    }
                }
                Ok(())
            })
            .map_err(|e| io(&self.dir, e))?;
        self.writing = Some(CheckpointJob {
            next_seq,
            upgrading,
            thread,
        });
        Ok(())
    }

    /// Waits for the checkpoint being written, if any, then deletes the WAL segments it
    /// covers. Returns its writer's error, which the host treats like any storage failure.
    pub fn finish_checkpoint(&mut self) -> Result<(), StoreError> {
        let Some(job) = self.writing.take() else {
            return Ok(());
        };
        job.thread.join().map_err(|_| {
            io(
                &self.dir.join(CHECKPOINT),
                std::io::Error::other("the checkpoint writer panicked"),
            )
        })??;
        if job.upgrading {
            self.upgrading = false;
        }
        self.wal
            .remove_below(job.next_seq)
            .map_err(StoreError::from)
    }

    /// [`Self::finish_checkpoint`] if the writer is done, without waiting.
    fn reap_checkpoint(&mut self) -> Result<(), StoreError> {
        if self
            .writing
            .as_ref()
            .is_some_and(|j| j.thread.is_finished())
        {
            self.finish_checkpoint()?;
        }
        Ok(())
    }

    /// Logged events from `from` on, in order.
    pub fn wal_from(&self, from: u64) -> Result<Vec<(u64, WalEvent)>, StoreError> {
        self.wal
            .range(from, usize::MAX)?
            .into_iter()
            .map(|(seq, bytes)| Ok((seq, decode(&bytes, "WAL event")?)))
            .collect()
    }

    /// Stores a committed batch (idempotent: a replayed batch replaces the stored one).
    pub fn put_batch(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.batches
            .append(batch.epoch.0, &encode(batch))
            .map_err(StoreError::from)
    }

    /// A committed batch.
    pub fn batch(&self, epoch: Epoch) -> Result<Option<Batch>, StoreError> {
        self.batches
            .get(epoch.0)?
            .map(|b| decode(&b, "batch"))
            .transpose()
    }

    /// Stores a commit certificate (idempotent, like [`Self::put_batch`]).
    pub fn put_certificate(&mut self, certificate: &CommitCertificate) -> Result<(), StoreError> {
        self.certificates
            .append(certificate.statement.epoch.0, &encode(certificate))
            .map_err(StoreError::from)
    }

    /// The commit certificate of `epoch`, if this replica holds one.
    pub fn certificate(&self, epoch: Epoch) -> Result<Option<CommitCertificate>, StoreError> {
        self.certificates
            .get(epoch.0)?
            .map(|b| decode(&b, "certificate"))
            .transpose()
    }

    /// Up to `count` committed batches from `from` on, with their certificates.
    pub fn batches_from(
        &self,
        from: Epoch,
        count: usize,
    ) -> Result<Vec<CommittedBatch>, StoreError> {
        self.batches_within(from, count, usize::MAX)
    }

    /// See [`BatchReader::batches_within`].
    pub fn batches_within(
        &self,
        from: Epoch,
        count: usize,
        max_bytes: usize,
    ) -> Result<Vec<CommittedBatch>, StoreError> {
        self.batch_reader().batches_within(from, count, max_bytes)
    }

    /// A reader of committed batches and certificates for other threads (the watchers).
    pub fn batch_reader(&self) -> BatchReader {
        BatchReader {
            batches: self.batches.reader(),
            certificates: self.certificates.reader(),
        }
    }

    /// The number of committed epochs (the next epoch to commit).
    pub fn committed_epochs(&self) -> Result<u64, StoreError> {
        Ok(self.batches.last_key().map_or(0, |k| k + 1))
    }

    /// Stores this replica's fragments of an epoch's dispersals.
    pub fn put_fragments(
        &mut self,
        epoch: Epoch,
        fragments: &[StoredFragments],
    ) -> Result<(), StoreError> {
        for f in fragments {
            self.fragments
                .append(fragment_key(epoch, f.proposer), &encode(f))?;
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

    /// Makes every logged event durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.wal.sync().map_err(StoreError::from)
    }

    /// A handle that flushes this store from another thread: every event logged before
    /// [`Flusher::flush`] is called is durable when it returns.
    pub fn flusher(&self) -> Flusher {
        Flusher(self.wal.syncer())
    }

    /// Finishes the checkpoint being written and syncs every log — at shutdown.
    pub fn sync_all(&mut self) -> Result<(), StoreError> {
        self.finish_checkpoint()?;
        self.wal.sync()?;
        self.batches.sync()?;
        self.certificates.sync()?;
        self.fragments.sync().map_err(StoreError::from)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.sync_all() {
            tracing::warn!(error = %e, "could not sync the store at shutdown");
        }
    }
}

/// Flushes a [`Store`]'s WAL from another thread (see [`Store::flusher`]).
#[derive(Clone)]
pub struct Flusher(LogSyncer);

impl Flusher {
    /// Makes every event logged before this call durable (`fdatasync`).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.0.sync().map_err(StoreError::from)
    }
}

/// The replica host's log is this store: events in the WAL segments, the checkpoint file,
/// batches, certificates and fragments in their own segment logs.
impl EventLog for Store {
    type Error = StoreError;

    fn append(&mut self, event: &WalEvent) -> Result<u64, StoreError> {
        Self::append(self, event)
    }

    fn checkpoint(&self) -> Result<Option<(Checkpoint, u64)>, StoreError> {
        Self::checkpoint(self)
    }

    fn save_checkpoint(&mut self, checkpoint: Checkpoint, next: u64) -> Result<(), StoreError> {
        Self::save_checkpoint(self, checkpoint, next)
    }

    fn finish_checkpoint(&mut self) -> Result<(), StoreError> {
        Self::finish_checkpoint(self)
    }

    fn events_from(&self, from: u64) -> Result<Vec<(u64, WalEvent)>, StoreError> {
        self.wal_from(from)
    }

    fn put_batch(&mut self, batch: &Batch) -> Result<(), StoreError> {
        Self::put_batch(self, batch)
    }

    fn put_certificate(&mut self, certificate: &CommitCertificate) -> Result<(), StoreError> {
        Self::put_certificate(self, certificate)
    }

    fn batch(&self, epoch: Epoch) -> Result<Option<Batch>, StoreError> {
        Self::batch(self, epoch)
    }

    fn batches_within(
        &self,
        from: Epoch,
        count: usize,
        max_bytes: usize,
    ) -> Result<Vec<CommittedBatch>, StoreError> {
        Self::batches_within(self, from, count, max_bytes)
    }

    fn put_fragments(
        &mut self,
        epoch: Epoch,
        fragments: &[StoredFragments],
        _complete: bool,
    ) -> Result<(), StoreError> {
        Self::put_fragments(self, epoch, fragments)
    }
}

#[cfg(test)]
mod tests {
    use beat_core::{Content, Contribution, Message};
    use beat_types::Transaction;

    use super::*;

    fn batch(epoch: u64, txs: usize) -> Batch {
        Batch {
            epoch: Epoch(epoch),
            contributions: vec![Contribution {
                proposer: NodeId(0),
                content: Content::Transactions(vec![Transaction::new(Vec::new()); txs]),
            }],
            ordered_labels: vec![],
        }
    }

    /// Batches of empty transactions are small on disk and large in memory: a catch-up answer
    /// is cut by what they decode into too, so the asking peer's decode budget accepts it.
    #[test]
    fn catch_up_answers_are_cut_by_decoded_size_too() {
        let dir = std::env::temp_dir().join(format!("beat-store-within-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir).unwrap();
        for e in 0..8 {
            store.put_batch(&batch(e, 20_000)).unwrap();
        }
        let max_payload = 1 << 20;
        // By bytes alone (about 20 KB each) all eight would fit in half the limit.
        let answer = store
            .batches_within(Epoch(0), 100, max_payload / 2)
            .unwrap();
        assert!(answer.len() < 8, "{}", answer.len());
        assert!(!answer.is_empty());
        let payload = crate::wire::encode(&Message::CatchUpResponse(answer));
        assert!(payload.len() <= max_payload / 2);
        assert!(crate::wire::decode(&payload, max_payload).is_ok());
        // Uncut, the same batches are refused by the receiver's budget.
        let all = store.batches_within(Epoch(0), 100, usize::MAX).unwrap();
        let payload = crate::wire::encode(&Message::CatchUpResponse(all));
        assert!(payload.len() <= max_payload / 2);
        assert!(crate::wire::decode(&payload, max_payload).is_err());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn genesis(pipelining: bool) -> Checkpoint {
        use rand_core::SeedableRng;
        let committee = beat_types::Committee::new(4).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let (coin, _) = beat_crypto::bls::deal(4, committee.f(), &mut rng).unwrap();
        let (encryption, _) = beat_crypto::tdh2::deal(4, committee.f(), &mut rng).unwrap();
        let config = beat_core::Config {
            our_id: NodeId(0),
            committee,
            committee_digest: beat_crypto::Digest([3; 32]),
            keys: beat_core::PublicKeys {
                coin: std::sync::Arc::new(coin),
                encryption: std::sync::Arc::new(encryption),
            },
            params: beat_core::Params::default(),
        };
        let mut node = beat_core::BeatNode::new(config, ProposalSeed([1; 32])).unwrap();
        node.set_checkpoint_interval(8);
        node.set_pipelining(pipelining);
        node.genesis_checkpoint().unwrap()
    }

    /// The checkpoint is written streamed, but the file is byte for byte what the buffered
    /// encoding wrote (`crc32 | postcard`), so stores written before read the same; a flipped
    /// byte is still caught by the checksum.
    #[test]
    fn streamed_checkpoints_keep_the_format_and_the_checksum() {
        let dir = std::env::temp_dir().join(format!("beat-store-stream-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir).unwrap();
        let checkpoint = genesis(true);
        store.save_checkpoint(checkpoint.clone(), 11).unwrap();
        store.finish_checkpoint().unwrap();
        let written = std::fs::read(dir.join(CHECKPOINT)).unwrap();
        let buffered = with_crc(&encode(&StoredCheckpoint {
            checkpoint: checkpoint.clone(),
            next_seq: 11,
        }));
        assert_eq!(written, buffered);
        drop(store);
        assert_eq!(
            Store::open(&dir).unwrap().checkpoint().unwrap(),
            Some((checkpoint, 11))
        );
        let mut corrupt = written;
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x40;
        std::fs::write(dir.join(CHECKPOINT), &corrupt).unwrap();
        assert!(matches!(
            Store::open(&dir).and_then(|s| s.checkpoint()),
            Err(StoreError::Corrupt(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The checkpoint is written in the background, but the WAL it covers is deleted only
    /// once it is durable: until then the previous checkpoint and every event after it stay,
    /// and a store reopened before the writer finished (a crash) replays from them. Events
    /// appended meanwhile are kept either way.
    #[test]
    fn the_wal_outlives_a_checkpoint_until_it_is_durable() {
        let dir = std::env::temp_dir().join(format!("beat-store-async-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let wal_segments = |dir: &Path| std::fs::read_dir(dir.join("wal")).unwrap().count();
        let event = WalEvent::Input(beat_core::Input::Stalled);
        let mut store = Store::open(&dir).unwrap();
        store.save_checkpoint(genesis(false), 0).unwrap();
        store.finish_checkpoint().unwrap();
        for _ in 0..5 {
            store.append(&event).unwrap();
        }
        let before = wal_segments(&dir);
        store.save_checkpoint(genesis(true), 5).unwrap();
        // Not finished: the events it covers are all still there, whatever the writer did.
        assert!(wal_segments(&dir) > before);
        assert_eq!(store.wal_from(0).unwrap().len(), 5);
        store.finish_checkpoint().unwrap();
        assert_eq!(store.wal_from(0).unwrap().len(), 0);
        store.append(&event).unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        let (_, next) = store.checkpoint().unwrap().unwrap();
        assert_eq!(next, 5);
        assert_eq!(store.wal_from(next).unwrap().len(), 1);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A format-4 store (before pipelining) opens: its checkpoint reads as a replica that does
    /// not pipeline, and the first new checkpoint upgrades the store to format 5 for good.
    #[test]
    fn a_format_4_store_is_upgraded_at_its_first_checkpoint() {
        let dir = std::env::temp_dir().join(format!("beat-store-upgrade-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let old = genesis(false);
        let stored = StoredCheckpoint4 {
            checkpoint: UnpipelinedCheckpoint::from_checkpoint(old.clone()).unwrap(),
            next_seq: 7,
        };
        replace_file(&dir, CHECKPOINT_4, &with_crc(&encode(&stored))).unwrap();
        replace_file(&dir, "FORMAT", FORMAT_4).unwrap();

        let mut store = Store::open(&dir).unwrap();
        assert_eq!(store.checkpoint().unwrap(), Some((old, 7)));
        assert_eq!(std::fs::read(dir.join("FORMAT")).unwrap(), FORMAT_4);
        let new = genesis(true);
        store.save_checkpoint(new.clone(), 9).unwrap();
        store.finish_checkpoint().unwrap();
        assert_eq!(std::fs::read(dir.join("FORMAT")).unwrap(), FORMAT);
        assert!(!dir.join(CHECKPOINT_4).exists());
        drop(store);
        let store = Store::open(&dir).unwrap();
        let (read, next) = store.checkpoint().unwrap().unwrap();
        assert_eq!((read.clone(), next), (new, 9));
        assert!(UnpipelinedCheckpoint::from_checkpoint(read).is_none());
        drop(store);

        // A crash after the new checkpoint but before the marker: the newer file wins.
        replace_file(&dir, "FORMAT", FORMAT_4).unwrap();
        replace_file(&dir, CHECKPOINT_4, &with_crc(&encode(&stored))).unwrap();
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.checkpoint().unwrap().unwrap().1, 9);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
