use std::sync::Arc;

use beat_crypto::bls;
use beat_types::{Committee, Epoch, NodeId};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::*;
use crate::{
    FaultKind, Request, Step,
    testing::{Node, TestNet},
};

struct AbaNode {
    aba: BinaryAgreement,
    key: bls::SecretKeyShare,
    coins_served: usize,
}

impl Node for AbaNode {
    type Message = Message;
    type Output = bool;
    fn handle(&mut self, from: NodeId, msg: Message) -> Step<Message, bool> {
        self.aba.handle_message(from, msg)
    }
    fn serve(&mut self, request: Request) -> Step<Message, bool> {
        match request {
            Request::CoinShare(id) => {
                self.coins_served += 1;
                self.aba
                    .handle_coin_share(id.round, self.key.sign(&id.message()))
            }
            Request::DecryptionShares { .. }
            | Request::ReadCommitted { .. }
            | Request::CommitShare(_) => Step::default(),
        }
    }
}

fn net(n: usize, seed: u64) -> (TestNet<AbaNode>, Arc<bls::PublicKeySet>) {
    let c = Committee::new(n).unwrap();
    let (pks, sks) = bls::deal(n, c.f(), &mut ChaCha20Rng::seed_from_u64(99)).unwrap();
    let pks = Arc::new(pks);
    let nodes = sks.into_iter().map(|key| {
        let id = key.holder();
        let aba = BinaryAgreement::new(id, c, pks.clone(), Epoch(1), NodeId(0), 64);
        (
            id,
            AbaNode {
                aba,
                key,
                coins_served: 0,
            },
        )
    });
    (TestNet::new(nodes, seed), pks)
}

fn propose_all(net: &mut TestNet<AbaNode>, inputs: &[bool]) {
    for (i, b) in inputs.iter().enumerate() {
        let id = NodeId::from_index(i);
        let step = net.nodes.get_mut(&id).unwrap().aba.propose(*b);
        net.absorb(id, step);
    }
}

fn decisions(net: &TestNet<AbaNode>, honest: &[NodeId]) -> Vec<bool> {
    honest
        .iter()
        .map(|id| {
            let out = &net.outputs[id];
            assert_eq!(out.len(), 1, "node {id} decided {out:?}");
            out[0]
        })
        .collect()
}

#[test]
fn agreement_validity_and_termination_under_random_schedules() {
    let mut random_rounds = 0;
    for n in [1, 2, 4, 5, 7, 10] {
        for seed in 0..40u64 {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let pattern = seed % 3;
            let inputs: Vec<bool> = (0..n)
                .map(|_| match pattern {
                    0 => true,
                    1 => false,
                    _ => rng.next_u32() % 2 == 0,
                })
                .collect();
            let (mut net, _) = net(n, seed);
            propose_all(&mut net, &inputs);
            net.run(1_000_000);
            let honest: Vec<NodeId> = (0..n).map(NodeId::from_index).collect();
            let d = decisions(&net, &honest);
            assert!(
                d.windows(2).all(|w| w[0] == w[1]),
                "agreement n={n} seed={seed}"
            );
            if inputs.iter().all(|b| *b == inputs[0]) {
                assert_eq!(d[0], inputs[0], "validity n={n} seed={seed}");
            }
            assert!(net.faults.values().all(Vec::is_empty), "no honest fault");
            assert!(net.nodes.values().all(|x| x.aba.is_terminated()));
            random_rounds += net.nodes.values().map(|x| x.coins_served).sum::<usize>();
        }
    }
    assert!(random_rounds > 0, "the random-coin path was exercised");
}

#[test]
fn unanimous_one_decides_in_round_zero_without_crypto() {
    let (mut net, _) = net(7, 3);
    propose_all(&mut net, &[true; 7]);
    net.run(100_000);
    assert!(
        net.nodes
            .values()
            .all(|x| x.aba.round() == 0 && x.coins_served == 0)
    );
    assert!(net.outputs.values().all(|o| o == &vec![true]));
}

#[test]
fn agreement_with_f_silent_replicas() {
    for (n, seed) in [(4, 1), (7, 2), (10, 3), (4, 4), (7, 5)] {
        let f = (n - 1) / 3;
        let (mut net, _) = net(n, seed);
        net.silent = (n - f..n).map(NodeId::from_index).collect();
        let inputs: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        propose_all(&mut net, &inputs);
        net.run(1_000_000);
        let honest: Vec<NodeId> = (0..n - f).map(NodeId::from_index).collect();
        let d = decisions(&net, &honest);
        assert!(d.windows(2).all(|w| w[0] == w[1]));
    }
}

/// Byzantine replicas vote against the fixed coin of each round (0 when it is 1, 1 when it is 0) and send a bogus coin share for every
/// random round: honest replicas still agree, and the bad coin share is attributed.
#[test]
fn opposite_voters_and_bad_coin_shares() {
    let mut blamed = 0;
    for seed in 0..30u64 {
        let n = 7;
        let (mut net, _) = net(n, seed);
        let byz = [NodeId(0), NodeId(1)];
        net.silent = byz.to_vec();
        let bogus = bls::deal(n, 2, &mut ChaCha20Rng::seed_from_u64(5))
            .unwrap()
            .1;
        for to in 2..n as u32 {
            for round in 0..9u32 {
                for b in byz {
                    net.inject(
                        b,
                        NodeId(to),
                        Message::BVal {
                            round,
                            value: round % 3 == 1,
                        },
                    );
                    net.inject(
                        b,
                        NodeId(to),
                        Message::Aux {
                            round,
                            value: round % 3 == 1,
                        },
                    );
                    if round % 3 == 2 {
                        let id = crate::CoinId {
                            epoch: Epoch(1),
                            instance: NodeId(0),
                            round,
                        };
                        net.inject(
                            b,
                            NodeId(to),
                            Message::Coin {
                                round,
                                share: bogus[b.index()].sign(&id.message()),
                            },
                        );
                    }
                }
            }
        }
        let inputs = [false, false, true, false, true, true, false];
        propose_all(&mut net, &inputs);
        net.run(1_000_000);
        let honest: Vec<NodeId> = (2..n).map(NodeId::from_index).collect();
        let d = decisions(&net, &honest);
        assert!(d.windows(2).all(|w| w[0] == w[1]), "seed {seed}");
        for h in &honest {
            assert_eq!(net.faults_against(*h), 0);
        }
        blamed += net
            .faults
            .values()
            .flatten()
            .filter(|f| f.kind == FaultKind::InvalidCoinShare)
            .count();
    }
    assert!(blamed > 0, "bogus coin shares were attributed in some run");
}

#[test]
fn f_plus_one_terms_decide() {
    let (mut net, _) = net(4, 1);
    let node = &mut net.nodes.get_mut(&NodeId(0)).unwrap().aba;
    assert!(
        node.handle_message(NodeId(1), Message::Term(false))
            .outputs
            .is_empty()
    );
    let step = node.handle_message(NodeId(2), Message::Term(false));
    assert_eq!(step.outputs, vec![false]);
    assert!(
        step.messages
            .iter()
            .any(|m| m.message == Message::Term(false))
    );
    assert!(node.is_terminated());
}

#[test]
fn single_message_checks() {
    struct Case {
        desc: &'static str,
        msgs: Vec<Message>,
        fault: Option<FaultKind>,
    }
    let (_, sks) = bls::deal(4, 1, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let share = sks[2].sign(&bls::coin_message(b"x"));
    let cases = vec![
        Case {
            desc: "conflicting aux",
            msgs: vec![
                Message::Aux {
                    round: 0,
                    value: true,
                },
                Message::Aux {
                    round: 0,
                    value: false,
                },
            ],
            fault: Some(FaultKind::ConflictingAux),
        },
        Case {
            desc: "duplicate aux",
            msgs: vec![
                Message::Aux {
                    round: 0,
                    value: true,
                },
                Message::Aux {
                    round: 0,
                    value: true,
                },
            ],
            fault: None,
        },
        Case {
            desc: "both bvals are legitimate",
            msgs: vec![
                Message::BVal {
                    round: 0,
                    value: true,
                },
                Message::BVal {
                    round: 0,
                    value: false,
                },
            ],
            fault: None,
        },
        Case {
            desc: "empty conf",
            msgs: vec![Message::Conf {
                round: 2,
                values: BoolSet::NONE,
            }],
            fault: Some(FaultKind::InvalidConf),
        },
        Case {
            desc: "conflicting conf",
            msgs: vec![
                Message::Conf {
                    round: 2,
                    values: BoolSet::BOTH,
                },
                Message::Conf {
                    round: 2,
                    values: BoolSet::single(true),
                },
            ],
            fault: Some(FaultKind::ConflictingConf),
        },
        Case {
            desc: "coin share in a fixed round",
            msgs: vec![Message::Coin { round: 0, share }],
            fault: Some(FaultKind::UnexpectedCoinShare),
        },
        Case {
            desc: "conflicting coin shares",
            msgs: vec![
                Message::Coin { round: 2, share },
                Message::Coin {
                    round: 2,
                    share: sks[3].sign(&bls::coin_message(b"x")),
                },
            ],
            fault: Some(FaultKind::ConflictingCoinShare),
        },
        Case {
            desc: "conflicting term",
            msgs: vec![Message::Term(true), Message::Term(false)],
            fault: Some(FaultKind::ConflictingTerm),
        },
        Case {
            desc: "far-future round is dropped quietly",
            msgs: vec![Message::Aux {
                round: 10_000,
                value: true,
            }],
            fault: None,
        },
    ];
    for case in cases {
        let (mut net, _) = net(4, 0);
        let node = &mut net.nodes.get_mut(&NodeId(0)).unwrap().aba;
        let faults: Vec<FaultKind> = case
            .msgs
            .into_iter()
            .flat_map(|m| node.handle_message(NodeId(2), m).faults)
            .map(|f| f.kind)
            .collect();
        assert_eq!(faults.first().copied(), case.fault, "{}", case.desc);
    }
}

#[test]
fn bool_set_rejects_invalid_encodings() {
    assert!(BoolSet::try_from(4).is_err());
    assert_eq!(BoolSet::try_from(2).unwrap().definite(), Some(true));
    assert!(BoolSet::single(false).is_subset(BoolSet::BOTH));
    assert!(!BoolSet::BOTH.is_subset(BoolSet::single(true)));
}

/// Drives replica 0 of a fresh n = 4 network to decide 1 in round 0 on its own inputs: BVAL(1)
/// and AUX(1) from replicas 1 and 2, none of them ever having sent it BVAL(0).
fn decided_at_round_zero() -> BinaryAgreement {
    let (mut net, _) = net(4, 0);
    let mut aba = net.nodes.remove(&NodeId(0)).unwrap().aba;
    let _ = aba.propose(true);
    for from in [1, 2] {
        let _ = aba.handle_message(
            NodeId(from),
            Message::BVal {
                round: 0,
                value: true,
            },
        );
    }
    for from in [1, 2] {
        let _ = aba.handle_message(
            NodeId(from),
            Message::Aux {
                round: 0,
                value: true,
            },
        );
    }
    assert_eq!(aba.decision(), Some(true));
    aba
}

fn sends_bval(step: &Step<Message, bool>, round: u32, value: bool) -> bool {
    step.messages
        .iter()
        .any(|m| m.message == Message::BVal { round, value })
}

/// R1: a replica that decided still relays BVAL(¬b) of its decision round on f+1 — replicas
/// still in that round may need it to count the AUX votes of replicas that saw ¬b first.
#[test]
fn a_decided_replica_keeps_relaying_the_other_value_of_its_rounds() {
    let mut aba = decided_at_round_zero();
    let bval = |value| Message::BVal { round: 0, value };
    let step = aba.handle_message(NodeId(1), bval(false));
    assert!(!sends_bval(&step, 0, false), "one vote is not f+1");
    let step = aba.handle_message(NodeId(3), bval(false));
    assert!(sends_bval(&step, 0, false), "f+1 = 2 votes are relayed");
    let step = aba.handle_message(NodeId(2), bval(false));
    assert!(!sends_bval(&step, 0, false), "relayed once");
    // Its own value needs no relay: TERM(1) stands for BVAL(1) in every round (T1).
    let step = aba.handle_message(NodeId(3), bval(true));
    assert!(step.messages.is_empty());
    // And it survives a checkpoint.
    let relay = aba.relay().expect("a decided instance only relays");
    let (_, pks) = net(4, 0);
    let mut restored = BinaryAgreement::from_relay(
        NodeId(0),
        Committee::new(4).unwrap(),
        pks,
        Epoch(1),
        NodeId(0),
        64,
        relay,
    );
    assert_eq!(restored.decision(), Some(true));
    let step = restored.handle_message(
        NodeId(1),
        Message::BVal {
            round: 1,
            value: false,
        },
    );
    assert!(step.messages.is_empty());
    let step = restored.handle_message(
        NodeId(2),
        Message::BVal {
            round: 1,
            value: false,
        },
    );
    assert!(sends_bval(&step, 1, false), "rounds it never reached, too");
}

/// R1 before deciding: rounds a replica has left keep their BVAL bookkeeping and relay.
#[test]
fn rounds_left_behind_still_relay() {
    let (mut net, _) = net(4, 0);
    let mut aba = net.nodes.remove(&NodeId(0)).unwrap().aba;
    let _ = aba.propose(false);
    // Round 0 (coin 1): BVAL(0) and AUX(0) from 1 and 2 make vals = {0}, est = 0, round 1.
    for from in [1, 2] {
        let _ = aba.handle_message(
            NodeId(from),
            Message::BVal {
                round: 0,
                value: false,
            },
        );
        let _ = aba.handle_message(
            NodeId(from),
            Message::Aux {
                round: 0,
                value: false,
            },
        );
    }
    assert_eq!(aba.round(), 1);
    let step = aba.handle_message(
        NodeId(1),
        Message::BVal {
            round: 0,
            value: true,
        },
    );
    assert!(!sends_bval(&step, 0, true));
    let step = aba.handle_message(
        NodeId(3),
        Message::BVal {
            round: 0,
            value: true,
        },
    );
    assert!(
        sends_bval(&step, 0, true),
        "round 0 is left but still relays"
    );
}

/// R2: a coin share requested in a round the replica has since left (it combined f+1 shares
/// of others first, or decided) is broadcast when the keystore returns it, exactly once.
#[test]
fn a_late_own_coin_share_is_still_released() {
    let (mut net, _) = net(4, 0);
    let (_, sks) = bls::deal(4, 1, &mut ChaCha20Rng::seed_from_u64(99)).unwrap();
    let mut aba = net.nodes.remove(&NodeId(0)).unwrap().aba;
    let _ = aba.propose(true);
    // Rounds 0 and 1 with split votes: vals = {0, 1}, est = coin.
    let mut requested = None;
    for round in 0..3u32 {
        for from in [1, 2, 3] {
            for value in [false, true] {
                let _ = aba.handle_message(NodeId(from), Message::BVal { round, value });
            }
        }
        for (from, value) in [(1, false), (2, true)] {
            let step = aba.handle_message(NodeId(from), Message::Aux { round, value });
            for r in step.requests {
                requested = Some(r);
            }
        }
        if round == 2 {
            for from in [1, 2] {
                let step = aba.handle_message(
                    NodeId(from),
                    Message::Conf {
                        round,
                        values: BoolSet::BOTH,
                    },
                );
                for r in step.requests {
                    requested = Some(r);
                }
            }
        }
    }
    let Some(Request::CoinShare(id)) = requested else {
        panic!("round 2 requested a coin share: {requested:?}");
    };
    assert_eq!(id.round, 2);
    assert_eq!(aba.pending_coin_requests().count(), 1);
    // Two other replicas' shares arrive first: the coin is known, the replica moves on.
    for from in [1, 2] {
        let share = sks[from].sign(&id.message());
        let _ = aba.handle_message(NodeId(from as u32), Message::Coin { round: 2, share });
    }
    assert_eq!(aba.round(), 3, "combined without its own share");
    let own = sks[0].sign(&id.message());
    let step = aba.handle_coin_share(2, own);
    assert_eq!(
        step.messages
            .iter()
            .filter(|m| m.message
                == Message::Coin {
                    round: 2,
                    share: own
                })
            .count(),
        1,
        "released although the round is over"
    );
    assert_eq!(aba.pending_coin_requests().count(), 0);
    assert!(aba.handle_coin_share(2, own).messages.is_empty(), "once");
}
