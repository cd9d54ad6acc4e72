"""A small BEAT client in Python: submit transactions to one replica, watch its certified
history and verify every epoch with the committee file alone (beat_verify).

The gRPC stubs are generated from the repository's proto/ at start (grpcio-tools), so the
client always speaks the contract the Rust services are built from.

    python beat_client.py --endpoint 127.0.0.1:7100 --committee committee.json \
        submit-and-verify --count 20

submits 20 transactions (random 16-byte prefix), watches WatchBatches with `certified` from
epoch 0, verifies each batch and certificate in order, and exits 0 once every submitted
transaction is in a verified batch; 1 if anything fails to verify; 2 on a timeout or an RPC
error. A replica that serves an altered batch, a certificate of another history or no
certificate is caught, whatever the replica says.
"""

import argparse
import json
import os
import secrets
import sys
import tempfile
import time

import beat_verify as bv

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTOS = ["beat/common/v1/common.proto", "beat/consensus/v1/consensus.proto"]


def load_stubs():
    """Generates the Python modules for the ordering API into a temporary directory and
    imports them."""
    from grpc_tools import protoc  # pylint: disable=import-outside-toplevel
    import grpc_tools  # pylint: disable=import-outside-toplevel

    out = tempfile.mkdtemp(prefix="beat-stubs-")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out}",
            f"--grpc_python_out={out}"] + [os.path.join(PROTO_ROOT, p) for p in PROTOS]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO_ROOT}")
    sys.path.insert(0, out)
    from beat.consensus.v1 import consensus_pb2, consensus_pb2_grpc  # pylint: disable=import-outside-toplevel,import-error

    return consensus_pb2, consensus_pb2_grpc


def committee_anchor(path):
    """The committee digest and the group key for commit certificates, from the committee file
    (`digest` is written by `beat keygen` and checked by every Rust loader; the group key is
    the committee's BLS12-381 public key, `keys.coin.public_key`)."""
    with open(path, encoding="utf-8") as f:
        committee = json.load(f)
    if "digest" not in committee:
        raise ValueError(f"{path} has no digest: regenerate it with a current `beat keygen`")
    return bytes.fromhex(committee["digest"]), bytes.fromhex(committee["keys"]["coin"]["public_key"])


def batch_dict(batch):
    """A protobuf Batch as beat_verify expects it."""
    contributions = []
    for c in batch.contributions:
        kind = c.WhichOneof("content")
        if kind == "transactions":
            contributions.append({"proposer": c.proposer,
                                  "transactions": list(c.transactions.transactions)})
        elif kind == "rejected":
            contributions.append({"proposer": c.proposer, "rejected": c.rejected})
        elif kind == "stored":
            contributions.append({"proposer": c.proposer,
                                  "stored": {"commitment": c.stored.commitment,
                                             "payload_len": c.stored.payload_len}})
        else:
            raise bv.VerificationError(f"epoch {batch.epoch}: a contribution without content")
    return {"epoch": batch.epoch, "contributions": contributions,
            "ordered_labels": list(batch.ordered_labels)}


def certificate_dict(certificate):
    """A protobuf CommitCertificate as beat_verify expects it."""
    return {"committee_digest": certificate.committee_digest, "epoch": certificate.epoch,
            "batch_digest": certificate.batch_digest, "previous": certificate.previous,
            "signature": certificate.signature}


def submit_and_verify(endpoint, committee_path, count, timeout):
    """The command of the same name (module docs); returns the exit code."""
    import grpc  # pylint: disable=import-outside-toplevel

    pb, pb_grpc = load_stubs()
    committee_digest, group_key = committee_anchor(committee_path)
    prefix = secrets.token_bytes(16)
    transactions = [prefix + i.to_bytes(4, "big") for i in range(count)]
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(endpoint) as channel:
        client = pb_grpc.OrderingServiceStub(channel)
        response = client.Submit(pb.SubmitRequest(transactions=transactions),
                                 timeout=max(1.0, deadline - time.monotonic()))
        accepted = sum(1 for r in response.receipts if r.admission == pb.ADMISSION_ACCEPTED)
        print(f"submitted {count} transactions to {endpoint}: {accepted} accepted")
        missing = set(transactions)
        verifier = bv.ChainVerifier(committee_digest, group_key)
        watch = client.WatchBatches(pb.WatchBatchesRequest(from_epoch=0, certified=True),
                                    timeout=max(1.0, deadline - time.monotonic()))
        for message in watch:
            if not message.HasField("batch") or not message.HasField("certificate"):
                raise bv.VerificationError("a certified watch served a batch without certificate")
            batch = batch_dict(message.batch)
            verifier.verify(batch, certificate_dict(message.certificate))
            for c in batch["contributions"]:
                missing.difference_update(c.get("transactions", []))
            print(f"epoch {message.batch.epoch}: verified; {len(missing)} transactions to go")
            if not missing:
                watch.cancel()
                print(f"all {count} transactions are in verified epochs 0..{verifier.next_epoch - 1}")
                return 0
    return 2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--endpoint", required=True, help="host:port of a replica's ordering API")
    parser.add_argument("--committee", required=True, help="the committee file")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole run")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("submit-and-verify", help="submit, watch certified, verify")
    run.add_argument("--count", type=int, default=20)
    args = parser.parse_args(argv)
    import grpc  # pylint: disable=import-outside-toplevel

    try:
        return submit_and_verify(args.endpoint, args.committee, args.count, args.timeout)
    except bv.VerificationError as e:
        print(f"verification failed: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"rpc failed: {e.code()}: {e.details()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
