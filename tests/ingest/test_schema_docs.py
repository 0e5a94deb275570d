"""The JSON Schema files and the docs' field tables are generated from the code and current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.events import FIELDS
from ingest.schema import json_schema, refresh_doc

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("event_type", list(FIELDS))
def test_schema_file_is_current(event_type):
    path = ROOT / "docs" / "schemas" / f"{event_type}.schema.json"
    assert json.loads(path.read_text()) == json_schema(event_type), "run `make schemas`"


def test_events_doc_tables_are_current():
    text = (ROOT / "docs" / "events.md").read_text()
    assert refresh_doc(text) == text, "run `make schemas`"
    for event_type, specs in FIELDS.items():
        assert f"<!-- fields:{event_type} -->" in text
        for spec in specs:
            assert f"| `{spec.name}` |" in text


def test_required_fields_match_the_validator():
    schema = json_schema("transaction")
    assert schema["required"] == [
        "txn_id",
        "timestamp",
        "source",
        "account_id",
        "amount",
        "currency",
        "channel",
    ]
    assert schema["additionalProperties"] is True
