"""Prefect flows over the DVC pipeline: thin orchestration, never a second implementation of a stage.

- :mod:`flows.blueprint`: flow ``nar-blueprint``, one task per DVC stage (``dvc repro --single-item``),
  DVC's cache decides what reruns; parameter overrides run as an isolated DVC experiment.
- :mod:`flows.sweep`: flow ``nar-sweep``, a grid of overrides fanned out as ``dvc exp run --temp``
  experiments on Dask (prefect-dask), one results table at the end.
- :mod:`flows.serve`: the deployments (nightly on the cron from params.yaml, and on demand) for ``nar serve``.
- :mod:`flows.cli`: ``nar serve``, ``nar blueprint`` and ``nar sweep``.

Heavy imports (prefect, dvc) happen in those modules, not here.

Telemetry: every ``nar blueprint``, ``nar sweep`` and ``nar serve`` without ``PREFECT_API_URL`` starts
Prefect's temporary server, which sends anonymous usage data on start unless told not to (offline it
fails with errors in the log). This package is imported before Prefect by all of them (``nar.cli`` and
``flows.*``), so it turns that off here, for the server (``PREFECT_SERVER_ANALYTICS_ENABLED``, which the
temporary server inherits from this process's environment) and the client (``DO_NOT_TRACK``, Prefect's
client-side opt-out). Set either variable yourself to decide otherwise: an explicit value is kept.
"""

import os

ANALYTICS_OFF = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
for _name, _value in ANALYTICS_OFF.items():
    os.environ.setdefault(_name, _value)
