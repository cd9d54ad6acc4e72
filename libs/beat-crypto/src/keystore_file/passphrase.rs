//! Passphrases for keystore files; see the [parent module](super#files-and-passphrases) for
//! where they may come from and why a command-line argument is not one of those places.

use std::fmt;

use zeroize::Zeroizing;

use super::KeystoreFileError;

/// A non-empty passphrase, wiped on drop, with a redacted `Debug`.
///
/// See the [module docs](super#files-and-passphrases) for why there is no way to take one from a
/// command-line argument.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Longest accepted passphrase in bytes.
    pub const MAX_LEN: usize = 4096;

    /// Wraps a passphrase given by the program (tests, or a caller that obtained it some other
    /// safe way). Rejects an empty or over-long passphrase.
    pub fn new(passphrase: String) -> Result<Self, KeystoreFileError> {
        Self::from_bytes(Zeroizing::new(passphrase.into_bytes()))
    }

    /// Wraps passphrase bytes exactly as given (nothing is trimmed; they need not be UTF-8),
    /// typically read from a file or an environment variable by the caller, which should hold
    /// them in a [`Zeroizing`] buffer that never reallocated. Rejects an empty or over-long
    /// passphrase.
    ///
    /// This crate does no I/O; the keystore service crate's `beat_keystore::file` module reads
    /// passphrases from files and environment variables with this constructor.
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Result<Self, KeystoreFileError> {
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
