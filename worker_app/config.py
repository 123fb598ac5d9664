"""What the example handlers may touch, read once at start-up (worker_app/app.py)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class HandlerSettings(BaseSettings):
    """`DJS_REPORTS_DIR`, `DJS_WEBHOOK_ALLOW`; safe defaults, widened only on purpose."""

    model_config = SettingsConfigDict(env_prefix="DJS_", extra="ignore")

    # csv_report writes only below this directory (created on first use).
    reports_dir: Path = Path("reports")
    # webhook refuses every address that is not public (loopback, private, link-local, the
    # cloud metadata address ...) unless its host or network is listed here, comma-separated:
    # "hooks.internal,10.1.0.0/16".
    webhook_allow: str = ""

    def allowed_targets(self) -> list[str]:
        return [entry.strip() for entry in self.webhook_allow.split(",") if entry.strip()]
