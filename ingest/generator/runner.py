"""The generation run: build the world, plant the rings, simulate the days, write everything.

Order of work (it matters for determinism, and each step draws from its own seeded stream):

1. build the honest population (:func:`ingest.generator.world.build_world`);
2. cast the fraud rings (:func:`ingest.generator.fraud.plan_rings`), number all accounts;
3. emit the rings' events into per-day buckets;
4. simulate the honest days one by one; after day ``d`` the UTC day ``d - 1`` is complete and
   is written out, sorted by time, through the source writers (:mod:`ingest.generator.sinks`);
5. write the wallet documents, the truth files, ``summary.json`` and ``sources.yaml``. The
   customers' protected attributes (``truth/customers.csv``, :mod:`ingest.generator.customers`)
   come from a stream of their own, so they leave every other file as it was.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ingest.generator.config import FraudConfig
from ingest.generator.customers import write_customers
from ingest.generator.emit import Emitter
from ingest.generator.fraud import Ring, describe, plan_rings
from ingest.generator.legit import Honest
from ingest.generator.sinks import (
    AuthSink,
    BankSink,
    CoreSink,
    GatewaySink,
    Sink,
    Times,
    Truth,
    WalletSink,
    _dumps_doc,
)
from ingest.generator.world import BANK_IDS, World, build_world
from ingest.typologies import TYPOLOGIES

DEFAULT_START = date(2026, 10, 1)
GATEWAY_IDS = ("gw_paynova", "gw_kassa", "gw_orbit")
_OUTPUTS = ("banks", "gateways", "nosql", "auth", "truth", "core_banking.db", "sources.yaml")


@dataclass(frozen=True, slots=True)
class GenerationReport:
    """What a generation run wrote.

    Args:
        out_dir: the output folder.
        seed: the seed used.
        days: simulated days.
        accounts: honest accounts requested (fraud rings add a few of their own).
        start: first simulated day (UTC).
        total_accounts: every account in ``truth/accounts.csv``.
        events_by_source: source name -> event type -> events written (each event once;
            re-deliveries and noise lines are counted apart).
        events_by_type: event type -> events, all sources together.
        transactions: transactions written (each id once), defective ones included.
        fraud_transactions: transactions labelled fraud.
        fraud_rate: ``fraud_transactions / transactions``.
        fraud_by_typology: fraud transactions per typology (every typology listed).
        rings_by_typology: rings planted per typology.
        fraud_events_by_typology: fraud-labelled logins, device and account events per typology.
        defects: damaged records per defect kind (re-deliveries not included).
        duplicates: transactions re-delivered verbatim in the bank streams.
        noise_lines: auth-log lines that are not events.
        files: files written.
        bytes: bytes written.
        elapsed_s: wall-clock seconds the run took.
    """

    out_dir: Path
    seed: int
    days: int
    accounts: int
    start: date
    total_accounts: int
    events_by_source: dict[str, dict[str, int]]
    events_by_type: dict[str, int]
    transactions: int
    fraud_transactions: int
    fraud_rate: float
    fraud_by_typology: dict[str, int]
    rings_by_typology: dict[str, int]
    fraud_events_by_typology: dict[str, int]
    defects: dict[str, int]
    duplicates: int
    noise_lines: int
    files: int
    bytes: int
    elapsed_s: float

    @property
    def events(self) -> int:
        """Events written, all sources and types together."""
        return sum(self.events_by_type.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        out = asdict(self)
        out["out_dir"] = str(self.out_dir)
        out["start"] = self.start.isoformat()
        out["events"] = self.events
        return out


def _streams(seed: int) -> tuple[list[np.random.Generator], list[random.Random]]:
    children = np.random.SeedSequence(seed).spawn(12)
    gens = [np.random.default_rng(c) for c in children]
    rnds = [random.Random(int(c.generate_state(1, dtype=np.uint64)[0])) for c in children]
    return gens, rnds


def _clear(out_dir: Path) -> None:
    for name in _OUTPUTS:
        p = out_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def generate(
    out_dir: Path,
    *,
    seed: int,
    days: int,
    accounts: int,
    start: date = DEFAULT_START,
    progress: Callable[[str], None] | None = None,
    fraud: FraudConfig | None = None,
    timer: Callable[[], float] = time.perf_counter,
) -> GenerationReport:
    """Generate a synthetic multi-source data set with planted fraud into ``out_dir``.

    The same seed and arguments give byte-identical files. Outputs of an earlier run in
    ``out_dir`` (the folders and files this function writes) are replaced; nothing else there
    is touched.

    Args:
        out_dir: folder to write into (created if missing).
        seed: random seed.
        days: number of days to simulate, from ``start``.
        accounts: number of honest accounts (persons, corporate cards and businesses).
        start: first simulated day, in UTC.
        progress: called with a short message at each stage and each simulated day.
        fraud: fraud knobs; by default :meth:`FraudConfig.for_accounts` of ``accounts``.
        timer: clock for ``elapsed_s`` (injected for tests).

    Returns:
        The :class:`GenerationReport` of what was written.

    Raises:
        ValueError: ``days`` < 1 or ``accounts`` < 100.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if accounts < 100:
        raise ValueError(f"accounts must be >= 100, got {accounts}")
    began = timer()
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir)
    gens, rnds = _streams(seed)
    cfg = fraud or FraudConfig.for_accounts(accounts)

    say(f"building {accounts} accounts")
    world = build_world(start=start, days=days, accounts=accounts, rnd=rnds[0], rng=gens[0])
    rings = plan_rings(world, cfg, rnds[1])
    world.assign_ids()
    say(f"planted {len(rings)} fraud rings")

    times = Times(start, world.t0, days)
    truth = Truth(out_dir / "truth")
    sinks: dict[str, Sink] = {}
    for i, bank in enumerate(BANK_IDS):
        sinks["bank:" + bank] = BankSink(bank, out_dir, times, truth, rnds[4 + i])
    for i, gw in enumerate(GATEWAY_IDS):
        sinks["gw:" + gw] = GatewaySink(gw, out_dir, times, truth, rnds[8 + i])
    sinks["core"] = CoreSink("core_banking", out_dir, times, truth, rnds[11])
    sinks["wallet"] = WalletSink("wallet_app", out_dir, times, truth, rnds[2], world)
    sinks["auth"] = AuthSink("auth_server", out_dir, times, truth, rnds[3])

    em = Emitter(world)
    for ring in rings:
        ring.emit(em, rnds[1])
    honest = Honest(world, em, gens[1], random.Random(rnds[1].getrandbits(64)))

    def flush(day: int) -> None:
        for ev in em.take(day):
            sinks[ev[2]].write(ev)
        for sink in sinks.values():
            sink.end_day(day)

    for d in range(days):
        honest.day(d)
        if d >= 1:
            flush(d - 1)
        say(f"day {times.date(d)} ({d + 1}/{days}): {em.seq} events so far")
    flush(days - 1)
    for sink in sinks.values():
        sink.close()
    truth.close()

    _write_accounts(out_dir / "truth" / "accounts.csv", world, rings)
    write_customers(out_dir / "truth" / "customers.csv", world, rings, seed)
    manifest = _manifest(sinks, seed=seed, days=days, accounts=accounts, start=start)
    (out_dir / "sources.yaml").write_text(manifest, encoding="utf-8")

    by_source: dict[str, dict[str, int]] = {}
    by_type: Counter[str] = Counter()
    duplicates = noise = 0
    for sink in sinks.values():
        counts = dict(sink.counts)
        duplicates += counts.pop("duplicate", 0)
        noise += counts.pop("noise", 0)
        by_source[sink.name] = dict(sorted(counts.items()))
        by_type.update(counts)
    fraud_by = {t: truth.fraud.get(t, 0) for t in TYPOLOGIES}
    n_fraud = sum(fraud_by.values())
    rings_by = {t: describe(rings).get(t, {}).get("rings", 0) for t in TYPOLOGIES}
    fraud_rate = round(n_fraud / max(1, truth.transactions), 6)
    fraud_events = {t: truth.fraud_events.get(t, 0) for t in TYPOLOGIES}
    defects = dict(sorted((k, v) for k, v in truth.defects.items() if k != "duplicate"))
    summary: dict[str, Any] = {
        "generator": "ringfence-synth/1",
        "seed": seed,
        "args": {"accounts": accounts, "days": days, "start": start.isoformat()},
        "accounts": len(world.accounts),
        "transactions": truth.transactions,
        "fraud_transactions": n_fraud,
        "fraud_rate": fraud_rate,
        "fraud_by_typology": fraud_by,
        "rings_by_typology": rings_by,
        "fraud_events_by_typology": fraud_events,
        "events_by_source": by_source,
        "events_by_type": dict(sorted(by_type.items())),
        "defects": defects,
        "duplicates": duplicates,
        "noise_lines": noise,
        "fraud_knobs": asdict(cfg),
    }
    (out_dir / "truth" / "summary.json").write_bytes(_dumps_doc(summary))

    files = [
        p for p in out_dir.rglob("*") if p.is_file() and p.relative_to(out_dir).parts[0] in _OUTPUTS
    ]
    report = GenerationReport(
        out_dir=out_dir,
        seed=seed,
        days=days,
        accounts=accounts,
        start=start,
        total_accounts=len(world.accounts),
        events_by_source=by_source,
        events_by_type=dict(sorted(by_type.items())),
        transactions=truth.transactions,
        fraud_transactions=n_fraud,
        fraud_rate=fraud_rate,
        fraud_by_typology=fraud_by,
        rings_by_typology=rings_by,
        fraud_events_by_typology=fraud_events,
        defects=defects,
        duplicates=duplicates,
        noise_lines=noise,
        files=len(files),
        bytes=sum(p.stat().st_size for p in files),
        elapsed_s=round(timer() - began, 3),
    )
    say(
        f"done: {report.events} events, {report.transactions} transactions, "
        f"fraud rate {report.fraud_rate:.4%}, {report.elapsed_s:.1f} s"
    )
    return report


def _write_accounts(path: Path, world: World, rings: list[Ring]) -> None:
    roles: dict[int, list[tuple[str, str, str]]] = {}
    for ring in rings:
        for acct, role in ring.members:
            roles.setdefault(acct.idx, []).append((ring.ring_id, role, ring.typology))
    rows = []
    for a in world.accounts:
        involved = roles.get(a.idx)
        if involved:
            rows += [(a.account_id, r, role, t) for r, role, t in involved]
        else:
            role = (
                "business"
                if a.kind == "business"
                else "corporate"
                if a.kind == "corporate"
                else "customer"
            )
            rows.append((a.account_id, "", role, ""))
    rows.sort()
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("account_id,ring_id,role,typology\n")
        for row in rows:
            fh.write(",".join(row) + "\n")


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated sub-mappings out in full (no ``&id001`` anchors) for readability."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _manifest(sinks: dict[str, Sink], *, seed: int, days: int, accounts: int, start: date) -> str:
    doc = {"version": 1, "sources": [s.manifest() for s in sinks.values()]}
    head = (
        f"# Written by the Ringfence synthetic data generator "
        f"(seed {seed}, {accounts} accounts, {days} days from {start.isoformat()}).\n"
        "# Grammar: docs/sources.md. Ground truth for evaluation is under truth/.\n"
    )
    body = yaml.dump(
        doc,
        Dumper=_PlainDumper,
        sort_keys=False,
        allow_unicode=True,
        width=1000,
        default_flow_style=None,
    )
    return head + body
