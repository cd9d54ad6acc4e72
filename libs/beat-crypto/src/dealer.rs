//! The trusted-dealer key ceremony.
//!
//! One run produces, for a committee of `n` replicas, each replica's secret material (identity
//! key, coin key share, decryption key share) and one public description every replica and
//! client shares ([`CommitteeKeys`]). Any `f + 1` key shares combine; `f` reveal nothing.
//!
//! The dealer sees every secret, so it must run on a trusted machine and its output must be
//! distributed over secure channels, each replica's secrets only to that replica (the `beat
//! keygen` command writes one passphrase-encrypted keystore per replica). The master secrets
//! never leave this function: only shares are returned. This is the key set-up of the BEAT and
//! HoneyBadgerBFT deployments; a distributed key generation can replace it later without changing
//! anything downstream.

use std::fmt;

use beat_types::{Committee, NodeId};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::{
    Digest, bls, dst,
    hash::hash,
    identity::{IdentityKeypair, IdentityPublicKey},
    tdh2,
};

/// Errors of the key ceremony and of checking its output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DealerError {
    /// Generating the coin keys failed.
    #[error("coin keys: {0}")]
    Coin(#[from] bls::BlsError),
    /// Generating the encryption keys failed.
    #[error("encryption keys: {0}")]
    Encryption(#[from] tdh2::Tdh2Error),
    /// The public description is internally inconsistent.
    #[error("inconsistent committee keys: {0}")]
    Inconsistent(String),
    /// A replica's secrets do not match the public description.
    #[error("secrets of replica {node} do not match the committee keys: {what}")]
    Mismatch {
        /// The replica.
        node: NodeId,
        /// Which key.
        what: &'static str,
    },
}

/// The public keys of a committee: what every replica and client needs to verify shares,
/// encrypt, and authenticate replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeKeys {
    /// The committee.
    pub committee: Committee,
    /// Threshold BLS key set for the common coin (threshold f).
    pub coin: bls::PublicKeySet,
    /// TDH2 public key (threshold f).
    pub encryption: tdh2::PublicKey,
    /// Each replica's Ed25519 identity, by index.
    pub identities: Vec<IdentityPublicKey>,
}

impl CommitteeKeys {
    /// Checks that every part describes the same committee with threshold f.
    pub fn validate(&self) -> Result<(), DealerError> {
        let (n, f) = (self.committee.n(), self.committee.f());
        let bad = |s: String| Err(DealerError::Inconsistent(s));
        if self.coin.n() != n || self.coin.threshold() != f {
            return bad(format!(
                "coin keys for n = {}, t = {}; committee n = {n}, f = {f}",
                self.coin.n(),
                self.coin.threshold()
            ));
        }
        if self.encryption.n() != n || self.encryption.threshold() != f {
            return bad(format!(
                "encryption keys for n = {}, t = {}; committee n = {n}, f = {f}",
                self.encryption.n(),
                self.encryption.threshold()
            ));
        }
        if self.identities.len() != n {
            return bad(format!("{} identities for n = {n}", self.identities.len()));
        }
        let mut seen = std::collections::BTreeSet::new();
        if !self.identities.iter().all(|id| seen.insert(id.to_bytes())) {
            return bad("two replicas share an identity key".to_owned());
        }
        Ok(())
    }

    /// A digest identifying this key set (committee files carry it so that replicas can tell
    /// they were configured with the same keys).
    pub fn digest(&self) -> Digest {
        hash(
            dst::COMMITTEE,
            &postcard::to_allocvec(self).unwrap_or_default(),
        )
    }

    /// The replica whose identity key is `key`.
    pub fn node_of(&self, key: &IdentityPublicKey) -> Option<NodeId> {
        self.identities
            .iter()
            .position(|k| k == key)
            .map(NodeId::from_index)
    }
}

/// One replica's secret material. Only ever serialized into an encrypted keystore file.
#[derive(Serialize, Deserialize)]
pub struct ReplicaSecrets {
    /// The replica.
    pub node: NodeId,
    /// Its identity key.
    pub identity: IdentityKeypair,
    /// Its coin key share.
    pub coin: bls::SecretKeyShare,
    /// Its decryption key share.
    pub decryption: tdh2::SecretKeyShare,
}

impl fmt::Debug for ReplicaSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaSecrets")
            .field("node", &self.node)
            .field("identity", &self.identity.public())
            .finish_non_exhaustive()
    }
}

impl ReplicaSecrets {
    /// Checks that these secrets belong to replica `self.node` of `keys`: its identity and
    /// coin key share match the public description, and the shares are held by the right index.
    pub fn check_against(&self, keys: &CommitteeKeys) -> Result<(), DealerError> {
        let node = self.node;
        let mismatch = |what| Err(DealerError::Mismatch { node, what });
        if keys.identities.get(node.index()) != Some(&self.identity.public()) {
            return mismatch("identity key");
        }
        if self.coin.holder() != node || keys.coin.share(node) != Some(&self.coin.public_key()) {
            return mismatch("coin key share");
        }
        if self.decryption.holder() != node {
            return mismatch("decryption key share");
        }
        Ok(())
    }
}

/// Runs the ceremony for `committee`: threshold `f` coin and encryption keys and one identity
/// key per replica.
pub fn deal(
    committee: Committee,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<(CommitteeKeys, Vec<ReplicaSecrets>), DealerError> {
    let (n, f) = (committee.n(), committee.f());
    let (coin, coin_shares) = bls::deal(n, f, rng)?;
    let (encryption, decryption_shares) = tdh2::deal(n, f, rng)?;
    let identities: Vec<IdentityKeypair> = (0..n).map(|_| IdentityKeypair::generate(rng)).collect();
    let keys = CommitteeKeys {
        committee,
        coin,
        encryption,
        identities: identities.iter().map(IdentityKeypair::public).collect(),
    };
    keys.validate()?;
    let secrets = identities
        .into_iter()
        .zip(coin_shares.into_iter().zip(decryption_shares))
        .enumerate()
        .map(|(i, (identity, (coin, decryption)))| ReplicaSecrets {
            node: NodeId::from_index(i),
            identity,
            coin,
            decryption,
        })
        .collect();
    Ok((keys, secrets))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn ceremony_output_is_consistent_and_usable() {
        for n in [1, 4, 7] {
            let c = Committee::new(n).unwrap();
            let (keys, secrets) = deal(c, &mut ChaCha20Rng::seed_from_u64(n as u64)).unwrap();
            keys.validate().unwrap();
            assert_eq!(secrets.len(), n);
            for s in &secrets {
                s.check_against(&keys).unwrap();
            }
            // f+1 replicas decrypt together; the coin combines.
            let ct = keys
                .encryption
                .encrypt(b"L", b"m", &mut ChaCha20Rng::seed_from_u64(9))
                .unwrap();
            let shares: BTreeMap<_, _> = secrets
                .iter()
                .take(c.f_plus_one())
                .map(|s| {
                    (
                        s.node,
                        s.decryption
                            .decryption_share(&keys.encryption, &ct, b"L")
                            .unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                keys.encryption.decrypt_optimistic(&ct, &shares).value,
                Some(Ok(b"m".to_vec()))
            );
            let msg = bls::coin_message(b"c");
            let coin: BTreeMap<_, _> = secrets
                .iter()
                .rev()
                .take(c.f_plus_one())
                .map(|s| (s.node, s.coin.sign(&msg)))
                .collect();
            assert!(keys.coin.combine_optimistic(&msg, &coin).value.is_some());
            assert_eq!(
                keys.node_of(&secrets[n - 1].identity.public()),
                Some(NodeId::from_index(n - 1))
            );
        }
    }

    #[test]
    fn secrets_of_another_replica_or_ceremony_are_rejected() {
        let c = Committee::new(4).unwrap();
        let (keys, secrets) = deal(c, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
        let (other_keys, _) = deal(c, &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
        assert!(secrets[0].check_against(&other_keys).is_err());
        let mut wrong = keys.clone();
        wrong.identities.swap(0, 1);
        assert!(matches!(
            secrets[0].check_against(&wrong),
            Err(DealerError::Mismatch {
                what: "identity key",
                ..
            })
        ));
        let mut dup = keys.clone();
        dup.identities[1] = dup.identities[0];
        assert!(dup.validate().is_err());
        assert_ne!(keys.digest(), other_keys.digest());
    }

    #[test]
    fn secrets_round_trip_through_an_encrypted_keystore() {
        use crate::keystore_file::{KdfParams, Passphrase, open, seal};
        let c = Committee::new(4).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (keys, secrets) = deal(c, &mut rng).unwrap();
        let pass = Passphrase::new("correct horse".to_owned()).unwrap();
        let payload = postcard::to_allocvec(&secrets[2]).unwrap();
        let file = seal(
            &pass,
            &payload,
            KdfParams::insecure_fast_for_tests(),
            &mut rng,
        )
        .unwrap();
        let back: ReplicaSecrets = postcard::from_bytes(&open(&pass, &file).unwrap()).unwrap();
        back.check_against(&keys).unwrap();
        assert!(!format!("{back:?}").contains("coin"));
        let json = serde_json::to_string(&keys).unwrap();
        assert_eq!(serde_json::from_str::<CommitteeKeys>(&json).unwrap(), keys);
    }
}
