"""The ``ringfence`` command line.

Every command takes ``--data-dir`` (default ``$RINGFENCE_DATA_DIR`` or ``./var``): all embedded
state lives there, and two data directories never see each other's state.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ingest.errors import RingfenceError
from serve.settings import Settings

EXIT_USAGE = 2
EXIT_FAILED = 1


class UsageError(RingfenceError):
    """A command-line argument is wrong."""


def _eprint(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace) -> Settings:
    if args.data_dir is not None:
        return Settings(data_dir=args.data_dir)
    return Settings()


def cmd_generate(args: argparse.Namespace) -> int:
    """Write synthetic multi-source data with labelled fraud."""
    from ingest.generator import PROFILES, generate

    profile = dict(PROFILES[args.profile])
    for key in ("days", "accounts"):
        if getattr(args, key) is not None:
            profile[key] = getattr(args, key)
    start = date.fromisoformat(args.start) if args.start else profile.get("start")
    kwargs: dict[str, Any] = {
        "seed": args.seed,
        "days": profile["days"],
        "accounts": profile["accounts"],
    }
    if start is not None:
        kwargs["start"] = start
    report = generate(Path(args.out), progress=None if args.quiet else _eprint, **kwargs)
    print(json.dumps(_as_dict(report), indent=2, default=str))
    return 0


def _as_dict(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    return obj


def run_ingest(
    settings: Settings, path: Path, *, expectations: bool, quiet: bool
) -> dict[str, Any]:
    """Ingest ``path`` into the data directory; returns the summary as a dict."""
    from ingest.pipeline import ingest
    from ingest.sources import autodetect
    from serve.wiring import ingest_runtime

    specs = autodetect(path)
    with ingest_runtime(settings) as rt:
        summary = ingest(
            specs,
            bus=rt.bus,
            dead_letters=rt.dead_letters,
            seen=rt.seen,
            validator=rt.validator,
            batch_size=settings.ingest_batch_size,
            check_expectations=expectations,
            progress=None if quiet else _eprint,
        )
        result = summary.to_dict()
        result["data_dir"] = str(settings.data_dir)
        result["dead_letter_store"] = str(rt.dead_letters.path)
    return result


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest a folder (with sources.yaml) or a single JSONL/CSV file."""
    result = run_ingest(
        _settings(args), Path(args.path), expectations=not args.no_expectations, quiet=args.quiet
    )
    print(json.dumps(result, indent=2))
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    """Write the JSON Schema files and refresh the field tables in docs/events.md."""
    from ingest.schema import refresh_doc, write_schemas

    for path in write_schemas(Path(args.out)):
        print(path)
    doc = Path(args.doc)
    if doc.exists():
        doc.write_text(refresh_doc(doc.read_text(encoding="utf-8")), encoding="utf-8")
        print(doc)
    return 0


def cmd_deadletter(args: argparse.Namespace) -> int:
    """Print dead letters (JSON lines), optionally filtered by source or field."""
    from ingest.deadletter import read_dead_letters

    shown = 0
    for entry in read_dead_letters(_settings(args).path("deadletter")):
        if args.source and entry.source != args.source:
            continue
        if args.field and entry.field != args.field:
            continue
        print(json.dumps({k: getattr(entry, k) for k in entry.__slots__}, default=str))
        shown += 1
        if args.limit and shown >= args.limit:
            break
    return 0


def follow_graph(settings: Settings, *, quiet: bool) -> Any:
    """Bring the graph and the rings up to date with the bus; returns the follower."""
    from serve.wiring import graph_follower

    follower = graph_follower(settings)
    applied = follower.catch_up(progress=None if quiet else _eprint)
    if not quiet and applied:
        _eprint(f"graph: applied {applied:,} new events (offset {follower.offset:,})")
    return follower


def cmd_rings(args: argparse.Namespace) -> int:
    """Find and score fraud rings in everything ingested so far."""
    settings = _settings(args)
    follower = follow_graph(settings, quiet=args.quiet)
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise UsageError(f"--since: not an ISO 8601 date or time: {args.since!r}") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    rings = follower.detector.rings(
        min_size=args.min_size,
        since=since.timestamp() if since is not None else None,
        typology=args.typology,
    )
    if args.evaluate:
        from graph.evaluate import evaluate

        report = evaluate(follower.detector.rings(min_size=2), Path(args.evaluate))
        if args.format == "table":
            print(report.table())
        else:
            print(json.dumps(_as_dict(report), indent=2, default=str))
        return 0
    if args.format == "table":
        print(f"{'ring':<24}{'typology':<22}{'accounts':>9}{'entities':>9}{'risk':>7}  last seen")
        for ring in rings:
            last = datetime.fromtimestamp(ring.last_seen, UTC).isoformat(timespec="minutes")
            print(
                f"{ring.id:<24}{ring.typology:<22}{len(ring.accounts):>9}"
                f"{len(ring.entities):>9}{ring.risk:>7.2f}  {last}"
            )
        print(f"{len(rings)} rings; {follower.events:,} events in the graph")
    else:
        out = {
            "rings": [r.to_dict() for r in rings],
            "count": len(rings),
            "events": follower.events,
            "bus_offset": follower.offset,
        }
        print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate data (if not there yet), ingest it, and print the reconciled summary."""
    from ingest.generator import PROFILES, generate

    settings = _settings(args)
    data = settings.path("demo-data", f"{args.profile}-seed{args.seed}")
    t0 = time.perf_counter()
    if not (data / "sources.yaml").exists():
        _eprint(f"generating the {args.profile} data set (seed {args.seed}) into {data} ...")
        profile = PROFILES[args.profile]
        generate(
            data,
            seed=args.seed,
            days=profile["days"],
            accounts=profile["accounts"],
            progress=_eprint,
        )
    t1 = time.perf_counter()
    _eprint(f"ingesting {data} ...")
    result = run_ingest(settings, data, expectations=True, quiet=args.quiet)
    t2 = time.perf_counter()
    print(json.dumps(result, indent=2))
    _print_table(result)
    _eprint("updating the entity graph and its rings ...")
    follower = follow_graph(settings, quiet=args.quiet)
    t3 = time.perf_counter()
    _print_rings(follower, data / "truth")
    timings = f"generate {t1 - t0:.1f} s, ingest {t2 - t1:.1f} s, graph and rings {t3 - t2:.1f} s"
    models = settings.path("models")
    if not args.no_model:
        from serve.cli_models import demo_model, demo_service

        _eprint("training and evaluating the fraud model ...")
        demo_model(data, models, progress=None if args.quiet else _eprint)
        t4 = time.perf_counter()
        timings += f", model {t4 - t3:.1f} s"
        _eprint("starting the scoring API and replaying the stream through it ...")
        demo_service(data, models, settings.data_dir, progress=None if args.quiet else _eprint)
        timings += f", service {time.perf_counter() - t4:.1f} s"
    print(
        f"\n{timings}"
        f"\nnext: ringfence rings --data-dir {settings.data_dir} --format table"
        f"\n      ringfence deadletter --data-dir {settings.data_dir} --limit 5"
        f"\n      ringfence evaluate --model {models} --data {data}"
    )
    return 0


def _print_rings(follower: Any, truth: Path) -> None:
    from graph.evaluate import evaluate

    rings = follower.detector.rings(min_size=2)
    counts = follower.store.counts()
    print(
        f"\nentity graph: {counts['nodes']:,} nodes, {counts['edges']:,} edges; "
        f"{len(rings)} rings (riskiest first):"
    )
    print(f"  {'ring':<20}{'typology':<22}{'accounts':>9}{'risk':>7}  why")
    for ring in rings[:10]:
        why = ring.reasons[0] if ring.reasons else ""
        print(
            f"  {ring.id:<18}{ring.typology:<22}{len(ring.accounts):>9}{ring.risk:>7.2f}"
            f"  {why[:70]}"
        )
    if truth.exists():
        print("\nring membership against the generator's truth:")
        print(evaluate(rings, truth).table())


def _print_table(result: dict[str, Any]) -> None:
    cols = ("received", "accepted", "rejected", "duplicates", "reconciled")
    print(f"\n{'source':<22}" + "".join(f"{c:>12}" for c in cols))
    rows = [*result["sources"].items(), ("TOTAL", result["totals"])]
    for name, c in rows:
        print(f"{name:<22}" + "".join(f"{c[k]!s:>12}" for k in cols))
    failed = result.get("expectations_failed", [])
    print(f"\nexpectations failed: {len(failed)}")
    for e in failed[:10]:
        print(f"  {e['source']} {e['event_type']}: {e['name']} ({e['detail']})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ringfence``."""
    parser = argparse.ArgumentParser(prog="ringfence", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="state folder (default $RINGFENCE_DATA_DIR or ./var)",
        )
        p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
        p.set_defaults(func=func)
        return p

    p = add("generate", cmd_generate, "Write synthetic multi-source data with labelled fraud.")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--profile", choices=("small", "default"), default="default")
    p.add_argument("--days", type=int, default=None, help="days of activity (profile default)")
    p.add_argument("--accounts", type=int, default=None, help="customers (profile default)")
    p.add_argument("--start", default=None, help="first day, YYYY-MM-DD")
    p.add_argument("--out", required=True, help="output folder")

    p = add("ingest", cmd_ingest, "Ingest a folder with sources.yaml, or one JSONL/CSV file.")
    p.add_argument("path")
    p.add_argument("--no-expectations", action="store_true", help="skip data expectations")

    p = add("schemas", cmd_schemas, "Write JSON Schemas and refresh docs/events.md tables.")
    p.add_argument("--out", default="docs/schemas")
    p.add_argument("--doc", default="docs/events.md")

    p = add("deadletter", cmd_deadletter, "Show rejected records and why.")
    p.add_argument("--source", default=None)
    p.add_argument("--field", default=None)
    p.add_argument("--limit", type=int, default=0)

    p = add("rings", cmd_rings, "Find and score fraud rings in everything ingested so far.")
    p.add_argument("--min-size", type=int, default=2, help="fewest member accounts")
    p.add_argument("--since", default=None, help="rings active since this date/time (ISO 8601)")
    p.add_argument("--typology", default=None, help="only rings that most resemble this typology")
    p.add_argument("--format", choices=("json", "table"), default="json")
    p.add_argument(
        "--evaluate",
        default=None,
        metavar="TRUTH_DIR",
        help="score ring membership against a generator's truth/ folder",
    )

    from serve import cli_models, cli_rules

    cli_models.register(add)
    cli_rules.register(add)

    p = add("demo", cmd_demo, "Generate, ingest and summarise, on embedded defaults.")
    p.add_argument("--profile", choices=("small", "default"), default="default")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-model", action="store_true", help="skip training the fraud model")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ringfence`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        _eprint(f"ringfence {args.command}: error: {exc}")
        return EXIT_USAGE
    except RingfenceError as exc:
        _eprint(f"ringfence {args.command}: error: {exc}")
        return EXIT_FAILED
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
