"""params.yaml ``flows:``, validated like every other section (nar.config.build: unknown keys, types,
then ``check``). Kept free of Prefect imports so nar.config can register the section cheaply:
``SECTIONS["flows"]`` resolving to :class:`FlowsParams` on demand."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FlowsParams:
    """params.yaml ``flows:``: the schedule ``nar serve`` gives the nightly deployment, and how often a
    stage that failed for a transient reason (DVC lock held, MLflow unreachable) is retried."""

    schedule: str | None = "0 2 * * *"  # cron; null: no scheduled deployment
    timezone: str = "UTC"  # IANA name, e.g. Europe/Helsinki
    retries: int = 2
    retry_delay_seconds: float = 30.0

    def check(self, key: str) -> None:
        from nar.config import ConfigError

        if self.schedule is not None and len(self.schedule.split()) != 5:
            raise ConfigError(f"{key}.schedule", self.schedule, 'a cron expression of 5 fields ("0 2 * * *") or null')
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{key}.timezone", self.timezone, "an IANA time zone such as UTC or Europe/Helsinki"
            ) from None
        if self.retries < 0:
            raise ConfigError(f"{key}.retries", self.retries, "an integer >= 0")
        if self.retry_delay_seconds < 0:
            raise ConfigError(f"{key}.retry_delay_seconds", self.retry_delay_seconds, "a number >= 0")


def load_flows_params(path: str | Path) -> FlowsParams:
    """The ``flows`` section of params.yaml (defaults when absent), validated like every other section."""
    from nar.config import ConfigError, build, read_params_file

    data = read_params_file(path)
    params = build(FlowsParams, data.get("flows") if isinstance(data, dict) else None, "flows")
    if params.schedule is not None:  # the full cron grammar, as Prefect will read it
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=params.schedule, timezone=params.timezone)
        except ValueError:
            raise ConfigError("flows.schedule", params.schedule, "a valid cron expression, e.g. '0 2 * * *'") from None
    return params
