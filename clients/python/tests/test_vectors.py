"""The Rust-generated test vectors verify here exactly as in beat_client, and alterations fail."""

import copy
import json
import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import beat_verify as bv  # noqa: E402

VECTORS = json.loads((pathlib.Path(__file__).parent / "vectors.json").read_text())


def unhex_batch(b):
    out = {"epoch": b["epoch"], "contributions": [], "ordered_labels": [bytes.fromhex(x) for x in b["ordered_labels"]]}
    for c in b["contributions"]:
        if "transactions" in c:
            out["contributions"].append({"proposer": c["proposer"], "transactions": [bytes.fromhex(t) for t in c["transactions"]]})
        elif "rejected" in c:
            out["contributions"].append({"proposer": c["proposer"], "rejected": c["rejected"]})
        else:
            s = c["stored"]
            out["contributions"].append({"proposer": c["proposer"], "stored": {"commitment": bytes.fromhex(s["commitment"]), "payload_len": s["payload_len"]}})
    return out


def unhex_certificate(c):
    return {k: (v if k == "epoch" else bytes.fromhex(v)) for k, v in c.items()}


COMMITTEE = bytes.fromhex(VECTORS["committee_digest"])
GROUP_KEY = bytes.fromhex(VECTORS["group_key"])
EPOCHS = [(unhex_batch(e["batch"]), unhex_certificate(e["certificate"]), e) for e in VECTORS["epochs"]]


class Vectors(unittest.TestCase):
    def test_digests_links_and_genesis_match(self):
        self.assertEqual(bv.genesis(COMMITTEE).hex(), VECTORS["genesis"])
        previous = bv.genesis(COMMITTEE)
        for batch, _, raw in EPOCHS:
            digest = bv.batch_digest(batch)
            self.assertEqual(digest.hex(), raw["digest"])
            previous = bv.link(COMMITTEE, batch["epoch"], digest, previous)
            self.assertEqual(previous.hex(), raw["link"])

    def test_the_history_verifies_and_alterations_do_not(self):
        chain = bv.ChainVerifier(COMMITTEE, GROUP_KEY)
        for batch, cert, raw in EPOCHS:
            self.assertEqual(chain.verify(batch, cert).hex(), raw["link"])

        batch0, cert0, _ = EPOCHS[0]
        batch1, cert1, _ = EPOCHS[1]
        altered = copy.deepcopy(batch0)
        altered["contributions"][0]["transactions"].reverse()
        with self.assertRaisesRegex(bv.VerificationError, "not the certified"):
            bv.ChainVerifier(COMMITTEE, GROUP_KEY).verify(altered, cert0)
        with self.assertRaisesRegex(bv.VerificationError, "expected epoch 0"):
            bv.ChainVerifier(COMMITTEE, GROUP_KEY).verify(batch1, cert1)
        swapped = dict(cert0, signature=cert1["signature"])
        with self.assertRaisesRegex(bv.VerificationError, "not the committee's"):
            bv.ChainVerifier(COMMITTEE, GROUP_KEY).verify(batch0, swapped)
        with self.assertRaisesRegex(bv.VerificationError, "another committee"):
            bv.ChainVerifier(bytes(32), GROUP_KEY).verify(batch0, cert0)
        with self.assertRaises(bv.VerificationError):
            bv.ChainVerifier(COMMITTEE, GROUP_KEY).verify(batch0, dict(cert0, signature=bytes(48)))


if __name__ == "__main__":
    unittest.main()
