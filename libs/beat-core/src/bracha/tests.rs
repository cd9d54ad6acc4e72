use beat_types::{Committee, NodeId};
use bytes::Bytes;

use super::*;
use crate::{
    FaultKind, Step,
    testing::{Node, TestNet},
};

impl Node for Bracha {
    type Message = Message;
    type Output = Bytes;
    fn handle(&mut self, from: NodeId, msg: Message) -> Step<Message, Bytes> {
        self.handle_message(from, msg)
    }
}

fn net(n: usize, proposer: u32, seed: u64) -> TestNet<Bracha> {
    let c = Committee::new(n).unwrap();
    TestNet::new(
        c.members()
            .map(|id| (id, Bracha::new(id, NodeId(proposer), c, 1 << 20))),
        seed,
    )
}

#[test]
fn honest_proposer_is_delivered_everywhere_under_random_schedules() {
    for n in [1, 2, 4, 5, 7, 10] {
        for seed in 0..20 {
            let mut net = net(n, (seed % n as u64) as u32, seed);
            let proposer = NodeId((seed % n as u64) as u32);
            let value = Bytes::from(format!("value {seed}"));
            let step = net.nodes.get_mut(&proposer).unwrap().propose(value.clone());
            net.absorb(proposer, step);
            net.run(100_000);
            for id in Committee::new(n).unwrap().members() {
                assert_eq!(
                    net.outputs[&id],
                    vec![value.clone()],
                    "n={n} seed={seed} node {id}"
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
            assert_eq!(net.outputs[&NodeId::from_index(i)].len(), 1);
        }
    }
}

#[test]
fn silent_proposer_delivers_nothing() {
    let mut net = net(4, 0, 1);
    net.run(1000);
    assert!(net.outputs.values().all(Vec::is_empty));
}

/// An equivocating proposer sends different values to different replicas: every honest
/// replica delivers the same value or none, and no honest replica is blamed.
#[test]
fn equivocating_proposer_cannot_split_honest_replicas() {
    for seed in 0..50 {
        let n = 7;
        let mut net = net(n, 0, seed);
        for to in 1..n as u32 {
            let v = if to % 2 == 0 { "left" } else { "right" };
            net.inject(NodeId(0), NodeId(to), Message::Val(Bytes::from(v)));
        }
        net.run(100_000);
        let delivered: Vec<&Bytes> = (1..n as u32)
            .filter_map(|i| net.outputs.get(&NodeId(i)).and_then(|o| o.first()))
            .collect();
        assert!(delivered.windows(2).all(|w| w[0] == w[1]), "seed {seed}");
        for i in 1..n as u32 {
            assert_eq!(net.faults_against(NodeId(i)), 0, "honest {i} blamed");
        }
    }
}

/// Table-driven checks of single messages against a fresh replica 1 (proposer 0, n = 4).
#[test]
fn single_message_checks() {
    struct Case {
        desc: &'static str,
        msgs: Vec<(u32, Message)>,
        fault: Option<(u32, FaultKind)>,
        broadcasts: usize,
    }
    let v = || Bytes::from_static(b"v");
    let w = || Bytes::from_static(b"w");
    let cases = vec![
        Case {
            desc: "val from proposer is echoed",
            msgs: vec![(0, Message::Val(v()))],
            fault: None,
            broadcasts: 1,
        },
        Case {
            desc: "val from non-proposer",
            msgs: vec![(2, Message::Val(v()))],
            fault: Some((2, FaultKind::ValueFromNonProposer)),
            broadcasts: 0,
        },
        Case {
            desc: "duplicate identical val is ignored",
            msgs: vec![(0, Message::Val(v())), (0, Message::Val(v()))],
            fault: None,
            broadcasts: 1,
        },
        Case {
            desc: "conflicting val",
            msgs: vec![(0, Message::Val(v())), (0, Message::Val(w()))],
            fault: Some((0, FaultKind::ConflictingVal)),
            broadcasts: 1,
        },
        Case {
            desc: "conflicting echo",
            msgs: vec![(2, Message::Echo(v())), (2, Message::Echo(w()))],
            fault: Some((2, FaultKind::ConflictingEcho)),
            broadcasts: 0,
        },
        Case {
            desc: "duplicate echo is ignored",
            msgs: vec![(2, Message::Echo(v())), (2, Message::Echo(v()))],
            fault: None,
            broadcasts: 0,
        },
        Case {
            desc: "oversized val",
            msgs: vec![(0, Message::Val(Bytes::from(vec![0; 33])))],
            fault: Some((0, FaultKind::OversizedValue)),
            broadcasts: 0,
        },
        Case {
            desc: "conflicting ready",
            msgs: vec![
                (3, Message::Ready(beat_crypto::Digest([1; 32]))),
                (3, Message::Ready(beat_crypto::Digest([2; 32]))),
            ],
            fault: Some((3, FaultKind::ConflictingReady)),
            broadcasts: 0,
        },
        Case {
            desc: "f+1 readies amplify",
            msgs: vec![
                (2, Message::Ready(beat_crypto::Digest([1; 32]))),
                (3, Message::Ready(beat_crypto::Digest([1; 32]))),
            ],
            fault: None,
            broadcasts: 1,
        },
    ];
    let c = Committee::new(4).unwrap();
    for case in cases {
        let mut node = Bracha::new(NodeId(1), NodeId(0), c, 32);
        let mut faults = Vec::new();
        let mut broadcasts = 0;
        for (from, msg) in case.msgs {
            let step = node.handle_message(NodeId(from), msg);
            broadcasts += step.messages.len();
            faults.extend(step.faults);
        }
        let got = faults.first().map(|f| (f.node.0, f.kind));
        assert_eq!(got, case.fault, "{}", case.desc);
        assert_eq!(broadcasts, case.broadcasts, "{}", case.desc);
    }
}
