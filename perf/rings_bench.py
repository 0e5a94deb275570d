"""Ring detection throughput and quality on a generated data set.

Generates a data set (default profile: 10,000 accounts, 30 days, about 950,000 events), ingests
it into a temporary data directory, then streams the events back from the bus in bus order
(per-source order, so timestamps go back and forth) in batches of ``--batch`` events: each batch
is decoded, turned into edge updates, and fed to the ring detector. Prints the update rate
(events/s, counting only ``RingDetector.update``), the time per batch (median, 95th percentile,
worst), the snapshot size, and the evaluation against the generator's truth. Target (rings
issue): the update keeps up with >= 20,000 events/s.

Use a seed no test or tuning run used for the evaluation figures (the default is such a seed).

    python perf/rings_bench.py [--seed 8675309] [--profile default] [--batch 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from graph.evaluate import evaluate
from graph.model import edges_from_event
from graph.rings import RingDetector
from ingest.bus import EmbeddedBus
from ingest.events import decode_event
from ingest.generator import PROFILES, generate
from serve.cli import run_ingest
from serve.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=8675309)
    ap.add_argument("--profile", default="default", choices=sorted(PROFILES))
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="rings-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        gen = generate(root / "data", seed=args.seed, **PROFILES[args.profile])
        t_gen = time.perf_counter() - t
        t = time.perf_counter()
        run_ingest(Settings(data_dir=root / "state"), root / "data", expectations=False, quiet=True)
        t_ingest = time.perf_counter() - t
        consumer = EmbeddedBus(root / "state" / "bus").consumer("events", "rings-bench")
        detector = RingDetector()
        per_batch: list[float] = []
        t_read = t_edges = 0.0
        n_events = n_updates = 0
        while True:  # stream: poll a batch, decode it, make its edges, update (timed alone)
            t = time.perf_counter()
            records = consumer.poll(args.batch)
            events = [decode_event(r.payload) for r in records]
            t_read += time.perf_counter() - t
            if not events:
                break
            t = time.perf_counter()
            updates = [u for e in events for u in edges_from_event(e)]
            t_edges += time.perf_counter() - t
            t = time.perf_counter()
            detector.update(updates)
            per_batch.append(time.perf_counter() - t)
            n_events += len(events)
            n_updates += len(updates)
        t_update = sum(per_batch)
        t = time.perf_counter()
        snapshot = detector.snapshot()
        t_snap = time.perf_counter() - t
        t = time.perf_counter()
        RingDetector.restore(snapshot)
        t_restore = time.perf_counter() - t
        report = evaluate(detector.rings(), root / "data" / "truth")

    ms = sorted(x * 1000 for x in per_batch)
    result = {
        "seed": args.seed,
        "profile": args.profile,
        "events_generated": gen.events,
        "events": n_events,
        "edge_updates": n_updates,
        "batch": args.batch,
        "batches": len(per_batch),
        "update_events_per_s": round(n_events / t_update),
        "update_s": round(t_update, 2),
        "edges_from_event_s": round(t_edges, 2),
        "batch_ms_median": round(statistics.median(ms), 1),
        "batch_ms_p95": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "batch_ms_max": round(ms[-1], 1),
        "rings": len(detector.rings()),
        "snapshot_mb": round(len(snapshot) / 1e6, 1),
        "snapshot_s": round(t_snap, 2),
        "restore_s": round(t_restore, 2),
        "generate_s": round(t_gen, 1),
        "ingest_s": round(t_ingest, 1),
        "read_bus_s": round(t_read, 1),
        "evaluation": report.to_dict(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"seed {args.seed}, profile {args.profile}: {n_events:,} events -> {n_updates:,} edge "
        f"updates, {len(per_batch)} batches of {args.batch:,}"
    )
    print(
        f"update: {result['update_events_per_s']:,} events/s ({t_update:.2f} s); per batch "
        f"median {result['batch_ms_median']} ms, p95 {result['batch_ms_p95']} ms, "
        f"max {result['batch_ms_max']} ms; edges_from_event {t_edges:.2f} s"
    )
    print(
        f"snapshot {result['snapshot_mb']} MB in {t_snap:.2f} s, restore {t_restore:.2f} s; "
        f"rings: {result['rings']}"
    )
    print(
        f"(generate {t_gen:.1f} s, ingest {t_ingest:.1f} s, read and decode the bus {t_read:.1f} s)"
    )
    print()
    print(report.table())
    print()
    print("Recall by role: " + ", ".join(f"{k} {v:.3f}" for k, v in report.recall_by_role.items()))


if __name__ == "__main__":
    main()
