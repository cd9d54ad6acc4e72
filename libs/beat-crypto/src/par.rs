//! Data parallelism for the hashing and fingerprinting of large shards.
//!
//! Hashing `n` shards dominates erasure encoding (SHA-256 runs at about 1.6 GB/s with SHA-NI,
//! and `n/k` times the payload is hashed), so the coders spread it over a few scoped threads
//! when there is enough data to amortise spawning them. The result never depends on the
//! thread count.

use std::num::NonZeroUsize;

/// Work below this many bytes is done on the calling thread.
pub(crate) const MIN_PARALLEL_BYTES: usize = 256 << 10;

/// The default number of worker threads: the available parallelism, at most 4.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(4)
}

/// Returns how many threads to use for `total_bytes` of work with at most `threads`.
pub(crate) fn threads_for(total_bytes: usize, threads: usize) -> usize {
    if total_bytes < MIN_PARALLEL_BYTES {
        1
    } else {
        threads.max(1)
    }
}

/// Returns `items.iter().enumerate().map(f)`, computed on up to `threads` threads (the calling
/// thread included), in order.
pub(crate) fn map<T, R, F>(items: &[T], threads: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(usize, &T) -> R + Sync,
{
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let mut parts = items.chunks(chunk).enumerate();
        let first = parts.next();
        let handles: Vec<_> = parts
            .map(|(c, part)| {
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, t)| f(c * chunk + i, t))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        let mut out: Vec<R> = first
            .map(|(_, part)| part.iter().enumerate().map(|(i, t)| f(i, t)).collect())
            .unwrap_or_default();
        for handle in handles {
            match handle.join() {
                Ok(part) => out.extend(part),
                // `f` does not panic; if it ever did, propagate it as the sequential code would.
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_do_not_depend_on_thread_count() {
        let items: Vec<u64> = (0..37).collect();
        let expected: Vec<u64> = items.iter().map(|x| x * x + 1).collect();
        for threads in [0, 1, 2, 3, 8, 100] {
            assert_eq!(map(&items, threads, |i, x| (i as u64) * x + 1), expected);
        }
        assert!(map(&Vec::<u8>::new(), 4, |_, x| *x).is_empty());
        assert_eq!(threads_for(10, 4), 1);
        assert_eq!(threads_for(MIN_PARALLEL_BYTES, 4), 4);
        assert!(default_threads() >= 1);
    }
}
