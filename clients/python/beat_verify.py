"""Verify BEAT commit certificates with the committee file alone (docs/wire.md section 6).

A BEAT replica serves committed batches with a commit certificate: the committee's threshold
BLS12-381 signature on the epoch's chain link. This module recomputes the batch digest from the
batch's contents, the chain link from the digest and the previous link, and checks the signature
against the committee's group key. It needs only hashlib and py_ecc (pure Python, slow: about a
second per pairing check).

A batch here is a dict shaped like ``beat.common.v1.Batch``::

    {"epoch": int,
     "contributions": [{"proposer": int, "transactions": [bytes, ...]}
                       | {"proposer": int, "rejected": int}            # RejectReason value
                       | {"proposer": int, "stored": {"commitment": bytes, "payload_len": int}}],
     "ordered_labels": [bytes, ...]}

and a certificate a dict shaped like ``beat.common.v1.CommitCertificate`` (bytes fields).
"""

import hashlib
import struct

from py_ecc.bls.hash_to_curve import hash_to_G1
from py_ecc.bls.point_compression import decompress_G1, decompress_G2
from py_ecc.optimized_bls12_381 import FQ12, G2, final_exponentiate, neg, pairing
from py_ecc.optimized_bls12_381 import is_inf

BATCH_TAG = b"_BEAT_CORE_BATCH"
GENESIS_TAG = b"_BEAT_CRYPTO_COMMIT_GENESIS"
STATEMENT_TAG = b"_BEAT_CRYPTO_COMMIT_STATEMENT"
HASH_TO_G1_DST = b"_BEAT_CRYPTO_COMMIT_BLS12381G1_XMD:SHA-256_SSWU_RO_"


class VerificationError(Exception):
    """The served batch or certificate does not verify."""


class _Hasher:
    """SHA-256 over length-prefixed parts (beat_crypto::hash::Hasher)."""

    def __init__(self, tag):
        self._h = hashlib.sha256()
        self.part(tag)

    def part(self, data):
        self._h.update(struct.pack("<Q", len(data)))
        self._h.update(data)
        return self

    def u64(self, value):
        return self.part(struct.pack("<Q", value))

    def digest(self):
        return self._h.digest()


def batch_digest(batch):
    """The batch digest (Batch::digest), from the batch's contents."""
    h = _Hasher(BATCH_TAG)
    h.u64(batch["epoch"]).u64(len(batch["contributions"]))
    for c in batch["contributions"]:
        h.u64(c["proposer"])
        if "transactions" in c:
            h.part(b"\x00").u64(len(c["transactions"]))
            for tx in c["transactions"]:
                h.part(tx)
        elif "rejected" in c:
            h.part(b"\x01").u64(c["rejected"])
        elif "stored" in c:
            h.part(b"\x02").part(c["stored"]["commitment"]).u64(c["stored"]["payload_len"])
        else:
            raise VerificationError("a contribution without content")
    h.u64(len(batch["ordered_labels"]))
    for label in batch["ordered_labels"]:
        h.part(label)
    return h.digest()


def genesis(committee_digest):
    """The chain link before epoch 0."""
    return _Hasher(GENESIS_TAG).part(committee_digest).digest()


def link(committee_digest, epoch, digest, previous):
    """The chain link of an epoch: what its certificate signs."""
    return _Hasher(STATEMENT_TAG).part(committee_digest).u64(epoch).part(digest).part(previous).digest()


def _g1(data):
    if len(data) != 48:
        raise VerificationError("a G1 point is 48 bytes")
    try:
        return decompress_G1(int.from_bytes(data, "big"))
    except ValueError as e:
        raise VerificationError(f"not a G1 point: {e}") from e


def _g2(data):
    if len(data) != 96:
        raise VerificationError("a G2 point is 96 bytes")
    try:
        return decompress_G2((int.from_bytes(data[:48], "big"), int.from_bytes(data[48:], "big")))
    except ValueError as e:
        raise VerificationError(f"not a G2 point: {e}") from e


def signature_valid(group_key, chain_link, signature):
    """e(signature, g2) == e(H(link), group key), as one product of pairings."""
    sig = _g1(signature)
    if is_inf(sig):
        return False
    message = hash_to_G1(chain_link, HASH_TO_G1_DST, hashlib.sha256)
    product = pairing(G2, sig, final_exponentiate=False) * pairing(
        neg(_g2(group_key)), message, final_exponentiate=False
    )
    return final_exponentiate(product) == FQ12.one()


class ChainVerifier:
    """Verifies certified batches in epoch order, each continuing the last (beat_client's
    ChainVerifier). Start from genesis (`previous=None`, `next_epoch=0`), or resume after a
    verified epoch with its link."""

    def __init__(self, committee_digest, group_key, next_epoch=0, previous=None):
        self.committee_digest = committee_digest
        self.group_key = group_key
        self.next_epoch = next_epoch
        self.previous = genesis(committee_digest) if previous is None and next_epoch == 0 else previous

    def verify(self, batch, certificate):
        """Checks one batch and its certificate; returns the epoch's chain link."""
        epoch = batch["epoch"]
        if certificate is None:
            raise VerificationError(f"epoch {epoch}: no certificate")
        if certificate["committee_digest"] != self.committee_digest:
            raise VerificationError(f"epoch {epoch}: another committee's certificate")
        if epoch != self.next_epoch or certificate["epoch"] != epoch:
            raise VerificationError(f"expected epoch {self.next_epoch}, got {epoch}")
        digest = batch_digest(batch)
        if certificate["batch_digest"] != digest:
            raise VerificationError(f"epoch {epoch}: the batch is not the certified one")
        if self.previous is not None and certificate["previous"] != self.previous:
            raise VerificationError(f"epoch {epoch}: the certificate continues another history")
        chain_link = link(self.committee_digest, epoch, digest, certificate["previous"])
        if not signature_valid(self.group_key, chain_link, certificate["signature"]):
            raise VerificationError(f"epoch {epoch}: the signature is not the committee's")
        self.next_epoch = epoch + 1
        self.previous = chain_link
        return chain_link
