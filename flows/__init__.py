"""Prefect flows over the DVC pipeline: thin orchestration, never a second implementation of a stage.

- :mod:`flows.blueprint`: flow ``nar-blueprint``, one task per DVC stage (``dvc repro --single-item``),
  DVC's cache decides what reruns; parameter overrides run as an isolated DVC experiment.
- :mod:`flows.sweep`: flow ``nar-sweep``, a grid of overrides fanned out as ``dvc exp run --temp``
  experiments on Dask (prefect-dask), one results table at the end.
- :mod:`flows.serve`: the deployments (nightly on the cron from params.yaml, and on demand) for ``nar serve``.
- :mod:`flows.cli`: ``nar serve``, ``nar blueprint`` and ``nar sweep``.

Heavy imports (prefect, dvc) happen in those modules, not here.
"""
