"""The ``ringfence rules`` command: backtest, publish, rollback, shadow, history, shadow-report.

The rule-set store lives in ``<data-dir>/rules`` (see ``rules.store``). Each action prints JSON
on stdout (``shadow-report`` a table, or JSON with ``--json``); bad arguments, unknown versions
and invalid rule sets exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rules.errors import RuleSetError
from rules.store import RuleStore, RuleStoreError
from serve.cli import UsageError
from serve.cli_models import print_json as _print_json

ACTIONS = ("backtest", "publish", "rollback", "shadow", "history", "shadow-report")


def _store(args: argparse.Namespace) -> RuleStore:
    from serve.cli import _settings

    return RuleStore(_settings(args).path("rules"))


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise UsageError(f"rules {args.action}: needs {', '.join(missing)}")


def _target(args: argparse.Namespace) -> str:
    if args.target is None:
        what = "FILE" if args.action == "publish" else "VERSION"
        raise UsageError(f"rules {args.action}: needs {what}")
    return str(args.target)


def _read(path: str, option: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{option}: cannot read {path}: {exc}") from None


def _parse(path: str, option: str) -> Any:
    from rules.ruleset import ruleset_from_yaml

    try:
        return ruleset_from_yaml(_read(path, option))
    except RuleSetError as exc:
        raise UsageError(f"{option}: {path}: {exc}") from None


def _backtest(args: argparse.Namespace) -> dict[str, Any]:
    from gnn import registry
    from gnn.data import load_history
    from rules.backtest import backtest
    from serve.pipeline import ScoringPipeline

    _need(args, "ruleset", "data", "model")
    candidate = _parse(args.ruleset, "--ruleset")
    live = _parse(args.live, "--live") if args.live is not None else None
    model, manifest = registry.load(args.model)
    progress: Callable[[str], None] | None = (
        None if args.quiet else lambda line: print(line, file=sys.stderr, flush=True)
    )
    history = load_history(args.data, progress=progress)
    report = backtest(
        lambda ruleset: ScoringPipeline(model, manifest, ruleset=ruleset),
        history.events,
        history.labels,
        candidate,
        live,
    )
    return report.to_dict()


def _shadow_report(args: argparse.Namespace) -> dict[str, Any]:
    from serve.cli import _settings
    from serve.journal import shadow_report

    settings = _settings(args)
    root = Path(args.data) if args.data is not None else settings.data_dir
    if not root.is_dir():
        raise UsageError(f"--data: {root} is not a folder")
    journal = root / "journal"
    stream_log = root / "decisions" / "decisions.jsonl"
    report = shadow_report(journal, stream_log)
    report["journal"] = str(journal) if journal.is_dir() else None
    report["stream_log"] = str(stream_log) if stream_log.is_file() else None
    return report


def _print_shadow_table(report: dict[str, Any]) -> None:
    src = report["sources"]
    print(
        f"decisions: {report['decisions']:,} (journal {src['journal']:,}, "
        f"stream {src['stream']:,}); with a shadow decision: {report['compared']:,}"
    )
    versions = ", ".join(f"{v} ({n:,})" for v, n in report["live_versions"].items()) or "none"
    print(f"live rule sets: {versions}")
    versions = ", ".join(f"{v} ({n:,})" for v, n in report["shadow_versions"].items()) or "none"
    print(f"shadow rule sets: {versions}")
    if not report["compared"]:
        print("no shadow decisions yet (set one with `ringfence rules shadow VERSION`)")
        return
    print(f"\n{'live':<10}{'shadow':<10}{'count':>10}{'share':>8}")
    for p in report["pairs"]:
        mark = "" if p["live"] == p["shadow"] else "  *"
        share = p["count"] / report["compared"]
        print(f"{p['live']:<10}{p['shadow']:<10}{p['count']:>10,}{share:>8.1%}{mark}")
    share = report["differ_share"]
    print(f"\ndiffer: {report['differ']:,} of {report['compared']:,} ({share:.2%})")
    for d in report["first_differing"]:
        print(f"  {d['txn_id']}: live {d['live']}, shadow {d['shadow']} ({d['source']})")


def cmd_rules(args: argparse.Namespace) -> int:
    """Backtest, publish, roll back or shadow rule sets, or show the audit history."""
    try:
        if args.action == "backtest":
            _print_json(_backtest(args))
            return 0
        if args.action == "shadow-report":
            report = _shadow_report(args)
            if args.json:
                _print_json(report)
            else:
                _print_shadow_table(report)
            return 0
        store = _store(args)
        if args.action == "history":
            _print_json(
                {
                    "live": store.live_version(),
                    "shadow": store.shadow_version(),
                    "versions": store.versions(),
                    "history": [entry.to_dict() for entry in store.history()],
                }
            )
            return 0
        _need(args, "who")
        target = _target(args)
        if args.action == "publish":
            try:
                entry = store.publish(_read(target, "FILE"), args.who)
            except RuleSetError as exc:
                raise UsageError(f"{target}: {exc}") from None
        elif args.action == "rollback":
            entry = store.rollback(target, args.who)
        else:
            entry = store.set_shadow(None if target.lower() == "none" else target, args.who)
    except RuleStoreError as exc:
        raise UsageError(str(exc)) from None
    _print_json(entry.to_dict())
    return 0


def register(add: Callable[[str, Any, str], argparse.ArgumentParser]) -> None:
    """Add the ``rules`` command to the parser through ``serve.cli``'s ``add``."""
    p = add(
        "rules",
        cmd_rules,
        "Backtest, publish, roll back and shadow rule sets; audit history; compare the shadow.",
    )
    p.add_argument("action", choices=ACTIONS)
    p.add_argument(
        "target",
        nargs="?",
        default=None,
        help="publish: the rule set FILE; rollback: a VERSION; shadow: a VERSION or 'none'",
    )
    p.add_argument("--who", default=None, help="who makes the change (publish/rollback/shadow)")
    p.add_argument("--ruleset", default=None, help="backtest: the candidate rule set file")
    p.add_argument("--live", default=None, help="backtest: the live rule set file to compare to")
    p.add_argument(
        "--data",
        default=None,
        help="backtest: a labelled data folder; shadow-report: the data directory whose "
        "journal/ and decisions/ are read (default: --data-dir)",
    )
    p.add_argument("--model", default=None, help="backtest: a model version or registry folder")
    p.add_argument("--json", action="store_true", help="shadow-report: JSON instead of a table")
