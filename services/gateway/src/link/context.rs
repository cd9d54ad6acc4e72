//! What every link task shares.

use actix::Addr;
use parking_lot::Mutex;
use rand_chacha::ChaCha20Rng;
use rand_core::Rng;
use tokio_util::sync::CancellationToken;

use x25519_dalek::EphemeralSecret;

use super::{
    handshake::{LocalIdentity, Secrets},
    status::LinkTable,
};
use crate::{
    actors::Hub,
    config::{BackoffConfig, LinkConfig},
    metrics::Metrics,
};

/// The environment of the dial, accept and connection tasks.
pub struct Context {
    /// This replica's handshake identity.
    pub identity: LocalIdentity,
    /// Protocol limits and timers.
    pub link: LinkConfig,
    /// Redial backoff.
    pub backoff: BackoffConfig,
    /// The hub.
    pub hub: Addr<Hub>,
    /// Metrics.
    pub metrics: Metrics,
    /// Link states for `Peers`.
    pub table: LinkTable,
    /// Nonces, jitter and ping identifiers (seeded from the operating system).
    pub rng: Mutex<ChaCha20Rng>,
    /// Cancelled at shutdown; every connection's token is a child.
    pub shutdown: CancellationToken,
}

impl Context {
    /// Fresh handshake secrets: a Hello nonce and an X25519 ephemeral key.
    pub fn secrets(&self) -> Secrets {
        let mut rng = self.rng.lock();
        let mut nonce = [0; 32];
        rng.fill_bytes(&mut nonce);
        Secrets {
            nonce,
            ephemeral: EphemeralSecret::random_from_rng(&mut *rng),
        }
    }

    /// A random 64-bit value.
    pub fn random_u64(&self) -> u64 {
        self.rng.lock().next_u64()
    }
}
