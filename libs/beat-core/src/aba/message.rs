//! Binary agreement messages.

use std::fmt;

use beat_crypto::bls::SignatureShare;
use serde::{Deserialize, Serialize};

/// A non-empty or empty set of booleans.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct BoolSet(u8);

impl BoolSet {
    /// The empty set.
    pub const NONE: Self = Self(0);
    /// `{false, true}`.
    pub const BOTH: Self = Self(3);

    /// `{b}`.
    pub fn single(b: bool) -> Self {
        Self(1 << u8::from(b))
    }

    /// Returns `true` if `b` is in the set.
    pub fn contains(self, b: bool) -> bool {
        self.0 & (1 << u8::from(b)) != 0
    }

    /// Adds `b`; returns `true` if it was not there.
    pub fn insert(&mut self, b: bool) -> bool {
        let before = self.0;
        self.0 |= 1 << u8::from(b);
        before != self.0
    }

    /// Returns `true` for the empty set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Returns `true` if every element of `self` is in `other`.
    pub fn is_subset(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    /// The union.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The single element, if the set has exactly one.
    pub fn definite(self) -> Option<bool> {
        match self.0 {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        }
    }
}

impl TryFrom<u8> for BoolSet {
    type Error = String;

    fn try_from(v: u8) -> Result<Self, String> {
        if v <= 3 {
            Ok(Self(v))
        } else {
            Err(format!("invalid boolean set {v}"))
        }
    }
}

impl From<BoolSet> for u8 {
    fn from(s: BoolSet) -> Self {
        s.0
    }
}

impl fmt::Debug for BoolSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("{}"),
            1 => f.write_str("{0}"),
            2 => f.write_str("{1}"),
            _ => f.write_str("{0,1}"),
        }
    }
}

/// A binary agreement message (paper names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Binary-value broadcast of an estimate (A1, A2).
    BVal {
        /// Round.
        round: u32,
        /// Value.
        value: bool,
    },
    /// The first value added to `bin_values` (A3).
    Aux {
        /// Round.
        round: u32,
        /// Value.
        value: bool,
    },
    /// The AUX-phase values, before a random coin (A6).
    Conf {
        /// Round.
        round: u32,
        /// Values.
        values: BoolSet,
    },
    /// A threshold-coin share for a random round (A7).
    Coin {
        /// Round.
        round: u32,
        /// Share.
        share: SignatureShare,
    },
    /// The sender has decided (T1, T2).
    Term(bool),
}
