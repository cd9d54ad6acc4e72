//! Everything a replica's protocol instance is configured with. The parameters live in
//! `beat-types` and the public keys in `beat-crypto`, so that the configuration loader (and the
//! gateway, which loads the committee file) need not link the protocol core.

pub use beat_crypto::PublicKeys;
use beat_crypto::{Digest, tdh2};
use beat_types::{Committee, NodeId};
pub use beat_types::{Delivery, Params};

use crate::Error;

/// The largest broadcast value: a contribution plus encryption overhead.
pub fn max_value_bytes(params: &Params) -> usize {
    params.max_contribution_bytes + tdh2::CIPHERTEXT_OVERHEAD + 64
}

/// Everything a replica's protocol instance is configured with.
#[derive(Clone, Debug)]
pub struct Config {
    /// This replica.
    pub our_id: NodeId,
    /// The committee.
    pub committee: Committee,
    /// Digest of the committee file (keys and parameters): commit certificates name it, so a
    /// certificate of one committee never verifies as another's.
    pub committee_digest: Digest,
    /// Public key material.
    pub keys: PublicKeys,
    /// Protocol parameters.
    pub params: Params,
}

impl Config {
    /// Checks the configuration: membership, parameters, and that the key material matches
    /// the committee (thresholds f, one key share per replica).
    pub fn validate(&self) -> Result<(), Error> {
        if !self.committee.contains(self.our_id) {
            return Err(Error::NotAMember(self.our_id));
        }
        self.params
            .validate()
            .map_err(|e| Error::InvalidConfig(e.0))?;
        let (n, f) = (self.committee.n(), self.committee.f());
        if self.keys.coin.n() != n || self.keys.coin.threshold() != f {
            return Err(Error::InvalidConfig(format!(
                "coin keys are for n = {}, t = {}; the committee has n = {n}, f = {f}",
                self.keys.coin.n(),
                self.keys.coin.threshold()
            )));
        }
        if self.keys.encryption.n() != n || self.keys.encryption.threshold() != f {
            return Err(Error::InvalidConfig(format!(
                "encryption keys are for n = {}, t = {}; the committee has n = {n}, f = {f}",
                self.keys.encryption.n(),
                self.keys.encryption.threshold()
            )));
        }
        Ok(())
    }
}
