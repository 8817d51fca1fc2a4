#!/usr/bin/env python3
"""Checks that the Kubernetes manifests agree with what `sealbench run --shard` expects.

The schemas are checked by `kubernetes-validate --strict` (offline: the package carries
them); this checks what no schema can: the Indexed Job's part count, index variable and
scenario mount, the relay Service the parts connect to, that every part of the
ConfigMap's scenario is one `sealbench run` accepts (`--dry-run`, nothing connects), and
that Prometheus can find every pod's /metrics: the driver passes `--metrics` (and
`--metrics-linger`, or a Job's pod ends before its final figures are scraped), the relay
and driver pod templates carry `prometheus.io/scrape|port|path` annotations naming the
port `--metrics` listens on and a `metrics` container port, and the Prometheus Operator's
PodMonitor (prometheus-operator/podmonitor.yaml) selects both and scrapes that port.

Usage: check.py SEALBENCH_BINARY   (run from anywhere; reads this directory)
Exit 0 when everything agrees; 1 with every disagreement listed.
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def docs():
    out = {}
    for name in sorted(os.listdir(HERE)):
        if name.endswith(".yaml"):
            with open(os.path.join(HERE, name)) as f:
                for d in yaml.safe_load_all(f):
                    if d:
                        out[(d["kind"], d["metadata"]["name"])] = d
    return out


def main(binary):
    problems = []
    d = docs()
    job = d[("Job", "sealbench-driver")]
    spec = job["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    args = c["args"]

    if spec.get("completionMode") != "Indexed":
        problems.append("the driver Job must be completionMode: Indexed (its index is the part)")
    n = int(env.get("SEALBENCH_SHARDS", "0"))
    if not (n == spec.get("completions") == spec.get("parallelism")):
        problems.append(
            f"SEALBENCH_SHARDS ({n}), completions ({spec.get('completions')}) and parallelism "
            f"({spec.get('parallelism')}) must be equal: every part runs at once, one per index"
        )
    if "--shard" in args:
        problems.append("the Job passes --shard: the part comes from JOB_COMPLETION_INDEX + SEALBENCH_SHARDS")
    if not any("$(JOB_COMPLETION_INDEX)" in a for a in args):
        problems.append("--out must contain $(JOB_COMPLETION_INDEX): each part needs its own result directory")
    if "SEALBENCH_START_AT" not in env:
        problems.append("SEALBENCH_START_AT is not set: the parts would not start together")

    # The scenario: the path in the args is a key of the mounted ConfigMap.
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    scenario_arg = args[1] if len(args) > 1 and args[0] == "run" else None
    scenario_text = None
    for vname, path in mounts.items():
        cm = volumes.get(vname, {}).get("configMap")
        if cm and scenario_arg and scenario_arg.startswith(path.rstrip("/") + "/"):
            key = scenario_arg[len(path.rstrip("/")) + 1 :]
            data = d.get(("ConfigMap", cm["name"]), {}).get("data", {})
            if key not in data:
                problems.append(f"{scenario_arg}: ConfigMap {cm['name']} has no key {key}")
            else:
                scenario_text = data[key]
    if scenario_text is None and not any("ConfigMap" in p for p in problems):
        problems.append(f"the scenario {scenario_arg} is not in a mounted ConfigMap")

    # The relay: the URL names the Service and one of its ports.
    relay = args[args.index("--relay") + 1] if "--relay" in args else ""
    m = re.match(r"wss?://([^:/]+):(\d+)/", relay)
    svc = d.get(("Service", m.group(1))) if m else None
    if not svc or int(m.group(2)) not in [p["port"] for p in svc["spec"]["ports"]]:
        problems.append(f"--relay {relay} does not name a Service and port in these manifests")

    problems += scrape_problems(job, "--metrics-linger")
    problems += scrape_problems(d[("Deployment", "sealbench-relay")], None)
    problems += podmonitor_problems(d)

    # Every part of the scenario is one `sealbench run` accepts.
    if scenario_text is not None and n > 0:
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(scenario_text)
        for i in range(n):
            run_env = dict(os.environ, JOB_COMPLETION_INDEX=str(i), SEALBENCH_SHARDS=str(n),
                           SEALBENCH_START_AT=env.get("SEALBENCH_START_AT", ""))
            cmd = [binary, "run", f.name, "--relay", relay, "--dry-run"]
            r = subprocess.run(cmd, env=run_env, capture_output=True, text=True)
            if r.returncode != 0 or f"part {i}/{n}" not in r.stdout:
                problems.append(f"part {i}/{n}: sealbench run --dry-run said: {r.stdout.strip()} {r.stderr.strip()}")
            else:
                print(r.stdout.strip())
        os.unlink(f.name)

    for p in problems:
        print("deploy/kubernetes:", p, file=sys.stderr)
    return 1 if problems else 0


def scrape_problems(workload, linger_flag):
    """What keeps Prometheus from scraping the pods of `workload` (a Job or Deployment)."""
    name = workload["metadata"]["name"]
    template = workload["spec"]["template"]
    notes = template["metadata"].get("annotations", {})
    c = template["spec"]["containers"][0]
    args = [str(a) for a in c.get("args", [])]
    problems = []
    if "--metrics" not in args:
        return [f"{name}: no --metrics: Prometheus has nothing to scrape"]
    port = args[args.index("--metrics") + 1].rsplit(":", 1)[-1]
    if linger_flag and linger_flag not in args:
        problems.append(f"{name}: no {linger_flag}: the pod ends before its final figures are scraped")
    want = {"prometheus.io/scrape": "true", "prometheus.io/port": port, "prometheus.io/path": "/metrics"}
    for k, v in want.items():
        if str(notes.get(k)) != v:
            problems.append(f"{name}: pod annotation {k} is {notes.get(k)!r}, --metrics says {v!r}")
    ports = {p.get("name"): str(p["containerPort"]) for p in c.get("ports", [])}
    if ports.get("metrics") != port:
        problems.append(f"{name}: container port `metrics` is {ports.get('metrics')}, --metrics listens on {port}")
    return problems


def podmonitor_problems(d):
    """The PodMonitor selects the driver and relay pods and scrapes their `metrics` port."""
    path = os.path.join(HERE, "prometheus-operator", "podmonitor.yaml")
    with open(path) as f:
        pm = yaml.safe_load(f)
    problems = []
    if pm.get("kind") != "PodMonitor":
        return [f"{path}: not a PodMonitor"]
    sel = pm["spec"]["selector"]
    wanted = set()
    for e in sel.get("matchExpressions", []):
        if e["key"] == "app.kubernetes.io/name" and e["operator"] == "In":
            wanted |= set(e["values"])
    for kind, name in [("Job", "sealbench-driver"), ("Deployment", "sealbench-relay")]:
        label = d[(kind, name)]["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name")
        if label not in wanted:
            problems.append(f"PodMonitor does not select the {kind} {name}'s pods (label {label})")
    endpoints = pm["spec"].get("podMetricsEndpoints", [])
    if not any(e.get("port") == "metrics" and e.get("path", "/metrics") == "/metrics" for e in endpoints):
        problems.append("PodMonitor does not scrape the pods' `metrics` port at /metrics")
    return problems


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
