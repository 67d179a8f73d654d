"""The one place configuration is read: environment variables into a ``Settings`` object.

Contracted names (``DATABASE_URL``, ``REDIS_URL``, ``MNISTQ_ADMIN_KEY``, ``KERAS_HOME``) keep
their names; everything else is ``MNISTQ_*``. See the README's configuration table.
"""

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "admin", "password", "test"}
MIN_PRODUCTION_KEY_LENGTH = 24


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MNISTQ_", extra="ignore", populate_by_name=True)

    env: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        "sqlite:///mnistq.db", validation_alias=AliasChoices("DATABASE_URL", "MNISTQ_DATABASE_URL")
    )
    redis_url: str = Field(
        "redis://localhost:6379/0", validation_alias=AliasChoices("REDIS_URL", "MNISTQ_REDIS_URL")
    )
    admin_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MNISTQ_ADMIN_KEY", "ADMIN_KEY")
    )

    # Limits on what a job may ask for (documented in the README).
    max_epochs: int = 10_000
    max_layer_units: int = 4_096
    max_layers: int = 16
    max_params: int = 50_000_000
    max_json_bytes: int = 1 << 20
    max_upload_bytes: int = 1 << 30
    max_predict_rows: int = 2_000_000
    max_dataset_rows: int = 300_000

    # Workers.
    blas_threads: int = Field(0, ge=0)  # 0: cores // worker processes (see worker/runtime.py)
    lease_seconds: float = Field(60.0, gt=0)  # a running job's lease; renewed by heartbeats
    heartbeat_seconds: float = Field(1.0, gt=0)  # also how often cancellation is noticed
    max_attempts: int = Field(3, ge=1)  # lost leases in one run before failed/worker_lost
    predict_chunk_rows: int = Field(8192, ge=1)
    task_time_limit: int = Field(6 * 3600, ge=1)
    enqueue_timeout: float = Field(3.0, gt=0)
    webhook_secret: SecretStr | None = None  # signs webhook bodies (X-Mnistq-Signature)
    webhook_timeout: float = Field(5.0, gt=0)
    webhook_attempts: int = Field(3, ge=1)
    reap_interval_seconds: float = Field(30.0, ge=0)  # 0 disables a worker's reaper thread
    requeue_after_seconds: float = Field(600.0, gt=0)  # re-send a queued job's message after

    @model_validator(mode="after")
    def _refuse_weak_admin_key_in_production(self) -> "Settings":
        if self.env == "production" and self.admin_key is not None:
            key = self.admin_key.get_secret_value()
            if key.lower() in PLACEHOLDER_SECRETS or len(key) < MIN_PRODUCTION_KEY_LENGTH:
                raise ValueError(
                    "MNISTQ_ADMIN_KEY must be a random string of at least "
                    f"{MIN_PRODUCTION_KEY_LENGTH} characters in production."
                )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
