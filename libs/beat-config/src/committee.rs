//! The committee file: the public description of a committee.

use std::{collections::BTreeSet, path::Path};

use beat_crypto::PublicKeys;
use beat_crypto::{Digest, dealer::CommitteeKeys, hash::hash_parts};
use beat_types::Params;
use beat_types::{Committee, NodeId};
use serde::{Deserialize, Serialize};

/// The current committee file format.
pub const FORMAT: u32 = 1;

/// Why a committee file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CommitteeError {
    /// The file could not be read.
    #[error("cannot read committee file {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("cannot parse committee file {path}: {source}")]
    Parse {
        /// Path.
        path: String,
        /// Cause.
        source: serde_json::Error,
    },
    /// The content is inconsistent.
    #[error("invalid committee file: {0}")]
    Invalid(String),
}

/// Where a replica's gateway can be reached, per transport.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// Clearnet TCP `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// Tor onion address `xxxx.onion:port`, or a `host:port` reached through Tor exits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tor: Option<String>,
    /// I2P destination (base64) or `.b32.i2p` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i2p: Option<String>,
}

impl Endpoints {
    /// Returns `true` if no transport is configured.
    pub fn is_empty(&self) -> bool {
        self.tcp.is_none() && self.tor.is_none() && self.i2p.is_none()
    }
}

/// One replica's public entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaEntry {
    /// Index.
    pub id: NodeId,
    /// Gateway endpoints.
    pub endpoints: Endpoints,
}

/// The public description of a committee, shared by every replica and client.
///
/// On disk the file also states its [`digest`](Self::digest) (`"digest"`, hex), the name
/// commit certificates give the committee: a client without this crate's serialization (the
/// Python client) takes it from there, and [`load`](Self::load) refuses a file whose stated
/// digest is not the one its keys and parameters hash to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitteeFile {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// A human-readable name.
    pub name: String,
    /// Consensus parameters; every replica must run with the same ones.
    pub params: Params,
    /// Public keys.
    pub keys: CommitteeKeys,
    /// Every replica, by index.
    pub replicas: Vec<ReplicaEntry>,
}

impl CommitteeFile {
    /// Reads and validates a committee file.
    pub fn load(path: &Path) -> Result<Self, CommitteeError> {
        let text = std::fs::read_to_string(path).map_err(|source| CommitteeError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let parse = |source| CommitteeError::Parse {
            path: path.display().to_string(),
            source,
        };
        let mut value: serde_json::Value = serde_json::from_str(&text).map_err(parse)?;
        // The stated digest (see `save`) is checked, not trusted.
        let stated = value.as_object_mut().and_then(|o| o.remove("digest"));
        let file: Self = serde_json::from_value(value).map_err(parse)?;
        file.validate()?;
        if let Some(stated) = stated {
            let computed = file.digest().to_hex();
            if stated.as_str() != Some(computed.as_str()) {
                return Err(CommitteeError::Invalid(format!(
                    "the file states digest {stated} but its keys and parameters hash to \
                     {computed}"
                )));
            }
        }
        Ok(file)
    }

    /// Writes the file as pretty JSON, with its digest.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut value = serde_json::to_value(self).map_err(std::io::Error::other)?;
        if let Some(o) = value.as_object_mut() {
            o.insert(
                "digest".to_owned(),
                serde_json::Value::String(self.digest().to_hex()),
            );
        }
        let text = serde_json::to_string_pretty(&value).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    /// Checks that keys, parameters and replicas describe one consistent committee.
    pub fn validate(&self) -> Result<(), CommitteeError> {
        let bad = |s: String| Err(CommitteeError::Invalid(s));
        if self.format != FORMAT {
            return bad(format!(
                "format {} is not supported (expected {FORMAT})",
                self.format
            ));
        }
        self.keys
            .validate()
            .map_err(|e| CommitteeError::Invalid(e.to_string()))?;
        self.params
            .validate()
            .map_err(|e| CommitteeError::Invalid(e.to_string()))?;
        let n = self.keys.committee.n();
        if self.replicas.len() != n {
            return bad(format!(
                "{} replicas listed for a committee of {n}",
                self.replicas.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, r) in self.replicas.iter().enumerate() {
            if r.id != NodeId::from_index(i) {
                return bad(format!(
                    "replica entry {i} has id {}; entries must be in index order",
                    r.id
                ));
            }
            if r.endpoints.is_empty() {
                return bad(format!("replica {i} has no endpoint on any transport"));
            }
            for e in [&r.endpoints.tcp, &r.endpoints.tor, &r.endpoints.i2p]
                .into_iter()
                .flatten()
            {
                if !seen.insert(e.clone()) {
                    return bad(format!("endpoint {e} is listed twice"));
                }
            }
        }
        Ok(())
    }

    /// The committee.
    pub fn committee(&self) -> Committee {
        self.keys.committee
    }

    /// The public keys in the form the protocol core takes.
    pub fn public_keys(&self) -> PublicKeys {
        PublicKeys {
            coin: std::sync::Arc::new(self.keys.coin.clone()),
            encryption: std::sync::Arc::new(self.keys.encryption.clone()),
        }
    }

    /// Identifies the keys and consensus parameters (not the endpoints, which may change): two
    /// replicas can talk only if their digests match.
    pub fn digest(&self) -> Digest {
        let params = postcard::to_allocvec(&self.params).unwrap_or_default();
        hash_parts(
            b"_BEAT_CONFIG_COMMITTEE",
            &[self.keys.digest().as_bytes(), &params],
        )
    }
}

#[cfg(test)]
mod tests {
    use beat_crypto::dealer::deal;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn the_stated_digest_is_written_and_checked() {
        let dir =
            std::env::temp_dir().join(format!("beat-committee-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("committee.json");
        let f = file(4);
        f.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&f.digest().to_hex()));
        assert_eq!(CommitteeFile::load(&path).unwrap(), f);
        // Another stated digest is refused; no stated digest is accepted (older files).
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["digest"] = serde_json::Value::String("00".repeat(32));
        std::fs::write(&path, value.to_string()).unwrap();
        let e = CommitteeFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("states digest"), "{e}");
        value.as_object_mut().unwrap().remove("digest");
        std::fs::write(&path, value.to_string()).unwrap();
        assert_eq!(CommitteeFile::load(&path).unwrap(), f);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn file(n: usize) -> CommitteeFile {
        let c = Committee::new(n).unwrap();
        let (keys, _) = deal(c, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
        CommitteeFile {
            format: FORMAT,
            name: "test".to_owned(),
            params: Params::default(),
            keys,
            replicas: (0..n)
                .map(|i| ReplicaEntry {
                    id: NodeId::from_index(i),
                    endpoints: Endpoints {
                        tcp: Some(format!("127.0.0.1:{}", 7000 + i)),
                        ..Endpoints::default()
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn round_trips_and_validates() {
        let f = file(4);
        f.validate().unwrap();
        let json = serde_json::to_string(&f).unwrap();
        let back: CommitteeFile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.digest(), f.digest());
        let mut other = f.clone();
        other.params.batch_size += 1;
        assert_ne!(
            other.digest(),
            f.digest(),
            "parameters are part of the digest"
        );
        let mut moved = f.clone();
        moved.replicas[0].endpoints.tcp = Some("10.0.0.1:1".to_owned());
        assert_eq!(moved.digest(), f.digest(), "endpoints are not");
    }

    #[test]
    fn rejects_inconsistent_files() {
        let mut f = file(4);
        f.replicas.pop();
        assert!(f.validate().is_err());
        let mut f = file(4);
        f.replicas[1].endpoints = Endpoints::default();
        assert!(f.validate().is_err());
        let mut f = file(4);
        f.replicas[2].endpoints.tcp = f.replicas[1].endpoints.tcp.clone();
        assert!(f.validate().is_err());
        let mut f = file(4);
        f.replicas.swap(0, 1);
        assert!(f.validate().is_err());
        let mut f = file(4);
        f.format = 2;
        assert!(f.validate().is_err());
    }
}
