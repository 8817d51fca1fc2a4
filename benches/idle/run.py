#!/usr/bin/env python3
"""Memory per idle connection (relay) and per idle client (driver), as RSS deltas.

For each client count N (default 5,000 and 10,000) this starts a fresh relay as its own
process and a driver as another:

    sealbench relay --listen 127.0.0.1:PORT
    sealbench run benches/idle/idle.toml --relay ws://127.0.0.1:PORT/ --clients N --no-plots

`idle.toml` connects N clients from 127.0.0.2-127.0.0.5, registers them and runs the XX
handshake of N/2 conversations through the relay, then holds them for 20 s without traffic.
When the driver's first steady second arrives (its --json-stream) and the relay holds N
connections (its open descriptors), the script waits SETTLE_S and reads VmRSS from
/proc/PID/status of both processes three times, a second apart, and keeps the median.

- relay bytes per connection = (relay VmRSS with N connections - its VmRSS just before the
  driver started) / N
- driver bytes per client = the slope between the smallest and the largest N:
  (driver VmRSS at N2 - at N1) / (N2 - N1) (its fixed costs cancel: histograms, runtime,
  shard threads); each N's VmHWM (peak) is shown too.

Not part of .ci/run (about 40 s per count). Documented in docs/PERFORMANCE.md ("Idle
memory"). Usage: benches/idle/run.py --help.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCENARIO = HERE / "idle.toml"
SETTLE_S = 3.0
START_S = 15.0  # the relay must listen within this
READY_S = 120.0  # connects and handshakes must be done within this
POLL_S = 0.2


def status_kib(pid: int, field: str) -> int:
    """A `VmRSS:`-style line of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_median(pid: int) -> int:
    samples = []
    for k in range(3):
        if k:
            time.sleep(1.0)
        samples.append(status_kib(pid, "VmRSS"))
    return int(statistics.median(samples))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_listening(p: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"relay exited ({p.returncode}) before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"relay not listening on 127.0.0.1:{port} after {START_S:.0f} s")


def measure(args: argparse.Namespace, n: int, work: Path) -> dict:
    port = free_port()
    logs = work / f"n{n}"
    logs.mkdir(parents=True, exist_ok=True)
    relay_cmd = [args.bin, "relay", "--listen", f"127.0.0.1:{port}", *args.relay_arg]
    stream = logs / "stream.jsonl"
    driver_cmd = [
        args.bin, "run", str(SCENARIO), "--relay", f"ws://127.0.0.1:{port}/", "--clients", str(n),
        "--no-plots", "--out", str(logs / "result"), "--json-stream", str(stream), *args.driver_arg,
    ]
    print(f"N={n}: {' '.join(relay_cmd)}\n        {' '.join(driver_cmd)}", flush=True)
    with open(logs / "relay.log", "wb") as rl, open(logs / "driver.log", "wb") as dl:
        relay = subprocess.Popen(relay_cmd, stdout=rl, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        driver = None
        try:
            wait_listening(relay, port)
            time.sleep(1.0)
            relay_base = rss_median(relay.pid)
            relay_fds = open_fds(relay.pid)
            driver = subprocess.Popen(driver_cmd, stdout=dl, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + READY_S
            while True:
                if driver.poll() is not None:
                    raise RuntimeError(f"driver exited ({driver.returncode}) before its steady phase; see {logs}/driver.log")
                ready = stream.exists() and stream.stat().st_size > 0 and open_fds(relay.pid) >= relay_fds + n
                if ready:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not all {n} clients up after {READY_S:.0f} s; see {logs}")
                time.sleep(POLL_S)
            time.sleep(SETTLE_S)
            relay_rss = rss_median(relay.pid)
            driver_rss = rss_median(driver.pid)
            driver_hwm = status_kib(driver.pid, "VmHWM")
            conns = open_fds(relay.pid) - relay_fds
            driver.wait(timeout=READY_S)
        finally:
            if driver is not None:
                stop(driver)
            stop(relay)
    summary = json.loads((logs / "result" / "summary.json").read_text())
    clients = summary.get("clients", {})
    return {
        "n": n,
        "relay_base_kib": relay_base,
        "relay_kib": relay_rss,
        "relay_conns": conns,
        "relay_b_per_conn": (relay_rss - relay_base) * 1024 / n,
        "driver_kib": driver_rss,
        "driver_hwm_kib": driver_hwm,
        "connects_ok": clients.get("connected"),
        "handshakes_ok": clients.get("handshakes_ok"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target/release/sealbench"), help="the sealbench binary (default: target/release/sealbench)")
    ap.add_argument("--counts", default="5000,10000", help="client counts, comma-separated (default 5000,10000)")
    ap.add_argument("--relay-arg", action="append", default=[], help="extra argument for `sealbench relay` (repeatable)")
    ap.add_argument("--driver-arg", action="append", default=[], help="extra argument for `sealbench run` (repeatable)")
    ap.add_argument("--out", default=None, help="folder for logs and results (default: a temporary one)")
    args = ap.parse_args()
    try:
        counts = sorted({int(c) for c in args.counts.split(",") if c.strip()})
    except ValueError:
        sys.exit(f"run.py: --counts {args.counts!r}: give whole numbers, e.g. 5000,10000")
    if not counts or counts[0] < 2:
        sys.exit("run.py: --counts: every count must be at least 2 (clients come in pairs)")
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"run.py: --bin {args.bin}: not an executable; build it: cargo build --release -p sealbench")
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="sealbench-idle-"))
    rows = []
    try:
        for n in counts:
            rows.append(measure(args, n, work))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        sys.exit(f"run.py: {e}")
    print(f"\nlogs and results: {work}\n")
    print("| clients | relay VmRSS before → with (KiB) | relay B per connection | driver VmRSS (KiB) | driver VmHWM (KiB) | connected / handshakes |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['relay_base_kib']:,} → {r['relay_kib']:,} | {r['relay_b_per_conn']:,.0f} | "
            f"{r['driver_kib']:,} | {r['driver_hwm_kib']:,} | {r['connects_ok']} / {r['handshakes_ok']} |"
        )
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        slope = (b["driver_kib"] - a["driver_kib"]) * 1024 / (b["n"] - a["n"])
        print(f"\ndriver B per client (VmRSS slope {a['n']:,} → {b['n']:,}): {slope:,.0f}")
    (work / "idle.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
