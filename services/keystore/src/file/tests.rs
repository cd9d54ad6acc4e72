use std::sync::atomic::{AtomicUsize, Ordering};

use beat_crypto::keystore_file::{NONCE_LEN, SALT_LEN, open, seal, seal_with};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

const FAST: KdfParams = KdfParams::insecure_fast_for_tests();
const PAYLOAD: &[u8] = b"threshold key share and identity secret";

fn passphrase(s: &str) -> Passphrase {
    Passphrase::new(s.to_owned()).unwrap()
}

fn sealed(seed: u64) -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    seal(&passphrase("hunter2"), PAYLOAD, FAST, &mut rng).unwrap()
}

/// Whether `passphrase` consists of exactly `expected`. [`Passphrase`] does not reveal its bytes,
/// but sealing with a fixed salt and nonce is deterministic, and the KDF output (hence the file)
/// differs for different passphrases.
fn is_passphrase(passphrase: &Passphrase, expected: &[u8]) -> bool {
    let seal = |p: &Passphrase| seal_with(p, b"", FAST, &[7; SALT_LEN], &[9; NONCE_LEN]).unwrap();
    let expected = Passphrase::from_bytes(Zeroizing::new(expected.to_vec())).unwrap();
    seal(passphrase) == seal(&expected)
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "beat-keystore-file-{}-{}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn is_passphrase_tells_passphrases_apart() {
    assert!(is_passphrase(&passphrase("hunter2"), b"hunter2"));
    assert!(!is_passphrase(&passphrase("hunter2"), b"hunter2\n"));
    assert!(!is_passphrase(&passphrase("hunter2"), b"hunter3"));
}

// === passphrases ===

#[test]
fn passphrase_file_strips_exactly_one_trailing_newline() {
    let dir = TempDir::new("passphrase");
    let cases: [(&[u8], &[u8]); 6] = [
        (b"hunter2", b"hunter2"),
        (b"hunter2\n", b"hunter2"),
        (b"hunter2\r\n", b"hunter2"),
        (b"hunter2\n\n", b"hunter2\n"),
        (b" hunter2 \t\n", b" hunter2 \t"),
        (b"\xff\xfe binary", b"\xff\xfe binary"),
    ];
    for (contents, expected) in cases {
        let path = dir.0.join("pass");
        fs::write(&path, contents).unwrap();
        let from_file = passphrase_from_file(&path).unwrap();
        assert!(is_passphrase(&from_file, expected), "{contents:?}");
    }
    // A file sealed with the literal passphrase opens with the one read from a file.
    let path = dir.0.join("pass");
    fs::write(&path, "hunter2\n").unwrap();
    let file = sealed(17);
    assert!(open(&passphrase_from_file(&path).unwrap(), &file).is_ok());
}

#[test]
fn passphrase_file_errors() {
    let dir = TempDir::new("passphrase-errors");
    let path = dir.0.join("pass");
    for empty in ["", "\n", "\r\n"] {
        fs::write(&path, empty).unwrap();
        assert!(
            matches!(
                passphrase_from_file(&path),
                Err(FileError::Format(KeystoreFileError::EmptyPassphrase))
            ),
            "{empty:?}"
        );
    }
    fs::write(&path, "x".repeat(Passphrase::MAX_LEN + 10)).unwrap();
    assert!(matches!(
        passphrase_from_file(&path),
        Err(FileError::Format(
            KeystoreFileError::PassphraseTooLong { .. }
        ))
    ));
    // MAX_LEN bytes plus a newline is still accepted.
    fs::write(&path, format!("{}\r\n", "x".repeat(Passphrase::MAX_LEN))).unwrap();
    assert!(is_passphrase(
        &passphrase_from_file(&path).unwrap(),
        "x".repeat(Passphrase::MAX_LEN).as_bytes()
    ));
    let missing = dir.0.join("missing");
    assert!(
        matches!(passphrase_from_file(&missing), Err(FileError::Io { path, .. }) if path == missing)
    );
}

#[test]
fn passphrase_from_env_reads_the_variable() {
    let var = "BEAT_CRYPTO_TEST_VARIABLE_THAT_IS_NEVER_SET_7f3a";
    assert!(
        matches!(passphrase_from_env(var), Err(FileError::MissingEnvVar { var: v }) if v == var)
    );
    // Setting variables is `unsafe` in edition 2024, so read one the environment already has.
    let (name, value) = std::env::vars()
        .find(|(name, value)| !name.is_empty() && !value.is_empty() && value.len() <= 4096)
        .expect("the test environment has at least one non-empty variable");
    assert!(is_passphrase(
        &passphrase_from_env(&name).unwrap(),
        value.as_bytes()
    ));
}

// === files ===

#[test]
fn seal_to_file_and_open_file_round_trip() {
    let dir = TempDir::new("roundtrip");
    let path = dir.0.join("replica-0.keystore");
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    seal_to_file(&path, &passphrase("p"), PAYLOAD, FAST, &mut rng).unwrap();
    assert_eq!(
        open_file(&path, &passphrase("p")).unwrap().as_slice(),
        PAYLOAD
    );
    // Replacing it leaves exactly one file and the new contents.
    seal_to_file(&path, &passphrase("q"), b"new", FAST, &mut rng).unwrap();
    assert_eq!(
        open_file(&path, &passphrase("q")).unwrap().as_slice(),
        b"new"
    );
    assert_eq!(dir.entries(), ["replica-0.keystore"]);
    // What `seal_to_file` wrote is an ordinary keystore file.
    let bytes = fs::read(&path).unwrap();
    assert_eq!(open(&passphrase("q"), &bytes).unwrap().as_slice(), b"new");
}

#[cfg(unix)]
#[test]
fn keystore_file_mode_is_0600() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new("mode");
    let path = dir.0.join("k");
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let mut rng = ChaCha20Rng::seed_from_u64(19);
    seal_to_file(&path, &passphrase("p"), PAYLOAD, FAST, &mut rng).unwrap();
    assert_eq!(mode(&path), 0o600);
    // Replacing a world-readable file also yields 0600.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    seal_to_file(&path, &passphrase("p"), PAYLOAD, FAST, &mut rng).unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn seal_to_file_reports_io_errors_and_leaves_no_temp_file() {
    let dir = TempDir::new("io");
    let path = dir.0.join("no-such-dir").join("k");
    let mut rng = ChaCha20Rng::seed_from_u64(20);
    let err = seal_to_file(&path, &passphrase("p"), PAYLOAD, FAST, &mut rng).unwrap_err();
    assert!(matches!(err, FileError::Io { .. }), "{err:?}");
    assert!(dir.entries().is_empty());
}

#[test]
fn open_file_errors() {
    let dir = TempDir::new("open-errors");
    let missing = dir.0.join("missing");
    assert!(matches!(
        open_file(&missing, &passphrase("p")),
        Err(FileError::Io { .. })
    ));
    // One byte more than any keystore file: refused by the bounded read, before the header is
    // parsed (so before the KDF could run).
    let huge = dir.0.join("huge");
    let mut bytes = sealed(21);
    bytes.resize(MAX_FILE_LEN + 1, 0);
    fs::write(&huge, &bytes).unwrap();
    let err = open_file(&huge, &passphrase("hunter2")).unwrap_err();
    assert!(
        matches!(
            err,
            FileError::Format(KeystoreFileError::Malformed {
                reason: "larger than any keystore file"
            })
        ),
        "{err:?}"
    );
    // Format errors pass through unchanged.
    let file = dir.0.join("k");
    fs::write(&file, sealed(22)).unwrap();
    let err = open_file(&file, &passphrase("wrong")).unwrap_err();
    assert!(
        matches!(
            err,
            FileError::Format(KeystoreFileError::WrongPassphraseOrCorrupt)
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "wrong passphrase or the file is corrupted");
}

#[test]
fn open_file_with_kdf_ceiling_enforces_the_ceiling() {
    let dir = TempDir::new("ceiling");
    let path = dir.0.join("k");
    let mut rng = ChaCha20Rng::seed_from_u64(23);
    let params = KdfParams {
        m_cost_kib: 16,
        t_cost: 2,
        p_cost: 1,
    };
    seal_to_file(&path, &passphrase("p"), PAYLOAD, params, &mut rng).unwrap();
    let err = open_file_with_kdf_ceiling(&path, &passphrase("p"), &FAST).unwrap_err();
    assert!(
        matches!(
            err,
            FileError::Format(KeystoreFileError::UnsafeKdfParams { params: p, .. }) if p == params
        ),
        "{err:?}"
    );
    assert_eq!(
        open_file_with_kdf_ceiling(&path, &passphrase("p"), &params)
            .unwrap()
            .as_slice(),
        PAYLOAD
    );
}

#[test]
fn error_messages_are_lowercase_without_trailing_punctuation() {
    let errors = [
        FileError::MissingEnvVar { var: "V".into() },
        FileError::NonUnicodeEnvVar { var: "V".into() },
        FileError::Io {
            path: "/k".into(),
            source: io::Error::other("x"),
        },
        FileError::Format(KeystoreFileError::EmptyPassphrase),
    ];
    for err in errors {
        let msg = err.to_string();
        assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
        assert!(!msg.ends_with('.'), "{msg}");
    }
    assert_eq!(
        FileError::MissingEnvVar { var: "V".into() }.to_string(),
        "environment variable V is not set"
    );
    assert_eq!(
        FileError::from(KeystoreFileError::EmptyPassphrase).to_string(),
        "passphrase is empty"
    );
}
