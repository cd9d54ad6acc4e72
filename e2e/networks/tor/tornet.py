#!/usr/bin/env python3
"""Private, offline Tor test network on loopback (C tor, TestingTorNetwork).

Subcommands:
  up     --dir DIR [--relays N] [--base-port P] [--voting-interval S] ...
  status --dir DIR
  down   --dir DIR [--grace S]

`up` creates 3 directory authorities, N relays (some of them exits, all
HSDirs) and, unless --no-client, one C tor client with a SOCKS port and a
ControlPort. It waits (bounded by --timeout) until the authorities publish a
consensus listing every relay as Running/Valid with the expected flags and the
client has bootstrapped, then writes:

  DIR/arti.toml     configuration fragment for arti-client 0.47
  DIR/network.json  everything a test needs (identities, ports, policies, timing)

Every tor process runs under `timeout(1)` (--lifetime) so that it dies by
itself even if nobody calls `down`; `down` stops them by PID (SIGTERM, grace
period, then SIGKILL). Only 127.0.0.1 is used. Python 3.11 standard library
only; needs the Debian `tor` package (tor, tor-gencert).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import netproc  # noqa: E402  (e2e/networks/netproc.py: process management shared with i2pdnet.py)
from netproc import (  # noqa: E402
    inner_pid,
    load_pids,
    ours,
    pid_alive,
    port_free,
    save_pids,
    stop_all,
    tail,
)

log = netproc.logger("tornet")

HOST = "127.0.0.1"
N_AUTHORITIES = 3
# Shared-random protocol: 12 commit rounds + 12 reveal rounds per run.
SR_ROUNDS_PER_PHASE = 12
SR_ROUNDS_PER_RUN = 24
# arti 0.47 clamps the `hsdir_interval` consensus parameter to 5..14400 minutes.
ARTI_HSDIR_INTERVAL_MIN = 5
NETWORK_FILE = "network.json"
ARTI_FILE = "arti.toml"
SCHEMA_VERSION = 1


# Never let an http_proxy/https_proxy environment variable route our loopback queries elsewhere.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TornetError(Exception):
    """A failure with a message meant for the user."""


# --------------------------------------------------------------------------- #
# Layout
# --------------------------------------------------------------------------- #


@dataclass
class Node:
    nick: str
    role: str  # "authority" | "relay" | "exit" | "client"
    index: int  # global node index, determines ports
    base_port: int
    datadir: Path
    rsa_fp: str = ""
    ed_id: str = ""
    v3ident: str = ""
    onion_services: list = field(default_factory=list)  # [(virtport, target)]

    @property
    def is_relay(self) -> bool:
        return self.role != "client"

    @property
    def orport(self) -> int:
        return self.base_port + self.index

    @property
    def dirport(self) -> int:
        return self.base_port + 32 + self.index

    @property
    def controlport(self) -> int:
        return self.base_port + 64 + self.index

    @property
    def socksport(self) -> int:
        return self.base_port + 96


def exit_port_default(base: int) -> str:
    return f"{base + 100}-{base + 199}"


def parse_port_spec(spec: str) -> list[tuple[int, int]]:
    """'80,443,17100-17199' -> [(80, 80), (443, 443), (17100, 17199)]."""
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            lo_i, hi_i = int(lo), int(hi)
        else:
            lo_i = hi_i = int(part)
        if not (1 <= lo_i <= hi_i <= 65535):
            raise TornetError(f"bad port range {part!r} in --exit-ports")
        out.append((lo_i, hi_i))
    if not out:
        raise TornetError("--exit-ports is empty")
    return out


def layout(d: Path, relays: int, exits: int, base: int, client: bool) -> list[Node]:
    nodes: list[Node] = []
    idx = 0
    for i in range(N_AUTHORITIES):
        nodes.append(Node(f"auth{i}", "authority", idx, base, d / f"auth{i}"))
        idx += 1
    for i in range(relays):
        role = "exit" if i < exits else "relay"
        nodes.append(Node(f"{'exit' if role == 'exit' else 'relay'}{i}", role, idx, base, d / f"relay{i}"))
        idx += 1
    if client:
        nodes.append(Node("client0", "client", idx, base, d / "client0"))
    return nodes


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    res = subprocess.run(cmd, **kw)
    if res.returncode != 0:
        raise TornetError(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    return res


def need_binary(name: str) -> str:
    return netproc.need_binary(name, TornetError, "apt-get install -y tor (it ships tor and tor-gencert)")


def hs_period_minutes(voting_interval: int) -> int:
    """C tor's onion-service time period on a TestingTorNetwork, in minutes."""
    return SR_ROUNDS_PER_RUN * voting_interval // 60


def check_voting_interval(v: int, vote_delay: int, dist_delay: int, allow_hs_mismatch: bool) -> None:
    if vote_delay + dist_delay >= v:
        raise TornetError(f"--vote-delay + --dist-delay ({vote_delay}+{dist_delay}) must be < --voting-interval ({v})")
    if 86400 % v != 0:
        raise TornetError(f"--voting-interval {v} must divide 86400")
    problems = []
    if (SR_ROUNDS_PER_PHASE * v) % 60 != 0:
        problems.append(
            "12*voting-interval is not a whole number of minutes, so C tor (which truncates the rotation "
            "offset to minutes) and arti (which uses seconds) place time periods differently"
        )
    if hs_period_minutes(v) < ARTI_HSDIR_INTERVAL_MIN:
        problems.append(
            f"24*voting-interval = {SR_ROUNDS_PER_RUN * v}s is shorter than arti's minimum hsdir_interval "
            f"({ARTI_HSDIR_INTERVAL_MIN} min), arti would clamp it and disagree with C tor"
        )
    if problems:
        msg = (
            f"voting interval {v}s: onion services will not interoperate between arti and C tor: "
            + "; ".join(problems)
            + ". Use a multiple of 5 s that is >= 15 s (15 s -> 6 min period, 20 s -> 8 min)."
        )
        if not allow_hs_mismatch:
            raise TornetError(msg + " (pass --allow-hs-mismatch to run anyway)")
        log("WARNING: " + msg)


# --------------------------------------------------------------------------- #
# Key generation and torrcs
# --------------------------------------------------------------------------- #


def gen_authority_cert(tor_gencert: str, node: Node) -> None:
    keys = node.datadir / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    os.chmod(keys, 0o700)
    cert = keys / "authority_certificate"
    if cert.exists():
        return
    run(
        [
            tor_gencert,
            "--create-identity-key",
            "--passphrase-fd",
            "0",
            "-i",
            str(keys / "authority_identity_key"),
            "-s",
            str(keys / "authority_signing_key"),
            "-c",
            str(cert),
            "-m",
            "12",
            "-a",
            f"{HOST}:{node.dirport}",
        ],
        input="\n",
    )


def read_v3ident(node: Node) -> str:
    cert = (node.datadir / "keys" / "authority_certificate").read_text()
    m = re.search(r"^fingerprint ([0-9A-F]{40})$", cert, re.M)
    if not m:
        raise TornetError(f"no fingerprint in {node.datadir}/keys/authority_certificate")
    return m.group(1)


def gen_relay_keys(tor: str, node: Node) -> None:
    """Create the relay's RSA and ed25519 identities and read both fingerprints."""
    base = [
        tor,
        "--defaults-torrc",
        str(node.datadir.parent / "empty-torrc"),
        "-f",
        str(node.datadir.parent / "empty-torrc"),
        "--quiet",
        "--Nickname",
        node.nick,
        "--ORPort",
        "1",
        "--DirAuthority",  # a dummy authority so tor does not talk about the real ones
        "dummy 127.0.0.1:1 " + "f" * 40,
        "--DataDirectory",
        str(node.datadir),
    ]
    node.datadir.mkdir(parents=True, exist_ok=True)
    os.chmod(node.datadir, 0o700)
    out = run(base[:1] + ["--list-fingerprint"] + base[1:]).stdout
    m = re.search(rf"^{re.escape(node.nick)} ((?:[0-9A-F]{{4}} ?){{10}})\s*$", out, re.M)
    if not m:
        raise TornetError(f"cannot parse rsa fingerprint of {node.nick}: {out!r}")
    node.rsa_fp = m.group(1).replace(" ", "")
    # The call above also created the ed25519 master key: a 32-byte header
    # ("== ed25519v1-public: type0 ==") and the 32-byte key, whose unpadded base64 is
    # the ed25519 identity. Fall back to a second tor call if the format is unexpected.
    pub = node.datadir / "keys" / "ed25519_master_id_public_key"
    raw = pub.read_bytes() if pub.exists() else b""
    if len(raw) == 64 and raw.startswith(b"== ed25519v1-public: type0 =="):
        node.ed_id = base64.b64encode(raw[32:]).decode().rstrip("=")
        return
    out = run(base[:1] + ["--list-fingerprint", "ed25519"] + base[1:]).stdout
    m = re.search(rf"^{re.escape(node.nick)} ([A-Za-z0-9+/]{{43}})\s*$", out, re.M)
    if not m:
        raise TornetError(f"cannot parse ed25519 identity of {node.nick}: {out!r}")
    node.ed_id = m.group(1)


def consensus_params(a: argparse.Namespace, nodes: list[Node]) -> list[str]:
    """Parameters the authorities vote into the consensus."""
    params = []
    if not a.no_hsdir_param:
        params.append(f"hsdir_interval={hs_period_minutes(a.voting_interval)}")
    # arti (and C tor) want a guard sample of >= 20 usable guards; on a network of a
    # handful of relays arti warns "Requested 45 relays, but only 0 were usable" every
    # second. Ask for what the network can actually provide.
    n_relays = sum(n.is_relay for n in nodes)
    params.append(f"guard-min-filtered-sample-size={max(1, n_relays // 2)}")
    return params


def torrc_for(node: Node, nodes: list[Node], a: argparse.Namespace, d: Path) -> str:
    auths = [n for n in nodes if n.role == "authority"]
    exits = [n for n in nodes if n.role == "exit"]
    v = a.voting_interval
    period = hs_period_minutes(v)
    lines = [
        "# generated by tornet.py -- private test network, loopback only",
        "TestingTorNetwork 1",
        f"DataDirectory {node.datadir}",
        f"Nickname {node.nick}",
        f"PidFile {node.datadir}/tor.pid",
        f"Log notice file {node.datadir}/notice.log",
        *( [f"Log info file {node.datadir}/info.log"] if a.info_logs else [] ),
        "SafeLogging 0",
        "LogTimeGranularity 1",
        "RunAsDaemon 0",
        "ShutdownWaitLength 0",
        "DisableDebuggerAttachment 0",
        "Sandbox 0",
        "AvoidDiskWrites 0",
        f"ControlPort {HOST}:{node.controlport}",
        "CookieAuthentication 1",
        f"CookieAuthFile {node.datadir}/control_auth_cookie",
        "AssumeReachable 1",
        "PathsNeededToBuildCircuits 0.25",
        "TestingDirAuthVoteGuard *",
        "TestingDirAuthVoteHSDir *",
        "TestingDirAuthVoteExit " + (",".join("$" + e.rsa_fp for e in exits) if exits else "*"),
        "TestingMinExitFlagThreshold 0",
        f"V3AuthNIntervalsValid {a.intervals_valid}",
        "ClientUseIPv6 0",
        "ClientPreferIPv6ORPort 0",
        # Exits resolve names through this file only; nothing goes to a real resolver.
        f"ServerDNSResolvConfFile {d}/resolv.conf",
        "ServerDNSDetectHijacking 0",
        "ServerDNSTestAddresses",
        "ServerDNSAllowBrokenConfig 1",
    ]
    for au in auths:
        lines.append(
            f"DirAuthority {au.nick} orport={au.orport} no-v2 v3ident={au.v3ident} {HOST}:{au.dirport} {au.rsa_fp}"
        )
    if node.is_relay:
        lines += [
            f"Address {HOST}",
            f"ORPort {HOST}:{node.orport} IPv4Only",
            f"DirPort {HOST}:{node.dirport}",
            "SocksPort 0",
            f"ContactInfo {node.nick}@tornet.invalid",
            "PublishServerDescriptor 1",
            # Bandwidth so that all relays look alike to path selection.
            "BandwidthRate 100 MBytes",
            "BandwidthBurst 200 MBytes",
        ]
    if node.role == "authority":
        lines += [
            "AuthoritativeDirectory 1",
            "V3AuthoritativeDirectory 1",
            f"TestingV3AuthInitialVotingInterval {a.initial_voting_interval or v}",
            f"TestingV3AuthInitialVoteDelay {a.vote_delay}",
            f"TestingV3AuthInitialDistDelay {a.dist_delay}",
            f"V3AuthVotingInterval {v}",
            f"V3AuthVoteDelay {a.vote_delay}",
            f"V3AuthDistDelay {a.dist_delay}",
            # C tor ignores hsdir_interval on a TestingTorNetwork and uses one shared-random
            # run (24 voting intervals); arti reads the parameter. Publish the same value.
            "ConsensusParams " + " ".join(consensus_params(a, nodes)),
            # Every relay Stable and Fast from its first vote. Otherwise the flags follow
            # uptime and bandwidth medians, so in a network minutes old only some relays are
            # Stable, and which ones changes from vote to vote. Guards and onion-service
            # vanguards must be Stable (vanguards Fast too) and distinct, so when only about
            # three relays were Stable arti found no relay for the second hop of onion-service
            # circuits ("only 0 were usable"), every onion-service circuit failed, and peer
            # links over Tor stayed down for minutes: the CI failure of the external-tor
            # scenario, reproduced locally on a busy machine.
            "AuthDirVoteStableGuaranteeMinUptime 0",
            "AuthDirVoteStableGuaranteeMTBF 0",
            "AuthDirFastGuarantee 1",
            "ExitRelay 0",
            "ExitPolicy reject *:*",
        ]
    elif node.role == "exit":
        lines += [
            "ExitRelay 1",
            "IPv6Exit 0",
            "ExitPolicyRejectPrivate 0",
            "ExitPolicyRejectLocalInterfaces 0",
            "ExitPolicy accept 127.0.0.0/8:*",
        ]
        # Microdescriptor policy summaries only count rules for *all* addresses, so
        # `accept 127.0.0.0/8:*` alone is summarised as "reject 1-65535" and arti would
        # never pick this exit. Accept the test port range for all IPv4 addresses too;
        # the machine is offline and clients only ask for 127.0.0.1.
        for lo, hi in a.exit_port_ranges:
            lines.append(f"ExitPolicy accept *4:{lo}" + (f"-{hi}" if hi != lo else ""))
        lines.append("ExitPolicy reject *:*")
    elif node.role == "relay":
        lines += ["ExitRelay 0", "ExitPolicy reject *:*"]
    else:  # client
        lines += [
            f"SocksPort {HOST}:{node.socksport}",
            "SafeSocks 0",
            "ORPort 0",
            "DirPort 0",
        ]
        for vport, target in node.onion_services:
            lines += [
                f"HiddenServiceDir {node.datadir}/hs_{vport}",
                f"HiddenServicePort {vport} {target}",
            ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- #
# Consensus inspection
# --------------------------------------------------------------------------- #


def fetch_consensus(node: Node, timeout: float = 3.0, flavor: str = "microdesc") -> str | None:
    """The authority's current consensus. The microdesc flavour is what arti uses; only the
    ns flavour carries the exit-policy summaries (`p` lines) -- in the microdesc flavour they
    live inside the microdescriptors."""
    url = f"http://{HOST}:{node.dirport}/tor/status-vote/current/consensus" + ("-microdesc" if flavor == "microdesc" else "")
    try:
        with _HTTP.open(url, timeout=timeout) as r:
            return r.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


def parse_ts(s: str) -> int:
    return int(time.mktime(time.strptime(s, "%Y-%m-%d %H:%M:%S")) - time.timezone)


def parse_consensus(text: str) -> dict:
    info: dict = {"routers": {}, "params": {}, "srv_current": None, "srv_previous": None}
    cur = None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        kw = parts[0]
        if kw in ("valid-after", "fresh-until", "valid-until") and len(parts) >= 3:
            info[kw] = " ".join(parts[1:3])
            info[kw + "-ts"] = parse_ts(" ".join(parts[1:3]))
        elif kw == "params":
            for p in parts[1:]:
                k, _, val = p.partition("=")
                info["params"][k] = int(val) if val.lstrip("-").isdigit() else val
        elif kw == "shared-rand-current-value":
            info["srv_current"] = parts[-1]
        elif kw == "shared-rand-previous-value":
            info["srv_previous"] = parts[-1]
        elif kw == "r" and len(parts) >= 3:
            cur = parts[1]
            info["routers"][cur] = {"flags": [], "policy": None}
        elif kw == "s" and cur:
            info["routers"][cur]["flags"] = parts[1:]
        elif kw == "p" and cur:
            info["routers"][cur]["policy"] = " ".join(parts[1:])
    if "valid-after-ts" in info and "fresh-until-ts" in info:
        info["voting_interval"] = info["fresh-until-ts"] - info["valid-after-ts"]
    return info


def hs_timing(cons: dict, hsdir_interval_min: int) -> dict:
    """Where the consensus valid-after falls in the onion-service time-period schedule."""
    v = cons.get("voting_interval")
    va = cons.get("valid-after-ts")
    if not v or not va:
        return {}
    length = hsdir_interval_min * 60
    offset = SR_ROUNDS_PER_PHASE * v
    tp = (va - offset) // length
    start = tp * length + offset
    return {
        "time_period_num": tp,
        "time_period_length_min": hsdir_interval_min,
        "time_period_start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
        "seconds_until_next_period": start + length - int(time.time()),
        "srv_current": cons.get("srv_current") is not None,
        "srv_previous": cons.get("srv_previous") is not None,
    }


def consensus_ready(cons: dict, nodes: list[Node], a: argparse.Namespace) -> tuple[bool, str]:
    relays = [n for n in nodes if n.is_relay]
    by_nick = cons["routers"]
    missing = [n.nick for n in relays if n.nick not in by_nick]
    if missing:
        return False, f"{len(by_nick)}/{len(relays)} relays listed (missing {','.join(missing)})"
    not_running = [n.nick for n in relays if not {"Running", "Valid"} <= set(by_nick[n.nick]["flags"])]
    if not_running:
        return False, f"not Running/Valid yet: {','.join(not_running)}"
    hsdirs = sum("HSDir" in r["flags"] for r in by_nick.values())
    guards = sum("Guard" in r["flags"] for r in by_nick.values())
    exits = [n for n in relays if n.role == "exit"]
    bad_exits = [
        n.nick
        for n in exits
        if "Exit" not in by_nick[n.nick]["flags"] or not (by_nick[n.nick]["policy"] or "").startswith("accept")
    ]
    if bad_exits:
        return False, f"exit flag/policy summary not there yet for {','.join(bad_exits)}"
    if hsdirs < len(relays):
        return False, f"only {hsdirs} HSDir flags"
    if guards < 1:
        return False, "no Guard flag yet"
    if cons.get("voting_interval") != a.voting_interval:
        return False, f"consensus voting interval {cons.get('voting_interval')}s, want {a.voting_interval}s"
    want = hs_period_minutes(a.voting_interval)
    if not a.no_hsdir_param and cons["params"].get("hsdir_interval") != want:
        return False, "consensus has no hsdir_interval param yet"
    if a.wait_srv and not (cons.get("srv_current") and cons.get("srv_previous")):
        return False, "waiting for shared-random values (current and previous)"
    return True, f"{len(by_nick)} relays, {hsdirs} HSDir, {guards} Guard, {len(exits)} Exit"


def client_bootstrapped(node: Node) -> bool:
    try:
        return "Bootstrapped 100%" in (node.datadir / "notice.log").read_text(errors="replace")
    except OSError:
        return False


# --------------------------------------------------------------------------- #
# Process management
# --------------------------------------------------------------------------- #


def start_node(node: Node, lifetime: int) -> dict:
    torrc = node.datadir / "torrc"
    out = open(node.datadir / "tor.stdout", "ab")
    cmd = [
        "timeout",
        "--signal=TERM",
        "--kill-after=10",
        str(lifetime),
        shutil.which("tor") or "tor",
        "--defaults-torrc",
        str(node.datadir.parent / "empty-torrc"),
        "-f",
        str(torrc),
    ]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    return {
        "nick": node.nick,
        "name": node.nick,
        "marker": str(node.datadir),
        "pid": p.pid,
        "pidfile": str(node.datadir / "tor.pid"),
        "datadir": str(node.datadir),
        "started": time.time(),
        "lifetime": lifetime,
    }


# --------------------------------------------------------------------------- #
# Outputs
# --------------------------------------------------------------------------- #


def toml_str(s: str) -> str:
    return json.dumps(s)  # JSON strings are valid TOML basic strings


def write_arti_toml(d: Path, nodes: list[Node], a: argparse.Namespace) -> Path:
    auths = [n for n in nodes if n.role == "authority"]
    fallbacks = auths  # the authorities are directory caches too
    lines = [
        "# arti-client 0.47 configuration fragment for the tornet.py private network",
        f"# generated {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; merge into your arti config.",
        "# Storage (cache_dir/state_dir) is not set here: each client needs its own.",
        "",
        "[tor_network.authorities]",
        "v3idents = [" + ", ".join(toml_str(n.v3ident) for n in auths) + "]",
        "# only relays/authorities use these; set so nothing points at the real network",
        "uploads = [" + ", ".join(f"[{toml_str(f'{HOST}:{n.dirport}')}]" for n in auths) + "]",
        "downloads = [" + ", ".join(f"[{toml_str(f'{HOST}:{n.dirport}')}]" for n in auths) + "]",
        "votes = [" + ", ".join(f"[{toml_str(f'{HOST}:{n.dirport}')}]" for n in auths) + "]",
        "",
    ]
    for n in fallbacks:
        lines += [
            "[[tor_network.fallback_caches]]",
            f"rsa_identity = {toml_str(n.rsa_fp)}",
            f"ed_identity = {toml_str(n.ed_id)}",
            f"orports = [{toml_str(f'{HOST}:{n.orport}')}]",
            "",
        ]
    lines += [
        "[address_filter]",
        "allow_local_addrs = true",
        "",
        "[path_rules]",
        "# all relays share 127.0.0.1: a prefix longer than the address disables the same-subnet rule",
        "ipv4_subnet_family_prefix = 33",
        "ipv6_subnet_family_prefix = 129",
        "",
        "[preemptive_circuits]",
        "# default is [80, 443], which no exit here accepts: arti would log",
        "# 'rejected N/N as not exiting to desired ports' every few seconds",
        f"initial_predicted_ports = [{a.exit_port_ranges[0][0]}]",
        "",
        "[override_net_params]",
        "# C tor uses 24 voting intervals as the onion-service time period on a TestingTorNetwork;",
        "# arti reads `hsdir_interval` (minutes). The authorities publish it too; this is belt and braces.",
        f"hsdir_interval = {hs_period_minutes(a.voting_interval)}",
        "",
    ]
    path = d / ARTI_FILE
    path.write_text("\n".join(lines))
    return path


def onion_addresses(client: Node | None) -> list[dict]:
    out = []
    if not client:
        return out
    for vport, target in client.onion_services:
        host = client.datadir / f"hs_{vport}" / "hostname"
        addr = host.read_text().strip() if host.exists() else None
        out.append({"virtport": vport, "target": target, "onion": addr, "dir": str(host.parent)})
    return out


def write_network_json(d: Path, nodes: list[Node], a: argparse.Namespace, cons: dict, started: float) -> Path:
    auths = [n for n in nodes if n.role == "authority"]
    client = next((n for n in nodes if n.role == "client"), None)
    tor_version = run(["tor", "--version"]).stdout.splitlines()[0].strip()
    data = {
        "schema": SCHEMA_VERSION,
        "dir": str(d),
        "host": HOST,
        "tor_version": tor_version,
        "base_port": a.base_port,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "up_seconds": round(time.monotonic() - started, 1),
        "lifetime_seconds": a.lifetime,
        "timing": {
            "voting_interval_s": a.voting_interval,
            "initial_voting_interval_s": a.initial_voting_interval or a.voting_interval,
            "vote_delay_s": a.vote_delay,
            "dist_delay_s": a.dist_delay,
            "intervals_valid": a.intervals_valid,
            "hs_time_period_min": hs_period_minutes(a.voting_interval),
            "hs_rotation_offset_s": SR_ROUNDS_PER_PHASE * a.voting_interval,
            "hsdir_interval_consensus_param": None if a.no_hsdir_param else hs_period_minutes(a.voting_interval),
        },
        "authorities": [
            {
                "nickname": n.nick,
                "v3ident": n.v3ident,
                "rsa_identity": n.rsa_fp,
                "ed_identity": n.ed_id,
                "orport": n.orport,
                "dirport": n.dirport,
                "controlport": n.controlport,
            }
            for n in auths
        ],
        "fallback_caches": [
            {"rsa_identity": n.rsa_fp, "ed_identity": n.ed_id, "orports": [f"{HOST}:{n.orport}"]} for n in auths
        ],
        "relays": [
            {
                "nickname": n.nick,
                "role": n.role,
                "rsa_identity": n.rsa_fp,
                "ed_identity": n.ed_id,
                "orport": n.orport,
                "dirport": n.dirport,
                "controlport": n.controlport,
                "datadir": str(n.datadir),
            }
            for n in nodes
            if n.is_relay
        ],
        "exit_policy": {
            "accepted_ports": a.exit_ports,
            "accepted_port_ranges": [list(r) for r in a.exit_port_ranges],
            "note": "exits accept 127.0.0.0/8:* plus *4:<accepted_ports>; arti only sees the summary, "
            "so bind test servers on 127.0.0.1 inside accepted_port_ranges",
        },
        "client": None
        if client is None
        else {
            "nickname": client.nick,
            "socks": f"{HOST}:{client.socksport}",
            "socks_port": client.socksport,
            "control": f"{HOST}:{client.controlport}",
            "control_port": client.controlport,
            "control_cookie": str(client.datadir / "control_auth_cookie"),
            "datadir": str(client.datadir),
            "onion_services": onion_addresses(client),
        },
        "arti_toml": str(d / ARTI_FILE),
        "consensus": {
            "valid_after": cons.get("valid-after"),
            "voting_interval_s": cons.get("voting_interval"),
            "params": cons.get("params"),
            "routers": len(cons.get("routers", {})),
            "hs": hs_timing(cons, hs_period_minutes(a.voting_interval)),
        },
    }
    path = d / NETWORK_FILE
    tmp = d / (NETWORK_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- #
# Commands
# --------------------------------------------------------------------------- #


def cmd_up(a: argparse.Namespace) -> int:
    tor = need_binary("tor")
    gencert = need_binary("tor-gencert")
    need_binary("timeout")
    d = Path(a.dir).resolve()
    a.exit_port_ranges = parse_port_spec(a.exit_ports or exit_port_default(a.base_port))
    a.exit_ports = a.exit_ports or exit_port_default(a.base_port)
    check_voting_interval(a.voting_interval, a.vote_delay, a.dist_delay, a.allow_hs_mismatch)
    if a.initial_voting_interval and a.initial_voting_interval != a.voting_interval:
        log("WARNING: initial voting interval differs: the first consensuses use another time period")
    if not (1 <= a.relays <= 28):
        raise TornetError("--relays must be 1..28")
    if not (1 <= a.exits <= a.relays):
        raise TornetError("--exits must be 1..--relays")
    if a.base_port < 1024 or a.base_port + 200 > 32768:
        raise TornetError("--base-port must leave base..base+199 between 1024 and the ephemeral range (32768)")

    if any(pid_alive(e["pid"]) for e in load_pids(d) if e.get("pid")):
        raise TornetError(f"a network is already running in {d}; run `down --dir {d}` first")
    if a.fresh and d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    (d / "resolv.conf").write_text(f"nameserver {HOST}\n")
    (d / "empty-torrc").write_text("")
    for stale in (NETWORK_FILE, ARTI_FILE):
        if (d / stale).exists():
            (d / stale).unlink()

    nodes = layout(d, a.relays, a.exits, a.base_port, not a.no_client)
    client = next((n for n in nodes if n.role == "client"), None)
    for spec in a.c_onion or []:
        if client is None:
            raise TornetError("--c-onion needs the C tor client (drop --no-client)")
        vport, _, target = spec.partition("=")
        if not vport.isdigit() or not target:
            raise TornetError(f"--c-onion wants VIRTPORT=127.0.0.1:PORT, got {spec!r}")
        if not target.startswith(HOST + ":"):
            raise TornetError("--c-onion target must be on 127.0.0.1")
        client.onion_services.append((int(vport), target))

    busy = []
    for n in nodes:
        ports = [n.controlport] + ([n.orport, n.dirport] if n.is_relay else [n.socksport])
        busy += [p for p in ports if not port_free(p)]
    if busy:
        raise TornetError(f"ports already in use on {HOST}: {busy} (choose another --base-port)")

    t0 = time.monotonic()
    started_wall = time.time()
    log(f"generating keys in {d}")
    ident_file = d / "identities.json"
    try:
        known = json.loads(ident_file.read_text())
    except (OSError, ValueError):
        known = {}
    for n in nodes:
        n.datadir.mkdir(parents=True, exist_ok=True)
        os.chmod(n.datadir, 0o700)
        if n.role == "authority":
            gen_authority_cert(gencert, n)
            n.v3ident = read_v3ident(n)
    todo = []
    for n in nodes:
        k = known.get(n.nick)
        if n.is_relay and k and (n.datadir / "keys" / "secret_id_key").exists():
            n.rsa_fp, n.ed_id = k["rsa_identity"], k["ed_identity"]
        elif n.is_relay:
            todo.append(n)
    # `tor --list-fingerprint` takes ~0.7 s per call; run them side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda n: gen_relay_keys(tor, n), todo))
    ident_file.write_text(json.dumps(
        {n.nick: {"rsa_identity": n.rsa_fp, "ed_identity": n.ed_id} for n in nodes if n.is_relay}, indent=2))
    for n in nodes:
        (n.datadir / "torrc").write_text(torrc_for(n, nodes, a, d))
        for f in ("notice.log", "info.log", "tor.stdout"):
            if (n.datadir / f).exists():
                (n.datadir / f).unlink()
    log(f"keys and torrcs ready after {time.monotonic() - t0:.1f}s")

    # Validate every torrc before starting anything.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda n: run([tor, "--defaults-torrc", str(d / "empty-torrc"), "-f",
                                     str(n.datadir / "torrc"), "--verify-config"]), nodes))

    entries: list[dict] = []
    try:
        for n in nodes:
            entries.append(start_node(n, a.lifetime))
            save_pids(d, entries)
        log(f"started {len(nodes)} tor processes (lifetime {a.lifetime}s); waiting for consensus")
        deadline = time.monotonic() + a.timeout
        auths = [n for n in nodes if n.role == "authority"]
        last_msg = ""
        cons: dict = {}
        while True:
            for e, n in zip(entries, nodes):
                if not pid_alive(e["pid"]):
                    raise TornetError(f"{n.nick} exited early; log tail:\n{tail(n.datadir / 'notice.log')}\n"
                                      f"{tail(n.datadir / 'tor.stdout', 5)}")
            ok, msg = False, "no consensus from any authority yet"
            for au in auths:
                text = fetch_consensus(au)
                ns_text = fetch_consensus(au, flavor="ns") if text else None
                if text and ns_text:
                    cons = parse_consensus(text)
                    if cons.get("valid-after-ts", 0) < started_wall:
                        msg = f"only a consensus from before this start ({cons.get('valid-after')}) so far"
                        continue
                    policies = {k: v["policy"] for k, v in parse_consensus(ns_text)["routers"].items()}
                    for nick, r in cons["routers"].items():
                        r["policy"] = policies.get(nick)
                    ok, msg = consensus_ready(cons, nodes, a)
                    break
            if ok and client is not None and not client_bootstrapped(client):
                ok, msg = False, f"consensus ok ({msg}); C tor client not at Bootstrapped 100% yet"
            if msg != last_msg:
                log(f"{time.monotonic() - t0:5.1f}s  {msg}")
                last_msg = msg
            if ok:
                break
            if time.monotonic() > deadline:
                raise TornetError(f"network not ready after {a.timeout}s: {msg}")
            time.sleep(1)
        if client is not None and client.onion_services:
            for _ in range(50):
                if all(o["onion"] for o in onion_addresses(client)):
                    break
                time.sleep(0.2)
        arti = write_arti_toml(d, nodes, a)
        net = write_network_json(d, nodes, a, cons, t0)
        log(f"network up after {time.monotonic() - t0:.1f}s: {msg}")
        print(json.dumps({"network_json": str(net), "arti_toml": str(arti), "up_seconds": round(time.monotonic() - t0, 1)}))
        return 0
    except BaseException:
        if a.keep_on_failure:
            log(f"leaving processes running (--keep-on-failure); stop them with `down --dir {d}`")
        else:
            for line in stop_all(d, a.grace):
                log(line)
        raise


def cmd_status(a: argparse.Namespace) -> int:
    d = Path(a.dir).resolve()
    entries = load_pids(d)
    procs = []
    for e in entries:
        tp = inner_pid(e)
        procs.append(
            {
                "nick": e["nick"],
                "wrapper_pid": e["pid"],
                "tor_pid": tp,
                "alive": bool(tp and pid_alive(tp) and ours(tp, e)) or pid_alive(e["pid"]),
                "lifetime_left_s": int(e["started"] + e["lifetime"] - time.time()),
            }
        )
    out: dict = {"dir": str(d), "processes": procs, "running": sum(p["alive"] for p in procs)}
    try:
        net = json.loads((d / NETWORK_FILE).read_text())
    except (OSError, ValueError):
        net = None
    if net:
        for au in net["authorities"]:
            url = f"http://{HOST}:{au['dirport']}/tor/status-vote/current/consensus-microdesc"
            try:
                with _HTTP.open(url, timeout=2) as r:
                    text = r.read().decode(errors="replace")
            except (urllib.error.URLError, OSError, TimeoutError):
                continue
            cons = parse_consensus(text)
            flags: dict[str, int] = {}
            for r in cons["routers"].values():
                for f in r["flags"]:
                    flags[f] = flags.get(f, 0) + 1
            out["consensus"] = {
                "from": au["nickname"],
                "valid_after": cons.get("valid-after"),
                "valid_until": cons.get("valid-until"),
                "live": cons.get("valid-until-ts", 0) > time.time(),
                "voting_interval_s": cons.get("voting_interval"),
                "params": cons["params"],
                "routers": len(cons["routers"]),
                "flags": flags,
                "hs": hs_timing(cons, net["timing"]["hs_time_period_min"]),
            }
            break
        if net.get("client"):
            out["client_socks"] = net["client"]["socks"]
            out["onion_services"] = net["client"]["onion_services"]
    print(json.dumps(out, indent=2))
    return 0 if procs and all(p["alive"] for p in procs) else 1


def cmd_down(a: argparse.Namespace) -> int:
    return netproc.down(Path(a.dir).resolve(), a.grace, log)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    up = sub.add_parser("up", help="generate and start the network, wait until it is usable")
    up.add_argument("--dir", required=True)
    up.add_argument("--relays", type=int, default=5, help="relays besides the 3 authorities (default 5)")
    up.add_argument("--exits", type=int, default=2, help="how many of the relays are exits (default 2)")
    up.add_argument("--base-port", type=int, default=17000,
                    help="ports: ORPort base+i, DirPort base+32+i, ControlPort base+64+i, "
                    "client SOCKS base+96, default exit ports base+100..199 (default 17000)")
    up.add_argument("--exit-ports", default=None,
                    help="ports the exits accept for every IPv4 address (besides 127.0.0.0/8:*), "
                    "e.g. '17100-17199,8080' (default base+100..base+199)")
    up.add_argument("--voting-interval", type=int, default=15,
                    help="V3AuthVotingInterval seconds; onion-service time period = 24*V (default 15 -> 6 min)")
    up.add_argument("--initial-voting-interval", type=int, default=0,
                    help="TestingV3AuthInitialVotingInterval (default: same as --voting-interval)")
    up.add_argument("--vote-delay", type=int, default=2)
    up.add_argument("--dist-delay", type=int, default=2)
    up.add_argument("--intervals-valid", type=int, default=3, help="V3AuthNIntervalsValid (default 3)")
    up.add_argument("--no-hsdir-param", action="store_true",
                    help="do not publish ConsensusParams hsdir_interval (to reproduce the arti HSDir 404)")
    up.add_argument("--allow-hs-mismatch", action="store_true",
                    help="accept a voting interval for which arti and C tor disagree on the time period")
    up.add_argument("--wait-srv", action="store_true",
                    help="also wait for shared-random values in the consensus (takes 2-3 SR runs)")
    up.add_argument("--no-client", action="store_true", help="do not start the C tor client")
    up.add_argument("--c-onion", action="append", metavar="VIRTPORT=127.0.0.1:PORT",
                    help="run a C tor onion service on the client node (repeatable)")
    up.add_argument("--timeout", type=int, default=120, help="give up after this many seconds (default 120)")
    up.add_argument("--lifetime", type=int, default=3600,
                    help="every tor process exits by itself after this many seconds (default 3600)")
    up.add_argument("--grace", type=float, default=10.0)
    up.add_argument("--fresh", action="store_true", help="delete DIR first (new identities)")
    up.add_argument("--info-logs", action="store_true", help="also write info-level logs")
    up.add_argument("--keep-on-failure", action="store_true")
    up.set_defaults(func=cmd_up)

    st = sub.add_parser("status", help="processes, consensus and onion-service timing (JSON)")
    st.add_argument("--dir", required=True)
    st.set_defaults(func=cmd_status)

    dn = sub.add_parser("down", help="stop every process of the network (SIGTERM, grace, SIGKILL)")
    dn.add_argument("--dir", required=True)
    dn.add_argument("--grace", type=float, default=10.0)
    dn.set_defaults(func=cmd_down)

    return netproc.run(p.parse_args(argv), (TornetError,), log)


if __name__ == "__main__":
    sys.exit(main())
