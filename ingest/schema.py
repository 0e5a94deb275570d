"""JSON Schema files and documentation tables, generated from the field declarations.

``ringfence schemas`` writes ``docs/schemas/<event_type>.schema.json`` and refreshes the field
tables in ``docs/events.md``; a test fails when either is stale.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ingest.events import FIELDS, MAX_RECORD_BYTES, FieldSpec
from ingest.reference import COUNTRIES, CURRENCY_EXPONENTS

_SCHEMA_BASE = "urn:ringfence:schema:"

_COUNTRY = {"type": "string", "enum": sorted(COUNTRIES)}


def _fragment(spec: FieldSpec) -> dict[str, Any]:
    kind = spec.kind
    if kind == "id":
        return {"type": ["string", "integer"], "minLength": 1, "maxLength": spec.max_length}
    if kind == "text":
        return {"type": "string", "maxLength": spec.max_length}
    if kind == "timestamp":
        return {
            "type": "string",
            "format": "date-time",
            "pattern": r"(Z|z|[+-]\d{2}:\d{2})$",
        }
    if kind == "amount":
        return {
            "oneOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000_000},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*$"},
            ]
        }
    if kind == "currency":
        return {"type": "string", "enum": sorted(CURRENCY_EXPONENTS)}
    if kind == "enum":
        return {"type": "string", "enum": list(spec.choices)}
    if kind == "bool":
        return {"type": "boolean"}
    if kind == "ip":
        return {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
    if kind == "geo":
        return {
            "type": "object",
            "required": ["lat", "lon"],
            "properties": {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
                "country": _COUNTRY,
            },
        }
    if kind == "mcc":
        return {"type": "string", "pattern": r"^\d{4}$"}
    if kind == "country":
        return _COUNTRY
    if kind == "email":
        return {"type": "string", "format": "email", "maxLength": 254}
    if kind == "phone":
        return {"type": "string", "pattern": r"^\+[1-9]\d{6,14}$"}
    raise ValueError(f"no schema for field kind {kind!r}")


def json_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event type's input form."""
    specs = FIELDS[event_type]
    props: dict[str, Any] = {
        "event_type": {
            "const": event_type,
            "description": "The event type; may be left out where only this type is expected.",
        }
    }
    for spec in specs:
        props[spec.name] = {**_fragment(spec), "description": spec.doc}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{_SCHEMA_BASE}{event_type}",
        "title": event_type,
        "description": (
            f"A canonical Ringfence {event_type} event. Fields not listed are kept as extras. "
            f"A record may be at most {MAX_RECORD_BYTES} bytes."
        ),
        "type": "object",
        "required": [s.name for s in specs if s.required],
        "properties": props,
        "additionalProperties": True,
    }


def field_table(event_type: str) -> str:
    """A Markdown table of one event type's fields."""
    rows = ["| field | kind | required | meaning |", "| --- | --- | --- | --- |"]
    for s in FIELDS[event_type]:
        kind = s.kind if not s.choices else "enum: " + " \\| ".join(s.choices)
        rows.append(f"| `{s.name}` | {kind} | {'yes' if s.required else ''} | {s.doc} |")
    return "\n".join(rows)


def write_schemas(out: Path) -> list[Path]:
    """Write one schema file per event type into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type in FIELDS:
        path = out / f"{event_type}.schema.json"
        path.write_text(json.dumps(json_schema(event_type), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


_MARK = re.compile(r"(<!-- fields:(\w+) -->).*?(<!-- /fields -->)", re.S)


def refresh_doc(text: str) -> str:
    """Replace each ``<!-- fields:TYPE -->`` ... ``<!-- /fields -->`` block with the table."""
    return _MARK.sub(lambda m: f"{m.group(1)}\n{field_table(m.group(2))}\n{m.group(3)}", text)
