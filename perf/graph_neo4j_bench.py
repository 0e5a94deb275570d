"""Neo4j graph store: batched upsert throughput and 2-hop subgraph read latency.

Generates a synthetic stream of edge updates (accounts paying merchants from their devices and
IPs, logging in, now and then transferring to another account), with a realistic skew: account
activity, merchant popularity and device/IP sharing follow Zipf-like laws, so a few merchants
hold a large share of all edges and some devices and IPs are shared by many accounts. The
stream is fed to :class:`graph.neo4j_store.Neo4jGraphStore` in ``--chunk``-update calls, then
``--queries`` 2-hop subgraphs (fan-out capped) are read around random accounts. Run from the
repository root::

    python perf/graph_neo4j_bench.py                       # 100k and 1M edges, own server
    python perf/graph_neo4j_bench.py --edges 100000 --uri bolt://127.0.0.1:7687

Without ``--uri`` it starts a Neo4j server (``tests/services/neo4j.py``) in a temporary folder.
A warm-up load (``--warmup`` edges, then cleared) lets the JVM compile Neo4j's hot paths
first; each size then starts from an empty graph. A size whose load would exceed ``--budget``
seconds (estimated from the previous size's rate) is skipped, with a line saying so.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graph.model import EdgeUpdate, Node
from graph.neo4j_store import Neo4jGraphStore
from tests.services.neo4j import Neo4jServer


def _zipf_sampler(rng: random.Random, n: int, s: float):
    """A function drawing 0..n-1 with P(k) proportional to 1 / (k + 1) ** s."""
    weights = [1.0 / (k + 1) ** s for k in range(n)]
    cum = list(itertools.accumulate(weights))
    total = cum[-1]
    return lambda: bisect.bisect_left(cum, rng.random() * total)


def synthetic_updates(edges: int, seed: int = 7) -> tuple[list[EdgeUpdate], int]:
    """Updates until ``edges`` distinct edges exist; returns (updates, distinct edges)."""
    rng = random.Random(seed)
    accounts = max(100, edges // 9)
    merchants = max(20, accounts // 20)
    devices = int(accounts * 1.1)
    ips = int(accounts * 0.8)
    pick_account = _zipf_sampler(rng, accounts, 0.6)
    pick_merchant = _zipf_sampler(rng, merchants, 1.1)
    # each account's home device and IP; a shared pool (emulators, proxies) is skewed
    shared_device = _zipf_sampler(rng, max(10, devices // 50), 1.2)
    shared_ip = _zipf_sampler(rng, max(10, ips // 50), 1.2)
    seen: set[tuple[str, str, str]] = set()
    out: list[EdgeUpdate] = []
    ts = 1_790_000_000.0
    while len(seen) < edges:
        a = pick_account()
        acc = f"acc_{a:07d}"
        ts += rng.expovariate(1 / 0.5)
        failed = rng.random() < 0.03
        dev = f"dev_{a:07d}" if rng.random() < 0.9 else f"dev_s{shared_device():05d}"
        ip = f"ip_{a % ips:07d}" if rng.random() < 0.8 else f"ip_s{shared_ip():05d}"
        batch = [
            EdgeUpdate("USES_DEVICE", acc, "device", dev, ts, 0.0, failed),
            EdgeUpdate("FROM_IP", acc, "ip", ip, ts, 0.0, failed),
        ]
        r = rng.random()
        if r < 0.7:
            amount = round(rng.lognormvariate(3.5, 1.2), 2)
            mer = f"mer_{pick_merchant():05d}"
            batch.append(EdgeUpdate("PAYS", acc, "merchant", mer, ts, amount, failed))
        elif r < 0.8:
            amount = round(rng.lognormvariate(5, 1.0), 2)
            other = f"acc_{pick_account():07d}"
            batch.append(EdgeUpdate("TRANSFERS_TO", acc, "account", other, ts, amount, failed))
        for u in batch:
            seen.add((u.rel, u.src_id, u.dst_id))
        out.extend(batch)
    return out, len(seen)


def load(store: Neo4jGraphStore, updates: list[EdgeUpdate], chunk: int) -> float:
    """Feed ``updates`` in ``chunk``-sized calls; returns updates per second."""
    started = time.perf_counter()
    for i in range(0, len(updates), chunk):
        store.upsert(updates[i : i + chunk])
    return len(updates) / (time.perf_counter() - started)


def read_latencies(
    store: Neo4jGraphStore, accounts: list[str], queries: int, fanout: int, seed: int
) -> list[float]:
    """Seconds per 2-hop subgraph around random accounts (after a short warm-up)."""
    rng = random.Random(seed)
    for acc in rng.sample(accounts, min(20, len(accounts))):
        store.subgraph([Node("account", acc)], hops=2, fanout=fanout)
    out = []
    for _ in range(queries):
        acc = rng.choice(accounts)
        started = time.perf_counter()
        store.subgraph([Node("account", acc)], hops=2, fanout=fanout)
        out.append(time.perf_counter() - started)
    return out


def bench_size(args: argparse.Namespace, edges: int, uri: str) -> tuple[float, float]:
    """Run one graph size against ``uri``; print its line; return (updates/s, load seconds)."""
    t0 = time.perf_counter()
    updates, distinct = synthetic_updates(edges, args.seed)
    gen_s = time.perf_counter() - t0
    accounts = sorted({u.src_id for u in updates})
    store = Neo4jGraphStore(uri, batch_size=args.batch_size)
    try:
        store.clear()
        rate = load(store, updates, args.chunk)
        load_s = len(updates) / rate
        counts = store.counts()
        lat = sorted(read_latencies(store, accounts, args.queries, args.fanout, args.seed))
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        print(
            f"{distinct:>9,} edges ({counts['nodes']:,} nodes) from {len(updates):,} updates "
            f"(generated in {gen_s:.1f} s): upsert {rate:>8,.0f} edge-updates/s "
            f"({load_s:.1f} s); 2-hop subgraph fanout {args.fanout}: "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1] * 1000:.1f} ms "
            f"over {len(lat)} queries",
            flush=True,
        )
    finally:
        store.close()
    return rate, load_s


def main(argv: list[str] | None = None) -> None:
    """Parse the options, warm the server up, and run each graph size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edges", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--chunk", type=int, default=20_000, help="updates per upsert() call")
    parser.add_argument("--batch-size", type=int, default=5_000, help="rows per transaction")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--fanout", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=200_000, help="edges loaded, then cleared")
    parser.add_argument("--uri", default=None, help="use this server (it is cleared first)")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per size, at most")
    parser.add_argument("--heap-mb", type=int, default=1024)
    parser.add_argument("--pagecache-mb", type=int, default=1024)
    args = parser.parse_args(argv)
    print(
        f"neo4j graph store: upsert in calls of {args.chunk:,} updates, "
        f"{args.batch_size:,} rows per transaction; python {sys.version.split()[0]}",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        uri = args.uri
        if uri is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="neo4j_bench_"))
            server = Neo4jServer(Path(tmp), heap_mb=args.heap_mb, pagecache_mb=args.pagecache_mb)
            uri = stack.enter_context(server)
            print(f"(server started in {server.start_seconds:.1f} s)", flush=True)
        if args.warmup:
            # the JVM compiles Neo4j's hot paths over the first few 100k updates: keep that
            # out of the figures below (a long-running server is warm)
            updates, _ = synthetic_updates(args.warmup, args.seed + 1)
            with Neo4jGraphStore(uri, batch_size=args.batch_size) as store:
                rate = load(store, updates, args.chunk)
                read_latencies(store, sorted({u.src_id for u in updates}), 50, args.fanout, 1)
                store.clear()
            print(f"(warm-up: {len(updates):,} updates at {rate:,.0f}/s, then cleared)")
        rate = None
        for edges in sorted(args.edges):
            if rate is not None and edges * 2.3 / rate > args.budget:
                print(f"{edges:>9,} edges: skipped (estimated load over {args.budget:.0f} s)")
                continue
            rate, _ = bench_size(args, edges, uri)


if __name__ == "__main__":
    main()
