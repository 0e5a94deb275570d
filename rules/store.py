r"""A versioned rule-set store with an append-only audit log, and hot reload from it.

One folder holds everything::

    <folder>/versions/<version>.yaml   every version ever published, as published (immutable)
    <folder>/LIVE                      the version in force
    <folder>/SHADOW                    the version tried beside it, when there is one
    <folder>/audit.jsonl               who did what and when, one JSON object a line

Every change (``publish``, ``rollback``, ``shadow``) appends an audit entry with the person, the
time (aware UTC, from an injected clock), the version, its content hash and the diff against the
version that was live before. Pointers are replaced atomically; a lock file serialises writers.
Besides ``rules.loader``, this module is the only place in ``rules`` that touches the disk.

>>> import tempfile
>>> from datetime import UTC, datetime
>>> folder = tempfile.mkdtemp()
>>> store = RuleStore(folder, clock=lambda: datetime(2024, 6, 1, tzinfo=UTC))
>>> entry = store.publish("version: '1'\nrules: [{id: r, when: 'score > 0.5', action: review}]",
...                       who="ana")
>>> entry.action, entry.version, entry.diff["added"]
('publish', '1', ['r'])
>>> store.live().version, store.versions()
('1', ['1'])
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ingest.errors import RingfenceError
from rules.loader import read_ruleset
from rules.ruleset import LiveRuleSet, RuleSet, RuleSetDiff, diff, ruleset_from_yaml

AuditAction = Literal["publish", "rollback", "shadow"]

_VERSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}")
"""Versions the store accepts: they name files, so no separators and no leading dot."""


class RuleStoreError(RingfenceError):
    """A store operation was refused (unknown version, clash, bad name); nothing changed."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log.

    Args:
        at: when, aware UTC, ISO 8601.
        who: the person (or system) who made the change.
        action: ``publish``, ``rollback`` or ``shadow``.
        version: the version made live (or shadow); ``None`` when the shadow was cleared.
        content_hash: that version's content hash; ``None`` with no version.
        previous: the version live before the change, if any.
        diff: rules ``added``, ``removed`` and ``changed`` against ``previous``; ``None`` when
            there was no live version before or no version now.
    """

    at: str
    who: str
    action: AuditAction
    version: str | None
    content_hash: str | None
    previous: str | None
    diff: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "at": self.at,
            "who": self.who,
            "action": self.action,
            "version": self.version,
            "content_hash": self.content_hash,
            "previous": self.previous,
            "diff": self.diff,
        }


def diff_to_dict(change: RuleSetDiff) -> dict[str, Any]:
    """A RuleSetDiff as plain data.

    >>> from rules.ruleset import Rule
    >>> diff_to_dict(diff(RuleSet("1", ()), RuleSet("2", (Rule("x", "true", "tag"),))))
    {'old_version': '1', 'new_version': '2', 'added': ['x'], 'removed': [], 'changed': []}
    """
    return {
        "old_version": change.old_version,
        "new_version": change.new_version,
        "added": list(change.added),
        "removed": list(change.removed),
        "changed": [{"rule_id": c.rule_id, "fields": list(c.fields)} for c in change.changed],
    }


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RuleStore:
    """Every published rule-set version, the live and shadow pointers and the audit log.

    Args:
        folder: the store's folder (created on first write).
        clock: gives the time of audit entries; must be timezone-aware.
        detectors: the detector names rules may call; the built-in ones by default.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        clock: Callable[[], datetime] = _utc_now,
        detectors: Sequence[str] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self._clock = clock
        self._detectors = detectors

    # -- reading -------------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """The versions published so far, sorted."""
        folder = self.folder / "versions"
        if not folder.is_dir():
            return []
        return sorted(p.name.removesuffix(".yaml") for p in folder.glob("*.yaml"))

    def live_version(self) -> str | None:
        """The version in force, if any (one small read; cheap enough to poll)."""
        return self._pointer("LIVE")

    def shadow_version(self) -> str | None:
        """The shadow version, if any."""
        return self._pointer("SHADOW")

    def get(self, version: str) -> RuleSet:
        """A published version.

        Raises:
            RuleStoreError: when it was never published.
        """
        path = self._version_path(version)
        if not path.is_file():
            known = ", ".join(self.versions()) or "none"
            raise RuleStoreError(f"no rule set version {version!r} (published: {known})")
        return read_ruleset(path, detectors=self._detectors)

    def live(self) -> RuleSet | None:
        """The rule set in force, if any."""
        version = self.live_version()
        return None if version is None else self.get(version)

    def shadow(self) -> RuleSet | None:
        """The shadow rule set, if any."""
        version = self.shadow_version()
        return None if version is None else self.get(version)

    def history(self) -> list[AuditEntry]:
        """The audit log, oldest first."""
        path = self.folder / "audit.jsonl"
        if not path.is_file():
            return []
        out = []
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    out.append(AuditEntry(**json.loads(line)))
        return out

    # -- changing ------------------------------------------------------------------------------

    def publish(self, text: str, who: str) -> AuditEntry:
        """Validate a rule set (YAML or JSON text), keep it as a new version and make it live.

        Publishing the text of an existing version again makes that version live again.

        Raises:
            RuleSetError: when the text is invalid; nothing changes.
            RuleStoreError: on a version name the store cannot hold, or a version already
                published with other content; nothing changes.
        """
        who = self._who(who)
        ruleset = ruleset_from_yaml(text, detectors=self._detectors)
        self._check_name(ruleset.version)
        with self._locked():
            path = self._version_path(ruleset.version)
            if path.is_file():
                existing = read_ruleset(path, detectors=self._detectors)
                if existing.content_hash != ruleset.content_hash:
                    raise RuleStoreError(
                        f"version {ruleset.version!r} is already published with other rules; "
                        "give the new rule set a new version"
                    )
            else:
                _write_atomic(path, text)
            return self._make_live(ruleset, who, "publish")

    def rollback(self, version: str, who: str) -> AuditEntry:
        """Make an earlier published version live again.

        Raises:
            RuleStoreError: when ``version`` was never published; nothing changes.
        """
        who = self._who(who)
        self._check_name(version)
        with self._locked():
            return self._make_live(self.get(version), who, "rollback")

    def set_shadow(self, version: str | None, who: str) -> AuditEntry:
        """Try a published version beside the live one (``None`` stops the shadow).

        Raises:
            RuleStoreError: when ``version`` was never published; nothing changes.
        """
        who = self._who(who)
        with self._locked():
            previous = self.live_version()
            if version is None:
                (self.folder / "SHADOW").unlink(missing_ok=True)
                return self._audit(who, "shadow", None, previous, None)
            self._check_name(version)
            ruleset = self.get(version)
            _write_atomic(self.folder / "SHADOW", version + "\n")
            return self._audit(who, "shadow", ruleset, previous, self._diff_from(previous, ruleset))

    # -- internals -----------------------------------------------------------------------------

    def _make_live(self, ruleset: RuleSet, who: str, action: AuditAction) -> AuditEntry:
        previous = self.live_version()
        change = self._diff_from(previous, ruleset)
        _write_atomic(self.folder / "LIVE", ruleset.version + "\n")
        return self._audit(who, action, ruleset, previous, change)

    def _diff_from(self, previous: str | None, ruleset: RuleSet) -> dict[str, Any] | None:
        if previous is None:
            return diff_to_dict(diff(RuleSet("", ()), ruleset))
        return diff_to_dict(diff(self.get(previous), ruleset))

    def _audit(
        self,
        who: str,
        action: AuditAction,
        ruleset: RuleSet | None,
        previous: str | None,
        change: dict[str, Any] | None,
    ) -> AuditEntry:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the store's clock must give timezone-aware datetimes")
        entry = AuditEntry(
            at=now.astimezone(UTC).isoformat(),
            who=who,
            action=action,
            version=ruleset.version if ruleset is not None else None,
            content_hash=ruleset.content_hash if ruleset is not None else None,
            previous=previous,
            diff=change,
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "audit.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry.to_dict(), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return entry

    def _pointer(self, name: str) -> str | None:
        try:
            text = (self.folder / name).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def _version_path(self, version: str) -> Path:
        self._check_name(version)
        return self.folder / "versions" / f"{version}.yaml"

    @staticmethod
    def _check_name(version: str) -> None:
        if not _VERSION.fullmatch(version):
            raise RuleStoreError(
                f"version {version!r}: the store needs 1 to 100 letters, digits or '_.:-', "
                "not starting with '.', '-' or ':'"
            )

    @staticmethod
    def _who(who: str) -> str:
        if not who or not who.strip():
            raise RuleStoreError("say who makes the change (a non-empty name)")
        return who.strip()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class StoreFollower:
    r"""Keeps a LiveRuleSet (and the shadow) in step with a store: hot reload without a restart.

    Call ``reload_if_changed`` now and then (a timer, or between micro-batches); it reads the
    ``LIVE`` and ``SHADOW`` pointers and loads a version only when one moved. Readers take
    ``live.current`` once per event, so one event always sees one whole rule set.

    Args:
        store: the store to follow.
        live: the LiveRuleSet to update; a new one (with an empty set) by default.

    >>> import tempfile
    >>> store = RuleStore(tempfile.mkdtemp())
    >>> follower = StoreFollower(store)
    >>> follower.reload_if_changed() is None, follower.changes
    (True, 0)
    >>> _ = store.publish("version: '1'\nrules: []", who="ana")
    >>> follower.reload_if_changed().new_version, follower.changes, follower.live.current.version
    ('1', 1, '1')
    """

    def __init__(self, store: RuleStore, live: LiveRuleSet | None = None) -> None:
        self.store = store
        self.live = live if live is not None else LiveRuleSet(RuleSet("", ()))
        self.shadow: RuleSet | None = None
        self.changes = 0
        """How many times the live set was replaced (a cheap change counter for readers)."""
        self._seen: tuple[str | None, str | None] = (None, None)

    def reload_if_changed(self) -> RuleSetDiff | None:
        """Load the live and shadow versions when a pointer moved.

        Returns:
            What changed in the live set, or ``None`` when it did not change.
        """
        live_version = self.store.live_version()
        shadow_version = self.store.shadow_version()
        if (live_version, shadow_version) == self._seen:
            return None
        change = None
        if live_version != self._seen[0] and live_version is not None:
            change = self.live.replace(self.store.get(live_version))
            self.changes += 1
        if shadow_version != self._seen[1]:
            self.shadow = None if shadow_version is None else self.store.get(shadow_version)
        self._seen = (live_version, shadow_version)
        return change
