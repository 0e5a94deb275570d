"""The one settings object, read from the environment (prefix ``RINGFENCE_``).

Built where the process starts (the CLI's entry point, the app's lifespan), never at import, and
passed down; lower packages take plain parameters and never read settings themselves.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    def path(self, *parts: str) -> Path:
        """A path inside the data directory."""
        return self.data_dir.joinpath(*parts)
