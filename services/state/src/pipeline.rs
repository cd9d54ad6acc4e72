//! The two long-running tasks between the actors and consensus.
//!
//! - [`watch_batches`] streams committed batches from `WatchBatches(next epoch)` into the
//!   [`ApplierActor`], reconnecting with backoff whenever the stream fails or ends, and keeps
//!   the consensus connectivity flag.
//! - [`FeedSubmitter`] takes MarketBatches from the [`FeedActor`], encodes them and submits them
//!   with `Submit`, retrying the same transactions with backoff on back-pressure or
//!   unavailability until consensus acknowledges them.

use std::{sync::Arc, time::Duration};

use actix::Addr;
use beat_telemetry::shutdown::Shutdown;
use bytes::Bytes;
use tokio::sync::Notify;

use crate::{
    actors::{ApplierActor, ApplyBatch, FeedActor, NextEpoch, Release, TakeBatch},
    applier::ApplyError,
    consensus::{Backoff, Consensus, is_retryable},
    encode::TxEncoder,
    metrics::{Connectivity, Metrics},
};

/// Sleeps for `delay`; returns `false` if shutdown came first.
async fn pause(delay: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.wait() => false,
    }
}

/// Feeds committed batches to the applier until shutdown. Returns an error (after triggering
/// shutdown) only if the applier can no longer persist the state.
pub async fn watch_batches(
    consensus: Consensus,
    applier: Addr<ApplierActor>,
    mut backoff: Backoff,
    connectivity: Connectivity,
    shutdown: Shutdown,
) -> Result<(), ApplyError> {
    let mut reported_down = false;
    loop {
        let Ok(from_epoch) = applier.send(NextEpoch).await else {
            return Ok(());
        };
        let opened = tokio::select! {
            r = consensus.watch(from_epoch) => r,
            _ = shutdown.wait() => return Ok(()),
        };
        match opened {
            Err(status) => {
                connectivity.set(false);
                if reported_down {
                    tracing::debug!(code = ?status.code(), message = status.message(),
                        "consensus still unreachable");
                } else {
                    reported_down = true;
                    tracing::info!(code = ?status.code(), message = status.message(),
                        "consensus unreachable; retrying with backoff");
                }
            }
            Ok(mut stream) => {
                connectivity.set(true);
                reported_down = false;
                tracing::info!(from_epoch, "watching committed batches");
                backoff.reset();
                loop {
                    let item = tokio::select! {
                        item = stream.message() => item,
                        _ = shutdown.wait() => return Ok(()),
                    };
                    let batch = match item {
                        Ok(Some(response)) => response.batch,
                        Ok(None) => {
                            tracing::info!("consensus ended the batch stream; reconnecting");
                            break;
                        }
                        Err(status) => {
                            connectivity.set(false);
                            tracing::info!(code = ?status.code(), message = status.message(),
                                "batch stream failed; reconnecting");
                            break;
                        }
                    };
                    let Some(batch) = batch else {
                        tracing::warn!("consensus sent a WatchBatches response without a batch");
                        continue;
                    };
                    match applier.send(ApplyBatch(batch)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) if e.is_fatal() => {
                            tracing::error!(error = %e, "cannot continue applying batches");
                            shutdown.trigger();
                            return Err(e);
                        }
                        Ok(Err(gap)) => {
                            tracing::warn!(error = %gap, "reconnecting from the next epoch");
                            break;
                        }
                        Err(_) => return Ok(()),
                    }
                }
            }
        }
        if !pause(backoff.next_delay(), &shutdown).await {
            return Ok(());
        }
    }
}

/// Submits the feed's MarketBatches. Events stay pending in the feed until consensus
/// acknowledges them; only a batch consensus refuses as invalid is given up.
pub struct FeedSubmitter {
    /// Consensus.
    pub consensus: Consensus,
    /// The feed.
    pub feed: Addr<FeedActor>,
    /// Encodes events as transactions.
    pub encoder: Arc<TxEncoder>,
    /// Notified when the feed queued events.
    pub queued: Arc<Notify>,
    /// Most events per `Submit`.
    pub max_batch_events: usize,
    /// Retry policy.
    pub backoff: Backoff,
    /// Metrics.
    pub metrics: Metrics,
}

impl FeedSubmitter {
    /// Runs until shutdown.
    pub async fn run(mut self, shutdown: Shutdown) {
        loop {
            let Ok(events) = self.feed.send(TakeBatch(self.max_batch_events)).await else {
                return;
            };
            if events.is_empty() {
                tokio::select! {
                    _ = self.queued.notified() => continue,
                    _ = shutdown.wait() => return,
                }
            }
            let count = events.len();
            let refused = match self.encoder.encode_all_blocking(events).await {
                Ok(transactions) => match self.submit(transactions, &shutdown).await {
                    Some(refused) => refused,
                    None => return,
                },
                Err(e) => {
                    tracing::error!(error = %e, count, "cannot encode feed events; dropping them");
                    true
                }
            };
            self.feed.do_send(Release { count, refused });
        }
    }

    /// Submits until consensus answers other than with a transient error. Returns whether it
    /// refused the batch, or `None` on shutdown.
    async fn submit(&mut self, transactions: Vec<Bytes>, shutdown: &Shutdown) -> Option<bool> {
        let retries = self
            .metrics
            .consensus_retries
            .with_label_values(&["Submit"]);
        self.backoff.reset();
        loop {
            let result = tokio::select! {
                r = self.consensus.submit(transactions.clone()) => r,
                _ = shutdown.wait() => return None,
            };
            match result {
                Ok(_) => return Some(false),
                Err(status) if is_retryable(status.code()) => {
                    retries.inc();
                    tracing::debug!(code = ?status.code(), message = status.message(),
                        "consensus did not take the feed batch; retrying");
                    if !pause(self.backoff.next_delay(), shutdown).await {
                        return None;
                    }
                }
                Err(status) => {
                    tracing::error!(code = ?status.code(), message = status.message(),
                        count = transactions.len(), "consensus refused a feed batch; dropping it");
                    return Some(true);
                }
            }
        }
    }
}
