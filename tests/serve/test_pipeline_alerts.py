"""Blocks and reviews reach investigators: the pipeline's alerts through a real HTTP receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rules import PolicyConfig, ruleset_from_yaml
from serve.alerts import query_deliveries
from serve.alerts.config import AlertsConfig, build_dispatcher
from serve.pipeline import ScoringPipeline


@pytest.fixture
def slack() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_a_block_sends_one_alert_per_ring_or_account(
    history_and_model: tuple, slack: tuple, tmp_path: Path
) -> None:
    history, (model, manifest) = history_and_model
    url, received = slack
    txns = [e for e in history.events if e.event_type == "transaction"]
    target = txns[0]
    same_account = [t for t in txns if t.account_id == target.account_id][:3]
    ids = ", ".join(f'"{t.txn_id}"' for t in same_account)
    rules = ruleset_from_yaml(
        f"""
version: "1"
rules:
  - {{id: caught, when: 'txn.txn_id in [{ids}]', action: block, priority: 10}}
"""
    )
    dispatcher = build_dispatcher(AlertsConfig(log_dir=tmp_path, slack_webhook_url=url))
    quiet = PolicyConfig(block_threshold=1.0, review_threshold=1.0)
    pipeline = ScoringPipeline(model, manifest, ruleset=rules, policy=quiet, alerts=dispatcher)
    decisions = pipeline.process(same_account)
    assert all(d.decision == "block" for d in decisions)
    assert dispatcher.close(10.0)
    # three blocks of one account within the window: one alert delivered, two deduplicated
    assert len(received) == 1
    assert target.txn_id in json.dumps(received[0])
    statuses = sorted(r.status for r in query_deliveries(tmp_path))
    assert statuses == ["deduplicated", "deduplicated", "sent"]
    assert pipeline.stats.alert_failures == 0


def test_a_severity_no_channel_takes_is_not_even_built(
    history_and_model: tuple, slack: tuple, tmp_path: Path
) -> None:
    history, (model, manifest) = history_and_model
    url, _ = slack
    config = AlertsConfig(log_dir=tmp_path, slack_webhook_url=url, routes={"slack": ("critical",)})
    dispatcher = build_dispatcher(config)
    assert dispatcher.wants("critical")
    assert not dispatcher.wants("high")
    assert not dispatcher.wants("medium")
    assert dispatcher.close(10.0)

    class CriticalOnly:  # the pipeline asks first, then submits only what a channel takes
        def __init__(self) -> None:
            self.asked: list[str] = []
            self.submitted: list[str] = []

        def wants(self, severity: str) -> bool:
            self.asked.append(severity)
            return severity == "critical"

        def submit(self, alert: object) -> bool:
            self.submitted.append(alert.txn_id)  # type: ignore[attr-defined]
            return True

    txns = [e for e in history.events if e.event_type == "transaction"][:4]
    rules = ruleset_from_yaml(
        f"""
version: "1"
rules:
  - {{id: stop, when: 'txn.txn_id == "{txns[0].txn_id}"', action: block, priority: 20}}
  - {{id: look, when: 'txn.txn_id != "{txns[0].txn_id}"', action: review, priority: 10}}
"""
    )
    sink = CriticalOnly()
    quiet = PolicyConfig(block_threshold=1.0, review_threshold=1.0)
    pipeline = ScoringPipeline(model, manifest, ruleset=rules, policy=quiet, alerts=sink)
    decisions = pipeline.process(txns)
    assert [d.decision for d in decisions] == ["block", "review", "review", "review"]
    assert sink.submitted == [txns[0].txn_id]
    assert sink.asked.count("critical") == 1
    assert len(sink.asked) == 4
