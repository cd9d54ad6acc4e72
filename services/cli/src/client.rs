//! Client commands: `beat submit`, `beat watch`, `beat status`, `beat market`.
//!
//! Thin wrappers over the public gRPC APIs, meant for operators and for trying a devnet. BEAT2
//! committees need client-side encryption: given the committee file, `submit` seals each
//! transaction — encrypts it under the committee key with a client label (client public key,
//! request id) and signs it — as a fresh client with a key of its own.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use beat_client::client::{Client, ClientConfig, Sealer};
use beat_config::CommitteeFile;
use beat_crypto::identity::{IdentityKeypair, IdentityPublicKey};
use beat_proto::{
    common::v1::{Batch, contribution::Content},
    consensus::v1 as cpb,
    state::v1 as spb,
};
use beat_types::Variant;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use beat_testkit::monitor::statuses;

use crate::api::{client_auth, market_client, ordering_client};

/// Prepares transactions for a committee ([`beat_client::client::Sealer`]): seals them for
/// BEAT2 as a fresh client numbering its requests, passes them through otherwise.
pub struct TxPreparer {
    sealer: Option<(Sealer, IdentityPublicKey)>,
    next_request: u64,
    rng: ChaCha20Rng,
}

impl TxPreparer {
    /// For `committee` (`None`: send as is). In BEAT2 the preparer is a new client: it generates
    /// an identity key of its own and numbers its requests from 0, so nothing it sends can be
    /// taken for a duplicate of another run's requests (nor resubmitted as the same request
    /// after it exits).
    pub fn new(committee: Option<&CommitteeFile>) -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("OS randomness: {e}"))?;
        let mut rng = ChaCha20Rng::from_seed(seed);
        let sealer = match committee.filter(|c| c.params.variant == Variant::Beat2) {
            None => None,
            Some(c) => {
                let identity = Arc::new(IdentityKeypair::generate(&mut rng));
                let public = identity.public();
                Some((Sealer::for_committee(c, Some(identity))?, public))
            }
        };
        Ok(Self {
            sealer,
            next_request: 0,
            rng,
        })
    }

    /// The BEAT2 client identity, if the preparer seals.
    pub fn client(&self) -> Option<IdentityPublicKey> {
        self.sealer.as_ref().map(|(_, public)| *public)
    }

    /// The transactions to submit for `plains`: in BEAT2, bundles of up to `bundle` of them
    /// (one request each; `bundle` = 1 seals each alone); as is otherwise, where `bundle` must
    /// be 1.
    pub fn prepare_all(
        &mut self,
        plains: &[Vec<u8>],
        bundle: usize,
    ) -> anyhow::Result<Vec<Vec<u8>>> {
        if bundle <= 1 {
            return plains.iter().map(|p| self.prepare(p)).collect();
        }
        let Some((sealer, _)) = &self.sealer else {
            anyhow::bail!(
                "--bundle needs a BEAT2 committee (--committee): other variants have no bundles"
            );
        };
        let mut out = Vec::with_capacity(plains.len().div_ceil(bundle));
        for group in plains.chunks(bundle) {
            let request = self.next_request;
            self.next_request += 1;
            let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
            out.push(sealer.seal_bundle(request, &refs, &mut self.rng)?);
        }
        Ok(out)
    }

    /// The transaction to submit for `plain`.
    pub fn prepare(&mut self, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        match &self.sealer {
            None => Ok(plain.to_vec()),
            Some((sealer, _)) => {
                let request = self.next_request;
                self.next_request += 1;
                Ok(sealer.seal(request, plain, &mut self.rng)?)
            }
        }
    }
}

/// `beat submit`: submits transactions and prints one receipt line per transaction, failing
/// over between `endpoints` ([`beat_client::client::Client`]).
pub async fn submit(
    endpoints: Vec<String>,
    committee: Option<&Path>,
    transactions: Vec<Vec<u8>>,
    bundle: usize,
) -> anyhow::Result<()> {
    let committee = committee.map(CommitteeFile::load).transpose()?;
    let mut prep = TxPreparer::new(committee.as_ref())?;
    if let Some(client) = prep.client() {
        eprintln!("BEAT2 client {client}");
    }
    let txs = prep.prepare_all(&transactions, bundle)?;
    let mut config = ClientConfig::new(endpoints);
    config.auth = client_auth();
    let mut client = Client::new(config)?;
    let mut accepted = 0usize;
    for chunk in txs.chunks(10_000) {
        let r = client.submit(chunk).await?;
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
        eprintln!("{} took them at epoch {}", r.endpoint, r.epoch);
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
        .watch_batches(cpb::WatchBatchesRequest {
            from_epoch,
            certified: false,
        })
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
    let st = statuses(ordering, market, &client_auth(), Duration::from_secs(2)).await;
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
        let mut client = GatewayServiceClient::new(crate::api::channel(endpoint)?);
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

#[cfg(test)]
mod tests {
    use beat_config::{Endpoints, ReplicaEntry};
    use beat_core::{
        Params,
        client::{ClientTransaction, EnvelopeKind},
    };
    use beat_crypto::dealer::deal;
    use beat_types::{Committee, NodeId};

    use super::*;

    fn committee(variant: Variant) -> CommitteeFile {
        let c = Committee::new(4).unwrap();
        let (keys, _) = deal(c, &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
        CommitteeFile {
            format: 1,
            name: "t".into(),
            params: Params {
                variant,
                ..Params::default()
            },
            keys,
            replicas: (0..4)
                .map(|i| ReplicaEntry {
                    id: NodeId(i),
                    endpoints: Endpoints {
                        tcp: Some(format!("127.0.0.1:{}", 7000 + i)),
                        ..Endpoints::default()
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn beat2_transactions_are_sealed_by_one_fresh_client_with_consecutive_requests() {
        let file = committee(Variant::Beat2);
        let mut prep = TxPreparer::new(Some(&file)).unwrap();
        let client = prep.client().expect("BEAT2 seals");
        for request in 0..3 {
            let tx = prep.prepare(b"hello").unwrap();
            let parsed = ClientTransaction::from_bytes(&tx).unwrap();
            assert_eq!(parsed.label().client, client);
            assert_eq!(parsed.label().request, request);
            parsed.verify(&file.keys.encryption).unwrap();
        }
        let other = TxPreparer::new(Some(&file)).unwrap().client().unwrap();
        assert_ne!(other, client, "each preparer is a new client");
    }

    #[test]
    fn beat2_bundles_take_one_request_per_group_and_other_variants_refuse_them() {
        let file = committee(Variant::Beat2);
        let mut prep = TxPreparer::new(Some(&file)).unwrap();
        let plains: Vec<Vec<u8>> = (0..7).map(|i| format!("tx {i}").into_bytes()).collect();
        let sealed = prep.prepare_all(&plains, 3).unwrap();
        assert_eq!(sealed.len(), 3, "groups of 3, 3 and 1");
        for (request, tx) in sealed.iter().enumerate() {
            let parsed = ClientTransaction::from_bytes(tx).unwrap();
            assert_eq!(parsed.kind(), EnvelopeKind::Bundle);
            assert_eq!(parsed.label().request, request as u64);
            parsed.verify(&file.keys.encryption).unwrap();
        }
        // Requests go on from where the bundles left them.
        let next = prep.prepare(b"after").unwrap();
        assert_eq!(
            ClientTransaction::from_bytes(&next)
                .unwrap()
                .label()
                .request,
            3
        );
        let mut plain = TxPreparer::new(Some(&committee(Variant::Beat0))).unwrap();
        assert!(plain.prepare_all(&plains, 3).is_err());
        assert_eq!(plain.prepare_all(&plains, 1).unwrap(), plains);
    }

    #[test]
    fn other_variants_send_transactions_as_they_are() {
        let file = committee(Variant::Beat1);
        let mut prep = TxPreparer::new(Some(&file)).unwrap();
        assert_eq!(prep.client(), None);
        assert_eq!(prep.prepare(b"hello").unwrap(), b"hello");
        let mut plain = TxPreparer::new(None).unwrap();
        assert_eq!(plain.prepare(b"x").unwrap(), b"x");
    }
}
