//! Clearnet TCP.

use std::{net::SocketAddr, time::Duration};

use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpStream};

use super::{Accepted, BoxConnection, Transport, TransportError};

/// Clearnet TCP with `TCP_NODELAY` (frames are small and latency-bound) and a connect timeout.
#[derive(Debug)]
pub struct TcpTransport {
    listener: TcpListener,
    connect_timeout: Duration,
}

impl TcpTransport {
    /// Serves inbound connections on `listener` and dials with `connect_timeout`.
    pub fn new(listener: TcpListener, connect_timeout: Duration) -> Self {
        Self {
            listener,
            connect_timeout,
        }
    }

    /// The address peers connect to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Transport for TcpTransport {
    fn name(&self) -> &'static str {
        "tcp"
    }

    fn dial<'a>(
        &'a self,
        endpoint: &'a str,
    ) -> BoxFuture<'a, Result<BoxConnection, TransportError>> {
        Box::pin(async move {
            // `host:port`; a host name is resolved here, at every attempt, so a peer that moved
            // (a rescheduled pod) is found again.
            let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(endpoint))
                .await
                .map_err(|_| TransportError::Timeout)??;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxConnection)
        })
    }

    fn accept(&self) -> BoxFuture<'_, Result<Accepted, TransportError>> {
        Box::pin(async move {
            let (stream, remote) = self.listener.accept().await?;
            stream.set_nodelay(true)?;
            Ok(Accepted {
                connection: Box::new(stream),
                remote: remote.to_string(),
                source: Some(remote.ip().to_canonical().to_string()),
            })
        })
    }
}
