//! Probes of a service's ops endpoint from outside the process: readiness (`/readyz`, what
//! `beat health` and the local-cluster harness wait on) and a Prometheus scrape (`/metrics`).
//! Plain HTTP/1.0 over TCP, each bounded in time, so a probe never needs an HTTP client stack.

use std::{net::SocketAddr, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /metrics` on an ops port: the Prometheus text, or `None` if it did not answer within
/// five seconds.
pub async fn metrics(addr: SocketAddr) -> Option<String> {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut page = Vec::new();
        s.read_to_end(&mut page).await.ok()?;
        let page = String::from_utf8(page).ok()?;
        let (head, body) = page.split_once("\r\n\r\n")?;
        head.contains(" 200 ").then(|| body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}

/// The value of the sample whose name and labels are `series` exactly (e.g.
/// `beat_keystore_refusals_total{operation="horizon"}`) in Prometheus text; `None` if absent.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(series))
        .find_map(|rest| rest.strip_prefix(' ')?.trim().parse().ok())
}

/// `GET /readyz` on an ops port; `true` on HTTP 200.
pub async fn ready(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 32];
        let mut got = 0;
        while got < 12 {
            let k = s.read(&mut buf[got..]).await.ok()?;
            if k == 0 {
                break;
            }
            got += k;
        }
        let line = std::str::from_utf8(&buf[..got]).ok()?;
        Some(line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
