//! Full delivery for BEAT3/BEAT4: after agreement, every replica sends its verified fragments
//! of every agreed dispersal to everyone and decodes each contribution from `k` verified
//! fragments (R1–R3 in the module docs of `epoch`).

use std::{collections::BTreeMap, sync::Arc};

use beat_crypto::avid_fp::{AvidFpCode, Fpcc, Fragment};
use beat_types::NodeId;
use bytes::Bytes;

use crate::{Fault, FaultKind};

/// The decoded contributions: `Some(bytes)`, the first `payload_len` bytes of the agreed
/// codeword, or `None` if the Reed–Solomon codec refused `k` verified fragments (which it does
/// not for distinct indices of the right length; kept so that a codec error is a rejected
/// contribution rather than a stalled epoch).
pub(crate) type Retrieved = BTreeMap<NodeId, Option<Bytes>>;

#[derive(Debug)]
pub(crate) struct Retrieval {
    code: Arc<AvidFpCode>,
    n: usize,
    targets: BTreeMap<NodeId, Fpcc>,
    fragments: BTreeMap<NodeId, BTreeMap<u32, Fragment>>,
    results: Retrieved,
    /// This replica's own MDS fragments, which it sends to everyone.
    own: Vec<(NodeId, Fragment)>,
}

impl Retrieval {
    /// Starts retrieving the contributions of `targets`, with this replica's own verified
    /// fragments.
    pub fn new(
        code: Arc<AvidFpCode>,
        n: usize,
        targets: BTreeMap<NodeId, Fpcc>,
        own: BTreeMap<NodeId, Vec<Fragment>>,
    ) -> Self {
        let own_list: Vec<(NodeId, Fragment)> = own
            .iter()
            .filter(|(j, _)| targets.contains_key(j))
            .flat_map(|(j, fs)| {
                fs.iter()
                    .filter(|f| (f.index as usize) < n)
                    .map(|f| (*j, f.clone()))
            })
            .collect();
        let mut r = Self {
            code,
            n,
            fragments: targets.keys().map(|j| (*j, BTreeMap::new())).collect(),
            targets,
            results: BTreeMap::new(),
            own: own_list,
        };
        for (j, fragments) in own {
            if let Some(held) = r.fragments.get_mut(&j) {
                for f in fragments.into_iter().filter(|f| (f.index as usize) < n) {
                    held.insert(f.index, f);
                }
            }
            r.try_decode(j);
        }
        let pending: Vec<NodeId> = r.targets.keys().copied().collect();
        for j in pending {
            r.try_decode(j);
        }
        r
    }

    /// R1: the fragments this replica sends to everyone (its MDS fragments only).
    pub fn own_fragments(&self) -> Vec<(NodeId, Fragment)> {
        self.own.clone()
    }

    /// R2: adds `sender`'s fragments; each must be one `sender` holds, for an agreed
    /// dispersal, and verify against its cross-checksum. Returns the faults observed.
    pub fn add(&mut self, sender: NodeId, fragments: Vec<(NodeId, Fragment)>) -> Vec<Fault> {
        let mut bad = false;
        let mut touched = Vec::new();
        for (j, f) in fragments {
            let (Some(fpcc), Some(held)) = (self.targets.get(&j), self.fragments.get_mut(&j))
            else {
                bad = true;
                continue;
            };
            if self.results.contains_key(&j) || held.contains_key(&f.index) {
                continue;
            }
            let owned = (f.index as usize) < self.n
                && self.code.holder_of(f.index as usize) == Some(sender.index());
            if !owned || self.code.verify_fragment(fpcc, &f).is_err() {
                bad = true;
                continue;
            }
            held.insert(f.index, f);
            touched.push(j);
        }
        for j in touched {
            self.try_decode(j);
        }
        if bad {
            vec![Fault::new(sender, FaultKind::InvalidFragment)]
        } else {
            Vec::new()
        }
    }

    /// R3: decodes once `k` verified fragments are in.
    fn try_decode(&mut self, j: NodeId) {
        let (Some(fpcc), Some(held)) = (self.targets.get(&j), self.fragments.get(&j)) else {
            return;
        };
        if self.results.contains_key(&j) || held.len() < self.code.k() {
            return;
        }
        let fragments: Vec<Fragment> = held.values().take(self.code.k()).cloned().collect();
        let result = self.code.decode(fpcc, &fragments).ok().map(Bytes::from);
        self.results.insert(j, result);
        if let Some(held) = self.fragments.get_mut(&j) {
            held.clear();
        }
    }

    pub fn is_done(&self) -> bool {
        self.results.len() == self.targets.len()
    }

    pub fn take_results(&mut self) -> Retrieved {
        std::mem::take(&mut self.results)
    }
}

#[cfg(test)]
mod tests {
    use beat_crypto::avid_fp::Layout;
    use beat_types::Committee;

    use super::*;

    /// R3 (issue 12, bug 5): a dispersal whose padding is not zero decodes, to its first
    /// `payload_len` bytes, at every replica — whichever `k` fragments each one uses.
    #[test]
    fn nonzero_padding_decodes_to_the_payload_from_any_k_fragments() {
        let committee = Committee::new(4).unwrap(); // k = 2
        for layout in [Layout::Mds, Layout::pyramid(committee)] {
            let code = Arc::new(AvidFpCode::new(committee, layout).unwrap());
            let payload: Vec<u8> = (1..=100).collect();
            let mut data = payload.clone();
            data.extend((100..128).map(|i| i as u8)); // S = 64: 28 bytes of non-zero padding
            let (_, fragments) = code.disperse(&data).unwrap();
            let fpcc = code.cross_checksum(100, &fragments).unwrap();
            let proposer = NodeId(3);
            for (mine, other) in [(0usize, 1usize), (2, 3), (1, 3)] {
                let targets = BTreeMap::from([(proposer, fpcc.clone())]);
                let own = BTreeMap::from([(proposer, vec![fragments[mine].clone()])]);
                let mut r = Retrieval::new(code.clone(), 4, targets, own);
                assert!(!r.is_done());
                let faults = r.add(
                    NodeId(other as u32),
                    vec![(proposer, fragments[other].clone())],
                );
                assert!(faults.is_empty());
                assert!(r.is_done());
                assert_eq!(
                    r.take_results(),
                    BTreeMap::from([(proposer, Some(Bytes::from(payload.clone())))]),
                    "{layout:?}, fragments {mine} and {other}"
                );
            }
        }
    }
}
