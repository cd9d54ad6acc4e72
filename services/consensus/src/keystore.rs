//! The client of the replica's keystore: batches requests, retries until the keystore
//! answers, and hands the replies to the actor. Every call presents the replica's latest
//! commit certificate, which moves the keystore's signing horizon (module
//! `beat_core::signing`); requests are sent only with a certificate at least as new as the
//! one current when they were made.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix::Addr;
use beat_core::{CiphertextSlot, CoinId, CommitCertificate, Reply, Request};
use beat_crypto::{bls::SignatureShare, tdh2::DecryptionShare};
use beat_proto::keystore::v1::{
    self as pb, CreateDecryptionSharesRequest, SignCoinSharesRequest, SignCommitSharesRequest,
    keystore_service_client::KeystoreServiceClient,
};
use beat_telemetry::shutdown::Shutdown;
use beat_types::Epoch;
use bytes::Bytes;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::{
    actor::{ConsensusActor, KeystoreJob, KeystoreReplies},
    metrics::Metrics,
};
use beat_types::backoff::Backoff;

/// Runs the keystore client until shutdown.
pub async fn run(
    endpoint: String,
    actor: Addr<ConsensusActor>,
    mut requests: mpsc::UnboundedReceiver<KeystoreJob>,
    connected: Arc<AtomicBool>,
    metrics: Metrics,
    max_backoff: Duration,
    shutdown: Shutdown,
) {
    let mut client: Option<KeystoreServiceClient<Channel>> = None;
    let mut horizon: Option<CommitCertificate> = None;
    loop {
        let first = tokio::select! {
            r = requests.recv() => match r { Some(r) => r, None => return },
            () = shutdown.wait() => return,
        };
        let mut batch = Vec::new();
        take(first, &mut batch, &mut horizon);
        let mut backoff = Backoff::new(Duration::from_millis(50), max_backoff);
        loop {
            // Whatever arrived meanwhile joins the batch, so that a retry presents the newest
            // certificate too.
            while let Ok(more) = requests.try_recv() {
                take(more, &mut batch, &mut horizon);
            }
            let presented = horizon.as_ref().map(crate::convert::certificate);
            if client.is_none() {
                let connected =
                    beat_telemetry::local::connect(&endpoint, Duration::from_secs(5)).await;
                match connected.map(KeystoreServiceClient::new) {
                    Ok(c) => {
                        client = Some(
                            c.max_decoding_message_size(256 << 20)
                                .max_encoding_message_size(256 << 20),
                        )
                    }
                    Err(e) => tracing::debug!(error = %e, %endpoint, "keystore not reachable"),
                }
            }
            if let Some(c) = client.as_mut() {
                match serve(c, &batch, presented.as_ref()).await {
                    Ok(replies) => {
                        connected.store(true, Ordering::Release);
                        metrics.keystore_connected.set(1);
                        if actor.send(KeystoreReplies(replies)).await.is_err() {
                            return;
                        }
                        break;
                    }
                    Err(status) => {
                        tracing::warn!(error = %status, "keystore request failed; retrying");
                        client = None;
                    }
                }
            }
            connected.store(false, Ordering::Release);
            metrics.keystore_connected.set(0);
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                () = shutdown.wait() => return,
            }
        }
    }
}

/// Adds `job` to `batch`, keeping the newest certificate seen as the horizon to present.
fn take(job: KeystoreJob, batch: &mut Vec<Request>, horizon: &mut Option<CommitCertificate>) {
    if let Some(c) = job.horizon
        && horizon.is_none_or(|h| h.statement.epoch < c.statement.epoch)
    {
        *horizon = Some(c);
    }
    batch.push(job.request);
}

/// Performs one batch of requests: all coin shares in one call, decryption shares in one call
/// per epoch.
async fn serve(
    client: &mut KeystoreServiceClient<Channel>,
    batch: &[Request],
    horizon: Option<&beat_proto::common::v1::CommitCertificate>,
) -> Result<Vec<Reply>, tonic::Status> {
    let mut replies = Vec::new();
    let coins: Vec<CoinId> = batch
        .iter()
        .filter_map(|r| match r {
            Request::CoinShare(id) => Some(*id),
            _ => None,
        })
        .collect();
    if !coins.is_empty() {
        let shares = client
            .sign_coin_shares(SignCoinSharesRequest {
                coins: coins
                    .iter()
                    .map(|c| pb::CoinId {
                        epoch: c.epoch.0,
                        instance: c.instance.0,
                        round: c.round,
                    })
                    .collect(),
                horizon: horizon.cloned(),
            })
            .await?
            .into_inner()
            .shares;
        for (id, share) in coins.into_iter().zip(shares) {
            let share = <[u8; 48]>::try_from(share.as_ref())
                .ok()
                .and_then(|b| SignatureShare::from_bytes(&b).ok())
                .ok_or_else(|| {
                    tonic::Status::data_loss("keystore returned a malformed coin share")
                })?;
            replies.push(Reply::CoinShare { id, share });
        }
    }
    let statements: Vec<beat_core::CommitStatement> = batch
        .iter()
        .filter_map(|r| match r {
            Request::CommitShare(s) => Some(*s),
            _ => None,
        })
        .collect();
    if !statements.is_empty() {
        let shares = client
            .sign_commit_shares(SignCommitSharesRequest {
                statements: statements
                    .iter()
                    .map(|s| pb::CommitStatement {
                        committee_digest: Bytes::copy_from_slice(s.committee.as_bytes()),
                        epoch: s.epoch.0,
                        batch_digest: Bytes::copy_from_slice(s.batch.as_bytes()),
                        previous: Bytes::copy_from_slice(s.previous.as_bytes()),
                    })
                    .collect(),
                horizon: horizon.cloned(),
            })
            .await?
            .into_inner()
            .shares;
        for (s, share) in statements.into_iter().zip(shares) {
            let share = <[u8; 48]>::try_from(share.as_ref())
                .ok()
                .and_then(|b| SignatureShare::from_bytes(&b).ok())
                .ok_or_else(|| {
                    tonic::Status::data_loss("keystore returned a malformed commit share")
                })?;
            replies.push(Reply::CommitShare {
                epoch: s.epoch,
                share,
            });
        }
    }
    let mut by_epoch: BTreeMap<Epoch, Vec<&beat_core::DecryptionItem>> = BTreeMap::new();
    for r in batch {
        if let Request::DecryptionShares { epoch, items } = r {
            by_epoch.entry(*epoch).or_default().extend(items.iter());
        }
    }
    for (epoch, items) in by_epoch {
        let slots: Vec<CiphertextSlot> = items.iter().map(|i| i.slot).collect();
        let results = client
            .create_decryption_shares(CreateDecryptionSharesRequest {
                epoch: epoch.0,
                items: items
                    .iter()
                    .map(|i| pb::DecryptionItem {
                        proposer: i.slot.proposer.0,
                        index: i.slot.index,
                        ciphertext: Bytes::new(),
                        expected_label: Bytes::copy_from_slice(&i.expected_label),
                        ciphertext_header: Bytes::from(i.header.to_bytes()),
                    })
                    .collect(),
                horizon: horizon.cloned(),
            })
            .await?
            .into_inner()
            .results;
        let mut shares = Vec::with_capacity(results.len());
        for (slot, result) in slots.into_iter().zip(results) {
            match result.result {
                Some(pb::decryption_share_result::Result::Share(bytes)) => {
                    let share = <[u8; 96]>::try_from(bytes.as_ref())
                        .ok()
                        .and_then(|b| DecryptionShare::from_bytes(&b).ok())
                        .ok_or_else(|| {
                            tonic::Status::data_loss(
                                "keystore returned a malformed decryption share",
                            )
                        })?;
                    shares.push((slot, share));
                }
                Some(pb::decryption_share_result::Result::Refused(reason)) => {
                    // The core verified the ciphertext first, so this is a disagreement between
                    // the two services (e.g. different committee files), or a request that
                    // waited while its epoch fell behind the signing horizon (the epoch is
                    // committed then); the other replicas' shares decrypt it.
                    tracing::warn!(%reason, epoch = epoch.0, proposer = slot.proposer.0, "keystore refused a decryption share");
                }
                None => {}
            }
        }
        replies.push(Reply::DecryptionShares { epoch, shares });
    }
    Ok(replies)
}
