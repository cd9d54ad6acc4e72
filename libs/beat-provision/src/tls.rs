//! `beat keygen --tls`: a private CA for a committee's public APIs (ordering and market), a
//! server certificate per replica, and client credentials — a certificate for mutual TLS and a
//! bearer token — per client, including each replica's own state service.
//!
//! Layout under the keygen directory:
//!
//! | path | what | who gets it |
//! |---|---|---|
//! | `tls/ca.pem` | the CA certificate | every client and server |
//! | `tls/ca.key` | the CA key (0600) | nobody online: keep it offline, it issues more certificates |
//! | `tls/tokens` | `name sha256-hex` of every client's token | every replica (`api.tokens_file`) |
//! | `tls/clients/<name>.{pem,key,token}` | a client's certificate, key, token (0600) | that client |
//! | `replica-<i>/tls/server.{pem,key}` | replica `i`'s API certificate and key | replica `i` |
//! | `replica-<i>/tls/state.{pem,key,token}` | replica `i`'s state service as a client of its consensus | replica `i` |
//!
//! Certificates are ECDSA P-256, valid from the start of the current year: the CA for ten
//! years, the others for two.

use std::path::{Path, PathBuf};

use anyhow::Context;
use beat_client::connect::ClientAuth;
use beat_telemetry::auth::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::{keygen::write_private, layout::replica_dir};

/// What to issue.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// Names (DNS names or IP addresses) in each replica's server certificate, in replica order.
    pub server_names: Vec<Vec<String>>,
    /// Clients to issue credentials for (besides each replica's state service).
    pub clients: Vec<String>,
}

fn this_year() -> i32 {
    #[allow(clippy::disallowed_methods)] // an operator tool dating certificates, not the core
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Mean Gregorian year; the first day of the year is all that is needed.
    1970 + i32::try_from(secs / 31_556_952).unwrap_or(0)
}

fn params(common_name: &str, names: Vec<String>, years: i32) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(names)?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    let year = this_year();
    p.not_before = rcgen::date_time_ymd(year, 1, 1);
    p.not_after = rcgen::date_time_ymd(year + years, 1, 1);
    Ok(p)
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("OS randomness: {e}"))?;
    Ok(hex::encode(bytes))
}

/// The CA certificate of a keygen directory.
pub fn ca_file(out: &Path) -> PathBuf {
    out.join("tls").join("ca.pem")
}

/// Replica `i`'s server TLS files, requiring client certificates from the committee's CA.
pub fn server_tls(out: &Path, i: usize) -> TlsFiles {
    let dir = replica_dir(out, i).join("tls");
    TlsFiles {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
        client_ca_file: Some(ca_file(out)),
        handshake_timeout_ms: 5_000,
    }
}

/// The tokens file every replica checks.
pub fn tokens_file(out: &Path) -> PathBuf {
    out.join("tls").join("tokens")
}

/// The credentials of client `name`.
pub fn client_auth(out: &Path, name: &str) -> ClientAuth {
    let dir = out.join("tls").join("clients");
    ClientAuth {
        ca_file: Some(ca_file(out)),
        cert_file: Some(dir.join(format!("{name}.pem"))),
        key_file: Some(dir.join(format!("{name}.key"))),
        token_file: Some(dir.join(format!("{name}.token"))),
        tls_domain: None,
    }
}

/// The credentials of replica `i`'s state service towards its consensus service.
pub fn state_auth(out: &Path, i: usize) -> ClientAuth {
    let dir = replica_dir(out, i).join("tls");
    ClientAuth {
        ca_file: Some(ca_file(out)),
        cert_file: Some(dir.join("state.pem")),
        key_file: Some(dir.join("state.key")),
        token_file: Some(dir.join("state.token")),
        tls_domain: None,
    }
}

/// Issues the CA and every certificate and token (module docs) under `out`.
pub fn issue(out: &Path, options: &TlsOptions) -> anyhow::Result<()> {
    let tls = out.join("tls");
    let clients_dir = tls.join("clients");
    std::fs::create_dir_all(&clients_dir)
        .with_context(|| format!("cannot create {}", clients_dir.display()))?;

    let mut ca_params = params("BEAT committee API CA", Vec::new(), 10)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    std::fs::write(ca_file(out), ca.pem())?;
    write_private(&tls.join("ca.key"), ca_key_pem.as_bytes())?;

    let leaf = |cn: &str, names: Vec<String>, server: bool| -> anyhow::Result<(String, String)> {
        let mut p = params(cn, names, 2)?;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &ca)?;
        Ok((cert.pem(), key.serialize_pem()))
    };

    let mut tokens =
        String::from("# name sha256(token): the clients of this committee's public APIs\n");
    let mut client = |dir: &Path, file: &str, name: &str| -> anyhow::Result<()> {
        let (cert, key) = leaf(name, Vec::new(), false)?;
        std::fs::write(dir.join(format!("{file}.pem")), cert)?;
        write_private(&dir.join(format!("{file}.key")), key.as_bytes())?;
        let token = random_token()?;
        write_private(&dir.join(format!("{file}.token")), token.as_bytes())?;
        tokens.push_str(&format!(
            "{name} {}\n",
            hex::encode(beat_telemetry::auth::token_hash(&token))
        ));
        Ok(())
    };
    for (i, names) in options.server_names.iter().enumerate() {
        let dir = replica_dir(out, i).join("tls");
        std::fs::create_dir_all(&dir)?;
        let (cert, key) = leaf(&format!("replica-{i}"), names.clone(), true)?;
        std::fs::write(dir.join("server.pem"), cert)?;
        write_private(&dir.join("server.key"), key.as_bytes())?;
        client(&dir, "state", &format!("state-{i}"))?;
    }
    for name in &options.clients {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            anyhow::bail!("client name {name:?}: letters, digits, '-', '_' and '.' only");
        }
        client(&clients_dir, name, name)?;
    }
    std::fs::write(tokens_file(out), tokens)?;
    Ok(())
}
