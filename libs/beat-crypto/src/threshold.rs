//! Outcome of combining threshold shares optimistically.

use beat_types::NodeId;

/// The result of combining shares optimistically: combine any `t + 1` without verifying them,
/// check the result once, and only if that fails verify the shares one by one.
///
/// `invalid_shares` names every share found invalid along the way, so the caller can attribute
/// the fault to its sender and drop it. `value` is `None` when fewer than `t + 1` valid shares
/// are available; the caller removes the invalid shares, waits for more and combines again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Combined<T> {
    /// The combined value, once `t + 1` valid shares were available.
    pub value: Option<T>,
    /// Holders of the shares found invalid.
    pub invalid_shares: Vec<NodeId>,
}

impl<T> Combined<T> {
    /// A successful combination with no invalid share found.
    pub fn ok(value: T) -> Self {
        Self {
            value: Some(value),
            invalid_shares: Vec::new(),
        }
    }
}
