//! Byte-stream transports for peer links.
//!
//! A [`Transport`] dials a peer's endpoint string (from the committee file's entry for that
//! transport) and accepts inbound connections, both yielding a [`Connection`]: any ordered,
//! reliable byte stream. The gateway runs every enabled transport at once, and each peer has
//! one dialled connection per transport; the link protocol (`beat.wire.v2`) on top is the
//! same everywhere, including its authentication and record protection, so a transport need
//! not authenticate or protect anything.
//!
//! Clearnet [`TcpTransport`], [`TorTransport`] (embedded arti, or an external tor) and
//! [`I2pTransport`] (a SAM v3.1 bridge) are built in.

mod i2p;
mod tcp;
mod tor;

use beat_config::Endpoints;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};

pub use i2p::{I2pError, I2pTransport, b32_address, destination as i2p_destination};
pub use tcp::TcpTransport;

/// The SAM v3 reply parser: what a (possibly hostile or broken) I2P bridge's bytes reach.
/// Public for the fuzz targets in `libs/beat-fuzz`.
pub mod sam {
    pub use super::i2p::{
        b32_address, i2p_base64_encode, public_destination, read_line, reply_value,
    };
}
pub use tor::{TorError, TorTransport, client_config as tor_client_config, onion_endpoint};

/// An established byte stream to or from a peer.
pub trait Connection: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Connection for T {}

/// A boxed [`Connection`].
pub type BoxConnection = Box<dyn Connection>;

/// An accepted inbound connection.
pub struct Accepted {
    /// The stream.
    pub connection: BoxConnection,
    /// The remote address as the transport knows it (for logs only: it proves nothing).
    pub remote: String,
    /// Who pays for the pending handshake (a TCP peer's IP address, an I2P destination): the
    /// key of the per-source admission bound. `None` where the transport cannot tell sources
    /// apart (Tor).
    pub source: Option<String>,
}

/// Why a transport could not dial or accept.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The transport cannot be used now (e.g. Tor still bootstrapping); try again later.
    #[error("transport unavailable: {0}")]
    Unavailable(String),
    /// Establishing the connection took too long.
    #[error("connection attempt timed out")]
    Timeout,
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A way to reach peers and be reached by them.
pub trait Transport: Send + Sync + 'static {
    /// The transport's name: `"tcp"`, `"tor"` or `"i2p"`, also its metric label and the key
    /// of its endpoint in the committee file.
    fn name(&self) -> &'static str;

    /// Opens a connection to `endpoint`.
    fn dial<'a>(
        &'a self,
        endpoint: &'a str,
    ) -> BoxFuture<'a, Result<BoxConnection, TransportError>>;

    /// Waits for the next inbound connection.
    fn accept(&self) -> BoxFuture<'_, Result<Accepted, TransportError>>;
}

/// The endpoint of a peer for the transport called `name`, from its committee entry.
pub fn peer_endpoint<'e>(endpoints: &'e Endpoints, name: &str) -> Option<&'e str> {
    match name {
        "tcp" => endpoints.tcp.as_deref(),
        "tor" => endpoints.tor.as_deref(),
        "i2p" => endpoints.i2p.as_deref(),
        _ => None,
    }
}
