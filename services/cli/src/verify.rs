//! `beat verify`: checks a replica's committed history against the committee file alone.
//!
//! A live replica is asked for certified batches (`WatchBatches` with `certified`); a stopped
//! replica's data directory is read directly. Either way every batch's digest is recomputed
//! from its contents, its commit certificate is checked against the committee's group key, and
//! each certificate must continue the chain of the one before (module
//! [`beat_client::verify`]). The first batch that fails stops the check with the reason: the
//! replica served (or stored) an altered, reordered, forked or uncertified history.

use std::{path::Path, time::Duration};

use anyhow::Context;
use beat_client::verify::{ChainVerifier, CommitteeInfo, VerifyError};
use beat_proto::consensus::v1 as cpb;
use beat_types::Epoch;

use crate::api::ordering_client;

/// What a check covered.
#[derive(Debug, Default)]
pub struct Report {
    /// Batches verified.
    pub verified: u64,
    /// Transactions in them.
    pub transactions: u64,
    /// The last verified epoch and its chain link.
    pub last: Option<(Epoch, beat_crypto::Digest)>,
}

impl Report {
    fn add(&mut self, v: &beat_client::verify::Verified) {
        self.verified += 1;
        self.transactions += v.batch.transaction_count() as u64;
        self.last = Some((v.epoch, v.link));
    }

    /// One line about what was verified.
    pub fn summary(&self) -> String {
        match self.last {
            Some((epoch, link)) => format!(
                "{} batches ({} transactions) verified through epoch {epoch}; chain link {link}",
                self.verified, self.transactions
            ),
            None => "nothing to verify".to_owned(),
        }
    }
}

fn verifier(committee: CommitteeInfo, from: u64) -> ChainVerifier {
    if from == 0 {
        ChainVerifier::from_genesis(committee)
    } else {
        ChainVerifier::from_anywhere(committee)
    }
}

/// Verifies a live replica's history from `from`: `count` batches, or (without `count`) every
/// epoch the replica had committed when the check started, waiting at most `wait` for each
/// certificate; with `follow`, keeps verifying new epochs until interrupted.
pub async fn live(
    committee: &Path,
    endpoint: &str,
    from: u64,
    count: Option<u64>,
    follow: bool,
    wait: Duration,
    verbose: bool,
) -> anyhow::Result<Report> {
    let info = CommitteeInfo::load(committee)?;
    let mut chain = verifier(info, from);
    let mut client = ordering_client(endpoint)?;
    let target = client
        .status(cpb::StatusRequest {})
        .await
        .with_context(|| format!("Status on {endpoint}"))?
        .into_inner()
        .epoch;
    let mut stream = client
        .watch_batches(cpb::WatchBatchesRequest {
            from_epoch: from,
            certified: true,
        })
        .await
        .with_context(|| format!("WatchBatches on {endpoint}"))?
        .into_inner();
    let mut report = Report::default();
    let done =
        |r: &Report| count.map_or(!follow && from + r.verified >= target, |c| r.verified >= c);
    while !done(&report) {
        let message = match tokio::time::timeout(wait, stream.message()).await {
            Ok(m) => m.with_context(|| format!("WatchBatches on {endpoint}"))?,
            Err(_) => anyhow::bail!(
                "{endpoint} sent no certified batch for {} ({}); {}",
                humantime::format_duration(wait),
                chain
                    .next_epoch()
                    .map_or("the first epoch".to_owned(), |e| format!("epoch {e}")),
                report.summary()
            ),
        };
        let Some(message) = message else {
            anyhow::bail!("{endpoint} ended the stream; {}", report.summary());
        };
        let batch = message
            .batch
            .ok_or_else(|| anyhow::anyhow!("{endpoint} sent a message without a batch"))?;
        let certificate = message
            .certificate
            .ok_or(VerifyError::Uncertified(Epoch(batch.epoch)));
        let verified = certificate
            .map_err(anyhow::Error::from)
            .and_then(|c| Ok(chain.verify(&batch, &c)?))
            .with_context(|| {
                format!(
                    "{endpoint} served epoch {} that does not verify; {}",
                    batch.epoch,
                    report.summary()
                )
            })?;
        if verbose {
            println!(
                "epoch {} verified: {} transactions, link {}",
                verified.epoch,
                verified.batch.transaction_count(),
                verified.link
            );
        }
        report.add(&verified);
    }
    Ok(report)
}

/// Verifies the history stored in a (stopped) consensus service's data directory, from epoch
/// 0: every committed batch must carry a certificate except the last `certify_window` ones,
/// which may not have been certified before the replica stopped.
pub fn stored(committee: &Path, data_dir: &Path, verbose: bool) -> anyhow::Result<Report> {
    let file = beat_config::CommitteeFile::load(committee)?;
    let window = file.params.certify_window;
    let mut chain = ChainVerifier::from_genesis(CommitteeInfo::from_file(&file));
    let store = beat_consensus::store::Store::open(data_dir)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let committed = store.committed_epochs()?;
    let mut report = Report::default();
    let mut next = Epoch::ZERO;
    loop {
        let entries = store.batches_from(next, 256)?;
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            let epoch = entry.batch.epoch;
            anyhow::ensure!(
                epoch == next,
                "{}: epoch {next} is missing (the next stored is {epoch}); {}",
                data_dir.display(),
                report.summary()
            );
            let Some(certificate) = entry.certificate else {
                anyhow::ensure!(
                    committed.saturating_sub(epoch.0) <= window,
                    "{}: epoch {epoch} has no certificate, {} epochs before the last; {}",
                    data_dir.display(),
                    committed - epoch.0,
                    report.summary()
                );
                // A later certificate, if any, covers it through the chain.
                chain.extend_uncertified(&entry.batch)?;
                println!("epoch {epoch}: committed, not certified yet (within the window)");
                next = next.next();
                continue;
            };
            let verified = chain
                .verify_decoded(entry.batch, &certificate)
                .with_context(|| {
                    format!(
                        "{}: epoch {epoch} does not verify; {}",
                        data_dir.display(),
                        report.summary()
                    )
                })?;
            if verbose {
                println!(
                    "epoch {epoch} verified: {} transactions, link {}",
                    verified.batch.transaction_count(),
                    verified.link
                );
            }
            report.add(&verified);
            next = next.next();
        }
    }
    Ok(report)
}
