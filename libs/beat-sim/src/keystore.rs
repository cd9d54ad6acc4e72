//! The simulated keystore: serves a replica's secret-key requests synchronously.

use beat_core::{Batch, Reply, Request};
use beat_crypto::{bls, tdh2};

/// One replica's secret key shares.
pub struct SimKeystore {
    /// Coin key share.
    pub coin: bls::SecretKeyShare,
    /// Decryption key share.
    pub decryption: tdh2::SecretKeyShare,
    /// The public encryption key (to check ciphertexts before sharing).
    pub encryption_key: std::sync::Arc<tdh2::PublicKey>,
    /// Coin shares produced (random-coin rounds this replica reached).
    pub coin_shares_served: u64,
}

impl SimKeystore {
    /// Serves `request`; committed history comes from `log`.
    pub fn serve(&mut self, request: Request, log: &[Batch]) -> Reply {
        match request {
            Request::CoinShare(id) => {
                self.coin_shares_served += 1;
                Reply::CoinShare {
                    id,
                    share: self.coin.sign(&id.message()),
                }
            }
            Request::DecryptionShares { epoch, items } => Reply::DecryptionShares {
                epoch,
                shares: items
                    .iter()
                    .filter_map(|item| {
                        self.decryption
                            .decryption_share(
                                &self.encryption_key,
                                &item.ciphertext,
                                &item.expected_label,
                            )
                            .ok()
                            .map(|share| (item.slot, share))
                    })
                    .collect(),
            },
            Request::ReadCommitted { peer, from, count } => Reply::Committed {
                peer,
                batches: log
                    .iter()
                    .skip_while(|b| b.epoch < from)
                    .take(count as usize)
                    .cloned()
                    .collect(),
            },
        }
    }
}
