//! `beat health`: a container health check for one service of a replica.
//!
//! Reads the service's configuration exactly as `beat run` does (file plus `BEAT_<SERVICE>__*`
//! overrides, and the same `BEAT_SERVICE`/`BEAT_CONFIG` variables), finds its ops port and asks
//! `/readyz`. An ops port bound to an unspecified address (`0.0.0.0`, `::`) is asked on
//! loopback, which is where a check running inside the container (or pod) reaches it. This keeps
//! the image free of `curl` and lets one `HEALTHCHECK` line serve all four services.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
    time::Duration,
};

use anyhow::Context;

use beat_provision::layout::Service;
use beat_telemetry::probe::ready as ops_ready;

/// The ops address `service` listens on according to its configuration.
pub fn ops_address(service: Service, config: Option<&Path>) -> anyhow::Result<SocketAddr> {
    fn load<T>(service: Service, config: Option<&Path>) -> anyhow::Result<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Default,
    {
        beat_config::load(service.name(), config)
            .with_context(|| format!("{} configuration", service.name()))
    }
    let addr = match service {
        Service::Keystore => load::<beat_keystore::config::Config>(service, config)?.ops_listen,
        Service::Gateway => load::<beat_gateway::config::Config>(service, config)?.ops_listen,
        Service::Consensus => load::<beat_consensus::config::Config>(service, config)?.ops_listen,
        Service::State => load::<beat_state::config::Config>(service, config)?.ops_listen,
    };
    Ok(probe_address(addr))
}

/// Where to reach a listener bound to `bound` from the same network namespace.
pub fn probe_address(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, bound.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, bound.port()))
        }
        _ => bound,
    }
}

/// Whether the ops server at `addr` answers `/readyz` with 200 within `timeout`.
pub async fn is_ready(addr: SocketAddr, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, ops_ready(addr))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// Serves one canned HTTP response per connection, for `connections` connections.
    async fn canned(response: &'static str, connections: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..connections {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(response.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn ready_only_on_http_200() {
        let ok = canned("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nready\n", 1).await;
        assert!(is_ready(ok, Duration::from_secs(2)).await);
        let not = canned("HTTP/1.1 503 Service Unavailable\r\n\r\n", 1).await;
        assert!(!is_ready(not, Duration::from_secs(2)).await);
        // Nothing listening: closed port.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(!is_ready(closed, Duration::from_secs(2)).await);
    }

    #[test]
    fn unspecified_addresses_are_probed_on_loopback() {
        let any4: SocketAddr = "0.0.0.0:9100".parse().unwrap();
        assert_eq!(probe_address(any4), "127.0.0.1:9100".parse().unwrap());
        let any6: SocketAddr = "[::]:9200".parse().unwrap();
        assert_eq!(probe_address(any6), "[::1]:9200".parse().unwrap());
        let fixed: SocketAddr = "10.1.2.3:9300".parse().unwrap();
        assert_eq!(probe_address(fixed), fixed);
    }

    #[test]
    fn ops_address_comes_from_the_configuration_file() {
        let dir = std::env::temp_dir().join(format!("beat-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("state.toml");
        std::fs::write(&file, "ops_listen = \"0.0.0.0:9444\"\n").unwrap();
        let addr = ops_address(Service::State, Some(&file)).unwrap();
        assert_eq!(addr, "127.0.0.1:9444".parse().unwrap());
        // Defaults apply without a file; a missing file is an error.
        assert_eq!(
            ops_address(Service::Gateway, None).unwrap(),
            "127.0.0.1:9200".parse().unwrap()
        );
        assert!(ops_address(Service::Keystore, Some(&dir.join("missing.toml"))).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
