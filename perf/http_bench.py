"""The scoring API under load: single calls at fixed arrival rates, and batches.

Prepares a data folder and a model unless given (``--data``, ``--model``), writes the data's
transactions in time order to a file (one canonical JSON a line), then, per phase, starts
``ringfence serve`` on a free port with a fresh signing key and an empty data directory
(pinned to one core with ``taskset``), warms it with the file's first ``--warm`` transactions
sent in batches (not measured: the state then holds some history, as a running service's
does), runs the load generator (pinned to the other core) on the transactions after them,
and stops the server. Each transaction is sent once: no phase measures replays.

Two load generators:

* ``loadgen`` (default): ``perf/loadgen``, an open-loop generator in Go built here with
  ``go build``. Calls leave at the target rate whatever the server does, and a call's latency
  counts from when it was due, so a saturated server shows its queueing in the percentiles
  (no coordinated omission). It costs about 30 µs of CPU a call, so one core drives 5,000
  calls/s with room to spare, which Locust cannot.
* ``locust``: ``perf/locustfile.py``, the gateway simulation (users with a constant-throughput
  wait); one Locust process saturates its core near 1,000 calls/s.

Phases:

* single transactions (``POST /v1/score``) at fixed arrival rates (``--rates``);
* batches (``POST /v1/score/batch``) from a few connections calling back to back
  (``--batches``): transactions/s sustained and the latency of a batch.

Reported per phase: achieved calls/s and transactions/s, client-side p50/p95/p99, the error
rate, the server's own time per request (its Prometheus histogram: the bucket holding the
percentile, which leaves out queueing before the handler), the mean micro-batch the server
scored together, and the CPU used by the server and by the load generator (share of one core).
Run from the repository root::

    python perf/http_bench.py [--data DIR] [--model DIR] [--out DIR] [--quick]
        [--generator loadgen|locust] [--rates 1000,2000,5000] [--batches 500,1000] [--warm N]
        [--feature-worker] [--server-unpinned]

With ``--feature-worker`` the server runs its feature state in a child process
(``RINGFENCE_FEATURE_WORKER=1``) and is not pinned, so it has both cores (the generator still
has one of them); its CPU then counts the child's. With ``--server-unpinned`` the server (one
process) may run on both cores, sharing the generator's; the server CPU column then counts all
its threads (the journal's sync, the alert dispatcher, torch).
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

    def __init__(
        self, model: Path, keys: str, cpu: int | None, log: Path, *, worker: bool = False
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data_dir = log.with_suffix(".data")
        shutil.rmtree(data_dir, ignore_errors=True)  # empty: no bus history, no journal
        env = os.environ | {"RINGFENCE_JWT_KEYS": keys, "RINGFENCE_DATA_DIR": str(data_dir)}
        if worker:  # the feature state in a child process, on the other core
            env["RINGFENCE_FEATURE_WORKER"] = "1"
            cpu = None
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
        """CPU seconds of the server and its child processes (the feature worker)."""
        total = 0.0
        for proc in (self.ps, *self.ps.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

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


def _buckets(text: str, route: str) -> dict[float, float]:
    found = {}
    for line in text.splitlines():
        if line.startswith("ringfence_request_seconds_bucket{") and f'route="{route}"' in line:
            labels, value = line.rsplit(" ", 1)
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            found[float("inf") if le == "+Inf" else float(le)] = float(value)
    return found


def server_percentiles(
    text: str, route: str, qs: tuple[float, ...], before: str = ""
) -> dict[float, str]:
    """The histogram bucket (upper bound, ms) holding each percentile of the server's time.

    Only requests between the scrape ``before`` and ``text`` count.
    """
    earlier = _buckets(before, route)
    buckets = sorted((le, n - earlier.get(le, 0.0)) for le, n in _buckets(text, route).items())
    total = buckets[-1][1] if buckets else 0.0
    out = {}
    for q in qs:
        out[q] = "-"
        for le, count in buckets:
            if total and count >= q * total:
                out[q] = "> 1000" if le == float("inf") else f"<= {le * 1e3:g}"
                break
    return out


def decisions(text: str, before: str = "") -> dict[str, int]:
    """Decisions by type made between the scrape ``before`` and ``text``."""
    found: dict[str, int] = {}
    for scrape, sign in ((text, 1), (before, -1)):
        for line in scrape.splitlines():
            if line.startswith("ringfence_decisions_total{"):
                labels, value = line.rsplit(" ", 1)
                kind = labels.split('decision="', 1)[1].split('"', 1)[0]
                found[kind] = found.get(kind, 0) + sign * int(float(value))
    return found


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def warm(url: str, token: str, lines: list[bytes], batch: int = 500) -> None:
    """Send ``lines`` in batches and wait for each answer (the warm-up; not measured)."""
    for k in range(0, len(lines), batch):
        body = b'{"transactions":[' + b",".join(lines[k : k + batch]) + b"]}"
        req = urllib.request.Request(url + "/v1/score/batch", data=body, method="POST")
        req.add_header("content-type", "application/json")
        req.add_header("authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()


def build_loadgen(out: Path) -> Path:
    """``perf/loadgen`` built with ``go build`` (the standard library only: no downloads)."""
    binary = out / "loadgen"
    subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=ROOT / "perf" / "loadgen", check=True
    )
    return binary


def run_phase(
    name: str,
    *,
    generator: str,
    rate: float,
    users: int,
    batch: int,
    duration_s: int,
    target: str,
    model: Path,
    lines: list[bytes],
    warm_n: int,
    out: Path,
    cpus: tuple[int | None, int | None],
    loadgen: Path | None,
    worker: bool = False,
) -> dict[str, Any]:
    """One phase: a fresh server, warmed, the generator against it, the figures."""
    keys = new_key()
    token = issue(
        SigningKeys.parse(keys),
        client="gw_loadtest",
        scopes=["score"],
        ttl_s=3600,
        now=datetime.now(UTC),
    )
    load_file = out / f"{name}.load.jsonl"
    load_file.write_bytes(b"\n".join(lines[warm_n:]) + b"\n")
    server = Server(model, keys, cpus[0], out / f"{name}.server.log", worker=worker)
    try:
        if warm_n:
            print(f"{name}: warming the server with {warm_n:,} transactions ...", flush=True)
            warm(server.url, token, lines[:warm_n])
        before = server.metrics()
        print(f"{name}: {target}, {duration_s} s ({generator}) ...", flush=True)
        server_before = server.cpu_s()
        gen_before = children_cpu_s()
        started = time.perf_counter()
        log_path = out / f"{name}.{generator}.log"
        route = "/v1/score/batch" if batch > 1 else "/v1/score"
        if generator == "loadgen":
            assert loadgen is not None
            cmd = [
                str(loadgen),
                "-url",
                server.url + route,
                "-token",
                token,
                "-bodies",
                str(load_file),
                "-rate",
                str(rate),
                "-batch",
                str(batch),
                "-duration",
                f"{duration_s}s",
                "-conns",
                str(users),
            ]
            got = subprocess.run(pinned(cmd, cpus[1]), capture_output=True, check=True)
            log_path.write_bytes(got.stdout + got.stderr)
            res = json.loads(got.stdout)
            figures = {
                "requests": res["sent"],
                "failures": res["sent"] - res["ok"],
                "req_s": res["achieved_rps"],
                "p50_ms": res["p50_ms"],
                "p95_ms": res["p95_ms"],
                "p99_ms": res["p99_ms"],
                "max_ms": res["max_ms"],
                "exhausted": res["exhausted"],
                "generator_cpu_warning": False,
            }
        else:
            figures = run_locust(
                name,
                users,
                rate / max(users, 1),
                batch,
                duration_s,
                token,
                load_file,
                server.url,
                out,
                cpus[1],
                log_path,
            )
        wall = time.perf_counter() - started
        gen_cpu = children_cpu_s() - gen_before
        server_cpu = server.cpu_s() - server_before
        text = server.metrics()
    finally:
        server.stop()
    route_name = "score_batch" if batch > 1 else "score"
    server_q = server_percentiles(text, route_name, (0.5, 0.99), before)
    requests = figures["requests"]
    return {
        "phase": name,
        "generator": generator,
        "target": target,
        "users": users,
        "batch": batch,
        "duration_s": duration_s,
        "warm_transactions": warm_n,
        **figures,
        "error_rate": figures["failures"] / requests if requests else 0.0,
        "txn_s": figures["req_s"] * batch,
        "server_p50_ms": server_q[0.5],
        "server_p99_ms": server_q[0.99],
        "microbatch_mean": histogram_delta_mean(text, before, "ringfence_microbatch_transactions"),
        "server_cpu": server_cpu / wall,
        "generator_cpu": gen_cpu / wall,
        "decisions": decisions(text, before),
    }


def histogram_delta_mean(text: str, before: str, name: str) -> float | None:
    """The mean of a histogram's observations made between two scrapes."""
    count = sum_ = 0.0
    for scrape, sign in ((text, 1.0), (before, -1.0)):
        for line in scrape.splitlines():
            if line.startswith(f"{name}_sum "):
                sum_ += sign * float(line.split()[-1])
            elif line.startswith(f"{name}_count "):
                count += sign * float(line.split()[-1])
    return sum_ / count if count else None


def run_locust(
    name: str,
    users: int,
    user_rate: float,
    batch: int,
    duration_s: int,
    token: str,
    load_file: Path,
    url: str,
    out: Path,
    cpu: int | None,
    log_path: Path,
) -> dict[str, Any]:
    """Locust headless with ``perf/locustfile.py``; its figures."""
    env = os.environ | {
        "RINGFENCE_LOAD_FILE": str(load_file),
        "RINGFENCE_TOKEN": token,
        "RINGFENCE_USER_RATE": str(user_rate if batch == 1 else 0),
        "RINGFENCE_BATCH": str(batch),
    }
    cmd = [
        str(BIN / "locust"),
        "-f",
        str(ROOT / "perf" / "locustfile.py"),
        "BatchGateway" if batch > 1 else "SingleGateway",
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{duration_s}s",
        "--host",
        url,
        "--csv",
        str(out / name),
        "--only-summary",
        "--reset-stats",
        "--stop-timeout",
        "5",
        "--loglevel",
        "WARNING",
    ]
    with log_path.open("wb") as log:
        subprocess.run(pinned(cmd, cpu), env=env, stdout=log, stderr=subprocess.STDOUT)
    row = next(
        r for r in csv.DictReader((out / f"{name}_stats.csv").open()) if r["Name"] == "Aggregated"
    )
    log_text = log_path.read_text(errors="replace")
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "req_s": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
        "max_ms": float(row["Max Response Time"]),
        "exhausted": "transactions exhausted" in log_text,
        "generator_cpu_warning": "CPU usage above" in log_text,
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| phase | generator | target | conns/users | calls/s | transactions/s | p50 ms "
        "| p95 ms | p99 ms | errors | server p50 / p99 ms | micro-batch | server CPU "
        "| generator CPU |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: "
        "| ---: |",
    ]
    for r in results:
        flags = (" (file exhausted)" if r["exhausted"] else "") + (
            " (CPU warning)" if r["generator_cpu_warning"] else ""
        )
        mb = r["microbatch_mean"]
        lines.append(
            f"| {r['phase']}{flags} | {r['generator']} | {r['target']} | {r['users']} "
            f"| {r['req_s']:,.0f} | {r['txn_s']:,.0f} | {r['p50_ms']:,.1f} | {r['p95_ms']:,.1f} "
            f"| {r['p99_ms']:,.1f} | {r['error_rate']:.2%} "
            f"| {r['server_p50_ms']} / {r['server_p99_ms']} "
            f"| {'-' if mb is None else f'{mb:,.1f}'} "
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
    p.add_argument("--generator", choices=("loadgen", "locust"), default="loadgen")
    p.add_argument("--rates", default="1000,2000,5000", help="single-call arrival rates (req/s)")
    p.add_argument("--batches", default=None, help="batch sizes (500,1000; quick 250; empty: none)")
    p.add_argument("--batch-users", type=int, default=4, help="connections sending batches")
    p.add_argument("--conns", type=int, default=256, help="loadgen: most calls in flight")
    p.add_argument("--warm", type=int, default=50_000, help="transactions sent before each phase")
    p.add_argument("--duration", type=int, default=None, help="seconds per phase")
    p.add_argument(
        "--feature-worker",
        action="store_true",
        help="serve with RINGFENCE_FEATURE_WORKER=1, unpinned (the generator stays pinned)",
    )
    p.add_argument(
        "--server-unpinned",
        action="store_true",
        help="let the server use both cores (the generator stays pinned to one, which it shares)",
    )
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data, model = prepare(args, out)
    load_file = out / "transactions.jsonl"
    n = write_transactions(data, load_file)
    lines = [line for line in load_file.read_bytes().splitlines() if line.strip()]
    print(f"{n:,} transactions in time order in {load_file}")
    warm_n = min(args.warm, len(lines) // 4)
    loadgen = build_loadgen(out) if args.generator == "loadgen" else None

    cpus = sorted(os.sched_getaffinity(0))
    pins: tuple[int | None, int | None] = (
        (cpus[0], cpus[1]) if len(cpus) >= 2 and shutil.which("taskset") else (None, None)
    )
    if args.server_unpinned:
        pins = (None, pins[1])
    where = "any CPU" if pins[0] is None or args.feature_worker else f"CPU {pins[0]}"
    if args.feature_worker:
        where += " (with its feature worker)"
    print(f"server on {where}, load generator on CPU {pins[1]}")
    single_s, batch_s = (10, 15) if args.quick else (30, 30)
    if args.duration:
        single_s = batch_s = args.duration
    batches = args.batches if args.batches is not None else ("250" if args.quick else "500,1000")
    sizes = [int(b) for b in batches.split(",") if b.strip()]
    common = {
        "generator": args.generator,
        "model": model,
        "lines": lines,
        "warm_n": warm_n,
        "out": out,
        "cpus": pins,
        "loadgen": loadgen,
        "worker": args.feature_worker,
    }

    results = []
    for rate in (int(r) for r in args.rates.split(",") if r.strip()):
        users = args.conns if args.generator == "loadgen" else max(1, round(rate / 10))
        results.append(
            run_phase(
                f"single_{rate}",
                rate=rate,
                users=users,
                batch=1,
                duration_s=single_s,
                target=f"{rate:,} req/s",
                **common,  # type: ignore[arg-type]
            )
        )
    for size in sizes:
        results.append(
            run_phase(
                f"batch_{size}",
                rate=0,
                users=args.batch_users,
                batch=size,
                duration_s=batch_s,
                target="as fast as it goes",
                **common,  # type: ignore[arg-type]
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
