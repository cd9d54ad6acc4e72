//! Fault injection: the disk fills up in the middle of a WAL append.
//!
//! Two ways to make the kernel stop a `write(2)` short and then fail it, as a full disk does:
//! - `RLIMIT_FSIZE` (always runs): past the limit `write` returns what fitted, then `EFBIG`.
//! - a 256 KiB tmpfs (runs where the test may mount one, e.g. as root in CI): real `ENOSPC`.
//!
//! Either way the partial record must not stay in the file, the log must refuse every later
//! append and sync (nothing written after a failure may be reported durable), and reopening
//! must give back exactly the events that were flushed before — every acknowledged one, no
//! torn one. The resource limit is per process, so this binary holds a single test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use beat_consensus::{
    segments::{SegmentError, SegmentLog},
    store::{Store, StoreError, WalEvent},
};
use beat_core::Input;
use beat_types::Transaction;
use nix::sys::{
    resource::{Resource, getrlimit, setrlimit},
    signal::{SigSet, Signal},
};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("beat-disk-full-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn submit(tag: &str, i: usize) -> WalEvent {
    WalEvent::Input(Input::Submit(vec![Transaction::new(
        format!("{tag}-{i}-{}", "x".repeat(400)).into_bytes(),
    )]))
}

fn segment_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("0000000000.seg")).unwrap().len()
}

/// Appends and flushes events until `fail` makes an append fail; checks the failure is final
/// and that a reopened store holds exactly the flushed events. `fail` is called once, between
/// the flushed events and the append that must fail.
fn fill_until_failure(path: &Path, fail: impl FnOnce(&Path), restore: impl FnOnce()) {
    let mut store = Store::open(path).unwrap();
    let flusher = store.flusher();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let event = submit("acked", i);
        store.append(&event).unwrap();
        acknowledged.push(event);
    }
    flusher.flush().unwrap();
    let wal = path.join("wal");
    let before = segment_len(&wal);
    fail(&wal);
    // The disk fills mid-record: some appends may still fit, one fails.
    let mut failed = None;
    for i in 0..10_000 {
        match store.append(&submit("lost", i)) {
            Ok(_) => {}
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let failed = failed.expect("an append failed once the disk was full");
    // The OS error is kept as the source: ENOSPC or EFBIG, not a string.
    let StoreError::Log(SegmentError::Io { source, .. }) = &failed else {
        panic!("not a log I/O error: {failed:?}");
    };
    assert!(
        [nix::errno::Errno::ENOSPC, nix::errno::Errno::EFBIG]
            .map(|e| Some(e as i32))
            .contains(&source.raw_os_error()),
        "{source:?}"
    );
    restore();
    // Final: with space back, nothing more is accepted or reported durable.
    let again = store.append(&submit("after", 0)).unwrap_err();
    assert!(again.to_string().contains("failed earlier"), "{again}");
    assert!(
        flusher.flush().is_err(),
        "a failed log reports nothing durable"
    );
    drop(store);
    // The partial record was cut off: the file ends on a record boundary.
    let after = segment_len(&wal);
    assert!(after >= before);
    let log = SegmentLog::open(&wal, 256 << 20).unwrap();
    let records = log.len();
    drop(log);
    assert_eq!(
        segment_len(&wal),
        after,
        "reopening found no torn tail to cut"
    );
    // Reopened: every acknowledged event, in order, then whatever whole records fitted.
    let store = Store::open(path).unwrap();
    let events = store.wal_from(0).unwrap();
    assert_eq!(events.len(), records);
    for (i, event) in acknowledged.iter().enumerate() {
        assert_eq!(&events[i].1, event, "acknowledged event {i}");
    }
    for (_, event) in &events[acknowledged.len()..] {
        let WalEvent::Input(Input::Submit(txs)) = event else {
            panic!("unexpected event {event:?}");
        };
        assert!(txs[0].as_bytes().starts_with(b"lost-"));
    }
}

#[test]
fn a_full_disk_mid_append_poisons_the_log_and_loses_nothing_acknowledged() {
    // Past RLIMIT_FSIZE the kernel also sends SIGXFSZ to the writing thread, whose default
    // action kills the process. Blocked here, it stays pending (and goes with the thread).
    let mut xfsz = SigSet::empty();
    xfsz.add(Signal::SIGXFSZ);
    xfsz.thread_block().unwrap();
    let (soft, hard) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();

    // 1. The file-size limit, half a record past the flushed data.
    let d = dir("rlimit");
    fill_until_failure(
        &d,
        |wal| {
            let limit = segment_len(wal) + 200;
            setrlimit(Resource::RLIMIT_FSIZE, limit, hard).unwrap();
        },
        || setrlimit(Resource::RLIMIT_FSIZE, soft, hard).unwrap(),
    );
    let _ = std::fs::remove_dir_all(&d);

    // 2. A real ENOSPC on a small tmpfs, where this process may mount one.
    let d = dir("tmpfs");
    std::fs::create_dir_all(&d).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "beat-disk-full"])
        .arg(&d)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipping the tmpfs ENOSPC case: this process may not mount a tmpfs");
        let _ = std::fs::remove_dir_all(&d);
        return;
    }
    let store = d.join("store");
    let result = std::panic::catch_unwind(|| {
        fill_until_failure(
            &store,
            |wal| {
                // Fill the rest of the tmpfs with another file, leaving a few hundred bytes.
                let free = nix::sys::statvfs::statvfs(wal).unwrap();
                let bytes = free.blocks_available() * free.fragment_size();
                let filler = vec![0u8; bytes.saturating_sub(300) as usize];
                let _ = std::fs::write(d.join("filler"), &filler);
            },
            || {
                let _ = std::fs::remove_file(d.join("filler"));
            },
        );
    });
    let _ = std::process::Command::new("umount").arg(&d).status();
    let _ = std::fs::remove_dir_all(&d);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
