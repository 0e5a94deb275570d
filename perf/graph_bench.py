"""The embedded graph store: upsert rate, 2-hop subgraph latency, snapshot, restore, memory.

For each size (edges), a child process pinned to one CPU core builds a synthetic graph with the
skew of real traffic from empty, timing only the ``upsert`` calls (batches of 1,000 edge
updates), then times 2-hop subgraphs (fan-out 50) from random accounts (the answer as columns, what
a model reads; and until its sorted Node and Edge objects are built), twice: just after the
load (``cold``: reads sort what the writes left pending) and again on other random accounts. It
writes a snapshot, then lets the stream go on for a fifth as many updates again (``steady``: most
now touch edges that exist) with one query after each batch (``amid writes``). A second child
restores the snapshot, reports the restore time and the memory the restored store takes (its
resident set after, less before), and checks that it answers 200 queries exactly as the
original did. Run from the repository root::

    python perf/graph_bench.py                    # 100k, 1M and 5M edges
    python perf/graph_bench.py --edges 100000     # one size

The synthetic world: most accounts have one to three devices, a home IP shared with their
household and a card or two; a few percent sit in device farms; one event in ten comes from a
public Wi-Fi IP (a few hundred of them, Zipf-popular, so thousands of accounts each); payments
go to merchants drawn from a Zipf law (the top ones get tens of thousands of accounts); one
transfer in five goes to a mule account. Timestamps increase, so most updates make an edge the
most recent of its node: the case the lazy recency order has to absorb.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import hashlib
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graph.embedded import EmbeddedGraphStore
from graph.model import EdgeUpdate, Node

BATCH = 1_000
QUERIES = 2_000
STEADY_SHARE = 5
"""The steady phase replays a fifth as many updates as the build took."""

clock = time.thread_time
"""Upserts and queries are timed in this thread's CPU time, so that other processes on a shared
machine do not distort them (``--wall`` for wall-clock time; the same on an idle core)."""
CHECKS = 200
T0 = 1_790_000_000.0  # 2026-09-21


def pin_one_core() -> int:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class World:
    """Accounts with devices, IPs, cards and habits; events drawn from them."""

    def __init__(self, edges: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.accounts = max(1_000, edges // 12)
        self.merchants = max(500, self.accounts // 5)
        self.public_ips = 100 + self.accounts // 2_000
        self.farm_devices = 50 + self.accounts // 5_000
        self.mules = max(5, self.accounts // 1_000)
        self.merchant_cdf = zipf_cdf(self.merchants, 1.05)
        self.wifi_cdf = zipf_cdf(self.public_ips, 1.0)
        self.seconds = 0.0

    def account(self, a: int) -> str:
        return f"acc{a:08d}"

    def events(self) -> Iterator[list[EdgeUpdate]]:
        """Updates of one event at a time (all with the event's timestamp)."""
        rng = self.rng
        rand = rng.random
        while True:
            self.seconds += 0.05
            ts = T0 + self.seconds
            a = rng.randrange(self.accounts)
            acc = self.account(a)
            h = (a * 2_654_435_761) & 0xFFFF  # a fixed per-account profile, from the id
            out: list[EdgeUpdate] = []
            if h % 50 == 0:  # device farm
                device = f"farm{(h // 50) % self.farm_devices:05d}"
            else:
                device = f"dev{a:08d}.{int(rand() * (1 + h % 3))}"
            if rand() < 0.1:
                ip = f"wifi{bisect.bisect(self.wifi_cdf, rand()):05d}"
            else:
                ip = f"ip{a // 2:08d}.{int(rand() * (1 + h % 2))}"
            r = rand()
            if r < 0.55:  # a payment
                failed = rand() < 0.03
                amount = round(5 + rand() * 120, 2)
                card = f"card{a:08d}.{int(rand() * (1 + (h >> 4) % 2))}"
                if h % 7 == 0:
                    merchant = f"mer{(h * 31 + int(rand() * 4)) % self.merchants:07d}"
                else:
                    merchant = f"mer{bisect.bisect(self.merchant_cdf, rand()):07d}"
                out.append(EdgeUpdate("HAS_CARD", acc, "card", card, ts, 0.0, failed))
                out.append(EdgeUpdate("PAYS", acc, "merchant", merchant, ts, amount, failed))
                if rand() < 0.5:  # card not present
                    out.append(EdgeUpdate("USES_DEVICE", acc, "device", device, ts, 0.0, failed))
                    out.append(EdgeUpdate("FROM_IP", acc, "ip", ip, ts, 0.0, failed))
                    if rand() < 0.3:
                        out.append(EdgeUpdate("HAS_EMAIL", acc, "email", f"{acc}@mail", ts))
                        out.append(EdgeUpdate("HAS_PHONE", acc, "phone", f"+44{a:010d}", ts))
                        out.append(
                            EdgeUpdate("HAS_ADDRESS", acc, "address", f"{a // 2} high st", ts)
                        )
            elif r < 0.85:  # a login
                failed = rand() < 0.05
                out.append(EdgeUpdate("USES_DEVICE", acc, "device", device, ts, 0.0, failed))
                out.append(EdgeUpdate("FROM_IP", acc, "ip", ip, ts, 0.0, failed))
            elif r < 0.95:  # a transfer
                if rand() < 0.2:
                    to = self.account(rng.randrange(self.mules) * 997 % self.accounts)
                else:
                    to = self.account(rng.randrange(self.accounts))
                amount = round(20 + rand() * 500, 2)
                out.append(EdgeUpdate("USES_DEVICE", acc, "device", device, ts))
                out.append(EdgeUpdate("FROM_IP", acc, "ip", ip, ts))
                out.append(EdgeUpdate("TRANSFERS_TO", acc, "account", to, ts, amount))
            else:  # a device event
                out.append(EdgeUpdate("USES_DEVICE", acc, "device", device, ts))
                out.append(EdgeUpdate("FROM_IP", acc, "ip", ip, ts))
            yield out


def zipf_cdf(n: int, s: float) -> list[float]:
    weights = [1 / (i + 1) ** s for i in range(n)]
    total = sum(weights)
    return list(itertools.accumulate(w / total for w in weights))[:-1]


def digest(store: EmbeddedGraphStore, seeds: list[str]) -> str:
    h = hashlib.sha256()
    for s in seeds:
        h.update(repr(store.subgraph([Node("account", s)], hops=2, fanout=50)).encode())
    return h.hexdigest()


def latencies(
    store: EmbeddedGraphStore, seeds: list[str]
) -> tuple[list[float], list[float], float]:
    """Per query: the subgraph as columns, and then with its sorted Node and Edge objects."""
    columns = []
    objects = []
    sizes = 0
    for s in seeds:
        started = clock()
        sg = store.subgraph([Node("account", s)], hops=2, fanout=50)
        got = clock()
        _nodes, edges = sg.nodes, sg.edges  # builds the sorted objects
        objects.append(clock() - started)
        columns.append(got - started)
        sizes += len(edges)
    columns.sort()
    objects.sort()
    return columns, objects, sizes / len(seeds)


def pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1e3


def build(edges: int, snapshot: Path, seed: int) -> dict:
    cpu = pin_one_core()
    world = World(edges, seed)
    store = EmbeddedGraphStore()
    events = world.events()
    updates = 0
    upsert_s = 0.0
    while store.counts()["edges"] < edges:
        batch: list[EdgeUpdate] = []
        while len(batch) < BATCH:
            batch += next(events)
        started = clock()
        store.upsert(batch)
        upsert_s += clock() - started
        updates += len(batch)
    counts = store.counts()
    rng = random.Random(seed + 1)
    present = [world.account(a) for a in range(world.accounts)]
    present = [a for a in present if store.has_node(Node("account", a))]
    cold, _, _ = latencies(store, rng.sample(present, QUERIES))
    warm, warm_objects, mean_edges = latencies(store, rng.sample(present, QUERIES))
    hubs = sorted(
        (store.degree(Node(k, i)), k)
        for k, i in (
            ("merchant", "mer0000000"),
            ("ip", "wifi00000"),
            ("account", world.account(0)),
            ("device", "farm00000"),
        )
    )
    started = time.perf_counter()
    size = store.snapshot(snapshot)
    snapshot_s = time.perf_counter() - started
    checks = rng.sample(present, CHECKS)
    answers = digest(store, checks)
    # steady state: the stream goes on over the full graph, a query after every batch
    steady_updates = 0
    steady_s = 0.0
    live = []
    while steady_updates < updates // STEADY_SHARE:
        batch = []
        while len(batch) < BATCH:
            batch += next(events)
        started = clock()
        store.upsert(batch)
        steady_s += clock() - started
        steady_updates += len(batch)
        seed = Node("account", rng.choice(present))
        started = clock()
        store.subgraph([seed], hops=2, fanout=50)
        live.append(clock() - started)
    live.sort()
    return {
        "cpu": cpu,
        "edges": counts["edges"],
        "nodes": counts["nodes"],
        "updates": updates,
        "upsert_per_s": updates / upsert_s,
        "steady_per_s": steady_updates / steady_s,
        "live_p50_ms": pct(live, 0.50),
        "live_p99_ms": pct(live, 0.99),
        "cold_p99_ms": pct(cold, 0.99),
        "cold_max_ms": cold[-1] * 1e3,
        "p50_ms": pct(warm, 0.50),
        "p99_ms": pct(warm, 0.99),
        "max_ms": warm[-1] * 1e3,
        "objects_p50_ms": pct(warm_objects, 0.50),
        "objects_p99_ms": pct(warm_objects, 0.99),
        "mean_result_edges": mean_edges,
        "top_degrees": hubs,
        "snapshot_s": snapshot_s,
        "snapshot_mb": size / 2**20,
        "checks": checks,
        "digest": answers,
    }


def restore(snapshot: Path, checks: list[str]) -> dict:
    pin_one_core()
    gc.collect()
    base = rss_mb()
    started = time.perf_counter()
    store = EmbeddedGraphStore.restore(snapshot)
    restore_s = time.perf_counter() - started
    gc.collect()
    return {
        "restore_s": restore_s,
        "store_mb": rss_mb() - base,
        "digest": digest(store, checks),
    }


def child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--edges", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--dir", default=None, help="folder for the snapshot files")
    p.add_argument("--wall", action="store_true", help="time upserts and queries by wall clock")
    p.add_argument("--build", nargs=2, metavar=("EDGES", "PATH"), help=argparse.SUPPRESS)
    p.add_argument("--restore", nargs=2, metavar=("PATH", "CHECKS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    global clock
    if args.wall:
        clock = time.perf_counter
    if args.build:
        print(json.dumps(build(int(args.build[0]), Path(args.build[1]), args.seed)))
        return
    if args.restore:
        print(json.dumps(restore(Path(args.restore[0]), json.loads(args.restore[1]))))
        return
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for edges in args.edges:
            path = Path(tmp) / f"graph-{edges}.snap"
            wall = ["--wall"] if args.wall else []
            b = child(["--build", str(edges), str(path), "--seed", str(args.seed), *wall])
            r = child(["--restore", str(path), json.dumps(b["checks"])])
            assert r["digest"] == b["digest"], "the restored store answers differently"
            path.unlink()
            rows.append((b, r))
            print(f"{edges:,} edges: top degrees {b['top_degrees']}", file=sys.stderr, flush=True)
    head = (
        "| edges | nodes | updates to build | upsert/s, building | upsert/s, steady "
        "| 2-hop p50 ms | p99 ms | max ms | p99 ms cold | p50 / p99 ms amid writes "
        "| p50 / p99 ms with objects | result edges (mean) "
        "| snapshot s | file MiB | restore s | store MiB |"
    )
    print(head)
    print("|" + " ---: |" * (head.count("|") - 1))
    for b, r in rows:
        print(
            f"| {b['edges']:,} | {b['nodes']:,} | {b['updates']:,} | {b['upsert_per_s']:,.0f} "
            f"| {b['steady_per_s']:,.0f} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} "
            f"| {b['max_ms']:.2f} | {b['cold_p99_ms']:.2f} "
            f"| {b['live_p50_ms']:.2f} / {b['live_p99_ms']:.2f} "
            f"| {b['objects_p50_ms']:.2f} / {b['objects_p99_ms']:.2f} "
            f"| {b['mean_result_edges']:.0f} "
            f"| {b['snapshot_s']:.2f} | {b['snapshot_mb']:.0f} | {r['restore_s']:.2f} "
            f"| {r['store_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
