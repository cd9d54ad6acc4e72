#!/usr/bin/env python3
"""Private, offline I2P test network of Debian i2pd routers (i2pd 2.45.1, SAM v3.1).

Subcommands:
  up       --dir DIR [--routers N] [--floodfills F] [--sam K] [--base-port P] ...
  status   --dir DIR
  selftest --dir DIR [--from rI --to rJ] [--options '...'] [--rtt N] [--throughput-seconds S]
           [--streams N] [--soak S]
  down     --dir DIR [--grace S]

`up` creates N routers (F floodfills, K SAM routers, the rest plain), lets every
router generate its identity, seeds every netDb with every other router's
RouterInfo, restarts them and waits (bounded by --timeout) until, on every SAM
router, `SESSION CREATE STYLE=STREAM ... SIGNATURE_TYPE=7` succeeds and a stream
from each SAM router to the next one echoes data. It then writes
DIR/network.json (SAM endpoints, PIDs, netid, timing).

Why a network namespace: i2pd 2.45.1 drops every *incoming* NTCP2/SSU2
connection from a "reserved" address (127/8, 10/8, 192.168/16, ...) whatever
`reservedrange` says, so routers cannot talk to each other over 127.0.0.1.
The routers therefore run inside a private network namespace (no interface but
`lo`, so nothing can leave the machine) whose `lo` also carries 198.18.0.0/24,
the RFC 2544 benchmarking range, which i2pd 2.45.1 does not treat as reserved.
A small forwarder process (this script, `_netns`) owns the namespace and
forwards 127.0.0.1:<port> in the host namespace to 127.0.0.1:<port> inside it,
for the SAM bridges and the web consoles. Tests see only 127.0.0.1.
Needs root (or CAP_SYS_ADMIN), or else unprivileged user namespaces.

Every i2pd and the forwarder run under `timeout(1)` (--lifetime), so they die
by themselves even if nobody calls `down`; `down` stops them by PID (SIGTERM,
grace period, SIGKILL). Python 3.11 standard library only; needs the Debian
`i2pd` package, `timeout` (coreutils) and `nsenter` (util-linux).
See README.md next to this file for measurements, SESSION CREATE options and pitfalls.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import netproc  # noqa: E402  (e2e/networks/netproc.py: process management shared with tornet.py)
from netproc import (  # noqa: E402
    load_pids,
    pid_alive,
    inner_pid,
    ours,
    port_free,
    save_pids,
    stop_entries,
    tail,
)

HOST = "127.0.0.1"
SUBNET = "198.18.0"  # inside the namespace only; router i uses SUBNET.(i+1)
NETWORK_FILE = "network.json"
NETNS_READY = "netns.json"
SCHEMA_VERSION = 1
MAX_ROUTERS = 32
# i2pd 2.45.1 answers SESSION CREATE only when the destination is ready, and checks
# that every 20 s (SAM_SESSION_READINESS_CHECK_INTERVAL; 3 s in later versions).
SAM_READY_QUANTUM_S = 20
# Short tunnels are plenty on a private network. Keep inbound.quantity >= 3: i2pd 2.45.1 tries to
# publish the LeaseSet when the first inbound tunnel is up and, if no outbound tunnel exists yet
# ("Can't publish LeaseSet. Destination is not ready"), does not retry until the LeaseSet changes;
# with 2 inbound tunnels (both built in the first round) the destination often stays unreachable
# until its tunnels are replaced ~10 min later. ECIES-X25519 (type 4) LeaseSets avoid the old
# ElGamal/AES+SessionTags garlic path that SAM sessions use by default in i2pd 2.45.1.
RECOMMENDED_OPTIONS = ("inbound.length=1 outbound.length=1 inbound.quantity=3 outbound.quantity=3 "
                       "i2cp.leaseSetEncType=4,0")
I2PD_DEFAULT_OPTIONS = "inbound.length=3 outbound.length=3 inbound.quantity=5 outbound.quantity=5"
CERTS_DIR = Path("/usr/share/i2pd/certificates")

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NetError(Exception):
    """A failure with a message meant for the user."""


log = netproc.logger("i2pdnet")


# --------------------------------------------------------------------------- #
# Layout
# --------------------------------------------------------------------------- #


@dataclass
class Router:
    name: str
    index: int
    base_port: int
    datadir: Path
    floodfill: bool
    sam: bool
    ident: str = ""

    @property
    def ip(self) -> str:
        return f"{SUBNET}.{self.index + 1}"

    @property
    def ntcp2_port(self) -> int:  # inside the namespace
        return self.base_port + self.index

    @property
    def sam_port(self) -> int:  # same number inside the namespace and on the host
        return self.base_port + 32 + self.index

    @property
    def http_port(self) -> int:  # same number inside the namespace and on the host
        return self.base_port + 64 + self.index


def layout(d: Path, routers: int, floodfills: int, sams: int, base: int) -> list[Router]:
    """r0..r(F-1) floodfill, then K SAM routers, then plain routers. SAM never runs on a
    floodfill: i2pd 2.45.1 re-parses a LeaseSet2 found in its own floodfill store as a
    LeaseSet1 ("Incorrect number of leases") and then cannot reach that destination."""
    out = []
    for i in range(routers):
        ff = i < floodfills
        sam = floodfills <= i < floodfills + sams
        out.append(Router(f"r{i}", i, base, d / f"r{i}", ff, sam))
    return out


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #


def need_binary(name: str) -> str:
    hint = {"i2pd": "apt-get install -y i2pd", "nsenter": "apt-get install -y util-linux"}.get(name, "")
    return netproc.need_binary(name, NetError, hint)


def i2p_b64encode(b: bytes) -> str:
    return base64.b64encode(b).decode().replace("+", "-").replace("/", "~")


def i2p_b64decode(s: str) -> bytes:
    s = s.strip().replace("-", "+").replace("~", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4))


def identity_len(raw: bytes) -> int:
    """Length of a serialized RouterIdentity/Destination: 256 + 128 + certificate."""
    if len(raw) < 387:
        raise ValueError("identity too short")
    return 387 + int.from_bytes(raw[385:387], "big")


def router_ident(ri: bytes) -> str:
    return i2p_b64encode(hashlib.sha256(ri[: identity_len(ri)]).digest())


def public_destination(private_b64: str) -> str:
    """The public destination (base64) from SAM's DESTINATION=<private keys>."""
    raw = i2p_b64decode(private_b64)
    return i2p_b64encode(raw[: identity_len(raw)])


def i2pd_version(i2pd: str) -> str:
    try:
        out = subprocess.run([i2pd, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    m = re.search(r"i2pd version (\S+)", out)
    return m.group(1) if m else out.strip().splitlines()[0] if out.strip() else "unknown"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


# --------------------------------------------------------------------------- #
# Network namespace + port forwarder (the hidden `_netns` subcommand)
# --------------------------------------------------------------------------- #

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCSIFADDR, SIOCSIFNETMASK = 0x8913, 0x8914, 0x8916, 0x891C
IFF_UP = 0x1


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(ctypes.c_int(flags)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _sockaddr_in(ip: str) -> bytes:
    return struct.pack("=H", socket.AF_INET) + b"\0\0" + socket.inet_aton(ip) + b"\0" * 8


def _configure_lo(ip: str, prefix_len: int) -> None:
    """`ip link set lo up; ip addr add IP/PREFIX dev lo label lo:1` with ioctls (no iproute2)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
        fcntl.ioctl(s, SIOCSIFADDR, struct.pack("16s", b"lo:1") + _sockaddr_in(ip) + b"\0" * 8)
        mask = socket.inet_ntoa(struct.pack(">I", (0xFFFFFFFF << (32 - prefix_len)) & 0xFFFFFFFF))
        fcntl.ioctl(s, SIOCSIFNETMASK, struct.pack("16s", b"lo:1") + _sockaddr_in(mask) + b"\0" * 8)


def _pump(src: socket.socket, dst: socket.socket, done: list, lock: threading.Lock) -> None:
    try:
        while True:
            data = src.recv(262144)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    with lock:
        done.append(1)
        last = len(done) == 2
    if last:
        src.close()
        dst.close()


def _serve(listener: socket.socket, port: int, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except OSError:
            if stop.is_set():
                return
            time.sleep(0.1)
            continue
        try:
            # This thread was created after unshare(): its sockets live in the namespace.
            upstream = socket.create_connection((HOST, port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        done: list = []
        lock = threading.Lock()
        threading.Thread(target=_pump, args=(client, upstream, done, lock), daemon=True).start()
        threading.Thread(target=_pump, args=(upstream, client, done, lock), daemon=True).start()


def cmd_netns(a: argparse.Namespace) -> int:
    """Own the private namespace and forward host 127.0.0.1:PORT -> namespace 127.0.0.1:PORT."""
    d = Path(a.dir).resolve()
    ports = [int(p) for p in a.ports.split(",") if p]
    listeners = []
    for p in ports:  # bound before unshare(): these stay in the host namespace
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, p))
        except OSError as e:
            log(f"netns forwarder: cannot bind {HOST}:{p}: {e}")
            return 2
        s.listen(256)
        listeners.append((p, s))
    mode = "netns"
    try:
        _unshare(CLONE_NEWNET)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EACCES):
            raise
        uid, gid = os.getuid(), os.getgid()
        try:
            _unshare(CLONE_NEWUSER | CLONE_NEWNET)
        except OSError as e2:
            log(f"netns forwarder: cannot create a network namespace ({e}; user namespace: {e2}); "
                "run as root or enable unprivileged user namespaces")
            return 3
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
        mode = "userns"
    _configure_lo(f"{SUBNET}.1", 24)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((f"{SUBNET}.{a.routers}", 0))  # the whole /24 is local on lo
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
        for _, s in listeners:
            try:
                s.close()
            except OSError:
                pass

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for p, s in listeners:
        threading.Thread(target=_serve, args=(s, p, stop), daemon=True).start()
    tmp = d / (NETNS_READY + ".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "mode": mode, "ports": ports}))
    tmp.replace(d / NETNS_READY)
    while not stop.wait(1.0):
        pass
    return 0


# --------------------------------------------------------------------------- #
# i2pd configuration and processes
# --------------------------------------------------------------------------- #


def i2pd_conf(r: Router, a: argparse.Namespace) -> str:
    dd = r.datadir
    certs = CERTS_DIR if CERTS_DIR.is_dir() else dd / "certificates"
    return f"""# generated by i2pdnet.py -- private I2P test network, inside a private network namespace
log = file
logfile = {dd}/i2pd.log
loglevel = {a.loglevel}
daemon = false
service = false
pidfile = {dd}/i2pd.pid
tunconf = {dd}/tunnels.conf
tunnelsdir = {dd}/tunnels.d
certsdir = {certs}
netid = {a.netid}
ipv4 = true
ipv6 = false
host = {r.ip}
address4 = {r.ip}
nat = false
reservedrange = false
port = {r.ntcp2_port}
floodfill = {str(r.floodfill).lower()}
bandwidth = X
share = 100
notransit = false

[limits]
transittunnels = 5000

[ntcp2]
enabled = true
published = true
port = {r.ntcp2_port}

[ssu2]
# NTCP2 only: without SSU2 there are no peer tests that could declare a router firewalled.
enabled = false

[http]
enabled = true
address = {HOST}
port = {r.http_port}

[httpproxy]
enabled = false

[socksproxy]
enabled = false

[sam]
enabled = {str(r.sam).lower()}
address = {HOST}
port = {r.sam_port}

[bob]
enabled = false

[i2cp]
enabled = false

[i2pcontrol]
enabled = false

[upnp]
enabled = false

[precomputation]
elgamal = false

[reseed]
verify = false
threshold = 0
urls =
yggurls =

[addressbook]
# Must stay enabled: with it disabled i2pd 2.45.1 dereferences a null storage (segfault)
# on SAM STREAM CONNECT. Empty hosts.txt/subscriptions.txt keep it from fetching anything.
enabled = true
defaulturl =
subscriptions =

[nettime]
enabled = false
frompeers = false

[persist]
profiles = false
addressbook = false

[exploratory]
inbound.length = {a.exploratory_length}
outbound.length = {a.exploratory_length}
"""


def write_router_files(r: Router, a: argparse.Namespace) -> None:
    r.datadir.mkdir(parents=True, exist_ok=True)
    os.chmod(r.datadir, 0o700)
    (r.datadir / "i2pd.conf").write_text(i2pd_conf(r, a))
    (r.datadir / "tunnels.conf").write_text("")
    (r.datadir / "tunnels.d").mkdir(exist_ok=True)
    (r.datadir / "hosts.txt").write_text("")
    (r.datadir / "subscriptions.txt").write_text("")


def stop_all(d: Path, grace: float) -> list[str]:
    # Routers first, then the namespace owner/forwarder.
    return netproc.stop_all(d, grace, first=lambda e: e["kind"] == "i2pd")


def nsenter_prefix(ns: dict) -> list[str]:
    cmd = [shutil.which("nsenter") or "nsenter", "-t", str(ns["pid"]), "-n"]
    if ns["mode"] == "userns":
        cmd += ["-U", "--preserve-credentials"]
    return cmd + ["--"]


def start_router(r: Router, ns: dict, lifetime: int, phase: str) -> dict:
    out = open(r.datadir / "i2pd.stdout", "ab")
    cmd = [
        "timeout", "--signal=TERM", "--kill-after=10", str(lifetime),
        *nsenter_prefix(ns),
        shutil.which("i2pd") or "i2pd", "--conf", str(r.datadir / "i2pd.conf"), "--datadir", str(r.datadir),
    ]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    return {
        "name": r.name,
        "kind": "i2pd",
        "phase": phase,
        "pid": p.pid,
        "pidfile": str(r.datadir / "i2pd.pid"),
        "marker": str(r.datadir / "i2pd.conf"),
        "started": time.time(),
        "lifetime": lifetime,
    }


def start_netns(d: Path, ports: list[int], routers: int, lifetime: int) -> tuple[dict, dict]:
    ready = d / NETNS_READY
    if ready.exists():
        ready.unlink()
    out = open(d / "netns.log", "ab")
    cmd = [
        "timeout", "--signal=TERM", "--kill-after=5", str(lifetime),
        sys.executable, str(Path(__file__).resolve()), "_netns",
        "--dir", str(d), "--ports", ",".join(map(str, ports)), "--routers", str(routers),
    ]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    entry = {"name": "netns", "kind": "netns", "pid": p.pid, "pidfile": None, "marker": f"_netns --dir {d} --ports",
             "started": time.time(), "lifetime": lifetime}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if ready.exists():
            info = json.loads(ready.read_text())
            entry["pidfile"] = None
            entry["inner_pid"] = info["pid"]
            return entry, info
        if p.poll() is not None:
            raise NetError(f"namespace/forwarder exited ({p.returncode}):\n{tail(d / 'netns.log')}")
        time.sleep(0.05)
    raise NetError(f"namespace/forwarder not ready after 15s:\n{tail(d / 'netns.log')}")


# --------------------------------------------------------------------------- #
# SAM v3.1 client (blocking sockets, bounded by timeouts)
# --------------------------------------------------------------------------- #


class SamError(Exception):
    pass


ABORT = threading.Event()  # set when a router dies during `up`: stop retrying at once


def until(deadline: float) -> bool:
    return time.monotonic() < deadline and not ABORT.is_set()


def parse_reply(line: str) -> dict:
    out = {"_line": line}
    words = line.split(" ")
    out["_topic"] = " ".join(words[:2])
    rest = " ".join(words[2:])
    for m in re.finditer(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S*)', rest):
        v = m.group(2)
        out[m.group(1)] = v[1:-1] if v.startswith('"') else v
    return out


class Sam:
    def __init__(self, host: str, port: int, timeout: float):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sock.settimeout(timeout)
        r = self.command("HELLO VERSION MIN=3.1 MAX=3.1", timeout)
        if r.get("RESULT") != "OK":
            raise SamError(f"HELLO failed: {r['_line']}")

    def settimeout(self, t: float | None) -> None:
        self.sock.settimeout(t)

    def readline(self, timeout: float) -> str:
        self.sock.settimeout(max(0.01, timeout))
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise SamError("SAM bridge closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace")

    def command(self, line: str, timeout: float) -> dict:
        self.sock.settimeout(max(0.01, timeout))
        self.sock.sendall(line.encode() + b"\n")
        return parse_reply(self.readline(timeout))

    def recv_exact(self, n: int, timeout: float) -> bytes:
        self.sock.settimeout(max(0.01, timeout))
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise SamError("stream closed")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_some(self, timeout: float) -> bytes:
        if self.buf:
            out, self.buf = self.buf, b""
            return out
        self.sock.settimeout(max(0.01, timeout))
        return self.sock.recv(262144)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@dataclass
class Session:
    control: Sam
    sid: str
    host: str
    port: int
    dest: str  # public destination, base64
    create_s: float


def sam_session(host: str, port: int, sid: str, options: str, timeout: float) -> Session:
    t0 = time.monotonic()
    c = Sam(host, port, min(timeout, 10))
    cmd = f"SESSION CREATE STYLE=STREAM ID={sid} DESTINATION=TRANSIENT SIGNATURE_TYPE=7"
    if options:
        cmd += " " + options
    try:
        r = c.command(cmd, timeout)
    except (OSError, SamError):
        c.close()
        raise
    if r.get("RESULT") != "OK":
        c.close()
        raise SamError(f"SESSION CREATE on {port}: {r['_line']}")
    c.settimeout(None)
    return Session(c, sid, host, port, public_destination(r["DESTINATION"]), time.monotonic() - t0)


def sam_accept(s: Session, timeout: float) -> Sam:
    c = Sam(s.host, s.port, min(timeout, 10))
    r = c.command(f"STREAM ACCEPT ID={s.sid} SILENT=false", timeout)
    if r.get("RESULT") != "OK":
        c.close()
        raise SamError(f"STREAM ACCEPT: {r['_line']}")
    return c


def sam_connect(s: Session, dest: str, timeout: float) -> Sam:
    c = Sam(s.host, s.port, min(timeout, 10))
    try:
        r = c.command(f"STREAM CONNECT ID={s.sid} DESTINATION={dest} SILENT=false", timeout)
    except (OSError, SamError):
        c.close()
        raise
    if r.get("RESULT") != "OK":
        c.close()
        raise SamError(f"STREAM CONNECT: {r['_line']}")
    return c


def open_stream(a: Session, b: Session, deadline: float) -> tuple[Sam, Sam, float]:
    """A stream from session a to session b: (client side, server side, seconds). The server side
    has consumed the peer-destination line. Retries until deadline."""
    t0 = time.monotonic()
    last = "no attempt"
    while until(deadline):
        acc = con = None
        step = "STREAM ACCEPT"
        try:
            acc = sam_accept(b, deadline - time.monotonic())
            step = "STREAM CONNECT"
            con = sam_connect(a, b.dest, min(60.0, deadline - time.monotonic()))
            step = "waiting for the incoming stream"
            # The incoming stream shows up as "<peer dest> [FROM_PORT=.. TO_PORT=..]".
            peer = acc.readline(min(60.0, deadline - time.monotonic())).split(" ")[0]
            if peer != a.dest:
                raise SamError(f"acceptor saw an unexpected peer {peer[:16]}...")
            return con, acc, time.monotonic() - t0
        except (OSError, SamError) as e:
            last = f"{step}: {e or type(e).__name__}"
            for c in (acc, con):
                if c:
                    c.close()
            time.sleep(1)
    raise SamError(f"no stream {a.sid}->{b.sid} before the deadline: {last}")


def echo_once(con: Sam, acc: Sam, n: int, timeout: float) -> float:
    payload = os.urandom(n)
    t0 = time.perf_counter()
    con.sock.sendall(payload)
    got = acc.recv_exact(n, timeout)
    acc.sock.sendall(got)
    back = con.recv_exact(n, timeout)
    if back != payload:
        raise SamError("echo mismatch")
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- #
# Readiness probe
# --------------------------------------------------------------------------- #


def create_sessions(endpoints: list[tuple[str, str, int]], options: str, deadline: float,
                    tag: str) -> dict[str, Session]:
    """SESSION CREATE on every (name, host, port) at the same time; retries until deadline."""
    results: dict[str, Session] = {}
    errors: dict[str, str] = {}

    def one(name: str, host: str, port: int) -> None:
        n = 0
        while until(deadline):
            n += 1
            sid = f"{tag}-{name}-{os.getpid()}-{n}-{random.randrange(1 << 30):x}"
            try:
                results[name] = sam_session(host, port, sid, options, deadline - time.monotonic())
                return
            except (OSError, SamError) as e:
                errors[name] = str(e) or type(e).__name__
                time.sleep(0.5)

    threads = [threading.Thread(target=one, args=ep, daemon=True) for ep in endpoints]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 1)
    missing = [ep[0] for ep in endpoints if ep[0] not in results]
    if missing:
        for s in results.values():
            s.control.close()
        raise NetError("SESSION CREATE did not succeed on " + ", ".join(
            f"{m} ({errors.get(m, 'timeout')})" for m in missing))
    return results


def exploratory_ready(port: int) -> bool:
    """The router has an established exploratory tunnel in each direction (web console)."""
    try:
        with _HTTP.open(f"http://{HOST}:{port}/?page=tunnels", timeout=3) as r:
            html = r.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, TimeoutError):
        return False
    i, o = html.find("Inbound tunnels"), html.find("Outbound tunnels")
    if i < 0 or o < 0:
        return False
    inbound, outbound = (html[i:o], html[o:]) if i < o else (html[i:], html[o:i])
    mark = "established (exploratory)"
    return mark in inbound and mark in outbound


def wait_warm(routers: list[Router], deadline: float, cap: float = 45.0) -> float:
    """Wait (at most `cap` s) until every router has exploratory tunnels both ways, so that client
    tunnels of the probe sessions build at once (SESSION CREATE then answers at the first 20 s check)."""
    t0 = time.monotonic()
    end = min(deadline, t0 + cap)
    pending = list(routers)
    while pending and until(end):
        pending = [r for r in pending if not exploratory_ready(r.http_port)]
        if pending:
            time.sleep(0.5)
    if pending:
        log(f"no exploratory tunnels yet on {','.join(r.name for r in pending)} after {cap:.0f}s; probing anyway")
    return time.monotonic() - t0


def reliable_stream(sessions: dict[str, Session], src: str, dst: str, options: str, deadline: float,
                    recreated: list, recreate_after: float = 25.0) -> tuple[Sam, Sam]:
    """A stream src->dst that has carried one echo. If dst stays unreachable for `recreate_after` s
    (its LeaseSet may not have been published, see RECOMMENDED_OPTIONS) or the first echo fails,
    dst gets a new session."""
    while True:
        a, b = sessions[src], sessions[dst]
        try:
            con, acc, _ = open_stream(a, b, min(deadline, time.monotonic() + recreate_after))
            try:
                echo_once(con, acc, 16, max(1.0, min(30.0, deadline - time.monotonic())))
            except (OSError, SamError):
                con.close()
                acc.close()
                raise
            return con, acc
        except (OSError, SamError) as e:
            if not until(deadline):
                raise NetError(f"no working stream {src}->{dst}: {e}")
            log(f"stream {src}->{dst} failed ({e}); new session for {dst}")
            b.control.close()
            sessions[dst] = create_sessions([(dst, b.host, b.port)], options, deadline, "retry")[dst]
            recreated.append(dst)


def probe(routers: list[Router], options: str, deadline: float) -> dict:
    """SESSION CREATE on every SAM router, then a stream (with an echo) from each SAM router to the
    next one. A target that stays unreachable for `recreate_after` s gets a new session (its LeaseSet
    may not have been published, see RECOMMENDED_OPTIONS)."""
    sams = [r for r in routers if r.sam]
    t0 = time.monotonic()
    sessions = create_sessions([(r.name, HOST, r.sam_port) for r in sams], options, deadline, "probe")
    out = {"options": options,
           "session_create_s": {k: round(v.create_s, 1) for k, v in sessions.items()},
           "sessions_ready_after_s": round(time.monotonic() - t0, 1), "streams": [], "recreated_sessions": []}
    log(f"sessions up on {len(sessions)} SAM routers after {time.monotonic() - t0:.1f}s; testing streams")
    try:
        for i, r in enumerate(sams):
            nxt = sams[(i + 1) % len(sams)]
            t_pair = time.monotonic()
            con, acc = reliable_stream(sessions, r.name, nxt.name, options, deadline, out["recreated_sessions"])
            try:
                rtt = echo_once(con, acc, 64, max(1.0, min(30.0, deadline - time.monotonic())))
            finally:
                con.close()
                acc.close()
            out["streams"].append({"from": r.name, "to": nxt.name, "open_s": round(time.monotonic() - t_pair, 2),
                                   "echo_ms": round(rtt * 1000, 2)})
    finally:
        for s in sessions.values():
            s.control.close()
    return out


# --------------------------------------------------------------------------- #
# Outputs
# --------------------------------------------------------------------------- #


def write_network_json(d: Path, routers: list[Router], entries: list[dict], ns: dict, a: argparse.Namespace,
                       timing: dict, probe_result: dict) -> Path:
    by_name = {e["name"]: e for e in entries}
    data = {
        "schema": SCHEMA_VERSION,
        "dir": str(d),
        "host": HOST,
        "i2pd_version": i2pd_version(shutil.which("i2pd") or "i2pd"),
        "netid": a.netid,
        "base_port": a.base_port,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "up_seconds": timing["up_s"],
        "lifetime_seconds": a.lifetime,
        "sam": [
            {"router": r.name, "host": HOST, "port": r.sam_port, "sam_version": "3.1"}
            for r in routers if r.sam
        ],
        "session_options": {
            "recommended": RECOMMENDED_OPTIONS,
            "i2pd_default": I2PD_DEFAULT_OPTIONS,
            "signature_type": 7,
            "session_create_quantum_s": SAM_READY_QUANTUM_S,
            "note": "i2pd 2.45.1 answers SESSION CREATE only at 20 s readiness checks: allow >= 60 s",
        },
        "isolation": {
            "mode": ns["mode"],
            "netns_pid": ns["pid"],
            "router_subnet": f"{SUBNET}.0/24",
            "note": "routers talk NTCP2 inside a private network namespace; SAM and web consoles are "
                    "forwarded to 127.0.0.1 in the host namespace by the netns process",
        },
        "routers": [
            {
                "name": r.name,
                "index": r.index,
                "floodfill": r.floodfill,
                "sam_port": r.sam_port if r.sam else None,
                "http_console": f"{HOST}:{r.http_port}",
                "ntcp2": f"{r.ip}:{r.ntcp2_port}",
                "ident": r.ident,
                "datadir": str(r.datadir),
                "wrapper_pid": by_name[r.name]["pid"],
                "i2pd_pid": inner_pid(by_name[r.name]),
            }
            for r in routers
        ],
        "netns": {"wrapper_pid": by_name["netns"]["pid"], "pid": ns["pid"]},
        "timing": timing,
        "probe": probe_result,
    }
    path = d / NETWORK_FILE
    tmp = d / (NETWORK_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- #
# Commands
# --------------------------------------------------------------------------- #


def keygen(routers: list[Router], ns: dict, entries: list[dict], d: Path, deadline: float) -> None:
    """Start every router once so that it writes router.keys/ntcp2.keys/router.info, then stop it."""
    phase = []
    for r in routers:
        for f in ("router.info", "router.keys", "ntcp2.keys", "i2pd.pid", "i2pd.log"):
            (r.datadir / f).unlink(missing_ok=True)
        e = start_router(r, ns, 120, "keygen")
        phase.append(e)
        entries.append(e)
        save_pids(d, entries)
    while True:
        todo = [r for r in routers if not ((r.datadir / "router.info").exists() and (r.datadir / "ntcp2.keys").exists()
                                           and (r.datadir / "i2pd.pid").exists())]
        if not todo:
            break
        for e, r in zip(phase, routers):
            if not pid_alive(e["pid"]):
                raise NetError(f"{r.name} exited during key generation:\n{tail(r.datadir / 'i2pd.log')}\n"
                               f"{tail(r.datadir / 'i2pd.stdout', 5)}")
        if time.monotonic() > deadline:
            raise NetError(f"no router.info from {','.join(r.name for r in todo)}")
        time.sleep(0.1)
    time.sleep(0.3)  # let the last writes land
    stop_entries(phase, 10)
    for e in phase:
        entries.remove(e)
    save_pids(d, entries)
    for r in routers:
        if (r.datadir / "i2pd.log").exists():
            (r.datadir / "i2pd.log").replace(r.datadir / "keygen.log")


def seed_netdbs(routers: list[Router]) -> None:
    infos = {}
    for r in routers:
        ri = (r.datadir / "router.info").read_bytes()
        if r.ip.encode() not in ri:
            raise NetError(f"{r.name}: router.info does not publish {r.ip}")
        r.ident = router_ident(ri)
        infos[r.name] = ri
    for r in routers:
        netdb = r.datadir / "netDb"
        if netdb.exists():
            shutil.rmtree(netdb)
        netdb.mkdir()
        for o in routers:
            if o is r:
                continue
            sub = netdb / f"r{o.ident[0]}"
            sub.mkdir(exist_ok=True)
            (sub / f"routerInfo-{o.ident}.dat").write_bytes(infos[o.name])
        for stale in ("peerProfiles", "destinations", "tags", "addressbook"):
            if (r.datadir / stale).exists():
                shutil.rmtree(r.datadir / stale, ignore_errors=True)


def cmd_up(a: argparse.Namespace) -> int:
    for b in ("i2pd", "timeout", "nsenter"):
        need_binary(b)
    d = Path(a.dir).resolve()
    if a.routers is None:
        a.routers = max(8, a.floodfills + a.sam + 1)
    if not (1 <= a.floodfills):
        raise NetError("--floodfills must be >= 1")
    if a.sam < 2:
        raise NetError("--sam must be >= 2 (the readiness probe streams between SAM routers)")
    if a.floodfills + a.sam > a.routers or a.routers > MAX_ROUTERS:
        raise NetError(f"need --floodfills + --sam <= --routers <= {MAX_ROUTERS} (SAM never runs on a floodfill)")
    if a.routers < 4:
        raise NetError("--routers must be >= 4")
    if a.base_port < 1024 or a.base_port + 96 > 32768:
        raise NetError("--base-port must leave base..base+95 between 1024 and 32768")
    if a.netid == 2:
        raise NetError("--netid 2 is the public I2P network; pick another")
    if any(pid_alive(e["pid"]) and ours(e["pid"], e) for e in load_pids(d) if e.get("pid")):
        raise NetError(f"a network is already running in {d}; run `down --dir {d}` first")
    d.mkdir(parents=True, exist_ok=True)
    for stale in (NETWORK_FILE, NETNS_READY):
        (d / stale).unlink(missing_ok=True)
    routers = layout(d, a.routers, a.floodfills, a.sam, a.base_port)
    host_ports = [r.sam_port for r in routers if r.sam] + [r.http_port for r in routers]
    busy = [p for p in host_ports if not port_free(p)]
    if busy:
        raise NetError(f"ports already in use on {HOST}: {busy} (choose another --base-port)")

    t0 = time.monotonic()
    deadline = t0 + a.timeout
    timing: dict = {}
    entries: list[dict] = []
    try:
        for r in routers:
            if r.datadir.exists():
                shutil.rmtree(r.datadir)  # fresh identities on every `up`
            write_router_files(r, a)
        ns_entry, ns = start_netns(d, host_ports, a.routers, a.lifetime)
        entries.append(ns_entry)
        save_pids(d, entries)
        log(f"namespace ready ({ns['mode']}, pid {ns['pid']}); generating {len(routers)} router identities")
        keygen(routers, ns, entries, d, deadline)
        seed_netdbs(routers)
        timing["prepare_s"] = round(time.monotonic() - t0, 1)  # namespace + identities + netDb seeding
        t_start = time.monotonic()
        for r in routers:
            (r.datadir / "i2pd.pid").unlink(missing_ok=True)
            entries.append(start_router(r, ns, a.lifetime, "run"))
            save_pids(d, entries)
        log(f"started {len(routers)} i2pd routers (netid {a.netid}, {a.floodfills} floodfill, {a.sam} SAM, "
            f"lifetime {a.lifetime}s) after {timing['prepare_s']}s; waiting for SAM sessions and streams")
        watch = threading.Event()

        def watchdog():
            while not watch.wait(1):
                for e in entries:
                    if e["kind"] == "i2pd" and not pid_alive(e["pid"]):
                        log(f"{e['name']} exited early; log tail:\n{tail(Path(e['marker']).parent / 'i2pd.log')}")
                        ABORT.set()
                        watch.set()

        threading.Thread(target=watchdog, daemon=True).start()
        try:
            if a.warmup:
                timing["warmup_s"] = round(wait_warm(routers, deadline), 1)
                log(f"exploratory tunnels on all routers after {timing['warmup_s']}s")
            result = probe(routers, a.probe_options, deadline)
        except NetError as e:
            raise NetError(f"network not usable after {a.timeout}s: {e}")
        finally:
            watch.set()
        dead = [e["name"] for e in entries if not pid_alive(e["pid"])]
        if dead:
            raise NetError(f"processes died: {dead}")
        timing["start_to_usable_s"] = round(time.monotonic() - t_start, 1)
        timing["up_s"] = round(time.monotonic() - t0, 1)
        timing["session_create_quantum_s"] = SAM_READY_QUANTUM_S
        net = write_network_json(d, routers, entries, ns, a, timing, result)
        log(f"network up after {timing['up_s']}s: " + ", ".join(
            f"{s['from']}->{s['to']} {s['echo_ms']}ms" for s in result["streams"]))
        summary = {"network_json": str(net), "up_seconds": timing["up_s"],
                   "sam": [f"{HOST}:{r.sam_port}" for r in routers if r.sam]}
        rc = 0
        if a.selftest:
            a2 = argparse.Namespace(dir=str(d), src=None, dst=None, options=a.probe_options, rtt=200,
                                    msg_size=64, throughput_seconds=10.0, streams=0, soak=0.0, timeout=180)
            try:
                summary["selftest"] = run_selftest(a2)
            except (NetError, SamError, OSError) as e:  # the network stays up; report and fail
                summary["selftest"] = {"error": str(e)}
                rc = 1
        print(json.dumps(summary, indent=2))
        return rc
    except BaseException:
        if a.keep_on_failure:
            log(f"leaving processes running (--keep-on-failure); stop them with `down --dir {d}`")
        else:
            for line in stop_all(d, a.grace):
                log(line)
        raise


def load_network(d: Path) -> dict:
    try:
        return json.loads((d / NETWORK_FILE).read_text())
    except (OSError, ValueError):
        raise NetError(f"no {NETWORK_FILE} in {d}; run `up` first")


def run_selftest(a: argparse.Namespace) -> dict:
    d = Path(a.dir).resolve()
    net = load_network(d)
    sams = net["sam"]
    src = next((s for s in sams if s["router"] == a.src), sams[0]) if a.src else sams[0]
    dst = next((s for s in sams if s["router"] == a.dst), sams[1]) if a.dst else sams[1]
    deadline = time.monotonic() + a.timeout
    t0 = time.monotonic()
    sessions = create_sessions([("A", src["host"], src["port"]), ("B", dst["host"], dst["port"])],
                               a.options, deadline, "selftest")
    out: dict = {"from": src["router"], "to": dst["router"], "options": a.options,
                 "session_create_s": {"A": round(sessions["A"].create_s, 1), "B": round(sessions["B"].create_s, 1)}}
    out["recreated_sessions"] = []
    try:
        t_open = time.monotonic()
        con, acc = reliable_stream(sessions, "A", "B", a.options, deadline, out["recreated_sessions"])
        out["stream_open_s"] = round(time.monotonic() - t_open, 2)
        try:
            rtts = [echo_once(con, acc, a.msg_size, max(1.0, deadline - time.monotonic())) for _ in range(a.rtt)]
            ms = [x * 1000 for x in rtts]
            out["rtt_ms"] = {"count": len(ms), "msg_bytes": a.msg_size, "median": round(statistics.median(ms), 2),
                             "p90": round(pct(ms, 90), 2), "p99": round(pct(ms, 99), 2),
                             "min": round(min(ms), 2), "max": round(max(ms), 2)}
            log(f"rtt median {out['rtt_ms']['median']}ms p99 {out['rtt_ms']['p99']}ms")
            if a.throughput_seconds > 0:
                out["throughput"] = measure_throughput(con, acc, a.throughput_seconds, deadline)
                log(f"throughput {out['throughput']['mbit_per_s']} Mbit/s")
            if a.streams > 0:
                out["stream_opens"] = stream_opens(sessions["A"], sessions["B"], a.streams, deadline + 30 * a.streams)
                log(f"stream opens: {out['stream_opens']['ok']}/{a.streams} ok")
            if a.soak > 0:
                # The throughput test closed its stream: open a fresh one.
                con.close()
                acc.close()
                con, acc = reliable_stream(sessions, "A", "B", a.options, deadline + a.soak,
                                           out["recreated_sessions"])
                out["soak"] = soak(con, acc, a.soak)
        finally:
            con.close()
            acc.close()
    finally:
        for s in sessions.values():
            s.control.close()
    out["total_s"] = round(time.monotonic() - t0, 1)
    return out


def measure_throughput(con: Sam, acc: Sam, seconds: float, deadline: float) -> dict:
    """One-way A->B for `seconds`; counted at the receiver. Closes the stream."""
    state = {"bytes": 0, "first": None, "last": None}
    stop = threading.Event()

    def receiver():
        # Read until EOF (the sender half-closes; the bridge closes the stream after the data)
        # or until nothing arrived for 3 s after the sender stopped.
        while True:
            try:
                data = acc.recv_some(1.0)
            except socket.timeout:
                if stop.is_set() and time.monotonic() - (state["last"] or 0) > 3:
                    return
                continue
            except (OSError, SamError):
                return
            if not data:
                return
            now = time.monotonic()
            state["first"] = state["first"] or now
            state["last"] = now
            state["bytes"] += len(data)

    t = threading.Thread(target=receiver, daemon=True)
    t.start()
    chunk = os.urandom(16384)
    sent = 0
    t_begin = time.monotonic()
    t_end = t_begin + seconds
    con.sock.settimeout(30)
    try:
        while time.monotonic() < t_end:
            con.sock.sendall(chunk)
            sent += len(chunk)
    except (OSError, socket.timeout):
        pass
    send_s = time.monotonic() - t_begin
    received_at_end = state["bytes"]
    try:
        con.sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    stop.set()
    t.join(min(30.0, max(1.0, deadline - time.monotonic())))
    dur = (state["last"] - state["first"]) if state["first"] and state["last"] else 0.0
    rate = state["bytes"] / dur if dur > 0 else 0.0
    return {"send_s": round(send_s, 1), "sent_bytes": sent, "received_bytes": state["bytes"],
            "received_during_send_bytes": received_at_end, "receive_span_s": round(dur, 2),
            "mbit_per_s": round(rate * 8 / 1e6, 2), "kib_per_s": round(rate / 1024, 1),
            "during_send_mbit_per_s": round(received_at_end * 8 / 1e6 / send_s, 2) if send_s else 0.0}


def stream_opens(a: Session, b: Session, n: int, deadline: float) -> dict:
    """Open n fresh streams a->b one after the other, one echo each, no retries."""
    times, failures = [], []
    for i in range(n):
        t0 = time.monotonic()
        acc = con = None
        try:
            acc = sam_accept(b, 30)
            con = sam_connect(a, b.dest, 30)
            peer = acc.readline(30).split(" ")[0]
            if peer != a.dest:
                raise SamError("unexpected peer")
            echo_once(con, acc, 64, 30)
            times.append((time.monotonic() - t0) * 1000)
        except (OSError, SamError) as e:
            failures.append(f"#{i}: {e or type(e).__name__}")
        finally:
            for c in (acc, con):
                if c:
                    c.close()
        if time.monotonic() > deadline:
            break
    return {"tried": n, "ok": len(times), "failures": failures,
            "open_and_echo_ms_median": round(statistics.median(times), 1) if times else None,
            "open_and_echo_ms_max": round(max(times), 1) if times else None}


def soak(con: Sam, acc: Sam, seconds: float) -> dict:
    """One small echo every 0.5 s for `seconds` (tunnels are replaced every ~10 min)."""
    rtts, failures = [], []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        try:
            rtts.append(echo_once(con, acc, 32, 30) * 1000)
        except (OSError, SamError) as e:
            failures.append(f"{time.strftime('%H:%M:%S')} {e or type(e).__name__}")
            break
        time.sleep(0.5)
    return {"seconds": seconds, "echoes": len(rtts), "failures": failures,
            "median_ms": round(statistics.median(rtts), 2) if rtts else None,
            "p99_ms": round(pct(rtts, 99), 2) if rtts else None,
            "max_ms": round(max(rtts), 2) if rtts else None,
            "over_1s": sum(1 for x in rtts if x > 1000)}


def cmd_selftest(a: argparse.Namespace) -> int:
    out = run_selftest(a)
    print(json.dumps(out, indent=2))
    return 0


def console_summary(port: int) -> dict | None:
    try:
        with _HTTP.open(f"http://{HOST}:{port}/", timeout=3) as r:
            html = r.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, TimeoutError):
        return None
    text = re.sub(r"<[^>]+>", " ", html.replace("<br>", "\n"))
    out: dict = {}
    pats = {
        "network_status": r"Network status:\s*([^\n]+?)\s*\n",
        "tunnel_success_rate": r"Tunnel creation success rate:\s*(\d+)%",
        "routers": r"Routers:\s*(\d+)",
        "floodfills": r"Floodfills:\s*(\d+)",
        "leasesets": r"LeaseSets:\s*(\d+)",
        "client_tunnels": r"Client Tunnels:\s*(\d+)",
        "transit_tunnels": r"Transit Tunnels:\s*(\d+)",
        "caps": r"Router Caps:\s*(\S+)",
        "uptime": r"Uptime:\s*([^\n]+?)\s*\n",
    }
    for k, p in pats.items():
        m = re.search(p, text)
        if m:
            v = m.group(1).strip()
            out[k] = int(v) if v.isdigit() else v
    return out


def cmd_status(a: argparse.Namespace) -> int:
    d = Path(a.dir).resolve()
    entries = load_pids(d)
    try:
        net = json.loads((d / NETWORK_FILE).read_text())
    except (OSError, ValueError):
        net = None
    http = {r["name"]: int(r["http_console"].rsplit(":", 1)[1]) for r in net["routers"]} if net else {}
    procs = []
    for e in entries:
        ip = inner_pid(e) or e.get("inner_pid")
        alive = bool(ip and pid_alive(ip) and ours(ip, e)) or pid_alive(e["pid"])
        p = {"name": e["name"], "kind": e["kind"], "wrapper_pid": e["pid"], "pid": ip, "alive": alive,
             "lifetime_left_s": int(e["started"] + e["lifetime"] - time.time())}
        if e["kind"] == "i2pd" and e["name"] in http and alive:
            p["console"] = console_summary(http[e["name"]])
        procs.append(p)
    out = {"dir": str(d), "processes": procs, "running": sum(p["alive"] for p in procs)}
    if net:
        out["sam"] = [f"{s['host']}:{s['port']}" for s in net["sam"]]
        out["netid"] = net["netid"]
    print(json.dumps(out, indent=2))
    return 0 if procs and all(p["alive"] for p in procs) else 1


def cmd_down(a: argparse.Namespace) -> int:
    d = Path(a.dir).resolve()
    status = netproc.down(d, a.grace, log, stop_all)
    (d / NETNS_READY).unlink(missing_ok=True)
    return status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{up,status,selftest,down}")

    up = sub.add_parser("up", help="generate and start the network, wait until it is usable")
    up.add_argument("--dir", required=True)
    up.add_argument("--routers", type=int, default=None,
                    help="number of i2pd routers (default max(8, floodfills + sam + 1))")
    up.add_argument("--floodfills", type=int, default=3, help="floodfill routers, never SAM (default 3)")
    up.add_argument("--sam", type=int, default=4, help="routers with a SAM bridge, >= 2 (default 4)")
    up.add_argument("--base-port", type=int, default=17400,
                    help="NTCP2 base+i (inside the namespace), SAM base+32+i and web console base+64+i "
                         "(127.0.0.1, forwarded) (default 17400)")
    up.add_argument("--netid", type=int, default=77, help="private I2P network id, not 2 (default 77)")
    up.add_argument("--exploratory-length", type=int, default=2,
                    help="exploratory tunnel length (i2pd default 2)")
    up.add_argument("--probe-options", default=RECOMMENDED_OPTIONS,
                    help=f"SESSION CREATE options for the readiness probe (default '{RECOMMENDED_OPTIONS}')")
    up.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True,
                    help="wait for exploratory tunnels on every router before the SAM probe (default on)")
    up.add_argument("--loglevel", default="info", choices=["debug", "info", "warn", "error", "none"])
    up.add_argument("--timeout", type=int, default=180, help="give up after this many seconds (default 180)")
    up.add_argument("--lifetime", type=int, default=3600,
                    help="every process exits by itself after this many seconds (default 3600)")
    up.add_argument("--grace", type=float, default=10.0)
    up.add_argument("--selftest", action="store_true", help="run `selftest` (RTT, throughput) after bring-up")
    up.add_argument("--keep-on-failure", action="store_true")
    up.set_defaults(func=cmd_up)

    st = sub.add_parser("status", help="processes and per-router console summary (JSON)")
    st.add_argument("--dir", required=True)
    st.set_defaults(func=cmd_status)

    se = sub.add_parser("selftest", help="RTT and throughput of a SAM stream between two SAM routers (JSON)")
    se.add_argument("--dir", required=True)
    se.add_argument("--from", dest="src", default=None, help="SAM router name for the client side (default first)")
    se.add_argument("--to", dest="dst", default=None, help="SAM router name for the server side (default second)")
    se.add_argument("--options", default=RECOMMENDED_OPTIONS, help="SESSION CREATE options")
    se.add_argument("--rtt", type=int, default=200, help="number of echo round trips (default 200)")
    se.add_argument("--msg-size", type=int, default=64, help="bytes per echo (default 64)")
    se.add_argument("--throughput-seconds", type=float, default=10.0, help="one-way send duration (default 10)")
    se.add_argument("--streams", type=int, default=0,
                    help="then open this many fresh streams one after the other (one echo each, no retry)")
    se.add_argument("--soak", type=float, default=0.0, help="then echo every 0.5 s for this many seconds")
    se.add_argument("--timeout", type=float, default=180, help="bound for sessions and streams (default 180)")
    se.set_defaults(func=cmd_selftest)

    dn = sub.add_parser("down", help="stop every process of the network (SIGTERM, grace, SIGKILL)")
    dn.add_argument("--dir", required=True)
    dn.add_argument("--grace", type=float, default=10.0)
    dn.set_defaults(func=cmd_down)

    ns = sub.add_parser("_netns", help=argparse.SUPPRESS)
    ns.add_argument("--dir", required=True)
    ns.add_argument("--ports", required=True)
    ns.add_argument("--routers", type=int, required=True)
    ns.set_defaults(func=cmd_netns)

    return netproc.run(p.parse_args(argv), (NetError, SamError), log)


if __name__ == "__main__":
    sys.exit(main())
