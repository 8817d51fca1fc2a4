#!/usr/bin/env python3
"""Side by side: the same sealbench driver against the sealbench relay and small peer relays.

For each aggregate rate and each relay (sealbench, Node `ws`, Go gorilla/websocket, and a
naive tokio-tungstenite relay), this starts the relay as its own process on 127.0.0.1, runs

    sealbench run scenarios/quickstart.toml --relay ws://127.0.0.1:PORT/ --clients 1000
        --duration 10s --set traffic.aggregate_rate=R --set traffic.rate= --set relay.ack=false

(1,000 clients, 500 XX conversations, 256 B ChaCha20-Poly1305, no relay acks) and measures,
over the driver's steady seconds only (warm-up, connects and handshakes excluded), the CPU
of the relay process and of the driver process (utime + stime from /proc/PID/stat, sampled
when the driver writes each second to its --json-stream) per message delivered in those
seconds; the e2e p99 and the loss come from the driver's summary.json. Rounds are
interleaved (every cell once per round, the relay order rotating), and the table shows
the median of the rounds.

Each round also measures, per rate, the floor of the same traffic shape on this machine
(`sealbench calibrate --shape CLIENTS@RATE`: a minimal epoll generator and relay, no
WebSocket, no crypto), and the first table prints the sealbench relay's and driver's CPU
per message as multiples of it (`--no-floor` skips it).

Not part of .ci/run: it takes about 80 s per round and rate with four relays, and its
figures depend on whatever else the machine runs. Documented in docs/PERFORMANCE.md
("Peers"). Usage: benches/peers/run.py --help.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RELAYS = ("sealbench", "node", "go", "naive")
LABELS = {
    "sealbench": "sealbench relay",
    "node": "Node `ws` relay",
    "go": "Go gorilla relay",
    "naive": "naive tokio-tungstenite relay",
    "naive-gen": "sealbench relay, naive generator as the driver",
    "floor": "same-shape floor (sealbench calibrate --shape)",
}
GOPATH = "/usr/share/gocode"
GORILLA = Path(GOPATH) / "src/github.com/gorilla/websocket"
TICKS = os.sysconf("SC_CLK_TCK")
# Every wait below is bounded by one of these.
RELAY_START_S = 15.0
RELAY_STOP_S = 5.0
DRIVER_MARGIN_S = 60.0  # beyond warm-up + duration + cool-down: connects, drain, results
POLL_S = 0.05


class Refused(Exception):
    """Bad input or a missing tool: the message says what to do."""


def die(msg: str, code: int = 2) -> None:
    print(f"run.py: {msg}", file=sys.stderr)
    sys.exit(code)


def need(tool: str, install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise Refused(f"`{tool}` not found on PATH; install it: {install}")
    return path


def run_checked(cmd: list[str], what: str, timeout: float, **kw) -> None:
    print(f"  building {what}: {' '.join(cmd)}", flush=True)
    try:
        subprocess.run(cmd, check=True, timeout=timeout, **kw)
    except subprocess.CalledProcessError as e:
        raise Refused(f"building {what} failed (exit {e.returncode}): {' '.join(cmd)}") from None
    except subprocess.TimeoutExpired:
        raise Refused(f"building {what} took more than {timeout:.0f} s: {' '.join(cmd)}") from None


# ---------------------------------------------------------------------------------------
# Building the relays and the driver


def build(args: argparse.Namespace, work: Path) -> dict[str, list[str]]:
    """Builds what the chosen relays need; returns each relay's command (without --listen)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    cmds: dict[str, list[str]] = {}
    if args.sealbench is None:
        if not args.no_build:
            need("cargo", "a Rust toolchain (https://rustup.rs), or pass --sealbench PATH")
            run_checked(["cargo", "build", "--release", "-p", "sealbench"], "sealbench", 1800, cwd=ROOT)
        args.sealbench = target / "release/sealbench"
    if not Path(args.sealbench).is_file():
        raise Refused(f"no sealbench binary at {args.sealbench}: build it (cargo build --release -p sealbench) or pass --sealbench PATH")
    cmds["sealbench"] = [str(args.sealbench), "relay"] + args.relay_arg
    if "node" in args.relays:
        node = need("node", "Node.js ≥ 18 (Debian: apt-get install -y nodejs npm)")
        if not (HERE / "node/node_modules/ws").is_dir():
            npm = need("npm", "npm (Debian: apt-get install -y npm)")
            run_checked([npm, "ci", "--no-audit", "--no-fund"], "the Node relay (npm ci: ws from the npm registry)", 300, cwd=HERE / "node")
        cmds["node"] = [node, str(HERE / "node/relay.js")]
    if "go" in args.relays:
        go = need("go", "apt-get install -y golang-go golang-github-gorilla-websocket-dev")
        if not GORILLA.is_dir():
            raise Refused(f"gorilla/websocket not found at {GORILLA}; install it: apt-get install -y golang-github-gorilla-websocket-dev")
        out = work / "go-relay"
        env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, GOFLAGS="", GOCACHE=str(work / "gocache"))
        if not args.no_build or not out.is_file():
            run_checked([go, "build", "-o", str(out), "relay.go"], "the Go relay (GOPATH mode, Debian's gorilla/websocket)", 600, cwd=HERE / "go", env=env)
        cmds["go"] = [str(out)]
    def example(name: str) -> list[str]:
        """A cargo example of the benches crate (the naive relay and generator)."""
        path = target / "release/examples" / name
        build_cmd = ["cargo", "build", "--release", "-p", "sealbench-benches", "--example", name]
        if not args.no_build:
            need("cargo", "a Rust toolchain (https://rustup.rs)")
            run_checked(build_cmd, name, 1800, cwd=ROOT)
        if not path.is_file():
            raise Refused(f"no {name} at {path}: {' '.join(build_cmd)}")
        return [str(path)]

    if "naive" in args.relays:
        cmds["naive"] = example("naive-relay")
    if args.naive_generator:
        cmds["naive-gen"] = example("naive-generator")
    return cmds


# ---------------------------------------------------------------------------------------
# Processes


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process, in clock ticks (None once it has gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: int | None):
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


class Children:
    """Processes this script started; all stopped on exit, failure or a signal."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], log: Path, cpu: int | None = None) -> subprocess.Popen:
        with open(log, "wb") as f:
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=pinned(cpu))
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=RELAY_STOP_S)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=RELAY_STOP_S)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(self.procs):
            self.stop(p)


def wait_listening(p: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + RELAY_START_S
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"relay exited ({p.returncode}) before listening; its output: {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"relay not listening on 127.0.0.1:{port} after {RELAY_START_S:.0f} s; its output: {log}")


# ---------------------------------------------------------------------------------------
# One cell: one relay, one rate, one round


@dataclass
class Cell:
    relay: str
    rate: int
    round: int
    ok: bool = False
    error: str = ""
    delivered_per_s: float = 0.0
    relay_us: float = float("nan")
    driver_us: float = float("nan")
    driver_self_us: float = float("nan")  # the driver's own figure: shard threads only
    e2e_p99_ms: float = float("nan")
    e2e_p50_ms: float = float("nan")
    sent: int = 0
    lost: int = 0
    refused: int = 0
    saturated: bool = False
    out: str = ""
    notes: list[str] = field(default_factory=list)


def driver_cmd(args: argparse.Namespace, port: int, rate: int, out: Path, stream: Path) -> list[str]:
    return [
        str(args.sealbench), "run", str(args.scenario),
        "--relay", f"ws://127.0.0.1:{port}/",
        "--clients", str(args.clients),
        "--duration", args.duration,
        "--aead", "chacha20-poly1305",
        "--set", f"traffic.aggregate_rate={rate}", "--set", "traffic.rate=",
        "--set", "traffic.size=256", "--set", "relay.ack=false",
        "--set", "thresholds=[]",
        "--no-plots", "-q", "--out", str(out), "--json-stream", str(stream),
    ] + args.driver_arg  # fmt: skip


def measure(args, children: Children, relay_cmd: list[str], cell: Cell, work: Path) -> None:
    name = f"r{cell.round}-{cell.rate}-{cell.relay}"
    out, stream, log = work / name, work / f"{name}.jsonl", work / f"{name}.relay.log"
    cell.out = str(out)
    port = free_port()
    relay = children.start(relay_cmd + ["--listen", f"127.0.0.1:{port}"], log, args.pin_relay)
    try:
        wait_listening(relay, port, log)
        cmd = driver_cmd(args, port, cell.rate, out, stream)
        driver = children.start(cmd, work / f"{name}.driver.log", args.pin_driver)
        limit = time.monotonic() + args.duration_s + DRIVER_MARGIN_S
        seen, buf, samples = 0, b"", []  # samples: (phase, delivered this second, relay ticks, driver ticks, when)
        while True:
            done = driver.poll() is not None
            if stream.exists():
                # Bytes and byte offsets: a text-mode tell() is an opaque cookie, and a line
                # may be caught half-written (it is completed by the next read).
                with open(stream, "rb") as f:
                    f.seek(seen)
                    chunk = f.read()
                    seen += len(chunk)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                if lines:
                    r, d, now = cpu_ticks(relay.pid), cpu_ticks(driver.pid), time.monotonic()
                    for line in lines:
                        o = json.loads(line)
                        samples.append((o["phase"], o["delta"]["delivered"], r, d, now))
            if done:
                break
            if time.monotonic() > limit:
                raise RuntimeError(f"driver still running after {args.duration_s + DRIVER_MARGIN_S:.0f} s (killed)")
            if relay.poll() is not None:
                raise RuntimeError(f"relay exited ({relay.returncode}) during the run; its output: {log}")
            time.sleep(POLL_S)
        if driver.returncode not in (0, 99):
            tail = (work / f"{name}.driver.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"driver exit {driver.returncode}: {' / '.join(tail)}")
        steady = [i for i, s in enumerate(samples) if s[0] == "steady"]
        if len(steady) < 2:
            raise RuntimeError("fewer than 2 steady seconds in the driver's --json-stream")
        first, last = steady[0], steady[-1]
        start = samples[first - 1] if first > 0 else samples[first]
        window = range(first if first > 0 else first + 1, last + 1)
        delivered = sum(samples[i][1] for i in window)
        if None in (start[2], start[3], samples[last][2], samples[last][3]) or delivered == 0:
            raise RuntimeError("no CPU sample or nothing delivered in the steady seconds")
        if samples[last][4] - start[4] < 0.5 * len(window):
            # The stream's lines of the window arrived in one burst: the CPU samples at its
            # edges were taken together and would read as (near) zero CPU.
            raise RuntimeError(
                f"the steady seconds' lines were read within {samples[last][4] - start[4]:.1f} s of each other: "
                "no CPU sample spans them"
            )
        cell.relay_us = (samples[last][2] - start[2]) / TICKS * 1e6 / delivered
        cell.driver_us = (samples[last][3] - start[3]) / TICKS * 1e6 / delivered
        cell.delivered_per_s = delivered / len(window)
        s = json.loads((out / "summary.json").read_text())
        m = s["messages"]
        cell.sent, cell.lost, cell.refused = m["sent"], m["lost"], m["refused"]
        cell.e2e_p99_ms = s["latency"]["e2e"]["p99_us"] / 1000
        cell.e2e_p50_ms = s["latency"]["e2e"]["p50_us"] / 1000
        cell.driver_self_us = s["generator"].get("driver_cpu_us_per_msg") or float("nan")
        cell.saturated = bool(s["generator"].get("saturated"))
        if s["clients"].get("connected", args.clients) < args.clients:
            cell.notes.append(f"connected {s['clients'].get('connected')}/{args.clients}")
        cell.ok = True
    except (RuntimeError, OSError, KeyError, ValueError) as e:
        cell.error = str(e)
    finally:
        for p in list(children.procs):
            children.stop(p)


def measure_naive_gen(args, children: Children, relay_cmd: list[str], gen_cmd: list[str], cell: Cell, work: Path) -> None:
    """The naive generator against the sealbench relay: it prints `steady-start` and
    `steady-end` at the edges of its measured window (the relay's CPU is sampled then) and a
    JSON summary with its own CPU per message at the end."""
    name = f"r{cell.round}-{cell.rate}-naive-gen"
    log, out = work / f"{name}.relay.log", work / f"{name}.generator.log"
    cell.out = str(out)
    port = free_port()
    relay = children.start(relay_cmd + ["--listen", f"127.0.0.1:{port}"], log, args.pin_relay)
    try:
        wait_listening(relay, port, log)
        warmup = 3
        cmd = gen_cmd + [f"ws://127.0.0.1:{port}/", str(args.clients), str(cell.rate), str(warmup), str(args.duration_s - 5)]
        gen = children.start(cmd, out, args.pin_driver)
        limit = time.monotonic() + args.duration_s + DRIVER_MARGIN_S
        marks: dict[str, int | None] = {}
        while True:
            done = gen.poll() is not None
            text = out.read_text(errors="replace")
            for mark in ("steady-start", "steady-end"):
                if mark in text and mark not in marks:
                    marks[mark] = cpu_ticks(relay.pid)
            if done:
                break
            if time.monotonic() > limit:
                raise RuntimeError(f"generator still running after {args.duration_s + DRIVER_MARGIN_S:.0f} s (killed)")
            time.sleep(POLL_S)
        if gen.returncode != 0:
            raise RuntimeError(f"naive generator exit {gen.returncode}: {' / '.join(text.strip().splitlines()[-3:])}")
        r = json.loads(text.strip().splitlines()[-1])
        if marks.get("steady-start") is None or marks.get("steady-end") is None:
            raise RuntimeError("no relay CPU sample at the generator's steady window")
        cell.relay_us = (marks["steady-end"] - marks["steady-start"]) / TICKS * 1e6 / r["steady_delivered"]
        cell.driver_us = r["cpu_us_per_msg"]
        cell.delivered_per_s = r["steady_delivered"] / r["steady_s"]
        cell.e2e_p99_ms, cell.e2e_p50_ms = r["e2e_p99_us"] / 1000, r["e2e_p50_us"] / 1000
        cell.sent, cell.lost = r["sent"], r["lost"]
        cell.ok = True
    except (RuntimeError, OSError, KeyError, ValueError, IndexError) as e:
        cell.error = str(e)
    finally:
        for p in list(children.procs):
            children.stop(p)


# ---------------------------------------------------------------------------------------
# Tables


def measure_floor(args, cell: Cell) -> None:
    """The floor of the same traffic shape on this machine, in this sitting: a minimal epoll
    generator and relay (no WebSocket, no crypto) moving CLIENTS connections at RATE msgs/s
    (`sealbench calibrate --shape CLIENTS@RATE`); its relay and generator CPU per message
    take the relay and driver columns."""
    cmd = [str(args.sealbench), "calibrate", "--shape", f"{args.clients}@{cell.rate}", "--json"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True).stdout
        shapes = json.loads(out)["shapes"]
        s = next(x for x in shapes if x["connections"] == args.clients and x["rate"] == cell.rate)
        cell.relay_us, cell.driver_us = s["relay_ns"] / 1000, s["generator_ns"] / 1000
        cell.ok = True
    except (subprocess.SubprocessError, OSError, ValueError, KeyError, StopIteration) as e:
        cell.error = f"sealbench calibrate --shape: {e}"


def med(cells: list[Cell], attr: str) -> float:
    vals = [getattr(c, attr) for c in cells if c.ok and getattr(c, attr) == getattr(c, attr)]
    return statistics.median(vals) if vals else float("nan")


def fmt(x: float) -> str:
    """µs per message: one decimal below 100."""
    if x != x:
        return "—"
    return f"{x:.1f}" if abs(x) < 100 else f"{x:,.0f}"


def fmt_rate(x: float) -> str:
    return "—" if x != x else f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    return "—" if x != x else (f"{x:.1f}" if x < 10 else f"{x:.0f}")


def tables(args, cells: list[Cell]) -> str:
    by = {(r, k): [c for c in cells if c.rate == r and c.relay == k] for r in args.rates for k in args.runs}
    lines = []
    head = ["aggregate rate"] + [f"{LABELS[k]} µs CPU/msg" for k in args.relays]
    base = "sealbench" if "sealbench" in args.relays else args.relays[0]
    head += [f"sealbench driver µs CPU/msg (with the {LABELS[base]})"]
    head += ["naive generator µs CPU/msg (with the sealbench relay)"] if args.naive_generator else []
    head += ["same-shape floor relay / generator µs CPU/msg", "sealbench relay / driver × floor"] if args.floor else []
    head += ["e2e p99, ms: " + " / ".join(args.relays)]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in args.rates:
        row = [f"{r // 1000}k msgs/s"] + [fmt(med(by[(r, k)], "relay_us")) for k in args.relays]
        row.append(fmt(med(by[(r, base)], "driver_us")))
        if args.naive_generator:
            row.append(fmt(med(by[(r, "naive-gen")], "driver_us")))
        if args.floor:
            fr, fg = med(by[(r, "floor")], "relay_us"), med(by[(r, "floor")], "driver_us")
            row.append(f"{fmt(fr)} / {fmt(fg)}")
            mult = lambda x, f: "—" if x != x or not f or f != f else f"{x / f:.1f}×"  # noqa: E731
            sb = "sealbench" if "sealbench" in args.relays else base
            row.append(f"{mult(med(by[(r, sb)], 'relay_us'), fr)} / {mult(med(by[(r, sb)], 'driver_us'), fg)}")
        row.append(" / ".join(fmt_ms(med(by[(r, k)], "e2e_p99_ms")) for k in args.relays))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Every cell (median of the rounds that completed; range over rounds in brackets):", ""]
    head = ["rate", "relay", "rounds ok", "delivered msgs/s", "relay µs CPU/msg", "driver µs CPU/msg (process)", "driver µs/msg (its own, shard threads)", "e2e p50 ms", "e2e p99 ms", "lost / sent", "generator saturated"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in args.rates:
        for k in args.runs:
            cs = by[(r, k)]
            ok = [c for c in cs if c.ok]

            def rng(attr, f=fmt):
                vals = [getattr(c, attr) for c in ok if getattr(c, attr) == getattr(c, attr)]  # NaN: not measured
                return f"{f(med(cs, attr))} ({f(min(vals))}–{f(max(vals))})" if len(vals) > 1 else f(med(cs, attr))

            lost = f"{sum(c.lost + c.refused for c in ok):,} / {sum(c.sent for c in ok):,}" if ok and k != "floor" else "—"
            sat = f"{sum(c.saturated for c in ok)} of {len(ok)}" if ok and k not in ("naive-gen", "floor") else "—"
            lines.append(f"| {r:,} | {LABELS[k]} | {len(ok)}/{len(cs)} | {fmt_rate(med(cs, 'delivered_per_s'))} | {rng('relay_us')} | {rng('driver_us')} | {rng('driver_self_us')} | {rng('e2e_p50_ms', fmt_ms)} | {rng('e2e_p99_ms', fmt_ms)} | {lost} | {sat} |")
    failed = [c for c in cells if not c.ok]
    if failed:
        lines += ["", "Failed runs:", ""]
        lines += [f"- round {c.round}, {c.rate:,} msgs/s, {LABELS[c.relay]}: {c.error}" for c in failed]
    notes = [c for c in cells if c.notes]
    lines += [f"- round {c.round}, {c.rate:,} msgs/s, {LABELS[c.relay]}: {'; '.join(c.notes)}" for c in notes]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Needs: a Rust toolchain (or --sealbench), Node.js + npm (npm ci fetches `ws`), "
        "and apt-get install -y golang-go golang-github-gorilla-websocket-dev. Loopback only.",
    )
    p.add_argument("--rates", default="10000,20000,40000,60000", help="aggregate msgs/s, comma-separated (default: %(default)s)")
    p.add_argument("--relays", default=",".join(RELAYS), help=f"any of {', '.join(RELAYS)} (default: all)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the table shows medians (default: %(default)s)")
    p.add_argument("--duration", default="10s", help="measured seconds per run, e.g. 10s (default: %(default)s)")
    p.add_argument("--clients", type=int, default=1000, help="clients (default: %(default)s)")
    p.add_argument("--scenario", type=Path, default=ROOT / "scenarios/quickstart.toml", help="base scenario (default: quickstart)")
    p.add_argument("--sealbench", type=Path, help="a built sealbench binary (default: build it with cargo)")
    p.add_argument("--no-build", action="store_true", help="use what is already built")
    p.add_argument("--out", type=Path, help="working directory for logs and results (default: results/peers-<UTC time>)")
    p.add_argument("--no-naive-generator", dest="naive_generator", action="store_false", help="skip the naive generator column (the naive open-loop generator against the sealbench relay)")
    p.add_argument("--no-floor", dest="floor", action="store_false", help="skip the same-shape floor column (sealbench calibrate --shape CLIENTS@RATE, measured once per rate and round)")
    p.add_argument("--tables-from", type=Path, nargs="+", metavar="DIR", help="run nothing: print the tables of earlier runs' cells.json files, their rounds pooled (same rates and relays)")
    p.add_argument("--pin-relay", type=int, metavar="CPU", help="pin the relay process to this CPU")
    p.add_argument("--pin-driver", type=int, metavar="CPU", help="pin the driver process to this CPU")
    p.add_argument("--relay-arg", action="append", default=[], metavar="ARG", help="one more argument for the sealbench relay, repeatable, e.g. --relay-arg=--threads --relay-arg=1")
    p.add_argument("--driver-arg", action="append", default=[], metavar="ARG", help="one more argument for every `sealbench run`, repeatable, e.g. --driver-arg=--shards --driver-arg=1 (for an A/B of a driver option, run the script with and without it, alternately)")
    a = p.parse_args()
    try:
        a.rates = [int(x) for x in a.rates.split(",") if x]
    except ValueError:
        die(f"--rates wants integers separated by commas, got {a.rates!r}")
    a.relays = [x for x in a.relays.split(",") if x]
    if not a.rates or any(r <= 0 for r in a.rates):
        die("--rates wants positive integers")
    if not a.relays or any(k not in RELAYS for k in a.relays):
        die(f"--relays: choose from {', '.join(RELAYS)} (got {','.join(a.relays)})")
    if not 1 <= a.rounds <= 20:
        die("--rounds must be between 1 and 20")
    if not 1 <= a.clients <= 9000:
        die("--clients must be between 1 and 9000 (one process, one source address)")
    if not (a.duration.endswith("s") and a.duration[:-1].isdigit() and 1 <= int(a.duration[:-1]) <= 600):
        die(f"--duration wants whole seconds like 10s (1–600 s), got {a.duration!r}")
    a.runs = a.relays + (["naive-gen"] if a.naive_generator else []) + (["floor"] if a.floor else [])
    a.duration_s = int(a.duration[:-1]) + 5  # quickstart's 3 s warm-up and 2 s cool-down
    if not a.scenario.is_file():
        die(f"no scenario file at {a.scenario}")
    return a


def pooled(args: argparse.Namespace) -> None:
    """Prints the tables of earlier runs' cells, every round of every run pooled."""
    cells: list[Cell] = []
    for d in args.tables_from:
        try:
            saved = json.loads((d / "cells.json").read_text())
        except (OSError, ValueError) as e:
            die(f"cannot read {d / 'cells.json'}: {e}")
        offset = max((c.round for c in cells), default=0)
        for c in saved:
            c["round"] += offset
            cells.append(Cell(**{k: v for k, v in c.items() if k in Cell.__dataclass_fields__}))
    args.rates = [r for r in args.rates if any(c.rate == r for c in cells)]
    args.relays = [k for k in args.relays if any(c.relay == k for c in cells)]
    args.naive_generator = args.naive_generator and any(c.relay == "naive-gen" for c in cells)
    args.floor = args.floor and any(c.relay == "floor" for c in cells)
    args.runs = args.relays + (["naive-gen"] if args.naive_generator else []) + (["floor"] if args.floor else [])
    print(tables(args, cells))


def main() -> None:
    args = parse_args()
    if args.tables_from:
        return pooled(args)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = (args.out or ROOT / f"results/peers-{stamp}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    children = Children()

    def on_signal(signum, _frame):
        children.stop_all()
        die(f"interrupted by signal {signum}; partial logs in {work}", 130)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        cmds = build(args, work)
    except Refused as e:
        die(str(e))
    cells: list[Cell] = []
    total = args.rounds * len(args.rates) * len(args.runs)
    try:
        for rnd in range(1, args.rounds + 1):
            for rate in args.rates:
                shift = (rnd - 1) % len(args.runs)
                for relay in args.runs[shift:] + args.runs[:shift]:  # rotate the order each round
                    cell = Cell(relay=relay, rate=rate, round=rnd)
                    print(f"[{len(cells) + 1}/{total}] round {rnd}, {rate:,} msgs/s, {LABELS[relay]} … ", end="", flush=True)
                    if relay == "floor":
                        measure_floor(args, cell)
                    elif relay == "naive-gen":
                        measure_naive_gen(args, children, cmds["sealbench"], cmds[relay], cell, work)
                    else:
                        measure(args, children, cmds[relay], cell, work)
                    cells.append(cell)
                    if cell.ok and relay == "floor":
                        print(f"relay {cell.relay_us:.1f} µs/msg, generator {cell.driver_us:.1f} µs/msg", flush=True)
                    elif cell.ok:
                        print(f"relay {cell.relay_us:.1f} µs/msg, driver {cell.driver_us:.1f} µs/msg, e2e p99 {cell.e2e_p99_ms:.1f} ms, lost {cell.lost + cell.refused}/{cell.sent}", flush=True)
                    else:
                        print(f"FAILED: {cell.error}", flush=True)
    finally:
        children.stop_all()
    table = tables(args, cells)
    cmd = " ".join(sys.argv)
    header = f"# {cmd}\n# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end\n"
    (work / "table.md").write_text(header + "\n" + table + "\n")
    (work / "cells.json").write_text(json.dumps([c.__dict__ for c in cells], indent=1, default=str))
    print("\n" + table)
    print(f"\n(table in {work / 'table.md'}, every cell in {work / 'cells.json'})")
    if not any(c.ok for c in cells):
        sys.exit(1)


if __name__ == "__main__":
    main()
