"""Source readers and declared mappings: each format, and each way a record can be unreadable."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import orjson
import pytest

from ingest.errors import RecordRejected, SourceError
from ingest.sources import autodetect, load_manifest
from ingest.validate import Validator


def read_all(spec):
    return list(spec.read())


def errors_of(items):
    return [(i[3].errors[0].field, i[3].errors[0].reason) for i in items if i[3] is not None]


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


GOOD = {
    "event_type": "transaction",
    "txn_id": "t1",
    "timestamp": "2026-10-01T10:00:00Z",
    "source": "bank_a",
    "account_id": "a1",
    "amount": 10,
    "currency": "EUR",
    "channel": "card_present",
}


def test_jsonl_bad_records_each_get_a_reason(tmp_path):
    lines = [
        orjson.dumps(GOOD),
        b'{"txn_id": "t2", "amount": ',  # truncated
        b"not json at all",
        b'{"txn_id": "t3", "note": "caf\xe9"}',  # latin-1 byte, not UTF-8
        b"[1, 2, 3]",
        orjson.dumps({**GOOD, "txn_id": "big", "pad": "x" * 70_000}),
        b"",  # blank lines are skipped, not counted
        b'{"amount": NaN}',
    ]
    path = write(tmp_path / "s.jsonl", b"\n".join(lines))
    (spec,) = autodetect(path)
    items = read_all(spec)
    assert len(items) == 7
    assert [i[0] for i in items][:2] == [("s.jsonl", 1), ("s.jsonl", 2)]
    # canonical JSON lines are handed to the validator unparsed, to parse and check in one pass
    assert all(type(i[2]) is bytes for i in items)
    validator = Validator()
    assert validator.validate_json(items[0][2]).txn_id == "t1"
    reasons = []
    for item in items[1:]:
        with pytest.raises(RecordRejected) as info:
            validator.validate_json(item[2])
        reasons.append((info.value.errors[0].field, info.value.errors[0].reason))
    assert [f for f, _ in reasons] == ["(record)"] * 6
    assert reasons[0][1].startswith("truncated or invalid JSON")
    assert reasons[1][1].startswith("truncated or invalid JSON")
    assert reasons[2][1] == "not valid UTF-8 (byte 0xe9 at offset 29)"
    assert reasons[3][1] == "expected a JSON object, got list"
    assert "exceeds the 65536 byte limit" in reasons[4][1]
    assert reasons[5][1].startswith("truncated or invalid JSON")


def test_empty_file_is_reported(tmp_path):
    (spec,) = autodetect(write(tmp_path / "empty.jsonl", b""))
    assert errors_of(read_all(spec)) == [("(file)", "file is empty: no records")]
    (spec,) = autodetect(write(tmp_path / "empty.csv", b""))
    assert errors_of(read_all(spec)) == [("(file)", "file is empty: no records")]
    (spec,) = autodetect(write(tmp_path / "header.csv", b"txn_id,amount\n"))
    assert errors_of(read_all(spec)) == [("(file)", "file has a header but no rows")]


def test_canonical_csv_and_wrong_column_count(tmp_path):
    csv_text = (
        "txn_id,timestamp,source,account_id,amount,currency,channel,geo.lat,geo.lon,shop\n"
        "t1,2026-10-01T10:00:00Z,gw,a1,9.99,EUR,card_not_present,52.1,4.3,s1\n"
        "t2,2026-10-01T10:00:00Z,gw,a1,9.99,EUR\n"
        'caf\xe9,2026-10-01T10:00:00Z,gw,a1,1,EUR,atm,,,"x"\n'
    )
    path = write(tmp_path / "g.csv", csv_text.encode("latin-1"))
    (spec,) = autodetect(path)
    items = read_all(spec)
    first = items[0][2]
    assert first["geo"] == {"lat": 52.1, "lon": 4.3}
    assert first["shop"] == "s1"  # unmapped columns are kept
    assert errors_of(items) == [
        ("(record)", "wrong column count: expected 10 columns, got 6"),
        ("(record)", "not valid UTF-8 (byte 0xe9 at offset 3)"),
    ]
    assert [i[0] for i in items] == [("g.csv", 1), ("g.csv", 2), ("g.csv", 3)]


MANIFEST = """
version: 1
sources:
  - name: gw_x
    format: csv
    path: gw/*.csv
    event_type: transaction
    delimiter: ";"
    fields:
      txn_id: Ref
      timestamp: {from: When, format: "%d/%m/%Y %H:%M:%S", timezone: Europe/London}
      account_id: Customer
      amount: {from: Cents, scale: minor}
      currency: Ccy
      channel: {from: Kind, values: {ECOM: card_not_present, POS: card_present}}
      source: {const: gw_x}
  - name: core
    format: sqlite
    path: core.db
    table: transactions
    key: id
    event_type: transaction
    fields:
      txn_id: ref
      timestamp: {from: booked_ms, format: epoch_ms}
      account_id: acct
      counterparty_account_id: cpty
      amount: amt
      currency: ccy
      channel: {const: transfer}
      source: {const: core}
  - name: wallet
    format: documents
    path: docs/*.json
    items: activity
    type_field: kind
    types:
      pay:
        event_type: transaction
        fields:
          txn_id: id
          timestamp: at
          account_id: doc:account.id
          amount: value.amount
          currency: value.currency
          channel: {const: wallet}
          source: {const: wallet}
      signin:
        event_type: login
        fields:
          event_id: id
          timestamp: at
          account_id: doc:account.id
          success: {from: ok, type: bool}
          mfa_used: {from: mfa, type: bool}
  - name: auth
    format: authlog
    path: auth/*.log
    patterns:
      - name: ok
        regex: >-
          ^(?P<ts>\\S+) authd: LOGIN_OK req=(?P<req>\\S+) user=(?P<user>\\S+)
          mfa=(?P<mfa>\\S+)$
        event_type: login
        fields:
          event_id: req
          timestamp: ts
          account_id: user
          success: {const: true}
          mfa_used: {from: mfa, values: {totp: true, none: false}}
"""


@pytest.fixture
def manifest_dir(tmp_path):
    write(tmp_path / "sources.yaml", textwrap.dedent(MANIFEST))
    write(
        tmp_path / "gw/batch.csv",
        "Ref;When;Customer;Cents;Ccy;Kind;Terminal\n"
        "r1;31/07/2026 09:30:00;c1;1250;GBP;ECOM;T9\n"
        "r2;31/07/2026 09:31:00;c1;99;JPY;POS;T9\n"
        "r3;2026-07-31;c1;1;GBP;POS;T9\n",
    )
    db = sqlite3.connect(tmp_path / "core.db")
    db.execute(
        "CREATE TABLE transactions (id INTEGER PRIMARY KEY, ref, booked_ms, acct, cpty, amt, ccy)"
    )
    db.execute("INSERT INTO transactions VALUES (7, 'x1', 1790000000000, 'a1', 'a2', 25.5, 'EUR')")
    db.commit()
    db.close()
    doc = {
        "account": {"id": "w1"},
        "activity": [
            {
                "kind": "pay",
                "id": "p1",
                "at": "2026-10-01T10:00:00Z",
                "value": {"amount": "3.10", "currency": "EUR"},
                "merchant": "m1",
            },
            {"kind": "signin", "id": "s1", "at": "2026-10-01T09:59:00Z", "ok": "yes", "mfa": "0"},
            {"kind": "refund", "id": "z1"},
        ],
    }
    write(tmp_path / "docs/w1.json", orjson.dumps(doc))
    write(
        tmp_path / "auth/a.log",
        "2026-10-01T08:00:00Z authd: LOGIN_OK req=q1 user=a1 mfa=totp\n"
        "\n"
        "2026-10-01T08:00:01Z authd: healthcheck ok\n",
    )
    return tmp_path


def test_manifest_sources_map_to_canonical_fields(manifest_dir):
    specs = {s.name: s for s in load_manifest(manifest_dir)}
    gw = read_all(specs["gw_x"])
    assert gw[0][2] == {
        "txn_id": "r1",
        "timestamp": "2026-07-31T09:30:00+01:00",  # British Summer Time
        "account_id": "c1",
        "currency": "GBP",
        "channel": "card_not_present",
        "source": "gw_x",
        "amount": "12.50",
        "Terminal": "T9",
    }
    assert gw[1][2]["amount"] == "99"  # yen have no minor digits
    assert errors_of(gw) == [
        ("timestamp", "'2026-07-31' does not match the declared format '%d/%m/%Y %H:%M:%S'")
    ]
    (core,) = read_all(specs["core"])
    assert core[0] == "core.db#id=7"
    assert core[2]["timestamp"] == "2026-09-21T14:13:20+00:00"
    assert core[2]["amount"] == 25.5
    wallet = read_all(specs["wallet"])
    assert wallet[0][2]["account_id"] == "w1"
    assert wallet[0][2]["merchant"] == "m1"
    assert wallet[0][4] == "transaction"
    assert wallet[1][2]["success"] is True
    assert wallet[1][2]["mfa_used"] is False
    assert wallet[1][4] == "login"
    assert wallet[2][0] == "w1.json:activity[2]"
    assert errors_of(wallet) == [
        ("kind", "unknown item type 'refund'; expected one of ['pay', 'signin']")
    ]
    auth = read_all(specs["auth"])
    assert len(auth) == 2
    assert auth[0][2]["mfa_used"] is True
    assert errors_of(auth) == [("(record)", "line matches no pattern of source 'auth'")]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("- {format: csv, path: x}", "'name' is required"),
        ("- {name: a, format: xml, path: x}", "format must be one of"),
        ("- {name: a, format: csv, path: x}", "csv sources need an 'event_type'"),
        (
            "- {name: a, format: csv, path: x, event_type: transaction, "
            "fields: {amount: {frm: A}}}",
            "unknown keys ['frm']",
        ),
        (
            "- {name: a, format: csv, path: x, event_type: transaction, "
            "fields: {timestamp: {from: T, timezone: Mars/Base}}}",
            "unknown timezone",
        ),
        ("- {name: a, format: authlog, path: x}", "authlog sources need 'patterns'"),
    ],
)
def test_manifest_mistakes_are_explained(tmp_path, entry, message):
    write(tmp_path / "sources.yaml", f"version: 1\nsources:\n  {entry}\n")
    with pytest.raises(SourceError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_manifest(tmp_path)


def test_missing_path_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        autodetect(tmp_path / "nope")
