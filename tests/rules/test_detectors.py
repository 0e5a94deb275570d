from datetime import UTC, datetime, timedelta

import pytest

from rules.detectors import (
    DEFAULT_DETECTORS,
    ImpossibleTravel,
    NewDeviceHighAmount,
    VelocityBurst,
    great_circle_km,
)
from rules.errors import EvalFault
from rules.evaluate import evaluate
from rules.ruleset import Rule

LONDON = (51.5074, -0.1278)
NEW_YORK = (40.7128, -74.0060)
PARIS = (48.8566, 2.3522)
NOON = datetime(2024, 5, 1, 12, tzinfo=UTC)


def travel(start, end, minutes):
    return {
        "txn": {"lat": end[0], "lon": end[1], "timestamp": NOON + timedelta(minutes=minutes)},
        "facts": {"previous_event": {"lat": start[0], "lon": start[1], "timestamp": NOON}},
    }


def test_great_circle_distances():
    assert great_circle_km(*LONDON, *NEW_YORK) == pytest.approx(5570, rel=0.01)
    assert great_circle_km(*LONDON, *PARIS) == pytest.approx(344, rel=0.01)
    assert great_circle_km(*PARIS, *PARIS) == 0


def test_london_to_new_york_in_ten_minutes_is_impossible():
    result = ImpossibleTravel()(travel(LONDON, NEW_YORK, 10))
    assert result.hit
    assert "km/h" in result.detail


def test_london_to_paris_in_three_hours_is_possible():
    assert not ImpossibleTravel()(travel(LONDON, PARIS, 180)).hit


def test_short_hops_never_hit_and_same_instant_far_away_does():
    nearby = (51.6, -0.2)
    assert not ImpossibleTravel()(travel(LONDON, nearby, 0)).hit
    assert ImpossibleTravel()(travel(LONDON, PARIS, 0)).hit


def test_missing_previous_or_location_is_no_hit():
    assert not ImpossibleTravel()({"txn": {"lat": 1, "lon": 1}, "facts": {}}).hit
    data = travel(LONDON, PARIS, 1)
    data["txn"].pop("lat")
    assert not ImpossibleTravel()(data).hit


@pytest.mark.parametrize(
    "change",
    [
        {"lat": "north"},
        {"lat": 95},
        {"timestamp": datetime(2024, 5, 1)},  # naive on purpose
        {"timestamp": "yesterday"},
        {"timestamp": None},
    ],
)
def test_malformed_facts_are_faults(change):
    data = travel(LONDON, NEW_YORK, 10)
    data["txn"].update(change)
    with pytest.raises(EvalFault):
        ImpossibleTravel()(data)


def test_timestamps_as_text_and_epoch_seconds():
    data = travel(LONDON, NEW_YORK, 10)
    data["txn"]["timestamp"] = (NOON + timedelta(minutes=10)).isoformat()
    data["facts"]["previous_event"]["timestamp"] = NOON.timestamp()
    assert ImpossibleTravel()(data).hit


def test_velocity_burst():
    def counts(n):
        return {"velocity": {"account": {"1h": {"count": n}}}}

    assert VelocityBurst(limit=10)(counts(11)).hit
    assert not VelocityBurst(limit=10)(counts(10)).hit
    with pytest.raises(EvalFault, match=r"missing field velocity\.account\.1h\.count"):
        VelocityBurst()({})


def test_new_device_high_amount():
    detect = NewDeviceHighAmount(amount_threshold=1000, new_for=timedelta(days=1))
    txn = {"amount": 2000, "timestamp": NOON}
    assert detect({"txn": txn, "facts": {"device_first_seen": None}}).hit
    assert detect({"txn": txn, "facts": {"device_first_seen": NOON - timedelta(hours=2)}}).hit
    assert not detect({"txn": txn, "facts": {"device_first_seen": NOON - timedelta(days=30)}}).hit
    assert not detect({"txn": {"amount": 50}, "facts": {}}).hit


def test_detectors_from_rules_and_their_faults_are_outcomes():
    rule = Rule("travel", 'detector("impossible_travel")', "step_up")
    outcome = evaluate(rule, travel(LONDON, NEW_YORK, 10))
    assert outcome.result == "hit"
    assert any("impossible_travel" in line and "km/h" in line for line in outcome.trace)
    bad = travel(LONDON, NEW_YORK, 10)
    bad["txn"]["lat"] = "north"
    faulted = evaluate(rule, bad)
    assert faulted.result == "error"
    assert "txn.lat" in faulted.error


@pytest.mark.parametrize("name", sorted(DEFAULT_DETECTORS))
def test_every_detector_is_deterministic_and_only_faults(name):
    detect = DEFAULT_DETECTORS[name]
    samples = [
        travel(LONDON, NEW_YORK, 10),
        {
            "txn": {"amount": 5000, "timestamp": NOON},
            "facts": {"device_first_seen": None},
            "velocity": {"account": {"1h": {"count": 50}}},
        },
        {},
        {"txn": None, "facts": "x", "velocity": []},
        {"txn": {"amount": "a", "lat": [], "lon": {}, "timestamp": 1e30}},
    ]
    for data in samples:
        try:
            first = detect(data)
        except EvalFault:
            continue
        assert detect(data) == first
    assert "(" in repr(detect)
