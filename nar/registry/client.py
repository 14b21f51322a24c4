"""The registry's MLflow client: bounded retries (:class:`nar.tracking.RetryingClient`) that end in registry
errors, and the process-wide MLflow settings registry work needs, restored afterwards.

Transient MLflow errors (connection refused, timeouts, 5xx, a locked SQLite file) are retried a bounded
number of times with exponential backoff (``RetryPolicy``, env ``NAR_REGISTRY_RETRIES`` and
``NAR_REGISTRY_RETRY_DELAY``); then a ``RegistryUnavailable`` names the tracking URI. MLflow's own HTTP
retries (7 by default, minutes) are switched off for these calls unless ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``
is set, so that the bound is ours.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from nar.registry.format import RegistryError, RegistryUnavailable
from nar.tracking import RetryingClient, RetryPolicy, ensure_experiment, safe_uri, sqlite_path, tracking_uri


def _error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


class RegistryClient(RetryingClient):
    """An MlflowClient created and called inside bounded retries; registry errors when they run out."""

    def __init__(self, uri: str, retry: RetryPolicy | None = None) -> None:
        super().__init__(uri, retry, unavailable=RegistryUnavailable, error=RegistryError)


@contextlib.contextmanager
def mlflow_env(uri: str) -> Iterator[None]:
    """MLflow settings for registry work, all restored afterwards.

    The fluent ``log_model`` needs the global tracking URI; ``mlflow.set_tracking_uri`` also
    writes ``MLFLOW_TRACKING_URI`` (and unsets it when reset), so the module globals and the
    environment are saved and put back by hand. The active experiment a stage selected earlier in
    the process (``nar.tracking.configure_mlflow``: nar-pretrain) is set aside too: ``start_run`` of
    the registration run refuses a run of another experiment than the active one.
    """
    defaults = {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # our RetryPolicy bounds the retries
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    keys = [*defaults, "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"]
    saved = {k: os.environ.get(k) for k in keys}
    for k, v in defaults.items():
        os.environ.setdefault(k, v)
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    old_tracking, old_registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    old_experiment, fluent._active_experiment_id = fluent._active_experiment_id, None
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        if tracking_utils._tracking_uri != old_tracking:
            tracking_utils.set_tracking_uri(old_tracking)
        registry_utils._registry_uri = old_registry
        fluent._active_experiment_id = old_experiment
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def registry_client(tracking: str | None, retry: RetryPolicy | None) -> Iterator[RegistryClient]:
    """A client on ``tracking`` (default: this workspace's URI) inside :func:`mlflow_env`; any MLflow error
    in the block becomes one :class:`RegistryError` line naming the URI."""
    uri = tracking or tracking_uri()
    with mlflow_env(uri):
        ml = RegistryClient(uri, retry or RetryPolicy.from_env())
        try:
            yield ml
        except RegistryError:
            raise
        except Exception as exc:
            raise RegistryError(f"MLflow at {safe_uri(uri)}: {exc}") from exc


def registration_experiment(ml: RegistryClient, name: str, workspace: Path) -> str:
    """The registration experiment: artifacts beside a SQLite database (mlruns/ in the workspace by
    default, not the cwd), refused when a copied workspace's database points into the original's."""
    db = sqlite_path(ml.uri)
    location = (db.parent / "mlruns").as_uri() if db is not None else None
    return ensure_experiment(ml, name, artifact_location=location, workspace=workspace)
