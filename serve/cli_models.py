"""The model commands of ``ringfence``: train, evaluate, score, fairness.

Each parses its arguments, calls :mod:`gnn`, and prints JSON on stdout (progress on stderr).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.errors import RecordRejected
from serve.cli import UsageError as ModelUsageError


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    if args.quiet:
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)


def _clean(obj: Any) -> Any:
    """JSON without NaN: undefined figures become null."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON, NaN and infinities as null."""
    print(json.dumps(_clean(obj), indent=2, default=str))


_print_json = print_json


def _one_of(args: argparse.Namespace) -> None:
    if (args.data is None) == (args.graph is None):
        raise ModelUsageError("give exactly one of --data DIR or --graph FILE")


def cmd_train(args: argparse.Namespace) -> int:
    """Train the fraud model (or a model on your own labelled graph)."""
    _one_of(args)
    progress = _progress(args)
    started = time.perf_counter()
    if args.graph is not None:
        from gnn.generic import train_generic

        _print_json(
            train_generic(args.graph, args.out, seed=args.seed, progress=progress, grid=args.grid)
        )
        return 0
    from gnn.train import TrainConfig, train
    from ingest.typologies import TYPOLOGIES

    if args.withhold_typology and args.withhold_typology not in TYPOLOGIES:
        raise ModelUsageError(
            f"--withhold-typology: expected one of {', '.join(TYPOLOGIES)}, "
            f"got {args.withhold_typology!r}"
        )
    config = TrainConfig(seed=args.seed, epochs=args.epochs, hidden=args.hidden)
    folder = train(
        args.data,
        args.out,
        seed=args.seed,
        config=config,
        withhold_typology=args.withhold_typology,
        baselines=not args.no_baselines,
        progress=progress,
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    _print_json(
        {
            "model": str(folder),
            "version": manifest["version"],
            "seed": manifest["seed"],
            "data_fingerprint": manifest["data"]["fingerprint"],
            "thresholds": manifest["thresholds"],
            "metrics": manifest["metrics"],
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a model: the GNN, tabular and unsupervised baselines side by side."""
    _one_of(args)
    progress = _progress(args)
    if args.graph is not None:
        from gnn.generic import evaluate_generic

        _print_json(evaluate_generic(args.model, args.graph))
        return 0
    from gnn.evaluate import evaluate

    _print_json(
        evaluate(
            args.model, args.data, report_dir=args.report, period=args.period, progress=progress
        )
    )
    return 0


def cmd_fairness(args: argparse.Namespace) -> int:
    """Audit blocking across protected customer groups, with a mitigation before and after."""
    from gnn.evaluate import fairness

    out = fairness(args.model, args.data, attribute=args.attribute, progress=_progress(args))
    if args.format == "table":
        print(out["table"])
    else:
        out.pop("table")
        _print_json(out)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Explain one transaction's score: features, neighbours and reason codes."""
    from gnn import registry
    from gnn.data import load_history
    from gnn.explain import Explainer
    from gnn.online import HistoryGraph
    from gnn.scoring import model_decision
    from gnn.train import prepare

    model, manifest = registry.load(args.model)
    prep = prepare(load_history(args.data, progress=_progress(args)), progress=_progress(args))
    graph = HistoryGraph(prep.rows)
    position = graph.position.get(args.txn)
    if position is None:
        raise ModelUsageError(f"--txn: no transaction {args.txn!r} in {args.data}")
    state = prep.state
    explainer = Explainer(model, graph, ring_of=state.ring_of if state is not None else None)
    out = explainer.explain(position, top=args.top).to_dict()
    out["model_version"] = manifest["version"]
    t = manifest["thresholds"]
    out["decision"] = model_decision(out["score"], t["block"], t.get("review", t["block"]))
    _print_json(out)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score a file of canonical events in time order; write txn_id,score,decision."""
    from gnn import registry
    from gnn.data import event_time_key
    from gnn.scoring import Scorer
    from ingest.validate import Validator

    model, manifest = registry.load(args.model)
    source = Path(args.input)
    if not source.is_file():
        raise ModelUsageError(f"--input: {source} is not a file")
    validator = Validator()
    events = []
    rejected: list[dict[str, Any]] = []
    received = 0
    with source.open("rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            received += 1
            try:
                events.append(validator.validate_json(raw.rstrip(b"\r\n")))
            except RecordRejected as exc:
                rejected.append(
                    {
                        "line": line_no,
                        "errors": [str(e) for e in exc.errors],
                        "raw": raw.decode("utf-8", "replace").rstrip("\n"),
                    }
                )
    events.sort(key=event_time_key)
    scorer = Scorer.from_manifest(model, manifest)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    decisions: Counter[str] = Counter()
    tmp = out.with_name(out.name + ".tmp")
    started = time.perf_counter()
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["txn_id", "score", "decision"])
        for scored in scorer.score_events(events):
            writer.writerow([scored.txn_id, f"{scored.score:.6f}", scored.decision])
            decisions[scored.decision] += 1
    os.replace(tmp, out)
    elapsed = time.perf_counter() - started
    rejected_path = None
    if rejected:
        rejected_path = out.with_name(out.name + ".rejected.jsonl")
        with rejected_path.open("w", encoding="utf-8") as fh:
            for r in rejected:
                fh.write(json.dumps(r) + "\n")
    scored_n = sum(decisions.values())
    _print_json(
        {
            "model_version": manifest["version"],
            "received": received,
            "accepted": len(events),
            "rejected": len(rejected),
            "rejected_file": str(rejected_path) if rejected_path else None,
            "transactions_scored": scored_n,
            "decisions": dict(decisions),
            "thresholds": manifest["thresholds"],
            "seconds": round(elapsed, 2),
            "transactions_per_s": round(scored_n / elapsed) if elapsed > 0 else None,
            "out": str(out),
        }
    )
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    """Score what is on the event bus (the stream consumer), resuming where it stopped."""
    from ingest.bus.embedded import EmbeddedBus
    from serve.cli import _settings
    from serve.stream import StreamScorer
    from serve.wiring import scoring_pipeline

    settings = _settings(args)
    out = settings.path("decisions", "decisions.jsonl")
    with scoring_pipeline(settings, args.model, keep_history=False) as pipeline:
        bus = EmbeddedBus(settings.path("bus"))
        try:
            summary = StreamScorer(bus, pipeline, out, batch=args.batch).run(follow=args.follow)
        finally:
            bus.close()
    _print_json(summary.to_dict() | {"decisions": str(out), "model_version": pipeline.version})
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Mint gateway tokens, or a new signing key."""
    from datetime import UTC, datetime

    from serve.settings import Settings
    from serve.tokens import SigningKeys, TokenError, issue, new_key

    if args.action == "keygen":
        print(new_key())
        return 0
    settings = Settings()
    if settings.jwt_keys is None:
        raise ModelUsageError("set RINGFENCE_JWT_KEYS first (`ringfence token keygen` makes one)")
    try:
        keys = SigningKeys.parse(settings.jwt_keys.get_secret_value())
        if not args.client:
            raise ModelUsageError("--client: required to issue a token")
        print(
            issue(
                keys,
                client=args.client,
                scopes=args.scope or ["score"],
                ttl_s=args.ttl,
                now=datetime.now(UTC),
            )
        )
    except TokenError as exc:
        raise ModelUsageError(str(exc)) from None
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the scoring API on embedded defaults with the latest model.

    Before it listens, the pipeline's state is rebuilt from the bus's events (unless
    ``--no-history``) and from the decision journal, which then records every decision made.
    """
    import uvicorn

    from serve.api import create_app, server_app
    from serve.cli import _settings
    from serve.heap import settle_heap
    from serve.tokens import SigningKeys, TokenError
    from serve.wiring import decision_journal, scoring_pipeline, warm_from_data_dir

    settings = _settings(args)
    if settings.jwt_keys is None:
        raise ModelUsageError("set RINGFENCE_JWT_KEYS first (`ringfence token keygen` makes one)")
    try:
        keys = SigningKeys.parse(settings.jwt_keys.get_secret_value())
    except TokenError as exc:
        raise ModelUsageError(str(exc)) from None
    with scoring_pipeline(settings, args.model) as pipeline, decision_journal(settings) as journal:
        progress = _progress(args)
        warm_from_data_dir(settings, pipeline, history=not args.no_history, progress=progress)
        settle_heap()
        pipeline.on_decisions = journal.hook(pipeline)
        try:
            uvicorn.run(
                server_app(create_app(pipeline, keys)),
                host=args.host,
                port=args.port,
                log_level="warning",
                timeout_keep_alive=settings.keep_alive_s,
            )
        finally:
            pipeline.on_decisions = None
    return 0


def register(add: Callable[[str, Any, str], argparse.ArgumentParser]) -> None:
    """Add the model commands to the ``ringfence`` parser (``add`` makes one subcommand)."""
    p = add("train", cmd_train, "Train the fraud model, or a model on your own labelled graph.")
    p.add_argument("--data", default=None, help="a data folder (as `ringfence generate` writes)")
    p.add_argument("--graph", default=None, help="a labelled graph (.npz or Parquet folder)")
    p.add_argument("--out", default="models", help="the model registry folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--withhold-typology", default=None, help="train without this typology")
    p.add_argument("--no-baselines", action="store_true", help="train the GNN only")
    p.add_argument(
        "--grid",
        default="small",
        help="with --graph: the tuning grid (tiny, small, medium, large, or a JSON object)",
    )

    p = add("evaluate", cmd_evaluate, "Evaluate a model against its baselines; write a report.")
    p.add_argument("--model", default="models", help="a version folder or a registry")
    p.add_argument("--data", default=None, help="a data folder with truth/")
    p.add_argument("--graph", default=None, help="a labelled graph (.npz or Parquet folder)")
    p.add_argument("--report", default=None, help="report folder (default: in the model)")
    p.add_argument("--period", choices=("test", "all"), default="test")

    p = add("score", cmd_score, "Score canonical events (JSON lines) in time order.")
    p.add_argument("--model", default="models", help="a version folder or a registry")
    p.add_argument("--input", required=True, help="canonical events, one JSON per line")
    p.add_argument("--out", required=True, help="CSV: txn_id,score,decision")

    p = add("explain", cmd_explain, "Explain a transaction's score with reason codes.")
    p.add_argument("--model", default="models", help="a version folder or a registry")
    p.add_argument("--data", required=True, help="the data folder holding the transaction")
    p.add_argument("--txn", required=True, help="the transaction id")
    p.add_argument("--top", type=int, default=8, help="features and neighbours listed")

    p = add("serve", cmd_serve, "Start the scoring API (embedded defaults, the latest model).")
    p.add_argument("--model", default=None, help="a version folder or registry (data-dir/models)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--no-history",
        action="store_true",
        help="start cold: skip rebuilding the state from the bus's events "
        "(the decision journal is still read, so retries keep their answers)",
    )

    p = add("stream", cmd_stream, "Score the events on the bus, resuming where it stopped.")
    p.add_argument("--model", default=None, help="a version folder or registry (data-dir/models)")
    p.add_argument("--batch", type=int, default=1000, help="records per micro-batch")
    p.add_argument("--follow", action="store_true", help="keep waiting for new events")

    p = add("token", cmd_token, "Issue a gateway's API token, or make a signing key.")
    p.add_argument("action", choices=("issue", "keygen"))
    p.add_argument("--client", default=None, help="the gateway's name (the token's subject)")
    p.add_argument("--scope", action="append", help="score, explain, investigate or admin")
    p.add_argument("--ttl", type=int, default=30 * 86400, help="seconds the token is valid")

    p = add("fairness", cmd_fairness, "Audit blocking across protected groups; mitigate one.")
    p.add_argument("--model", default="models", help="a version folder or a registry")
    p.add_argument("--data", required=True, help="a data folder with truth/customers.csv")
    p.add_argument("--attribute", default=None, help="the attribute to mitigate (default: worst)")
    p.add_argument("--format", choices=("json", "table"), default="json")


def demo_model(data: Path, models: Path, *, progress: Callable[[str], None] | None) -> None:
    """The demo's last step: train on the demo data, evaluate, explain the riskiest fraud."""
    import numpy as np

    from gnn import registry
    from gnn.data import load_history
    from gnn.evaluate import evaluate
    from gnn.explain import Explainer
    from gnn.online import HistoryGraph
    from gnn.train import predict, prepare, temporal_split, train

    prep = prepare(load_history(data), progress=progress)
    folder = train(data, models, seed=0, prepared=prep, progress=progress)
    print(f"\nmodel {folder.name} (registry {models})")
    try:
        ev = evaluate(folder, data, prepared=prep)
    except ValueError as exc:
        print(f"evaluation skipped: {exc}")
        return
    print(f"\n{'model':<20}{'PR-AUC':>8}{'ROC-AUC':>9}{'recall@1%FPR':>14}{'rings PR-AUC':>14}")
    for name, m in ev["models"].items():
        ring = m["ring_typologies_pr_auc"]
        print(
            f"{name:<20}{m['pr_auc']:>8.3f}{m['roc_auc']:>9.3f}{m['recall_at_1%_fpr']:>14.3f}"
            f"{'' if ring is None else f'{ring:.3f}':>14}"
        )
    print(f"report: {ev['report']}")
    model, _ = registry.load(folder)
    test = temporal_split(prep.ts).test
    fraud = test[prep.y[test] == 1]
    if len(fraud):
        scores = predict(model, prep.inputs.take(fraud))
        pos = int(fraud[int(np.argmax(scores))])
        state = prep.state
        explainer = Explainer(
            model, HistoryGraph(prep.rows), ring_of=state.ring_of if state is not None else None
        )
        e = explainer.explain(pos)
        print(f"\nwhy {e.txn_id} ({prep.typology[pos]}) scored {e.score:.3f}:")
        for reason in e.reasons:
            print(f"  - {reason}")


DEMO_RULES = """
version: "demo-1"
rules:
  - id: ring_member_high_risk
    description: an account in a high-risk ring pays out
    when: graph.ring_risk >= 0.8 and score >= 0.02
    action: block
    priority: 20
  - id: device_farm
    description: a device shared by five or more accounts
    when: graph.accounts_per_device >= 5
    action: review
    priority: 10
  - id: impossible_travel
    description: faster than an airliner since the account's last located event
    when: features.geo_speed >= 6.9
    action: step_up
    priority: 5
"""
"""The rules the demo publishes when the rule store has no live set yet."""


def demo_service(
    data: Path, models: Path, state: Path, *, progress: Callable[[str], None] | None
) -> None:
    """The demo's service step: start the API and replay the last 20% of the stream through it.

    The first 80% of the events warm the pipeline up as the stream consumer would; then, in time
    order, transactions go to ``POST /v1/score/batch`` (500 at a time) and the other events
    straight to the pipeline. Decisions, blocks and alerts (the outbox) are printed.
    """
    from gnn.data import load_history
    from rules.store import RuleStore
    from serve.enforcement import BlockList
    from serve.settings import Settings
    from serve.wiring import scoring_pipeline

    store = RuleStore(state / "rules")
    if store.live_version() is None:
        store.publish(DEMO_RULES, who="demo")
    settings = Settings(data_dir=state, alert_outbox=True)
    with scoring_pipeline(settings, models) as pipeline:
        _replay_over_http(pipeline, load_history(data).events, progress)
    outbox = state / "alerts" / "outbox.jsonl"
    n_alerts = sum(1 for _ in outbox.open()) if outbox.exists() else 0
    print(
        f"active blocks: {len(BlockList(state / 'blocks').active()):,}; alerts in {outbox}: "
        f"{n_alerts:,} (one per ring or account per 15 minutes)"
    )


def _replay_over_http(
    pipeline: Any, events: list[Any], progress: Callable[[str], None] | None
) -> None:
    """Warm the pipeline on the first 80% of ``events``, then replay the rest through the API."""
    import secrets
    import threading
    import urllib.request
    from datetime import UTC, datetime

    import uvicorn

    from ingest.events import encode_event
    from serve.api import create_app, server_app
    from serve.heap import settle_heap
    from serve.tokens import SigningKeys, issue

    keys = SigningKeys.parse("demo=" + secrets.token_urlsafe(40))  # this run only
    token = issue(keys, client="demo_gateway", scopes=["score"], ttl_s=3600, now=datetime.now(UTC))
    cut = int(len(events) * 0.8)
    # the first 80% is history: it builds the state, as the stream consumer's rebuild does,
    # without blocking or alerting on what happened weeks ago
    for k in range(0, cut, 2000):
        pipeline.warm(events[k : min(k + 2000, cut)])
    settle_heap()
    server = uvicorn.Server(
        uvicorn.Config(
            server_app(create_app(pipeline, keys)), host="127.0.0.1", port=0, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/score/batch"
    if progress:
        progress(f"scoring API on http://127.0.0.1:{port}; replaying {len(events) - cut:,} events")
    decisions: Counter[str] = Counter()
    blocked: list[dict[str, Any]] = []
    pending: list[bytes] = []
    started = time.perf_counter()
    sent = 0

    def flush() -> None:
        nonlocal sent
        if not pending:
            return
        body = b'{"transactions":[' + b",".join(pending) + b"]}"
        req = urllib.request.Request(url, data=body, method="POST")
        req.add_header("content-type", "application/json")
        req.add_header("authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - our own server
            for r in json.loads(resp.read())["results"]:
                decisions[r["decision"]] += 1
                if r["decision"] == "block" and len(blocked) < 5:
                    blocked.append(r)
        sent += len(pending)
        pending.clear()

    for event in events[cut:]:
        if event.event_type == "transaction":
            pending.append(encode_event(event))
            if len(pending) >= 500:
                flush()
        else:
            flush()
            pipeline.process([event])
    flush()
    elapsed = time.perf_counter() - started
    server.should_exit = True
    thread.join(10)
    print(
        f"\nscoring API: {sent:,} transactions over HTTP in {elapsed:.1f} s "
        f"({sent / max(elapsed, 1e-9):,.0f}/s with the stream's other events); decisions: "
        + ", ".join(f"{k} {v:,}" for k, v in decisions.most_common())
    )
    for r in blocked:
        why = r["reasons"][0] if r["reasons"] else r["decided_by"]
        print(f"  block {r['txn_id']} ({r['decided_by']}, {r['score']:.2f}): {why[:90]}")
