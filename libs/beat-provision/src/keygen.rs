//! The trusted-dealer key ceremony (`beat keygen`), written to disk.
//!
//! Writes `committee.json` (public) and, per replica, `replica-<i>/keystore.bin` (the replica's
//! secrets, passphrase-encrypted) and `replica-<i>/passphrase` (mode 0600, generated unless a
//! passphrase file is given). Distribute each replica's directory to that replica only. With
//! `--tls`, also the public APIs' CA, certificates and client tokens ([`crate::tls`]).

use std::path::{Path, PathBuf};

use anyhow::Context;
use beat_config::{CommitteeFile, Endpoints, ReplicaEntry};
use beat_crypto::{
    dealer,
    keystore_file::{KdfParams, Passphrase},
};
use beat_keystore::file::{passphrase_from_file, seal_to_file};
use beat_types::{Committee, NodeId, Params};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::layout::replica_dir;

/// What to generate.
#[derive(Clone, Debug)]
pub struct KeygenOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Committee name.
    pub name: String,
    /// Consensus parameters (variant, batch size, ...).
    pub params: Params,
    /// Each replica's gateway endpoints.
    pub endpoints: Vec<Endpoints>,
    /// A passphrase file used for every replica; generated per replica if `None`.
    pub passphrase_file: Option<PathBuf>,
    /// Key-derivation cost of the keystore files.
    pub kdf: KdfParams,
    /// Also issue TLS certificates and client tokens for the public APIs ([`crate::tls`]).
    pub tls: Option<crate::tls::TlsOptions>,
}

fn random_passphrase() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("OS randomness: {e}"))?;
    Ok(hex::encode(bytes))
}

/// Writes `contents` to `path`, readable by the owner only (mode `0600` on Unix).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents)?;
    Ok(())
}

/// Runs the ceremony and writes the files. Returns the committee file.
pub fn keygen(options: &KeygenOptions) -> anyhow::Result<CommitteeFile> {
    let n = options.endpoints.len();
    let committee = Committee::new(n)?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("OS randomness: {e}"))?;
    let mut rng = ChaCha20Rng::from_seed(seed);
    let (keys, secrets) = dealer::deal(committee, &mut rng)?;
    let file = CommitteeFile {
        format: 1,
        name: options.name.clone(),
        params: options.params.clone(),
        keys,
        replicas: options
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| ReplicaEntry {
                id: NodeId::from_index(i),
                endpoints: e.clone(),
            })
            .collect(),
    };
    file.validate()?;
    std::fs::create_dir_all(&options.out)?;
    file.save(&options.out.join("committee.json"))?;
    for s in &secrets {
        let dir = replica_dir(&options.out, s.node.index());
        std::fs::create_dir_all(&dir)?;
        let pass_path = dir.join("passphrase");
        let passphrase = match &options.passphrase_file {
            Some(p) => passphrase_from_file(p)?,
            None => {
                let p = random_passphrase()?;
                write_private(&pass_path, p.as_bytes())?;
                Passphrase::new(p)?
            }
        };
        let payload = postcard::to_allocvec(s)?;
        seal_to_file(
            dir.join("keystore.bin"),
            &passphrase,
            &payload,
            options.kdf,
            &mut rng,
        )?;
    }
    if let Some(tls) = &options.tls {
        crate::tls::issue(&options.out, tls)?;
    }
    Ok(file)
}
