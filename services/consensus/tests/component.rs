//! The consensus component without actix or sockets: four replicas with real stores exchange
//! messages in-process; one is killed and reopened from its store.
#![allow(clippy::unwrap_used)]

use std::{collections::VecDeque, path::PathBuf};

use beat_consensus::{
    component::{Admission, ClientKey, Component, Effects, Limits, SubmitError},
    convert,
    store::Store,
};
use beat_core::{
    Config, Content, Delivery, Params, PublicKeys, Reply, Request, broadcast::BroadcastConfig,
    codec::decode_transactions,
};
use beat_crypto::{
    avid_fp::{Fpcc, Fragment},
    dealer::{ReplicaSecrets, deal},
};
use beat_types::{Committee, NodeId, Transaction, Variant};
use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Cluster {
    dirs: Vec<PathBuf>,
    config: Vec<Config>,
    secrets: Vec<ReplicaSecrets>,
    keys: PublicKeys,
    nodes: Vec<Option<Component>>,
    queue: VecDeque<(NodeId, NodeId, Bytes)>,
    sent: Vec<Vec<Bytes>>,
}

fn limits(checkpoint_every: u64) -> Limits {
    Limits {
        max_payload_bytes: 16 << 20,
        max_submit: 100,
        checkpoint_every,
        pipelining: true,
        max_pending_per_source: 0,
    }
}

impl Cluster {
    fn new(name: &str, variant: Variant) -> Self {
        Self::with_checkpoints(name, variant, 1)
    }

    fn with_checkpoints(name: &str, variant: Variant, checkpoint_every: u64) -> Self {
        let params = Params {
            variant,
            batch_size: 8,
            ..Params::default()
        };
        Self::with_params(name, params, checkpoint_every)
    }

    fn with_params(name: &str, params: Params, checkpoint_every: u64) -> Self {
        Self::with_limits(name, params, limits(checkpoint_every))
    }

    fn with_limits(name: &str, params: Params, limits: Limits) -> Self {
        let c = Committee::new(4).unwrap();
        let (keys, secrets) = deal(c, &mut ChaCha20Rng::seed_from_u64(5)).unwrap();
        let public = PublicKeys {
            coin: std::sync::Arc::new(keys.coin.clone()),
            encryption: std::sync::Arc::new(keys.encryption),
        };
        let mut cluster = Self {
            dirs: Vec::new(),
            config: Vec::new(),
            secrets,
            keys: public.clone(),
            nodes: Vec::new(),
            queue: VecDeque::new(),
            sent: vec![Vec::new(); 4],
        };
        for i in 0..4 {
            let dir = std::env::temp_dir()
                .join(format!("beat-consensus-{name}-{}-{i}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let config = Config {
                our_id: NodeId(i),
                committee: c,
                committee_digest: COMMITTEE_DIGEST,
                keys: public.clone(),
                params: params.clone(),
            };
            let (node, fx) =
                Component::open(config.clone(), Store::open(&dir).unwrap(), limits.clone())
                    .unwrap();
            cluster.dirs.push(dir);
            cluster.config.push(config);
            cluster.nodes.push(Some(node));
            cluster.effects(NodeId(i), fx);
        }
        cluster
    }

    /// Performs effects: flush, route messages, answer keystore requests.
    fn effects(&mut self, id: NodeId, fx: Effects) {
        let node = self.nodes[id.index()].as_mut().unwrap();
        node.flush().unwrap();
        for (to, payload) in fx.messages {
            self.sent[id.index()].push(payload.clone());
            self.queue.push_back((id, to, payload));
        }
        assert!(
            fx.faults.is_empty(),
            "honest replicas report no faults: {:?}",
            fx.faults
        );
        for request in fx.requests {
            let s = &self.secrets[id.index()];
            let reply = match request {
                Request::CoinShare(cid) => Reply::CoinShare {
                    id: cid,
                    share: s.coin.sign(&cid.message()),
                },
                Request::DecryptionShares { epoch, items } => Reply::DecryptionShares {
                    epoch,
                    shares: items
                        .iter()
                        .map(|it| {
                            (
                                it.slot,
                                s.decryption
                                    .header_decryption_share(
                                        &self.keys.encryption,
                                        &it.header,
                                        &it.expected_label,
                                    )
                                    .unwrap(),
                            )
                        })
                        .collect(),
                },
                Request::CommitShare(statement) => Reply::CommitShare {
                    epoch: statement.epoch,
                    share: s.coin.sign(&statement.message()),
                },
                Request::ReadCommitted { .. } => unreachable!("served by the component"),
            };
            let fx = self.nodes[id.index()]
                .as_mut()
                .unwrap()
                .reply(reply)
                .unwrap();
            self.effects(id, fx);
        }
    }

    fn run(&mut self, max: usize) {
        let mut steps = 0;
        while let Some((from, to, payload)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < max, "livelock");
            let Some(node) = self.nodes[to.index()].as_mut() else {
                continue;
            };
            let fx = node.inbound(from, &payload).unwrap();
            self.effects(to, fx);
        }
    }

    fn submit(&mut self, id: usize, txs: Vec<Transaction>) -> Vec<Admission> {
        let (receipts, fx) = self.nodes[id].as_mut().unwrap().submit(txs).unwrap();
        self.effects(NodeId(id as u32), fx);
        receipts.into_iter().map(|(_, a)| a).collect()
    }

    fn committed(&self, id: usize) -> Vec<beat_core::Batch> {
        self.stored(id).into_iter().map(|b| b.batch).collect()
    }

    fn stored(&self, id: usize) -> Vec<beat_core::CommittedBatch> {
        let store = self.nodes[id].as_ref().unwrap().store();
        store.batches_from(beat_types::Epoch(0), 1000).unwrap()
    }

    /// Every stored batch of replica `id` carries a certificate that verifies against it and
    /// continues the chain from genesis.
    fn assert_certified(&self, id: usize) {
        let mut previous = beat_core::CommitStatement::genesis(COMMITTEE_DIGEST);
        for entry in self.stored(id) {
            let certificate = entry.certificate.unwrap_or_else(|| {
                panic!(
                    "replica {id} stored epoch {} uncertified",
                    entry.batch.epoch
                )
            });
            previous = certificate
                .verify_batch(
                    COMMITTEE_DIGEST,
                    &self.keys.coin,
                    &entry.batch,
                    Some(previous),
                )
                .unwrap();
        }
    }
}

const COMMITTEE_DIGEST: beat_crypto::Digest = beat_crypto::Digest([3; 32]);

fn txs(prefix: &str, n: usize) -> Vec<Transaction> {
    (0..n)
        .map(|i| Transaction::new(format!("{prefix}-{i}").into_bytes()))
        .collect()
}

/// One client source gets at most its quota of the pending buffer; another source, and
/// unattributed submissions, are not held back by it; duplicates do not count; and once its
/// transactions commit the source may submit again.
#[test]
fn one_source_gets_only_its_quota_of_the_pending_buffer() {
    let params = Params {
        variant: Variant::Beat0,
        batch_size: 8,
        ..Params::default()
    };
    let mut c = Cluster::with_limits(
        "quota",
        params,
        Limits {
            max_pending_per_source: 5,
            ..limits(1)
        },
    );
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let a = Some(ClientKey::from(ip("10.0.0.1")));
    let b = Some(ClientKey::from(ip("10.0.0.2")));
    let mut effects = Vec::new();
    {
        let node = c.nodes[0].as_mut().unwrap();
        effects.push(node.submit_from(a.clone(), txs("a", 5)).unwrap().1);
        match node.submit_from(a.clone(), txs("a-more", 1)) {
            Err(SubmitError::QuotaExceeded {
                pending: 5,
                quota: 5,
            }) => {}
            other => panic!("a sixth pending transaction from one source: {other:?}"),
        }
        // Resubmitting the same five is no new demand: duplicates, not refused.
        let (receipts, fx) = node.submit_from(a.clone(), txs("a", 5)).unwrap();
        assert!(receipts.iter().all(|(_, r)| *r == Admission::Duplicate));
        effects.push(fx);
        effects.push(node.submit_from(b, txs("b", 5)).unwrap().1);
        effects.push(node.submit(txs("unattributed", 20)).unwrap().1);
    }
    for fx in effects {
        c.effects(NodeId(0), fx);
    }
    c.run(1_000_000);
    let committed: usize = c.committed(0).iter().map(|b| b.transaction_count()).sum();
    assert_eq!(committed, 30);
    let node = c.nodes[0].as_mut().unwrap();
    let (receipts, _) = node.submit_from(a, txs("a-later", 5)).unwrap();
    assert!(receipts.iter().all(|(_, r)| *r == Admission::Accepted));
}

#[test]
fn replicas_commit_identical_batches_and_store_them() {
    let mut c = Cluster::new("commit", Variant::Beat0);
    for i in 0..4 {
        assert!(
            c.submit(i, txs("t", 10))
                .iter()
                .all(|a| *a == Admission::Accepted)
        );
    }
    c.run(1_000_000);
    let reference = c.committed(0);
    assert!(!reference.is_empty());
    let all: usize = reference.iter().map(|b| b.transaction_count()).sum();
    assert_eq!(all, 10);
    for i in 0..4 {
        assert_eq!(c.committed(i), reference);
        c.assert_certified(i);
    }
    // Resubmitting a committed transaction is a duplicate.
    assert_eq!(c.submit(1, txs("t", 1)), vec![Admission::Duplicate]);
    // A catch-up answer is cut to a byte budget, but never below one batch.
    let store = c.nodes[0].as_ref().unwrap().store();
    let zero = beat_types::Epoch(0);
    let batches = |max| -> Vec<beat_core::Batch> {
        store
            .batches_within(zero, 1000, max)
            .unwrap()
            .into_iter()
            .map(|b| b.batch)
            .collect()
    };
    assert_eq!(batches(1), reference[..1]);
    assert_eq!(batches(usize::MAX), reference);
}

#[test]
fn a_killed_replica_recovers_from_its_store_without_equivocating() {
    for (checkpoint_every, deliveries) in [(1, 150), (3, 150), (3, 700), (4, 1_100)] {
        crash_and_recover(checkpoint_every, deliveries);
    }
}

/// Kills replica 2 after `deliveries` message deliveries, with a checkpoint saved every
/// `checkpoint_every` epochs (so replay starts from the store's last checkpoint, or from the
/// first event when none was saved yet).
fn crash_and_recover(checkpoint_every: u64, deliveries: usize) {
    let name = format!("crash-{checkpoint_every}-{deliveries}");
    let mut c = Cluster::with_checkpoints(&name, Variant::Beat0, checkpoint_every);
    for i in 0..4 {
        c.submit(i, txs("a", 12));
    }
    // Deliver part of the traffic, then kill replica 2 with messages still in flight.
    for _ in 0..deliveries {
        let Some((from, to, payload)) = c.queue.pop_front() else {
            break;
        };
        let fx = c.nodes[to.index()]
            .as_mut()
            .unwrap()
            .inbound(from, &payload)
            .unwrap();
        c.effects(to, fx);
    }
    let epoch_before = c.nodes[2].as_ref().unwrap().epoch();
    let sent_before: Vec<Bytes> = c.sent[2].clone();
    c.nodes[2] = None;
    // Reopen from the same store: the replay must reproduce only messages it had sent.
    let (node, fx) = Component::open(
        c.config[2].clone(),
        Store::open(&c.dirs[2]).unwrap(),
        limits(checkpoint_every),
    )
    .unwrap();
    assert_eq!(node.epoch(), epoch_before, "{name}");
    assert!(
        !fx.messages.is_empty(),
        "the replay re-sends the replica's recent messages"
    );
    for (_, payload) in &fx.messages {
        assert!(
            sent_before.contains(payload),
            "a recovered replica re-sends only what it sent before"
        );
    }
    c.nodes[2] = Some(node);
    c.effects(NodeId(2), fx);
    // Everything commits everywhere, identically.
    c.run(1_000_000);
    for i in 0..4 {
        c.submit(i, txs("b", 4));
    }
    c.run(1_000_000);
    let reference = c.committed(0);
    for i in 1..4 {
        assert_eq!(c.committed(i), reference, "replica {i}");
    }
    let all: usize = reference.iter().map(|b| b.transaction_count()).sum();
    assert_eq!(all, 16);
}

#[test]
fn submissions_are_validated_all_or_nothing() {
    let mut c = Cluster::new("submit", Variant::Beat1);
    let node = c.nodes[0].as_mut().unwrap();
    let mut batch = txs("x", 3);
    batch.push(Transaction::new(Vec::new()));
    match node.submit(batch) {
        Err(SubmitError::Invalid { index: 3, .. }) => {}
        other => panic!("expected an invalid transaction at index 3, got {other:?}"),
    }
    assert_eq!(node.node().buffer_len(), 0);
    assert!(matches!(
        node.submit(txs("y", 101)),
        Err(SubmitError::TooMany { .. })
    ));
    // BEAT2 needs client ciphertexts.
    let mut c2 = Cluster::new("submit2", Variant::Beat2);
    assert!(matches!(
        c2.nodes[0].as_mut().unwrap().submit(txs("plain", 1)),
        Err(SubmitError::Invalid { .. })
    ));
}

#[test]
fn a_corrupt_payload_is_a_fault_not_a_crash() {
    let mut c = Cluster::new("corrupt", Variant::Beat0);
    let fx = c.nodes[0]
        .as_mut()
        .unwrap()
        .inbound(NodeId(1), &[1, 0xff, 0xff, 0xff])
        .unwrap();
    assert_eq!(fx.faults.len(), 1);
    assert_eq!(fx.malformed.len(), 1);
    let fx = c.nodes[0]
        .as_mut()
        .unwrap()
        .inbound(NodeId(1), &[9])
        .unwrap();
    assert_eq!(fx.faults.len(), 1);
}

/// BEAT4 as BFT storage through the `ReadFragment` path: each replica serves every fragment it
/// holds of a committed contribution — the local parities too, which BEAT4 partial readers
/// need for repair — and a client gets the same contribution from a full read and from every
/// group's partial read, with and without repair. With commitments-only delivery the replicas
/// also go idle once everything is stored.
#[test]
fn read_fragment_serves_what_full_and_partial_readers_need() {
    let params = Params {
        variant: Variant::Beat4,
        batch_size: 8,
        delivery: Delivery::CommitmentsOnly,
        ..Params::default()
    };
    let mut c = Cluster::with_params("read-fragment", params.clone(), 1);
    for i in 0..4 {
        c.submit(i, txs("stored", 6));
    }
    c.run(1_000_000);
    let code = BroadcastConfig::new(Committee::new(4).unwrap(), &params).code;
    let batches = c.committed(0);
    assert!(!batches.is_empty());
    for batch in &batches {
        for contribution in &batch.contributions {
            let Content::Stored(commitment) = &contribution.content else {
                panic!(
                    "expected a stored commitment, got {:?}",
                    contribution.content
                );
            };
            let mut fpcc: Option<Fpcc> = None;
            let mut fragments = Vec::new();
            for node in c.nodes.iter().flatten() {
                let stored = node
                    .store()
                    .fragments(batch.epoch, contribution.proposer)
                    .unwrap()
                    .expect("every replica stores every committed dispersal");
                let Some(response) = convert::read_fragment_response(&stored) else {
                    continue;
                };
                let served: Fpcc = postcard::from_bytes(&response.cross_checksum).unwrap();
                assert_eq!(served.digest(), commitment.commitment);
                assert_eq!(response.index, response.fragments[0].index);
                assert_eq!(response.fragment, response.fragments[0].data);
                for f in response.fragments {
                    let fragment = Fragment {
                        index: f.index,
                        bytes: f.data.to_vec(),
                    };
                    code.verify_fragment(&served, &fragment).unwrap();
                    fragments.push(fragment);
                }
                fpcc = Some(served);
            }
            let fpcc = fpcc.expect("some replica serves fragments");
            let full = code.decode(&fpcc, &fragments).unwrap();
            let txs = decode_transactions(&full, 100, 1 << 20).unwrap();
            assert!(txs.iter().all(|t| t.as_bytes().starts_with(b"stored-")));
            for group in 0..code.group_count() {
                let parity = code.local_parity_index(group).unwrap();
                assert!(
                    fragments.iter().any(|f| f.index == parity),
                    "local parity {parity} is served"
                );
                let read = code.read_group(&fpcc, group, &fragments).unwrap();
                let range = read.byte_range.start as usize..read.byte_range.end as usize;
                assert_eq!(read.bytes, full[range]);
                for member in code.group_fragments(group) {
                    let without: Vec<Fragment> = fragments
                        .iter()
                        .filter(|f| f.index != member)
                        .cloned()
                        .collect();
                    let repaired = code.read_group(&fpcc, group, &without).unwrap();
                    assert_eq!(repaired.repaired, Some(member));
                    assert_eq!(repaired.bytes, read.bytes);
                }
            }
        }
    }
}

/// A peer's traffic that the core would ignore — epochs past the window, epochs long gone,
/// announcements of nothing new, catch-up requests for epochs not committed here, messages
/// claiming to come from outside the committee — is dropped before the write-ahead log, so a
/// faulty peer cannot fill the disk between checkpoints with it; what is relevant is logged.
#[test]
fn traffic_the_core_would_ignore_is_not_logged() {
    use beat_core::Message;
    use beat_types::Epoch;
    let mut c = Cluster::new("relevance", Variant::Beat0);
    for i in 0..4 {
        c.submit(i, txs("r", 4));
    }
    // A genuine epoch-0 message from replica 1 to replica 0.
    let (from, _, payload) = c
        .queue
        .iter()
        .find(|(from, to, p)| {
            *from == NodeId(1)
                && *to == NodeId(0)
                && matches!(
                    convert_wire(p),
                    Message::Epoch { epoch, .. } if epoch == Epoch(0)
                )
        })
        .cloned()
        .unwrap();
    let Message::Epoch { message, .. } = convert_wire(&payload) else {
        unreachable!()
    };
    let node = c.nodes[0].as_mut().unwrap();
    let seq = node.store().next_seq();
    let send = |node: &mut Component, sender: NodeId, message: &Message| {
        node.inbound(sender, &beat_consensus::wire::encode(message))
            .unwrap()
    };
    // An announcement is news once; the same or an older one after it is not.
    let fresh = send(node, from, &Message::EpochStarted(Epoch(1)));
    assert_eq!(fresh.irrelevant, 0);
    assert_eq!(node.store().next_seq(), seq + 1);
    let seq = seq + 1;
    let irrelevant = [
        (from, Message::EpochStarted(Epoch(1))),
        (from, Message::EpochStarted(Epoch(0))),
        (
            from,
            Message::Epoch {
                epoch: Epoch(1_000_000),
                message: message.clone(),
            },
        ),
        (
            from,
            Message::CatchUpRequest {
                from: Epoch(5),
                count: 10,
            },
        ),
        (
            NodeId(9),
            Message::Epoch {
                epoch: Epoch(0),
                message: message.clone(),
            },
        ),
        (
            NodeId(0),
            Message::Epoch {
                epoch: Epoch(0),
                message,
            },
        ),
    ];
    for (sender, message) in &irrelevant {
        let fx = send(node, *sender, message);
        assert_eq!(fx.irrelevant, 1, "{message:?}");
        assert!(
            fx.faults.is_empty() && fx.messages.is_empty(),
            "{message:?}"
        );
        assert_eq!(node.store().next_seq(), seq, "{message:?} was logged");
    }
    // The genuine message is logged and handled.
    let fx = node.inbound(from, &payload).unwrap();
    assert_eq!(fx.irrelevant, 0);
    assert_eq!(node.store().next_seq(), seq + 1);
}

fn convert_wire(payload: &[u8]) -> beat_core::Message {
    beat_consensus::wire::decode(payload, 16 << 20).unwrap()
}

/// BEAT2 admission: a duplicate (by client label) is answered without verifying anything, a
/// new transaction is verified once, and a forged one under a new label is refused. What was
/// accepted commits once, as its plaintext.
#[test]
fn beat2_admission_verifies_new_transactions_after_the_duplicate_check() {
    use beat_core::client::seal_client_transaction;
    use beat_crypto::identity::IdentityKeypair;
    let mut c = Cluster::new("admission2", Variant::Beat2);
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let client = IdentityKeypair::generate(&mut rng);
    let seal = |request: u64, plain: &[u8], rng: &mut ChaCha20Rng| {
        seal_client_transaction(&client, &c.keys.encryption, request, plain, rng).unwrap()
    };
    let genuine = seal(0, b"genuine", &mut rng);
    // The same label with a broken signature: only a duplicate check can answer it cheaply.
    let mut forged_duplicate = genuine.as_bytes().to_vec();
    forged_duplicate[1] ^= 1;
    let mut forged_new = seal(1, b"forged", &mut rng).as_bytes().to_vec();
    forged_new[1] ^= 1;
    assert_eq!(
        c.submit(0, vec![genuine.clone()]),
        vec![Admission::Accepted]
    );
    assert_eq!(
        c.submit(0, vec![genuine, Transaction::new(forged_duplicate)]),
        vec![Admission::Duplicate, Admission::Duplicate]
    );
    match c.nodes[0]
        .as_mut()
        .unwrap()
        .submit(vec![Transaction::new(forged_new)])
    {
        Err(SubmitError::Invalid { index: 0, reason }) => {
            assert!(reason.contains("signature"), "{reason}");
        }
        other => panic!("a forged transaction under a new label was admitted: {other:?}"),
    }
    assert_eq!(c.nodes[0].as_ref().unwrap().node().buffer_len(), 1);
    c.run(100_000);
    let committed: Vec<Transaction> = c
        .committed(0)
        .iter()
        .flat_map(|b| b.transactions().cloned().collect::<Vec<_>>())
        .collect();
    assert_eq!(committed, vec![Transaction::new(b"genuine".to_vec())]);
}
