"""The one settings object, read from the environment (prefix ``RINGFENCE_``).

Built where the process starts (the CLI's entry point, the app's lifespan), never at import, and
passed down; lower packages take plain parameters and never read settings themselves.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from serve.alerts.config import AlertsConfig


class Settings(BaseSettings):
    """Ringfence configuration. Each field is read from ``RINGFENCE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="RINGFENCE_", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"),
        description="Folder of all embedded state: bus log, stores, dead letters, models.",
    )
    max_amount: Decimal = Field(
        default=Decimal("1000000000"),
        gt=0,
        description="Amounts above this, in any currency, are rejected as implausible.",
    )
    max_future_hours: float = Field(
        default=24.0,
        ge=0,
        description="How far in the future a timestamp may be (clock skew allowance).",
    )
    ingest_batch_size: int = Field(
        default=5000,
        ge=1,
        le=100_000,
        description="Events appended to the bus per write.",
    )

    neo4j_uri: str | None = Field(
        default=None,
        description="Bolt URI of the Neo4j graph of record (e.g. bolt://127.0.0.1:7687); "
        "when set, the entity graph is written behind to it. Unset: embedded only.",
    )
    neo4j_user: str | None = Field(default=None, description="Neo4j user, if auth is on.")
    neo4j_password: SecretStr | None = Field(default=None, description="Neo4j password.")
    neo4j_database: str = Field(default="neo4j", description="Neo4j database name.")

    jwt_keys: SecretStr | None = Field(
        default=None,
        description="Keys that sign gateway tokens: kid=secret pairs, comma-separated, secrets "
        "of at least 32 bytes; the first signs, all verify (`ringfence token keygen`).",
    )

    keep_alive_s: int = Field(
        default=75,
        ge=1,
        le=3600,
        description="`ringfence serve` keeps an idle client connection open this long (s). "
        "Longer than the gateways' and load balancers' own idle timeouts (often 60 s), so the "
        "server never closes a connection a client is about to reuse (a reset request).",
    )
    journal_sync_ms: float = Field(
        default=50.0,
        gt=0,
        le=60_000,
        description="`ringfence serve`'s decision journal is synced to disk this often (ms): a "
        "power cut loses at most the decisions of the last interval; a process crash none.",
    )
    journal_segment_mb: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="The decision journal begins a new segment file past this size (MiB).",
    )

    alert_slack_webhook_url: SecretStr | None = Field(
        default=None, description="Slack incoming webhook for alerts (off when unset)."
    )
    alert_twilio_account_sid: str | None = Field(default=None, description="Twilio account.")
    alert_twilio_auth_token: SecretStr | None = Field(default=None, description="Twilio token.")
    alert_twilio_from: str | None = Field(default=None, description="SMS sender number.")
    alert_twilio_to: str = Field(default="", description="SMS recipients, comma-separated.")
    alert_twilio_base_url: str = Field(default="https://api.twilio.com")
    alert_smtp_host: str | None = Field(default=None, description="SMTP server for e-mail.")
    alert_smtp_port: int = Field(default=587)
    alert_smtp_starttls: bool = Field(default=True)
    alert_smtp_username: str | None = Field(default=None)
    alert_smtp_password: SecretStr | None = Field(default=None)
    alert_email_from: str | None = Field(default=None)
    alert_email_to: str = Field(default="", description="E-mail recipients, comma-separated.")
    alert_dedup_window_s: float = Field(default=900.0, gt=0)
    alert_outbox: bool = Field(
        default=True, description="Append alerts to <data_dir>/alerts/outbox.jsonl."
    )

    feature_worker: bool = Field(
        default=False,
        description="Compute the feature state in a child process, so that features and "
        "decisions run on two cores: the throughput for batches and streams (the same "
        "decisions; single calls are answered fastest without it; see README).",
    )
    model_backend: Literal["inprocess", "torchserve"] = Field(
        default="inprocess",
        description="Where the scoring pipeline's scores come from: the model in this process, "
        "or a TorchServe serving the same model version (docs/torchserve.md).",
    )
    torchserve_url: str = Field(
        default="http://127.0.0.1:8080",
        description="TorchServe's inference base URL (model_backend=torchserve).",
    )
    torchserve_model: str = Field(
        default="fraud", description="The name the model archive is registered under."
    )
    torchserve_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds to wait to connect and for each answer read."
    )
    torchserve_max_request_bytes: int = Field(
        default=6_553_500,
        gt=0,
        description="The largest request body sent (TorchServe's max_request_size); a larger "
        "batch is split over several requests.",
    )

    def alerts_config(self) -> AlertsConfig:
        """The alerting configuration (channels whose fields are set are on)."""

        def secret(v: SecretStr | None) -> str | None:
            return v.get_secret_value() if v is not None else None

        def listed(v: str) -> tuple[str, ...]:
            return tuple(x.strip() for x in v.split(",") if x.strip())

        return AlertsConfig(
            log_dir=self.path("alerts"),
            slack_webhook_url=secret(self.alert_slack_webhook_url),
            twilio_account_sid=self.alert_twilio_account_sid,
            twilio_auth_token=secret(self.alert_twilio_auth_token),
            twilio_from=self.alert_twilio_from,
            twilio_to=listed(self.alert_twilio_to),
            twilio_base_url=self.alert_twilio_base_url,
            smtp_host=self.alert_smtp_host,
            smtp_port=self.alert_smtp_port,
            smtp_starttls=self.alert_smtp_starttls,
            smtp_username=self.alert_smtp_username,
            smtp_password=secret(self.alert_smtp_password),
            email_from=self.alert_email_from,
            email_to=listed(self.alert_email_to),
            dedup_window_s=self.alert_dedup_window_s,
            outbox=self.alert_outbox,
        )

    def path(self, *parts: str) -> Path:
        """A path inside the data directory."""
        return self.data_dir.joinpath(*parts)
