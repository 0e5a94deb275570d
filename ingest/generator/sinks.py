"""Writers, one per source, and the truth files.

Each writer turns canonical events into its source's own format and declares, in
``manifest()``, the field map that turns them back (the grammar of ``docs/sources.md``).

=================  =========  =======================================================
source             format     files
=================  =========  =======================================================
bank_<name>        jsonl      ``banks/<bank>/events-YYYY-MM-DD.jsonl`` (canonical)
gw_paynova         csv        ``gateways/gw_paynova/settlement_YYYYMMDD.csv``
gw_kassa           csv        ``gateways/gw_kassa/batch-YYYY-MM-DD.csv`` (``;``)
gw_orbit           csv        ``gateways/gw_orbit/orbit-YYYYMMDD.csv`` (tab)
core_banking       sqlite     ``core_banking.db``, table ``transactions``
wallet_app         documents  ``nosql/customers/<customer_id>.json``
auth_server        authlog    ``auth/auth-YYYY-MM-DD.log``
=================  =========  =======================================================

Every writer may damage a record (about 0.1%, see :class:`Defects`); bank streams also
re-deliver about 0.2% of their transactions verbatim. Each damaged or repeated record is
written to ``truth/defects.csv`` with the location ingest will report for it.
"""

from __future__ import annotations

import csv
import io
import random
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, ClassVar
from zoneinfo import ZoneInfo

from ingest.generator.emit import Event, Label
from ingest.generator.world import World
from ingest.reference import CURRENCY_EXPONENTS

try:  # orjson is a runtime requirement; json keeps the generator usable without it
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _dumps_doc(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n"
except ImportError:  # pragma: no cover
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()

    def _dumps_doc(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False, indent=2).encode() + b"\n"


DEFECT_RATE = 0.001
DUPLICATE_RATE = 0.002
BAD_IP = "312.45.0.17"
_MASK48 = (1 << 48) - 1
_EVENT_PREFIX = {"login": "lgn_", "device_event": "dve_", "account_event": "ace_"}


def hex12(seq: int) -> str:
    """A 12-hex-digit id derived from a sequence number (a bijection, so ids never collide)."""
    return f"{(seq * 0x9E3779B97F4A7C15) & _MASK48:012x}"


class Truth:
    """The truth files a test or a model evaluation reconciles against.

    Args:
        root: the ``truth`` folder.
    """

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._txn = (root / "transactions.csv").open("w", encoding="utf-8", newline="")
        self._txn.write("txn_id,is_fraud,typology,ring_id\n")
        self._events = (root / "events.csv").open("w", encoding="utf-8", newline="")
        self._events.write("event_id,event_type,typology,ring_id\n")
        self._defects = (root / "defects.csv").open("w", encoding="utf-8", newline="")
        self._defects.write("source,path,location,record_id,event_type,kind\n")
        self.transactions = 0
        self.fraud = Counter[str]()
        self.defects = Counter[str]()
        self.fraud_events = Counter[str]()

    def txn(self, txn_id: str, label: Label) -> None:
        """Record one transaction id (once, even when the source repeats it)."""
        self.transactions += 1
        if label is None:
            self._txn.write(f"{txn_id},0,,\n")
        else:
            self.fraud[label[0]] += 1
            self._txn.write(f"{txn_id},1,{label[0]},{label[1]}\n")

    def event(self, event_id: str, event_type: str, label: Label) -> None:
        """Record a fraud-labelled login, device or account event."""
        if label is not None:
            self.fraud_events[label[0]] += 1
            self._events.write(f"{event_id},{event_type},{label[0]},{label[1]}\n")

    def defect(
        self, source: str, path: str, location: str, record_id: str, event_type: str, kind: str
    ) -> None:
        """Record a damaged or re-delivered record and where ingest will find it."""
        self.defects[kind] += 1
        self._defects.write(f"{source},{path},{location},{record_id},{event_type},{kind}\n")

    def close(self) -> None:
        """Close the streaming truth files."""
        for fh in (self._txn, self._events, self._defects):
            fh.close()


class Times:
    """Fast timestamp formatting for the window (UTC epoch seconds in, strings out)."""

    def __init__(self, start: date, t0: int, days: int) -> None:
        self.t0 = t0
        self.dates = [(start + timedelta(days=d)).isoformat() for d in range(-2, days + 3)]
        self._zones: dict[str, ZoneInfo] = {}

    def day(self, ts: int) -> int:
        """Window day index of ``ts``."""
        return (ts - self.t0) // 86400

    def date(self, day: int) -> str:
        """``YYYY-MM-DD`` of window day ``day``."""
        return self.dates[day + 2]

    def z(self, ts: int) -> str:
        """RFC 3339 in UTC with ``Z``: ``2026-10-01T07:12:33Z``."""
        d, s = divmod(ts - self.t0, 86400)
        return f"{self.dates[d + 2]}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z"

    def z_ms(self, ts: int, ms: int) -> str:
        """RFC 3339 in UTC with milliseconds: ``2026-10-01T07:12:33.512Z``."""
        d, s = divmod(ts - self.t0, 86400)
        return f"{self.dates[d + 2]}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{ms:03d}Z"

    def plain(self, ts: int) -> str:
        """Naive ``YYYY-MM-DD HH:MM:SS`` in UTC (core banking)."""
        d, s = divmod(ts - self.t0, 86400)
        return f"{self.dates[d + 2]} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"

    def zoned(self, ts: int, tz: str, fmt: str | None = None) -> str:
        """Local time in ``tz``: ISO with its offset, or ``strftime(fmt)`` (no offset)."""
        zone = self._zones.get(tz)
        if zone is None:
            zone = self._zones[tz] = ZoneInfo(tz)
        local = datetime.fromtimestamp(ts, zone)
        return local.strftime(fmt) if fmt else local.isoformat()

    def compact(self, ts: int) -> str:
        """``YYYYMMDDHHMMSS`` in UTC."""
        d, s = divmod(ts - self.t0, 86400)
        return f"{self.dates[d + 2].replace('-', '')}{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}"


class Defects:
    """Decides which records to damage, from its own seeded stream.

    Args:
        rnd: the random source (one per writer, so writers do not disturb each other).
        rate: probability that a record is damaged.
    """

    def __init__(self, rnd: random.Random, rate: float = DEFECT_RATE) -> None:
        self.rnd = rnd
        self.rate = rate

    def hit(self) -> bool:
        """Whether to damage the next record."""
        return self.rnd.random() < self.rate

    def pick(self, kinds: list[str]) -> str | None:
        """One of ``kinds``, or None when the list is empty."""
        return self.rnd.choice(kinds) if kinds else None


def _fmt_amount(amount: float, currency: str) -> str:
    exp = CURRENCY_EXPONENTS.get(currency, 2)
    return f"{amount:.{exp}f}"


def _minor(amount: float, currency: str) -> int:
    exp = CURRENCY_EXPONENTS.get(currency, 2)
    return round(amount * 10**exp)


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if v is not None and k[0] != "_"}


class Sink:
    """Base of the writers: counting, per-day files, defects.

    Args:
        name: the source's name in the manifest.
        root: the output folder.
        times: timestamp formatting.
        truth: the truth files.
        rnd: this writer's random stream.
    """

    def __init__(
        self, name: str, root: Path, times: Times, truth: Truth, rnd: random.Random
    ) -> None:
        self.name = name
        self.root = root
        self.times = times
        self.truth = truth
        self.defects = Defects(rnd)
        self.rnd = rnd
        self.counts = Counter[str]()
        self.files: list[Path] = []

    def write(self, ev: Event) -> None:
        """Write one event."""
        raise NotImplementedError

    def end_day(self, day: int) -> None:
        """Called after the last event of window day ``day``."""

    def close(self) -> None:
        """Finish writing."""

    def manifest(self) -> dict[str, Any]:
        """This source's manifest entry."""
        raise NotImplementedError

    def _note(self, rec: dict[str, Any], record_id: str, label: Label) -> None:
        et = rec["event_type"]
        self.counts[et] += 1
        if et == "transaction":
            self.truth.txn(record_id, label)
        else:
            self.truth.event(record_id, et, label)


# -- bank streams ---------------------------------------------------------------------------


class BankSink(Sink):
    """A bank's canonical JSON-lines stream, one file per UTC day.

    The banks differ in how they write times (``Z``, ``+00:00`` with milliseconds, or local time
    with its offset), amounts (numbers or decimal strings), transaction ids, and the one or two
    fields of their own they add.
    """

    STYLES: ClassVar[dict[str, dict[str, Any]]] = {
        "bank_alba": {"ts": "z", "amount": "number"},
        "bank_rhein": {"ts": "Europe/Berlin", "amount": "string"},
        "bank_meridian": {"ts": "ms", "amount": "number"},
        "bank_liberty": {"ts": "America/New_York", "amount": "string"},
    }

    def __init__(
        self, name: str, root: Path, times: Times, truth: Truth, rnd: random.Random
    ) -> None:
        super().__init__(name, root, times, truth, rnd)
        self.style = self.STYLES[name]
        self.folder = root / "banks" / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fh: BinaryIO | None = None
        self._day = -1
        self._line = 0
        self._pending: list[list[Any]] = []
        self._fname = ""
        ts_style: str = self.style["ts"]

        def fmt_ts(ts: int, seq: int) -> str:
            if ts_style == "z":
                return times.z(ts)
            if ts_style == "ms":
                return times.z_ms(ts, seq * 7919 % 1000).replace("Z", "+00:00")
            return times.zoned(ts, ts_style)

        self._ts: Callable[[int, int], str] = fmt_ts
        self._string_amounts = self.style["amount"] == "string"

    def _txn_id(self, seq: int, ts: int) -> str:
        n = self.name
        if n == "bank_alba":
            return f"ALB{self.times.date(self.times.day(ts))[2:].replace('-', '')}{seq:09d}"
        if n == "bank_rhein":
            return f"RH-{hex12(seq).upper()}"
        if n == "bank_meridian":
            return f"MER{seq:012d}"
        return f"LB-{self.times.date(self.times.day(ts)).replace('-', '')}-{seq:09d}"

    def _extras(self, out: dict[str, Any], seq: int) -> None:
        n = self.name
        et = out["event_type"]
        if n == "bank_alba":
            if et in ("transaction", "account_event"):
                k = int(out["account_id"][4:]) if out["account_id"][4:].isdigit() else seq
                out["branch_code"] = f"{20 + k % 70:02d}-{k * 37 % 100:02d}-{k * 91 % 100:02d}"
        elif et != "transaction":
            return
        elif n == "bank_rhein":
            if out.get("status") == "approved":
                out["auth_code"] = f"{(seq * 2654435761) & 0xFFFFFF:06X}"
            if "merchant_id" in out:
                out["terminal_id"] = "T" + out["merchant_id"][-6:] + "01"
        elif n == "bank_meridian":
            if out["channel"] == "card_present":
                r = seq * 11 % 100
                out["entry_mode"] = "contactless" if r < 70 else "chip" if r < 95 else "magstripe"
        elif n == "bank_liberty":
            if out.get("status") == "approved":
                out["auth_code"] = f"{(seq * 40503) % 1000000:06d}"
            out["network"] = (
                "VISA" if int(out.get("card_id", "tok_0")[-1], 16) % 2 else "MASTERCARD"
            )

    def _open(self, day: int) -> None:
        self._close_file()
        self._day = day
        self._fname = f"events-{self.times.date(day)}.jsonl"
        path = self.folder / self._fname
        self._fh = path.open("wb", buffering=1 << 20)
        self.files.append(path)
        self._line = 0

    def _close_file(self) -> None:
        if self._fh is not None:
            for _, line, txn_id in self._pending:
                self._emit_dup(line, txn_id)
            self._pending = []
            self._fh.close()
            self._fh = None

    def _emit_dup(self, line: bytes, txn_id: str) -> None:
        assert self._fh is not None
        self._fh.write(line)
        self._line += 1
        self.counts["duplicate"] += 1
        self.truth.defect(
            self.name,
            f"banks/{self.name}/{self._fname}",
            f"{self._fname}:{self._line}",
            txn_id,
            "transaction",
            "duplicate",
        )

    def write(self, ev: Event) -> None:
        """Write one event in this source's format."""
        ts, seq, _, rec, label = ev
        day = (ts - self.times.t0) // 86400
        if day != self._day:
            self._open(day)
        et = rec["event_type"]
        if et == "transaction":
            rid = rec["txn_id"] = self._txn_id(seq, ts)
            if self._string_amounts:
                rec["amount"] = _fmt_amount(rec["amount"], rec["currency"])
        else:
            rid = rec["event_id"] = f"{_EVENT_PREFIX[et]}{hex12(seq)}"
        rec["timestamp"] = self._ts(ts, seq)
        out = _clean(rec)
        self._extras(out, seq)
        kind = None
        if self.defects.hit():
            kind = self._damage(out)
        line = _dumps(out)
        if kind == "truncated_json":
            line = line[: len(line) // 2]
        line += b"\n"
        assert self._fh is not None
        self._fh.write(line)
        self._line += 1
        self._note(rec, rid, label)
        if kind is not None:
            self.truth.defect(
                self.name,
                f"banks/{self.name}/{self._fname}",
                f"{self._fname}:{self._line}",
                rid,
                et,
                kind,
            )
        if self._pending:
            due = []
            for p in self._pending:
                p[0] -= 1
                if p[0] <= 0:
                    due.append(p)
            if due:
                self._pending = [p for p in self._pending if p[0] > 0]
                for _, dline, dtid in due:
                    self._emit_dup(dline, dtid)
        if et == "transaction" and kind is None and self.rnd.random() < DUPLICATE_RATE:
            self._pending.append([self.rnd.randint(1, 400), line, rid])

    def _damage(self, out: dict[str, Any]) -> str | None:
        et = out["event_type"]
        kinds = ["naive_timestamp", "truncated_json"]
        if et == "transaction":
            kinds += ["missing_currency", "negative_amount", "unknown_country"]
        if "ip" in out:
            kinds.append("invalid_ip")
        if "geo" in out:
            kinds.append("lat_out_of_range")
        kind = self.defects.pick(kinds)
        if kind == "naive_timestamp":
            ts = out["timestamp"]
            out["timestamp"] = ts[:-1] if ts.endswith("Z") else ts[:-6]
        elif kind == "missing_currency":
            del out["currency"]
        elif kind == "negative_amount":
            amt = out["amount"]
            out["amount"] = "-" + amt if isinstance(amt, str) else -amt
        elif kind == "unknown_country":
            if "merchant_country" in out:
                out["merchant_country"] = "UK"
            else:
                out["geo"] = {**out.get("geo", {"lat": 0.0, "lon": 0.0}), "country": "UK"}
        elif kind == "invalid_ip":
            out["ip"] = BAD_IP
        elif kind == "lat_out_of_range":
            out["geo"] = {**out["geo"], "lat": 91.5 + self.rnd.random() * 8}
        return kind

    def close(self) -> None:
        """Flush and close this source's files."""
        self._close_file()

    def manifest(self) -> dict[str, Any]:
        """This source's manifest entry (``docs/sources.md`` grammar)."""
        return {"name": self.name, "format": "jsonl", "path": f"banks/{self.name}/*.jsonl"}


# -- payment gateways -------------------------------------------------------------------------


class GatewaySink(Sink):
    """A payment gateway's daily settlement file: its own columns, dates, codes and units."""

    SPECS: ClassVar[dict[str, dict[str, Any]]] = {
        "gw_paynova": {
            "file": "settlement_{compact}.csv",
            "delimiter": ",",
            "columns": [
                "TransactionRef",
                "TxnDate",
                "Type",
                "Amount",
                "Currency",
                "AcctRef",
                "CardToken",
                "MerchantId",
                "MerchantName",
                "MCC",
                "MerchantCountry",
                "CustomerEmail",
                "CustomerPhone",
                "BillingAddress",
                "ClientIP",
                "DeviceFingerprint",
                "UserAgent",
                "Result",
                "RiskScore",
                "BatchId",
            ],
        },
        "gw_kassa": {
            "file": "batch-{date}.csv",
            "delimiter": ";",
            "columns": [
                "payment_id",
                "created_ms",
                "amount_minor",
                "ccy",
                "channel_code",
                "customer_ref",
                "card_ref",
                "merchant_ref",
                "mcc",
                "merchant_cc",
                "email",
                "msisdn",
                "bill_to",
                "ip_addr",
                "device_fp",
                "ua",
                "outcome",
                "three_ds",
                "acquirer",
            ],
        },
        "gw_orbit": {
            "file": "orbit-{compact}.csv",
            "delimiter": "\t",
            "columns": [
                "ref",
                "ts",
                "amt",
                "cur",
                "src",
                "acct",
                "token",
                "mid",
                "mcc",
                "mctry",
                "mail",
                "tel",
                "addr",
                "ipaddr",
                "devid",
                "agent",
                "resp",
                "arn",
                "eci",
            ],
        },
    }

    def __init__(
        self, name: str, root: Path, times: Times, truth: Truth, rnd: random.Random
    ) -> None:
        super().__init__(name, root, times, truth, rnd)
        self.spec = self.SPECS[name]
        self.folder = root / "gateways" / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fh: io.TextIOWrapper | None = None
        self._writer: Any = None
        self._day = -1
        self._row = 0
        self._fname = ""

    def _open(self, day: int) -> None:
        self._close_file()
        self._day = day
        d = self.times.date(day)
        self._fname = self.spec["file"].format(date=d, compact=d.replace("-", ""))
        path = self.folder / self._fname
        self._fh = path.open("w", encoding="utf-8", newline="", buffering=1 << 20)
        self._writer = csv.writer(self._fh, delimiter=self.spec["delimiter"], lineterminator="\n")
        self._writer.writerow(self.spec["columns"])
        self.files.append(path)
        self._row = 0

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _row_for(self, rec: dict[str, Any], ts: int, seq: int) -> tuple[str, list[Any]]:
        g = self.name
        cur = rec["currency"]
        status = rec["status"]
        mcc = rec["merchant_category"]
        s = lambda v: "" if v is None else v  # noqa: E731
        if g == "gw_paynova":
            tid = f"PNV-{self.times.date(self.times.day(ts)).replace('-', '')}-{seq:09d}"
            typ = "RECUR" if mcc == "4899" else ("MOTO" if seq % 97 == 0 else "ECOM")
            res = {"approved": "A", "declined": "D", "reversed": "R"}[status]
            return tid, [
                tid,
                self.times.zoned(ts, "Europe/London", "%d/%m/%Y %H:%M:%S"),
                typ,
                _fmt_amount(rec["amount"], cur),
                cur,
                rec["account_id"],
                rec["card_id"],
                rec["merchant_id"],
                rec["_mname"],
                mcc,
                rec["merchant_country"],
                s(rec["email"]),
                s(rec["phone"]),
                s(rec["billing_address"]),
                s(rec["ip"]),
                s(rec["device_id"]),
                s(rec["user_agent"]),
                res,
                (seq * 37) % 100,
                f"B{self.times.date(self.times.day(ts)).replace('-', '')}-{seq % 7}",
            ]
        if g == "gw_kassa":
            tid = f"ks_{hex12(seq)}{seq % 97:02d}"
            code = "rec" if mcc == "4899" else "app" if rec["_app"] else "web"
            res = {"approved": "captured", "declined": "refused", "reversed": "refunded"}[status]
            return tid, [
                tid,
                ts * 1000 + seq * 7919 % 1000,
                _minor(rec["amount"], cur),
                cur,
                code,
                rec["account_id"],
                rec["card_id"],
                rec["merchant_id"],
                mcc,
                rec["merchant_country"],
                s(rec["email"]),
                s(rec["phone"]),
                s(rec["billing_address"]),
                s(rec["ip"]),
                s(rec["device_id"]),
                s(rec["user_agent"]),
                res,
                "YNA"[seq % 3],
                f"ACQ{seq % 4 + 1}",
            ]
        tid = f"ORB{seq:011d}"
        res = {"approved": "00", "declined": "05", "reversed": "RV"}[status]
        return tid, [
            tid,
            self.times.compact(ts),
            _fmt_amount(rec["amount"], cur),
            cur,
            "R" if mcc == "4899" else "E",
            rec["account_id"],
            rec["card_id"],
            rec["merchant_id"],
            mcc,
            rec["merchant_country"],
            s(rec["email"]),
            s(rec["phone"]),
            s(rec["billing_address"]),
            s(rec["ip"]),
            s(rec["device_id"]),
            s(rec["user_agent"]),
            res,
            f"7{seq * 104729 % 10**22:022d}",
            "05" if seq % 5 else "07",
        ]

    _COL: ClassVar[dict[str, dict[str, int]]] = {
        "gw_paynova": {"amount": 3, "currency": 4, "country": 10, "ip": 14},
        "gw_kassa": {"amount": 2, "currency": 3, "country": 9, "ip": 13},
        "gw_orbit": {"amount": 2, "currency": 3, "country": 9, "ip": 13},
    }

    def write(self, ev: Event) -> None:
        """Write one event in this source's format."""
        ts, seq, _, rec, label = ev
        day = (ts - self.times.t0) // 86400
        if day != self._day:
            self._open(day)
        tid, row = self._row_for(rec, ts, seq)
        kind = None
        if self.defects.hit():
            col = self._COL[self.name]
            kinds = ["missing_column", "negative_amount", "unknown_country", "missing_currency"]
            if row[col["ip"]]:
                kinds.append("invalid_ip")
            kind = self.defects.pick(kinds)
            if kind == "missing_column":
                row.pop()
            elif kind == "negative_amount":
                row[col["amount"]] = f"-{row[col['amount']]}"
            elif kind == "unknown_country":
                row[col["country"]] = "UK"
            elif kind == "missing_currency":
                row[col["currency"]] = ""
            elif kind == "invalid_ip":
                row[col["ip"]] = BAD_IP
        self._writer.writerow(row)
        self._row += 1
        self._note(rec, tid, label)
        if kind is not None:
            self.truth.defect(
                self.name,
                f"gateways/{self.name}/{self._fname}",
                f"{self._fname}:{self._row}",
                tid,
                "transaction",
                kind,
            )

    def close(self) -> None:
        """Flush and close this source's files."""
        self._close_file()

    def manifest(self) -> dict[str, Any]:
        """This source's manifest entry (``docs/sources.md`` grammar)."""
        g = self.name
        entry: dict[str, Any] = {
            "name": g,
            "format": "csv",
            "path": f"gateways/{g}/*.csv",
            "event_type": "transaction",
        }
        if g == "gw_paynova":
            entry["fields"] = {
                "txn_id": "TransactionRef",
                "timestamp": {
                    "from": "TxnDate",
                    "format": "%d/%m/%Y %H:%M:%S",
                    "timezone": "Europe/London",
                },
                "source": {"const": g},
                "account_id": "AcctRef",
                "amount": "Amount",
                "currency": "Currency",
                "channel": {
                    "from": "Type",
                    "values": {
                        "ECOM": "card_not_present",
                        "RECUR": "card_not_present",
                        "MOTO": "card_not_present",
                    },
                },
                "card_id": "CardToken",
                "merchant_id": "MerchantId",
                "merchant_category": "MCC",
                "merchant_country": "MerchantCountry",
                "email": "CustomerEmail",
                "phone": "CustomerPhone",
                "billing_address": "BillingAddress",
                "ip": "ClientIP",
                "device_id": "DeviceFingerprint",
                "user_agent": "UserAgent",
                "status": {
                    "from": "Result",
                    "values": {"A": "approved", "D": "declined", "R": "reversed"},
                },
            }
        elif g == "gw_kassa":
            entry["delimiter"] = ";"
            entry["fields"] = {
                "txn_id": "payment_id",
                "timestamp": {"from": "created_ms", "format": "epoch_ms"},
                "source": {"const": g},
                "account_id": "customer_ref",
                "amount": {"from": "amount_minor", "scale": "minor"},
                "currency": "ccy",
                "channel": {
                    "from": "channel_code",
                    "values": {
                        "web": "card_not_present",
                        "app": "card_not_present",
                        "rec": "card_not_present",
                    },
                },
                "card_id": "card_ref",
                "merchant_id": "merchant_ref",
                "merchant_category": "mcc",
                "merchant_country": "merchant_cc",
                "email": "email",
                "phone": "msisdn",
                "billing_address": "bill_to",
                "ip": "ip_addr",
                "device_id": "device_fp",
                "user_agent": "ua",
                "status": {
                    "from": "outcome",
                    "values": {
                        "captured": "approved",
                        "refused": "declined",
                        "refunded": "reversed",
                    },
                },
            }
        else:
            entry["delimiter"] = "\t"
            entry["fields"] = {
                "txn_id": "ref",
                "timestamp": {"from": "ts", "format": "%Y%m%d%H%M%S", "timezone": "UTC"},
                "source": {"const": g},
                "account_id": "acct",
                "amount": "amt",
                "currency": "cur",
                "channel": {
                    "from": "src",
                    "values": {"E": "card_not_present", "R": "card_not_present"},
                },
                "card_id": "token",
                "merchant_id": "mid",
                "merchant_category": "mcc",
                "merchant_country": "mctry",
                "email": "mail",
                "phone": "tel",
                "billing_address": "addr",
                "ip": "ipaddr",
                "device_id": "devid",
                "user_agent": "agent",
                "status": {
                    "from": "resp",
                    "values": {"00": "approved", "05": "declined", "RV": "reversed"},
                },
            }
        return entry


# -- core banking ------------------------------------------------------------------------------

_CORE_COLUMNS = (
    "id",
    "txn_ref",
    "booked_at",
    "value_date",
    "account_no",
    "counterparty_account_no",
    "amount",
    "currency",
    "txn_type",
    "narrative",
    "status",
    "origin",
    "booking_bank",
    "atm_id",
    "mcc",
    "atm_lat",
    "atm_lon",
    "atm_country",
    "device_id",
    "ip_address",
)

_CORE_SCHEMA = """
CREATE TABLE transactions (
    id INTEGER PRIMARY KEY,
    txn_ref TEXT NOT NULL,
    booked_at TEXT NOT NULL,
    value_date TEXT NOT NULL,
    account_no TEXT NOT NULL,
    counterparty_account_no TEXT,
    amount NUMERIC NOT NULL,
    currency TEXT,
    txn_type TEXT NOT NULL,
    narrative TEXT,
    status TEXT NOT NULL,
    origin TEXT,
    booking_bank TEXT,
    atm_id TEXT,
    mcc TEXT,
    atm_lat REAL,
    atm_lon REAL,
    atm_country TEXT,
    device_id TEXT,
    ip_address TEXT
)
"""


class CoreSink(Sink):
    """Core banking: transfers and (for some banks) ATM withdrawals in one SQLite table."""

    def __init__(
        self, name: str, root: Path, times: Times, truth: Truth, rnd: random.Random
    ) -> None:
        super().__init__(name, root, times, truth, rnd)
        self.path = root / "core_banking.db"
        if self.path.exists():
            self.path.unlink()
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(_CORE_SCHEMA)
        self._rows: list[tuple[Any, ...]] = []
        self._id = 0
        self.files.append(self.path)

    def write(self, ev: Event) -> None:
        """Write one event in this source's format."""
        ts, seq, _, rec, label = ev
        self._id += 1
        day = (ts - self.times.t0) // 86400
        ref = f"CB{self.times.date(day).replace('-', '')}{seq:09d}"
        kind = rec["_kind"]
        geo = rec.get("geo")
        status = {"approved": "POSTED", "declined": "REJECTED", "reversed": "REVERSED"}[
            rec["status"]
        ]
        value_day = day + (1 if (ts - self.times.t0) % 86400 > 20 * 3600 else 0)
        row = [
            self._id,
            ref,
            self.times.plain(ts),
            self.times.date(value_day),
            rec["account_id"],
            rec.get("counterparty_account_id"),
            rec["amount"],
            rec["currency"],
            kind,
            rec["_narr"],
            status,
            "atm" if kind == "ATM" else rec.get("_origin"),
            rec["_bank"],
            rec.get("merchant_id"),
            rec.get("merchant_category"),
            geo["lat"] if geo else None,
            geo["lon"] if geo else None,
            geo["country"] if geo else None,
            rec.get("device_id"),
            rec.get("ip"),
        ]
        dkind = None
        if self.defects.hit():
            kinds = ["missing_currency", "negative_amount"]
            if row[19]:
                kinds.append("invalid_ip")
            if geo:
                kinds.append("lat_out_of_range")
            dkind = self.defects.pick(kinds)
            if dkind == "missing_currency":
                row[7] = None
            elif dkind == "negative_amount":
                row[6] = -row[6]
            elif dkind == "invalid_ip":
                row[19] = BAD_IP
            elif dkind == "lat_out_of_range":
                row[15] = -91.0 - round(self.rnd.random() * 8, 4)
        self._rows.append(tuple(row))
        self._note(rec, ref, label)
        if dkind is not None:
            self.truth.defect(
                self.name,
                "core_banking.db",
                f"core_banking.db#id={self._id}",
                ref,
                "transaction",
                dkind,
            )

    def end_day(self, day: int) -> None:
        """Write out the rows buffered for the day."""
        if self._rows:
            marks = ",".join("?" * len(_CORE_COLUMNS))
            sql = f"INSERT INTO transactions VALUES ({marks})"  # noqa: S608 - fixed placeholders
            self._db.executemany(sql, self._rows)
            self._rows = []

    def close(self) -> None:
        """Flush and close this source's files."""
        self.end_day(-1)
        self._db.execute("CREATE INDEX ix_transactions_account ON transactions (account_no)")
        self._db.commit()
        self._db.close()

    def manifest(self) -> dict[str, Any]:
        """This source's manifest entry (``docs/sources.md`` grammar)."""
        return {
            "name": self.name,
            "format": "sqlite",
            "path": "core_banking.db",
            "table": "transactions",
            "key": "id",
            "event_type": "transaction",
            "fields": {
                "txn_id": "txn_ref",
                "timestamp": {
                    "from": "booked_at",
                    "format": "%Y-%m-%d %H:%M:%S",
                    "timezone": "UTC",
                },
                "source": {"const": "core_banking"},
                "account_id": "account_no",
                "counterparty_account_id": "counterparty_account_no",
                "amount": "amount",
                "currency": "currency",
                "channel": {
                    "from": "txn_type",
                    "values": {
                        "TRF": "transfer",
                        "SAL": "transfer",
                        "DD": "transfer",
                        "SO": "transfer",
                        "INV": "transfer",
                        "ATM": "atm",
                    },
                },
                "status": {
                    "from": "status",
                    "values": {
                        "POSTED": "approved",
                        "REJECTED": "declined",
                        "REVERSED": "reversed",
                    },
                },
                "merchant_id": "atm_id",
                "merchant_category": "mcc",
                "merchant_country": "atm_country",
                "geo.lat": "atm_lat",
                "geo.lon": "atm_lon",
                "geo.country": "atm_country",
                "device_id": "device_id",
                "ip": "ip_address",
            },
        }


# -- wallet documents ---------------------------------------------------------------------------


class WalletSink(Sink):
    """The digital wallet's customer documents, each with its activity nested in a list."""

    def __init__(
        self, name: str, root: Path, times: Times, truth: Truth, rnd: random.Random, world: World
    ) -> None:
        super().__init__(name, root, times, truth, rnd)
        self.folder = root / "nosql" / "customers"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.docs: dict[str, dict[str, Any]] = {}
        for a in world.accounts:
            if a.wallet_id is None:
                continue
            since = world.start - timedelta(days=30 + (a.idx * 7919) % 900)
            if a.opened_day is not None:
                since = world.start + timedelta(days=a.opened_day)
            self.docs[a.wallet_id] = {
                "_id": a.wallet_id,
                "schema_version": 3,
                "customer": {
                    "account_no": a.account_id,
                    "name": {"given": a.first, "family": a.last},
                    "email": a.email,
                    "phone": a.phone,
                    "address": a.address,
                    "country": a.country,
                    "kyc_level": 1 if a.synthetic else 2 + a.idx % 2,
                    "since": since.isoformat(),
                },
                "activity": [],
            }

    def write(self, ev: Event) -> None:
        """Write one event in this source's format."""
        ts, seq, _, rec, label = ev
        doc = self.docs[rec["_doc"]]
        et = rec["event_type"]
        at = self.times.z_ms(ts, seq * 7919 % 1000)
        geo = rec.get("geo")
        loc = {"lat": geo["lat"], "lon": geo["lon"], "cc": geo["country"]} if geo else None
        item: dict[str, Any]
        if et == "transaction":
            rid = f"wp_{hex12(seq)}"
            item = {
                "kind": "payment",
                "id": rid,
                "at": at,
                "amount": {
                    "value": _fmt_amount(rec["amount"], rec["currency"]),
                    "currency": rec["currency"],
                },
                "merchant": {
                    "id": rec["merchant_id"],
                    "name": rec["merchant_name"],
                    "mcc": rec["merchant_category"],
                    "country": rec["merchant_country"],
                },
                "device": rec["device_id"],
                "ip": rec["ip"],
                "loc": loc,
                "state": {"approved": "completed", "declined": "failed", "reversed": "refunded"}[
                    rec["status"]
                ],
            }
        elif et == "login":
            rid = f"ws_{hex12(seq)}"
            item = {
                "kind": "signin",
                "id": rid,
                "at": at,
                "ok": rec["success"],
                "second_factor": rec["mfa_used"],
                "device": rec["device_id"],
                "ip": rec["ip"],
                "loc": loc,
                "agent": rec["user_agent"],
            }
            if rec.get("failure_reason"):
                item["failure"] = rec["failure_reason"]
        else:
            rid = f"wd_{hex12(seq)}"
            item = {
                "kind": "device",
                "id": rid,
                "at": at,
                "device": {
                    "id": rec["device_id"],
                    "os": rec["os"],
                    "os_version": rec["os_version"],
                    "model": rec["_model"],
                    "emulator": rec["emulator"],
                    "rooted": rec["rooted"],
                    "screen": rec["screen"],
                    "tz": rec["timezone"],
                    "lang": rec["language"],
                },
                "ip": rec["ip"],
            }
        item = {k: v for k, v in item.items() if v is not None}
        kind = None
        if self.defects.hit():
            kinds = ["naive_timestamp"]
            if et == "transaction":
                kinds += ["missing_currency", "negative_amount"]
            if "ip" in item:
                kinds.append("invalid_ip")
            if "loc" in item:
                kinds.append("lat_out_of_range")
            kind = self.defects.pick(kinds)
            if kind == "naive_timestamp":
                item["at"] = at[:-1]
            elif kind == "missing_currency":
                item["amount"] = {"value": item["amount"]["value"]}
            elif kind == "negative_amount":
                item["amount"] = {**item["amount"], "value": "-" + item["amount"]["value"]}
            elif kind == "invalid_ip":
                item["ip"] = BAD_IP
            elif kind == "lat_out_of_range":
                item["loc"] = {**item["loc"], "lat": -90.5 - round(self.rnd.random() * 9, 4)}
        items = doc["activity"]
        items.append(item)
        self._note(rec, rid, label)
        if kind is not None:
            fname = f"{doc['_id']}.json"
            self.truth.defect(
                self.name,
                f"nosql/customers/{fname}",
                f"{fname}:activity[{len(items) - 1}]",
                rid,
                et,
                kind,
            )

    def close(self) -> None:
        """Flush and close this source's files."""
        for wid in sorted(self.docs):
            path = self.folder / f"{wid}.json"
            path.write_bytes(_dumps_doc(self.docs[wid]))
            self.files.append(path)

    def manifest(self) -> dict[str, Any]:
        """This source's manifest entry (``docs/sources.md`` grammar)."""
        common = {
            "source": {"const": "wallet_app"},
            "account_id": "doc:customer.account_no",
            "timestamp": "at",
            "device_id": "device",
            "ip": "ip",
        }
        geo = {"geo.lat": "loc.lat", "geo.lon": "loc.lon", "geo.country": "loc.cc"}
        return {
            "name": self.name,
            "format": "documents",
            "path": "nosql/customers/*.json",
            "items": "activity",
            "type_field": "kind",
            "types": {
                "payment": {
                    "event_type": "transaction",
                    "fields": {
                        "txn_id": "id",
                        **common,
                        "amount": "amount.value",
                        "currency": "amount.currency",
                        "channel": {"const": "wallet"},
                        "merchant_id": "merchant.id",
                        "merchant_category": "merchant.mcc",
                        "merchant_country": "merchant.country",
                        **geo,
                        "email": "doc:customer.email",
                        "phone": "doc:customer.phone",
                        "billing_address": "doc:customer.address",
                        "status": {
                            "from": "state",
                            "values": {
                                "completed": "approved",
                                "failed": "declined",
                                "refunded": "reversed",
                            },
                        },
                    },
                },
                "signin": {
                    "event_type": "login",
                    "fields": {
                        "event_id": "id",
                        **common,
                        "success": {"from": "ok", "type": "bool"},
                        "mfa_used": {"from": "second_factor", "type": "bool"},
                        "failure_reason": "failure",
                        "user_agent": "agent",
                        **geo,
                    },
                },
                "device": {
                    "event_type": "device_event",
                    "fields": {
                        "event_id": "id",
                        "timestamp": "at",
                        "source": {"const": "wallet_app"},
                        "account_id": "doc:customer.account_no",
                        "device_id": "device.id",
                        "os": "device.os",
                        "os_version": "device.os_version",
                        "emulator": "device.emulator",
                        "rooted": "device.rooted",
                        "screen": "device.screen",
                        "timezone": "device.tz",
                        "language": "device.lang",
                        "ip": "ip",
                    },
                },
            },
        }


# -- auth server log -----------------------------------------------------------------------------

_PREFIX = r"^(?P<ts>\S+) (?P<host>\S+) authd\[(?P<pid>\d+)\]: "
_WHO = r"req=(?P<req>\S+) user=(?P<user>\S+) src=(?P<ip>\S+) dev=(?P<dev>\S+)"
_GEO = r" geo=(?P<lat>-?[0-9.]+),(?P<lon>-?[0-9.]+),(?P<cc>[A-Z]{2})"
_UA = r' ua="(?P<ua>[^"]*)"$'


class AuthSink(Sink):
    """The identity provider's text log: logins, failures, MFA failures, password resets."""

    def __init__(
        self, name: str, root: Path, times: Times, truth: Truth, rnd: random.Random
    ) -> None:
        super().__init__(name, root, times, truth, rnd)
        self.folder = root / "auth"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fh: BinaryIO | None = None
        self._day = -1
        self._line = 0
        self._fname = ""

    def _open(self, day: int) -> None:
        if self._fh is not None:
            self._fh.close()
        self._day = day
        self._fname = f"auth-{self.times.date(day)}.log"
        path = self.folder / self._fname
        self._fh = path.open("wb", buffering=1 << 20)
        self.files.append(path)
        self._line = 0

    def write(self, ev: Event) -> None:
        """Write one event in this source's format."""
        ts, seq, _, rec, label = ev
        day = (ts - self.times.t0) // 86400
        if day != self._day:
            self._open(day)
        region = rec["_region"]
        host = "idp-us-1" if region == "us" else ("idp-eu-1", "idp-eu-2")[seq % 2]
        pid = 1000 + (day * 7919 + sum(map(ord, host)) * 104729) % 30000
        stamp = self.times.z_ms(ts, seq * 7919 % 1000)
        et = rec["event_type"]
        kind = None
        if et == "noise":
            text = f"{stamp} {host} authd[{pid}]: {rec['_text']}\n"
            self.counts["noise"] += 1
            assert self._fh is not None
            self._fh.write(text.encode())
            self._line += 1
            return
        rid = f"req-{hex12(seq)}"
        ip = rec.get("ip") or "-"
        geo = rec.get("geo")
        lat, lon, cc = (geo["lat"], geo["lon"], geo["country"]) if geo else (0.0, 0.0, "ZZ")
        if self.defects.hit():
            kind = self.defects.pick(
                ["naive_timestamp", "invalid_ip", "lat_out_of_range", "unknown_country"]
                if et == "login"
                else ["naive_timestamp", "invalid_ip"]
            )
            if kind == "naive_timestamp":
                stamp = stamp[:-1]
            elif kind == "invalid_ip":
                ip = BAD_IP
            elif kind == "lat_out_of_range":
                lat = 92.0 + round(self.rnd.random() * 7, 4)
            elif kind == "unknown_country":
                cc = "XK"
        head = f"{stamp} {host} authd[{pid}]: "
        who = f"req={rid} user={rec['account_id']} src={ip} dev={rec.get('device_id') or '-'}"
        if et == "login":
            where = f" geo={lat},{lon},{cc}"
            ua = (rec.get("user_agent") or "-").replace('"', "'")
            mfa = "yes" if rec["mfa_used"] else "no"
            if rec["success"]:
                text = f'{head}LOGIN_OK {who}{where} mfa={mfa} ua="{ua}"\n'
            elif rec.get("failure_reason") == "mfa_failed":
                method = ("sms", "totp", "push")[seq % 3]
                text = f'{head}MFA_FAIL {who}{where} method={method} ua="{ua}"\n'
            else:
                reason = rec.get("failure_reason") or "bad_password"
                text = f'{head}LOGIN_FAIL {who}{where} mfa={mfa} reason={reason} ua="{ua}"\n'
        else:
            text = f"{head}PASSWORD_RESET {who} via={rec['_via']}\n"
        assert self._fh is not None
        self._fh.write(text.encode())
        self._line += 1
        self._note(rec, rid, label)
        if kind is not None:
            self.truth.defect(
                self.name, f"auth/{self._fname}", f"{self._fname}:{self._line}", rid, et, kind
            )

    def close(self) -> None:
        """Flush and close this source's files."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def manifest(self) -> dict[str, Any]:
        """This source's manifest entry (``docs/sources.md`` grammar)."""
        src = {"const": "auth_server"}
        login_common = {
            "event_id": "req",
            "timestamp": "ts",
            "account_id": "user",
            "source": src,
            "device_id": "dev",
            "ip": "ip",
            "geo.lat": {"from": "lat", "type": "float"},
            "geo.lon": {"from": "lon", "type": "float"},
            "geo.country": "cc",
            "user_agent": "ua",
        }
        return {
            "name": self.name,
            "format": "authlog",
            "path": "auth/*.log",
            "patterns": [
                {
                    "name": "login_ok",
                    "regex": _PREFIX + "LOGIN_OK " + _WHO + _GEO + r" mfa=(?P<mfa>\w+)" + _UA,
                    "event_type": "login",
                    "fields": {
                        **login_common,
                        "success": {"const": True},
                        "mfa_used": {"from": "mfa", "type": "bool"},
                    },
                },
                {
                    "name": "login_fail",
                    "regex": (
                        _PREFIX + "LOGIN_FAIL " + _WHO + _GEO + r" mfa=(?P<mfa>\w+)"
                        r" reason=(?P<reason>\S+)" + _UA
                    ),
                    "event_type": "login",
                    "fields": {
                        **login_common,
                        "success": {"const": False},
                        "mfa_used": {"from": "mfa", "type": "bool"},
                        "failure_reason": "reason",
                    },
                },
                {
                    "name": "mfa_fail",
                    "regex": _PREFIX + "MFA_FAIL " + _WHO + _GEO + r" method=(?P<method>\S+)" + _UA,
                    "event_type": "login",
                    "fields": {
                        **login_common,
                        "success": {"const": False},
                        "mfa_used": {"const": True},
                        "failure_reason": {"const": "mfa_failed"},
                    },
                },
                {
                    "name": "password_reset",
                    "regex": _PREFIX + "PASSWORD_RESET " + _WHO + r" via=(?P<via>\S+)$",
                    "event_type": "account_event",
                    "fields": {
                        "event_id": "req",
                        "timestamp": "ts",
                        "account_id": "user",
                        "source": src,
                        "kind": {"const": "password_reset"},
                        "device_id": "dev",
                        "ip": "ip",
                    },
                },
            ],
        }


def epoch(day: date) -> int:
    """UTC epoch seconds of midnight at the start of ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
