//! Keystore files and passphrases on disk and in the environment.
//!
//! [`beat_crypto::keystore_file`] defines the passphrase-sealed container over bytes and does no
//! I/O. This module is the I/O around it, for the keystore service (which opens the file) and
//! for `beat keygen` (which writes it):
//!
//! * [`seal_to_file`] seals a payload and replaces the file atomically, readable only by its
//!   owner;
//! * [`open_file`] and [`open_file_with_kdf_ceiling`] read a file with a bounded read and open it;
//! * [`passphrase_from_file`] and [`passphrase_from_env`] read a [`Passphrase`].
//!
//! There is deliberately no way to take a passphrase from a command-line argument: process
//! arguments are readable by every local user (`ps`, `/proc/<pid>/cmdline`) and end up in shell
//! history and process-accounting logs. Prefer the file: environment variables are inherited by
//! child processes and remain readable in `/proc/<pid>/environ` by the same user for the life of
//! the process.

use std::{
    fs::{self, File},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use beat_crypto::keystore_file::{self, KdfParams, KeystoreFileError, MAX_FILE_LEN, Passphrase};
use rand_core::CryptoRng;
use thiserror::Error;
use zeroize::Zeroizing;

/// Errors from reading and writing keystore files and passphrases.
#[derive(Debug, Error)]
pub enum FileError {
    /// The bytes were read but are not an acceptable keystore file or passphrase (wrong
    /// passphrase, corrupt file, empty passphrase, ...).
    #[error(transparent)]
    Format(#[from] KeystoreFileError),
    /// The environment variable named as the passphrase source is not set.
    #[error("environment variable {var} is not set")]
    MissingEnvVar {
        /// The variable name.
        var: String,
    },
    /// The environment variable is not valid Unicode (only reported on non-Unix platforms,
    /// where the raw bytes are not available).
    #[error("environment variable {var} is not valid unicode")]
    NonUnicodeEnvVar {
        /// The variable name.
        var: String,
    },
    /// Reading or writing a file failed.
    #[error("i/o error on {}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// === keystore files ===

/// Seals `payload` and writes it to `path` atomically, replacing any existing file.
///
/// The bytes go to a fresh temporary file in the same directory, created with mode 0600 on Unix
/// (exactly 0600, whatever the umask), flushed to disk, and then renamed over `path`, after which
/// the directory is synced. A crash leaves either the old file or the new one, never a mix; at
/// worst a stray `.<name>.<random>.tmp` file remains.
pub fn seal_to_file(
    path: impl AsRef<Path>,
    passphrase: &Passphrase,
    payload: &[u8],
    params: KdfParams,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<(), FileError> {
    let path = path.as_ref();
    let file_bytes = keystore_file::seal(passphrase, payload, params, rng)?;

    let file_name = path.file_name().ok_or_else(|| FileError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut suffix = [0u8; 8];
    rng.fill_bytes(&mut suffix);
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{}.tmp", hex::encode(suffix)));
    let temp_path = dir.join(temp_name);

    let written = write_new_private_file(&temp_path, &file_bytes)
        .and_then(|()| fs::rename(&temp_path, path).map_err(io_error(path)));
    if let Err(error) = written {
        // Best effort: the temporary file holds only ciphertext, but should not linger.
        let _ = fs::remove_file(&temp_path);
        return Err(error);
    }
    sync_dir(dir)
}

/// Creates `path` (failing if it exists) readable only by the owner, writes `bytes` and syncs.
fn write_new_private_file(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_error(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The umask can only clear bits, but set the mode exactly rather than rely on it.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_error(path))?;
    }
    file.write_all(bytes).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), FileError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Reads and opens the keystore file at `path`, accepting any KDF parameters within
/// [`KdfParams::UPPER_BOUNDS`] (see [`keystore_file::open`]).
///
/// Reads at most [`MAX_FILE_LEN`] + 1 bytes, so a huge or endless file fails cleanly.
pub fn open_file(
    path: impl AsRef<Path>,
    passphrase: &Passphrase,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    open_file_with_kdf_ceiling(path, passphrase, &KdfParams::UPPER_BOUNDS)
}

/// Like [`open_file`], but also rejects files whose KDF parameters exceed `ceiling` in any
/// component (see [`keystore_file::open_with_kdf_ceiling`]). The keystore service uses this to
/// cap the memory and time a hostile file can cost it.
pub fn open_file_with_kdf_ceiling(
    path: impl AsRef<Path>,
    passphrase: &Passphrase,
    ceiling: &KdfParams,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(io_error(path))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    if bytes.len() > MAX_FILE_LEN {
        return Err(KeystoreFileError::Malformed {
            reason: "larger than any keystore file",
        }
        .into());
    }
    Ok(keystore_file::open_with_kdf_ceiling(
        passphrase, &bytes, ceiling,
    )?)
}

// === passphrases ===

/// Reads the passphrase from a file, removing exactly one trailing newline (`\n` or `\r\n`)
/// if present. Every other byte, including other whitespace, is part of the passphrase.
///
/// Reads at most [`Passphrase::MAX_LEN`] + 2 bytes, so pointing it at a device or a huge file
/// fails cleanly instead of reading forever.
pub fn passphrase_from_file(path: impl AsRef<Path>) -> Result<Passphrase, FileError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(io_error(path))?;
    let limit = Passphrase::MAX_LEN + 2;
    // Enough capacity up front that reading never reallocates and leaves copies behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(limit + 1));
    file.take((limit + 1) as u64)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(Passphrase::from_bytes(bytes)?)
}

/// Reads the passphrase from the environment variable `var_name`, byte for byte (nothing is
/// trimmed).
///
/// The variable stays in the process environment; prefer [`passphrase_from_file`].
pub fn passphrase_from_env(var_name: &str) -> Result<Passphrase, FileError> {
    let value = std::env::var_os(var_name).ok_or_else(|| FileError::MissingEnvVar {
        var: var_name.to_owned(),
    })?;
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStringExt::into_vec(value);
    #[cfg(not(unix))]
    let bytes = value
        .into_string()
        .map_err(|_| FileError::NonUnicodeEnvVar {
            var: var_name.to_owned(),
        })?
        .into_bytes();
    Ok(Passphrase::from_bytes(Zeroizing::new(bytes))?)
}

#[cfg(test)]
mod tests;
