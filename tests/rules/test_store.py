"""The versioned rule-set store: publish, rollback, shadow, audit and hot reload."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rules import LiveRuleSet, RuleSetError, decide
from rules.store import RuleStore, RuleStoreError, StoreFollower

V1 = """
version: "1"
rules:
  - {id: big, when: "txn.amount > 1000", action: review}
  - {id: farm, when: "graph.accounts_per_device >= 3", action: block, priority: 10}
"""
V2 = """
version: "2"
rules:
  - {id: big, when: "txn.amount > 500", action: review}
  - {id: night, when: "txn.hour < 5", action: tag, weight: 0.1}
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 6, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> RuleStore:
    return RuleStore(tmp_path / "rules", clock=Clock())


def test_empty_store(store: RuleStore) -> None:
    assert store.live() is None
    assert store.shadow() is None
    assert store.history() == []
    assert store.versions() == []


def test_publish_keeps_every_version_and_audits_the_diff(store: RuleStore) -> None:
    first = store.publish(V1, who="ana")
    assert (first.action, first.version, first.previous) == ("publish", "1", None)
    assert first.diff is not None
    assert first.diff["added"] == ["big", "farm"]
    second = store.publish(V2, who="bo")
    assert second.previous == "1"
    assert second.diff == {
        "old_version": "1",
        "new_version": "2",
        "added": ["night"],
        "removed": ["farm"],
        "changed": [{"rule_id": "big", "fields": ["when"]}],
    }
    live = store.live()
    assert live is not None
    assert live.version == "2"
    assert second.content_hash == live.content_hash
    assert store.versions() == ["1", "2"]
    assert (store.folder / "versions" / "1.yaml").read_text() == V1
    lines = (store.folder / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["who"] for line in lines] == ["ana", "bo"]
    history = store.history()
    assert history == [first, second]
    at = [datetime.fromisoformat(e.at) for e in history]
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in at)
    assert at[0] < at[1]


def test_invalid_rule_set_is_refused_and_nothing_changes(store: RuleStore) -> None:
    store.publish(V1, who="ana")
    before = (store.folder / "audit.jsonl").read_text()
    bad = 'version: "3"\nrules: [{id: x, when: "txn.amount >", action: deny}]'
    with pytest.raises(RuleSetError) as caught:
        store.publish(bad, who="ana")
    assert {(p.rule_id, p.field) for p in caught.value.problems} == {("x", "action"), ("x", "when")}
    with pytest.raises(RuleSetError, match="not valid YAML"):
        store.publish("version: [unclosed", who="ana")
    assert store.live_version() == "1"
    assert store.versions() == ["1"]
    assert (store.folder / "audit.jsonl").read_text() == before


def test_refusals(store: RuleStore) -> None:
    store.publish(V1, who="ana")
    with pytest.raises(RuleStoreError, match="already published"):
        store.publish(V1.replace("1000", "2000"), who="ana")
    with pytest.raises(RuleStoreError, match="non-empty"):
        store.publish(V2, who=" ")
    with pytest.raises(RuleStoreError, match="no rule set version '9'"):
        store.rollback("9", who="ana")
    with pytest.raises(RuleStoreError, match="needs 1 to 100"):
        store.rollback("../LIVE", who="ana")
    with pytest.raises(RuleStoreError, match="needs 1 to 100"):
        store.publish('version: "a/b"\nrules: []', who="ana")
    with pytest.raises(RuleStoreError):
        store.set_shadow("9", who="ana")
    assert store.live_version() == "1"
    assert len(store.history()) == 1


def test_republishing_the_same_version_makes_it_live_again(store: RuleStore) -> None:
    store.publish(V1, who="ana")
    store.publish(V2, who="ana")
    again = store.publish(V1, who="ana")
    assert (again.version, again.previous) == ("1", "2")
    assert store.live_version() == "1"


def test_rollback(store: RuleStore) -> None:
    store.publish(V1, who="ana")
    store.publish(V2, who="ana")
    entry = store.rollback("1", who="cy")
    assert (entry.action, entry.version, entry.previous, entry.who) == ("rollback", "1", "2", "cy")
    assert entry.diff is not None
    assert entry.diff["added"] == ["farm"]
    assert entry.diff["removed"] == ["night"]
    assert store.live_version() == "1"
    assert [e.action for e in store.history()] == ["publish", "publish", "rollback"]


def test_shadow(store: RuleStore) -> None:
    store.publish(V1, who="ana")
    store.publish(V2, who="ana")
    store.rollback("1", who="ana")
    entry = store.set_shadow("2", who="dee")
    assert (entry.action, entry.version, entry.previous) == ("shadow", "2", "1")
    assert entry.diff is not None
    assert entry.diff["added"] == ["night"]
    shadow = store.shadow()
    assert shadow is not None
    assert shadow.version == "2"
    assert store.live_version() == "1"
    cleared = store.set_shadow(None, who="dee")
    assert (cleared.version, cleared.content_hash, cleared.diff) == (None, None, None)
    assert store.shadow() is None


def test_naive_clock_is_refused(tmp_path: Path) -> None:
    store = RuleStore(tmp_path, clock=lambda: datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.publish(V1, who="ana")


def test_publish_hot_reloads_a_reader(store: RuleStore) -> None:
    """A reader that polls between batches picks up a publish without a restart."""
    store.publish(V1, who="ana")
    follower = StoreFollower(store, LiveRuleSet(store.get("1")))
    event = {"txn": {"amount": 700, "hour": 3}, "graph": {"accounts_per_device": 1}}

    def process() -> str:
        follower.reload_if_changed()
        return decide(0.1, event, follower.live.current).action

    assert process() == "approve"
    seen = follower.changes
    assert follower.reload_if_changed() is None
    assert follower.changes == seen
    store.publish(V2, who="ana")
    assert process() == "review"  # V2 reviews amounts over 500
    assert follower.changes == seen + 1
    assert follower.live.current.version == "2"
    store.set_shadow("1", who="ana")
    assert follower.reload_if_changed() is None  # the live set did not change
    assert follower.shadow is not None
    assert follower.shadow.version == "1"
    decision = decide(0.1, event, follower.live.current, shadow=follower.shadow)
    assert decision.shadow is not None
    assert (decision.action, decision.shadow.action) == ("review", "approve")
    store.rollback("1", who="ana")
    change = follower.reload_if_changed()
    assert change is not None
    assert change.new_version == "1"
    assert process() == "approve"
