//! The public-API clients of this process: one set of credentials (the command line's, or a TLS
//! devnet's own) for every command, and lazily connecting channels.

use std::time::Duration;

use beat_client::connect::{ApiChannel, ClientAuth};
use beat_proto::{
    consensus::v1::ordering_service_client::OrderingServiceClient,
    state::v1::market_service_client::MarketServiceClient,
};
use tonic::transport::Channel;

/// A lazily connecting channel to `endpoint` (connects on first use, reconnects after failures).
/// `unix:/path` reaches a replica's internal API on its Unix socket.
pub fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    Ok(beat_telemetry::local::lazy_channel(
        endpoint,
        Duration::from_secs(2),
        false,
    )?)
}

/// The credentials every public-API client of this process uses (the command line's
/// `--ca-file`, `--cert-file`, `--key-file`, `--token-file`, or a TLS devnet's own).
static CLIENT_AUTH: parking_lot::RwLock<Option<ClientAuth>> = parking_lot::RwLock::new(None);

/// Makes `auth` the credentials of every later [`ordering_client`] and [`market_client`].
pub fn use_client_auth(auth: ClientAuth) {
    *CLIENT_AUTH.write() = Some(auth);
}

/// This process's credentials for the public APIs ([`use_client_auth`]).
pub fn client_auth() -> ClientAuth {
    CLIENT_AUTH.read().clone().unwrap_or_default()
}

/// An ordering API client, with this process's credentials ([`use_client_auth`]).
pub fn ordering_client(endpoint: &str) -> anyhow::Result<OrderingServiceClient<ApiChannel>> {
    Ok(beat_client::connect::ordering(endpoint, &client_auth())?)
}

/// A market API client, with this process's credentials ([`use_client_auth`]).
pub fn market_client(endpoint: &str) -> anyhow::Result<MarketServiceClient<ApiChannel>> {
    Ok(beat_client::connect::market(endpoint, &client_auth())?)
}
