//! The keystore's signing horizon: which epochs a replica's keystore signs for.
//!
//! # Rule
//!
//! The keystore learns how far the committee has got only from commit certificates (module
//! [`crate::certificate`]), which need `f + 1` signatures: its caller cannot claim progress it
//! has not certified. With `h` the highest epoch of a certificate the keystore has checked
//! (the **frontier** is `h + 1`, or `0` before any) and `W` its signing window:
//!
//! ```text
//! K1  a coin share or a commit share for epoch e only if        e < frontier + W
//! K2  a decryption share for epoch e only if  frontier − W  ≤  e < frontier + W
//! K3  at most one commit statement per epoch (the same one may be signed again)
//! ```
//!
//! # Why an honest replica is never refused
//!
//! By the watermark of module `node::certify` (C7) a replica commits epoch `e` only if
//! `e − u < certify_window`, with `u` its oldest uncertified epoch; every epoch before `u` is
//! certified there, so its latest certificate `h ≥ u − 1`. It works on one epoch past its last
//! committed one, so every coin, decryption and commit request is for an epoch
//! `≤ u + certify_window ≤ h + 1 + certify_window`; a pipelining replica also works on the epoch
//! after that, but starts it only if the watermark would let it commit (P4 of module `node`):
//! `e + 1 ≤ u + certify_window − 1`. K1 holds when `W ≥ certify_window + 1` and
//! the keystore has seen that certificate. The replica's service sends its latest certificate
//! with every request, made before the requests of the same step, so it always has. Decryption
//! happens before commit, so an honest replica asks for decryption shares only of epochs it has
//! not committed, all `> h`; the lower bound of K2 leaves `W` epochs of slack for requests
//! already on their way when a certificate arrives, and refuses only epochs long certified. Deterministic replay after a crash produces the
//! same statements (K3). The simulator checks all three on every honest request (invariant
//! `KSP-1`).
//!
//! # Checking certificates lazily
//!
//! Checking a certificate costs a pairing (≈ 2 ms here), as much again as forming it, so the
//! keystore does not move its frontier with every certificate presented: only when the request
//! in hand needs it (it would be refused under the current frontier) or when the certificate is
//! `W` or more epochs ahead of it ([`SigningPolicy::worth_checking`]). An honest replica's
//! requests run one or two epochs past its latest certificate, so the frontier moves about once
//! every `W − 2` epochs instead of every epoch. What a lagging frontier changes: K1 only gets
//! stricter (nothing honest is refused for it, since the request that needs the frontier moves
//! it), K3 remembers more, and K2's lower bound trails the true one by less than `W` epochs —
//! decryption shares of epochs up to `2W − 1` behind the certified frontier, instead of `W`, can
//! be asked for by a compromised caller. The simulator's keystore follows the same rule, so
//! `KSP-1` is checked with it.
//!
//! # What it buys
//!
//! Defence in depth against a compromised consensus process (the one that parses peers' bytes):
//! it cannot stockpile coin shares for future epochs — with `f` Byzantine replicas, one honest
//! keystore's shares for epochs far ahead would make those coins predictable long after the
//! compromise is cleaned up — nor commit shares for epochs not yet reached, nor two statements
//! for one epoch, nor decryption shares for contributions of epochs long past (an excluded
//! proposal's transactions are proposed again later: decrypting the old copy front-runs them).
//! What it does not bound: within the window a compromised caller is as strong as a Byzantine
//! replica, and BEAT2 client labels name no epoch, so their ciphertexts are bound to an epoch
//! only by the caller's word.

use std::collections::BTreeMap;

use beat_crypto::{Digest, bls};
use beat_types::Epoch;

use crate::{CommitCertificate, CommitStatement, Params};

/// Why the policy refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The epoch is outside the signing window.
    #[error(
        "epoch {epoch} is outside the signing window [{low}, {high}) of the certified frontier {frontier}"
    )]
    OutsideWindow {
        /// The epoch asked for.
        epoch: Epoch,
        /// First epoch allowed.
        low: Epoch,
        /// First epoch not allowed.
        high: Epoch,
        /// The frontier.
        frontier: Epoch,
    },
    /// A second, different statement for an epoch.
    #[error("a different commit statement for epoch {0} was signed already")]
    Equivocation(Epoch),
    /// A presented certificate is not the committee's.
    #[error("the presented certificate of epoch {epoch} is invalid: {reason}")]
    BadCertificate {
        /// Its epoch.
        epoch: Epoch,
        /// Why.
        reason: &'static str,
    },
}

/// Checks that `certificate` is the committee's: its digest is `committee` and its signature
/// verifies under the group key `keys` (one pairing check).
pub fn check_certificate(
    committee: Digest,
    keys: &bls::PublicKeySet,
    certificate: &CommitCertificate,
) -> Result<(), PolicyError> {
    let epoch = certificate.statement.epoch;
    if certificate.statement.committee != committee {
        return Err(PolicyError::BadCertificate {
            epoch,
            reason: "it names another committee",
        });
    }
    if !certificate.verify_signature(keys) {
        return Err(PolicyError::BadCertificate {
            epoch,
            reason: "the signature is not the committee's",
        });
    }
    Ok(())
}

/// The signing horizon of one keystore (module docs: K1–K3).
#[derive(Clone, Debug)]
pub struct SigningPolicy {
    window: u64,
    committee: Digest,
    frontier: Epoch,
    /// The link ([`CommitStatement::link`]) of each statement signed, for epochs not below
    /// `frontier − window`.
    signed: BTreeMap<Epoch, Digest>,
}

impl SigningPolicy {
    /// A policy with window `window` (at least 1) for the committee with digest `committee`.
    pub fn new(window: u64, committee: Digest) -> Self {
        Self {
            window: window.max(1),
            committee,
            frontier: Epoch(0),
            signed: BTreeMap::new(),
        }
    }

    /// The policy a keystore derives from the committee's parameters: the smallest window that
    /// never refuses an honest replica, `certify_window + 1` (module docs).
    pub fn for_params(params: &Params, committee: Digest) -> Self {
        Self::new(params.certify_window.saturating_add(1), committee)
    }

    /// The first epoch not known to be certified.
    pub fn frontier(&self) -> Epoch {
        self.frontier
    }

    /// The window.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Whether `certificate` would move the frontier.
    pub fn advances(&self, certificate: &CommitCertificate) -> bool {
        certificate.statement.epoch >= self.frontier
    }

    /// Whether to check `certificate` (a pairing) and move the frontier past it now, for a
    /// request whose highest epoch is `asked` (module docs: lazy checking): only if it moves
    /// the frontier and either the request would be refused under the current one or the
    /// certificate is at least a window ahead of it.
    pub fn worth_checking(&self, certificate: &CommitCertificate, asked: Option<Epoch>) -> bool {
        if !self.advances(certificate) {
            return false;
        }
        let ahead = certificate.statement.epoch.0 - self.frontier.0 + 1;
        ahead >= self.window || asked.is_some_and(|e| e >= self.high())
    }

    /// Checks `certificate` against the committee (digest and group key: one pairing check)
    /// and moves the frontier past it. A certificate that would not move it is not checked.
    pub fn present(
        &mut self,
        certificate: &CommitCertificate,
        keys: &bls::PublicKeySet,
    ) -> Result<(), PolicyError> {
        if !self.advances(certificate) {
            return Ok(());
        }
        check_certificate(self.committee, keys, certificate)?;
        self.advance(certificate.statement.epoch);
        Ok(())
    }

    /// Moves the frontier past `epoch`, which the caller knows to be certified (a certificate
    /// it checked itself).
    pub fn advance(&mut self, epoch: Epoch) {
        if epoch < self.frontier {
            return;
        }
        self.frontier = epoch.next();
        let low = self.low();
        self.signed = self.signed.split_off(&low);
    }

    fn low(&self) -> Epoch {
        Epoch(self.frontier.0.saturating_sub(self.window))
    }

    fn high(&self) -> Epoch {
        self.frontier.saturating_add(self.window)
    }

    fn outside(&self, epoch: Epoch, low: Epoch) -> PolicyError {
        PolicyError::OutsideWindow {
            epoch,
            low,
            high: self.high(),
            frontier: self.frontier,
        }
    }

    /// K1 for a coin share.
    pub fn check_coin(&self, epoch: Epoch) -> Result<(), PolicyError> {
        if epoch >= self.high() {
            return Err(self.outside(epoch, Epoch(0)));
        }
        Ok(())
    }

    /// K2 for a decryption share.
    pub fn check_decryption(&self, epoch: Epoch) -> Result<(), PolicyError> {
        if epoch < self.low() || epoch >= self.high() {
            return Err(self.outside(epoch, self.low()));
        }
        Ok(())
    }

    /// K1 and K3 for a commit statement, without recording it.
    pub fn check_statement(&self, statement: &CommitStatement) -> Result<(), PolicyError> {
        let epoch = statement.epoch;
        if epoch >= self.high() {
            return Err(self.outside(epoch, Epoch(0)));
        }
        match self.signed.get(&epoch) {
            Some(link) if *link != statement.link() => Err(PolicyError::Equivocation(epoch)),
            _ => Ok(()),
        }
    }

    /// Checks statements all-or-nothing (K1, K3, also among themselves) and records them as
    /// signed. Statements below the window's low end are signed but not remembered: such an
    /// epoch is certified, and its certificate fixes the one statement that counts.
    pub fn admit_statements(&mut self, statements: &[CommitStatement]) -> Result<(), PolicyError> {
        let mut new: BTreeMap<Epoch, Digest> = BTreeMap::new();
        for s in statements {
            self.check_statement(s)?;
            let link = s.link();
            if *new.entry(s.epoch).or_insert(link) != link {
                return Err(PolicyError::Equivocation(s.epoch));
            }
        }
        let low = self.low();
        self.signed
            .extend(new.into_iter().filter(|(epoch, _)| *epoch >= low));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use beat_crypto::{bls, hash::hash};
    use beat_types::NodeId;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn digest(tag: &[u8]) -> Digest {
        hash(b"test", tag)
    }

    fn statement(committee: Digest, epoch: u64, batch: &[u8]) -> CommitStatement {
        CommitStatement {
            committee,
            epoch: Epoch(epoch),
            batch: digest(batch),
            previous: digest(b"previous"),
        }
    }

    type Keys = (bls::PublicKeySet, Vec<bls::SecretKeyShare>);

    fn keys(seed: u64) -> Keys {
        bls::deal(4, 1, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap()
    }

    fn certify((public, secret): &Keys, s: CommitStatement) -> CommitCertificate {
        let message = s.message();
        let shares: BTreeMap<NodeId, bls::SignatureShare> = secret
            .iter()
            .take(2)
            .map(|k| (k.holder(), k.sign(&message)))
            .collect();
        CommitCertificate {
            statement: s,
            signature: public.combine_unchecked(&shares).unwrap(),
        }
    }

    #[test]
    fn the_window_follows_checked_certificates() {
        let committee = digest(b"committee");
        let keys = keys(7);
        let mut p = SigningPolicy::new(5, committee);
        assert!(p.check_coin(Epoch(4)).is_ok());
        assert!(matches!(
            p.check_coin(Epoch(5)),
            Err(PolicyError::OutsideWindow { .. })
        ));
        p.present(&certify(&keys, statement(committee, 9, b"b9")), &keys.0)
            .unwrap();
        assert_eq!(p.frontier(), Epoch(10));
        assert!(p.check_coin(Epoch(14)).is_ok());
        assert!(p.check_coin(Epoch(15)).is_err());
        // K2: old epochs are refused for decryption, not for coins.
        assert!(p.check_decryption(Epoch(5)).is_ok());
        assert!(p.check_decryption(Epoch(4)).is_err());
        assert!(p.check_decryption(Epoch(15)).is_err());
        assert!(p.check_coin(Epoch(0)).is_ok());
        // An older certificate never moves the frontier back.
        p.present(&certify(&keys, statement(committee, 3, b"b3")), &keys.0)
            .unwrap();
        assert_eq!(p.frontier(), Epoch(10));
    }

    /// Lazy checking: a certificate is worth a pairing only if it moves the frontier and the
    /// request needs it moved or it is a window ahead.
    #[test]
    fn certificates_are_checked_only_when_the_frontier_must_move() {
        let committee = digest(b"committee");
        let keys = keys(7);
        let mut p = SigningPolicy::new(5, committee);
        p.present(&certify(&keys, statement(committee, 9, b"b9")), &keys.0)
            .unwrap();
        let at = |e| certify(&keys, statement(committee, e, b"b"));
        // Frontier 10, window 5: requests below 15 need nothing.
        assert!(!p.worth_checking(&at(9), Some(Epoch(20))), "moves nothing");
        assert!(!p.worth_checking(&at(11), Some(Epoch(14))));
        assert!(!p.worth_checking(&at(11), None));
        assert!(
            p.worth_checking(&at(11), Some(Epoch(15))),
            "the request needs it"
        );
        assert!(!p.worth_checking(&at(13), Some(Epoch(12))));
        assert!(p.worth_checking(&at(14), None), "a window ahead");
        assert!(p.worth_checking(&at(1000), Some(Epoch(0))));
    }

    #[test]
    fn a_forged_or_foreign_certificate_moves_nothing() {
        let committee = digest(b"committee");
        let keys = keys(7);
        let other = keys_other();
        let mut p = SigningPolicy::new(5, committee);
        let forged = certify(&other, statement(committee, 1000, b"x"));
        assert!(matches!(
            p.present(&forged, &keys.0),
            Err(PolicyError::BadCertificate { .. })
        ));
        let foreign = certify(&keys, statement(digest(b"other committee"), 1000, b"x"));
        assert!(matches!(
            p.present(&foreign, &keys.0),
            Err(PolicyError::BadCertificate { .. })
        ));
        // A valid signature on another statement, relabelled with a later epoch.
        let mut relabelled = certify(&keys, statement(committee, 2, b"x"));
        relabelled.statement.epoch = Epoch(1000);
        assert!(p.present(&relabelled, &keys.0).is_err());
        assert_eq!(p.frontier(), Epoch(0));
    }

    fn keys_other() -> Keys {
        keys(8)
    }

    #[test]
    fn one_statement_per_epoch() {
        let committee = digest(b"committee");
        let mut p = SigningPolicy::new(4, committee);
        let a = statement(committee, 2, b"a");
        let b = statement(committee, 2, b"b");
        p.admit_statements(&[a]).unwrap();
        p.admit_statements(&[a]).unwrap();
        assert_eq!(
            p.admit_statements(&[b]),
            Err(PolicyError::Equivocation(Epoch(2)))
        );
        // Within one request too, and nothing of a refused request is recorded.
        let c = statement(committee, 3, b"c");
        let d = statement(committee, 3, b"d");
        assert!(p.admit_statements(&[c, d]).is_err());
        p.admit_statements(&[d]).unwrap();
        assert!(
            p.admit_statements(&[statement(committee, 4, b"e")])
                .is_err()
        );
        // Past the window's low end the record is dropped: the certificate fixes the epoch.
        p.advance(Epoch(20));
        assert!(p.signed.is_empty());
    }
}
