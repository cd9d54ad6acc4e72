use std::sync::Arc;

use beat_crypto::avid_fp::{AvidFpCode, Layout};
use beat_types::{Committee, NodeId};
use bytes::Bytes;

use super::*;
use crate::{
    FaultKind, Step,
    testing::{Node, TestNet},
};

impl Node for Dispersal {
    type Message = Message;
    type Output = Dispersed;
    fn handle(&mut self, from: NodeId, msg: Message) -> Step<Message, Dispersed> {
        self.handle_message(from, msg)
    }
}

fn code(n: usize, pyramid: bool) -> Arc<AvidFpCode> {
    let c = Committee::new(n).unwrap();
    let layout = if pyramid {
        Layout::pyramid(c)
    } else {
        Layout::Mds
    };
    Arc::new(AvidFpCode::new(c, layout).unwrap())
}

fn net(n: usize, proposer: u32, pyramid: bool, seed: u64) -> TestNet<Dispersal> {
    let c = Committee::new(n).unwrap();
    let code = code(n, pyramid);
    TestNet::new(
        c.members()
            .map(|id| (id, Dispersal::new(id, NodeId(proposer), c, code.clone()))),
        seed,
    )
}

#[test]
fn honest_dispersal_completes_everywhere_and_fragments_decode() {
    for pyramid in [false, true] {
        for n in [1, 4, 5, 7, 10] {
            for seed in 0..6u64 {
                let proposer = NodeId((seed % n as u64) as u32);
                let mut net = net(n, proposer.0, pyramid, seed);
                let value = Bytes::from(vec![seed as u8 + 1; 300 + 61 * seed as usize]);
                let step = net.nodes.get_mut(&proposer).unwrap().propose(value.clone());
                net.absorb(proposer, step);
                net.run(100_000);
                let code = code(n, pyramid);
                let mut all = Vec::new();
                let mut fpcc = None;
                let mut holders = 0;
                for id in Committee::new(n).unwrap().members() {
                    let out = &net.outputs[&id];
                    assert_eq!(out.len(), 1, "n={n} seed={seed} pyramid={pyramid}");
                    holders += usize::from(!out[0].fragments.is_empty());
                    fpcc.get_or_insert(out[0].fpcc.clone());
                    assert_eq!(Some(&out[0].fpcc), fpcc.as_ref(), "one cross-checksum");
                    all.extend(out[0].fragments.iter().cloned());
                }
                let fpcc = fpcc.unwrap();
                let k = Committee::new(n).unwrap().data_shards();
                assert!(
                    holders >= k,
                    "at least k replicas hold verified fragments ({holders} < {k})"
                );
                let mds: Vec<_> = all
                    .iter()
                    .filter(|f| (f.index as usize) < n)
                    .cloned()
                    .collect();
                assert_eq!(
                    code.decode(&fpcc, &mds[mds.len() - k..]).unwrap(),
                    value.to_vec()
                );
                assert!(net.faults.values().all(Vec::is_empty));
            }
        }
    }
}

#[test]
fn completes_with_f_silent_replicas() {
    for (n, seed) in [(4, 1), (7, 2), (10, 3)] {
        let f = (n - 1) / 3;
        let mut net = net(n, 0, false, seed);
        net.silent = (n - f..n).map(NodeId::from_index).collect();
        let step = net
            .nodes
            .get_mut(&NodeId(0))
            .unwrap()
            .propose(Bytes::from_static(b"stored"));
        net.absorb(NodeId(0), step);
        net.run(100_000);
        for i in 0..n - f {
            assert_eq!(net.outputs[&NodeId::from_index(i)].len(), 1);
        }
    }
}

#[test]
fn a_replica_given_a_bad_fragment_blames_the_proposer_and_does_not_echo() {
    let n = 4;
    let c = Committee::new(n).unwrap();
    let code = code(n, false);
    let (fpcc, mut fragments) = code.disperse(b"value").unwrap();
    let mut node = Dispersal::new(NodeId(1), NodeId(0), c, code.clone());
    fragments[1].bytes[0] ^= 1;
    let step = node.handle_message(
        NodeId(0),
        Message::Val {
            fpcc: fpcc.clone(),
            fragments: vec![fragments[1].clone()],
        },
    );
    assert_eq!(step.faults[0].kind, FaultKind::InvalidFragment);
    assert!(
        step.messages.is_empty(),
        "no ECHO without a verified fragment"
    );
    // Another replica's fragment is not ours either.
    let step = node.handle_message(
        NodeId(0),
        Message::Val {
            fpcc: fpcc.clone(),
            fragments: vec![fragments[2].clone()],
        },
    );
    assert_eq!(step.faults[0].kind, FaultKind::InvalidFragment);
    // VAL from a non-proposer, conflicting echo, malformed cross-checksum.
    let step = node.handle_message(
        NodeId(2),
        Message::Val {
            fpcc: fpcc.clone(),
            fragments: vec![],
        },
    );
    assert_eq!(step.faults[0].kind, FaultKind::ValueFromNonProposer);
    let (other, _) = code.disperse(b"other").unwrap();
    assert!(
        node.handle_message(NodeId(3), Message::Echo(fpcc.clone()))
            .faults
            .is_empty()
    );
    let step = node.handle_message(NodeId(3), Message::Echo(other));
    assert_eq!(step.faults[0].kind, FaultKind::ConflictingEcho);
    let mut bad = fpcc;
    bad.fingerprints.pop();
    let step = node.handle_message(NodeId(2), Message::Echo(bad));
    assert_eq!(step.faults[0].kind, FaultKind::InvalidCrossChecksum);
}
