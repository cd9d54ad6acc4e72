//! The client side of `beat.consensus.v1.OrderingService`, and the retry policy.

use std::time::Duration;

use beat_client::connect::{ApiChannel, Bearer, ConnectError};
use beat_proto::consensus::v1::{
    SubmitRequest, SubmitResponse, WatchBatchesRequest, WatchBatchesResponse,
    ordering_service_client::OrderingServiceClient,
};
use bytes::Bytes;
use tonic::{Status, Streaming, service::interceptor::InterceptedService};

pub use beat_types::backoff::Backoff;

use crate::config::ConsensusConfig;

/// Largest message exchanged with consensus (a committed batch can hold many transactions).
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// A client of the replica's consensus service. Cloning shares the connection, which is
/// established lazily and re-established by tonic after failures.
#[derive(Clone)]
pub struct Consensus {
    client: OrderingServiceClient<ApiChannel>,
    request_timeout: Duration,
}

impl Consensus {
    /// A lazily connecting client (never fails because consensus is down).
    pub fn new(config: &ConsensusConfig) -> Result<Self, ConnectError> {
        let channel = config
            .auth
            .endpoint(&config.endpoint)?
            .tcp_nodelay(true)
            .connect_timeout(config.connect_timeout)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        let channel = InterceptedService::new(channel, Bearer::new(config.auth.token()?));
        let client = OrderingServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self {
            client,
            request_timeout: config.request_timeout,
        })
    }

    /// Submits transactions; returns once consensus has made them durable.
    pub async fn submit(&self, transactions: Vec<Bytes>) -> Result<SubmitResponse, Status> {
        let mut client = self.client.clone();
        let call = client.submit(SubmitRequest { transactions });
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "consensus did not answer Submit within {:?}",
                self.request_timeout
            ))),
        }
    }

    /// Opens the stream of committed batches from `from_epoch` on.
    pub async fn watch(&self, from_epoch: u64) -> Result<Streaming<WatchBatchesResponse>, Status> {
        let mut client = self.client.clone();
        // The replica's own consensus service is inside its trust boundary: batches as they
        // commit, without waiting for certificates.
        let call = client.watch_batches(WatchBatchesRequest {
            from_epoch,
            certified: false,
        });
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded(
                "consensus did not open WatchBatches in time",
            )),
        }
    }
}

/// Whether a failed consensus call is worth retrying unchanged (the client library's rule).
pub use beat_client::client::is_transient as is_retryable;

/// The retry backoff the consensus configuration asks for (jittered: the feed's submitter and
/// the batch watcher of one replica do not retry in lock-step with each other or with other
/// replicas' after a shared outage).
pub fn backoff(config: &ConsensusConfig) -> Backoff {
    Backoff::new(config.backoff_initial, config.backoff_max)
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(is_retryable(Code::ResourceExhausted));
        assert!(is_retryable(Code::Unavailable));
        assert!(!is_retryable(Code::InvalidArgument));
        assert!(!is_retryable(Code::PermissionDenied));
    }
}
