//! "History, then live": the shape every watch API of the replica shares (consensus
//! `WatchBatches`, state `WatchState`).
//!
//! A watcher asks for everything from some position on. It subscribes to the service's live
//! broadcast *before* it reads storage, so that whatever is persisted after its read is also in
//! its subscription; it sends what storage holds, then takes live items. A live item behind its
//! position is old news; one past it means the watcher missed something (a gap); a lagged
//! subscription means the broadcast overwrote items it had not taken. In both cases it goes back
//! to storage, which has everything the broadcast had, since items are persisted before they are
//! broadcast. The broadcast closing (the service stops) ends the watch.
//!
//! What differs between the APIs — how storage is read, memory budgets, how a slow client is
//! detected and cut off — is the [`Watcher`]'s; the loop is [`history_then_live`].

use std::future::Future;

use tokio::sync::broadcast::{self, error::RecvError};

/// The watcher ended: its client went away, it was cut off, or it was told why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended;

/// What became of a live item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// Sent, or behind the watcher's position and skipped.
    Done,
    /// Past the watcher's position: something was missed, read storage again.
    Gap,
}

/// One watcher of a "history, then live" stream.
pub trait Watcher {
    /// What the live broadcast carries.
    type Item: Clone + Send;

    /// Sends what storage holds from the watcher's position on.
    fn catch_up(&mut self) -> impl Future<Output = Result<(), Ended>> + Send;

    /// Takes one live item.
    fn take(&mut self, item: Self::Item) -> impl Future<Output = Result<Taken, Ended>> + Send;

    /// Waits for `next` (the next live item) while watching the client: `Err` when the watcher
    /// must end first (its client went away, stopped reading, or the service shuts down).
    fn wait<T: Send>(
        &self,
        next: impl Future<Output = T> + Send,
    ) -> impl Future<Output = Result<T, Ended>> + Send;
}

/// Runs `watcher` until it ends: storage first, then `live` (subscribed before the first
/// read), back to storage whenever it falls behind.
pub async fn history_then_live<W: Watcher>(
    watcher: &mut W,
    mut live: broadcast::Receiver<W::Item>,
) -> Ended {
    let mut behind = true;
    loop {
        if behind {
            if let Err(ended) = watcher.catch_up().await {
                return ended;
            }
            behind = false;
        }
        let received = match watcher.wait(live.recv()).await {
            Ok(received) => received,
            Err(ended) => return ended,
        };
        match received {
            Ok(item) => match watcher.take(item).await {
                Ok(Taken::Done) => {}
                Ok(Taken::Gap) => behind = true,
                Err(ended) => return ended,
            },
            Err(RecvError::Lagged(_)) => behind = true,
            Err(RecvError::Closed) => return Ended,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, VecDeque};

    use parking_lot::Mutex;

    use super::*;

    /// What the service does before the watcher's next wait.
    #[derive(Clone, Copy)]
    enum Act {
        /// Persist item `k` and broadcast it.
        Commit(u64),
        /// Persist item `k` without broadcasting it (as if its broadcast was missed).
        Persist(u64),
        /// Broadcast `k` only (already persisted).
        Broadcast(u64),
        /// The service stops.
        Close,
    }

    /// A watcher over a store of numbered items, with a deterministic script of what the
    /// service does before each wait; records what it sent.
    struct Numbers {
        next: u64,
        stored: Mutex<BTreeSet<u64>>,
        live: Mutex<Option<broadcast::Sender<u64>>>,
        script: Mutex<VecDeque<Vec<Act>>>,
        sent: Vec<u64>,
        catch_ups: usize,
        stop_after: usize,
    }

    impl Watcher for Numbers {
        type Item = u64;

        async fn catch_up(&mut self) -> Result<(), Ended> {
            self.catch_ups += 1;
            let stored: Vec<u64> = self.stored.lock().range(self.next..).copied().collect();
            for k in stored {
                if k != self.next {
                    break;
                }
                self.sent.push(k);
                self.next += 1;
            }
            Ok(())
        }

        async fn take(&mut self, item: u64) -> Result<Taken, Ended> {
            if item < self.next {
                return Ok(Taken::Done);
            }
            if item > self.next {
                return Ok(Taken::Gap);
            }
            self.sent.push(item);
            self.next += 1;
            if self.sent.len() >= self.stop_after {
                return Err(Ended);
            }
            Ok(Taken::Done)
        }

        async fn wait<T: Send>(&self, next: impl Future<Output = T> + Send) -> Result<T, Ended> {
            let acts = self.script.lock().pop_front().unwrap_or_default();
            for act in acts {
                let mut live = self.live.lock();
                match act {
                    Act::Commit(k) => {
                        self.stored.lock().insert(k);
                        let _ = live.as_ref().map(|tx| tx.send(k));
                    }
                    Act::Persist(k) => {
                        self.stored.lock().insert(k);
                    }
                    Act::Broadcast(k) => {
                        let _ = live.as_ref().map(|tx| tx.send(k));
                    }
                    Act::Close => *live = None,
                }
            }
            Ok(next.await)
        }
    }

    async fn run(
        capacity: usize,
        stored: &[u64],
        script: Vec<Vec<Act>>,
        stop_after: usize,
    ) -> Numbers {
        let (tx, rx) = broadcast::channel(capacity);
        let mut w = Numbers {
            next: 0,
            stored: Mutex::new(stored.iter().copied().collect()),
            live: Mutex::new(Some(tx)),
            script: Mutex::new(script.into()),
            sent: Vec::new(),
            catch_ups: 0,
            stop_after,
        };
        assert_eq!(history_then_live(&mut w, rx).await, Ended);
        w
    }

    #[tokio::test]
    async fn history_then_live_in_order_without_duplicates() {
        use Act::*;
        // 2 is stored and then broadcast again: old news.
        let script = vec![vec![Broadcast(2), Commit(3), Commit(4), Commit(5)]];
        let w = run(16, &[0, 1, 2], script, 6).await;
        assert_eq!(w.sent, [0, 1, 2, 3, 4, 5]);
        assert_eq!(w.catch_ups, 1);
    }

    #[tokio::test]
    async fn a_lag_or_a_gap_goes_back_to_storage() {
        use Act::*;
        let script = vec![
            // Four commits into a channel of two: the subscription lags.
            vec![Commit(1), Commit(2), Commit(3), Commit(4)],
            vec![],
            vec![],
            // 5's broadcast is missed, 6 arrives: a gap.
            vec![Persist(5), Commit(6)],
            vec![Commit(7)],
        ];
        let w = run(2, &[0], script, 8).await;
        assert_eq!(w.sent, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(w.catch_ups, 3);
    }

    #[tokio::test]
    async fn the_service_stopping_ends_the_watch() {
        let w = run(4, &[0], vec![vec![Act::Close]], 100).await;
        assert_eq!(w.sent, [0]);
    }
}
