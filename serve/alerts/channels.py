"""Delivery channels: a Slack incoming webhook, Twilio SMS and e-mail over SMTP.

Each channel sends one alert per call to :meth:`Channel.send` and raises
:class:`ChannelError` when it cannot, saying whether a retry may help. Every network call has
a timeout. Secrets (the webhook URL, the Twilio token, the SMTP password) are never put in a
message: errors pass through :func:`mask` first, and ``repr`` shows no secret.
"""

from __future__ import annotations

import base64
import json
import smtplib
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from serve.alerts.model import Alert

MASK = "***"

_RETRYABLE_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


class ChannelError(Exception):
    """A delivery failed; ``retryable`` says whether trying again may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    """What the dispatcher needs of a channel."""

    name: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert or raise :class:`ChannelError`."""
        ...

    def mask(self, text: str) -> str:
        """``text`` with this channel's secrets replaced by ``***``."""
        ...


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret (and its URL-quoted form) replaced by ``***``.

    >>> mask("POST https://hooks.example/T1/B2/s3cr3t failed", ["s3cr3t", None, ""])
    'POST https://hooks.example/T1/B2/*** failed'
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}:
            text = text.replace(form, MASK)
    return text


def redact_url(url: str) -> str:
    """A URL safe to show: scheme and host only (webhook paths are credentials).

    >>> redact_url("https://hooks.slack.com/services/T000/B000/XXXX")
    'https://hooks.slack.com/***'
    """
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}/***"


def _http_error(exc: BaseException) -> ChannelError:
    """A :class:`ChannelError` for an exception raised by ``urllib``; no URL in the message."""
    if isinstance(exc, urllib.error.HTTPError):
        retry = exc.code in _RETRYABLE_HTTP
        return ChannelError(f"HTTP {exc.code} {exc.reason}", retryable=retry)
    if isinstance(exc, urllib.error.URLError):
        return ChannelError(f"connection failed: {exc.reason}", retryable=True)
    if isinstance(exc, TimeoutError | socket.timeout):
        return ChannelError("timed out", retryable=True)
    if isinstance(exc, OSError):
        return ChannelError(f"connection failed: {exc}", retryable=True)
    return ChannelError(f"{type(exc).__name__}: {exc}", retryable=False)


def _post(
    url: str, body: bytes, content_type: str, timeout: float, headers: Mapping[str, str] = {}
) -> int:
    """POST ``body`` to ``url`` and return the status; raise :class:`ChannelError` on failure."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ChannelError("only http and https URLs are allowed", retryable=False)
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body, method="POST", headers={"Content-Type": content_type, **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return int(response.status)
    except ChannelError:
        raise
    except Exception as exc:
        raise _http_error(exc) from None


class OutboxChannel:
    """Alerts appended to a local file as JSON lines: the embedded default, for local runs.

    An operator (or the console) reads the outbox; nothing leaves the machine.
    """

    def __init__(self, path: Path, *, name: str = "outbox") -> None:
        self.name = name
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OutboxChannel(name={self.name!r}, path={str(self.path)!r})"

    def mask(self, text: str) -> str:
        """Nothing secret here."""
        return text

    def send(self, alert: Alert) -> None:
        """Append the alert."""
        line = json.dumps(SlackChannel.payload(alert) | {"alert_id": alert.id}) + "\n"
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
        except OSError as exc:
            raise ChannelError(f"outbox {self.path}: {exc}", retryable=True) from exc


class SlackChannel:
    """A Slack incoming webhook: a JSON ``POST`` with a ``text`` fallback and blocks."""

    def __init__(self, webhook_url: str, *, name: str = "slack", timeout: float = 5.0) -> None:
        self.name = name
        self._url = webhook_url
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SlackChannel(name={self.name!r}, url={redact_url(self._url)!r})"

    def mask(self, text: str) -> str:
        """``text`` with the webhook URL and its path masked."""
        path = urllib.parse.urlsplit(self._url).path.strip("/")
        return mask(text, [self._url, path])

    @staticmethod
    def payload(alert: Alert) -> dict[str, object]:
        """The JSON body posted for ``alert``.

        >>> body = SlackChannel.payload(Alert.new("critical", "block", "Blocked t1", "score 0.97",
        ...                                       txn_id="t1", account_id="a1", score=0.97))
        >>> body["text"].splitlines()[0], body["blocks"][0]["text"]["text"]
        ('[CRITICAL] Blocked t1', '[CRITICAL] Blocked t1')
        """
        fields = [
            f"*Kind:* {alert.kind}",
            f"*Score:* {alert.score:.3f}",
            f"*Transaction:* {alert.txn_id}",
            f"*Account:* {alert.account_id}",
        ]
        if alert.ring_id:
            fields.append(f"*Ring:* {alert.ring_id}")
        blocks: list[dict[str, object]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": f"[{alert.severity.value.upper()}] {alert.title}"[:150],
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.text}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        ]
        if alert.reasons:
            reasons = "\n".join(f"• {r}" for r in alert.reasons)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": reasons}})
        return {"text": alert.plain_text(), "blocks": blocks}

    def send(self, alert: Alert) -> None:
        """Post the alert to the webhook."""
        body = json.dumps(self.payload(alert)).encode()
        try:
            _post(self._url, body, "application/json", self.timeout)
        except ChannelError as exc:
            raise ChannelError(self.mask(str(exc)), retryable=exc.retryable) from None


class TwilioChannel:
    """SMS through Twilio's REST API, one message per recipient.

    ``base_url`` defaults to Twilio's API host; point it elsewhere to test. A retry after a
    partial failure sends only to the numbers not yet reached for that alert.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        to_numbers: Iterable[str],
        *,
        base_url: str = "https://api.twilio.com",
        name: str = "sms",
        timeout: float = 5.0,
        max_chars: int = 320,
    ) -> None:
        self.name = name
        self._sid = account_sid
        self._token = auth_token
        self._from = from_number
        self._to = tuple(to_numbers)
        if not self._to:
            raise ValueError("TwilioChannel needs at least one recipient")
        self._url = (
            f"{base_url.rstrip('/')}/2010-04-01/Accounts/"
            f"{urllib.parse.quote(account_sid, safe='')}/Messages.json"
        )
        self.timeout = timeout
        self.max_chars = max_chars
        self._reached: OrderedDict[str, set[str]] = OrderedDict()

    def __repr__(self) -> str:
        return f"TwilioChannel(name={self.name!r}, to={len(self._to)} numbers)"

    def mask(self, text: str) -> str:
        """``text`` with the auth token (and the basic-auth header made from it) masked."""
        basic = base64.b64encode(f"{self._sid}:{self._token}".encode()).decode()
        return mask(text, [self._token, basic])

    def body(self, alert: Alert) -> str:
        """The SMS text: short, ids first, cut to ``max_chars``."""
        text = (
            f"Ringfence {alert.severity.value.upper()}: {alert.title} "
            f"(txn {alert.txn_id}, acct {alert.account_id}"
            f"{', ring ' + alert.ring_id if alert.ring_id else ''}, score {alert.score:.2f})"
        )
        return text if len(text) <= self.max_chars else text[: self.max_chars - 1] + "…"

    def send(self, alert: Alert) -> None:
        """Send the SMS to every recipient not yet reached for this alert."""
        reached = self._reached.setdefault(alert.id, set())
        while len(self._reached) > 1000:
            self._reached.popitem(last=False)
        auth = base64.b64encode(f"{self._sid}:{self._token}".encode()).decode()
        errors: list[ChannelError] = []
        for number in self._to:
            if number in reached:
                continue
            form = urllib.parse.urlencode(
                {"To": number, "From": self._from, "Body": self.body(alert)}
            ).encode()
            try:
                _post(
                    self._url,
                    form,
                    "application/x-www-form-urlencoded",
                    self.timeout,
                    {"Authorization": f"Basic {auth}"},
                )
            except ChannelError as exc:
                errors.append(exc)
            else:
                reached.add(number)
        if errors:
            message = "; ".join(sorted({str(e) for e in errors}))
            failed = len(self._to) - len(reached)
            raise ChannelError(
                self.mask(f"{failed}/{len(self._to)} recipients failed: {message}"),
                retryable=any(e.retryable for e in errors),
            )
        self._reached.pop(alert.id, None)


class EmailChannel:
    """E-mail over SMTP; STARTTLS and login are optional."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Iterable[str],
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        name: str = "email",
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = tuple(recipients)
        if not self.recipients:
            raise ValueError("EmailChannel needs at least one recipient")
        self.starttls = starttls
        self.username = username
        self._password = password
        self.timeout = timeout
        self._ssl_context = ssl_context

    def __repr__(self) -> str:
        return f"EmailChannel(name={self.name!r}, host={self.host!r}, port={self.port})"

    def mask(self, text: str) -> str:
        """``text`` with the SMTP password masked."""
        return mask(text, [self._password])

    def message(self, alert: Alert) -> EmailMessage:
        """The e-mail for ``alert``.

        >>> ch = EmailChannel("localhost", 25, "ringfence@example.com", ["oncall@example.com"])
        >>> msg = ch.message(Alert.new("high", "review", "Review t1", "score 0.9",
        ...                            txn_id="t1", account_id="a1", score=0.9))
        >>> msg["Subject"], msg["To"]
        ('[Ringfence HIGH] Review t1', 'oncall@example.com')
        """
        msg = EmailMessage()
        msg["Subject"] = f"[Ringfence {alert.severity.value.upper()}] {alert.title}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["X-Ringfence-Alert-Id"] = alert.id
        msg.set_content(alert.plain_text())
        return msg

    def send(self, alert: Alert) -> None:
        """Send the alert's e-mail to every recipient."""
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=self._ssl_context or ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self._password or "")
                refused = smtp.send_message(self.message(alert), self.sender, self.recipients)
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelError(
                self.mask(f"SMTP login refused: {exc.smtp_code}"), retryable=False
            ) from None
        except smtplib.SMTPResponseException as exc:
            raw = exc.smtp_error
            detail = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
            raise ChannelError(
                self.mask(f"SMTP {exc.smtp_code} {detail}".strip()),
                retryable=400 <= exc.smtp_code < 500,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise ChannelError(
                self.mask(f"all recipients refused: {sorted(exc.recipients)}"), retryable=False
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(self.mask(f"SMTP failed: {exc}"), retryable=True) from None
        if refused:
            raise ChannelError(self.mask(f"recipients refused: {sorted(refused)}"), retryable=False)
