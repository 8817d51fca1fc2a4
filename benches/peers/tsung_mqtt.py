#!/usr/bin/env python3
"""Side by side on one Mosquitto: Tsung's MQTT plugin and sealbench, the same connections and rate.

Each cell starts a fresh Mosquitto (Debian's package) on 127.0.0.1 with a plain MQTT listener
and a WebSocket one (the configuration of docs/TARGETS.md), runs one generator against its
WebSocket listener, and stops it. Generators:

- `tsung`: Tsung 1.7 (Debian's `tsung`), its `ts_mqtt` plugin over Tsung's WebSocket transport
  (`<server type="websocket">`, subprotocol `mqtt`, binary frames; `--tsung-transport tcp` for
  the plain MQTT listener): each user CONNECTs (clean session), SUBSCRIBEs at QoS 1 to its own
  topic `t/<user id>`, then PUBLISHes QoS 1 to its pair's topic with
  an exponential think time of connections/rate seconds, `rate × duration / connections` times,
  each PUBLISH waiting for its PUBACK (Tsung's `request` time). Tsung 1.7 has no stamped publish:
  it reports no forward latency, only PUBLISH → PUBACK.
- `sealbench-plaintext`: `sealbench run scenarios/mqtt-mosquitto.toml` with
  `crypto.protocol = "plaintext"` (no handshake, no AEAD; the same framing).
- `sealbench-xx`: the same with Noise XX handshakes and ChaCha20-Poly1305 (the scenario as is).
- `reference-relay`: `sealbench-xx`'s driver against sealbench's own relay (`sealbench relay`)
  instead of Mosquitto (`relay.wire = "sealbench"`), for the quickstart's load on both servers.

sealbench's cells: `connections` clients in connections/2 conversations, each sending to the
other at rate/connections msgs/s (Poisson), 256-byte messages, QoS 1 both ways, PUBACK timed
(`relay.ack = true`). What is measured, on this machine, by this script:

- generator CPU per message: utime + stime (/proc/PID/stat) of the generator's processes (its
  whole session: Tsung's Erlang VM, or sealbench) from start to exit, divided by the messages it
  published. Start-up, connects, handshakes and the cool-down are included for both tools.
- generator memory per connection: the largest RSS (/proc/PID/status VmRSS, summed over the
  session's processes) seen during the run, divided by the connections.
- server CPU per message: the server process's utime + stime over the run, per message published.
- latency: what each tool reports. Tsung: `request` (PUBLISH → PUBACK) mean and max (Tsung's log
  has no percentiles); sealbench: `relay_ack` (PUBLISH → PUBACK) and `e2e` p50 / p99 from
  summary.json, and `register` p99 (CONNECT → SUBACK; HELLO → WELCOME on the reference relay).
- lost: sealbench's `messages.lost`; Tsung: unknown — it counts (and acknowledges) a delivery
  only when it arrives outside a request, not while a PUBLISH waits for its PUBACK.

Tsung's users publish in pairs as sealbench's clients do: user i subscribes to `t/<i>` and
publishes to its pair's topic (user ids 1-2, 3-4, …). Publishing to one's own topic stalls
Tsung 1.7: the delivery and the PUBACK arrive together, ts_mqtt parses the first and keeps the
second unparsed until more data comes. Something of it remains with pairs (a PUBACK behind a
delivery waits for the next delivery): it shows in Tsung's PUBACK times.

Usage: benches/peers/tsung_mqtt.py --help. Not part of .ci/run (slow, and its figures depend on
what else the machine runs); the table is in docs/PERFORMANCE.md ("Tsung against Mosquitto").
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
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
GENERATORS = ("tsung", "sealbench-plaintext", "sealbench-xx", "reference-relay")
SERVER_START_S = 15.0
STOP_S = 5.0
MARGIN_S = 90.0  # beyond the duration: start-up, connects, handshakes, drain, results
POLL_S = 0.2

MOSQUITTO_CONF = """listener {plain} 127.0.0.1
listener {ws} 127.0.0.1
protocol websockets
socket_domain ipv4
allow_anonymous true
persistence false
max_queued_messages 1000000
max_inflight_messages 0
max_connections -1
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
"""

TSUNG_XML = """<?xml version="1.0"?>
<!DOCTYPE tsung SYSTEM "/usr/share/tsung/tsung-1.0.dtd">
<tsung loglevel="warning" version="1.0">
  <clients><client host="localhost" use_controller_vm="true" maxusers="{maxusers}"/></clients>
  <servers><server host="127.0.0.1" port="{port}" type="{transport}"/></servers>
  <load duration="{limit}" unit="second">
    <arrivalphase phase="1" duration="{arrive_s}" unit="second">
      <users maxnumber="{n}" interarrival="{interarrival_s}" unit="second"/>
    </arrivalphase>
  </load>
  <options>
    <option name="websocket_path" value="/"/>
    <option name="websocket_frame" value="binary"/>
    <option name="websocket_subprotocols" value="mqtt"/>
  </options>
  <sessions>
    <session name="publisher" probability="100" type="ts_mqtt">
      <request><mqtt type="connect" clean_start="true" keepalive="600"/></request>
      <setdynvars sourcetype="eval" code="fun({{_Pid, DynVars}}) -> {{ok, Id}} = ts_dynvars:lookup(tsung_userid, DynVars), integer_to_list(((Id - 1) bxor 1) + 1) end.">
        <var name="peer"/>
      </setdynvars>
      <request subst="true"><mqtt type="subscribe" topic="t/%%_tsung_userid%%" qos="1"/></request>
      <for from="1" to="{per_user}" incr="1" var="i">
        <thinktime value="{think_s}" random="true"/>
        <request subst="true"><mqtt type="publish" topic="t/%%_peer%%" qos="1">{payload}</mqtt></request>
      </for>
      <request><mqtt type="disconnect"/></request>
    </session>
  </sessions>
</tsung>
"""


class Refused(Exception):
    """Bad input or a missing tool: the message says what to do."""


def need(tool: str, install: str, extra: tuple[str, ...] = ()) -> str:
    path = shutil.which(tool) or next((p for p in extra if Path(p).is_file()), None)
    if path is None:
        raise Refused(f"`{tool}` not found; install it: {install}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid: int) -> tuple[int, int] | None:
    """(utime + stime in ticks, session id) of a process; None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return int(f[11]) + int(f[12]), int(f[3])  # utime, stime; session (fields 14, 15, 6 of proc(5))


def rss_kib(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


class Session:
    """A process started in a session of its own: its processes' CPU (the last value seen of
    each, so that children that exit still count) and the largest total RSS."""

    def __init__(self, cmd: list[str], log: Path, cwd: Path | None = None) -> None:
        with open(log, "wb") as f:
            self.p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd)
        self.log = log
        self.ticks: dict[int, int] = {}
        self.peak_rss_kib = 0

    def members(self) -> list[int]:
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                st = proc_stat(int(d))
                if st is not None and st[1] == self.p.pid:
                    out.append(int(d))
        return out

    def sample(self) -> None:
        rss = 0
        for pid in self.members():
            st = proc_stat(pid)
            if st is not None:
                self.ticks[pid] = st[0]
                rss += rss_kib(pid)
        self.peak_rss_kib = max(self.peak_rss_kib, rss)

    def cpu_s(self) -> float:
        return sum(self.ticks.values()) / TICKS

    def stop(self) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(timeout=STOP_S)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(timeout=STOP_S)


def wait_listening(s: Session, port: int) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if s.p.poll() is not None:
            raise RuntimeError(f"server exited ({s.p.returncode}) at start; its output: {s.log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server not listening on 127.0.0.1:{port} after {SERVER_START_S:.0f} s; its output: {s.log}")


@dataclass
class Cell:
    generator: str
    round: int
    ok: bool = False
    error: str = ""
    messages: int = 0
    gen_cpu_us: float = float("nan")
    gen_rss_kib_per_conn: float = float("nan")
    server_cpu_us: float = float("nan")
    ack_ms: str = ""  # PUBLISH → PUBACK as the tool reports it
    e2e_p50_ms: float = float("nan")
    e2e_p99_ms: float = float("nan")
    register_p99_ms: float = float("nan")
    lost: int = 0
    out: str = ""
    notes: list[str] = field(default_factory=list)


def tsung_stats(log: Path) -> dict[str, list[float]]:
    """The last dump of each statistic in tsung.log (its final, cumulative figures)."""
    last: dict[str, list[float]] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("stats: ") and not line.startswith("stats: {"):
            name, *vals = line[len("stats: ") :].split()
            try:
                last[name] = [float(v) for v in vals]
            except ValueError:
                continue
    return last


def run_tsung(args, work: Path, port: int, plain: int, cell: Cell) -> Session:
    tsung = need("tsung", "apt-get install -y tsung")
    n = args.connections
    per_user = max(1, round(args.rate * args.duration / n))
    xml = TSUNG_XML.format(
        maxusers=n + 100, port=port if args.tsung_transport == "websocket" else plain, transport=args.tsung_transport, limit=int(args.duration + MARGIN_S / 2), arrive_s=max(2, 2 * round(n / args.connect_rate)),
        n=n, interarrival_s=f"{1 / args.connect_rate:.6f}", per_user=per_user, think_s=f"{n / args.rate:.4f}",
        payload="x" * args.size,
    )
    conf = work / f"{cell.generator}-r{cell.round}.xml"
    conf.write_text(xml)
    logdir = work / f"{cell.generator}-r{cell.round}-log"
    cell.out = str(logdir)
    return Session([tsung, "-f", str(conf), "-l", str(logdir), "start"], work / f"{cell.generator}-r{cell.round}.out")


def finish_tsung(cell: Cell) -> None:
    logs = sorted(Path(cell.out).glob("*/tsung.log"))
    if not logs:
        raise RuntimeError(f"no tsung.log under {cell.out}")
    st = tsung_stats(logs[-1])
    published = int(st.get("mqtt_published", [0, 0])[-1])
    received = int(st.get("mqtt_server_published", [0, 0])[-1])
    # Tsung counts a delivery only when it arrives outside a request (ts_mqtt's parse_bidi)
    # or during a SUBSCRIBE: one that arrives while a PUBLISH waits for its PUBACK is neither
    # counted nor acknowledged. So its counts cannot say what was lost.
    cell.messages, cell.lost = published, -1
    if "request" in st:
        # count, mean, stddev, max, min (this interval), mean and count of the earlier ones (ms)
        c, mean, _, mx, _, mean0, c0 = st["request"][:7]
        total = c + c0
        cell.ack_ms = f"mean {(mean * c + mean0 * c0) / total:.2f}, max {mx:.1f}" if total else ""
    connected = int(st.get("mqtt_connected", [0, 0])[-1])
    if connected < 1:
        raise RuntimeError("tsung connected no user")
    cell.notes.append(f"{connected} connected, {received} PUBLISHes received, {int(st.get('mqtt_pubacked', [0, 0])[-1])} of them acknowledged")


def run_sealbench(args, work: Path, port: int, cell: Cell) -> Session:
    out = work / f"{cell.generator}-r{cell.round}"
    cell.out = str(out)
    cmd = [
        str(args.sealbench), "run", str(ROOT / "scenarios/mqtt-mosquitto.toml"),
        "--relay", f"ws://127.0.0.1:{port}/", "--clients", str(args.connections),
        "--duration", f"{args.duration}s",
        "--set", f"traffic.aggregate_rate={args.rate}", "--set", "traffic.rate=",
        "--set", f"traffic.size={args.size}", "--set", f"clients.connect_rate={args.connect_rate}",
        "--set", "thresholds=[]", "--no-plots", "-q", "--out", str(out),
    ]  # fmt: skip
    if cell.generator == "sealbench-plaintext":
        cmd += ["--set", "crypto.protocol=plaintext"]
    if cell.generator == "reference-relay":
        cmd += ["--set", "relay.wire=sealbench"]
    return Session(cmd, work / f"{cell.generator}-r{cell.round}.out")


def finish_sealbench(cell: Cell, session: Session) -> None:
    if session.p.returncode not in (0, 99):
        tail = session.log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"sealbench exit {session.p.returncode}: {' / '.join(tail)}")
    s = json.loads((Path(cell.out) / "summary.json").read_text())
    lat = s["latency"]
    cell.messages, cell.lost = s["messages"]["sent"], s["messages"]["lost"]
    cell.e2e_p50_ms, cell.e2e_p99_ms = lat["e2e"]["p50_us"] / 1000, lat["e2e"]["p99_us"] / 1000
    cell.register_p99_ms = lat["register"]["p99_us"] / 1000
    if "relay_ack" in lat:
        cell.ack_ms = f"p50 {lat['relay_ack']['p50_us'] / 1000:.2f}, p99 {lat['relay_ack']['p99_us'] / 1000:.2f}"
    own = s["generator"].get("driver_cpu_us_per_msg")
    if own:
        cell.notes.append(f"driver's own steady figure {own:.1f} µs/msg")
    if s["generator"].get("saturated"):
        cell.notes.append("generator saturated")


def measure(args, cell: Cell, work: Path) -> None:
    port, plain = free_port(), free_port()
    name = f"{cell.generator}-r{cell.round}"
    if cell.generator == "reference-relay":
        server = Session([str(args.sealbench), "relay", "--listen", f"127.0.0.1:{port}"], work / f"{name}.server.log")
    else:
        conf = work / f"{name}.mosquitto.conf"
        conf.write_text(MOSQUITTO_CONF.format(plain=plain, ws=port))
        server = Session([args.mosquitto, "-c", str(conf)], work / f"{name}.server.log")
    gen = None
    try:
        wait_listening(server, port)
        server.sample()
        cpu0 = server.cpu_s()
        gen = run_tsung(args, work, port, plain, cell) if cell.generator == "tsung" else run_sealbench(args, work, port, cell)
        limit = time.monotonic() + args.duration + MARGIN_S
        while gen.p.poll() is None:
            if time.monotonic() > limit:
                raise RuntimeError(f"{cell.generator} still running after {args.duration + MARGIN_S:.0f} s (killed)")
            if server.p.poll() is not None:
                raise RuntimeError(f"server exited ({server.p.returncode}) during the run; its output: {server.log}")
            gen.sample()
            server.sample()
            time.sleep(POLL_S)
        server.sample()
        if cell.generator == "tsung":
            finish_tsung(cell)
        else:
            finish_sealbench(cell, gen)
        if cell.messages == 0:
            raise RuntimeError("no message published")
        cell.gen_cpu_us = gen.cpu_s() * 1e6 / cell.messages
        cell.server_cpu_us = (server.cpu_s() - cpu0) * 1e6 / cell.messages
        cell.gen_rss_kib_per_conn = gen.peak_rss_kib / args.connections
        cell.ok = True
    except (RuntimeError, OSError, KeyError, ValueError, Refused) as e:
        cell.error = str(e)
    finally:
        if gen is not None:
            gen.stop()
        server.stop()


def med(cells: list[Cell], attr: str) -> float:
    vals = [getattr(c, attr) for c in cells if c.ok]
    return statistics.median(vals) if vals else float("nan")


def table(args, cells: list[Cell]) -> str:
    rows = [
        f"{args.connections} connections, {args.rate} msgs/s for {args.duration} s, {args.size} B, QoS 1; "
        f"median of {args.rounds} round(s); generator CPU from start to exit",
        "",
        "| generator → server | messages | generator CPU µs/msg | generator RSS KiB/conn | server CPU µs/msg | PUBLISH→PUBACK ms (as reported) | e2e p50 / p99 ms | register p99 ms | lost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in args.generators:
        mine = [c for c in cells if c.generator == g]
        ok = [c for c in mine if c.ok]
        server = "sealbench relay" if g == "reference-relay" else "Mosquitto"
        label = {"reference-relay": "sealbench XX+ChaCha20"}.get(g, g)
        if not ok:
            rows.append(f"| {label} → {server} | failed: {mine[0].error if mine else '-'} | | | | | | | |")
            continue
        last = ok[-1]
        e2e = "—" if g == "tsung" else f"{med(ok, 'e2e_p50_ms'):.2f} / {med(ok, 'e2e_p99_ms'):.2f}"
        reg = "—" if g == "tsung" else f"{med(ok, 'register_p99_ms'):.1f}"
        lost = "unknown" if g == "tsung" else str(int(med(ok, "lost")))
        rows.append(
            f"| {label} → {server} | {int(med(ok, 'messages'))} | {med(ok, 'gen_cpu_us'):.1f} | {med(ok, 'gen_rss_kib_per_conn'):.1f} | "
            f"{med(ok, 'server_cpu_us'):.1f} | {last.ack_ms or '—'} | {e2e} | {reg} | {lost} |"
        )
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=1000, help="connections (sealbench: clients) (default 1000)")
    ap.add_argument("--rate", type=int, default=5000, help="messages per second in all (default 5000)")
    ap.add_argument("--duration", type=int, default=20, help="seconds of sending (default 20)")
    ap.add_argument("--size", type=int, default=256, help="message bytes (default 256)")
    ap.add_argument("--connect-rate", type=int, default=1000, help="connections per second (default 1000)")
    ap.add_argument(
        "--tsung-transport", choices=("websocket", "tcp"), default="websocket",
        help="Tsung to Mosquitto's WebSocket listener (as sealbench) or its plain MQTT one (default websocket)",
    )
    ap.add_argument("--rounds", type=int, default=1, help="rounds, interleaved; the table shows medians (default 1)")
    ap.add_argument("--generators", default=",".join(GENERATORS), help=f"comma-separated, of {', '.join(GENERATORS)}")
    ap.add_argument("--sealbench", type=Path, help="the sealbench binary (default: $CARGO_TARGET_DIR or target, release)")
    ap.add_argument("--out", type=Path, help="output folder (default results/tsung-mqtt-<UTC time>)")
    args = ap.parse_args()
    try:
        args.generators = [g.strip() for g in args.generators.split(",") if g.strip()]
        bad = [g for g in args.generators if g not in GENERATORS]
        if bad or not args.generators:
            raise Refused(f"--generators: unknown {bad or 'none given'}; choose from {', '.join(GENERATORS)}")
        for name in ("connections", "rate", "duration", "size", "connect_rate", "rounds"):
            if getattr(args, name) < 1:
                raise Refused(f"--{name.replace('_', '-')}: must be at least 1")
        if args.connections % 2:
            raise Refused("--connections: must be even (sealbench pairs its clients)")
        args.mosquitto = need("mosquitto", "apt-get install -y mosquitto", ("/usr/sbin/mosquitto",))
        if args.sealbench is None:
            args.sealbench = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/sealbench"
        if any(g != "tsung" for g in args.generators) and not args.sealbench.is_file():
            raise Refused(f"no sealbench binary at {args.sealbench}: cargo build --release -p sealbench, or pass --sealbench")
    except Refused as e:
        print(f"tsung_mqtt.py: {e}", file=sys.stderr)
        return 2
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = args.out or ROOT / "results" / f"tsung-mqtt-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    cells: list[Cell] = []
    for r in range(args.rounds):
        order = args.generators[r % len(args.generators) :] + args.generators[: r % len(args.generators)]
        for g in order:
            cell = Cell(g, r)
            print(f"round {r + 1}/{args.rounds}: {g} …", flush=True)
            measure(args, cell, work)
            print(f"  {'ok' if cell.ok else 'FAILED: ' + cell.error}", flush=True)
            cells.append(cell)
    text = table(args, cells)
    print(text)
    (work / "table.md").write_text(text + "\n")
    (work / "cells.json").write_text(json.dumps([c.__dict__ for c in cells], indent=1))
    print(f"\n(everything in {work})")
    return 0 if all(c.ok for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
