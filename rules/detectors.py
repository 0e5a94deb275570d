"""Built-in detectors: pure functions over facts supplied with the evaluation data.

A detector is called with the evaluation data (the mapping rules read with field paths) and
returns a ``DetectorResult``: ``hit`` and a ``detail`` for the trace. Missing optional facts (no
previous event, no location) are a ``no hit`` with the reason; malformed facts (a latitude that
is text, a naive datetime) raise ``EvalFault`` and the rule's outcome is ``error``. Thresholds are
constructor arguments; ``DEFAULT_DETECTORS`` holds one of each with the defaults, by name.

Timestamps are timezone-aware datetimes, ISO-8601 text with an offset, or seconds since the epoch.

>>> london = {"lat": 51.5074, "lon": -0.1278, "timestamp": "2024-05-01T12:00:00+00:00"}
>>> new_york = {"lat": 40.7128, "lon": -74.0060, "timestamp": "2024-05-01T12:10:00+00:00"}
>>> ImpossibleTravel()({"txn": new_york, "facts": {"previous_event": london}}).hit
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

from rules.errors import EvalFault
from rules.operators import is_number, type_name

EARTH_RADIUS_KM = 6371.0088
"""The mean Earth radius used by ``great_circle_km``."""


@dataclass(frozen=True, slots=True)
class DetectorResult:
    """What a detector found: ``hit`` and a one-line ``detail`` for investigators."""

    hit: bool
    detail: str


class Detector(Protocol):
    """A detector: evaluation data in, a result out. Pure; raises only ``EvalFault``."""

    def __call__(self, data: Mapping[str, Any]) -> DetectorResult:
        """Examine ``data``."""
        ...


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The haversine distance in kilometres between two points given in degrees.

    >>> round(great_circle_km(51.5074, -0.1278, 48.8566, 2.3522))
    344
    """
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def lookup(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of ``data``, or ``None`` when any part is absent.

    Raises:
        EvalFault: when a part of the path is not a mapping.
    """
    node: Any = data
    for key in path.split("."):
        if node is None:
            return None
        if not isinstance(node, Mapping):
            raise EvalFault(f"{path}: expected a mapping, found a {type_name(node)}", path)
        node = node.get(key)
    return node


def to_datetime(value: object, path: str) -> datetime:
    """A timezone-aware datetime from a datetime, ISO-8601 text or epoch seconds.

    Raises:
        EvalFault: on a naive datetime, unparseable text or another type.

    >>> to_datetime(0, "t")
    datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise EvalFault(f"{path}: not an ISO-8601 timestamp: {value!r}", path) from exc
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise EvalFault(f"{path}: naive datetime (no time zone)", path)
        return value
    if is_number(value):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)  # type: ignore[arg-type]
        except (OverflowError, OSError, ValueError) as exc:
            raise EvalFault(f"{path}: epoch seconds out of range: {value!r}", path) from exc
    raise EvalFault(f"{path}: expected a timestamp, found a {type_name(value)}", path)


def _coordinate(event: Mapping[str, Any], key: str, path: str, limit: float) -> float:
    value = event.get(key)
    if not is_number(value) or not -limit <= value <= limit:  # type: ignore[operator]
        raise EvalFault(f"{path}.{key}: expected degrees within ±{limit:g}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _number(data: Mapping[str, Any], path: str) -> float:
    value = lookup(data, path)
    if value is None:
        raise EvalFault(f"missing field {path}", path)
    if not is_number(value):
        raise EvalFault(f"{path}: expected a number, found a {type_name(value)}", path)
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ImpossibleTravel:
    """Consecutive located events of an account too far apart for the time between them.

    Hits when the great-circle distance is at least ``min_distance_km`` and the implied speed is
    above ``max_speed_kmh`` (events at the same instant count as infinitely fast).

    Args:
        max_speed_kmh: the fastest plausible travel, a little above an airliner's cruise.
        min_distance_km: shorter hops never hit (geolocation of IP addresses is coarse).
        event_path: where the current event's ``lat``, ``lon`` and ``timestamp`` are.
        previous_path: where the account's previous located event is.
    """

    max_speed_kmh: float = 900.0
    min_distance_km: float = 100.0
    event_path: str = "txn"
    previous_path: str = "facts.previous_event"

    def __call__(self, data: Mapping[str, Any]) -> DetectorResult:
        """Examine the current and previous events of ``data``."""
        event = lookup(data, self.event_path)
        previous = lookup(data, self.previous_path)
        if previous is None:
            return DetectorResult(False, "no previous located event")
        if not isinstance(event, Mapping) or event.get("lat") is None or event.get("lon") is None:
            return DetectorResult(False, "current event has no location")
        if not isinstance(previous, Mapping):
            raise EvalFault(f"{self.previous_path}: expected a mapping", self.previous_path)
        lat1 = _coordinate(previous, "lat", self.previous_path, 90)
        lon1 = _coordinate(previous, "lon", self.previous_path, 180)
        lat2 = _coordinate(event, "lat", self.event_path, 90)
        lon2 = _coordinate(event, "lon", self.event_path, 180)
        then = to_datetime(previous.get("timestamp"), f"{self.previous_path}.timestamp")
        now = to_datetime(event.get("timestamp"), f"{self.event_path}.timestamp")
        distance = great_circle_km(lat1, lon1, lat2, lon2)
        hours = abs((now - then).total_seconds()) / 3600
        speed = distance / hours if hours > 0 else math.inf
        hit = distance >= self.min_distance_km and speed > self.max_speed_kmh
        detail = f"{distance:.0f} km in {hours * 60:.1f} min = {speed:.0f} km/h"
        return DetectorResult(hit, detail)


@dataclass(frozen=True, slots=True)
class VelocityBurst:
    """More events in a window than ``limit``, from the supplied window counters.

    Reads ``velocity.<entity>.<window>.count``, as ``velocity(entity, window).count`` would.
    """

    entity: str = "account"
    window: str = "1h"
    limit: int = 10

    def __call__(self, data: Mapping[str, Any]) -> DetectorResult:
        """Compare the window's count with the limit."""
        count = _number(data, f"velocity.{self.entity}.{self.window}.count")
        hit = count > self.limit
        return DetectorResult(
            hit, f"{count:g} {self.entity} events in {self.window} (limit {self.limit})"
        )


@dataclass(frozen=True, slots=True)
class NewDeviceHighAmount:
    """A large amount from a device first seen recently (or never before) for the account.

    Reads ``txn.amount``, ``txn.timestamp`` and ``facts.device_first_seen`` (null: never seen).
    """

    amount_threshold: float = 1000.0
    new_for: timedelta = timedelta(days=1)

    def __call__(self, data: Mapping[str, Any]) -> DetectorResult:
        """Check the amount, then the device's age at the transaction's time."""
        amount = _number(data, "txn.amount")
        if amount < self.amount_threshold:
            return DetectorResult(False, f"amount {amount:g} under {self.amount_threshold:g}")
        first_seen = lookup(data, "facts.device_first_seen")
        if first_seen is None:
            return DetectorResult(True, f"amount {amount:g} from a device never seen before")
        age = to_datetime(lookup(data, "txn.timestamp"), "txn.timestamp") - to_datetime(
            first_seen, "facts.device_first_seen"
        )
        hit = age < self.new_for
        return DetectorResult(hit, f"amount {amount:g} from a device first seen {age} before")


DEFAULT_DETECTORS: Mapping[str, Detector] = MappingProxyType(
    {
        "impossible_travel": ImpossibleTravel(),
        "velocity_burst": VelocityBurst(),
        "new_device_high_amount": NewDeviceHighAmount(),
    }
)
"""The built-in detectors with their default thresholds, by the name rules call them."""
