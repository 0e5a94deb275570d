"""Sources: the manifest that declares them, and a reader per format.

Every reader yields :data:`Item` tuples ``(location, raw, record, error, event_type)``:

- ``location`` says where the record was (``file:line``, ``file:row``, ``file#id=7``,
  ``file:items[3]``), for the dead-letter store;
- ``raw`` is the record as the source had it (bytes or text or a dict), kept for dead letters;
- ``record`` is the mapping with canonical field names; or the record's bytes, still to be
  parsed, when they are canonical JSON (the validator parses and checks in one pass); or
  ``None`` when the record could not be parsed or mapped, and then ``error`` says why;
- ``event_type`` is the declared type, or ``None`` when the record carries its own.

Readers never raise for a bad record; they raise :class:`SourceError` only when a whole source
cannot be read (a missing path, an unreadable database, a manifest mistake).
"""

from __future__ import annotations

import base64
import csv
import glob
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from ingest.errors import RECORD, FieldError, RecordRejected, SourceError
from ingest.events import EVENT_TYPES, FIELDS, MAX_RECORD_BYTES
from ingest.mapping import DOC_KEY, FieldMap

FORMATS = ("jsonl", "csv", "sqlite", "documents", "authlog")
FILE = "(file)"
"""The ``field`` of a FieldError about a whole file (empty, unreadable)."""

Item = tuple[Any, Any, "dict[str, Any] | bytes | None", "RecordRejected | None", "str | None"]


def _reject(field_name: str, reason: str) -> RecordRejected:
    return RecordRejected([FieldError(field_name, reason)])


def _empty_file(path: Path) -> Item:
    return (f"{path.name}", b"", None, _reject(FILE, "file is empty: no records"), None)


def canonical_csv_fields(event_type: str) -> dict[str, Any]:
    """The field map for a CSV whose header already uses canonical names."""
    out: dict[str, Any] = {}
    for spec in FIELDS[event_type]:
        if spec.kind == "geo":
            out["geo.lat"] = {"from": "geo.lat", "type": "float"}
            out["geo.lon"] = {"from": "geo.lon", "type": "float"}
            out["geo.country"] = "geo.country"
        else:
            out[spec.name] = spec.name
    return out


@dataclass(slots=True)
class Pattern:
    """One authlog line pattern: a regex whose named groups feed a field map."""

    name: str
    regex: re.Pattern[str]
    event_type: str
    fields: FieldMap


@dataclass(slots=True)
class SourceSpec:
    """One declared source. Build with :meth:`from_manifest_entry` or :func:`autodetect`."""

    name: str
    format: str
    paths: list[Path]
    event_type: str | None = None
    fields: FieldMap | None = None
    options: dict[str, Any] = field(default_factory=dict)
    types: dict[str, tuple[str, FieldMap]] = field(default_factory=dict)
    patterns: list[Pattern] = field(default_factory=list)

    @classmethod
    def from_manifest_entry(cls, entry: Mapping[str, Any], base: Path) -> SourceSpec:
        """Parse one ``sources:`` entry; paths are globs relative to ``base``."""
        name = entry.get("name")
        where = f"source {name!r}" if name else "a source without a name"
        if not isinstance(name, str) or not name:
            raise SourceError(f"manifest: {where}: 'name' is required")
        fmt = entry.get("format")
        if fmt not in FORMATS:
            raise SourceError(f"manifest: {where}: format must be one of {FORMATS}, got {fmt!r}")
        pattern = entry.get("path")
        if not isinstance(pattern, str):
            raise SourceError(f"manifest: {where}: 'path' (a glob) is required")
        paths = sorted(Path(p) for p in glob.glob(str(base / pattern), recursive=True))
        event_type = entry.get("event_type")
        if event_type is not None and event_type not in EVENT_TYPES:
            raise SourceError(f"manifest: {where}: unknown event_type {event_type!r}")
        keep = bool(entry.get("keep_unmapped", True))
        try:
            fields = (
                FieldMap.compile(entry["fields"], keep_unmapped=keep) if "fields" in entry else None
            )
            if fmt == "csv" and fields is None:
                fields = FieldMap.compile(canonical_csv_fields(event_type or "transaction"))
            types = {
                str(k): (v["event_type"], FieldMap.compile(v["fields"], keep_unmapped=keep))
                for k, v in (entry.get("types") or {}).items()
            }
            patterns = [
                Pattern(
                    name=p.get("name", f"pattern{i}"),
                    regex=re.compile(p["regex"]),
                    event_type=p["event_type"],
                    fields=FieldMap.compile(p["fields"], keep_unmapped=keep),
                )
                for i, p in enumerate(entry.get("patterns") or [])
            ]
        except (KeyError, TypeError, re.error) as exc:
            raise SourceError(f"manifest: {where}: invalid mapping ({exc!r})") from None
        except SourceError as exc:
            raise SourceError(f"manifest: {where}: {exc}") from None
        for et, _ in types.values():
            if et not in EVENT_TYPES:
                raise SourceError(f"manifest: {where}: unknown event_type {et!r} in types")
        if fmt in ("csv", "sqlite") and event_type is None:
            raise SourceError(f"manifest: {where}: {fmt} sources need an 'event_type'")
        if fmt == "documents" and not (types and "items" in entry and "type_field" in entry):
            raise SourceError(f"manifest: {where}: documents need 'items', 'type_field', 'types'")
        if fmt == "authlog" and not patterns:
            raise SourceError(f"manifest: {where}: authlog sources need 'patterns'")
        options = {
            k: entry[k]
            for k in (
                "delimiter",
                "quotechar",
                "encoding",
                "table",
                "query",
                "key",
                "items",
                "type_field",
            )
            if k in entry
        }
        return cls(name, fmt, paths, event_type, fields, options, types, patterns)

    def read(self) -> Iterator[Item]:
        """Yield every record of every file of this source."""
        reader = _READERS[self.format]
        for path in self.paths:
            yield from reader(self, path)


def load_manifest(path: Path) -> list[SourceSpec]:
    """Read ``sources.yaml`` (or the file given) into source specs."""
    manifest = path / "sources.yaml" if path.is_dir() else path
    try:
        doc = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SourceError(f"cannot read manifest {manifest}: {exc}") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("sources"), list):
        raise SourceError(f"manifest {manifest}: expected a mapping with a 'sources' list")
    specs = [SourceSpec.from_manifest_entry(e, manifest.parent) for e in doc["sources"]]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SourceError(f"manifest {manifest}: source names must be unique")
    return specs


def autodetect(path: Path) -> list[SourceSpec]:
    """Sources for a path without a manifest: one file, or a folder of .jsonl and .csv files."""
    if not path.exists():
        raise SourceError(f"no such file or folder: {path}")
    if path.is_dir():
        if (path / "sources.yaml").exists():
            return load_manifest(path)
        files = sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".csv"))
        if not files:
            raise SourceError(f"{path}: no sources.yaml and no .jsonl or .csv files")
    else:
        files = [path]
    specs = []
    for suffix, fmt in ((".jsonl", "jsonl"), (".csv", "csv")):
        chosen = [p for p in files if p.suffix == suffix]
        if chosen:
            fields = FieldMap.compile(canonical_csv_fields("transaction")) if fmt == "csv" else None
            et = "transaction" if fmt == "csv" else None
            specs.append(
                SourceSpec(
                    path.stem if path.is_file() else f"{path.name}_{fmt}", fmt, chosen, et, fields
                )
            )
    if not specs:
        raise SourceError(f"{path}: unsupported file type (expected .jsonl or .csv)")
    return specs


# -- readers ---------------------------------------------------------------------------------


def _decode_error(raw: bytes) -> RecordRejected:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _reject(
            RECORD, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        )
    return _reject(RECORD, "unreadable record")


def parse_json_record(raw: bytes) -> tuple[dict[str, Any] | None, RecordRejected | None]:
    """Parse one JSON object, or say why it is not one (size, UTF-8, syntax, not an object)."""
    if len(raw) > MAX_RECORD_BYTES:
        return None, _reject(
            RECORD, f"record of {len(raw)} bytes exceeds the {MAX_RECORD_BYTES} byte limit"
        )
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in str(exc) or "surrogate" in str(exc):
            return None, _decode_error(raw)
        return None, _reject(RECORD, f"truncated or invalid JSON: {exc}")
    if type(obj) is not dict:
        return None, _reject(RECORD, f"expected a JSON object, got {type(obj).__name__}")
    return obj, None


def _nonblank_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line without its end) for every line that is not blank."""
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield lineno, line


def _read_jsonl(spec: SourceSpec, path: Path) -> Iterator[Item]:
    name = path.name
    mapper = spec.fields
    event_type = spec.event_type
    seen_any = False
    for lineno, line in _nonblank_lines(path):
        seen_any = True
        if mapper is None:
            # canonical JSON: the validator parses and checks it in one pass
            yield (name, lineno), line, line, None, event_type
            continue
        obj, err = parse_json_record(line)
        if obj is not None:
            try:
                obj = mapper.apply(obj)
            except RecordRejected as exc:
                obj, err = None, exc
        yield (name, lineno), line, obj, err, event_type
    if not seen_any:
        yield _empty_file(path)


def _text_fields_ok(row: list[str]) -> bool:
    joined = "".join(row)
    if joined.isascii():
        return True
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_csv(spec: SourceSpec, path: Path) -> Iterator[Item]:
    name = path.name
    mapper = spec.fields
    assert mapper is not None
    opts = spec.options
    with path.open(
        "r", encoding=opts.get("encoding", "utf-8"), errors="surrogateescape", newline=""
    ) as fh:
        reader = csv.reader(
            fh, delimiter=opts.get("delimiter", ","), quotechar=opts.get("quotechar", '"')
        )
        header = next(reader, None)
        if header is None:
            yield _empty_file(path)
            return
        width = len(header)
        seen_any = False
        for rowno, row in enumerate(reader, 1):
            if not row:
                continue
            seen_any = True
            raw = row
            if len(row) != width:
                yield (
                    (name, rowno),
                    raw,
                    None,
                    _reject(
                        RECORD, f"wrong column count: expected {width} columns, got {len(row)}"
                    ),
                    spec.event_type,
                )
                continue
            if not _text_fields_ok(row):
                enc = ",".join(row).encode("utf-8", "surrogateescape")
                yield (name, rowno), enc, None, _decode_error(enc), spec.event_type
                continue
            if sum(map(len, row)) > MAX_RECORD_BYTES:
                yield (
                    (name, rowno),
                    raw,
                    None,
                    _reject(RECORD, f"row exceeds the {MAX_RECORD_BYTES} byte limit"),
                    spec.event_type,
                )
                continue
            try:
                yield (
                    (name, rowno),
                    raw,
                    mapper.apply(dict(zip(header, row, strict=True))),
                    None,
                    spec.event_type,
                )
            except RecordRejected as exc:
                yield (name, rowno), raw, None, exc, spec.event_type
        if not seen_any:
            yield (name, 0), header, None, _reject(FILE, "file has a header but no rows"), None


def _read_sqlite(spec: SourceSpec, path: Path) -> Iterator[Item]:
    name = path.name
    opts = spec.options
    key = opts.get("key", "rowid")
    if "query" in opts:
        query = str(opts["query"])
    else:
        table = str(opts.get("table", "transactions"))
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
            raise SourceError(f"source {spec.name!r}: invalid table name {table!r}")
        # the table name is checked against an identifier pattern above
        query = f'SELECT {"rowid AS rowid, " if key == "rowid" else ""}* FROM "{table}"'  # noqa: S608
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise SourceError(f"source {spec.name!r}: cannot open {path}: {exc}") from None
    conn.row_factory = sqlite3.Row
    conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    mapper = spec.fields
    try:
        cursor = conn.execute(query)
        seen_any = False
        for row in cursor:
            seen_any = True
            data = dict(row)
            loc = f"{name}#{key}={data.get(key)}"
            if key == "rowid":
                data.pop("rowid", None)
            if not _text_fields_ok([v for v in data.values() if isinstance(v, str)]):
                yield (
                    loc,
                    data,
                    None,
                    _reject(RECORD, "not valid UTF-8 text in a column"),
                    spec.event_type,
                )
                continue
            try:
                record = mapper.apply(data) if mapper is not None else data
                yield loc, data, record, None, spec.event_type
            except RecordRejected as exc:
                yield loc, data, None, exc, spec.event_type
        if not seen_any:
            yield name, b"", None, _reject(FILE, "query returned no rows"), None
    except sqlite3.Error as exc:
        raise SourceError(f"source {spec.name!r}: cannot read {path}: {exc}") from None
    finally:
        conn.close()


def _read_documents(spec: SourceSpec, path: Path) -> Iterator[Item]:
    name = path.name
    raw = path.read_bytes()
    if not raw.strip():
        yield _empty_file(path)
        return
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        err = (
            _decode_error(raw)
            if "UTF-8" in str(exc)
            else _reject(RECORD, f"truncated or invalid JSON document: {exc}")
        )
        yield name, raw[:MAX_RECORD_BYTES], None, err, None
        return
    if type(doc) is not dict:
        yield name, raw[:MAX_RECORD_BYTES], None, _reject(RECORD, "expected a JSON object"), None
        return
    items_path = str(spec.options["items"])
    items: Any = doc
    for part in items_path.split("."):
        items = items.get(part) if isinstance(items, dict) else None
    if not isinstance(items, list):
        yield (
            name,
            raw[:MAX_RECORD_BYTES],
            None,
            _reject(items_path, "expected a list of events in the document"),
            None,
        )
        return
    type_field = str(spec.options["type_field"])
    for i, item in enumerate(items):
        loc = f"{name}:{items_path}[{i}]"
        if type(item) is not dict:
            yield loc, item, None, _reject(RECORD, "expected an object"), None
            continue
        kind = item.get(type_field)
        mapping = spec.types.get(str(kind))
        if mapping is None:
            yield (
                loc,
                item,
                None,
                _reject(
                    type_field,
                    f"unknown item type {str(kind)[:40]!r}; expected one of {sorted(spec.types)}",
                ),
                None,
            )
            continue
        event_type, mapper = mapping
        if len(orjson.dumps(item)) > MAX_RECORD_BYTES:
            yield (
                loc,
                item,
                None,
                _reject(RECORD, f"item exceeds {MAX_RECORD_BYTES} bytes"),
                event_type,
            )
            continue
        try:
            yield loc, item, mapper.apply({**item, DOC_KEY: doc}), None, event_type
        except RecordRejected as exc:
            yield loc, item, None, exc, event_type


def _read_authlog(spec: SourceSpec, path: Path) -> Iterator[Item]:
    name = path.name
    patterns = spec.patterns
    seen_any = False
    for lineno, line in _nonblank_lines(path):
        seen_any = True
        loc = (name, lineno)
        if len(line) > MAX_RECORD_BYTES:
            reason = f"line exceeds {MAX_RECORD_BYTES} bytes"
            yield loc, line[:MAX_RECORD_BYTES], None, _reject(RECORD, reason), None
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield loc, line, None, _decode_error(line), None
            continue
        for pattern in patterns:
            match = pattern.regex.match(text)
            if match is not None:
                try:
                    record = pattern.fields.apply(match.groupdict())
                    yield loc, text, record, None, pattern.event_type
                except RecordRejected as exc:
                    yield loc, text, None, exc, pattern.event_type
                break
        else:
            reason = f"line matches no pattern of source {spec.name!r}"
            yield loc, text, None, _reject(RECORD, reason), None
    if not seen_any:
        yield _empty_file(path)


_READERS = {
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "sqlite": _read_sqlite,
    "documents": _read_documents,
    "authlog": _read_authlog,
}


def format_location(location: Any) -> str:
    """Render a reader's location (``(file, line)`` tuples are kept unformatted until needed)."""
    if isinstance(location, tuple):
        return f"{location[0]}:{location[1]}"
    return str(location)


def raw_for_storage(raw: Any) -> tuple[Any, str]:
    """The raw record as JSON-storable value and its encoding (``utf-8``, ``base64``, ``json``)."""
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"
    if isinstance(raw, str):
        return raw, "utf-8"
    return raw, "json"
