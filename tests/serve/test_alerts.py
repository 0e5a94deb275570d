"""Alert dispatch against real receivers: local HTTP servers for Slack and Twilio, aiosmtpd."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from serve.alerts import (
    Alert,
    AlertDispatcher,
    AlertsConfig,
    DeliveryLog,
    EmailChannel,
    RetryPolicy,
    Router,
    SlackChannel,
    TwilioChannel,
    build_dispatcher,
    query_deliveries,
)
from serve.alerts.dispatcher import _AlertQueue, _Entry
from tests.services.ports import free_port

SID = "AC0123456789abcdef"
TOKEN = "tw-token-Zq81secret"
WEBHOOK_SECRET = "xoxWEBHOOKsecret42"
SMTP_PASSWORD = "smtp-pass-Hunter2!"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# -- receivers -------------------------------------------------------------------------------


@dataclass
class HttpReceiver:
    """A real HTTP server that records each POST and answers with scripted statuses."""

    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    echo_in_reason: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                reason = None
                if receiver.echo_in_reason:  # a hostile server echoing credentials back
                    reason = f"{self.path} {self.headers.get('Authorization', '')}"
                self.send_response(status, reason)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


class SmtpRecorder:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def slack() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def twilio() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(default_status=201).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpRecorder, int]]:
    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    yield recorder, port
    controller.stop()


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port that accepts connections (into the backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def make_alert(
    severity: str = "high",
    *,
    account: str = "acc_1",
    ring: str | None = None,
    kind: str = "review",
    txn: str = "txn_1",
) -> Alert:
    return Alert.new(
        severity,
        kind,
        f"{kind} {txn}",
        "Score above the review threshold",
        txn_id=txn,
        account_id=account,
        score=0.93,
        reasons=["shared device", "fan-out"],
        ring_id=ring,
    )


def fast_retry(max_attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(max_attempts=max_attempts, base_delay=0.01, jitter=0.0)


def twilio_channel(url: str, timeout: float = 2.0) -> TwilioChannel:
    return TwilioChannel(
        SID, TOKEN, "+15550000000", ["+15551112222"], base_url=url, timeout=timeout
    )


def email_channel(port: int, **kwargs: Any) -> EmailChannel:
    return EmailChannel(
        "127.0.0.1",
        port,
        "ringfence@example.com",
        ["oncall@example.com", "risk@example.com"],
        timeout=2.0,
        **kwargs,
    )


# -- tests -----------------------------------------------------------------------------------


def test_routes_each_severity_to_its_channels(
    tmp_path: Path, slack: HttpReceiver, twilio: HttpReceiver, smtp: tuple[SmtpRecorder, int]
) -> None:
    recorder, port = smtp
    router = Router(
        {
            "slack": ["critical", "high", "medium"],
            "sms": ["critical"],
            "email": ["critical", "high"],
        }
    )
    channels = [
        SlackChannel(f"{slack.url}/services/T1/B1/{WEBHOOK_SECRET}", timeout=2.0),
        twilio_channel(twilio.url),
        email_channel(port),
    ]
    log = DeliveryLog(tmp_path)
    critical = make_alert("critical", kind="ring_block", ring="ring_7", account="acc_c")
    high = make_alert("high", account="acc_h")
    medium = make_alert("medium", account="acc_m")
    with AlertDispatcher(channels, router, log, retry=fast_retry()) as dispatcher:
        for alert in (critical, high, medium):
            assert dispatcher.submit(alert)
        assert dispatcher.flush(10)

    bodies = [json.loads(r["body"]) for r in slack.requests]
    assert [b["text"].splitlines()[0] for b in bodies] == [
        "[CRITICAL] ring_block txn_1",
        "[HIGH] review txn_1",
        "[MEDIUM] review txn_1",
    ]
    assert slack.requests[0]["path"] == f"/services/T1/B1/{WEBHOOK_SECRET}"
    assert slack.requests[0]["headers"]["Content-Type"] == "application/json"
    assert "*Ring:* ring_7" in json.dumps(bodies[0]["blocks"])

    assert len(twilio.requests) == 1
    sms = twilio.requests[0]
    assert sms["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    form = urllib.parse.parse_qs(sms["body"].decode())
    assert form["To"] == ["+15551112222"]
    assert form["From"] == ["+15550000000"]
    assert "CRITICAL" in form["Body"][0]
    assert "ring ring_7" in form["Body"][0]
    user, _, password = (
        base64.b64decode(sms["headers"]["Authorization"].split()[1]).decode().partition(":")
    )
    assert (user, password) == (SID, TOKEN)

    assert len(recorder.messages) == 2
    sender, rcpts, msg = recorder.messages[0]
    assert sender == "ringfence@example.com"
    assert rcpts == ["oncall@example.com", "risk@example.com"]
    assert msg["Subject"] == "[Ringfence CRITICAL] ring_block txn_1"
    assert "account: acc_c  ring: ring_7" in msg.get_content()
    assert recorder.messages[1][2]["Subject"] == "[Ringfence HIGH] review txn_1"

    sent = {(r.alert_id, r.channel) for r in log.query(status="sent")}
    assert sent == {
        (critical.id, "slack"),
        (critical.id, "sms"),
        (critical.id, "email"),
        (high.id, "slack"),
        (high.id, "email"),
        (medium.id, "slack"),
    }
    assert all(r.attempt == 1 and r.at.tzinfo is not None for r in log.records())


def test_one_alert_per_ring_and_per_account_per_window(tmp_path: Path, slack: HttpReceiver) -> None:
    clock = FakeClock()
    log = DeliveryLog(tmp_path)
    dispatcher = AlertDispatcher(
        [SlackChannel(slack.url + "/hook", timeout=2.0)],
        Router({"slack": ["critical", "high", "medium"]}),
        log,
        retry=fast_retry(),
        dedup_window=timedelta(minutes=15),
        clock=clock,
    )
    first = make_alert(ring="ring_1", account="acc_1", txn="t1")
    dispatcher.submit(first)
    clock.advance(minutes=5)
    second = make_alert(ring="ring_1", account="acc_2", txn="t2")
    dispatcher.submit(second)
    lone = make_alert(account="acc_9", txn="t3")
    lone_again = make_alert(account="acc_9", txn="t4")
    dispatcher.submit(lone)
    dispatcher.submit(lone_again)
    clock.advance(minutes=11)  # 16 minutes after the first: the ring's window is over
    third = make_alert(ring="ring_1", account="acc_3", txn="t5")
    dispatcher.submit(third)
    assert dispatcher.close(10)

    texts = [json.loads(r["body"])["text"] for r in slack.requests]
    assert [t.splitlines()[0] for t in texts] == [
        "[HIGH] review t1",
        "[HIGH] review t3",
        "[HIGH] review t5",
    ]
    dedup = log.query(status="deduplicated")
    assert [(r.alert_id, r.dedup_key, r.attempt) for r in dedup] == [
        (second.id, "ring:ring_1", 0),
        (lone_again.id, "account:acc_9", 0),
    ]
    assert dedup[0].at == T0 + timedelta(minutes=5)
    assert [r.alert_id for r in log.query(status="sent")] == [first.id, lone.id, third.id]


def test_more_severe_alert_passes_the_window(tmp_path: Path, slack: HttpReceiver) -> None:
    with AlertDispatcher(
        [SlackChannel(slack.url + "/hook", timeout=2.0)],
        Router({"slack": ["critical", "high", "medium"]}),
        DeliveryLog(tmp_path),
        clock=FakeClock(),
    ) as dispatcher:
        dispatcher.submit(make_alert("medium", ring="ring_2"))
        dispatcher.submit(make_alert("critical", ring="ring_2", kind="ring_block"))
        dispatcher.submit(make_alert("high", ring="ring_2"))
    assert len(slack.requests) == 2


def test_retries_with_backoff_until_delivered(tmp_path: Path) -> None:
    flaky = HttpReceiver(statuses=[500, 500]).start()
    waits: list[float] = []
    log = DeliveryLog(tmp_path)
    try:
        with AlertDispatcher(
            [SlackChannel(flaky.url + "/hook", timeout=2.0)],
            Router({"slack": ["high"]}),
            log,
            retry=RetryPolicy(max_attempts=5, base_delay=1.0, multiplier=2.0, jitter=0.0),
            sleep=waits.append,
        ) as dispatcher:
            alert = make_alert("high")
            dispatcher.submit(alert)
    finally:
        flaky.stop()
    assert len(flaky.requests) == 3
    assert waits == [1.0, 2.0]
    records = log.query(alert_id=alert.id)
    assert [(r.attempt, r.status) for r in records] == [(1, "failed"), (2, "failed"), (3, "sent")]
    assert records[0].error is not None
    assert "HTTP 500" in records[0].error


def test_client_errors_are_not_retried_and_attempts_are_bounded(tmp_path: Path) -> None:
    rejecting = HttpReceiver(default_status=400).start()
    failing = HttpReceiver(default_status=503).start()
    log = DeliveryLog(tmp_path)
    try:
        with AlertDispatcher(
            [
                SlackChannel(rejecting.url + "/hook", timeout=2.0),
                twilio_channel(failing.url),
            ],
            Router({"slack": ["high"], "sms": ["high"]}),
            log,
            retry=fast_retry(max_attempts=3),
        ) as dispatcher:
            dispatcher.submit(make_alert("high"))
    finally:
        rejecting.stop()
        failing.stop()
    assert len(rejecting.requests) == 1
    assert len(failing.requests) == 3
    assert [r.attempt for r in log.query(channel="sms", status="failed")] == [1, 2, 3]
    assert not log.query(status="sent")


def test_a_dead_channel_delays_neither_submit_nor_the_others(
    tmp_path: Path, hanging_port: int, smtp: tuple[SmtpRecorder, int]
) -> None:
    recorder, port = smtp
    channels = [
        SlackChannel(f"http://127.0.0.1:{free_port()}/hook", timeout=2.0),  # refused
        twilio_channel(f"http://127.0.0.1:{hanging_port}", timeout=3.0),  # never answers
        email_channel(port),
    ]
    log = DeliveryLog(tmp_path)
    dispatcher = AlertDispatcher(
        channels,
        Router({"slack": ["critical"], "sms": ["critical"], "email": ["critical"]}),
        log,
        retry=RetryPolicy(max_attempts=2, base_delay=0.05, jitter=0.0),
    )
    started = time.monotonic()
    slowest = 0.0
    for i in range(20):
        before = time.perf_counter()
        assert dispatcher.submit(make_alert("critical", account=f"acc_{i}", txn=f"t{i}"))
        slowest = max(slowest, time.perf_counter() - before)
    assert slowest < 0.05

    deadline = time.monotonic() + 5
    while len(recorder.messages) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(recorder.messages) == 20
    assert time.monotonic() - started < 2.5  # well before the hanging SMS call times out

    began_close = time.monotonic()
    assert dispatcher.close(timeout=0.5) is False  # the SMS worker is still stuck
    assert time.monotonic() - began_close < 1.5
    assert len(log.query(channel="email", status="sent")) == 20
    refused = log.query(channel="slack", status="failed")
    assert refused
    assert all("connection failed" in (r.error or "") for r in refused)


def test_full_queue_drops_the_oldest_lowest_severity_alert() -> None:
    queue: _AlertQueue[_Entry] = _AlertQueue(3)
    entries = [
        _Entry(make_alert(sev, txn=f"t{i}"), T0)
        for i, sev in enumerate(["high", "medium", "critical", "medium"])
    ]
    for entry in entries[:3]:
        assert queue.put(entry) == (True, None)
    assert queue.put(entries[3]) == (True, entries[1])  # the older medium goes
    critical_only: _AlertQueue[_Entry] = _AlertQueue(1)
    critical_only.put(entries[2])
    assert critical_only.put(entries[1]) == (False, entries[1])  # a medium never evicts
    queue.close()
    assert queue.put(entries[0]) == (False, None)
    assert [queue.get(0.0) for _ in range(4)] == [entries[0], entries[2], entries[3], None]


class GateChannel:
    """A real in-process channel whose deliveries wait for a gate to open."""

    name = "gate"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.gate = threading.Event()
        self.sent: list[str] = []

    def send(self, alert: Alert) -> None:
        self.started.set()
        assert self.gate.wait(5)
        self.sent.append(alert.txn_id)

    def mask(self, text: str) -> str:
        return text


def test_a_full_channel_queue_drops_and_logs(tmp_path: Path) -> None:
    gate = GateChannel()
    log = DeliveryLog(tmp_path)
    with AlertDispatcher(
        [gate], Router({"gate": ["critical", "high", "medium"]}), log, channel_queue_size=2
    ) as dispatcher:
        dispatcher.submit(make_alert("high", account="a0", txn="t0"))
        assert gate.started.wait(5)
        for i, sev in enumerate(["medium", "high", "medium"], start=1):
            dispatcher.submit(make_alert(sev, account=f"a{i}", txn=f"t{i}"))
        deadline = time.monotonic() + 5
        while not log.query(status="dropped") and time.monotonic() < deadline:
            time.sleep(0.01)
        gate.gate.set()
    assert gate.sent == ["t0", "t2", "t3"]
    [dropped] = log.query(status="dropped")
    assert (dropped.channel, dropped.severity, dropped.error) == (
        "gate",
        "medium",
        "channel queue full",
    )


def test_secrets_never_reach_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hostile_slack = HttpReceiver(default_status=500, echo_in_reason=True).start()
    hostile_twilio = HttpReceiver(default_status=401, echo_in_reason=True).start()
    refusing_auth = SmtpRecorder()
    smtp_port = free_port()

    def reject(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)

    controller = Controller(
        refusing_auth,
        hostname="127.0.0.1",
        port=smtp_port,
        authenticator=reject,
        auth_require_tls=False,
    )
    controller.start()
    config = AlertsConfig(
        log_dir=tmp_path,
        slack_webhook_url=f"{hostile_slack.url}/services/T9/B9/{WEBHOOK_SECRET}",
        twilio_account_sid=SID,
        twilio_auth_token=TOKEN,
        twilio_from="+15550000000",
        twilio_to=("+15551112222",),
        twilio_base_url=hostile_twilio.url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_starttls=False,
        smtp_username="ringfence",
        smtp_password=SMTP_PASSWORD,
        email_from="ringfence@example.com",
        email_to=("oncall@example.com",),
        max_attempts=2,
        base_delay_s=0.01,
        jitter_seed=1,
        channel_timeout_s=2.0,
    )
    try:
        with build_dispatcher(config) as dispatcher:
            dispatcher.submit(make_alert("critical", ring="ring_s"))
    finally:
        controller.stop()
        hostile_slack.stop()
        hostile_twilio.stop()

    # the hostile servers did echo the credentials; none of it may be written down
    assert WEBHOOK_SECRET in hostile_slack.requests[0]["path"]
    failed = query_deliveries(tmp_path, status="failed")
    assert {r.channel for r in failed} == {"slack", "sms", "email"}
    assert all("***" in (r.error or "") for r in failed if r.channel != "email")
    assert not refusing_auth.messages
    basic = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("serve.alerts")]
    assert any("failed" in line for line in ours)
    written = "\n".join([(tmp_path / "alert-deliveries.jsonl").read_text(), *ours, repr(config)])
    for secret in (WEBHOOK_SECRET, TOKEN, basic, SMTP_PASSWORD):
        assert secret not in written
    for channel in config.channels():
        assert WEBHOOK_SECRET not in repr(channel)
        assert TOKEN not in repr(channel)


def test_smtp_login_and_log_query(tmp_path: Path) -> None:
    logins: list[tuple[bytes, bytes]] = []

    def accept(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=True)

    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(
        recorder, hostname="127.0.0.1", port=port, authenticator=accept, auth_require_tls=False
    )
    controller.start()
    clock = FakeClock()
    try:
        with AlertDispatcher(
            [email_channel(port, username="ringfence", password=SMTP_PASSWORD)],
            Router({"email": ["critical"]}),
            DeliveryLog(tmp_path),
            clock=clock,
        ) as dispatcher:
            alert = make_alert("critical")
            dispatcher.submit(alert)
            dispatcher.submit(make_alert("high"))  # routed nowhere
    finally:
        controller.stop()
    assert logins == [(b"ringfence", SMTP_PASSWORD.encode())]
    assert recorder.messages[0][2]["X-Ringfence-Alert-Id"] == alert.id
    assert [r.alert_id for r in query_deliveries(tmp_path, channel="email", since=T0)] == [alert.id]
    assert query_deliveries(tmp_path, until=T0) == []
