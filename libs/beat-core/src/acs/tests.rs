use std::sync::Arc;

use beat_crypto::bls;
use beat_types::{Committee, Epoch, NodeId};
use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::{
    Request, Step,
    broadcast::{BroadcastConfig, Delivered},
    testing::{Node, TestNet},
};

struct AcsNode {
    acs: Subset,
    key: bls::SecretKeyShare,
}

impl Node for AcsNode {
    type Message = SubsetMessage;
    type Output = SubsetOutput;
    fn handle(&mut self, from: NodeId, msg: SubsetMessage) -> Step<SubsetMessage, SubsetOutput> {
        self.acs.handle_message(from, msg)
    }
    fn serve(&mut self, request: Request) -> Step<SubsetMessage, SubsetOutput> {
        match request {
            Request::CoinShare(id) => {
                self.acs
                    .handle_coin_share(id.instance, id.round, self.key.sign(&id.message()))
            }
            Request::DecryptionShares { .. }
            | Request::ReadCommitted { .. }
            | Request::CommitShare(_) => Step::default(),
        }
    }
}

fn net(n: usize, seed: u64) -> TestNet<AcsNode> {
    let c = Committee::new(n).unwrap();
    let (pks, sks) = bls::deal(n, c.f(), &mut ChaCha20Rng::seed_from_u64(7)).unwrap();
    let pks = Arc::new(pks);
    // Exercise the subset with both broadcasts: Bracha for even seeds, AVID for odd ones.
    let variant = if seed.is_multiple_of(2) {
        beat_types::Variant::Beat1
    } else {
        beat_types::Variant::Beat0
    };
    let params = crate::Params {
        variant,
        ..crate::Params::default()
    };
    let bc = BroadcastConfig::new(c, &params);
    let nodes = sks.into_iter().map(|key| {
        let id = key.holder();
        let acs = Subset::new(id, c, Epoch(0), &bc, pks.clone(), 64);
        (id, AcsNode { acs, key })
    });
    TestNet::new(nodes, seed)
}

fn value(i: usize) -> Bytes {
    Bytes::from(format!("proposal of {i}"))
}

fn run(n: usize, proposers: &[usize], silent: &[usize], seed: u64) -> TestNet<AcsNode> {
    let mut net = net(n, seed);
    net.silent = silent.iter().map(|i| NodeId::from_index(*i)).collect();
    for &i in proposers {
        let id = NodeId::from_index(i);
        let step = net.nodes.get_mut(&id).unwrap().acs.propose(id, value(i));
        net.absorb(id, step);
    }
    net.run(5_000_000);
    net
}

fn check(net: &TestNet<AcsNode>, n: usize, honest: &[usize]) {
    let c = Committee::new(n).unwrap();
    let first = &net.outputs[&NodeId::from_index(honest[0])];
    assert_eq!(first.len(), 1, "exactly one output");
    for &i in honest {
        assert_eq!(&net.outputs[&NodeId::from_index(i)], first, "agreement");
        assert_eq!(net.faults_against(NodeId::from_index(i)), 0);
    }
    let subset = &first[0];
    assert!(subset.len() >= c.quorum(), "|S| ≥ n − f");
    for (p, d) in subset {
        assert_eq!(d, &Delivered::Value(value(p.index())), "validity");
    }
    let honest_included = subset
        .iter()
        .filter(|(p, _)| honest.contains(&p.index()))
        .count();
    assert!(honest_included >= c.quorum() - c.f());
}

#[test]
fn all_honest_agree_on_a_large_subset() {
    for n in [1, 4, 5, 7, 10] {
        for seed in 0..8 {
            let all: Vec<usize> = (0..n).collect();
            let net = run(n, &all, &[], seed);
            check(&net, n, &all);
        }
    }
}

#[test]
fn f_silent_replicas_do_not_block_the_subset() {
    for (n, seed) in [(4, 1), (7, 2), (10, 3), (7, 4), (4, 5)] {
        let f = (n - 1) / 3;
        let honest: Vec<usize> = (0..n - f).collect();
        let net = run(n, &honest, &(n - f..n).collect::<Vec<_>>(), seed);
        check(&net, n, &honest);
    }
}

#[test]
fn replicas_that_receive_but_never_propose_are_excluded() {
    // f replicas receive and relay but never propose ("silent proposers").
    for (n, seed) in [(4, 11), (7, 12), (10, 13)] {
        let f = (n - 1) / 3;
        let proposers: Vec<usize> = (f..n).collect();
        let all: Vec<usize> = (0..n).collect();
        let net = run(n, &proposers, &[], seed);
        check(&net, n, &all);
        let subset = &net.outputs[&NodeId(0)][0];
        assert!(subset.iter().all(|(p, _)| p.index() >= f));
    }
}
