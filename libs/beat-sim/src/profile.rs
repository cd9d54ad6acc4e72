//! Storage profiles: a BEAT variant and, for BEAT3/BEAT4, how dispersed contributions are
//! delivered — full batches, full batches of threshold-encrypted contributions, or commitments
//! only (BFT storage). The simulator runs every profile; `beat-sim check --variant` takes their
//! names.

use std::{fmt, str::FromStr};

use beat_core::{Delivery, Params};
use beat_types::Variant;

/// How the storage variants (BEAT3, BEAT4) deliver and protect dispersed contributions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Storage {
    /// `delivery = full`: replicas retrieve and decode every agreed contribution (the default,
    /// and the only profile of BEAT0–2).
    #[default]
    Full,
    /// `delivery = full` with `encrypt_storage`: contributions are threshold-encrypted before
    /// dispersal and decrypted after retrieval.
    Encrypted,
    /// `delivery = commitments_only`: batches carry the agreed commitments and replicas keep
    /// their fragments for readers (BFT storage).
    CommitmentsOnly,
}

impl Storage {
    /// The suffix of the profile name (`beat3-encrypted`), empty for [`Storage::Full`].
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Full => "",
            Self::Encrypted => "-encrypted",
            Self::CommitmentsOnly => "-commitments",
        }
    }
}

/// A variant and, for BEAT3/BEAT4, its storage profile: what `beat-sim check --variant` takes.
///
/// Names are the variant's (`beat0` … `beat4`, full delivery) or a storage variant with a
/// suffix: `beat3-encrypted`, `beat3-commitments`, `beat4-encrypted`, `beat4-commitments`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Profile {
    /// The BEAT variant.
    pub variant: Variant,
    /// How dispersed contributions are delivered (always [`Storage::Full`] for BEAT0–2).
    pub storage: Storage,
}

/// A profile name that is not a variant, or a storage profile of a variant without storage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown profile {0:?} (expected beat0..beat4, or beat3/beat4 with -encrypted or -commitments)"
)]
pub struct ProfileParseError(pub String);

impl Profile {
    /// Every profile: the five variants with full delivery, then the storage profiles of BEAT3
    /// and BEAT4.
    pub const ALL: [Self; 9] = [
        Self::full(Variant::Beat0),
        Self::full(Variant::Beat1),
        Self::full(Variant::Beat2),
        Self::full(Variant::Beat3),
        Self::full(Variant::Beat4),
        Self::new(Variant::Beat3, Storage::Encrypted),
        Self::new(Variant::Beat3, Storage::CommitmentsOnly),
        Self::new(Variant::Beat4, Storage::Encrypted),
        Self::new(Variant::Beat4, Storage::CommitmentsOnly),
    ];

    /// The variant with full delivery.
    pub const fn full(variant: Variant) -> Self {
        Self::new(variant, Storage::Full)
    }

    const fn new(variant: Variant, storage: Storage) -> Self {
        Self { variant, storage }
    }

    /// Returns `true` if replicas output commitments and keep fragments.
    pub fn is_commitments_only(self) -> bool {
        self.storage == Storage::CommitmentsOnly
    }

    /// Sets the delivery parameters of this profile.
    pub fn apply(self, params: &mut Params) {
        params.variant = self.variant;
        (params.delivery, params.encrypt_storage) = match self.storage {
            Storage::Full => (Delivery::Full, false),
            Storage::Encrypted => (Delivery::Full, true),
            Storage::CommitmentsOnly => (Delivery::CommitmentsOnly, false),
        };
    }
}

impl From<Variant> for Profile {
    fn from(variant: Variant) -> Self {
        Self::full(variant)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.variant, self.storage.suffix())
    }
}

impl FromStr for Profile {
    type Err = ProfileParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        Self::ALL
            .into_iter()
            .find(|p| p.to_string().eq_ignore_ascii_case(name))
            .ok_or_else(|| ProfileParseError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_storage_needs_a_storage_variant() {
        let names: Vec<String> = Profile::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "beat0",
                "beat1",
                "beat2",
                "beat3",
                "beat4",
                "beat3-encrypted",
                "beat3-commitments",
                "beat4-encrypted",
                "beat4-commitments"
            ]
        );
        for p in Profile::ALL {
            assert_eq!(p.to_string().parse::<Profile>(), Ok(p));
        }
        assert_eq!(
            " BEAT4-Commitments".parse::<Profile>(),
            Ok(Profile {
                variant: Variant::Beat4,
                storage: Storage::CommitmentsOnly
            })
        );
        for bad in [
            "beat0-encrypted",
            "beat2-commitments",
            "beat3-full",
            "beat5",
            "",
        ] {
            assert!(bad.parse::<Profile>().is_err(), "{bad}");
        }
    }

    #[test]
    fn profiles_set_valid_delivery_parameters() {
        for p in Profile::ALL {
            let mut params = Params::default();
            p.apply(&mut params);
            params.validate().unwrap();
            assert_eq!(params.variant, p.variant);
            assert_eq!(
                params.delivery == Delivery::CommitmentsOnly,
                p.is_commitments_only()
            );
            assert_eq!(params.encrypt_storage, p.storage == Storage::Encrypted);
        }
        assert_eq!(Profile::from(Variant::Beat1), Profile::full(Variant::Beat1));
    }
}
