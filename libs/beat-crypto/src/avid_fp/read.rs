//! Retrieval: full decoding from `k` verified MDS fragments and pyramid partial reads.

use std::ops::Range;

use super::{AvidFpCode, AvidFpError, Fpcc, Fragment, code::xor_into};
use crate::{erasure::Framed, rs};

/// A fragment that failed verification, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// The fragment's claimed index.
    pub index: u32,
    /// Why it was rejected.
    pub reason: AvidFpError,
}

/// The result of a full decode, with the fragments that had to be dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeOutcome {
    /// The dispersed payload.
    pub payload: Vec<u8>,
    /// Fragments that failed verification (their senders are faulty).
    pub rejected: Vec<Rejection>,
}

/// The result of a pyramid partial read of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRead {
    /// The group read.
    pub group: usize,
    /// The payload bytes the group holds, in payload coordinates, clipped to `payload_len`
    /// (possibly empty when the payload ends before the group starts).
    pub byte_range: Range<u64>,
    /// `payload[byte_range]`.
    pub bytes: Vec<u8>,
    /// The data fragment rebuilt from the local parity, if one was.
    pub repaired: Option<u32>,
    /// Fragments that failed verification (their senders are faulty).
    pub rejected: Vec<u32>,
}

fn indices(rejected: &[Rejection]) -> Vec<u32> {
    rejected.iter().map(|r| r.index).collect()
}

// === impl AvidFpCode ===

impl AvidFpCode {
    /// Decodes the payload from any `k` MDS fragments that verify against `fpcc`.
    ///
    /// Bad fragments are dropped; see [`decode_reporting`](Self::decode_reporting) to learn
    /// which.
    pub fn decode(&self, fpcc: &Fpcc, fragments: &[Fragment]) -> Result<Vec<u8>, AvidFpError> {
        self.decode_reporting(fpcc, fragments).map(|o| o.payload)
    }

    /// Decodes like [`decode`](Self::decode) and reports the fragments that failed
    /// verification.
    ///
    /// Fragments are verified in index order (data fragments first, so that in the common
    /// case no Reed–Solomon decoding is needed) until `k` MDS fragments have verified; the
    /// remaining ones are neither used nor checked. Local parities are ignored, and of several
    /// fragments with the same index the first that verifies is used. The payload is the first
    /// `payload_len` bytes of the decoded data; the padding after it is not looked at (see
    /// *Deviations* in the [module docs](super)), so every reader — full or partial — gets the
    /// same bytes from any verified fragments.
    pub fn decode_reporting(
        &self,
        fpcc: &Fpcc,
        fragments: &[Fragment],
    ) -> Result<DecodeOutcome, AvidFpError> {
        fpcc.validate(self)?;
        let fp = self.fingerprinter(fpcc);
        let mut order: Vec<&Fragment> = fragments.iter().collect();
        order.sort_by_key(|f| f.index);
        let mut accepted: Vec<(usize, &[u8])> = Vec::with_capacity(self.k());
        let mut have = vec![false; self.n()];
        let mut rejected = Vec::new();
        for f in order {
            if accepted.len() == self.k() {
                break;
            }
            let i = f.index as usize;
            match have.get(i) {
                Some(true) => continue,
                // A local parity: not an MDS fragment.
                None if i < self.fragment_count() => continue,
                _ => {}
            }
            match self.verify_with(fpcc, &fp, f) {
                Ok(()) => {
                    have[i] = true;
                    accepted.push((i, &f.bytes));
                }
                Err(reason) => rejected.push(Rejection {
                    index: f.index,
                    reason,
                }),
            }
        }
        if accepted.len() < self.k() {
            return Err(AvidFpError::NotEnoughFragments {
                have: accepted.len(),
                need: self.k(),
                rejected: indices(&rejected),
            });
        }
        let s = self.fragment_len(fpcc.payload_len);
        let data = rs::recover_data(
            &self.parity_rows,
            self.k(),
            self.n() - self.k(),
            s,
            &accepted,
        )?;
        let framed = Framed {
            data: &data,
            shard_len: s,
        };
        // payload_len ≤ max_payload_len (validated), so it fits a usize.
        let len = fpcc.payload_len as usize;
        let mut payload = vec![0u8; len];
        framed.copy_to(0, &mut payload);
        Ok(DecodeOutcome { payload, rejected })
    }

    /// Reads the payload bytes of one pyramid group from that group's data fragments.
    ///
    /// Fragments other than the group's data fragments and local parity are ignored. If
    /// exactly one data fragment of the group is missing or fails verification, it is rebuilt
    /// as the local parity minus the others (the local parity is verified only then). With two
    /// or more missing, or the local parity unavailable, the error
    /// [`AvidFpError::GroupUnrecoverable`] says which fragments are missing, and the caller
    /// falls back to [`decode`](Self::decode). The bytes are exactly those a full
    /// [`decode`](Self::decode) returns in [`GroupRead::byte_range`]: neither looks at the
    /// padding after the payload, which may lie in other groups.
    pub fn read_group(
        &self,
        fpcc: &Fpcc,
        group: usize,
        fragments: &[Fragment],
    ) -> Result<GroupRead, AvidFpError> {
        if self.group_count() == 0 {
            return Err(AvidFpError::NotPyramid);
        }
        let range = self
            .group_range(group)
            .ok_or(AvidFpError::GroupOutOfRange {
                group,
                groups: self.group_count(),
            })?;
        let local_parity = self.n() + group;
        fpcc.validate(self)?;
        let fp = self.fingerprinter(fpcc);
        let mut members: Vec<Option<&[u8]>> = vec![None; range.len()];
        let mut rejected = Vec::new();
        for f in fragments {
            let i = f.index as usize;
            let Some(slot) = i.checked_sub(range.start).and_then(|p| members.get_mut(p)) else {
                continue;
            };
            if slot.is_some() {
                continue;
            }
            match self.verify_with(fpcc, &fp, f) {
                Ok(()) => *slot = Some(&f.bytes),
                Err(_) => rejected.push(f.index),
            }
        }
        let missing: Vec<usize> = (0..members.len())
            .filter(|&p| members[p].is_none())
            .collect();
        let s = self.fragment_len(fpcc.payload_len);
        let mut repaired = None;
        let mut rebuilt = Vec::new();
        if let [p] = missing[..] {
            let mut parity_verified = false;
            for f in fragments
                .iter()
                .filter(|f| f.index as usize == local_parity)
            {
                match self.verify_with(fpcc, &fp, f) {
                    Ok(()) => {
                        rebuilt = f.bytes.clone();
                        parity_verified = true;
                        break;
                    }
                    Err(_) => rejected.push(f.index),
                }
            }
            if parity_verified {
                for d in members.iter().flatten() {
                    xor_into(&mut rebuilt, d);
                }
                repaired = Some((range.start + p) as u32);
            } else {
                return Err(self.unrecoverable(group, &range, &missing, rejected));
            }
        } else if !missing.is_empty() {
            return Err(self.unrecoverable(group, &range, &missing, rejected));
        }
        let data: Vec<&[u8]> = members
            .iter()
            .map(|m| m.unwrap_or(rebuilt.as_slice()))
            .collect();
        // The group holds padded bytes [start·S, end·S); the payload is [0, payload_len).
        let start = (range.start * s) as u64;
        let end = (range.end * s) as u64;
        let byte_range = start.min(fpcc.payload_len)..end.min(fpcc.payload_len);
        let keep = (byte_range.end - byte_range.start) as usize;
        let mut bytes = Vec::with_capacity(range.len() * s);
        for d in &data {
            bytes.extend_from_slice(d);
        }
        bytes.truncate(keep);
        Ok(GroupRead {
            group,
            byte_range,
            bytes,
            repaired,
            rejected,
        })
    }

    fn unrecoverable(
        &self,
        group: usize,
        range: &Range<usize>,
        missing: &[usize],
        rejected: Vec<u32>,
    ) -> AvidFpError {
        AvidFpError::GroupUnrecoverable {
            group,
            missing: missing.iter().map(|&p| (range.start + p) as u32).collect(),
            local_parity: (self.n() + group) as u32,
            rejected,
        }
    }
}
