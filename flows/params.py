"""params.yaml ``flows:`` as the flows read it: the section (:class:`nar.config.FlowsParams`, validated like
every other section) plus Prefect's own reading of the cron expression, which needs Prefect."""

from __future__ import annotations

from pathlib import Path

from nar.config import ConfigError, FlowsParams, build, read_params_file


def load_flows_params(path: str | Path) -> FlowsParams:
    """The ``flows`` section of params.yaml (defaults when absent), validated like every other section."""
    data = read_params_file(path)
    params = build(FlowsParams, data.get("flows") if isinstance(data, dict) else None, "flows")
    if params.schedule is not None:  # the full cron grammar, as Prefect will read it
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=params.schedule, timezone=params.timezone)
        except ValueError:
            raise ConfigError("flows.schedule", params.schedule, "a valid cron expression, e.g. '0 2 * * *'") from None
    return params
