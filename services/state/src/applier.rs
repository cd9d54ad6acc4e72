//! The applier component: owns the [`MarketState`] and the [`Store`], applies committed
//! batches in epoch order and persists each epoch before it counts as applied. Synchronous and
//! testable without actix or sockets.

use std::sync::Arc;

use beat_proto::common::v1::{Batch, contribution::Content};

use crate::{
    market::{EpochReport, MarketParams, MarketState},
    store::{Store, StoreError},
};

/// What a batch did.
#[derive(Debug)]
pub enum Applied {
    /// The epoch was applied before (a stream resumed with some overlap); nothing changed.
    AlreadyApplied,
    /// The epoch was applied and persisted.
    Epoch(Arc<EpochReport>),
}

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The batch does not follow the applied history.
    #[error("batch of epoch {got} does not follow the applied history (next epoch is {expected})")]
    Gap {
        /// The next epoch to apply.
        expected: u64,
        /// The batch's epoch.
        got: u64,
    },
    /// The epoch was applied in memory but could not be persisted.
    #[error("cannot persist epoch {epoch}: {source}")]
    Store {
        /// The epoch.
        epoch: u64,
        /// Cause.
        source: StoreError,
    },
    /// An earlier write failed, so the state in memory is ahead of the store.
    #[error("a store write failed earlier; the service must restart from the store")]
    Failed,
}

impl ApplyError {
    /// Whether the applier can continue (with a batch that does follow the history).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::Gap { .. })
    }
}

/// Applies committed batches to the persistent market state.
pub struct Applier {
    state: MarketState,
    store: Store,
    failed: bool,
}

impl Applier {
    /// Loads the state from `store` (genesis if it is empty).
    pub fn open(store: Store, params: &MarketParams) -> Result<Self, StoreError> {
        let state = store.load_state(params)?;
        Ok(Self {
            state,
            store,
            failed: false,
        })
    }

    /// The current state.
    pub fn state(&self) -> &MarketState {
        &self.state
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Applies a committed batch if it is the next epoch, then persists the snapshot and the
    /// report atomically.
    pub fn process_batch(&mut self, batch: &Batch) -> Result<Applied, ApplyError> {
        if self.failed {
            return Err(ApplyError::Failed);
        }
        let expected = self.state.next_epoch();
        if batch.epoch < expected {
            return Ok(Applied::AlreadyApplied);
        }
        if batch.epoch > expected {
            return Err(ApplyError::Gap {
                expected,
                got: batch.epoch,
            });
        }
        let (transactions, undelivered) = transactions(batch);
        if undelivered > 0 {
            // Impossible with the delivery mode checked at start-up; the committee file and the
            // consensus service disagree.
            tracing::error!(
                epoch = batch.epoch,
                undelivered,
                "batch carries stored commitments instead of transactions; they are skipped"
            );
        }
        let (report, snapshot) = self
            .state
            .apply_batch_with_snapshot(batch.epoch, &transactions)
            .map_err(|e| ApplyError::Gap {
                expected: e.expected,
                got: e.got,
            })?;
        if let Err(source) = self.store.commit(&snapshot, &report) {
            self.failed = true;
            return Err(ApplyError::Store {
                epoch: batch.epoch,
                source,
            });
        }
        Ok(Applied::Epoch(Arc::new(report)))
    }
}

/// The committed transactions of a batch in order, and the number of contributions delivered
/// as commitments only. Rejected contributions (faulty proposers) contribute nothing.
pub fn transactions(batch: &Batch) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut undelivered = 0;
    for c in &batch.contributions {
        match &c.content {
            Some(Content::Transactions(list)) => {
                out.extend(list.transactions.iter().map(|t| t.as_ref()));
            }
            Some(Content::Stored(_)) => undelivered += 1,
            Some(Content::Rejected(_)) | None => {}
        }
    }
    (out, undelivered)
}
