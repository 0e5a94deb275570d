"""The scoring pipeline in process against the pipeline scoring through TorchServe, side by side.

Reads a data folder through ingest (``gnn.data.load_history``), archives the model (as ``make
torchserve-archive`` does) and starts a real TorchServe with the test launcher
(``tests/services/torchserve.py``: one worker, JVM heap 1 GiB, ``max_request_size`` raised to
64 MiB). Then, per batch size and per backend, a fresh :class:`serve.pipeline.ScoringPipeline`
folds in the first events (``warm``, in process: the state only), and the next ``--measure``
events are decided in batches of a number of transactions (the other events, logins and
device changes, ride with the transaction after them), each batch timed
(``pipeline.process``: features, entity state, the score, reasons for flagged transactions).
With the TorchServe backend the score is a request per batch
(:class:`serve.model_backend.TorchServeBackend`: the batch's subgraph from the pipeline's
history, as JSON, over a kept-alive connection); before the timing a few untimed requests warm
the JVM and the worker.

The client (this process) is pinned to the first CPU and every TorchServe thread (frontend and
worker) to the second, when there are two. Reported per run: transactions/s (wall), per-batch
latency p50/p95/p99, the CPU used by the client and by TorchServe (the Java frontend and the
Python worker, share of one core over the timed run), the request size, the seconds this
process spent in Python's cyclic garbage collector during the timing (a full collection over a
warmed state takes about a second here; ``--gc-freeze`` moves the warmed state out of its
sight first), and how the scores and decisions compare with the in-process run of the same
batch size. Run from the repository root::

    python perf/torchserve_bench.py --data DATA_DIR --model MODELS_DIR [--limit N]
        [--measure M] [--batches 1,64,256] [--gc-freeze]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import psutil

from gnn import registry
from gnn.data import load_history
from gnn.model import intra_op_threads
from serve.model_backend import TorchServeBackend
from serve.pipeline import ScoringPipeline
from tests.services.torchserve import TorchServeServer, archive

MAX_REQUEST = 64 << 20
"""TorchServe's ``max_request_size`` here, and the backend's ``max_request_bytes``."""
JVM = "-Xmx1g"


@dataclass
class Run:
    """One timed run."""

    backend: str
    batch: int
    transactions: int
    wall_s: float
    latencies_ms: np.ndarray
    client_cpu_s: float
    server_cpu_s: float | None
    requests: int
    bytes_sent: int
    scores: dict[str, float]
    decisions: dict[str, str]
    gc_s: float


class GcTimer:
    """Seconds spent in the cyclic garbage collector inside the block."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def server_processes(server: TorchServeServer) -> list[psutil.Process]:
    """The ``torchserve`` script, its Java frontend and the Python workers."""
    assert server.pid is not None
    root = psutil.Process(server.pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """User and system CPU seconds of ``procs`` so far."""
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def pin_threads(procs: list[psutil.Process], cpus: set[int]) -> None:
    """Pin every thread of ``procs`` (affinity is per thread on Linux)."""
    for p in procs:
        for tid in os.listdir(f"/proc/{p.pid}/task"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.sched_setaffinity(int(tid), cpus)


def by_transactions(events: list[Any], size: int) -> list[list[Any]]:
    """Batches of ``size`` transactions; other events ride with the transaction after them."""
    out: list[list[Any]] = []
    current: list[Any] = []
    txns = 0
    for e in events:
        current.append(e)
        if e.event_type == "transaction":
            txns += 1
            if txns == size:
                out.append(current)
                current, txns = [], 0
    if current:
        out.append(current)
    return out


def timed(
    label: str,
    batch: int,
    model: Any,
    manifest: dict[str, Any],
    warm: list[Any],
    events: list[Any],
    server: TorchServeServer | None,
    freeze: bool,
) -> Run:
    pipeline = ScoringPipeline(model, manifest)
    began = time.perf_counter()
    pipeline.warm(warm)
    warm_s = time.perf_counter() - began
    if freeze:  # the warmed state out of the collector's sight: no full scans of it
        gc.collect()
        gc.freeze()
    backend = None
    procs: list[psutil.Process] = []
    if server is not None:
        backend = TorchServeBackend.for_pipeline(
            pipeline,
            server.inference_url,
            "fraud",
            timeout_s=60,
            max_request_bytes=MAX_REQUEST,
        )
        pipeline.backend = backend
        rows = backend.history.rows
        for size in (1, 8, 64, 256, 1, 64, 256, 1) * 3:  # untimed: the JIT, the worker
            backend.score(rows[-size:])
        procs = server_processes(server)
    before = backend.stats.requests if backend else 0
    sent = backend.stats.bytes_sent if backend else 0
    latencies = []
    decided: list[Any] = []
    server_cpu = cpu_seconds(procs)
    cpu = time.process_time()
    wall = time.perf_counter()
    with GcTimer() as collector:
        for chunk in by_transactions(events, batch):
            t = time.perf_counter()
            decided += pipeline.process(chunk)
            latencies.append(time.perf_counter() - t)
    wall_s = time.perf_counter() - wall
    cpu_s = time.process_time() - cpu
    if freeze:
        gc.unfreeze()
    server_s = cpu_seconds(procs) - server_cpu if procs else None
    fresh = [d for d in decided if not d.replayed]
    print(f"  {label}, batches of {batch}: warmed in {warm_s:.1f} s, timed {wall_s:.1f} s")
    if backend is not None:
        backend.close()
    return Run(
        label,
        batch,
        len(fresh),
        wall_s,
        np.array(latencies) * 1000,
        cpu_s,
        server_s,
        (backend.stats.requests - before) if backend else 0,
        (backend.stats.bytes_sent - sent) if backend else 0,
        {d.txn_id: d.score for d in fresh},
        {d.txn_id: d.decision for d in fresh},
        collector.seconds,
    )


def table(runs: list[Run]) -> str:
    head = (
        "| backend | batch | transactions | transactions/s | p50 ms | p95 ms | p99 ms "
        "| client CPU | TorchServe CPU | kB/request | GC s | max score diff | decisions differ |"
    )
    lines = [head, "| --- " + "| ---: " * 12 + "|"]
    base = {r.batch: r for r in runs if r.backend == "in process"}
    for r in runs:
        p50, p95, p99 = np.percentile(r.latencies_ms, [50, 95, 99])
        ref = base.get(r.batch)
        diff = differ = "-"
        if r.backend != "in process" and ref is not None:
            common = [t for t in r.scores if t in ref.scores]
            diff = f"{max(abs(r.scores[t] - ref.scores[t]) for t in common):.1e}"
            differ = str(sum(r.decisions[t] != ref.decisions[t] for t in common))
        server = f"{r.server_cpu_s / r.wall_s:.0%}" if r.server_cpu_s is not None else "-"
        size = f"{r.bytes_sent / r.requests / 1000:,.0f}" if r.requests else "-"
        lines.append(
            f"| {r.backend} | {r.batch} | {r.transactions:,} | {r.transactions / r.wall_s:,.0f} "
            f"| {p50:.1f} | {p95:.1f} | {p99:.1f} | {r.client_cpu_s / r.wall_s:.0%} | {server} "
            f"| {size} | {r.gc_s:.2f} | {diff} | {differ} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a data folder (ringfence generate)")
    p.add_argument("--model", required=True, help="a registry or model version folder")
    p.add_argument("--limit", type=int, default=120_000, help="events used (warm + timed)")
    p.add_argument("--measure", type=int, default=4_000, help="the last events, timed")
    p.add_argument("--batches", default="1,64,256", help="batch sizes, comma-separated")
    p.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() the warmed state before the timing (no full collections over it)",
    )
    p.add_argument("--work-dir", type=Path, help="TorchServe's folder (default: a temporary one)")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    cpus = sorted(os.sched_getaffinity(0))
    client_cpus = {cpus[0]}
    server_cpus = {cpus[1]} if len(cpus) > 1 else client_cpus
    os.sched_setaffinity(0, client_cpus)

    folder = registry.resolve(args.model)
    model, manifest = registry.load(folder)
    began = time.perf_counter()
    events = load_history(args.data).events[: args.limit]
    warm, measured = events[: -args.measure], events[-args.measure :]
    print(
        f"{len(events):,} events (loaded in {time.perf_counter() - began:.0f} s): "
        f"{len(warm):,} to warm the state, the next {len(measured):,} timed; "
        f"model {manifest['version']}; load average {os.getloadavg()[0]:.2f}"
    )
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="ts-bench-"))
    mar = archive(folder, work / "store")
    server = TorchServeServer(
        work / "server",
        mar.parent,
        {"fraud": mar.name},
        vmargs=JVM,
        properties={"max_request_size": str(MAX_REQUEST), "max_response_size": str(MAX_REQUEST)},
    )
    runs: list[Run] = []
    try:
        server.start()
        pin_threads(server_processes(server), server_cpus)
        print(
            f"TorchServe ready in {server.start_seconds:.1f} s at {server.inference_url}; "
            f"client on CPU {sorted(client_cpus)}, TorchServe on CPU {sorted(server_cpus)}"
        )
        with intra_op_threads(1):
            for batch in batches:
                for label, srv in (("in process", None), ("TorchServe", server)):
                    runs.append(
                        timed(label, batch, model, manifest, warm, measured, srv, args.gc_freeze)
                    )
    finally:
        server.stop()
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print(table(runs))


if __name__ == "__main__":
    main()
