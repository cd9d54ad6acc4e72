//! The sender-side queue that makes a bounded receive window lossless.
//!
//! A replica ignores epoch messages more than `max_future_epochs` ahead of its own epoch, to bound
//! memory (protocol reference, pitfall 8). The asynchronous model, though, promises that every
//! honest message is eventually delivered, and a replica that is behind still needs those
//! messages later (fedimint issue 1080). The fix (hbbft's `SenderQueue`) is on the sending side:
//! hold a message back until the recipient announces (`EpochStarted`) an epoch close enough to
//! accept it. Messages for epochs the recipient has already left are dropped — it will never
//! need them.
//!
//! A recipient that has left an epoch still relays that epoch's binary-agreement votes for
//! `catch_up_lag` epochs (rule R1, module `aba`), so BVAL votes for those epochs still go to it;
//! everything else for an epoch the recipient has left is dropped.
//!
//! A recipient can fall arbitrarily far behind (it crashed, or was partitioned). The queue keeps
//! messages for at most `max_deferred_epochs` beyond the recipient's epoch and drops the rest:
//! that replica will catch up from f+1 committed batches instead (module `node::catch_up`), so
//! memory stays bounded.

use std::collections::BTreeMap;

use beat_types::{Committee, Epoch, NodeId};

use crate::{Message, Outgoing, Target};

/// Per-peer deferral of outgoing messages.
#[derive(Debug)]
pub struct SenderQueue {
    our_id: NodeId,
    committee: Committee,
    window: u64,
    max_deferred_epochs: u64,
    relay_epochs: u64,
    peer_epochs: BTreeMap<NodeId, Epoch>,
    deferred: BTreeMap<NodeId, BTreeMap<Epoch, Vec<Message>>>,
    deferred_count: usize,
}

impl SenderQueue {
    /// Creates the queue of replica `our_id`. `window` must equal the recipients'
    /// `max_future_epochs`.
    pub fn new(
        our_id: NodeId,
        committee: Committee,
        window: u64,
        max_deferred_epochs: u64,
    ) -> Self {
        Self {
            our_id,
            committee,
            window,
            max_deferred_epochs: max_deferred_epochs.max(window),
            relay_epochs: 0,
            peer_epochs: BTreeMap::new(),
            deferred: BTreeMap::new(),
            deferred_count: 0,
        }
    }

    /// The queue for replicas running with `params`: the window is `max_future_epochs`, votes
    /// for left epochs go out for `catch_up_lag` epochs (R1), and messages are held back for up
    /// to [`Self::DEFERRED_BEYOND_WINDOW`] epochs beyond the window.
    pub fn for_params(our_id: NodeId, committee: Committee, params: &crate::Params) -> Self {
        let window = params.max_future_epochs;
        let mut queue = Self::new(
            our_id,
            committee,
            window,
            window + Self::DEFERRED_BEYOND_WINDOW,
        );
        queue.relay_epochs = params.catch_up_lag;
        queue
    }

    /// How many epochs beyond a recipient's window messages are held back for it; a recipient
    /// further behind catches up from committed batches instead.
    pub const DEFERRED_BEYOND_WINDOW: u64 = 64;

    /// After a restart, assumes every peer is at least at `epoch` (the replica's own epoch).
    ///
    /// The queue's knowledge of peers is lost with the process. Assuming peers are still at
    /// epoch 0 would hold every message back until each peer announces its next epoch — which
    /// it may be waiting on this replica for. Assuming they are where this replica is can at
    /// worst send a message to a peer more than the window behind, which drops it; such a peer
    /// recovers through catch-up.
    pub fn assume_peers_at(&mut self, epoch: Epoch) {
        for peer in self.committee.members().filter(|p| *p != self.our_id) {
            let known = self.peer_epochs.entry(peer).or_default();
            *known = (*known).max(epoch);
        }
    }

    /// Messages currently held back.
    pub fn deferred_len(&self) -> usize {
        self.deferred_count
    }

    /// The epoch `peer` last announced.
    pub fn peer_epoch(&self, peer: NodeId) -> Epoch {
        self.peer_epochs.get(&peer).copied().unwrap_or_default()
    }

    /// Expands targets and returns what can be sent now, in order; the rest is held back.
    pub fn outgoing(&mut self, messages: Vec<Outgoing<Message>>) -> Vec<(NodeId, Message)> {
        let mut ready = Vec::new();
        for out in messages {
            match out.target {
                Target::Node(to) => self.route(to, out.message, &mut ready),
                Target::All => {
                    let peers: Vec<NodeId> = self
                        .committee
                        .members()
                        .filter(|p| *p != self.our_id)
                        .collect();
                    for to in peers {
                        self.route(to, out.message.clone(), &mut ready);
                    }
                }
            }
        }
        ready
    }

    /// Observes an incoming message; an `EpochStarted` from `from` may release held messages.
    pub fn incoming(&mut self, from: NodeId, message: &Message) -> Vec<(NodeId, Message)> {
        let Message::EpochStarted(epoch) = message else {
            return Vec::new();
        };
        let known = self.peer_epochs.entry(from).or_default();
        if *epoch <= *known {
            return Vec::new();
        }
        *known = *epoch;
        let mut ready = Vec::new();
        let Some(held) = self.deferred.get_mut(&from) else {
            return ready;
        };
        // Drop what the peer no longer needs, release what it now accepts.
        let keep = held.split_off(epoch);
        self.deferred_count -= held.values().map(Vec::len).sum::<usize>();
        *held = keep;
        let limit = epoch.saturating_add(self.window);
        let later = held.split_off(&limit.next());
        for (_, msgs) in std::mem::replace(held, later) {
            self.deferred_count -= msgs.len();
            ready.extend(msgs.into_iter().map(|m| (from, m)));
        }
        ready
    }

    fn route(&mut self, to: NodeId, message: Message, ready: &mut Vec<(NodeId, Message)>) {
        let Some(epoch) = message.epoch() else {
            ready.push((to, message));
            return;
        };
        let peer = self.peer_epoch(to);
        if epoch < peer {
            // R1: the recipient left `epoch` but still relays its agreement votes.
            if peer.distance_from(epoch) <= self.relay_epochs && message.is_agreement_vote() {
                ready.push((to, message));
            }
            return;
        }
        let ahead = epoch.distance_from(peer);
        if ahead <= self.window {
            ready.push((to, message));
        } else if ahead <= self.max_deferred_epochs {
            self.deferred
                .entry(to)
                .or_default()
                .entry(epoch)
                .or_default()
                .push(message);
            self.deferred_count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(e: u64) -> Message {
        Message::CatchUpRequest {
            from: Epoch(e),
            count: 1,
        }
    }

    fn epoch_msg(e: u64) -> Message {
        Message::Epoch {
            epoch: Epoch(e),
            message: crate::epoch::EpochMessage::DecryptionShares(vec![]),
        }
    }

    #[test]
    fn holds_back_far_future_messages_and_releases_them_in_order() {
        let c = Committee::new(4).unwrap();
        let mut q = SenderQueue::new(NodeId(0), c, 2, 10);
        let out = q.outgoing(vec![
            Outgoing {
                target: Target::Node(NodeId(1)),
                message: epoch_msg(1),
            },
            Outgoing {
                target: Target::Node(NodeId(1)),
                message: epoch_msg(4),
            },
            Outgoing {
                target: Target::Node(NodeId(1)),
                message: epoch_msg(5),
            },
            Outgoing {
                target: Target::Node(NodeId(1)),
                message: epoch_msg(20),
            },
            Outgoing {
                target: Target::Node(NodeId(1)),
                message: msg(99),
            },
        ]);
        assert_eq!(out.len(), 2, "epoch 1 and the control message go now");
        assert_eq!(
            q.deferred_len(),
            2,
            "epochs 4 and 5 wait; 20 is beyond the deferral bound"
        );
        assert!(
            q.incoming(NodeId(1), &Message::EpochStarted(Epoch(1)))
                .is_empty()
        );
        let released = q.incoming(NodeId(1), &Message::EpochStarted(Epoch(2)));
        assert_eq!(released, vec![(NodeId(1), epoch_msg(4))]);
        let released = q.incoming(NodeId(1), &Message::EpochStarted(Epoch(6)));
        assert!(
            released.is_empty(),
            "epoch 5 is behind the peer now and dropped"
        );
        assert_eq!(q.deferred_len(), 0);
        // Stale announcements change nothing; messages for past epochs are not sent.
        assert!(
            q.incoming(NodeId(1), &Message::EpochStarted(Epoch(3)))
                .is_empty()
        );
        assert!(
            q.outgoing(vec![Outgoing {
                target: Target::Node(NodeId(1)),
                message: epoch_msg(5)
            }])
            .is_empty()
        );
    }

    fn bval_msg(e: u64) -> Message {
        Message::Epoch {
            epoch: Epoch(e),
            message: crate::epoch::EpochMessage::Subset(crate::acs::SubsetMessage::Agreement {
                proposer: NodeId(3),
                message: crate::aba::Message::BVal {
                    round: 0,
                    value: true,
                },
            }),
        }
    }

    /// R1: a peer that left an epoch still relays its BVAL votes for `catch_up_lag` epochs, so
    /// they still go to it; nothing else for a left epoch does.
    #[test]
    fn votes_for_left_epochs_still_go_out_within_the_relay_span() {
        let c = Committee::new(4).unwrap();
        let params = crate::Params {
            catch_up_lag: 2,
            ..crate::Params::default()
        };
        let mut q = SenderQueue::for_params(NodeId(0), c, &params);
        let _ = q.incoming(NodeId(1), &Message::EpochStarted(Epoch(10)));
        let send = |q: &mut SenderQueue, m: Message| {
            q.outgoing(vec![Outgoing {
                target: Target::Node(NodeId(1)),
                message: m,
            }])
            .len()
        };
        assert_eq!(send(&mut q, bval_msg(9)), 1);
        assert_eq!(send(&mut q, bval_msg(8)), 1);
        assert_eq!(send(&mut q, bval_msg(7)), 0, "beyond the relay span");
        assert_eq!(send(&mut q, epoch_msg(9)), 0, "only votes are still needed");
    }

    #[test]
    fn broadcasts_expand_to_every_peer() {
        let c = Committee::new(4).unwrap();
        let mut q = SenderQueue::new(NodeId(2), c, 3, 10);
        let out = q.outgoing(vec![Outgoing {
            target: Target::All,
            message: epoch_msg(0),
        }]);
        let to: Vec<u32> = out.iter().map(|(p, _)| p.0).collect();
        assert_eq!(to, vec![0, 1, 3]);
    }
}
