"""Alerting configuration as one plain dataclass, and the dispatcher built from it.

The process's settings object can fill an :class:`AlertsConfig` from its own fields; this
package reads no environment itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from serve.alerts.channels import (
    Channel,
    EmailChannel,
    OutboxChannel,
    SlackChannel,
    TwilioChannel,
)
from serve.alerts.dedup import DedupKey, ring_or_account_key
from serve.alerts.dispatcher import AlertDispatcher, Router
from serve.alerts.log import DeliveryLog
from serve.alerts.model import Clock, utc_now
from serve.alerts.retry import RetryPolicy

DEFAULT_ROUTES: Mapping[str, tuple[str, ...]] = {
    "outbox": ("critical", "high", "medium"),
    "slack": ("critical", "high", "medium"),
    "sms": ("critical",),
    "email": ("critical", "high"),
}


@dataclass(frozen=True)
class AlertsConfig:
    """Everything alerting needs; a channel is on when its required fields are set.

    Slack needs ``slack_webhook_url``; SMS needs the Twilio sid, token, ``twilio_from`` and at
    least one ``twilio_to``; e-mail needs ``smtp_host``, ``email_from`` and ``email_to``.
    Routes naming a channel that is off are ignored.

    >>> cfg = AlertsConfig(log_dir=Path("var/alerts"), slack_webhook_url="https://hooks.example/x")
    >>> [c.name for c in cfg.channels()], cfg
    ... # doctest: +ELLIPSIS
    (['slack'], AlertsConfig(log_dir=..., slack_webhook_url='***', ...))
    """

    log_dir: Path
    slack_webhook_url: str | None = field(default=None, repr=False)
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_from: str | None = None
    twilio_to: tuple[str, ...] = ()
    twilio_base_url: str = "https://api.twilio.com"
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    email_from: str | None = None
    email_to: tuple[str, ...] = ()
    routes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_ROUTES))
    dedup_window_s: float = 900.0
    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    jitter: float = 0.2
    jitter_seed: int | None = None
    channel_timeout_s: float = 5.0
    outbox: bool = False
    """Also append every routed alert to ``log_dir/outbox.jsonl`` (the embedded channel)."""
    queue_size: int = 1000

    def __repr__(self) -> str:
        shown = {
            "log_dir": self.log_dir,
            "slack_webhook_url": "***" if self.slack_webhook_url else None,
            "twilio_auth_token": "***" if self.twilio_auth_token else None,
            "smtp_password": "***" if self.smtp_password else None,
        }
        body = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"AlertsConfig({body}, ...)"

    def channels(self) -> list[Channel]:
        """The channels whose required fields are set."""
        out: list[Channel] = []
        timeout = self.channel_timeout_s
        if self.outbox:
            out.append(OutboxChannel(self.log_dir / "outbox.jsonl"))
        if self.slack_webhook_url:
            out.append(SlackChannel(self.slack_webhook_url, timeout=timeout))
        if (
            self.twilio_account_sid
            and self.twilio_auth_token
            and self.twilio_from
            and self.twilio_to
        ):
            out.append(
                TwilioChannel(
                    self.twilio_account_sid,
                    self.twilio_auth_token,
                    self.twilio_from,
                    self.twilio_to,
                    base_url=self.twilio_base_url,
                    timeout=timeout,
                )
            )
        if self.smtp_host and self.email_from and self.email_to:
            out.append(
                EmailChannel(
                    self.smtp_host,
                    self.smtp_port,
                    self.email_from,
                    self.email_to,
                    starttls=self.smtp_starttls,
                    username=self.smtp_username,
                    password=self.smtp_password,
                    timeout=timeout,
                )
            )
        return out

    def retry_policy(self) -> RetryPolicy:
        """The retry policy these fields describe."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_delay=self.base_delay_s,
            max_delay=self.max_delay_s,
            jitter=self.jitter,
            rng=random.Random(self.jitter_seed),
        )


def build_dispatcher(
    config: AlertsConfig,
    *,
    clock: Clock = utc_now,
    sleep: Callable[[float], None] | None = None,
    dedup_key: DedupKey = ring_or_account_key,
) -> AlertDispatcher:
    """A started dispatcher for ``config``; the caller closes it."""
    channels = config.channels()
    names = {c.name for c in channels}
    routes = {name: sev for name, sev in config.routes.items() if name in names}
    return AlertDispatcher(
        channels,
        Router(routes),
        DeliveryLog(config.log_dir),
        retry=config.retry_policy(),
        dedup_window=timedelta(seconds=config.dedup_window_s),
        dedup_key=dedup_key,
        clock=clock,
        sleep=sleep,
        queue_size=config.queue_size,
    )
