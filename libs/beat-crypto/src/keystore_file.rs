//! The encrypted-at-rest keystore file: a versioned, passphrase-protected container for secret
//! key material (identity keys, threshold key shares).
//!
//! The container is agnostic about its payload: callers serialize their secrets (for example an
//! [`IdentityKeypair`](crate::identity::IdentityKeypair)) into bytes, [`seal`] them, and get
//! them back from [`open`] in a buffer that is wiped on drop.
//!
//! # File layout (format version 1)
//!
//! All integers are little-endian, like every other encoding in this crate.
//!
//! | offset | length | field | value |
//! |---:|---:|---|---|
//! | 0 | 8 | magic | `BEATKEYS` (ASCII) |
//! | 8 | 2 | format version | `1` (`u16`) |
//! | 10 | 1 | KDF id | `1` = Argon2id, version 0x13 |
//! | 11 | 4 | `m_cost_kib` | Argon2 memory in KiB (`u32`) |
//! | 15 | 4 | `t_cost` | Argon2 passes (`u32`) |
//! | 19 | 4 | `p_cost` | Argon2 lanes (`u32`) |
//! | 23 | 16 | salt | random, fresh per file |
//! | 39 | 12 | nonce | random, fresh per file |
//! | 51 | 4 | payload length `n` | `u32`, at most [`MAX_PAYLOAD_LEN`] |
//! | 55 | `n` | ciphertext | ChaCha20 encryption of the payload |
//! | 55 + `n` | 16 | tag | Poly1305 authentication tag |
//!
//! The first [`HEADER_LEN`] (55) bytes are the *header*. The file is exactly
//! `HEADER_LEN + n + TAG_LEN` bytes long; anything shorter is [`KeystoreFileError::Truncated`]
//! and anything longer is [`KeystoreFileError::Malformed`].
//!
//! * `key = Argon2id(passphrase, salt, m_cost_kib, t_cost, p_cost)`, 32 bytes; the key and
//!   Argon2's working memory are wiped after use.
//! * `ciphertext ‖ tag = ChaCha20-Poly1305(key, nonce, payload, aad = dst::KEYSTORE_FILE ‖ header)`.
//!
//! # Why these choices
//!
//! * **Magic and version first.** A loader can say "this is not a keystore" or "this keystore is
//!   newer than me" before touching anything else, and a future format can change every later
//!   field.
//! * **KDF id and parameters in the file.** The cost can be raised for new files without breaking
//!   old ones. Because an attacker may write this header, the parameters are bounds-checked
//!   ([`KdfParams::validate`]) *before* the KDF runs, so a malicious file cannot make the loader
//!   allocate unbounded memory. The hard bounds (4 GiB, 64 passes) still allow minutes of work;
//!   a service that loads files it did not write should pass its own, tighter ceiling to
//!   [`open_with_kdf_ceiling`].
//! * **Argon2id.** Memory-hard against GPU and ASIC guessing, and its data-independent
//!   addressing in the first half of the first pass limits cache-timing leakage of the
//!   passphrase (RFC 9106's recommended variant). The default (64 MiB, 3 passes) is RFC 9106
//!   §4's second recommended setting with one lane instead of four: the `argon2` crate is built
//!   without its `parallel` feature, so extra lanes would run one after another and buy neither
//!   speed nor attacker cost. It takes about half a second on a current x86-64 core.
//! * **Random 16-byte salt, random 12-byte nonce.** The salt makes every file's key unique even
//!   under a reused passphrase, so the 96-bit nonce is never reused under one key in practice; the
//!   nonce is random anyway so that the construction stays safe if a salt is ever reused.
//! * **The whole header is associated data.** Every header byte is authenticated: downgrading the
//!   KDF cost, swapping the salt or nonce, changing the version or the length all make decryption
//!   fail. The `KEYSTORE_FILE` tag in front binds the ciphertext to this file format. The
//!   parameters cannot be authenticated *before* the KDF runs (that needs the key), which is why
//!   they are bounds-checked first.
//! * **Explicit payload length.** A truncated copy is reported as truncated rather than as a
//!   wrong passphrase, and neither truncation nor trailing garbage ever runs the KDF.
//! * **One generic error for AEAD failure.** A wrong passphrase and a corrupted ciphertext are
//!   indistinguishable by design: [`KeystoreFileError::WrongPassphraseOrCorrupt`].
//!
//! # Files and passphrases
//!
//! This module, like the rest of the crate, does no I/O: it turns bytes into bytes. Reading and
//! writing keystore files (atomically, mode 0600, with a bounded read) and reading passphrases
//! from a file or an environment variable live in the keystore service crate, in its module
//! `beat_keystore::file` (`seal_to_file`, `open_file`, `open_file_with_kdf_ceiling`,
//! `passphrase_from_file`, `passphrase_from_env`).
//!
//! A [`Passphrase`] is built from bytes the program already holds ([`Passphrase::new`],
//! [`Passphrase::from_bytes`]). Those bytes should come from a file or an environment variable,
//! never from a command-line argument: process arguments are readable by every local user
//! (`ps`, `/proc/<pid>/cmdline`) and end up in shell history and process-accounting logs.
//! Prefer the file: environment variables are inherited by child processes and remain readable in
//! `/proc/<pid>/environ` by the same user for the life of the process.

use std::fmt;

use argon2::{Algorithm, Argon2, Version};
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::dst;

/// Magic bytes at the start of every keystore file.
pub const MAGIC: [u8; 8] = *b"BEATKEYS";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// KDF id of Argon2id (version 0x13).
pub const KDF_ARGON2ID: u8 = 1;
/// Salt length in bytes.
pub const SALT_LEN: usize = 16;
/// Nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// Authentication tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Header length in bytes (everything before the ciphertext).
pub const HEADER_LEN: usize = 8 + 2 + 1 + 4 + 4 + 4 + SALT_LEN + NONCE_LEN + 4;
/// Largest payload a keystore may hold (16 MiB); key material is far smaller.
pub const MAX_PAYLOAD_LEN: usize = 16 * 1024 * 1024;
/// Largest well-formed keystore file.
pub const MAX_FILE_LEN: usize = HEADER_LEN + MAX_PAYLOAD_LEN + TAG_LEN;

const KEY_LEN: usize = 32;

/// Errors from sealing and opening keystore files and from building a [`Passphrase`].
#[derive(Debug, Error)]
pub enum KeystoreFileError {
    /// The file does not start with [`MAGIC`].
    #[error("not a beat keystore file (bad magic bytes)")]
    NotAKeystore,
    /// The file was written in a format version this build does not read.
    #[error("unsupported keystore format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version found in the file.
        found: u16,
        /// Version this build supports.
        supported: u16,
    },
    /// The file names a key derivation function this build does not know.
    #[error("unsupported key derivation function id {id}")]
    UnsupportedKdf {
        /// KDF id found in the file.
        id: u8,
    },
    /// The file ends before the header or the ciphertext it declares.
    #[error("keystore file is truncated: expected {expected} bytes, found {found}")]
    Truncated {
        /// Length the file should have.
        expected: usize,
        /// Length it has.
        found: usize,
    },
    /// The file is structurally invalid.
    #[error("malformed keystore file: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The KDF parameters are outside the accepted bounds; the KDF was not run.
    #[error("unsafe kdf parameters ({params}): {reason}")]
    UnsafeKdfParams {
        /// The rejected parameters.
        params: KdfParams,
        /// Which bound they violate.
        reason: &'static str,
    },
    /// The payload is larger than [`MAX_PAYLOAD_LEN`].
    #[error("payload of {len} bytes exceeds the maximum of {max} bytes")]
    PayloadTooLarge {
        /// Payload length (given or declared in the file).
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Authenticated decryption failed.
    #[error("wrong passphrase or the file is corrupted")]
    WrongPassphraseOrCorrupt,
    /// Argon2 failed after its parameters were validated (in practice: out of memory).
    #[error("key derivation failed")]
    Kdf {
        /// The underlying Argon2 error.
        #[source]
        source: argon2::Error,
    },
    /// The passphrase is empty.
    #[error("passphrase is empty")]
    EmptyPassphrase,
    /// The passphrase is longer than [`Passphrase::MAX_LEN`].
    #[error("passphrase is longer than {max} bytes")]
    PassphraseTooLong {
        /// The maximum.
        max: usize,
    },
}

pub use passphrase::Passphrase;

mod passphrase;

// === impl KdfParams ===

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Number of passes over memory.
    pub t_cost: u32,
    /// Number of lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// Largest accepted memory cost: 4 GiB.
    pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
    /// Largest accepted number of passes.
    pub const MAX_T_COST: u32 = 64;
    /// Largest accepted number of lanes.
    pub const MAX_P_COST: u32 = 16;
    /// Argon2's minimum memory per lane, in KiB.
    pub const MIN_M_COST_KIB_PER_LANE: u32 = 8;

    /// The loosest parameters [`KdfParams::validate`] accepts, usable as a ceiling for
    /// [`open_with_kdf_ceiling`].
    pub const UPPER_BOUNDS: Self = Self {
        m_cost_kib: Self::MAX_M_COST_KIB,
        t_cost: Self::MAX_T_COST,
        p_cost: Self::MAX_P_COST,
    };

    /// Minimal parameters (8 KiB, one pass) that make sealing and opening take microseconds.
    ///
    /// **Not for production**: a keystore sealed with these falls to a passphrase-guessing attack
    /// almost as fast as with no KDF at all.
    pub const fn insecure_fast_for_tests() -> Self {
        Self {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// Checks the parameters against hard bounds without running the KDF.
    ///
    /// Rejects zero passes or lanes, less than 8 KiB per lane (Argon2's minimum), more than
    /// 4 GiB of memory, more than [`Self::MAX_T_COST`] passes and more than [`Self::MAX_P_COST`]
    /// lanes. It does not enforce a security floor: [`Self::insecure_fast_for_tests`] passes.
    pub fn validate(&self) -> Result<(), KeystoreFileError> {
        let reject = |reason| {
            Err(KeystoreFileError::UnsafeKdfParams {
                params: *self,
                reason,
            })
        };
        if self.t_cost == 0 {
            return reject("zero passes");
        }
        if self.t_cost > Self::MAX_T_COST {
            return reject("too many passes");
        }
        if self.p_cost == 0 {
            return reject("zero lanes");
        }
        if self.p_cost > Self::MAX_P_COST {
            return reject("too many lanes");
        }
        if self.m_cost_kib > Self::MAX_M_COST_KIB {
            return reject("memory cost above 4 gib");
        }
        if self.m_cost_kib < Self::MIN_M_COST_KIB_PER_LANE * self.p_cost {
            return reject("memory cost below 8 kib per lane");
        }
        if self.argon2_params().is_err() {
            return reject("rejected by argon2");
        }
        Ok(())
    }

    fn validate_within(&self, ceiling: &Self) -> Result<(), KeystoreFileError> {
        self.validate()?;
        if self.m_cost_kib > ceiling.m_cost_kib
            || self.t_cost > ceiling.t_cost
            || self.p_cost > ceiling.p_cost
        {
            return Err(KeystoreFileError::UnsafeKdfParams {
                params: *self,
                reason: "above the caller's ceiling",
            });
        }
        Ok(())
    }

    fn argon2_params(&self) -> Result<argon2::Params, argon2::Error> {
        argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(KEY_LEN))
    }
}

impl Default for KdfParams {
    /// Production setting: Argon2id with 64 MiB, 3 passes, 1 lane.
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl fmt::Display for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "m_cost_kib={} t_cost={} p_cost={}",
            self.m_cost_kib, self.t_cost, self.p_cost
        )
    }
}

#[cfg(test)]
thread_local! {
    /// Counts KDF runs on this thread, so tests can prove a rejection happened before the KDF.
    static KDF_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Derives the file key. `params` must have passed [`KdfParams::validate`].
fn derive_key(
    passphrase: &Passphrase,
    salt: &[u8; SALT_LEN],
    params: &KdfParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreFileError> {
    #[cfg(test)]
    KDF_RUNS.with(|runs| runs.set(runs.get() + 1));
    let argon2_params = params
        .argon2_params()
        .map_err(|source| KeystoreFileError::Kdf { source })?;
    // Argon2's working memory is derived from the passphrase and, unlike the output, is not
    // wiped by `hash_password_into`; own it so it is zeroized on drop. `try_reserve` turns an
    // allocation failure into an error instead of an abort.
    let block_count = argon2_params.block_count();
    let mut memory: Zeroizing<Vec<argon2::Block>> = Zeroizing::new(Vec::new());
    memory
        .try_reserve_exact(block_count)
        .map_err(|_| KeystoreFileError::Kdf {
            source: argon2::Error::OutOfMemory,
        })?;
    memory.resize(block_count, argon2::Block::default());
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params)
        .hash_password_into_with_memory(
            passphrase.as_bytes(),
            salt,
            key.as_mut(),
            memory.as_mut_slice(),
        )
        .map_err(|source| KeystoreFileError::Kdf { source })?;
    Ok(key)
}

// === header ===

struct Header {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    payload_len: usize,
}

impl Header {
    fn encode(&self) -> Result<[u8; HEADER_LEN], KeystoreFileError> {
        let payload_len =
            u32::try_from(self.payload_len).map_err(|_| KeystoreFileError::PayloadTooLarge {
                len: self.payload_len,
                max: MAX_PAYLOAD_LEN,
            })?;
        let mut out = [0u8; HEADER_LEN];
        let fields: [&[u8]; 9] = [
            &MAGIC,
            &FORMAT_VERSION.to_le_bytes(),
            &[KDF_ARGON2ID],
            &self.params.m_cost_kib.to_le_bytes(),
            &self.params.t_cost.to_le_bytes(),
            &self.params.p_cost.to_le_bytes(),
            &self.salt,
            &self.nonce,
            &payload_len.to_le_bytes(),
        ];
        let mut at = 0;
        for field in fields {
            out[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        debug_assert_eq!(at, HEADER_LEN);
        Ok(out)
    }

    /// Parses the header at the start of `file`, checking magic, version and KDF id in that
    /// order so the most useful error wins.
    fn decode(file: &[u8]) -> Result<Self, KeystoreFileError> {
        let truncated = || KeystoreFileError::Truncated {
            expected: HEADER_LEN,
            found: file.len(),
        };
        let mut reader = Reader(file);
        let Some(magic) = reader.array::<8>() else {
            return Err(if MAGIC.starts_with(file) {
                truncated()
            } else {
                KeystoreFileError::NotAKeystore
            });
        };
        if magic != MAGIC {
            return Err(KeystoreFileError::NotAKeystore);
        }
        let version = u16::from_le_bytes(reader.array().ok_or_else(truncated)?);
        if version != FORMAT_VERSION {
            return Err(KeystoreFileError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        reader.header_rest().ok_or_else(truncated)?
    }
}

/// A forward-only reader over the header bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// Everything after the version; `None` if the header is incomplete.
    fn header_rest(&mut self) -> Option<Result<Header, KeystoreFileError>> {
        let [kdf_id] = self.array::<1>()?;
        let params = KdfParams {
            m_cost_kib: self.u32()?,
            t_cost: self.u32()?,
            p_cost: self.u32()?,
        };
        let salt = self.array()?;
        let nonce = self.array()?;
        let payload_len = self.u32()? as usize;
        if kdf_id != KDF_ARGON2ID {
            return Some(Err(KeystoreFileError::UnsupportedKdf { id: kdf_id }));
        }
        Some(Ok(Header {
            params,
            salt,
            nonce,
            payload_len,
        }))
    }
}

fn associated_data(header: &[u8; HEADER_LEN]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(dst::KEYSTORE_FILE.len() + HEADER_LEN);
    aad.extend_from_slice(dst::KEYSTORE_FILE);
    aad.extend_from_slice(header);
    aad
}

// === seal and open ===

/// Encrypts `payload` under `passphrase` with a fresh random salt and nonce from `rng`.
///
/// ```
/// use beat_crypto::keystore_file::{self, KdfParams, Passphrase};
/// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
///
/// let passphrase = Passphrase::new("correct horse battery staple".into())?;
/// let params = KdfParams::insecure_fast_for_tests(); // use KdfParams::default() in production
/// let mut rng = ChaCha20Rng::seed_from_u64(1);
/// let file = keystore_file::seal(&passphrase, b"secret key material", params, &mut rng)?;
/// let payload = keystore_file::open(&passphrase, &file)?;
/// assert_eq!(payload.as_slice(), b"secret key material");
/// # Ok::<(), keystore_file::KeystoreFileError>(())
/// ```
pub fn seal(
    passphrase: &Passphrase,
    payload: &[u8],
    params: KdfParams,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<Vec<u8>, KeystoreFileError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    seal_with(passphrase, payload, params, &salt, &nonce)
}

/// Deterministic [`seal`] with a caller-chosen salt and nonce, **for known-answer tests only**.
///
/// Sealing two different payloads with the same passphrase, salt and nonce reuses a
/// ChaCha20-Poly1305 key and nonce, which reveals the XOR of the payloads and allows forgeries.
/// Production code must call [`seal`].
pub fn seal_with(
    passphrase: &Passphrase,
    payload: &[u8],
    params: KdfParams,
    salt: &[u8; SALT_LEN],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, KeystoreFileError> {
    params.validate()?;
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(KeystoreFileError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        });
    }
    let header = Header {
        params,
        salt: *salt,
        nonce: *nonce,
        payload_len: payload.len(),
    }
    .encode()?;
    let key = derive_key(passphrase, salt, &params)?;
    let cipher = ChaCha20Poly1305::new((&*key).into());

    // Exact capacity: the plaintext copied in below is encrypted in place and never reallocated.
    let mut file = Vec::with_capacity(HEADER_LEN + payload.len() + TAG_LEN);
    file.extend_from_slice(&header);
    file.extend_from_slice(payload);
    let tag = cipher.encrypt_inout_detached(
        nonce.into(),
        &associated_data(&header),
        (&mut file[HEADER_LEN..]).into(),
    );
    match tag {
        Ok(tag) => {
            file.extend_from_slice(&tag);
            Ok(file)
        }
        Err(_) => {
            // Unreachable for payloads within MAX_PAYLOAD_LEN; never hand back plaintext.
            zeroize::Zeroize::zeroize(&mut file);
            Err(KeystoreFileError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_LEN,
            })
        }
    }
}

/// Decrypts a keystore file, accepting any KDF parameters within [`KdfParams::UPPER_BOUNDS`].
///
/// Structural checks and the KDF bounds are applied before the KDF runs.
pub fn open(
    passphrase: &Passphrase,
    file_bytes: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeystoreFileError> {
    open_with_kdf_ceiling(passphrase, file_bytes, &KdfParams::UPPER_BOUNDS)
}

/// Like [`open`], but also rejects files whose KDF parameters exceed `ceiling` in any
/// component. Services use this to cap the memory and time an untrusted file can cost them.
pub fn open_with_kdf_ceiling(
    passphrase: &Passphrase,
    file_bytes: &[u8],
    ceiling: &KdfParams,
) -> Result<Zeroizing<Vec<u8>>, KeystoreFileError> {
    let header = Header::decode(file_bytes)?;
    if header.payload_len > MAX_PAYLOAD_LEN {
        return Err(KeystoreFileError::PayloadTooLarge {
            len: header.payload_len,
            max: MAX_PAYLOAD_LEN,
        });
    }
    let expected = HEADER_LEN + header.payload_len + TAG_LEN;
    if file_bytes.len() < expected {
        return Err(KeystoreFileError::Truncated {
            expected,
            found: file_bytes.len(),
        });
    }
    if file_bytes.len() > expected {
        return Err(KeystoreFileError::Malformed {
            reason: "trailing bytes after the authentication tag",
        });
    }
    header.params.validate_within(ceiling)?;

    let (header_bytes, rest) =
        file_bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(KeystoreFileError::Truncated {
                expected,
                found: file_bytes.len(),
            })?;
    let (ciphertext, tag) =
        rest.split_last_chunk::<TAG_LEN>()
            .ok_or(KeystoreFileError::Truncated {
                expected,
                found: file_bytes.len(),
            })?;

    let key = derive_key(passphrase, &header.salt, &header.params)?;
    let cipher = ChaCha20Poly1305::new((&*key).into());
    let mut payload = Zeroizing::new(ciphertext.to_vec());
    cipher
        .decrypt_inout_detached(
            (&header.nonce).into(),
            &associated_data(header_bytes),
            payload.as_mut_slice().into(),
            tag.into(),
        )
        .map_err(|_| KeystoreFileError::WrongPassphraseOrCorrupt)?;
    Ok(payload)
}

#[cfg(test)]
mod tests;
