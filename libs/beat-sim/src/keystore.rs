//! The simulated keystore: serves a replica's secret-key requests synchronously.

use beat_core::{
    CommitCertificate, Reply, Request,
    signing::{PolicyError, SigningPolicy},
};
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
    /// The signing horizon the real keystore enforces (module [`beat_core::signing`]), with the
    /// window it derives from the committee's parameters. The simulated keystore still serves
    /// what it refuses, so that a run goes on; the checker reports the refusal (`KSP-1`).
    pub policy: SigningPolicy,
}

impl SimKeystore {
    /// Checks `request` against the signing horizon after presenting `latest` (the replica's
    /// latest certificate, which its service sends with every keystore call), as the real
    /// keystore does; `Err` is what it would refuse.
    pub fn check(
        &mut self,
        request: &Request,
        latest: Option<&CommitCertificate>,
    ) -> Result<(), PolicyError> {
        // The replica checked its certificates itself: trusted here, verified by the service.
        // The frontier moves lazily, by the real keystore's rule.
        if let Some(c) = latest {
            let asked = match request {
                Request::CoinShare(id) => Some(id.epoch),
                Request::DecryptionShares { epoch, .. } => Some(*epoch),
                Request::CommitShare(statement) => Some(statement.epoch),
                Request::ReadCommitted { .. } => None,
            };
            if self.policy.worth_checking(c, asked) {
                self.policy.advance(c.statement.epoch);
            }
        }
        match request {
            Request::CoinShare(id) => self.policy.check_coin(id.epoch),
            Request::DecryptionShares { epoch, .. } => self.policy.check_decryption(*epoch),
            Request::CommitShare(statement) => self.policy.admit_statements(&[*statement]),
            Request::ReadCommitted { .. } => Ok(()),
        }
    }

    /// Serves `request`. `None` for `ReadCommitted`, which the replica host serves from its
    /// own log and never passes on.
    pub fn serve(&mut self, request: Request) -> Option<Reply> {
        Some(match request {
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
                            .header_decryption_share(
                                &self.encryption_key,
                                &item.header,
                                &item.expected_label,
                            )
                            .ok()
                            .map(|share| (item.slot, share))
                    })
                    .collect(),
            },
            Request::CommitShare(statement) => Reply::CommitShare {
                epoch: statement.epoch,
                share: self.coin.sign(&statement.message()),
            },
            Request::ReadCommitted { .. } => return None,
        })
    }
}
