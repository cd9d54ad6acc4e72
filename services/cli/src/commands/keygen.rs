//! `beat keygen`: a committee's keys (trusted dealer) and each replica's encrypted keystore.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use beat_config::Endpoints;
use beat_crypto::keystore_file::KdfParams;

use beat_provision::keygen::{KeygenOptions, keygen};

use crate::cli::ParamsArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output directory.
    #[arg(long, short)]
    out: PathBuf,
    /// Committee name.
    #[arg(long, default_value = "beat")]
    name: String,
    /// One replica's gateway endpoints, in replica order: `tcp=host:port[,tor=x.onion:port][,i2p=dest]`.
    #[arg(long = "replica", required = true)]
    replicas: Vec<String>,
    #[command(flatten)]
    params: ParamsArgs,
    /// Use this passphrase file for every replica instead of generating one per replica.
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// Also issue the public APIs' TLS material: a CA, a certificate per replica, and a
    /// certificate and bearer token per client (tls/, replica-<i>/tls/).
    #[arg(long)]
    tls: bool,
    /// A name in every replica's API certificate (DNS name or IP address; `{i}` is the replica
    /// index). Repeatable.
    #[arg(long = "tls-name", requires = "tls", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
    tls_names: Vec<String>,
    /// A client to issue a certificate and token for. Repeatable.
    #[arg(long = "tls-client", requires = "tls", default_values_t = ["client".to_owned()])]
    tls_clients: Vec<String>,
}

/// Writes the committee file and the replicas' keystores, and says what it wrote.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let endpoints = a
        .replicas
        .iter()
        .map(|s| parse_endpoints(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let endpoints_len = endpoints.len();
    let file = keygen(&KeygenOptions {
        out: a.out.clone(),
        name: a.name,
        params: a.params.params(),
        endpoints,
        passphrase_file: a.passphrase_file,
        kdf: KdfParams::default(),
        tls: a.tls.then(|| beat_provision::tls::TlsOptions {
            server_names: (0..endpoints_len)
                .map(|i| {
                    a.tls_names
                        .iter()
                        .map(|n| n.replace("{i}", &i.to_string()))
                        .collect()
                })
                .collect(),
            clients: a.tls_clients.clone(),
        }),
    })?;
    println!(
        "wrote {} (committee {:?}, {} replicas, {}, digest {}) and replica-<i>/ with each \
         replica's keystore.bin and passphrase",
        a.out.join("committee.json").display(),
        file.name,
        file.replicas.len(),
        file.params.variant,
        hex::encode(file.digest())
    );
    if a.tls {
        println!(
            "issued the public APIs' TLS material: tls/ca.pem (clients trust it), tls/ca.key \
             (keep offline), tls/tokens (every replica's api.tokens_file), \
             tls/clients/<name>.{{pem,key,token}}, replica-<i>/tls/"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_endpoints(s: &str) -> anyhow::Result<Endpoints> {
    let mut e = Endpoints::default();
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("expected kind=address in {part:?}"))?;
        let slot = match k {
            "tcp" => &mut e.tcp,
            "tor" => &mut e.tor,
            "i2p" => &mut e.i2p,
            _ => anyhow::bail!("unknown transport {k:?} (tcp, tor, i2p)"),
        };
        *slot = Some(v.to_owned());
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = parse_endpoints("tcp=10.0.0.1:7000,tor=abc.onion:7000").unwrap();
        assert_eq!(e.tcp.as_deref(), Some("10.0.0.1:7000"));
        assert_eq!(e.tor.as_deref(), Some("abc.onion:7000"));
        assert!(e.i2p.is_none());
        assert!(parse_endpoints("udp=x").is_err());
        assert!(parse_endpoints("tcp").is_err());
    }
}
