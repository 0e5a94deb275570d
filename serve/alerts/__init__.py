"""Real-time alerts for blocks and high-risk reviews: Slack, Twilio SMS and e-mail.

See ``docs/alerts.md``. Build an :class:`AlertDispatcher` (directly or with
:func:`build_dispatcher`), call :meth:`AlertDispatcher.submit` from the scoring path (it
returns at once and never raises) and :meth:`AlertDispatcher.close` on shutdown.
"""

from serve.alerts.channels import (
    Channel,
    ChannelError,
    EmailChannel,
    SlackChannel,
    TwilioChannel,
    mask,
)
from serve.alerts.config import DEFAULT_ROUTES, AlertsConfig, build_dispatcher
from serve.alerts.dedup import Deduplicator, ring_or_account_key
from serve.alerts.dispatcher import AlertDispatcher, Router
from serve.alerts.log import DeliveryLog, DeliveryRecord, query_deliveries
from serve.alerts.model import Alert, Severity, utc_now
from serve.alerts.retry import RetryPolicy

__all__ = [
    "DEFAULT_ROUTES",
    "Alert",
    "AlertDispatcher",
    "AlertsConfig",
    "Channel",
    "ChannelError",
    "Deduplicator",
    "DeliveryLog",
    "DeliveryRecord",
    "EmailChannel",
    "RetryPolicy",
    "Router",
    "Severity",
    "SlackChannel",
    "TwilioChannel",
    "build_dispatcher",
    "mask",
    "query_deliveries",
    "ring_or_account_key",
    "utc_now",
]
