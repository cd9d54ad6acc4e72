//! The five BEAT protocol variants.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A BEAT protocol variant (Duan, Reiter, Zhang, CCS 2018, §4–§7).
///
/// | variant | broadcast | encryption | output |
/// |---|---|---|---|
/// | BEAT0 | AVID erasure-coded RBC | TDH2, replica-side | full batch |
/// | BEAT1 | Bracha RBC | TDH2, replica-side | full batch |
/// | BEAT2 | Bracha RBC | TDH2, client-side, per transaction | full batch |
/// | BEAT3 | AVID-FP dispersal | none by default | fragments + commitments |
/// | BEAT4 | AVID-FP with a pyramid code | none by default | fragments + commitments, partial reads |
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// AVID reliable broadcast and replica-side threshold encryption.
    #[default]
    Beat0,
    /// Bracha reliable broadcast and replica-side threshold encryption.
    Beat1,
    /// Bracha reliable broadcast; clients threshold-encrypt each transaction.
    Beat2,
    /// AVID-FP verifiable dispersal: BFT storage.
    Beat3,
    /// AVID-FP with a pyramid code: BFT storage with partial reads.
    Beat4,
}

impl Variant {
    /// Every variant, in order.
    pub const ALL: [Self; 5] = [
        Self::Beat0,
        Self::Beat1,
        Self::Beat2,
        Self::Beat3,
        Self::Beat4,
    ];

    /// The lowercase name, as accepted by [`FromStr`] and used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Beat0 => "beat0",
            Self::Beat1 => "beat1",
            Self::Beat2 => "beat2",
            Self::Beat3 => "beat3",
            Self::Beat4 => "beat4",
        }
    }

    /// Returns `true` for the storage variants (BEAT3, BEAT4), whose replicas keep erasure-coded
    /// fragments rather than full batches.
    pub fn is_storage(self) -> bool {
        matches!(self, Self::Beat3 | Self::Beat4)
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown variant name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown BEAT variant {0:?} (expected one of beat0, beat1, beat2, beat3, beat4)")]
pub struct VariantParseError(pub String);

impl FromStr for Variant {
    type Err = VariantParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| VariantParseError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for v in Variant::ALL {
            assert_eq!(v.as_str().parse::<Variant>().unwrap(), v);
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        }
        assert_eq!("BEAT3".parse::<Variant>().unwrap(), Variant::Beat3);
        assert!("beat5".parse::<Variant>().is_err());
    }
}
