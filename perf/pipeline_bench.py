"""The scoring pipeline without HTTP: a month of events replayed through it, events per second.

Reads a data folder through ingest (as `ringfence train` does), folds the first ``--warm``
share of its events into the pipeline's state (not timed: a running service starts from its
history, then settles its heap as ``ringfence serve`` does), then replays the rest in time order
through :class:`serve.pipeline.ScoringPipeline` in micro-batches, timing only the pipeline
(features, entity state, GNN, reasons for flagged transactions, and, with the sample rule set,
the rules), on one core. Run from the repository root::

    python perf/pipeline_bench.py --data DATA_DIR --model MODELS_DIR [--batch 256] [--limit N]
        [--warm 0.5] [--feature-worker]

With ``--feature-worker`` each pipeline runs twice, in process and with the feature state in a
child process (:class:`serve.feature_worker.FeatureWorker`, one batch in flight while the one
before is decided), unpinned and timed by the wall clock: the worker's gain is the second core.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnn import registry
from gnn.data import load_history
from rules import ruleset_from_yaml
from serve.feature_worker import FeatureWorker
from serve.heap import settle_heap
from serve.pipeline import ScoringPipeline

SAMPLE_RULES = """
version: "bench-1"
rules:
  - {id: big_transfer, when: 'txn.channel == "transfer" and txn.amount > 5000', action: review}
  - {id: shared_device, when: 'graph.accounts_per_device >= 4', action: review, priority: 5}
  - {id: risky_ring, when: 'graph.ring_risk > 0.8', action: block, priority: 9}
  - {id: watch, when: 'list("watch").contains(txn.merchant_id)', action: block, priority: 10}
  - {id: tiny_cnp, when: 'txn.channel == "card_not_present" and txn.amount < 2', action: tag}
  - {id: travel, when: 'features.geo_speed > 7', action: step_up, priority: 3}
  - {id: night_atm, when: 'txn.channel == "atm" and features.hour_vs_habit > 0.8', action: tag}
  - {id: reset_then_pay, when: 'features.recent_password_reset > 0.5 and score > 0.05',
     action: review, priority: 4}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--limit", type=int, default=0, help="events replayed (0: all)")
    p.add_argument("--warm", type=float, default=0.5, help="share of the events folded in first")
    p.add_argument("--feature-worker", action="store_true", help="also with the feature worker")
    args = p.parse_args()
    if not args.feature_worker:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    model, manifest = registry.load(args.model)
    events = load_history(args.data).events
    if args.limit:
        events = events[: args.limit]
    cut = int(len(events) * args.warm)
    print(
        f"{len(events):,} events ({cut:,} folded in first, not timed); "
        f"model {manifest['version']}; batches of {args.batch}"
    )
    runs = [
        (label, rules, worker)
        for label, rules in (
            ("model only", None),
            ("model + 8 rules", ruleset_from_yaml(SAMPLE_RULES)),
        )
        for worker in ((False, True) if args.feature_worker else (False,))
    ]
    for label, rules, in_worker in runs:
        worker = FeatureWorker() if in_worker else None
        if args.feature_worker:
            label += ", feature worker" if in_worker else ", in process"
        pipeline = ScoringPipeline(
            model,
            manifest,
            ruleset=rules,
            lists={"watch": {"mch_000001"}},
            feature_worker=worker,
        )
        for k in range(0, cut, 5000):
            pipeline.warm(events[k : min(k + 5000, cut)])
        settle_heap()
        before = pipeline.stats.transactions
        decided = dict(pipeline.stats.decisions)
        started = time.process_time()
        wall = time.perf_counter()
        if args.feature_worker:  # one batch in flight while the one before is decided
            flying = None
            for k in range(cut, len(events), args.batch):
                begun = pipeline.begin(events[k : k + args.batch])
                if flying is not None:
                    pipeline.finish(flying)
                flying = begun
            if flying is not None:
                pipeline.finish(flying)
        else:
            for k in range(cut, len(events), args.batch):
                pipeline.process(events[k : k + args.batch])
        cpu_s = time.process_time() - started
        wall_s = time.perf_counter() - wall
        if args.feature_worker:
            cpu_s = wall_s  # two processes: the wall clock is the measure
        st = pipeline.stats
        n = st.transactions - before
        made = {d: c - decided.get(d, 0) for d, c in st.decisions.items()}
        clock = "wall clock" if args.feature_worker else f"CPU time; wall {wall_s:.1f} s"
        print(
            f"{label}: {(len(events) - cut) / cpu_s:,.0f} events/s, {n / cpu_s:,.0f} "
            f"transactions/s ({clock}); decisions {made}"
        )
        if worker is not None:
            worker.close()
        del pipeline
        gc.unfreeze()
        gc.collect()


if __name__ == "__main__":
    main()
