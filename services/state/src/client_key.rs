//! The state service's BEAT2 client identity, kept in a file of its own.
//!
//! In BEAT2 the state service is a client of consensus: it seals every event under a label made
//! of its Ed25519 public key and a request id derived from the event's `(source, sequence)`
//! ([`crate::encode`]). The key must outlive restarts — an event resubmitted after a restart must
//! get the same label, or consensus would order it a second time — so it is created once, on the
//! first start with a BEAT2 committee, and read on every later one.
//!
//! # File format (83 bytes, mode 0600)
//!
//! | field | bytes |
//! |---|---|
//! | magic `BEAT-CLIENT-KEY-V1/` | 19 |
//! | Ed25519 secret key (RFC 8032 seed) | 32 |
//! | its public key | 32 |
//!
//! The public key lets a damaged secret be told from a valid one: a file of another length,
//! with another magic, or whose public key does not match its secret is refused with an error,
//! never replaced. A new file is written to `<path>.tmp`, synced and renamed into place, so a
//! crash leaves either no key or a complete one.

use std::{
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
};

use beat_crypto::identity::{IdentityKeypair, IdentityPublicKey};
use rand::{SeedableRng as _, rngs::SysRng};
use rand_chacha::ChaCha20Rng;
use rand_core::Rng as _;
use zeroize::Zeroizing;

const MAGIC: &[u8] = b"BEAT-CLIENT-KEY-V1/";
const SECRET_LEN: usize = IdentityKeypair::SECRET_LEN;
const FILE_LEN: usize = MAGIC.len() + SECRET_LEN + IdentityPublicKey::LEN;

/// Why the client key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum ClientKeyError {
    /// The file could not be read or written.
    #[error("cannot access the client key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file exists but is not a valid key file.
    #[error(
        "the client key file {path} is corrupt: {problem}; refusing to start (restore it from a \
         backup; with a new key, events resubmitted after the restart would get new labels and \
         could be ordered twice)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The operating system's RNG failed.
    #[error("no randomness for a new client key: {0}")]
    Randomness(String),
}

/// Reads the key at `path`, or creates it (and its directory) if there is no file yet.
pub fn load_or_create(path: &Path) -> Result<IdentityKeypair, ClientKeyError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let keypair = parse(path, &Zeroizing::new(bytes))?;
            warn_if_exposed(path);
            Ok(keypair)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(source) => Err(io(path, source)),
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<IdentityKeypair, ClientKeyError> {
    let corrupt = |problem| ClientKeyError::Corrupt {
        path: path.to_owned(),
        problem,
    };
    if bytes.len() != FILE_LEN {
        return Err(corrupt("not 83 bytes long"));
    }
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("not a client key file"))?;
    let (secret, public) = rest
        .split_first_chunk::<SECRET_LEN>()
        .ok_or_else(|| corrupt("truncated"))?;
    let keypair = IdentityKeypair::from_secret_bytes(*secret);
    if keypair.public().as_bytes().as_slice() != public {
        return Err(corrupt("the public key does not match the secret key"));
    }
    Ok(keypair)
}

fn create(path: &Path) -> Result<IdentityKeypair, ClientKeyError> {
    let mut rng = ChaCha20Rng::try_from_rng(&mut SysRng)
        .map_err(|e| ClientKeyError::Randomness(e.to_string()))?;
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    rng.fill_bytes(secret.as_mut());
    let keypair = IdentityKeypair::from_secret_bytes(*secret);
    let mut bytes = Zeroizing::new(Vec::with_capacity(FILE_LEN));
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(secret.as_ref());
    bytes.extend_from_slice(keypair.public().as_bytes());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(|e| io(&tmp, e))?;
    file.write_all(&bytes).map_err(|e| io(&tmp, e))?;
    file.sync_all().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(&dir, e))?;
    tracing::info!(path = %path.display(), client = %keypair.public(), "created the BEAT2 client key");
    Ok(keypair)
}

/// Logs a warning if others than the owner may read the key file.
fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
            "the client key file is accessible to other users; it should have mode 0600"
        );
    }
}

fn io(path: &Path, source: std::io::Error) -> ClientKeyError {
    ClientKeyError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "beat-state-client-key-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_key_is_created_once_private_and_read_back() {
        let dir = temp("create");
        let path = dir.join("sub").join("state-client.key");
        let created = load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), FILE_LEN as u64);
        assert!(!dir.join("sub").join("state-client.key.tmp").exists());
        let loaded = load_or_create(&path).unwrap();
        assert_eq!(loaded.public(), created.public());
        let other = load_or_create(&dir.join("other.key")).unwrap();
        assert_ne!(other.public(), created.public());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_key_file_is_refused_and_left_alone() {
        let dir = temp("corrupt");
        let path = dir.join("state-client.key");
        load_or_create(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut flipped_secret = good.clone();
        flipped_secret[MAGIC.len()] ^= 1;
        let mut flipped_magic = good.clone();
        flipped_magic[0] ^= 1;
        let mut long = good.clone();
        long.push(b'\n');
        for (what, bytes, problem) in [
            ("secret", flipped_secret, "does not match"),
            ("magic", flipped_magic, "not a client key file"),
            ("long", long, "83 bytes"),
            ("short", good[..40].to_vec(), "83 bytes"),
            ("empty", Vec::new(), "83 bytes"),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            let err = load_or_create(&path).unwrap_err();
            assert!(
                matches!(&err, ClientKeyError::Corrupt { problem: p, .. } if p.contains(problem)),
                "{what}: {err}"
            );
            assert!(
                err.to_string().contains("refusing to start"),
                "{what}: {err}"
            );
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "{what}: file untouched"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
