//! `beat status`: the status of replicas (given endpoints, or every replica of a devnet).

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use beat_config::CommitteeFile;

use super::runtime;
use beat_provision::layout::Ports;

use crate::client;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A devnet directory: query all its replicas.
    #[arg(long, conflicts_with = "endpoint")]
    devnet: Option<PathBuf>,
    /// Ordering API endpoints.
    #[arg(long, short)]
    endpoint: Vec<String>,
    /// Market API endpoints (same order).
    #[arg(long)]
    market: Vec<String>,
    /// Gateway gRPC endpoints (same order): adds each replica's per-peer, per-transport links.
    #[arg(long)]
    gateway: Vec<String>,
}

/// Prints the replicas' status: success if all of them are up.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (ordering, market, gateways) = match &a.devnet {
        Some(dir) => {
            let committee = CommitteeFile::load(&dir.join("committee.json"))?;
            let base = devnet_base_port(&committee)?;
            let n = committee.replicas.len();
            let ports = |i: usize| Ports {
                base,
                replica: i as u16,
            };
            let state_running = (0..n).any(|i| dir.join(format!("replica-{i}/state.db")).exists());
            // A TLS devnet (`devnet --tls`): its own client credentials.
            let scheme = if beat_provision::tls::ca_file(dir).exists() {
                crate::api::use_client_auth(beat_provision::tls::client_auth(dir, "client"));
                "https"
            } else {
                "http"
            };
            (
                (0..n)
                    .map(|i| format!("{scheme}://{}", ports(i).consensus()))
                    .collect(),
                if state_running {
                    (0..n)
                        .map(|i| format!("{scheme}://{}", ports(i).state()))
                        .collect()
                } else {
                    Vec::new()
                },
                (0..n)
                    .map(|i| {
                        beat_provision::layout::Sockets::of(dir, i)
                            .gateway
                            .endpoint()
                    })
                    .collect(),
            )
        }
        None if a.endpoint.is_empty() => {
            anyhow::bail!("give --devnet DIR or --endpoint URL")
        }
        None => (a.endpoint, a.market, a.gateway),
    };
    let rt = runtime()?;
    let all_up = rt.block_on(client::status(&ordering, &market))?;
    if !gateways.is_empty() {
        rt.block_on(client::links(&gateways))?;
    }
    Ok(if all_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A devnet's base port, from replica 0's peer endpoint (`127.0.0.1:<base>`).
fn devnet_base_port(committee: &CommitteeFile) -> anyhow::Result<u16> {
    let tcp = committee
        .replicas
        .first()
        .and_then(|r| r.endpoints.tcp.as_deref())
        .context("the committee has no TCP endpoint")?;
    let port: u16 = tcp
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .with_context(|| format!("cannot parse the port of {tcp:?}"))?;
    Ok(port)
}
