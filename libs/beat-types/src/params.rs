//! The protocol's tunable parameters, shared by the core that runs them and the configuration
//! that loads them from the committee file (which hashes their encoding into the committee
//! digest, so the serde layout is part of the wire contract).

use serde::{Deserialize, Serialize};

use crate::{Committee, Variant};

/// Parameters that do not fit together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamsError(pub String);

/// How BEAT3/BEAT4 deliver an epoch to the replica's application.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// After agreement, replicas exchange their verified fragments and every replica decodes
    /// every contribution, so the application sees full batches (as with BEAT0–2).
    #[default]
    Full,
    /// Replicas output only the agreed commitments and keep their own verified fragments;
    /// clients retrieve and verify data from the replicas (BFT storage, BEAT paper §6–7).
    CommitmentsOnly,
}

/// Tunable protocol parameters. [`Params::default`] is a sensible production setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The BEAT variant.
    pub variant: Variant,
    /// `B`: the most transactions per epoch. Each replica proposes a random sample of
    /// `min(⌈B/n⌉, pending)` from the first `B` of its buffer as soon as it enters an epoch, so
    /// the batch follows the backlog (adaptive batching): an idle replica proposes the few
    /// transactions it has, and the epoch is short; a loaded one proposes up to `⌈B/n⌉`, and
    /// the epoch amortises its fixed costs over them. `B` is a cap, not a target; the default,
    /// 16,384, carried every load this project's reference box could offer (docs/benchmarks.md
    /// § 3) without costing latency when idle.
    pub batch_size: usize,
    /// Largest transaction accepted, in bytes.
    pub max_transaction_bytes: usize,
    /// Largest contribution (one replica's proposal before encryption), in bytes.
    pub max_contribution_bytes: usize,
    /// Most transactions held in the buffer.
    pub buffer_capacity: usize,
    /// How many epochs ahead of its own a replica accepts messages for.
    pub max_future_epochs: u64,
    /// How many rounds ahead of its own a binary agreement accepts messages for.
    pub max_future_rounds: u32,
    /// For how many epochs committed transactions are remembered to suppress duplicates.
    pub dedup_window_epochs: u64,
    /// Request catch-up when f+1 peers are at least this many epochs ahead. It is also how many
    /// epochs a replica keeps relaying agreement votes for after leaving them (R1): a replica
    /// further behind than that is brought forward by catch-up, which f+1 replicas that far
    /// ahead trigger — so the two must be the same number.
    pub catch_up_lag: u64,
    /// Most epochs requested or served in one catch-up exchange.
    pub catch_up_max_epochs: u32,
    /// Commit certificates' watermark: a replica commits an epoch only if it is less than this
    /// many epochs past its oldest uncertified one (module `node::certify`, C7). It bounds the
    /// certification state and makes every committed epoch certified; certificates normally
    /// form one message delay after commit, so a window of a few epochs never binds.
    pub certify_window: u64,
    /// BEAT3/BEAT4: full batches or commitments only.
    pub delivery: Delivery,
    /// BEAT3/BEAT4: threshold-encrypt contributions before dispersal (censorship resilience).
    pub encrypt_storage: bool,
    /// BEAT4: number of data groups of the pyramid code.
    pub pyramid_groups: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            variant: Variant::Beat0,
            batch_size: 16_384,
            max_transaction_bytes: 64 * 1024,
            max_contribution_bytes: 8 * 1024 * 1024,
            buffer_capacity: 50_000,
            max_future_epochs: 3,
            max_future_rounds: 256,
            dedup_window_epochs: 64,
            catch_up_lag: 3,
            catch_up_max_epochs: 32,
            certify_window: 4,
            delivery: Delivery::Full,
            encrypt_storage: false,
            pyramid_groups: 2,
        }
    }
}

impl Params {
    /// The number of transactions a replica proposes per epoch: `⌈B/n⌉`.
    pub fn proposal_size(&self, committee: Committee) -> usize {
        self.batch_size.div_ceil(committee.n()).max(1)
    }

    /// Whether contributions are threshold-encrypted by the replicas (BEAT0, BEAT1, and BEAT3/4
    /// with `encrypt_storage`).
    pub fn encrypts_contributions(&self) -> bool {
        match self.variant {
            Variant::Beat0 | Variant::Beat1 => true,
            Variant::Beat2 => false,
            Variant::Beat3 | Variant::Beat4 => self.encrypt_storage,
        }
    }

    /// Checks the parameters for consistency.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let bad = |s: &str| Err(ParamsError(s.to_owned()));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1");
        }
        if self.max_transaction_bytes == 0
            || self.max_transaction_bytes > self.max_contribution_bytes
        {
            return bad("max_transaction_bytes must be in 1..=max_contribution_bytes");
        }
        if self.buffer_capacity == 0 {
            return bad("buffer_capacity must be at least 1");
        }
        if self.max_future_epochs == 0 || self.max_future_epochs > 1024 {
            return bad("max_future_epochs must be in 1..=1024");
        }
        if self.max_future_rounds == 0 {
            return bad("max_future_rounds must be at least 1");
        }
        if self.catch_up_lag == 0 || self.catch_up_max_epochs == 0 {
            return bad("catch_up_lag and catch_up_max_epochs must be at least 1");
        }
        if self.certify_window == 0 || self.certify_window > 1024 {
            return bad("certify_window must be in 1..=1024");
        }
        if self.pyramid_groups == 0 {
            return bad("pyramid_groups must be at least 1");
        }
        if self.variant.is_storage()
            && self.encrypt_storage
            && self.delivery == Delivery::CommitmentsOnly
        {
            return bad(
                "encrypt_storage requires delivery = full (replicas decrypt after retrieval)",
            );
        }
        Ok(())
    }
}
