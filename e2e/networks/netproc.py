"""Process management shared by the private-network harnesses (tor/tornet.py, i2pd/i2pdnet.py).

Both start daemons in the background (each under `timeout(1)`, so they die by themselves), record
them in a `pids.json` of the network's directory, and stop them by PID later — from another
process, so every PID is checked against its command line first (PID reuse). Python 3.11
standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

PIDS_FILE = "pids.json"


def logger(name: str):
    """A `log(msg)` printing `[name HH:MM:SS] msg` to stderr."""

    def log(msg: str) -> None:
        print(f"[{name} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    return log


def need_binary(name: str, error: type[Exception], hint: str = "") -> str:
    """The path of `name` on PATH, or `error` saying how to install it."""
    path = shutil.which(name)
    if not path:
        raise error(f"`{name}` not found{': ' + hint if hint else ''}")
    return path


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except OSError:
        return False
    return True


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def load_pids(d: Path) -> list[dict]:
    try:
        return json.loads((d / PIDS_FILE).read_text())
    except (OSError, ValueError):
        return []


def save_pids(d: Path, entries: list[dict]) -> None:
    tmp = d / (PIDS_FILE + ".tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    tmp.replace(d / PIDS_FILE)


def forget_pids(d: Path) -> None:
    if (d / PIDS_FILE).exists():
        (d / PIDS_FILE).unlink()


# An entry of pids.json: "pid" (the `timeout` wrapper or the process itself), optionally
# "pidfile" (where the daemon writes its own PID) or "inner_pid", a "marker" that its command
# line contains, and a "name" for reports.


def inner_pid(entry: dict) -> int | None:
    """The daemon's own PID (from its pidfile, or recorded), if known."""
    pf = entry.get("pidfile")
    if not pf:
        return entry.get("inner_pid")
    try:
        return int(Path(pf).read_text().strip())
    except (OSError, ValueError):
        return None


def ours(pid: int, entry: dict) -> bool:
    """Guard against PID reuse: the process must still be the one recorded."""
    return entry["marker"] in pid_cmdline(pid)


def stop_entries(entries: list[dict], grace: float) -> list[str]:
    """SIGTERM to every live process of `entries`, SIGKILL to those alive after `grace` seconds;
    reaps our own children. Returns one report line per process."""
    report = []
    targets: list[tuple[int, str]] = []
    for e in entries:
        for pid in (e.get("pid"), inner_pid(e)):
            if pid and pid_alive(pid) and ours(pid, e):
                targets.append((pid, e["name"]))

    def reap() -> None:
        for pid, _ in targets:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass

    for pid, _ in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p, _ in targets):
        reap()  # our own children (up's failure path) would stay zombies otherwise
        time.sleep(0.1)
    for pid, name in targets:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                report.append(f"{name}: pid {pid} killed (SIGKILL after {grace}s)")
            except ProcessLookupError:
                pass
        else:
            report.append(f"{name}: pid {pid} stopped")
    reap()
    return report


def stop_all(d: Path, grace: float, first=lambda entry: False) -> list[str]:
    """Stops every process recorded in `d`'s pids.json (those `first` selects before the others:
    a network's daemons before the helpers they depend on) and forgets them."""
    entries = load_pids(d)
    report = stop_entries([e for e in entries if first(e)], grace)
    report += stop_entries([e for e in entries if not first(e)], grace)
    forget_pids(d)
    return report


def down(d: Path, grace: float, log, stop=stop_all) -> int:
    """The `down` command: `stop(d, grace)` reported line by line; nothing recorded is no error."""
    if not (d / PIDS_FILE).exists():
        log(f"nothing to stop in {d} (no {PIDS_FILE})")
        return 0
    for line in stop(d, grace):
        log(line)
    return 0


def run(args, errors: tuple[type[BaseException], ...], log) -> int:
    """Runs the parsed command `args.func(args)`: `errors` are reported as one `ERROR:` line and
    exit status 1, an interrupt as status 130."""
    try:
        return args.func(args)
    except errors as e:
        log(f"ERROR: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
