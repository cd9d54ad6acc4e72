//! Submits transactions to a committee and watches them commit, verified against the committee
//! file alone, failing over between replicas.
//!
//! Against a running devnet (`cargo run --release -p beat-cli --bin beat -- devnet`):
//!
//! ```sh
//! cargo run -p beat-client --example submit_and_watch -- .devnet/committee.json \
//!     http://127.0.0.1:17100 http://127.0.0.1:17101
//! ```
//!
//! For a BEAT2 committee it seals each transaction as a fresh client ([`Sealer`]); against a
//! `devnet --tls` committee set `BEAT_CA_FILE`, `BEAT_CERT_FILE`, `BEAT_KEY_FILE` and
//! `BEAT_TOKEN_FILE` as the devnet prints them, and use `https://` endpoints.

use std::{collections::HashSet, path::PathBuf, sync::Arc, time::Duration};

use beat_client::{
    client::{Client, ClientConfig, Sealer},
    connect::ClientAuth,
    verify::CommitteeInfo,
};
use beat_config::CommitteeFile;
use beat_crypto::identity::IdentityKeypair;
use futures::StreamExt as _;
use rand_core::SeedableRng as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let committee_path = PathBuf::from(
        args.next()
            .ok_or("usage: submit_and_watch COMMITTEE ENDPOINT...")?,
    );
    let endpoints: Vec<String> = args.collect();
    let file = CommitteeFile::load(&committee_path)?;

    let env = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let mut config = ClientConfig::new(endpoints);
    config.auth = ClientAuth {
        ca_file: env("BEAT_CA_FILE"),
        cert_file: env("BEAT_CERT_FILE"),
        key_file: env("BEAT_KEY_FILE"),
        token_file: env("BEAT_TOKEN_FILE"),
        tls_domain: None,
    };
    let mut client = Client::new(config)?;

    // A fresh client identity: its request ids are its idempotency keys in BEAT2.
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let sealer = Sealer::for_committee(
        &file,
        Some(Arc::new(IdentityKeypair::from_secret_bytes(secret))),
    )?;
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(secret);
    let plain: Vec<Vec<u8>> = (0..10)
        .map(|i| format!("example tx {i}").into_bytes())
        .collect();
    let sealed = plain
        .iter()
        .enumerate()
        .map(|(i, p)| sealer.seal(i as u64, p, &mut rng))
        .collect::<Result<Vec<_>, _>>()?;

    let (_, status) = client.status().await?;
    let submitted = client.submit(&sealed).await?;
    println!(
        "{} transactions taken by {} at epoch {} ({} attempt(s))",
        submitted.receipts.len(),
        submitted.endpoint,
        submitted.epoch,
        submitted.attempts
    );

    // Watch from the epoch the committee was at, verifying every batch, until ours are in.
    let wanted: HashSet<Vec<u8>> = plain.into_iter().collect();
    let mut found = HashSet::new();
    let mut watch = Box::pin(client.watch(CommitteeInfo::from_file(&file), status.epoch));
    while found.len() < wanted.len() {
        let batch = tokio::time::timeout(Duration::from_secs(60), watch.next())
            .await?
            .ok_or("the watch ended")??;
        for tx in batch.verified.batch.transactions() {
            if wanted.contains(tx.as_bytes()) {
                found.insert(tx.as_bytes().to_vec());
            }
        }
        println!(
            "epoch {} verified (served by {}, link {}): {} of ours so far",
            batch.verified.epoch,
            batch.endpoint,
            batch.verified.link,
            found.len()
        );
    }
    Ok(())
}
