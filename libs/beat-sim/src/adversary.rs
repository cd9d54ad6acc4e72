//! The adversary model, and the trait every named adversary implements.
//!
//! # Adversary model
//!
//! The simulated network is asynchronous and adversarial, exactly as the BEAT and
//! HoneyBadgerBFT papers assume. The adversary
//!
//! * **controls the schedule**: it chooses which in-flight message is delivered next, so it may
//!   reorder messages arbitrarily and delay any of them — but only finitely: a message between
//!   two honest replicas that has been in flight for more than `max_delay` deliveries is
//!   delivered next, whatever the adversary prefers (eventual delivery);
//! * **eavesdrops**: it sees every message in flight, including its contents;
//! * **fully controls the faulty replicas** (at most `f`): it knows their secret key shares,
//!   can make them send anything to anyone, drop or rewrite their messages, replay what they
//!   received, or stay silent;
//! * **may not** forge messages from honest replicas (links are authenticated), drop messages
//!   between honest replicas, or corrupt honest replicas' state;
//! * **may crash honest replicas**, which recover at once from their write-ahead log and
//!   re-send what the replay produced — but a replica crashes again only after it has moved
//!   past the epoch it recovered into (`VirtualNet::adversary_acts`). One that crashed for ever
//!   without progress would be a crashed replica, counted against `f`; and crashes that
//!   outpace epochs grow the network's load without bound through the re-sends.
//!
//! Faulty replicas run the honest protocol code by default, so that an adversary can deviate in
//! one specific way while looking honest otherwise (hbbft's approach); each named adversary
//! overrides only what it needs.

use std::collections::BTreeSet;

use beat_core::{Config, Message, PublicKeys, Reply};

use beat_crypto::{bls, tdh2};
use beat_types::{Committee, NodeId};
use rand_chacha::ChaCha20Rng;

/// A message in flight.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// The message.
    pub message: Message,
    /// The crank at which it was sent.
    pub sent_at: u64,
}

/// A keystore reply on its way back to the replica that asked. The keystore is a separate
/// service: its replies are events of their own, delivered when the schedule says so, not in
/// the step that made the request.
#[derive(Clone, Debug)]
pub struct PendingReply {
    /// The replica that asked.
    pub node: NodeId,
    /// The reply.
    pub reply: Reply,
    /// The crank at which the request was made.
    pub issued_at: u64,
}

/// What the adversary knows and holds when it acts for the faulty replicas.
pub struct Ctx<'a> {
    /// The committee.
    pub committee: Committee,
    /// The faulty replicas.
    pub faulty: &'a BTreeSet<NodeId>,
    /// Public keys.
    pub keys: &'a PublicKeys,
    /// The faulty replicas' coin key shares, by replica.
    pub coin_secrets: &'a [(NodeId, bls::SecretKeyShare)],
    /// The faulty replicas' decryption key shares, by replica.
    pub decryption_secrets: &'a [(NodeId, tdh2::SecretKeyShare)],
    /// A faulty replica's configuration (for building protocol messages).
    pub config: &'a Config,
    /// The adversary's randomness (seeded).
    pub rng: &'a mut ChaCha20Rng,
    /// The current crank.
    pub crank: u64,
    /// The highest epoch any honest replica is in.
    pub honest_epoch: beat_types::Epoch,
    /// Every message in flight (the adversary eavesdrops).
    pub in_flight: &'a [Envelope],
    /// Keystore replies not yet returned to their replicas.
    pub replies: &'a [PendingReply],
}

impl Ctx<'_> {
    /// Honest replicas, in order.
    pub fn honest(&self) -> Vec<NodeId> {
        self.committee
            .members()
            .filter(|id| !self.faulty.contains(id))
            .collect()
    }
}

/// A named adversary.
pub trait Adversary {
    /// The adversary's name, as used on the command line.
    fn name(&self) -> &'static str;

    /// Chooses the next message to deliver: an index into `ctx.in_flight` (non-empty). The
    /// network overrides the choice when an honest-to-honest message exceeds the delay bound.
    fn pick(&mut self, ctx: &mut Ctx<'_>) -> usize {
        random_pick(ctx.in_flight.len(), ctx.rng)
    }

    /// Chooses whether the next event is a keystore reply rather than a message: an index into
    /// `ctx.replies` (non-empty), or `None` to deliver a message. The network delivers a reply
    /// when no message is in flight, and any reply older than the delay bound, whatever this
    /// says. By default every pending event is equally likely to be next.
    fn pick_reply(&mut self, ctx: &mut Ctx<'_>) -> Option<usize> {
        let replies = ctx.replies.len();
        let total = replies + ctx.in_flight.len();
        let i = random_pick(total, ctx.rng);
        (i < replies).then_some(i)
    }

    /// Rewrites one message a faulty replica's protocol code is about to send to `to`:
    /// returns what is actually sent (possibly nothing, possibly several messages).
    fn tamper(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: Message,
        _ctx: &mut Ctx<'_>,
    ) -> Vec<(NodeId, Message)> {
        let _ = from;
        vec![(to, message)]
    }

    /// Extra messages faulty replicas inject before a delivery: `(from, to, message)` with a
    /// faulty `from`.
    fn inject(&mut self, _ctx: &mut Ctx<'_>) -> Vec<(NodeId, NodeId, Message)> {
        Vec::new()
    }

    /// Raw payloads faulty replicas hand to honest replicas' hosts before a delivery:
    /// `(from, to, bytes)` with a faulty `from`, delivered at once through the recipient's
    /// decoder ([`beat_core::wire::decode`]), as a gateway hands over what a peer sent.
    fn inject_bytes(&mut self, _ctx: &mut Ctx<'_>) -> Vec<(NodeId, NodeId, Vec<u8>)> {
        Vec::new()
    }

    /// Restarts an honest replica before the next delivery, as a crash and recovery from its
    /// write-ahead log would (crash-recovery is not a Byzantine fault: a correctly recovered
    /// replica is indistinguishable from a slow one).
    fn restart(&mut self, _ctx: &mut Ctx<'_>) -> Option<NodeId> {
        None
    }

    /// The eventual-delivery bound this adversary is granted, for a committee of `n` (default:
    /// the network's, `40·n²` deliveries). Still finite: every message is delivered.
    fn delay_bound(&self, n: usize) -> Option<u64> {
        let _ = n;
        None
    }

    /// How many times the scenario's default workload this adversary needs to show its effect
    /// (one that makes a replica lag many epochs needs many epochs of work).
    fn workload_scale(&self) -> usize {
        1
    }

    /// Resets an honest replica's peer links before the next delivery, as a restart of its
    /// gateway would: every message in flight to it is lost, and each peer re-sends what it
    /// sent since its last checkpoint (what the consensus service re-sends when its gateway
    /// link comes back). Older messages are gone for good; the replica must catch up.
    fn reset_links(&mut self, _ctx: &mut Ctx<'_>) -> Option<NodeId> {
        None
    }

    /// Fires an honest replica's stall timer before the next delivery (a host's timer can fire
    /// whenever progress is slow, not only when it has stopped): `Input::Stalled`, which asks
    /// for catch-up if f+1 peers are ahead.
    fn stall(&mut self, _ctx: &mut Ctx<'_>) -> Option<NodeId> {
        None
    }

    /// Whether faulty replicas receive client transactions (and so propose them).
    fn faulty_get_inputs(&self) -> bool {
        true
    }

    /// Whether the faulty replicas should be the lowest-numbered ones. Optimistic share
    /// combination uses the lowest-numbered shares first, so share-corrupting adversaries pick
    /// low ids to make sure their shares are actually used (and so detected).
    fn wants_low_ids(&self) -> bool {
        false
    }

    /// Whether this adversary's deviation is one an honest replica can detect and attribute,
    /// so that a suite of runs must record at least one fault against a faulty replica (FLT-2).
    fn detectable(&self, params: &beat_core::Params) -> bool {
        let _ = params;
        false
    }
}

/// Picks uniformly at random among `len` messages (the default schedule).
pub fn random_pick(len: usize, rng: &mut ChaCha20Rng) -> usize {
    use rand_core::Rng;
    (rng.next_u64() % len.max(1) as u64) as usize
}
