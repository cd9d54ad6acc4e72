"""The client's protobuf conversions: the Rust test vectors, carried in generated protobuf
messages and converted back, verify; an altered message does not."""

import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import beat_client  # noqa: E402
import beat_verify as bv  # noqa: E402
from test_vectors import COMMITTEE, EPOCHS, GROUP_KEY  # noqa: E402

consensus_pb2, _ = beat_client.load_stubs()
from beat.common.v1 import common_pb2 as common  # noqa: E402  pylint: disable=import-error,wrong-import-position


def to_proto(batch, certificate):
    """A vector as the messages a replica would send."""
    b = common.Batch(epoch=batch["epoch"], ordered_labels=batch["ordered_labels"])
    for c in batch["contributions"]:
        pc = b.contributions.add(proposer=c["proposer"])
        if "transactions" in c:
            pc.transactions.transactions.extend(c["transactions"])
        elif "rejected" in c:
            pc.rejected = c["rejected"]
        else:
            pc.stored.commitment = c["stored"]["commitment"]
            pc.stored.payload_len = c["stored"]["payload_len"]
    return consensus_pb2.WatchBatchesResponse(batch=b, certificate=common.CommitCertificate(**certificate))


class Conversions(unittest.TestCase):
    def test_vectors_survive_the_protobuf_round_trip_and_alterations_do_not(self):
        chain = bv.ChainVerifier(COMMITTEE, GROUP_KEY)
        kinds = set()
        for batch, cert, raw in EPOCHS:
            message = consensus_pb2.WatchBatchesResponse.FromString(to_proto(batch, cert).SerializeToString())
            kinds.update(c.WhichOneof("content") for c in message.batch.contributions)
            converted = beat_client.batch_dict(message.batch)
            self.assertEqual(converted, batch)
            link = chain.verify(converted, beat_client.certificate_dict(message.certificate))
            self.assertEqual(link.hex(), raw["link"])
        self.assertIn("transactions", kinds)

        batch0, cert0, _ = EPOCHS[0]
        message = to_proto(batch0, cert0)
        for c in message.batch.contributions:
            if c.WhichOneof("content") == "transactions" and c.transactions.transactions:
                c.transactions.transactions[0] = c.transactions.transactions[0] + b"!"
                break
        with self.assertRaisesRegex(bv.VerificationError, "not the certified"):
            bv.ChainVerifier(COMMITTEE, GROUP_KEY).verify(
                beat_client.batch_dict(message.batch), beat_client.certificate_dict(message.certificate))


if __name__ == "__main__":
    unittest.main()
