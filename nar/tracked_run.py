"""One MLflow run, logged through explicit run ids: the one way stages write runs (pretrain, register,
transfer, evaluate).

Every call goes through :class:`nar.tracking.RetryingClient`, so a locked SQLite store or a restarting
server meets the same bounded retries and one-line errors in every stage. Explicit run ids, not
``mlflow.start_run``: a stage may run beside a caller's own active run (a flow, a notebook), and a
resumed pretraining run continues the run its checkpoint names.

Typical use::

    client, experiment_id = open_experiment("nar-transfer")
    run = TrackedRun.start(client, experiment_id, "transfer-road", tags={"nar.stage": "transfer"})
    with run.ending():  # FINISHED when the block completes, FAILED when it raises
        run.log_params({"lr": 1e-3})
        run.log_metrics({"test_pointer_acc": 0.93})
        run.log_artifacts([Path("metrics/transfer/road.json")])
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from nar.tracking import RetryingClient, configure_mlflow, tracking_client

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag: the UI nests a run under the run it names
#: MLflow's per-call limits of ``log_batch`` (100 params or tags, 1,000 metrics), kept under
PARAMS_PER_BATCH = 90
METRICS_PER_BATCH = 900


def open_experiment(experiment: str, workspace: Path | None = None) -> tuple[RetryingClient, str]:
    """(a client on this workspace's store, the id of ``experiment``), created and checked by
    :func:`nar.tracking.configure_mlflow`: fails before any work, as one line, when the store cannot be used."""
    configure_mlflow(workspace, experiment)
    client = tracking_client(workspace)
    return client, client.get_experiment_by_name(experiment).experiment_id


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys: ``{"model": {"hidden": 128}}`` -> ``{"model.hidden": 128}``."""
    if not isinstance(data, Mapping):
        return {prefix: data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


class TrackedRun:
    """An MLflow run ``run_id`` written through ``client`` (a :class:`RetryingClient` or a subclass)."""

    def __init__(self, client: RetryingClient, run_id: str, experiment_id: str | None = None) -> None:
        self.client, self.run_id, self.experiment_id = client, run_id, experiment_id

    @classmethod
    def start(
        cls,
        client: RetryingClient,
        experiment_id: str,
        name: str,
        tags: Mapping[str, str] | None = None,
        *,
        parent: TrackedRun | None = None,
    ) -> TrackedRun:
        """A new RUNNING run ``name`` with ``tags``; under ``parent`` in the UI when given."""
        tags = {**(tags or {}), **({PARENT_TAG: parent.run_id} if parent is not None else {})}
        run = client.create_run(experiment_id, run_name=name, tags=tags)
        return cls(client, run.info.run_id, experiment_id)

    @classmethod
    def resume(cls, client: RetryingClient, run_id: str) -> TrackedRun | None:
        """Run ``run_id`` RUNNING again (a run a signal marked KILLED, or a crash FAILED, continues);
        None when the store no longer has it (gone, from another store, or deleted in the UI:
        logging into a deleted run fails)."""
        from mlflow.exceptions import MlflowException

        try:
            info = client.get_run(run_id).info
        except MlflowException:
            return None
        if info.lifecycle_stage != "active":
            return None
        client.update_run(run_id, status="RUNNING")
        return cls(client, run_id, info.experiment_id)

    @classmethod
    def resume_or_start(
        cls,
        client: RetryingClient,
        experiment_id: str,
        name: str,
        id_file: Path,
        tags: Callable[[], Mapping[str, str]],
        params: Mapping[str, Any],
    ) -> TrackedRun:
        """The run ``id_file`` names, resumed (:meth:`resume`); else a new one with ``tags()`` and ``params``,
        whose id is written to ``id_file`` (a checkpoint directory keeps it, so that a resumed job continues
        its run). ``tags`` is called only for a new run (a git commit or a DVC lock costs a subprocess)."""
        run = cls.resume(client, id_file.read_text().strip()) if id_file.is_file() else None
        if run is None:
            run = cls.start(client, experiment_id, name, tags())
            run.log_params(params)
            id_file.write_text(run.run_id)
        return run

    def child(self, name: str, tags: Mapping[str, str] | None = None) -> TrackedRun:
        """A new run in the same experiment, nested under this one."""
        assert self.experiment_id is not None, "a resumed or adopted run without its experiment id"
        return TrackedRun.start(self.client, self.experiment_id, name, tags, parent=self)

    def log_params(self, params: Mapping[str, Any], max_chars: int | None = None) -> None:
        """Each param as ``str(value)`` (what ``log_param`` stores; cut to ``max_chars`` when given), nested
        mappings as dotted keys (:func:`flatten`), in batches under MLflow's limit."""
        from mlflow.entities import Param

        items = [Param(k, str(v)[:max_chars]) for k, v in flatten(params).items()]
        for i in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Metrics at one ``step``, all with the current time."""
        self.log_metric_rows((key, value, step) for key, value in metrics.items())

    def log_metric_rows(self, rows: Iterable[tuple[str, float, int]]) -> None:
        """``(key, value, step)`` rows (a learning curve: one key at many steps), all with the current time."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, int(step)) for key, value, step in rows]
        for i in range(0, len(items), METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + METRICS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def log_artifacts(self, paths: Sequence[Path | str], artifact_path: str | None = None) -> None:
        """Each file into the run's artifacts (under ``artifact_path`` when given)."""
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    def fail(self, message: str) -> bool:
        """FAILED, tagged ``failure`` with the reason; best effort (:meth:`end_quietly`)."""
        return self.end_quietly("FAILED", "failure", message)

    def kill(self, reason: str) -> bool:
        """KILLED (stopped by a signal or a person), tagged ``interrupted`` with why; best effort."""
        return self.end_quietly("KILLED", "interrupted", reason)

    def end_if_running(self, status: str, tag: str, message: str) -> None:
        """Mark the run ``status`` with the reason, if it is still RUNNING (a run a SIGKILL left behind);
        nothing when the store no longer has it."""
        from mlflow.exceptions import MlflowException

        try:
            running = self.client.get_run(self.run_id).info.status == "RUNNING"
        except MlflowException:
            return
        if running:
            self.end_quietly(status, tag, message)

    @contextlib.contextmanager
    def ending(self) -> Iterator[TrackedRun]:
        """FINISHED when the block completes; FAILED when it raises (Ctrl-C too), and the error goes on."""
        status = "FAILED"
        try:
            yield self
            status = "FINISHED"
        finally:
            self.end(status)

    def end_quietly(self, status: str, tag: str | None = None, message: str = "") -> bool:
        """Mark the run ``status`` (with ``tag``: ``message``, the reason a reader of MLflow sees), best
        effort: False when MLflow could not be told, because the error the caller is raising matters
        more than this one."""
        try:
            if tag is not None:
                self.client.set_tag(self.run_id, tag, message[:5000])
            self.end(status)
        except Exception as exc:
            log.warning("could not mark MLflow run %s %s: %s", self.run_id, status, str(exc).splitlines()[0][:300])
            return False
        return True
