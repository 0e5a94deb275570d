"""The scoring API under load: Locust against `ringfence serve`, single calls and batches.

Prepares a data folder and a model unless given (``--data``, ``--model``), writes the data's
transactions in time order to a file (one canonical JSON a line), then, per phase, starts
``ringfence serve`` on a free port with a fresh signing key (pinned to one core with
``taskset``), runs Locust headless with ``perf/locustfile.py`` (pinned to another core) and
stops the server. A fresh server per phase means each phase scores the file from its start
with empty state, each transaction once: no phase measures replays.

Phases:

* single transactions (``POST /v1/score``) at fixed arrival rates, 10 calls/s per user with a
  constant-throughput wait (1k req/s: 100 users); a user falls behind only when its call takes
  longer than its slot, so a saturated server shows as an achieved rate below the target,
  with the latencies at saturation;
* batches (``POST /v1/score/batch``) from a few users calling back to back: transactions/s
  sustained and the latency of a batch.

Reported per phase: achieved calls/s and transactions/s, client-side p50/p95/p99 (Locust), the
error rate, the server's own time per request (its Prometheus histogram: the bucket holding
the percentile, which leaves out queueing before the handler), and the CPU used by the server
and by the load generator (share of one core; a generator near 100% limits what it can send).
Run from the repository root::

    python perf/http_bench.py [--data DIR] [--model DIR] [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from serve.tokens import SigningKeys, issue, new_key
from tests.services.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PER_USER_RATE = 10.0
"""Calls per second per single-transaction user."""


def prepare(args: argparse.Namespace, out: Path) -> tuple[Path, Path]:
    """The data folder and the model (made here unless given)."""
    data = Path(args.data) if args.data else out / "data"
    if not args.data and not (data / "sources.yaml").exists():
        from ingest.generator import generate

        print(f"generating {args.accounts:,} accounts x {args.days} days into {data}")
        generate(data, seed=args.seed, days=args.days, accounts=args.accounts)
    model = Path(args.model) if args.model else out / "models"
    if not args.model and not any(model.glob("*/manifest.json")):
        from gnn.train import train

        print(f"training a model into {model} (seed 0, no baselines)")
        train(data, model, seed=0, baselines=False)
    return data, model


def write_transactions(data: Path, path: Path) -> int:
    """The data's transactions in time order, one canonical JSON a line; how many."""
    from gnn.data import load_history
    from ingest.events import Transaction, encode_event

    events = load_history(data).events
    n = 0
    with path.open("wb") as f:
        for e in events:
            if isinstance(e, Transaction):
                f.write(encode_event(e) + b"\n")
                n += 1
    return n


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


class Server:
    """`ringfence serve` in a subprocess, ready to score."""

    def __init__(self, model: Path, keys: str, cpu: int | None, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = os.environ | {"RINGFENCE_JWT_KEYS": keys}
        cmd = [str(BIN / "ringfence"), "serve", "--model", str(model), "--port", str(self.port)]
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            pinned(cmd, cpu), env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited ({self.proc.returncode}); see {log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/ready", timeout=2) as r,
            ):
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server did not become ready; see {log}")
            time.sleep(0.25)
        self.ps = psutil.Process(self.proc.pid)

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            return r.read().decode()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def server_percentiles(text: str, route: str, qs: tuple[float, ...]) -> dict[float, str]:
    """The histogram bucket (upper bound, ms) holding each percentile of the server's time."""
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith("ringfence_request_seconds_bucket{") and f'route="{route}"' in line:
            labels, value = line.rsplit(" ", 1)
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(value)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    out = {}
    for q in qs:
        out[q] = "-"
        for le, count in buckets:
            if total and count >= q * total:
                out[q] = "> 1000" if le == float("inf") else f"<= {le * 1e3:g}"
                break
    return out


def decisions(text: str) -> dict[str, int]:
    found = {}
    for line in text.splitlines():
        if line.startswith("ringfence_decisions_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('decision="', 1)[1].split('"', 1)[0]] = int(float(value))
    return found


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_phase(
    name: str,
    *,
    user_class: str,
    users: int,
    user_rate: float,
    batch: int,
    duration_s: int,
    target: str,
    model: Path,
    load_file: Path,
    out: Path,
    cpus: tuple[int | None, int | None],
) -> dict[str, Any]:
    """One phase: a fresh server, Locust headless against it, the figures."""
    keys = new_key()
    token = issue(
        SigningKeys.parse(keys),
        client="gw_loadtest",
        scopes=["score"],
        ttl_s=3600,
        now=datetime.now(UTC),
    )
    server = Server(model, keys, cpus[0], out / f"{name}.server.log")
    try:
        env = os.environ | {
            "RINGFENCE_LOAD_FILE": str(load_file),
            "RINGFENCE_TOKEN": token,
            "RINGFENCE_USER_RATE": str(user_rate),
            "RINGFENCE_BATCH": str(batch),
        }
        cmd = [
            str(BIN / "locust"),
            "-f",
            str(ROOT / "perf" / "locustfile.py"),
            user_class,
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{duration_s}s",
            "--host",
            server.url,
            "--csv",
            str(out / name),
            "--only-summary",
            "--reset-stats",
            "--stop-timeout",
            "5",
            "--loglevel",
            "WARNING",
        ]
        print(f"{name}: {users} users, {target}, {duration_s} s ...", flush=True)
        server_before = server.cpu_s()
        gen_before = children_cpu_s()
        started = time.perf_counter()
        with (out / f"{name}.locust.log").open("wb") as log:
            subprocess.run(pinned(cmd, cpus[1]), env=env, stdout=log, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - started
        gen_cpu = children_cpu_s() - gen_before
        server_cpu = server.cpu_s() - server_before
        text = server.metrics()
    finally:
        server.stop()
    row = next(
        r for r in csv.DictReader((out / f"{name}_stats.csv").open()) if r["Name"] == "Aggregated"
    )
    log_text = (out / f"{name}.locust.log").read_text(errors="replace")
    requests = int(row["Request Count"])
    rps = float(row["Requests/s"])
    route = "score_batch" if batch > 1 else "score"
    server_q = server_percentiles(text, route, (0.5, 0.99))
    return {
        "phase": name,
        "target": target,
        "users": users,
        "batch": batch,
        "duration_s": duration_s,
        "requests": requests,
        "failures": int(row["Failure Count"]),
        "error_rate": int(row["Failure Count"]) / requests if requests else 0.0,
        "req_s": rps,
        "txn_s": rps * batch,
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
        "max_ms": float(row["Max Response Time"]),
        "server_p50_ms": server_q[0.5],
        "server_p99_ms": server_q[0.99],
        "server_cpu": server_cpu / wall,
        "generator_cpu": gen_cpu / wall,
        "generator_cpu_warning": "CPU usage above" in log_text,
        "exhausted": "transactions exhausted" in log_text,
        "decisions": decisions(text),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| phase | target | users | calls/s | transactions/s | p50 ms | p95 ms | p99 ms "
        "| errors | server p50 / p99 ms | server CPU | generator CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in results:
        flags = (" (file exhausted)" if r["exhausted"] else "") + (
            " (CPU warning)" if r["generator_cpu_warning"] else ""
        )
        lines.append(
            f"| {r['phase']}{flags} | {r['target']} | {r['users']} | {r['req_s']:,.0f} "
            f"| {r['txn_s']:,.0f} | {r['p50_ms']:,.0f} | {r['p95_ms']:,.0f} "
            f"| {r['p99_ms']:,.0f} | {r['error_rate']:.2%} "
            f"| {r['server_p50_ms']} / {r['server_p99_ms']} "
            f"| {r['server_cpu']:.0%} | {r['generator_cpu']:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="a data folder (default: generate one)")
    p.add_argument("--model", default=None, help="a model version or registry (default: train)")
    p.add_argument("--out", default="/tmp/ringfence-http-bench", help="work and result folder")
    p.add_argument("--quick", action="store_true", help="a short smoke run (about a minute)")
    p.add_argument("--accounts", type=int, default=4000, help="accounts when generating")
    p.add_argument("--days", type=int, default=30, help="days when generating")
    p.add_argument("--seed", type=int, default=5, help="generator seed when generating")
    p.add_argument("--rates", default="1000,2000,5000", help="single-call arrival rates (req/s)")
    p.add_argument("--batches", default=None, help="batch sizes (100,500; quick 250; empty: none)")
    p.add_argument("--batch-users", type=int, default=4, help="users sending batches")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data, model = prepare(args, out)
    load_file = out / "transactions.jsonl"
    n = write_transactions(data, load_file)
    print(f"{n:,} transactions in time order in {load_file}")

    cpus = sorted(os.sched_getaffinity(0))
    pins: tuple[int | None, int | None] = (
        (cpus[0], cpus[1]) if len(cpus) >= 2 and shutil.which("taskset") else (None, None)
    )
    print(f"server on CPU {pins[0]}, load generator on CPU {pins[1]}")
    single_s, batch_s = (10, 15) if args.quick else (60, 40)
    batches = args.batches if args.batches is not None else ("250" if args.quick else "100,500")
    sizes = [int(b) for b in batches.split(",") if b.strip()]

    results = []
    for rate in (int(r) for r in args.rates.split(",") if r.strip()):
        results.append(
            run_phase(
                f"single_{rate}",
                user_class="SingleGateway",
                users=max(1, round(rate / PER_USER_RATE)),
                user_rate=PER_USER_RATE,
                batch=1,
                duration_s=single_s,
                target=f"{rate:,} req/s",
                model=model,
                load_file=load_file,
                out=out,
                cpus=pins,
            )
        )
    for size in sizes:
        results.append(
            run_phase(
                f"batch_{size}",
                user_class="BatchGateway",
                users=args.batch_users,
                user_rate=0,
                batch=size,
                duration_s=batch_s,
                target="as fast as it goes",
                model=model,
                load_file=load_file,
                out=out,
                cpus=pins,
            )
        )
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print()
    print(table(results))
    print()
    for r in results:
        print(f"{r['phase']}: {r['requests']:,} calls, decisions {r['decisions']}")


if __name__ == "__main__":
    main()
