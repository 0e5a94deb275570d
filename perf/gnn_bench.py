"""The fraud model end to end: training time, quality, scoring speed, explanations.

On a data folder (generated here from ``--seed`` with the default profile unless ``--data`` is
given), it times the steps of ``ringfence train`` (ingest into a scratch bus, features,
aggregated inputs, the GNN, the baselines), evaluates every model on the last 20% of the
period, and measures:

- scoring: the incremental scorer over the whole history (events in, decisions out), and the
  model alone per transaction (batch of one) against the full-subgraph path (message passing
  over the transaction's entities and their history), with the largest score difference;
- explanations: latency of Captum attributions for flagged test transactions, and faithfulness
  (removing the 3 top-attributed edges against 3 random ones);
- with ``--withhold T``: a second model trained without T's labels, and the recall of T at 1%
  false-positive rate of every detector.

Run from the repository root::

    python perf/gnn_bench.py --seed 20261130
    python perf/gnn_bench.py --data /path/to/generated --withhold mule_network
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnn import registry
from gnn.data import load_history
from gnn.evaluate import evaluate
from gnn.explain import Explainer, faithfulness
from gnn.model import intra_op_threads
from gnn.online import HistoryGraph
from gnn.scoring import Scorer
from gnn.train import predict, prepare, temporal_split, train
from ingest.generator import PROFILES, generate


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=20261130, help="data seed (when generating)")
    p.add_argument("--data", default=None, help="an existing data folder")
    p.add_argument("--model-seed", type=int, default=0)
    p.add_argument("--withhold", default=None, help="also train without this typology")
    p.add_argument("--explain", type=int, default=100, help="flagged transactions to explain")
    args = p.parse_args()
    figures: dict = {"model_seed": args.model_seed}
    with tempfile.TemporaryDirectory(prefix="ringfence-gnn-bench-") as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "data"
        if not args.data:
            started = time.perf_counter()
            generate(data, seed=args.seed, start=date(2026, 10, 1), **PROFILES["default"])
            figures["generate_s"] = time.perf_counter() - started
        figures["data_seed"] = json.loads((data / "truth" / "summary.json").read_text())["seed"]
        started = time.perf_counter()
        history = load_history(data, progress=log)
        figures["ingest_s"] = time.perf_counter() - started
        started = time.perf_counter()
        prep = prepare(history, progress=log)
        figures["features_s"] = time.perf_counter() - started
        figures["events"] = len(history.events)
        figures["transactions"] = len(prep.rows)
        started = time.perf_counter()
        folder = train(
            data, Path(tmp) / "models", seed=args.model_seed, prepared=prep, progress=log
        )
        figures["train_s"] = time.perf_counter() - started
        figures["peak_rss_gib_after_training"] = peak_gib()
        model, manifest = registry.load(folder)
        figures["model_version"] = manifest["version"]
        figures["best_epoch"] = manifest["training"]["best_epoch"]
        ev = evaluate(folder, data, prepared=prep, report_dir=Path(tmp) / "report")
        figures["evaluation"] = {
            name: {
                k: m[k]
                for k in (
                    "roc_auc",
                    "pr_auc",
                    "recall_at_0.1%_fpr",
                    "recall_at_1%_fpr",
                    "precision_at_threshold",
                    "recall_at_threshold",
                    "ring_typologies_pr_auc",
                )
            }
            | {"typology_pr_auc": {t: v["pr_auc"] for t, v in m["typologies"].items()}}
            for name, m in ev["models"].items()
        }
        figures["ring_lead"] = ev["ring_typologies"]["gnn_lead"]
        figures["test_fraud"] = ev["meta"]["fraud"]
        figures["test_transactions"] = ev["meta"]["transactions"]

        # scoring: the incremental scorer over the whole history
        scorer = Scorer.from_manifest(model, manifest)
        started = time.perf_counter()
        online = np.array([s.score for s in scorer.score_events(history.events)])
        elapsed = time.perf_counter() - started
        figures["scorer_txn_per_s"] = len(online) / elapsed
        figures["scorer_events_per_s"] = len(history.events) / elapsed
        dense = predict(model, prep.inputs)
        figures["incremental_vs_dense_max_diff"] = float(np.abs(online - dense).max())

        # one transaction at a time, as a request would come: features, state, model
        test = temporal_split(prep.ts).test
        cut = prep.ts[test[0]]
        single = Scorer.from_manifest(model, manifest, batch=1)
        events = history.events
        k = next(i for i, e in enumerate(events) if e.timestamp.timestamp() >= cut)
        for _ in single.score_events(events[:k]):
            pass
        per_txn = []
        for e in events[k : k + 20_000]:
            started = time.perf_counter()
            got = list(single.score_events([e]))
            if got:
                per_txn.append(time.perf_counter() - started)
        figures["incremental_per_txn_ms"] = (pct(per_txn, 0.5) * 1e3, pct(per_txn, 0.99) * 1e3)

        # one transaction at a time: aggregated inputs vs message passing over the subgraph
        graph = HistoryGraph(prep.rows)
        rng = np.random.default_rng(1)
        sample = [int(i) for i in rng.choice(test, 300, replace=False)]
        one, full, diffs = [], [], []
        with torch.no_grad(), intra_op_threads(1):
            for pos in sample:
                started = time.perf_counter()
                d = graph.dense_at(pos)
                s1 = float(torch.sigmoid(model.forward_dense(*d.tensors()))[0])
                one.append(time.perf_counter() - started)
                started = time.perf_counter()
                s2 = float(torch.sigmoid(model(graph.subgraph([pos])))[0])
                full.append(time.perf_counter() - started)
                diffs.append(abs(s1 - s2))
        figures["single_aggregated_ms"] = (pct(one, 0.5) * 1e3, pct(one, 0.99) * 1e3)
        figures["single_subgraph_ms"] = (pct(full, 0.5) * 1e3, pct(full, 0.99) * 1e3)
        figures["subgraph_vs_aggregated_max_diff"] = max(diffs)

        # explanations of flagged test transactions
        block = manifest["thresholds"]["block"]
        flagged = [int(i) for i in test[dense[test] >= block]]
        picks = [flagged[i] for i in rng.permutation(len(flagged))[: args.explain]]
        explainer = Explainer(model, graph, ring_of=prep.state.ring_of if prep.state else None)
        lat = [explainer.explain(pos).seconds for pos in picks]
        figures["explain_ms"] = (pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3, len(lat))
        figures["faithfulness"] = faithfulness(explainer, picks, k=3)

        if args.withhold:
            started = time.perf_counter()
            wfolder = train(
                data,
                Path(tmp) / "models-withheld",
                seed=args.model_seed,
                prepared=prep,
                withhold_typology=args.withhold,
            )
            wev = evaluate(wfolder, data, prepared=prep, report_dir=Path(tmp) / "report-w")
            figures["withheld"] = wev["withheld"] | {"train_s": time.perf_counter() - started}
        figures["peak_rss_gib"] = peak_gib()
    print(json.dumps(figures, indent=2, default=float))


if __name__ == "__main__":
    main()
