//! Append-only logs of keyed records in segment files: the write-ahead log (keyed by event
//! sequence number) and the committed batches (keyed by epoch).
//!
//! Both are written once, read rarely and dropped in bulk, which is what plain files do best:
//! an append is one `write(2)` to the page cache, durability is one `fdatasync(2)` of the
//! active segment, and dropping a prefix deletes whole files. (They lived in sled before; sled
//! kept every inserted value in memory — 120 MiB of batches after 30 s at 20,000 tx/s — and its
//! flush cost more than twice a plain `fdatasync`.)
//!
//! **Format.** A log is a directory of segments `NNNNNNNNNN.seg` (a counter, 10 digits). A
//! segment is a sequence of records: `key: u64 LE | len: u32 LE | crc: u32 LE | payload`, with
//! a CRC-32 (IEEE, `crc32fast`) over key, length and payload. Keys need not be increasing (a
//! replayed batch is appended again; the last record for a key wins).
//!
//! **Recovery.** Opening scans every segment. The tail of the newest segment may be torn by a
//! crash (a partial header or payload, or a CRC mismatch in its last records): it is cut off
//! and reported, since nothing after the last `sync` was promised to anyone. Damage that a
//! valid record *follows* is not a torn tail but corruption (a flipped bit, a lost write in the
//! middle of synced data): cutting there would silently drop acknowledged records, so opening
//! fails and names the file and offset. So does a damaged record in any older segment. (One
//! crash can in principle leave an unsynced record whole after a torn one, if the page cache
//! wrote them back out of order; the error then says how an operator who knows that accepts
//! the loss: truncate the file at the offset given.)
//!
//! **Write failures.** A failed `write(2)` or `fdatasync(2)` (a full disk, an I/O error) poisons
//! the log: the partial record is cut off if possible and every later append, rotation or sync
//! fails with the first error, so nothing appended after it can be acknowledged as durable.
//! The consensus service stops on any store error (`actor::fatal`).
//!
//! **Readers.** The index and the open segment files are shared with [`LogReader`]s, which
//! read records from other threads (the watchers of committed batches) while the owner
//! appends: a lookup takes a read lock for the location, the `pread(2)` runs outside it. A
//! reader sees a record once it is appended (durable or not: what it serves is committed
//! either way), and a segment removed under a reader's feet is still readable through the
//! file it holds.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use parking_lot::{Mutex, RwLock};

const HEADER: usize = 16;
/// Largest record payload (a batch of an epoch, a logged message).
pub const MAX_RECORD: usize = 256 << 20;
const SUFFIX: &str = ".seg";

/// Where a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Location {
    segment: u64,
    offset: u64,
    len: u32,
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    file: Arc<File>,
    len: u64,
    /// Largest key in it (none while empty).
    max_key: Option<u64>,
}

/// What [`LogReader`]s share with the log: where each key's record is, and the files.
#[derive(Debug, Default)]
struct Readable {
    files: BTreeMap<u64, Arc<File>>,
    index: BTreeMap<u64, Location>,
}

/// Reads a [`SegmentLog`]'s records from any thread (module docs, *Readers*).
#[derive(Clone, Debug)]
pub struct LogReader {
    dir: PathBuf,
    shared: Arc<RwLock<Readable>>,
}

impl LogReader {
    /// The record for `key`.
    pub fn get(&self, key: u64) -> Result<Option<Vec<u8>>, SegmentError> {
        let found = {
            let r = self.shared.read();
            r.index
                .get(&key)
                .map(|l| (*l, r.files.get(&l.segment).cloned()))
        };
        found.map(|(at, file)| self.read(key, at, file)).transpose()
    }

    /// Up to `count` records with keys from `from` on, in key order.
    pub fn range(&self, from: u64, count: usize) -> Result<Vec<(u64, Vec<u8>)>, SegmentError> {
        let found: Vec<_> = {
            let r = self.shared.read();
            r.index
                .range(from..)
                .take(count)
                .map(|(k, l)| (*k, *l, r.files.get(&l.segment).cloned()))
                .collect()
        };
        found
            .into_iter()
            .map(|(k, at, file)| Ok((k, self.read(k, at, file)?)))
            .collect()
    }

    /// The payload length of `key`'s record, without reading it.
    pub fn len_of(&self, key: u64) -> Option<usize> {
        self.shared.read().index.get(&key).map(|l| l.len as usize)
    }

    /// The largest key.
    pub fn last_key(&self) -> Option<u64> {
        self.shared.read().index.keys().next_back().copied()
    }

    fn read(
        &self,
        key: u64,
        at: Location,
        file: Option<Arc<File>>,
    ) -> Result<Vec<u8>, SegmentError> {
        let file =
            file.ok_or_else(|| SegmentError::Corrupt(format!("segment {} is gone", at.segment)))?;
        let mut record = vec![0u8; HEADER + at.len as usize];
        file.read_exact_at(&mut record, at.offset)
            .map_err(io(format_args!(
                "reading record {key} in segment {} at offset {}",
                at.segment, at.offset
            )))?;
        let payload = record.split_off(HEADER);
        let crc = u32::from_le_bytes(record[12..].try_into().unwrap_or_default());
        if record[..8] != key.to_le_bytes() || checksum(key, at.len, &payload) != crc {
            return Err(SegmentError::Corrupt(format!(
                "{} at offset {}: record for key {key} does not verify",
                segment_path(&self.dir, at.segment).display(),
                at.offset
            )));
        }
        Ok(payload)
    }
}

/// A segmented append-only log.
#[derive(Debug)]
pub struct SegmentLog {
    dir: PathBuf,
    segments: BTreeMap<u64, Segment>,
    reader: LogReader,
    /// The active (last) segment and the log's first write failure, shared with
    /// [`LogSyncer`]s.
    active: Arc<Mutex<Active>>,
    max_segment_bytes: u64,
}

/// The active segment, as [`LogSyncer`]s see it.
/// Why the segment log refused or failed. The consensus store turns damage into its
/// [`crate::store::StoreError::Corrupt`] and everything else into a storage failure that stops
/// the service.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and to which file.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An earlier write or sync failed: the log accepts nothing more and reports nothing more
    /// durable.
    #[error("the log failed earlier and accepts nothing more: {0}")]
    Poisoned(String),
    /// A record larger than the format allows.
    #[error("a record of {0} bytes exceeds {MAX_RECORD}")]
    TooLarge(usize),
    /// The files are damaged (or were changed under the log).
    #[error("{0}")]
    Corrupt(String),
}

/// Turns an [`std::io::Error`] into [`SegmentError::Io`] with what was being done.
fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> SegmentError {
    move |source| SegmentError::Io {
        context: context.to_string(),
        source,
    }
}

#[derive(Debug)]
struct Active {
    file: Arc<File>,
    /// The first write or sync failure. Once set, nothing more is written or reported durable.
    failed: Option<String>,
}

impl Active {
    fn check(&self) -> Result<(), SegmentError> {
        match &self.failed {
            Some(e) => Err(SegmentError::Poisoned(e.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: &str) {
        if self.failed.is_none() {
            self.failed = Some(e.to_owned());
        }
    }
}

/// Syncs a [`SegmentLog`]'s active segment from another thread.
#[derive(Clone, Debug)]
pub struct LogSyncer(Arc<Mutex<Active>>);

impl LogSyncer {
    /// Makes every record appended before this call durable.
    pub fn sync(&self) -> Result<(), SegmentError> {
        // Earlier segments were synced when they stopped being active.
        let file = {
            let active = self.0.lock();
            active.check()?;
            active.file.clone()
        };
        // After a failed fdatasync the kernel may have dropped the dirty pages and cleared the
        // error: a retry could succeed without the data on disk. The failure is final.
        file.sync_data().map_err(|e| {
            self.0.lock().fail(&format!("fdatasync: {e}"));
            io("fdatasync of the active segment")(e)
        })
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:010}{SUFFIX}"))
}

fn checksum(key: u64, len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&key.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn sync_dir(dir: &Path) -> Result<(), SegmentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format_args!("fsync of {}", dir.display())))
}

fn open_segment(path: &Path) -> Result<File, SegmentError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io(format_args!("opening {}", path.display())))
}

/// How a scan of one segment ended.
enum ScanEnd {
    Clean,
    /// A damaged or partial record starts at this offset.
    Damaged {
        offset: u64,
        reason: String,
    },
}

/// Reads every record of `file` into `index`; returns the largest key and how the scan ended.
fn scan(
    number: u64,
    file: &File,
    index: &mut BTreeMap<u64, Location>,
    last_key: &mut Option<u64>,
) -> Result<(Option<u64>, u64, ScanEnd), SegmentError> {
    let context = || format!("scanning segment {number}");
    let len = file.metadata().map_err(io(context()))?.len();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(0)).map_err(io(context()))?;
    let mut offset = 0u64;
    let mut max_key = None;
    let mut payload = Vec::new();
    loop {
        if offset == len {
            return Ok((max_key, offset, ScanEnd::Clean));
        }
        let damaged = |reason: String| Ok((max_key, offset, ScanEnd::Damaged { offset, reason }));
        if len - offset < HEADER as u64 {
            return damaged(format!("partial header ({} bytes)", len - offset));
        }
        let mut header = [0u8; HEADER];
        reader.read_exact(&mut header).map_err(io(context()))?;
        let key = u64::from_le_bytes(header[..8].try_into().unwrap_or_default());
        let n = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(header[12..].try_into().unwrap_or_default());
        if n as usize > MAX_RECORD {
            return damaged(format!("record length {n} exceeds {MAX_RECORD}"));
        }
        if len - offset - (HEADER as u64) < u64::from(n) {
            return damaged(format!("partial record ({n} bytes announced)"));
        }
        payload.resize(n as usize, 0);
        reader.read_exact(&mut payload).map_err(io(context()))?;
        if checksum(key, n, &payload) != crc {
            return damaged("checksum mismatch".into());
        }
        index.insert(
            key,
            Location {
                segment: number,
                offset,
                len: n,
            },
        );
        max_key = Some(max_key.map_or(key, |m: u64| m.max(key)));
        *last_key = Some(key);
        offset += HEADER as u64 + u64::from(n);
    }
}

/// Keys of records that follow a damaged one are expected within this distance of the last
/// key read before it (the WAL's keys are consecutive sequence numbers, the batches' epochs).
const KEY_WINDOW: u64 = 1 << 24;
/// Bound on the payload bytes checksummed while looking for a valid record after damage when
/// no earlier key narrows the search; past it the damage is treated as corruption (refusing to
/// start is recoverable, dropping acknowledged records is not).
const SEARCH_BUDGET: u64 = 1 << 30;

/// Looks for a valid record starting after `from` in `file` (`len` bytes). `near` is the last
/// key read before the damage, if any. Returns its offset.
fn valid_record_after(
    file: &File,
    from: u64,
    len: u64,
    near: Option<u64>,
) -> Result<Option<u64>, SegmentError> {
    const CHUNK: u64 = 4 << 20;
    let mut budget = SEARCH_BUDGET;
    let mut start = from + 1;
    let mut buf = Vec::new();
    let mut payload = Vec::new();
    while start + HEADER as u64 <= len {
        // A chunk of candidate positions, with room for the header of the last one.
        let end = (start + CHUNK).min(len);
        let positions = (end - start).min(len - start - HEADER as u64 + 1);
        buf.resize((positions + HEADER as u64 - 1) as usize, 0);
        file.read_exact_at(&mut buf, start)
            .map_err(io("searching past damage in the newest segment"))?;
        for i in 0..positions as usize {
            let header = &buf[i..i + HEADER];
            let key = u64::from_le_bytes(header[..8].try_into().unwrap_or_default());
            let n = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
            let crc = u32::from_le_bytes(header[12..].try_into().unwrap_or_default());
            let at = start + i as u64;
            if n as usize > MAX_RECORD || len - at - (HEADER as u64) < u64::from(n) {
                continue;
            }
            if let Some(near) = near
                && key.abs_diff(near) > KEY_WINDOW
            {
                continue;
            }
            if near.is_none() {
                if budget < u64::from(n) {
                    return Ok(Some(at));
                }
                budget -= u64::from(n);
            }
            payload.resize(n as usize, 0);
            file.read_exact_at(&mut payload, at + HEADER as u64)
                .map_err(io("searching past damage in the newest segment"))?;
            if checksum(key, n, &payload) == crc {
                return Ok(Some(at));
            }
        }
        start += positions;
    }
    Ok(None)
}

impl SegmentLog {
    /// Opens (or creates) the log in `dir`, recovering from a torn tail.
    pub fn open(dir: &Path, max_segment_bytes: u64) -> Result<Self, SegmentError> {
        std::fs::create_dir_all(dir).map_err(io(format_args!("creating {}", dir.display())))?;
        let mut numbers = Vec::new();
        let listing = || format!("listing {}", dir.display());
        for entry in std::fs::read_dir(dir).map_err(io(listing()))? {
            let name = entry.map_err(io(listing()))?.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(SUFFIX) {
                let number = stem.parse::<u64>().map_err(|_| {
                    SegmentError::Corrupt(format!("unexpected file {name} in {}", dir.display()))
                })?;
                numbers.push(number);
            }
        }
        numbers.sort_unstable();
        let mut index = BTreeMap::new();
        let mut segments = BTreeMap::new();
        let last = numbers.last().copied();
        let mut last_key_read = None;
        for number in numbers {
            let path = segment_path(dir, number);
            let file = open_segment(&path)?;
            let (max_key, good, end) = scan(number, &file, &mut index, &mut last_key_read)?;
            let mut len = good;
            if let ScanEnd::Damaged { offset, reason } = end {
                if Some(number) != last {
                    return Err(SegmentError::Corrupt(format!(
                        "{} at offset {offset}: {reason} (not the newest segment: this is \
                         corruption, not a torn tail)",
                        path.display()
                    )));
                }
                let size = file
                    .metadata()
                    .map_err(io(format_args!("{}", path.display())))?
                    .len();
                if let Some(at) = valid_record_after(&file, offset, size, last_key_read)? {
                    return Err(SegmentError::Corrupt(format!(
                        "{} at offset {offset}: {reason}, and a valid record follows at offset \
                         {at}: damage inside synced data, not a torn tail; refusing to start \
                         rather than drop acknowledged records (restore this replica's data \
                         directory, or, if you know a crash left these records unsynced, \
                         truncate the file to {offset} bytes to accept losing them)",
                        path.display()
                    )));
                }
                tracing::warn!(
                    file = %path.display(),
                    offset,
                    %reason,
                    "cutting off the torn tail of a log segment (a crash interrupted a write)"
                );
                let cutting = || format!("cutting the torn tail of {}", path.display());
                file.set_len(offset).map_err(io(cutting()))?;
                file.sync_all().map_err(io(cutting()))?;
                len = offset;
            }
            segments.insert(
                number,
                Segment {
                    file: Arc::new(file),
                    len,
                    max_key,
                },
            );
        }
        if segments.is_empty() {
            let file = open_segment(&segment_path(dir, 0))?;
            sync_dir(dir)?;
            segments.insert(
                0,
                Segment {
                    file: Arc::new(file),
                    len: 0,
                    max_key: None,
                },
            );
        }
        let active = segments
            .values()
            .next_back()
            .map(|s| s.file.clone())
            .ok_or_else(|| SegmentError::Corrupt("no active segment".into()))?;
        let files = segments.iter().map(|(n, s)| (*n, s.file.clone())).collect();
        Ok(Self {
            dir: dir.to_owned(),
            segments,
            reader: LogReader {
                dir: dir.to_owned(),
                shared: Arc::new(RwLock::new(Readable { files, index })),
            },
            active: Arc::new(Mutex::new(Active {
                file: active,
                failed: None,
            })),
            max_segment_bytes,
        })
    }

    fn active_number(&self) -> u64 {
        self.segments.keys().next_back().copied().unwrap_or(0)
    }

    /// Appends a record (not yet durable: see [`Self::sync`]).
    pub fn append(&mut self, key: u64, payload: &[u8]) -> Result<(), SegmentError> {
        if payload.len() > MAX_RECORD {
            return Err(SegmentError::TooLarge(payload.len()));
        }
        self.active.lock().check()?;
        let number = self.active_number();
        let len = payload.len() as u32;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&key.to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(key, len, payload).to_le_bytes());
        record.extend_from_slice(payload);
        let segment = self
            .segments
            .get_mut(&number)
            .ok_or_else(|| SegmentError::Corrupt("no active segment".into()))?;
        let offset = segment.len;
        if let Err(e) = (&*segment.file).write_all(&record) {
            // Part of the record may be in the file (a short write before ENOSPC): cut it off
            // so the file ends where the index thinks, and accept nothing more.
            let cut = segment.file.set_len(offset).map_or_else(
                |c| format!(" (cutting the partial record failed: {c})"),
                |()| String::new(),
            );
            let context = format!("appending to segment {number}{cut}");
            self.active.lock().fail(&format!("{context}: {e}"));
            return Err(io(context)(e));
        }
        segment.len += record.len() as u64;
        segment.max_key = Some(segment.max_key.map_or(key, |m| m.max(key)));
        self.reader.shared.write().index.insert(
            key,
            Location {
                segment: number,
                offset,
                len,
            },
        );
        if segment.len >= self.max_segment_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Starts a new segment (the current one is synced first) unless the current one is empty.
    pub fn rotate(&mut self) -> Result<(), SegmentError> {
        let number = self.active_number();
        let Some(current) = self.segments.get(&number) else {
            return Err(SegmentError::Corrupt("no active segment".into()));
        };
        self.active.lock().check()?;
        if current.len == 0 {
            return Ok(());
        }
        let next = number + 1;
        let opened = current
            .file
            .sync_data()
            .map_err(io("fdatasync of the segment being closed"))
            .and_then(|()| open_segment(&segment_path(&self.dir, next)))
            .and_then(|file| sync_dir(&self.dir).map(|()| Arc::new(file)));
        let file = match opened {
            Ok(file) => file,
            Err(e) => {
                self.active.lock().fail(&e.to_string());
                return Err(e);
            }
        };
        self.segments.insert(
            next,
            Segment {
                file: file.clone(),
                len: 0,
                max_key: None,
            },
        );
        self.reader.shared.write().files.insert(next, file.clone());
        self.active.lock().file = file;
        Ok(())
    }

    /// Makes every appended record durable.
    pub fn sync(&self) -> Result<(), SegmentError> {
        self.syncer().sync()
    }

    /// A handle that syncs from another thread.
    pub fn syncer(&self) -> LogSyncer {
        LogSyncer(self.active.clone())
    }

    /// Deletes every segment, other than the active one, whose keys are all below `key`.
    pub fn remove_below(&mut self, key: u64) -> Result<(), SegmentError> {
        let active = self.active_number();
        let doomed: Vec<u64> = self
            .segments
            .iter()
            .filter(|(n, s)| **n != active && s.max_key.is_none_or(|m| m < key))
            .map(|(n, _)| *n)
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        {
            let mut shared = self.reader.shared.write();
            shared.index.retain(|_, l| !doomed.contains(&l.segment));
            for number in &doomed {
                shared.files.remove(number);
            }
        }
        for number in &doomed {
            self.segments.remove(number);
            let path = segment_path(&self.dir, *number);
            std::fs::remove_file(&path).map_err(io(format_args!("removing {}", path.display())))?;
        }
        sync_dir(&self.dir)
    }

    /// The record for `key`.
    pub fn get(&self, key: u64) -> Result<Option<Vec<u8>>, SegmentError> {
        self.reader.get(key)
    }

    /// Up to `count` records with keys from `from` on, in key order.
    pub fn range(&self, from: u64, count: usize) -> Result<Vec<(u64, Vec<u8>)>, SegmentError> {
        self.reader.range(from, count)
    }

    /// The largest key.
    pub fn last_key(&self) -> Option<u64> {
        self.reader.last_key()
    }

    /// The number of live records.
    pub fn len(&self) -> usize {
        self.reader.shared.read().index.len()
    }

    /// Whether the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.reader.shared.read().index.is_empty()
    }

    /// A reader for other threads.
    pub fn reader(&self) -> LogReader {
        self.reader.clone()
    }

    /// The number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("beat-segments-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_survive_reopen_and_the_last_write_for_a_key_wins() {
        let d = dir("reopen");
        let mut log = SegmentLog::open(&d, 1 << 20).unwrap();
        for k in 0..100u64 {
            log.append(k, &k.to_le_bytes().repeat(k as usize % 7))
                .unwrap();
        }
        log.append(5, b"again").unwrap();
        log.sync().unwrap();
        drop(log);
        let log = SegmentLog::open(&d, 1 << 20).unwrap();
        assert_eq!(log.len(), 100);
        assert_eq!(log.get(5).unwrap().unwrap(), b"again");
        assert_eq!(log.get(8).unwrap().unwrap(), 8u64.to_le_bytes().to_vec());
        let r = log.range(95, 10).unwrap();
        assert_eq!(
            r.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec![95, 96, 97, 98, 99]
        );
        assert_eq!(log.last_key(), Some(99));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn segments_rotate_by_size_and_whole_segments_are_removed() {
        let d = dir("rotate");
        let mut log = SegmentLog::open(&d, 1_000).unwrap();
        for k in 0..50u64 {
            log.append(k, &[k as u8; 100]).unwrap();
        }
        assert!(log.segment_count() > 5);
        log.remove_below(30).unwrap();
        assert!(log.get(3).unwrap().is_none());
        assert!(log.get(30).unwrap().is_some());
        // Records below 30 that share a segment with 30 stay until that segment goes.
        let first = log.range(0, 1).unwrap()[0].0;
        assert!(first <= 30 && first > 20, "{first}");
        drop(log);
        let log = SegmentLog::open(&d, 1_000).unwrap();
        assert_eq!(log.range(0, 1).unwrap()[0].0, first);
        assert_eq!(log.last_key(), Some(49));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A reader on another thread sees every record as it is appended, across rotations, and
    /// what it looked up stays readable while the owner removes segments.
    #[test]
    fn a_reader_on_another_thread_follows_appends_rotations_and_removals() {
        let d = dir("reader");
        let mut log = SegmentLog::open(&d, 1_000).unwrap();
        let reader = log.reader();
        let follower = std::thread::spawn(move || {
            let mut next = 0u64;
            while next < 200 {
                match reader.get(next) {
                    Ok(Some(payload)) => {
                        assert_eq!(payload, vec![next as u8; 100]);
                        assert_eq!(reader.len_of(next), Some(100));
                        next += 1;
                    }
                    // Not appended yet, or removed under our feet: then a later key exists
                    // (keys are appended in order) and the reader skips to it.
                    Ok(None) => match reader.range(next, 1).unwrap().first() {
                        Some((k, _)) if *k > next => next = *k,
                        _ => std::thread::yield_now(),
                    },
                    Err(e) => panic!("{e}"),
                }
            }
            next
        });
        for k in 0..200u64 {
            log.append(k, &[k as u8; 100]).unwrap();
            if k % 50 == 49 {
                log.remove_below(k - 40).unwrap();
            }
        }
        assert_eq!(follower.join().unwrap(), 200);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_writing_continues() {
        let d = dir("torn");
        let mut log = SegmentLog::open(&d, 1 << 20).unwrap();
        for k in 0..10u64 {
            log.append(k, &[7u8; 64]).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        let path = segment_path(&d, 0);
        let full = std::fs::metadata(&path).unwrap().len();
        for cut in [1u64, 10, 40] {
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(full - cut).unwrap();
            drop(f);
            let mut log = SegmentLog::open(&d, 1 << 20).unwrap();
            assert_eq!(log.len(), 9, "cut {cut}");
            assert_eq!(log.last_key(), Some(8));
            log.append(9, &[7u8; 64]).unwrap();
            log.sync().unwrap();
            drop(log);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), full);
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn damage_before_the_tail_is_corruption() {
        let d = dir("damage");
        let mut log = SegmentLog::open(&d, 500).unwrap();
        for k in 0..20u64 {
            log.append(k, &[1u8; 100]).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        // Flip a payload byte in the first (not the newest) segment.
        let path = segment_path(&d, 0);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 3] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = SegmentLog::open(&d, 500).unwrap_err();
        assert!(matches!(err, SegmentError::Corrupt(_)), "{err}");
        // A flipped byte in the newest segment's last record is a torn tail.
        let _ = std::fs::remove_dir_all(&d);
        let mut log = SegmentLog::open(&d, 1 << 20).unwrap();
        for k in 0..3u64 {
            log.append(k, &[1u8; 100]).unwrap();
        }
        drop(log);
        let path = segment_path(&d, 0);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let log = SegmentLog::open(&d, 1 << 20).unwrap();
        assert_eq!(log.len(), 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Writes `count` records of `size` bytes into a fresh log in one segment; returns the
    /// segment's bytes and the records' offsets.
    fn one_segment(d: &Path, count: u64, size: usize) -> (PathBuf, Vec<u8>, Vec<usize>) {
        let _ = std::fs::remove_dir_all(d);
        let mut log = SegmentLog::open(d, 1 << 30).unwrap();
        for k in 0..count {
            log.append(1_000 + k, &vec![k as u8; size]).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        let path = segment_path(d, 0);
        let bytes = std::fs::read(&path).unwrap();
        let offsets = (0..count as usize).map(|i| i * (HEADER + size)).collect();
        (path, bytes, offsets)
    }

    #[test]
    fn damage_followed_by_a_valid_record_is_corruption_even_in_the_newest_segment() {
        let d = dir("midflip");
        // A flipped payload byte, a flipped length, a flipped key, a zeroed header: in the
        // middle of the newest segment, each is refused with the file and the offset.
        type Damage = fn(&mut [u8], usize);
        let cases: [(&str, Damage); 4] = [
            ("payload", |b, at| b[at + HEADER + 5] ^= 0x10),
            ("length", |b, at| b[at + 9] ^= 0x01),
            ("key", |b, at| b[at] ^= 0x80),
            ("zeroed header", |b, at| b[at..at + HEADER].fill(0)),
        ];
        for (what, damage) in cases {
            for victim in [0usize, 2, 5] {
                let (path, mut bytes, offsets) = one_segment(&d, 8, 300);
                damage(&mut bytes, offsets[victim]);
                std::fs::write(&path, &bytes).unwrap();
                let err = SegmentLog::open(&d, 1 << 30).unwrap_err();
                let SegmentError::Corrupt(msg) = &err else {
                    panic!("{what} {victim}: {err}");
                };
                assert!(
                    msg.contains(&format!("at offset {}", offsets[victim]))
                        && msg.contains("0000000000.seg")
                        && msg.contains("valid record follows"),
                    "{what} {victim}: {msg}"
                );
                // Nothing was cut: the operator still has every byte.
                assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what} {victim}");
            }
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_torn_tail_of_several_records_is_still_a_torn_tail() {
        let d = dir("torn-several");
        let (path, bytes, offsets) = one_segment(&d, 8, 300);
        // The last three records were not synced: the first of them half written, the others
        // zeros (how ext4 shows blocks allocated but not written back).
        let mut torn = bytes[..offsets[5] + 100].to_vec();
        torn.resize(bytes.len(), 0);
        std::fs::write(&path, &torn).unwrap();
        let log = SegmentLog::open(&d, 1 << 30).unwrap();
        assert_eq!(log.len(), 5);
        assert_eq!(log.last_key(), Some(1_004));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            offsets[5] as u64,
            "cut at the first damaged record"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_first_record_of_a_log_damaged_before_valid_ones_is_corruption() {
        // No key was read before the damage, so the search cannot narrow by key.
        let d = dir("firstflip");
        let (path, mut bytes, _) = one_segment(&d, 4, 64);
        bytes[HEADER + 1] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = SegmentLog::open(&d, 1 << 30).unwrap_err();
        assert!(
            matches!(&err, SegmentError::Corrupt(m) if m.contains("at offset 0")),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_record_damaged_after_opening_is_reported_on_read() {
        let d = dir("read");
        let mut log = SegmentLog::open(&d, 1 << 20).unwrap();
        log.append(1, b"hello").unwrap();
        log.append(2, b"world").unwrap();
        let path = segment_path(&d, 0);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        // The log's file handle sees the rewritten file (same inode, truncated and rewritten).
        let err = log.get(1).unwrap_err();
        assert!(matches!(err, SegmentError::Corrupt(_)), "{err}");
        assert_eq!(log.get(2).unwrap().unwrap(), b"world");
        let _ = std::fs::remove_dir_all(&d);
    }
}
