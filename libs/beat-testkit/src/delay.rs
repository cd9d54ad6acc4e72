//! A TCP relay that adds a fixed one-way delay in each direction, so that a cluster on one
//! machine's loopback can be measured as if its replicas were a network apart (`beat bench
//! --peer-delay`). Kernel delay emulation (`tc netem`) needs a module many containers and CI
//! kernels lack; this needs nothing.
//!
//! Each accepted connection is paired with one to the target. Every chunk read on one side is
//! stamped and written to the other side no earlier than `delay` later, in order, so the
//! byte stream is unchanged and only its timing moves. It models propagation delay, not a
//! bandwidth limit or loss. The relay costs a read and a write per chunk in the process that
//! runs it; the bench reports that process's CPU apart (`load`).

use std::{io, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream, tcp},
    sync::mpsc,
    task::JoinHandle,
    time::Instant,
};

/// Listens on `listen` and relays each connection to `target` with `delay` added in each
/// direction. Runs until the returned task is aborted (its connections end with it).
///
/// # Errors
/// When `listen` cannot be bound.
pub async fn spawn_delay_relay(
    listen: SocketAddr,
    target: SocketAddr,
    delay: Duration,
) -> io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(listen).await?;
    Ok(tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let inbound = match listener.accept().await {
                Ok((inbound, _)) => inbound,
                Err(_) => {
                    // Out of descriptors or similar: back off rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            connections.spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                // One direction ending (EOF or error) ends the connection.
                tokio::select! {
                    () = pipe(in_read, out_write, delay) => {}
                    () = pipe(out_read, in_write, delay) => {}
                }
            });
            // Reap finished connections so a long bench does not accumulate them.
            while connections.try_join_next().is_some() {}
        }
    }))
}

/// Copies `from` to `to`, each chunk no earlier than `delay` after it was read.
async fn pipe(mut from: tcp::OwnedReadHalf, mut to: tcp::OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    // The writer drains what the reader queued before the reader's end drops the sender.
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes cross the relay unchanged and in order, each way no sooner than the delay.
    #[tokio::test]
    async fn relays_in_order_after_the_delay() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = free.local_addr().unwrap();
        drop(free);
        let delay = Duration::from_millis(30);
        let relay = spawn_delay_relay(listen, target, delay).await.unwrap();
        let mut client = TcpStream::connect(listen).await.unwrap();
        let message: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let start = Instant::now();
        client.write_all(&message).await.unwrap();
        let mut back = vec![0u8; message.len()];
        client.read_exact(&mut back).await.unwrap();
        assert!(
            start.elapsed() >= 2 * delay,
            "a round trip through the relay took {:?}",
            start.elapsed()
        );
        assert_eq!(back, message);
        relay.abort();
    }
}
