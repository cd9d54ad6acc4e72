use std::sync::Arc;

use beat_crypto::{erasure::ErasureCoder, merkle::MerkleTree};
use beat_types::{Committee, NodeId};
use bytes::Bytes;

use super::*;
use crate::{
    FaultKind, Step,
    testing::{Node, TestNet},
};

impl Node for Avid {
    type Message = Message;
    type Output = AvidOutput;
    fn handle(&mut self, from: NodeId, msg: Message) -> Step<Message, AvidOutput> {
        self.handle_message(from, msg)
    }
}

fn coder(n: usize) -> Arc<ErasureCoder> {
    Arc::new(ErasureCoder::new(Committee::new(n).unwrap()))
}

fn net(n: usize, proposer: u32, seed: u64) -> TestNet<Avid> {
    let c = Committee::new(n).unwrap();
    let coder = coder(n);
    TestNet::new(
        c.members().map(|id| {
            (
                id,
                Avid::new(id, NodeId(proposer), c, coder.clone(), 1 << 20),
            )
        }),
        seed,
    )
}

#[test]
fn honest_proposer_is_delivered_everywhere_under_random_schedules() {
    for n in [1, 2, 3, 4, 5, 7, 10] {
        for seed in 0..15u64 {
            let proposer = NodeId((seed % n as u64) as u32);
            let mut net = net(n, proposer.0, seed);
            let value = Bytes::from(vec![seed as u8; 100 + 37 * seed as usize]);
            let step = net.nodes.get_mut(&proposer).unwrap().propose(value.clone());
            net.absorb(proposer, step);
            net.run(100_000);
            for id in Committee::new(n).unwrap().members() {
                assert_eq!(
                    net.outputs[&id],
                    vec![AvidOutput::Value(value.clone())],
                    "n={n} seed={seed}"
                );
            }
            assert!(net.faults.values().all(Vec::is_empty));
        }
    }
}

#[test]
fn delivers_with_f_silent_replicas() {
    for (n, seed) in [(4, 1), (7, 2), (10, 3)] {
        let f = (n - 1) / 3;
        let mut net = net(n, 0, seed);
        net.silent = (n - f..n).map(NodeId::from_index).collect();
        let step = net
            .nodes
            .get_mut(&NodeId(0))
            .unwrap()
            .propose(Bytes::from_static(b"v"));
        net.absorb(NodeId(0), step);
        net.run(100_000);
        for i in 0..n - f {
            assert_eq!(
                net.outputs[&NodeId::from_index(i)],
                vec![AvidOutput::Value(Bytes::from_static(b"v"))]
            );
        }
    }
}

/// The proposer commits (Merkle root) to shards that are not a codeword: one parity shard is
/// random. Whichever k shards each replica decodes from, all output ⊥ together.
#[test]
fn non_codeword_dispersal_is_undecodable_everywhere() {
    for seed in 0..20u64 {
        let n = 7;
        let coder = coder(n);
        let mut encoded = coder.encode(&vec![7u8; 500]).unwrap();
        let victim = 3 + (seed as usize % 4);
        for (i, b) in encoded.shards[victim].iter_mut().enumerate() {
            *b ^= (i as u8).wrapping_mul(31).wrapping_add(seed as u8) | 1;
        }
        let tree = MerkleTree::new(&encoded.shards);
        let root = tree.root();
        let mut net = net(n, 0, seed);
        net.silent = vec![NodeId(0)];
        for to in 0..n {
            let shard = Bytes::from(encoded.shards[to].clone());
            let proof = tree.proof(to).unwrap();
            let step = net
                .nodes
                .get_mut(&NodeId::from_index(to))
                .unwrap()
                .handle_message(NodeId(0), Message::Val { root, proof, shard });
            net.absorb(NodeId::from_index(to), step);
        }
        net.run(100_000);
        for i in 1..n {
            let out = &net.outputs[&NodeId::from_index(i)];
            assert_eq!(out, &vec![AvidOutput::Undecodable], "seed {seed} node {i}");
        }
        for i in 1..n {
            assert_eq!(net.faults_against(NodeId::from_index(i)), 0);
        }
        assert!(net.faults_against(NodeId(0)) > 0, "the proposer is blamed");
    }
}

#[test]
fn single_message_checks() {
    let n = 4;
    let c = Committee::new(n).unwrap();
    let coder = coder(n);
    let encoded = coder.encode(b"value").unwrap();
    let root = encoded.root();
    let shard = |i: usize| Bytes::from(encoded.shards[i].clone());
    let proof = |i: usize| encoded.proof(i).unwrap();
    struct Case {
        desc: &'static str,
        msgs: Vec<(u32, Message)>,
        fault: Option<(u32, FaultKind)>,
    }
    let cases = vec![
        Case {
            desc: "valid val",
            msgs: vec![(
                0,
                Message::Val {
                    root,
                    proof: proof(1),
                    shard: shard(1),
                },
            )],
            fault: None,
        },
        Case {
            desc: "val from non-proposer",
            msgs: vec![(
                2,
                Message::Val {
                    root,
                    proof: proof(1),
                    shard: shard(1),
                },
            )],
            fault: Some((2, FaultKind::ValueFromNonProposer)),
        },
        Case {
            desc: "val with another replica's shard",
            msgs: vec![(
                0,
                Message::Val {
                    root,
                    proof: proof(2),
                    shard: shard(2),
                },
            )],
            fault: Some((0, FaultKind::InvalidShard)),
        },
        Case {
            desc: "val with a corrupted shard",
            msgs: vec![(
                0,
                Message::Val {
                    root,
                    proof: proof(1),
                    shard: shard(2),
                },
            )],
            fault: Some((0, FaultKind::InvalidShard)),
        },
        Case {
            desc: "echo of the sender's shard",
            msgs: vec![(
                2,
                Message::Echo {
                    root,
                    proof: proof(2),
                    shard: shard(2),
                },
            )],
            fault: None,
        },
        Case {
            desc: "echo claiming another index",
            msgs: vec![(
                2,
                Message::Echo {
                    root,
                    proof: proof(3),
                    shard: shard(3),
                },
            )],
            fault: Some((2, FaultKind::InvalidShard)),
        },
        Case {
            desc: "duplicate echo ignored",
            msgs: vec![
                (
                    2,
                    Message::Echo {
                        root,
                        proof: proof(2),
                        shard: shard(2),
                    },
                ),
                (
                    2,
                    Message::Echo {
                        root,
                        proof: proof(2),
                        shard: shard(2),
                    },
                ),
            ],
            fault: None,
        },
        Case {
            desc: "oversized shard",
            msgs: vec![(
                2,
                Message::Echo {
                    root,
                    proof: proof(2),
                    shard: Bytes::from(vec![0; 1 << 21]),
                },
            )],
            fault: Some((2, FaultKind::OversizedValue)),
        },
    ];
    for case in cases {
        let mut node = Avid::new(NodeId(1), NodeId(0), c, coder.clone(), 1 << 20);
        let faults: Vec<(u32, FaultKind)> = case
            .msgs
            .into_iter()
            .flat_map(|(from, m)| node.handle_message(NodeId(from), m).faults)
            .map(|f| (f.node.0, f.kind))
            .collect();
        assert_eq!(faults.first().copied(), case.fault, "{}", case.desc);
    }
}
