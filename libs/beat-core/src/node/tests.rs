use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use beat_crypto::{bls, identity::IdentityKeypair, tdh2};
use beat_types::{Committee, Epoch, NodeId, Transaction, Variant};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::{
    Batch, Config, FaultKind, Params, PublicKeys, Reply, Request, Step,
    acs::SubsetMessage,
    bracha,
    broadcast::BroadcastMessage,
    buffer::TransactionError,
    client::{
        ClientTransactionError, EnvelopeKind, client_label, seal_client_bundle,
        seal_client_transaction, sign_client_ciphertext, sign_envelope,
    },
    codec::encode_transactions,
    epoch::EpochMessage,
    testing::{Node, TestNet},
};

const COMMITTEE_DIGEST: beat_crypto::Digest = beat_crypto::Digest([7; 32]);

/// Some commit-statement message to sign (its content does not matter where it is used).
fn cert_message() -> bls::HashedMessage {
    crate::CommitStatement {
        committee: COMMITTEE_DIGEST,
        epoch: Epoch(0),
        batch: beat_crypto::Digest([1; 32]),
        previous: beat_crypto::Digest([2; 32]),
    }
    .message()
}

struct Replica {
    node: BeatNode,
    bls: bls::SecretKeyShare,
    tdh2: tdh2::SecretKeyShare,
    keys: PublicKeys,
    log: Vec<Batch>,
    certificates: BTreeMap<Epoch, crate::CommitCertificate>,
    /// Commit-share requests are held back (answered by the test) when set.
    hold_commit_shares: bool,
    held_commit_shares: Vec<Request>,
    stored: Vec<crate::epoch::StoredFragments>,
    /// Keystore requests for decryption shares are held back (answered by the test) when set.
    hold_decryption: bool,
    held: Vec<Request>,
    checkpoints: Vec<Checkpoint>,
    /// The most certificates one step produced (C3 checks ready epochs together).
    most_certified_at_once: usize,
    /// Epochs this replica started early (P1), seen after each of its steps.
    started_early: BTreeSet<Epoch>,
}

impl Replica {
    fn record(&mut self, step: NodeStep) -> NodeStep {
        let at_once = step
            .outputs
            .iter()
            .filter(|o| matches!(o, Output::Certified(_)))
            .count();
        self.most_certified_at_once = self.most_certified_at_once.max(at_once);
        if let Some(next) = self.node.started_next() {
            self.started_early.insert(next);
        }
        for out in &step.outputs {
            match out {
                Output::Committed { batch, .. } => self.log.push(batch.clone()),
                Output::Certified(c) => {
                    assert!(
                        self.certificates.insert(c.statement.epoch, *c).is_none(),
                        "epoch {} certified twice",
                        c.statement.epoch
                    );
                }
                Output::Stored { fragments, .. } => self.stored.extend(fragments.iter().cloned()),
                Output::Checkpoint(c) => self.checkpoints.push((**c).clone()),
            }
        }
        step
    }
}

impl Node for Replica {
    type Message = Message;
    type Output = Output;
    fn handle(&mut self, from: NodeId, msg: Message) -> NodeStep {
        let step = self.node.handle_message(from, msg).unwrap();
        self.record(step)
    }
    fn serve(&mut self, request: Request) -> NodeStep {
        if self.hold_decryption && matches!(request, Request::DecryptionShares { .. }) {
            self.held.push(request);
            return Step::default();
        }
        if self.hold_commit_shares && matches!(request, Request::CommitShare(_)) {
            self.held_commit_shares.push(request);
            return Step::default();
        }
        let reply = self.answer(request);
        let step = self.node.handle_reply(reply).unwrap();
        self.record(step)
    }
}

impl Replica {
    fn answer(&self, request: Request) -> Reply {
        match request {
            Request::CoinShare(id) => Reply::CoinShare {
                id,
                share: self.bls.sign(&id.message()),
            },
            Request::DecryptionShares { epoch, items } => Reply::DecryptionShares {
                epoch,
                shares: items
                    .iter()
                    .filter_map(|it| {
                        self.tdh2
                            .header_decryption_share(
                                &self.keys.encryption,
                                &it.header,
                                &it.expected_label,
                            )
                            .ok()
                            .map(|s| (it.slot, s))
                    })
                    .collect(),
            },
            Request::CommitShare(statement) => Reply::CommitShare {
                epoch: statement.epoch,
                share: self.bls.sign(&statement.message()),
            },
            Request::ReadCommitted { peer, from, count } => Reply::Committed {
                peer,
                batches: self
                    .log
                    .iter()
                    .filter(|b| b.epoch >= from && b.epoch.0 < from.0 + u64::from(count))
                    .map(|b| crate::CommittedBatch {
                        batch: b.clone(),
                        certificate: self.certificates.get(&b.epoch).copied(),
                    })
                    .collect(),
            },
        }
    }
}

fn replicas(n: usize, params: Params, seed: u64) -> (Vec<Replica>, PublicKeys) {
    let c = Committee::new(n).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (bls_pk, bls_sk) = bls::deal(n, c.f(), &mut rng).unwrap();
    let (tdh_pk, tdh_sk) = tdh2::deal(n, c.f(), &mut rng).unwrap();
    let keys = PublicKeys {
        coin: Arc::new(bls_pk),
        encryption: Arc::new(tdh_pk),
    };
    let reps = bls_sk
        .into_iter()
        .zip(tdh_sk)
        .map(|(b, t)| {
            let id = b.holder();
            let config = Config {
                our_id: id,
                committee: c,
                committee_digest: COMMITTEE_DIGEST,
                keys: keys.clone(),
                params: params.clone(),
            };
            let mut proposal_seed = [0u8; 32];
            proposal_seed[..8].copy_from_slice(&(seed * 1000 + u64::from(id.0)).to_le_bytes());
            Replica {
                node: BeatNode::new(config, crate::ProposalSeed(proposal_seed)).unwrap(),
                bls: b,
                tdh2: t,
                keys: keys.clone(),
                log: Vec::new(),
                certificates: BTreeMap::new(),
                hold_commit_shares: false,
                held_commit_shares: Vec::new(),
                stored: Vec::new(),
                hold_decryption: false,
                held: Vec::new(),
                checkpoints: Vec::new(),
                most_certified_at_once: 0,
                started_early: BTreeSet::new(),
            }
        })
        .collect();
    (reps, keys)
}

fn params(variant: Variant, batch: usize) -> Params {
    Params {
        variant,
        batch_size: batch,
        ..Params::default()
    }
}

fn submit(net: &mut TestNet<Replica>, to: NodeId, txs: Vec<Transaction>) {
    let r = net.nodes.get_mut(&to).unwrap();
    let step = r.node.handle_input(Input::Submit(txs)).unwrap();
    let step = r.record(step);
    net.absorb(to, step);
}

fn committed(r: &Replica) -> Vec<Transaction> {
    r.log
        .iter()
        .flat_map(|b| b.transactions().cloned())
        .collect()
}

fn assert_agreement(net: &TestNet<Replica>) {
    let logs: Vec<&Vec<Batch>> = net.nodes.values().map(|r| &r.log).collect();
    let shortest = logs.iter().map(|l| l.len()).min().unwrap();
    for l in &logs {
        assert_eq!(
            &l[..shortest],
            &logs[0][..shortest],
            "agreement on every common prefix"
        );
        for (i, b) in l.iter().enumerate() {
            assert_eq!(b.epoch, Epoch(i as u64), "epochs in order without gaps");
        }
    }
    for id in net.nodes.keys() {
        assert_eq!(net.faults_against(*id), 0, "no honest replica faulted");
    }
    assert_certified(net);
}

/// Every certificate verifies against the batch it names and the history before it (CER-1);
/// once nothing is in flight, every replica certified every epoch it committed (CER-2).
fn assert_certified(net: &TestNet<Replica>) {
    for (id, r) in &net.nodes {
        let mut chain = crate::CommitStatement::genesis(COMMITTEE_DIGEST);
        for b in &r.log {
            match r.certificates.get(&b.epoch) {
                Some(c) => {
                    let link = c
                        .verify_batch(COMMITTEE_DIGEST, &r.keys.coin, b, Some(chain))
                        .unwrap_or_else(|e| panic!("replica {id}: {e}"));
                    assert_eq!(link, c.statement.link());
                }
                None => assert!(
                    !net.is_quiet(),
                    "replica {id} holds no certificate of epoch {} with nothing in flight",
                    b.epoch
                ),
            }
            chain = crate::CommitStatement::new(COMMITTEE_DIGEST, b, chain).link();
        }
        assert_eq!(r.node.chain_link(), chain, "replica {id}'s chain");
        assert!(r.certificates.len() <= r.log.len());
        if net.is_quiet() {
            assert!(r.node.uncertified_epochs().is_empty());
        }
    }
}

#[test]
fn withheld_commit_shares_hold_commits_at_the_watermark_and_release_them() {
    let p = params(Variant::Beat1, 4);
    let window = p.certify_window;
    let (mut reps, _) = replicas(4, p, 21);
    for r in &mut reps {
        r.hold_commit_shares = true;
    }
    let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), 21);
    // Enough work for many more epochs than the window.
    let all = txs("w", 40);
    for id in 0..4 {
        submit(&mut net, NodeId(id), all.clone());
    }
    net.run(5_000_000);
    for (id, r) in &net.nodes {
        assert_eq!(
            r.log.len() as u64,
            window,
            "replica {id} commits exactly the window without certificates"
        );
        assert!(r.node.is_held_for_certificates());
        assert!(r.certificates.is_empty());
        let pending: Vec<Request> = r.node.pending_requests();
        assert_eq!(
            pending
                .iter()
                .filter(|q| matches!(q, Request::CommitShare(_)))
                .count() as u64,
            window,
            "the withheld requests are pending (re-issued after a restart)"
        );
    }
    // The keystores answer: certificates form, the held epochs commit, and the rest follows.
    let ids: Vec<NodeId> = net.nodes.keys().copied().collect();
    for id in ids {
        let held = {
            let r = net.nodes.get_mut(&id).unwrap();
            r.hold_commit_shares = false;
            std::mem::take(&mut r.held_commit_shares)
        };
        for request in held {
            let step = net.nodes.get_mut(&id).unwrap().serve(request);
            net.absorb(id, step);
        }
    }
    net.run(5_000_000);
    assert_agreement(&net);
    for r in net.nodes.values() {
        assert_eq!(committed(r).len(), 40);
    }
}

#[test]
fn loaded_replicas_check_certificates_in_batches_and_certify_everything() {
    // Batches of four transactions: each replica proposes one per epoch, and 60 submitted
    // to all keep every buffer at least a proposal deep for many epochs (C3 defers).
    let p = params(Variant::Beat1, 4);
    let window = p.certify_window as usize;
    let (reps, _) = replicas(4, p, 33);
    let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), 33);
    let all = txs("load", 60);
    for id in 0..4 {
        submit(&mut net, NodeId(id), all.clone());
    }
    net.run(20_000_000);
    assert_agreement(&net);
    for (id, r) in &net.nodes {
        assert_eq!(committed(r).len(), 60);
        assert!(
            r.most_certified_at_once > 1,
            "replica {id} checked its certificates one by one under load"
        );
        assert!(r.most_certified_at_once <= window);
    }
}

#[test]
fn a_certified_batch_is_adopted_from_one_answer_and_a_forged_one_is_not() {
    let (reps, _) = replicas(4, params(Variant::Beat0, 8), 22);
    let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), 22);
    let mut laggard = net.nodes.remove(&NodeId(3)).unwrap();
    for round in 0..6 {
        for id in 0..3 {
            submit(&mut net, NodeId(id), txs(&format!("c{round}"), 4));
        }
        net.run(5_000_000);
    }
    let source = &net.nodes[&NodeId(0)];
    let epochs = source.log.len();
    assert!(epochs >= 4);
    let answer: Vec<crate::CommittedBatch> = source
        .log
        .iter()
        .map(|b| crate::CommittedBatch {
            batch: b.clone(),
            certificate: source.certificates.get(&b.epoch).copied(),
        })
        .collect();
    assert!(answer.iter().all(|e| e.certificate.is_some()));
    let ahead = Epoch(epochs as u64);
    // Two peers announce later epochs: the laggard asks both.
    let _ = laggard
        .node
        .handle_message(NodeId(0), Message::EpochStarted(ahead))
        .unwrap();
    let step = laggard
        .node
        .handle_message(NodeId(1), Message::EpochStarted(ahead))
        .unwrap();
    let asked = step
        .messages
        .iter()
        .filter(|m| matches!(m.message, Message::CatchUpRequest { .. }))
        .count();
    assert_eq!(asked, 2);
    // Peer 1 answers first with forged certificates (another epoch's signature): nothing is
    // adopted from one answer, and peer 1 is blamed.
    let mut forged = answer.clone();
    let other = forged[1].certificate.unwrap().signature;
    forged[0].certificate.as_mut().unwrap().signature = other;
    forged.truncate(1);
    let step = laggard
        .node
        .handle_message(NodeId(1), Message::CatchUpResponse(forged))
        .unwrap();
    let step = laggard.record(step);
    assert!(laggard.log.is_empty());
    assert!(
        step.faults
            .iter()
            .any(|f| f.node == NodeId(1) && f.kind == FaultKind::InvalidCertificate)
    );
    // Peer 0's genuine answer alone suffices.
    let step = laggard
        .node
        .handle_message(NodeId(0), Message::CatchUpResponse(answer))
        .unwrap();
    let step = laggard.record(step);
    assert!(step.faults.is_empty(), "{:?}", step.faults);
    assert_eq!(laggard.log, source.log);
    assert_eq!(laggard.certificates.len(), epochs);
    assert!(laggard.node.uncertified_epochs().is_empty());

    // What would change nothing is irrelevant, so a peer cannot fill the write-ahead log with
    // it: shares and certificates of certified epochs nobody asked about, far-future ones,
    // and repeats.
    let share = bls::EncodedShare::from(laggard.bls.sign(&cert_message()));
    let cert = laggard.certificates[&Epoch(0)];
    let next = laggard.node.epoch();
    let far = Epoch(next.0 + 1000);
    let share_msg = |epoch, wants| Message::CommitShare {
        epoch,
        share,
        wants,
    };
    assert!(
        !laggard
            .node
            .is_relevant(NodeId(1), &share_msg(Epoch(0), false))
    );
    assert!(!laggard.node.is_relevant(NodeId(1), &share_msg(far, true)));
    assert!(
        !laggard
            .node
            .is_relevant(NodeId(1), &Message::Certificate(cert))
    );
    let mut future = cert;
    future.statement.epoch = far;
    assert!(
        !laggard
            .node
            .is_relevant(NodeId(1), &Message::Certificate(future))
    );
    let soon = Epoch(next.0 + 1);
    assert!(laggard.node.is_relevant(NodeId(1), &share_msg(soon, false)));
    let step = laggard
        .node
        .handle_message(NodeId(1), share_msg(soon, false))
        .unwrap();
    assert!(step.is_empty());
    assert!(
        !laggard.node.is_relevant(NodeId(1), &share_msg(soon, false)),
        "a repeated early share"
    );
}

fn txs(prefix: &str, count: usize) -> Vec<Transaction> {
    (0..count)
        .map(|i| Transaction::new(format!("{prefix}-{i:04}").into_bytes()))
        .collect()
}

#[test]
fn every_submitted_transaction_is_committed_once_everywhere() {
    for variant in [
        Variant::Beat0,
        Variant::Beat1,
        Variant::Beat3,
        Variant::Beat4,
    ] {
        for (n, seed) in [(1, 1), (4, 2), (4, 3), (7, 4)] {
            let (reps, _) = replicas(n, params(variant, 40), seed);
            let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), seed);
            // Every replica gets every transaction, as clients that submit everywhere do.
            let all = txs("tx", 60);
            for id in Committee::new(n).unwrap().members() {
                submit(&mut net, id, all.clone());
            }
            net.run(5_000_000);
            assert_agreement(&net);
            for r in net.nodes.values() {
                let mut got = committed(r);
                got.sort();
                let mut want = all.clone();
                want.sort();
                assert_eq!(got, want, "{variant} n={n}: all committed exactly once");
                assert_eq!(r.node.buffer_len(), 0);
            }
        }
    }
}

/// P1–P5: replicas that pipeline (0–2, checkpointing every 3 epochs) and one that does not (3)
/// run together. The pipelined ones start epochs early, never a barrier, only once their first
/// checkpoint adopted the setting; everyone commits the same history, every transaction once.
#[test]
fn pipelined_and_unpipelined_replicas_commit_the_same_history() {
    for variant in [
        Variant::Beat0,
        Variant::Beat1,
        Variant::Beat3,
        Variant::Beat4,
    ] {
        for seed in [11, 12] {
            let (mut reps, _) = replicas(4, params(variant, 16), seed);
            for r in &mut reps[..3] {
                r.node.set_checkpoint_interval(3);
                r.node.set_pipelining(true);
                assert_eq!(r.node.pipelined_every(), None, "not before a checkpoint");
            }
            let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), seed);
            let all = txs("piped", 120);
            for id in Committee::new(4).unwrap().members() {
                submit(&mut net, id, all.clone());
            }
            net.run(20_000_000);
            assert_agreement(&net);
            for (id, r) in &net.nodes {
                let mut got = committed(r);
                got.sort();
                let mut want = all.clone();
                want.sort();
                assert_eq!(
                    got, want,
                    "{variant} seed {seed}: all committed exactly once"
                );
                assert_eq!(r.node.buffer_len(), 0);
                if id.0 < 3 {
                    assert_eq!(r.node.pipelined_every(), Some(3));
                    assert!(
                        !r.started_early.is_empty(),
                        "{variant} seed {seed}: replica {id} never started an epoch early"
                    );
                    assert!(
                        r.started_early.iter().all(|e| e.0 > 3 && e.0 % 3 != 0),
                        "{variant}: replica {id} started {:?} early (barriers: multiples of 3)",
                        r.started_early
                    );
                    for c in &r.checkpoints {
                        assert!(c.epoch.0 % 3 == 0);
                    }
                } else {
                    assert!(r.started_early.is_empty());
                }
            }
        }
    }
}

/// A restored pipelined replica pipelines as its checkpoint says, not as its host now asks,
/// until its next checkpoint.
#[test]
fn a_restored_replica_pipelines_as_its_checkpoint_says() {
    let (mut reps, _) = replicas(4, params(Variant::Beat0, 16), 13);
    for r in &mut reps {
        r.node.set_checkpoint_interval(2);
        r.node.set_pipelining(true);
    }
    let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), 13);
    for id in Committee::new(4).unwrap().members() {
        submit(&mut net, id, txs("restore", 80));
    }
    net.run(20_000_000);
    assert_agreement(&net);
    let r0 = &net.nodes[&NodeId(0)];
    let checkpoint = r0.checkpoints.last().cloned().expect("checkpoints");
    assert!(checkpoint.epoch.0 >= 4);
    let config = r0.node.config().clone();
    let seed = crate::ProposalSeed([0; 32]);
    let mut restored =
        BeatNode::from_checkpoint(config.clone(), seed.clone(), checkpoint.clone()).unwrap();
    assert_eq!(restored.pipelined_every(), Some(2));
    restored.set_checkpoint_interval(5);
    restored.set_pipelining(false);
    assert_eq!(
        restored.pipelined_every(),
        Some(2),
        "until the next checkpoint"
    );
    let mut bad = checkpoint;
    bad.pipelined_every = Some(0);
    assert!(BeatNode::from_checkpoint(config, seed, bad).is_err());
}

#[test]
fn transactions_submitted_to_one_replica_are_committed() {
    let (reps, _) = replicas(4, params(Variant::Beat1, 16), 9);
    let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), 9);
    submit(&mut net, NodeId(2), txs("only-2", 10));
    net.run(5_000_000);
    assert_agreement(&net);
    for r in net.nodes.values() {
        assert_eq!(committed(r).len(), 10);
    }
}

/// `count` requests of one client, numbered from 0: (plaintexts, sealed transactions).
fn client_requests(
    client: &IdentityKeypair,
    keys: &PublicKeys,
    count: usize,
    rng: &mut ChaCha20Rng,
) -> (Vec<Vec<u8>>, Vec<Transaction>) {
    let plaintexts: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("order {i}").into_bytes())
        .collect();
    let txs = plaintexts
        .iter()
        .enumerate()
        .map(|(i, p)| seal_client_transaction(client, &keys.encryption, i as u64, p, rng).unwrap())
        .collect();
    (plaintexts, txs)
}

fn sorted_plaintexts(r: &Replica) -> Vec<Vec<u8>> {
    let mut got: Vec<Vec<u8>> = committed(r)
        .into_iter()
        .map(Transaction::into_vec)
        .collect();
    got.sort();
    got
}

#[test]
fn beat2_orders_client_ciphertexts_and_decrypts_them() {
    let n = 4;
    let (reps, keys) = replicas(n, params(Variant::Beat2, 20), 5);
    let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), 5);
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let alice = IdentityKeypair::generate(&mut rng);
    let (mut plaintexts, cts) = client_requests(&alice, &keys, 12, &mut rng);
    // A plaintext is not a valid BEAT2 transaction.
    let r0 = net.nodes.get_mut(&NodeId(0)).unwrap();
    assert!(
        r0.node
            .handle_input(Input::Submit(vec![Transaction::new(b"plain".to_vec())]))
            .is_err()
    );
    for id in Committee::new(n).unwrap().members() {
        submit(&mut net, id, cts.clone());
    }
    net.run(5_000_000);
    assert_agreement(&net);
    plaintexts.sort();
    for r in net.nodes.values() {
        assert_eq!(sorted_plaintexts(r), plaintexts);
        assert_eq!(r.node.buffer_len(), 0);
    }
}

/// A client seals several transactions as bundles (module `client`): each bundle is ordered as
/// one request and commits its transactions in bundle order; one re-sent under the same request
/// id, even with other contents, is ordered once; a bundle whose plaintext is malformed commits
/// nothing but spends its label, and blames no replica.
#[test]
fn beat2_bundles_commit_their_transactions_once_in_order() {
    let n = 4;
    let (reps, keys) = replicas(n, params(Variant::Beat2, 8), 9);
    let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), 9);
    let mut rng = ChaCha20Rng::seed_from_u64(90);
    let alice = IdentityKeypair::generate(&mut rng);
    let mut expected = Vec::new();
    let mut txs = Vec::new();
    for request in 0..5u64 {
        let orders: Vec<Vec<u8>> = (0..=request)
            .map(|i| format!("bundle {request} order {i}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = orders.iter().map(Vec::as_slice).collect();
        txs.push(seal_client_bundle(&alice, &keys.encryption, request, &refs, &mut rng).unwrap());
        expected.extend(orders);
    }
    // The same request id with other contents: a duplicate of request 0, never ordered twice.
    let resent: [&[u8]; 1] = [b"a different order under request 0"];
    let duplicate = seal_client_bundle(&alice, &keys.encryption, 0, &resent, &mut rng).unwrap();
    // A bundle envelope around bytes that are not a bundle: ordered, spent, commits nothing.
    let label = client_label(&alice.public(), 99);
    let ct = keys
        .encryption
        .encrypt(&label, b"not a bundle", &mut rng)
        .unwrap();
    let malformed = sign_envelope(&alice, EnvelopeKind::Bundle, &ct);
    for id in Committee::new(n).unwrap().members() {
        let mut mine = txs.clone();
        mine.push(malformed.clone());
        submit(&mut net, id, mine);
    }
    net.run(5_000_000);
    submit(&mut net, NodeId(1), vec![duplicate]);
    net.run(5_000_000);
    assert_agreement(&net);
    for r in net.nodes.values() {
        let got: Vec<Vec<u8>> = committed(r)
            .into_iter()
            .map(Transaction::into_vec)
            .collect();
        // Each bundle's transactions are contiguous and in bundle order.
        for request in 0..5u64 {
            let start = got
                .iter()
                .position(|t| t.starts_with(format!("bundle {request} ").as_bytes()))
                .unwrap();
            for i in 0..=request as usize {
                assert_eq!(
                    got[start + i],
                    format!("bundle {request} order {i}").into_bytes()
                );
            }
        }
        let mut sorted = got.clone();
        sorted.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(sorted, want, "every bundled transaction exactly once");
    }
    for id in Committee::new(n).unwrap().members() {
        assert_eq!(
            net.faults_against(id),
            0,
            "a client's malformed bundle blames no replica"
        );
    }
}

#[test]
fn beat2_admission_refuses_a_ciphertext_under_another_clients_label() {
    let (reps, keys) = replicas(4, params(Variant::Beat2, 8), 6);
    let r0 = &reps[0];
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let (alice, mallory) = (
        IdentityKeypair::generate(&mut rng),
        IdentityKeypair::generate(&mut rng),
    );
    let squatted = keys
        .encryption
        .encrypt(&client_label(&alice.public(), 0), b"junk", &mut rng)
        .unwrap();
    assert_eq!(
        r0.node
            .validate_transaction(&sign_client_ciphertext(&mallory, &squatted)),
        Err(TransactionError::InvalidClientTransaction(
            ClientTransactionError::BadSignature
        ))
    );
    let genuine = sign_client_ciphertext(&alice, &squatted);
    assert_eq!(
        r0.node.validate_transaction(&genuine),
        Ok(crate::epoch::label_key(&client_label(&alice.public(), 0)))
    );
}

/// A faulty proposer (replica 3) proposes valid ciphertexts of junk under the labels of an
/// honest client's requests, signed with its own key. Every honest replica rejects them at E3,
/// blames the proposer, and leaves the labels unspent, so the client's real requests commit.
#[test]
fn beat2_squatted_labels_are_rejected_and_not_spent() {
    let n = 4;
    let squatter = NodeId(3);
    let mut included = 0;
    for seed in 1..=6 {
        let (reps, keys) = replicas(n, params(Variant::Beat2, 4), seed);
        let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), seed);
        net.silent.push(squatter);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (alice, mallory) = (
            IdentityKeypair::generate(&mut rng),
            IdentityKeypair::generate(&mut rng),
        );
        let (mut plaintexts, txs) = client_requests(&alice, &keys, 6, &mut rng);
        // B = 4: honest proposals of epoch 0 sample the first four requests, so the last
        // request's label is free for the squatter to take in epoch 0.
        let label = client_label(&alice.public(), 5);
        let ct = keys.encryption.encrypt(&label, b"junk", &mut rng).unwrap();
        let junk = sign_client_ciphertext(&mallory, &ct);
        let value = bytes::Bytes::from(encode_transactions(&[junk]));
        for to in 0..3 {
            net.inject(
                squatter,
                NodeId(to),
                Message::Epoch {
                    epoch: Epoch(0),
                    message: EpochMessage::Subset(SubsetMessage::Broadcast {
                        proposer: squatter,
                        message: BroadcastMessage::Bracha(bracha::Message::Val(value.clone())),
                    }),
                },
            );
        }
        for to in 0..3 {
            submit(&mut net, NodeId(to), txs.clone());
        }
        net.run(5_000_000);
        plaintexts.sort();
        for id in 0..3 {
            let r = &net.nodes[&NodeId(id)];
            assert_eq!(sorted_plaintexts(r), plaintexts, "seed {seed} replica {id}");
            let squatted_epochs = r.log[0]
                .contributions
                .iter()
                .filter(|c| c.proposer == squatter)
                .count();
            let blamed = net.faults[&NodeId(id)]
                .iter()
                .filter(|f| f.node == squatter && f.kind == FaultKind::MalformedContribution)
                .count();
            assert_eq!(blamed, squatted_epochs, "seed {seed} replica {id}");
            if id == 0 {
                included += squatted_epochs;
            }
        }
        for id in 0..3 {
            assert_eq!(net.faults_against(NodeId(id)), 0);
        }
    }
    assert!(included > 0, "no run included the squatter's proposal");
}

#[test]
fn a_replica_that_missed_epochs_catches_up_from_f_plus_one_answers() {
    let n = 4;
    let mut p = params(Variant::Beat1, 8);
    p.catch_up_lag = 2;
    let (reps, _) = replicas(n, p, 21);
    let mut reps: BTreeMap<NodeId, Replica> =
        reps.into_iter().map(|r| (r.node.our_id(), r)).collect();
    let laggard = reps.remove(&NodeId(3)).unwrap();
    let mut net = TestNet::new(reps, 21);
    // Replica 3 is down: everything sent to it is lost.
    for round in 0..6 {
        for id in 0..3 {
            submit(&mut net, NodeId(id), txs(&format!("r{round}"), 8));
        }
        net.run(5_000_000);
    }
    let ahead = net.nodes[&NodeId(0)].log.len();
    assert!(ahead >= 4, "the others made progress ({ahead} epochs)");
    net.nodes.insert(NodeId(3), laggard);
    // More load: the others advance, announce their epochs, and replica 3 asks them.
    for round in 0..4 {
        for id in 0..3 {
            submit(&mut net, NodeId(id), txs(&format!("after{round}"), 8));
        }
        net.run(5_000_000);
    }
    assert_agreement(&net);
    let caught_up = net.nodes[&NodeId(3)].log.len();
    assert!(
        caught_up >= ahead,
        "replica 3 adopted the missed epochs ({caught_up} ≥ {ahead})"
    );
}

#[test]
fn idle_replicas_run_no_epochs() {
    let (reps, _) = replicas(4, params(Variant::Beat0, 8), 3);
    let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), 3);
    net.run(1000);
    assert_eq!(net.delivered, 0);
    assert!(net.nodes.values().all(|r| r.log.is_empty()));
}

#[test]
fn oversized_and_empty_transactions_are_refused_and_the_buffer_is_bounded() {
    let mut p = params(Variant::Beat0, 8);
    p.max_transaction_bytes = 10;
    p.buffer_capacity = 3;
    let (mut reps, _) = replicas(4, p, 1);
    let r = &mut reps[0];
    let step: Result<NodeStep, _> = r
        .node
        .handle_input(Input::Submit(vec![Transaction::new(vec![1; 11])]));
    assert!(matches!(step, Err(crate::Error::InvalidTransaction(_))));
    assert!(
        r.node
            .handle_input(Input::Submit(vec![Transaction::new(vec![])]))
            .is_err()
    );
    assert!(matches!(
        r.node.handle_input(Input::Submit(txs("x", 4))),
        Err(crate::Error::BufferFull { capacity: 3 })
    ));
    assert_eq!(r.node.buffer_len(), 0, "a refused batch adds nothing");
    let _: Step<Message, Output> = r.node.handle_input(Input::Submit(txs("x", 3))).unwrap();
    assert_eq!(r.node.buffer_len(), 3);
}

/// BEAT3/BEAT4 as BFT storage: batches carry only the agreed commitments, each replica keeps
/// its verified fragments, and a client reconstructs every contribution from the fragments of
/// the replicas (here: all of them; any k verified ones would do) — the same everywhere.
#[test]
fn storage_variants_commit_commitments_and_fragments_reconstruct_contributions() {
    for variant in [Variant::Beat3, Variant::Beat4] {
        let mut p = params(variant, 16);
        p.delivery = crate::Delivery::CommitmentsOnly;
        let (reps, _) = replicas(4, p.clone(), 31);
        let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), 31);
        for id in Committee::new(4).unwrap().members() {
            submit(&mut net, id, txs("stored", 12));
        }
        // Three epochs are enough to look at (the whole workload is drained in
        // `commitments_only_replicas_drain_what_their_own_contributions_stored`).
        for _ in 0..200_000 {
            if net.nodes.values().all(|r| r.log.len() >= 3) || !net.crank() {
                break;
            }
        }
        assert_agreement(&net);
        let batch = &net.nodes[&NodeId(0)].log[0];
        let code = crate::broadcast::BroadcastConfig::new(Committee::new(4).unwrap(), &p).code;
        for c in &batch.contributions {
            let crate::Content::Stored(commitment) = &c.content else {
                panic!(
                    "{variant}: expected a stored commitment, got {:?}",
                    c.content
                );
            };
            let mut fragments = Vec::new();
            let mut fpcc = None;
            for r in net.nodes.values() {
                for s in r.stored.iter().filter(|s| {
                    s.proposer == c.proposer && s.fpcc.digest() == commitment.commitment
                }) {
                    fpcc.get_or_insert(s.fpcc.clone());
                    fragments.extend(
                        s.fragments
                            .iter()
                            .filter(|f| (f.index as usize) < 4)
                            .cloned(),
                    );
                }
            }
            let fpcc = fpcc.expect("some replica stored fragments");
            let payload = code.decode(&fpcc, &fragments).unwrap();
            let decoded = crate::codec::decode_transactions(&payload, 100, 1 << 20).unwrap();
            assert!(decoded.iter().all(|t| t.as_bytes().starts_with(b"stored-")));
        }
    }
}

/// R2 at the node: replica 0's keystore answers its decryption request only after the epoch is
/// over (it decrypted with the others' shares). The request survives the epoch (and a
/// checkpoint), and the late shares are broadcast for the epoch they belong to.
#[test]
fn late_own_decryption_shares_are_released_after_the_epoch() {
    let (reps, _) = replicas(4, params(Variant::Beat0, 8), 21);
    let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), 21);
    net.nodes.get_mut(&NodeId(0)).unwrap().hold_decryption = true;
    for id in 0..4 {
        submit(&mut net, NodeId(id), txs("late", 8));
    }
    net.run(5_000_000);
    assert_agreement(&net);
    let r0 = net.nodes.get_mut(&NodeId(0)).unwrap();
    assert!(
        r0.node.epoch() > Epoch::ZERO,
        "replica 0 committed without its shares"
    );
    let request = r0.held.remove(0);
    let Request::DecryptionShares { epoch, .. } = &request else {
        unreachable!()
    };
    let epoch = *epoch;
    assert!(epoch < r0.node.epoch());
    assert!(
        r0.node.pending_requests().contains(&request),
        "the unanswered request is still pending (re-issued after a restart)"
    );
    // A checkpoint taken since keeps it.
    let checkpoint = r0
        .checkpoints
        .last()
        .cloned()
        .expect("a checkpoint per epoch");
    let config = r0.node.config().clone();
    let restored =
        BeatNode::from_checkpoint(config, crate::ProposalSeed([0; 32]), checkpoint).unwrap();
    assert!(restored.pending_requests().contains(&request));
    let reply = r0.answer(request);
    let step = r0.node.handle_reply(reply).unwrap();
    assert!(
        step.messages.iter().any(|m| matches!(
            &m.message,
            Message::Epoch { epoch: e, message: crate::epoch::EpochMessage::DecryptionShares(s) }
                if *e == epoch && !s.is_empty()
        )),
        "late shares are broadcast: {:?}",
        step.messages
    );
    assert!(
        !r0.node
            .pending_requests()
            .iter()
            .any(|r| matches!(r, Request::DecryptionShares { epoch: e, .. } if *e == epoch)),
        "answered"
    );
}

/// N5': one epoch behind an idle cluster, catch-up waits for `catch_up_lag` epochs of lead that
/// never comes; a stall report asks the peers ahead at once, and again on the next report (an
/// answer may have been lost with a link).
#[test]
fn a_stall_report_asks_peers_that_are_only_one_epoch_ahead() {
    let (mut reps, _) = replicas(4, params(Variant::Beat0, 8), 5);
    let node = &mut reps[0].node;
    let asks = |step: &NodeStep| {
        step.messages
            .iter()
            .filter(|m| matches!(m.message, Message::CatchUpRequest { .. }))
            .count()
    };
    let step = node
        .handle_message(NodeId(1), Message::EpochStarted(Epoch(1)))
        .unwrap();
    assert_eq!(asks(&step), 0, "one epoch is below catch_up_lag");
    let step = node.handle_input(Input::Stalled).unwrap();
    assert_eq!(asks(&step), 0, "one peer ahead is not f+1");
    let step = node
        .handle_message(NodeId(2), Message::EpochStarted(Epoch(1)))
        .unwrap();
    assert_eq!(asks(&step), 0);
    let step = node.handle_input(Input::Stalled).unwrap();
    assert_eq!(asks(&step), 2, "f+1 = 2 peers ahead are asked");
    let step = node.handle_input(Input::Stalled).unwrap();
    assert_eq!(asks(&step), 2, "and asked again on the next stall");
}

/// Regression (found by the simulator's commitments-only profiles, DUP-1 and LIV-1): a replica
/// that only stores commitments sees no transactions in its batches, so it never drained its
/// buffer — it re-proposed the same transactions every epoch, never reached those beyond the
/// first B, and never went idle. It must drop what its own committed contribution stored.
#[test]
fn commitments_only_replicas_drain_what_their_own_contributions_stored() {
    for variant in [Variant::Beat3, Variant::Beat4] {
        let mut p = params(variant, 8);
        p.delivery = crate::Delivery::CommitmentsOnly;
        let (reps, _) = replicas(4, p.clone(), 7);
        let mut net = TestNet::new(reps.into_iter().map(|r| (r.node.our_id(), r)), 7);
        // 12 transactions at every replica, B = 8: the last 4 are outside the first B.
        let all = txs("drain", 12);
        for id in Committee::new(4).unwrap().members() {
            submit(&mut net, id, all.clone());
        }
        net.run(2_000_000);
        assert!(!net.crank(), "{variant}: replicas must go idle");
        assert_agreement(&net);
        let code = crate::broadcast::BroadcastConfig::new(Committee::new(4).unwrap(), &p).code;
        let mut stored_by: BTreeMap<NodeId, Vec<Transaction>> = BTreeMap::new();
        for batch in &net.nodes[&NodeId(0)].log {
            for c in &batch.contributions {
                let crate::Content::Stored(commitment) = &c.content else {
                    panic!("{variant}: expected a stored commitment");
                };
                let mut fpcc = None;
                let mut fragments = Vec::new();
                for r in net.nodes.values() {
                    for s in r.stored.iter().filter(|s| {
                        s.proposer == c.proposer && s.fpcc.digest() == commitment.commitment
                    }) {
                        fpcc.get_or_insert(s.fpcc.clone());
                        fragments.extend(s.fragments.iter().filter(|f| f.index < 4).cloned());
                    }
                }
                let payload = code.decode(&fpcc.unwrap(), &fragments).unwrap();
                let decoded = crate::codec::decode_transactions(&payload, 100, 1 << 20).unwrap();
                stored_by.entry(c.proposer).or_default().extend(decoded);
            }
        }
        for (proposer, stored) in &stored_by {
            let mut unique = stored.clone();
            unique.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            unique.dedup();
            assert_eq!(
                unique.len(),
                stored.len(),
                "{variant}: replica {proposer} stored a transaction twice"
            );
        }
        let retrievable: std::collections::BTreeSet<&Transaction> =
            stored_by.values().flatten().collect();
        assert_eq!(retrievable.len(), all.len(), "{variant}: every transaction");
        for r in net.nodes.values() {
            assert_eq!(r.node.buffer_len(), 0, "{variant}: buffers drain");
        }
    }
}
