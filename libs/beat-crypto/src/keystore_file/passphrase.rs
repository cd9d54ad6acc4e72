//! Passphrases for keystore files; see the [parent module](super#passphrases) for where they
//! may come from and why a command-line argument is not one of those places.

use std::{fmt, fs::File, io::Read, path::Path};

use zeroize::Zeroizing;

use super::{KeystoreFileError, io_error};

/// A non-empty passphrase, wiped on drop, with a redacted `Debug`.
///
/// See the [module docs](super#passphrases) for why there is no way to take one from a
/// command-line argument.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Longest accepted passphrase in bytes.
    pub const MAX_LEN: usize = 4096;

    /// Wraps a passphrase given by the program (tests, or a caller that obtained it some other
    /// safe way). Rejects an empty or over-long passphrase.
    pub fn new(passphrase: String) -> Result<Self, KeystoreFileError> {
        Self::checked(Zeroizing::new(passphrase.into_bytes()))
    }

    /// Reads the passphrase from a file, removing exactly one trailing newline (`\n` or `\r\n`)
    /// if present. Every other byte, including other whitespace, is part of the passphrase.
    ///
    /// Reads at most [`Self::MAX_LEN`] + 2 bytes, so pointing it at a device or a huge file fails
    /// cleanly instead of reading forever.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeystoreFileError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(io_error(path))?;
        let limit = Self::MAX_LEN + 2;
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
        Self::checked(bytes)
    }

    /// Reads the passphrase from the environment variable `var_name`, byte for byte (nothing is
    /// trimmed).
    ///
    /// The variable stays in the process environment; prefer [`Self::from_file`].
    pub fn from_env(var_name: &str) -> Result<Self, KeystoreFileError> {
        let value = std::env::var_os(var_name).ok_or_else(|| KeystoreFileError::MissingEnvVar {
            var: var_name.to_owned(),
        })?;
        #[cfg(unix)]
        let bytes = std::os::unix::ffi::OsStringExt::into_vec(value);
        #[cfg(not(unix))]
        let bytes = value
            .into_string()
            .map_err(|_| KeystoreFileError::NonUnicodeEnvVar {
                var: var_name.to_owned(),
            })?
            .into_bytes();
        Self::checked(Zeroizing::new(bytes))
    }

    fn checked(bytes: Zeroizing<Vec<u8>>) -> Result<Self, KeystoreFileError> {
        if bytes.is_empty() {
            return Err(KeystoreFileError::EmptyPassphrase);
        }
        if bytes.len() > Self::MAX_LEN {
            return Err(KeystoreFileError::PassphraseTooLong { max: Self::MAX_LEN });
        }
        Ok(Self(bytes))
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}
