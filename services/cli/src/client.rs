//! Client commands: `beat submit`, `beat watch`, `beat status`, `beat market`.
//!
//! Thin wrappers over the public gRPC APIs, meant for operators and for trying a devnet. BEAT2
//! committees need client-side encryption: `submit` encrypts each transaction under the committee
//! key with a client label `(client id, request number)` when given the committee file.

use std::{path::Path, time::Duration};

use anyhow::Context;
use beat_config::CommitteeFile;
use beat_core::codec::client_label;
use beat_proto::{
    common::v1::{Batch, contribution::Content},
    consensus::v1 as cpb,
    state::v1 as spb,
};
use beat_types::Variant;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::monitor::{market_client, ordering_client, statuses};

/// Prepares transactions for a committee: encrypts them for BEAT2.
pub struct TxPreparer {
    encryption: Option<(std::sync::Arc<beat_crypto::tdh2::PublicKey>, Vec<u8>)>,
    next_request: u64,
    rng: ChaCha20Rng,
}

impl TxPreparer {
    /// For `committee` (`None`: send as is). `client` names the client in BEAT2 labels; the
    /// request numbers start at `first_request`, so reusing a (client, request) pair is a
    /// duplicate that the committee orders only once.
    pub fn new(
        committee: Option<&CommitteeFile>,
        client: &[u8],
        first_request: u64,
    ) -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("OS randomness: {e}"))?;
        Ok(Self {
            encryption: committee
                .filter(|c| c.params.variant == Variant::Beat2)
                .map(|c| (c.public_keys().encryption, client.to_vec())),
            next_request: first_request,
            rng: ChaCha20Rng::from_seed(seed),
        })
    }

    /// The transaction to submit for `plain`.
    pub fn prepare(&mut self, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        match &self.encryption {
            None => Ok(plain.to_vec()),
            Some((key, client)) => {
                let label = client_label(client, self.next_request);
                self.next_request += 1;
                Ok(key.encrypt(&label, plain, &mut self.rng)?.to_bytes())
            }
        }
    }
}

/// `beat submit`: submits transactions and prints one receipt line per transaction.
pub async fn submit(
    endpoint: &str,
    committee: Option<&Path>,
    transactions: Vec<Vec<u8>>,
) -> anyhow::Result<()> {
    let committee = committee.map(CommitteeFile::load).transpose()?;
    let client_id = format!("beat-cli-{}", std::process::id());
    #[expect(
        clippy::disallowed_methods,
        reason = "request numbers start at the wall clock so separate runs of the CLI do not collide"
    )]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut prep = TxPreparer::new(committee.as_ref(), client_id.as_bytes(), now)?;
    let txs = transactions
        .iter()
        .map(|t| prep.prepare(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut client = ordering_client(endpoint)?;
    let mut accepted = 0usize;
    for chunk in txs.chunks(10_000) {
        let r = client
            .submit(cpb::SubmitRequest {
                transactions: chunk.iter().cloned().map(bytes::Bytes::from).collect(),
            })
            .await
            .with_context(|| format!("Submit to {endpoint}"))?
            .into_inner();
        for receipt in &r.receipts {
            let admission =
                cpb::Admission::try_from(receipt.admission).map_or("unknown", |a| match a {
                    cpb::Admission::Accepted => "accepted",
                    cpb::Admission::Duplicate => "duplicate",
                    cpb::Admission::Unspecified => "unspecified",
                });
            if admission == "accepted" {
                accepted += 1;
            }
            println!("{} {admission}", hex::encode(&receipt.key));
        }
        eprintln!("replica at epoch {}", r.epoch);
    }
    eprintln!("{accepted} of {} accepted", txs.len());
    Ok(())
}

fn printable(tx: &[u8]) -> String {
    match std::str::from_utf8(tx) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => format!("0x{}", hex::encode(tx)),
    }
}

/// Prints one batch.
pub fn print_batch(b: &Batch, transactions: bool) {
    let mut total = 0;
    let mut parts = Vec::new();
    for c in &b.contributions {
        match &c.content {
            Some(Content::Transactions(t)) => {
                total += t.transactions.len();
                parts.push(format!("{}:{}tx", c.proposer, t.transactions.len()));
            }
            Some(Content::Rejected(r)) => parts.push(format!(
                "{}:rejected({})",
                c.proposer,
                beat_proto::common::v1::RejectReason::try_from(*r)
                    .map_or_else(|_| r.to_string(), |r| r.as_str_name().to_owned())
            )),
            Some(Content::Stored(s)) => parts.push(format!(
                "{}:stored({} bytes, {})",
                c.proposer,
                s.payload_len,
                hex::encode(&s.commitment)
            )),
            None => parts.push(format!("{}:?", c.proposer)),
        }
    }
    println!(
        "epoch {} digest {} {total} tx [{}]",
        b.epoch,
        hex::encode(&b.digest),
        parts.join(" ")
    );
    if transactions {
        for c in &b.contributions {
            if let Some(Content::Transactions(t)) = &c.content {
                for tx in &t.transactions {
                    println!("  {} {}", c.proposer, printable(tx));
                }
            }
        }
    }
}

/// `beat watch`: prints committed batches from `from_epoch`, `count` of them or forever.
pub async fn watch(
    endpoint: &str,
    from_epoch: u64,
    count: Option<u64>,
    transactions: bool,
) -> anyhow::Result<()> {
    let mut client = ordering_client(endpoint)?;
    let mut stream = client
        .watch_batches(cpb::WatchBatchesRequest { from_epoch })
        .await
        .with_context(|| format!("WatchBatches on {endpoint}"))?
        .into_inner();
    let mut seen = 0;
    while let Some(msg) = stream.message().await? {
        if let Some(b) = msg.batch {
            print_batch(&b, transactions);
            seen += 1;
            if count.is_some_and(|c| seen >= c) {
                break;
            }
        }
    }
    Ok(())
}

/// `beat status`: a table of every given replica.
pub async fn status(ordering: &[String], market: &[String]) -> anyhow::Result<bool> {
    let st = statuses(ordering, market, Duration::from_secs(2)).await;
    println!(
        "{:<8} {:<8} {:>8} {:>8} {:>12} {:>7} {:<9} {:<9} {:>8} {:<16}",
        "replica",
        "variant",
        "epoch",
        "buffered",
        "committed",
        "faults",
        "keystore",
        "gateway",
        "applied",
        "state hash"
    );
    let mut all_up = true;
    for (i, s) in st.iter().enumerate() {
        let (variant, epoch, buffered, committed, faults, ks, gw) = match &s.consensus {
            Some(c) => (
                beat_proto::common::v1::Variant::try_from(c.variant)
                    .map_or("?", |v| v.as_str_name().trim_start_matches("VARIANT_"))
                    .to_lowercase(),
                c.epoch.to_string(),
                c.buffered.to_string(),
                c.committed_transactions.to_string(),
                c.faults_observed.to_string(),
                if c.keystore_connected { "up" } else { "DOWN" },
                if c.gateway_connected { "up" } else { "DOWN" },
            ),
            None => {
                all_up = false;
                (
                    "unreachable".to_owned(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-",
                    "-",
                )
            }
        };
        let (applied, hash) = match &s.state {
            Some(st) => (
                st.applied_epoch
                    .map_or_else(|| "-".to_owned(), |e| e.to_string()),
                hex::encode(&st.state_hash[..st.state_hash.len().min(8)]),
            ),
            None if market.is_empty() => ("".to_owned(), String::new()),
            None => {
                all_up = false;
                ("unreachable".to_owned(), String::new())
            }
        };
        println!(
            "{i:<8} {variant:<8} {epoch:>8} {buffered:>8} {committed:>12} {faults:>7} {ks:<9} {gw:<9} {applied:>8} {hash:<16}"
        );
    }
    Ok(all_up)
}

/// The links part of `beat status`: every replica's gateway, per peer and transport.
pub async fn links(gateways: &[String]) -> anyhow::Result<()> {
    use beat_proto::gateway::v1::{
        LinkState, PeersRequest, gateway_service_client::GatewayServiceClient,
    };
    println!();
    println!(
        "{:<8} {:<5} {:<10} {:<12} {:<8} {:>20} {:>20} {:>8} {:>8}  last error",
        "replica",
        "peer",
        "transport",
        "out link",
        "in link",
        "sent frames/bytes",
        "recv frames/bytes",
        "connects",
        "unacked"
    );
    for (i, endpoint) in gateways.iter().enumerate() {
        let mut client = GatewayServiceClient::new(crate::monitor::channel(endpoint)?);
        let call = tokio::time::timeout(Duration::from_secs(2), client.peers(PeersRequest {}));
        let peers = match call.await {
            Ok(Ok(r)) => r.into_inner().peers,
            Ok(Err(status)) => {
                println!("{i:<8} gateway {endpoint}: {}", status.message());
                continue;
            }
            Err(_) => {
                println!("{i:<8} gateway {endpoint}: no answer within 2 s");
                continue;
            }
        };
        for peer in peers {
            for t in &peer.transports {
                let state = match LinkState::try_from(t.state) {
                    Ok(LinkState::Up) => "up".to_owned(),
                    Ok(LinkState::Connecting) => "connecting".to_owned(),
                    Ok(LinkState::Backoff) => format!("backoff {}ms", t.backoff_ms),
                    Ok(LinkState::Unavailable) => "unavailable".to_owned(),
                    Ok(LinkState::Unspecified) | Err(_) => "?".to_owned(),
                };
                println!(
                    "{i:<8} {:<5} {:<10} {state:<12} {:<8} {:>20} {:>20} {:>8} {:>8}  {}",
                    peer.replica,
                    t.transport,
                    if t.inbound_up { "up" } else { "down" },
                    format!("{}/{}", t.frames_sent, human_bytes(t.bytes_sent)),
                    format!("{}/{}", t.frames_received, human_bytes(t.bytes_received)),
                    t.connects,
                    peer.unacknowledged,
                    t.last_error,
                );
            }
        }
    }
    Ok(())
}

fn human_bytes(b: u64) -> String {
    match b {
        0..1_000 => format!("{b}B"),
        1_000..1_000_000 => format!("{:.1}kB", b as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}MB", b as f64 / 1e6),
        _ => format!("{:.2}GB", b as f64 / 1e9),
    }
}

/// `beat market state`: the market state of one replica.
pub async fn market_state(endpoint: &str) -> anyhow::Result<()> {
    let mut client = market_client(endpoint)?;
    let s = client
        .get_state(spb::GetStateRequest {})
        .await
        .with_context(|| format!("GetState on {endpoint}"))?
        .into_inner();
    println!(
        "epoch {} state hash {} events applied {}",
        s.epoch.map_or_else(|| "-".to_owned(), |e| e.to_string()),
        hex::encode(&s.state_hash),
        s.events_applied
    );
    println!(
        "{:<10} {:>10} {:>12} {:>10} {:>8} {:>10} {:>10}",
        "symbol", "last", "volume", "vwap", "trades", "best bid", "best ask"
    );
    for sym in &s.symbols {
        println!(
            "{:<10} {:>10} {:>12} {:>10} {:>8} {:>10} {:>10}",
            sym.symbol,
            sym.last_price,
            sym.volume,
            sym.vwap,
            sym.trades,
            sym.best_bid,
            sym.best_ask
        );
    }
    Ok(())
}

/// `beat market book`: one symbol's order book at one replica.
pub async fn market_book(endpoint: &str, symbol: &str, depth: u32) -> anyhow::Result<()> {
    let mut client = market_client(endpoint)?;
    let b = client
        .get_book(spb::GetBookRequest {
            symbol: symbol.to_owned(),
            depth,
        })
        .await
        .with_context(|| format!("GetBook on {endpoint}"))?
        .into_inner();
    println!(
        "{} at epoch {}",
        b.symbol,
        b.epoch.map_or_else(|| "-".to_owned(), |e| e.to_string())
    );
    println!(
        "{:>10} {:>10} {:>6} | {:>10} {:>10} {:>6}",
        "bid qty", "bid", "orders", "ask", "ask qty", "orders"
    );
    for k in 0..b.bids.len().max(b.asks.len()) {
        let bid = b.bids.get(k).map_or_else(
            || format!("{:>10} {:>10} {:>6}", "", "", ""),
            |l| format!("{:>10} {:>10} {:>6}", l.quantity, l.price, l.orders),
        );
        let ask = b.asks.get(k).map_or_else(String::new, |l| {
            format!("{:>10} {:>10} {:>6}", l.price, l.quantity, l.orders)
        });
        println!("{bid} | {ask}");
    }
    Ok(())
}
