//! The `beat.keystore.v1.KeystoreService` implementation: validates requests, forwards them to
//! the signer pool, maps errors to gRPC codes.

use std::sync::Arc;

use actix::Addr;
use beat_core::{
    CoinId, CommitStatement,
    signing::{PolicyError, SigningPolicy},
};
use beat_crypto::Digest;
use beat_proto::common::v1 as common;
use beat_proto::keystore::v1::{
    self as pb, CreateDecryptionSharesRequest, CreateDecryptionSharesResponse,
    DecryptionShareResult, PublicKeysRequest, PublicKeysResponse, SignCoinSharesRequest,
    SignCoinSharesResponse, SignCommitSharesRequest, SignCommitSharesResponse,
    SignHandshakeRequest, SignHandshakeResponse, keystore_service_server::KeystoreService,
};
use beat_types::{Epoch, NodeId};
use bytes::Bytes;
use tonic::{Request, Response, Status};

use beat_telemetry::limit::TokenBucket;
use parking_lot::Mutex;

use crate::{
    actors::{
        CheckCertificate, SealedBytes, ShareDecryption, SignCoins, SignCommits, SignHandshake,
        SignerActor,
    },
    component::Keystore,
    metrics::Metrics,
};

/// The gRPC shell.
pub struct KeystoreGrpc {
    /// The signer pool.
    pub signer: Addr<SignerActor>,
    /// Public information (replica, identity, committee digest).
    pub keystore: Arc<Keystore>,
    /// Metrics.
    pub metrics: Metrics,
    /// Most items per request.
    pub max_batch: usize,
    /// Pool threads (requests are split across them).
    pub threads: usize,
    /// The signing horizon (module `beat_core::signing`): which epochs shares are signed for.
    pub policy: Mutex<SigningPolicy>,
    /// The handshake signature rate limit.
    pub handshakes: Mutex<TokenBucket>,
}

fn unavailable(e: actix::MailboxError) -> Status {
    Status::unavailable(format!("signer pool unavailable: {e}"))
}

impl KeystoreGrpc {
    /// Takes the caller's latest certificate for a request whose highest epoch is `asked`: if
    /// the request needs the signing horizon moved, or the certificate is a window or more ahead
    /// of it, checks it (one pairing, on the signer pool) and moves it
    /// ([`SigningPolicy::worth_checking`]); otherwise leaves it unchecked. An invalid one refuses
    /// the request.
    async fn present(
        &self,
        horizon: Option<common::CommitCertificate>,
        asked: Option<Epoch>,
    ) -> Result<(), Status> {
        let Some(certificate) = horizon else {
            return Ok(());
        };
        let certificate = beat_client::verify::certificate_from_proto(&certificate)
            .map_err(|e| Status::invalid_argument(format!("horizon: {e}")))?;
        if !self.policy.lock().worth_checking(&certificate, asked) {
            return Ok(());
        }
        self.metrics.certificate_checks.inc();
        let checked = self
            .signer
            .send(CheckCertificate(certificate))
            .await
            .map_err(unavailable)?;
        if let Err(e) = checked {
            return Err(self.refuse("certificate", e, tonic::Code::InvalidArgument));
        }
        let mut policy = self.policy.lock();
        policy.advance(certificate.statement.epoch);
        self.metrics
            .signing_frontier
            .set(i64::try_from(policy.frontier().0).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Counts and logs a policy refusal and turns it into a status.
    fn refuse(&self, reason: &str, e: PolicyError, code: tonic::Code) -> Status {
        self.metrics.refusals.with_label_values(&[reason]).inc();
        tracing::warn!(reason, refusal = %e, "refused outside the signing policy");
        Status::new(code, e.to_string())
    }

    fn check_batch(&self, len: usize, what: &str) -> Result<(), Status> {
        if len > self.max_batch {
            return Err(Status::invalid_argument(format!(
                "{len} {what} in one request exceeds the limit of {}",
                self.max_batch
            )));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl KeystoreService for KeystoreGrpc {
    async fn sign_coin_shares(
        &self,
        request: Request<SignCoinSharesRequest>,
    ) -> Result<Response<SignCoinSharesResponse>, Status> {
        let timer = self
            .metrics
            .latency
            .with_label_values(&["SignCoinShares"])
            .start_timer();
        let SignCoinSharesRequest { coins, horizon } = request.into_inner();
        self.check_batch(coins.len(), "coins")?;
        let asked = coins.iter().map(|c| Epoch(c.epoch)).max();
        self.present(horizon, asked).await?;
        {
            let policy = self.policy.lock();
            if let Some(e) = coins
                .iter()
                .find_map(|c| policy.check_coin(Epoch(c.epoch)).err())
            {
                drop(policy);
                return Err(self.refuse("horizon", e, tonic::Code::FailedPrecondition));
            }
        }
        let ids = coins
            .into_iter()
            .map(|c| CoinId {
                epoch: Epoch(c.epoch),
                instance: NodeId(c.instance),
                round: c.round,
            })
            .collect::<Vec<_>>();
        let count = ids.len() as u64;
        let shares = self
            .signer
            .send(SignCoins(ids))
            .await
            .map_err(unavailable)?;
        self.metrics
            .operations
            .with_label_values(&["coin_share"])
            .inc_by(count);
        timer.observe_duration();
        Ok(Response::new(SignCoinSharesResponse {
            shares: shares
                .iter()
                .map(|s| Bytes::copy_from_slice(&s.to_bytes()))
                .collect(),
        }))
    }

    async fn sign_commit_shares(
        &self,
        request: Request<SignCommitSharesRequest>,
    ) -> Result<Response<SignCommitSharesResponse>, Status> {
        let timer = self
            .metrics
            .latency
            .with_label_values(&["SignCommitShares"])
            .start_timer();
        let SignCommitSharesRequest {
            statements,
            horizon,
        } = request.into_inner();
        self.check_batch(statements.len(), "statements")?;
        let asked = statements.iter().map(|s| Epoch(s.epoch)).max();
        self.present(horizon, asked).await?;
        let digest = |b: &Bytes, what: &str, epoch: u64| {
            <[u8; 32]>::try_from(b.as_ref()).map(Digest).map_err(|_| {
                Status::invalid_argument(format!(
                    "statement of epoch {epoch}: {what} is {} bytes, not 32",
                    b.len()
                ))
            })
        };
        let statements = statements
            .iter()
            .map(|s| {
                Ok(CommitStatement {
                    committee: digest(&s.committee_digest, "committee_digest", s.epoch)?,
                    epoch: Epoch(s.epoch),
                    batch: digest(&s.batch_digest, "batch_digest", s.epoch)?,
                    previous: digest(&s.previous, "previous", s.epoch)?,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        // The committee first (a statement of another committee is refused below, and must
        // not be recorded as signed), then K1 and K3, recorded before signing.
        if statements
            .iter()
            .all(|s| s.committee == self.keystore.committee_digest())
        {
            let admitted = self.policy.lock().admit_statements(&statements);
            if let Err(e) = admitted {
                let reason = match e {
                    PolicyError::Equivocation(_) => "equivocation",
                    _ => "horizon",
                };
                return Err(self.refuse(reason, e, tonic::Code::FailedPrecondition));
            }
        }
        let count = statements.len() as u64;
        let shares = self
            .signer
            .send(SignCommits(statements))
            .await
            .map_err(unavailable)?
            .map_err(|e| {
                self.metrics
                    .refusals
                    .with_label_values(&["committee"])
                    .inc();
                Status::failed_precondition(e.to_string())
            })?;
        self.metrics
            .operations
            .with_label_values(&["commit_share"])
            .inc_by(count);
        timer.observe_duration();
        Ok(Response::new(SignCommitSharesResponse {
            shares: shares
                .iter()
                .map(|s| Bytes::copy_from_slice(&s.to_bytes()))
                .collect(),
        }))
    }

    async fn create_decryption_shares(
        &self,
        request: Request<CreateDecryptionSharesRequest>,
    ) -> Result<Response<CreateDecryptionSharesResponse>, Status> {
        let timer = self
            .metrics
            .latency
            .with_label_values(&["CreateDecryptionShares"])
            .start_timer();
        let req = request.into_inner();
        self.check_batch(req.items.len(), "items")?;
        let asked = Some(Epoch(req.epoch));
        self.present(req.horizon, asked).await?;
        let epoch = Epoch(req.epoch);
        let outside = self.policy.lock().check_decryption(epoch);
        if let Err(e) = outside {
            let reason = e.to_string();
            let status = self.refuse("horizon", e, tonic::Code::FailedPrecondition);
            self.metrics
                .refusals
                .with_label_values(&["decryption_share"])
                .inc_by(req.items.len() as u64);
            tracing::debug!(%status, "every item refused");
            let results = req
                .items
                .iter()
                .map(|_| DecryptionShareResult {
                    result: Some(pb::decryption_share_result::Result::Refused(reason.clone())),
                })
                .collect();
            timer.observe_duration();
            return Ok(Response::new(CreateDecryptionSharesResponse { results }));
        }
        let items: Vec<_> = req
            .items
            .into_iter()
            .map(
                |pb::DecryptionItem {
                     proposer,
                     ciphertext,
                     expected_label,
                     ciphertext_header,
                     ..
                 }| {
                    let sealed = match (ciphertext.is_empty(), ciphertext_header.is_empty()) {
                        (true, false) => SealedBytes::Header(ciphertext_header),
                        (false, true) => SealedBytes::Whole(ciphertext),
                        _ => SealedBytes::Ambiguous,
                    };
                    (NodeId(proposer), sealed, expected_label)
                },
            )
            .collect();
        // Split the batch across the pool so that a large BEAT2 batch uses every thread.
        let chunk = items.len().div_ceil(self.threads.max(1)).max(1);
        let pending: Vec<_> = items
            .chunks(chunk)
            .map(|c| {
                self.signer.send(ShareDecryption {
                    epoch,
                    items: c.to_vec(),
                })
            })
            .collect();
        let mut results = Vec::with_capacity(items.len());
        for p in pending {
            for r in p.await.map_err(unavailable)? {
                results.push(match r {
                    Ok(share) => {
                        self.metrics
                            .operations
                            .with_label_values(&["decryption_share"])
                            .inc();
                        DecryptionShareResult {
                            result: Some(pb::decryption_share_result::Result::Share(
                                Bytes::copy_from_slice(&share.to_bytes()),
                            )),
                        }
                    }
                    Err(refusal) => {
                        self.metrics
                            .refusals
                            .with_label_values(&["decryption_share"])
                            .inc();
                        tracing::warn!(%refusal, epoch = epoch.0, "refused a decryption share");
                        DecryptionShareResult {
                            result: Some(pb::decryption_share_result::Result::Refused(
                                refusal.to_string(),
                            )),
                        }
                    }
                });
            }
        }
        timer.observe_duration();
        Ok(Response::new(CreateDecryptionSharesResponse { results }))
    }

    async fn sign_handshake(
        &self,
        request: Request<SignHandshakeRequest>,
    ) -> Result<Response<SignHandshakeResponse>, Status> {
        let req = request.into_inner();
        if req.transcript.len() != 32 {
            return Err(Status::invalid_argument(format!(
                "transcript must be a 32-byte digest, got {} bytes",
                req.transcript.len()
            )));
        }
        let signature = self
            .signer
            .send(SignHandshake {
                context: req.context,
                transcript: req.transcript,
            })
            .await
            .map_err(unavailable)?
            .map_err(|refusal| {
                self.metrics
                    .refusals
                    .with_label_values(&["handshake"])
                    .inc();
                Status::permission_denied(refusal.to_string())
            })?;
        self.metrics
            .operations
            .with_label_values(&["handshake"])
            .inc();
        Ok(Response::new(SignHandshakeResponse {
            signature: Bytes::copy_from_slice(&signature.to_bytes()),
        }))
    }

    async fn public_keys(
        &self,
        _: Request<PublicKeysRequest>,
    ) -> Result<Response<PublicKeysResponse>, Status> {
        Ok(Response::new(PublicKeysResponse {
            replica: self.keystore.replica().0,
            identity: Bytes::copy_from_slice(&self.keystore.identity().to_bytes()),
            committee_digest: Bytes::copy_from_slice(self.keystore.committee_digest().as_bytes()),
        }))
    }
}

/// Who calls the keystore on a given socket: each of the replica's services gets a socket of
/// its own, and each socket serves only what that service needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    /// The consensus service: coin shares, decryption shares, public keys.
    Consensus,
    /// The gateway: handshake signatures, public keys.
    Gateway,
}

impl Caller {
    fn name(self) -> &'static str {
        match self {
            Self::Consensus => "consensus",
            Self::Gateway => "gateway",
        }
    }
}

/// The keystore service as one caller sees it: methods outside the caller's allow-list are
/// refused with `PERMISSION_DENIED` (and counted) before any key is touched.
pub struct Guarded {
    inner: Arc<KeystoreGrpc>,
    caller: Caller,
}

impl Guarded {
    /// The service for `caller`.
    pub fn new(inner: Arc<KeystoreGrpc>, caller: Caller) -> Self {
        Self { inner, caller }
    }

    fn allow(&self, method: &str, allowed: Caller) -> Result<(), Status> {
        if self.caller == allowed {
            return Ok(());
        }
        self.inner
            .metrics
            .refusals
            .with_label_values(&["caller"])
            .inc();
        tracing::warn!(
            method,
            caller = self.caller.name(),
            "refused a keystore method outside the caller's allow-list"
        );
        Err(Status::permission_denied(format!(
            "{method} is not served on the keystore's {} socket",
            self.caller.name()
        )))
    }
}

#[tonic::async_trait]
impl KeystoreService for Guarded {
    async fn sign_coin_shares(
        &self,
        request: Request<SignCoinSharesRequest>,
    ) -> Result<Response<SignCoinSharesResponse>, Status> {
        self.allow("SignCoinShares", Caller::Consensus)?;
        self.inner.sign_coin_shares(request).await
    }

    async fn sign_commit_shares(
        &self,
        request: Request<SignCommitSharesRequest>,
    ) -> Result<Response<SignCommitSharesResponse>, Status> {
        self.allow("SignCommitShares", Caller::Consensus)?;
        self.inner.sign_commit_shares(request).await
    }

    async fn create_decryption_shares(
        &self,
        request: Request<CreateDecryptionSharesRequest>,
    ) -> Result<Response<CreateDecryptionSharesResponse>, Status> {
        self.allow("CreateDecryptionShares", Caller::Consensus)?;
        self.inner.create_decryption_shares(request).await
    }

    async fn sign_handshake(
        &self,
        request: Request<SignHandshakeRequest>,
    ) -> Result<Response<SignHandshakeResponse>, Status> {
        self.allow("SignHandshake", Caller::Gateway)?;
        if !self.inner.handshakes.lock().try_take() {
            self.inner
                .metrics
                .refusals
                .with_label_values(&["handshake_rate"])
                .inc();
            return Err(Status::resource_exhausted(
                "handshake signatures are rate limited; retry later",
            ));
        }
        self.inner.sign_handshake(request).await
    }

    async fn public_keys(
        &self,
        request: Request<PublicKeysRequest>,
    ) -> Result<Response<PublicKeysResponse>, Status> {
        self.inner.public_keys(request).await
    }
}
