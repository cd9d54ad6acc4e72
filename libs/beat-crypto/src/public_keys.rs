//! The public halves of a committee's threshold keys.

use std::{fmt, sync::Arc};

use crate::{bls, tdh2};

/// The public halves of the threshold keys: enough to verify every share and to encrypt.
#[derive(Clone)]
pub struct PublicKeys {
    /// Threshold BLS key set for the common coin.
    pub coin: Arc<bls::PublicKeySet>,
    /// TDH2 public key for threshold encryption.
    pub encryption: Arc<tdh2::PublicKey>,
}

impl fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKeys")
            .field("coin_threshold", &self.coin.threshold())
            .field("encryption_threshold", &self.encryption.threshold())
            .finish_non_exhaustive()
    }
}
