"""What a registered version of ``nar-processor`` carries (its tags) and its life cycle: pending while it is
registered, ready once complete, rolled back or deleted when a registration fails half-way.

- A version is complete once its tag ``nar_status`` is ``ready``; that tag is set last.
  ``load_processor`` refuses versions that are not ready.
- If a step after ``create_model_version`` fails, the version is deleted again and the aliases it
  moved are put back (:func:`_rollback`). If even the rollback cannot reach MLflow, the version stays
  ``pending``: loaders refuse it and a later ``register`` deletes it (:func:`_delete_stale`).
- A version is linked to the logged model it came from both ways, as ``mlflow.register_model`` does.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from nar.config import MODEL_NAME_RULE, is_model_name
from nar.registry.client import RegistryClient, _error_code
from nar.registry.format import RegistryError

log = logging.getLogger(__name__)

REGISTERED_MODEL = "nar-processor"

# version tags
TAG_SHA = "weights_sha256"
TAG_CONFIG_SHA = "config_sha256"
TAG_STATUS = "nar_status"
TAG_GATE = "nar_gate"
TAG_ATTEMPT = "nar_registration"  # one id per register() call: tells its own retried creations apart
MODEL_VERSIONS_TAG = "mlflow.modelVersions"  # on a logged model: the versions registered from it (MLflow's own)
READY, PENDING = "ready", "pending"


def check_model_name(name: str) -> str:
    """``name`` if MLflow can store and search for it, else a RegistryError, raised before anything touches
    MLflow: ``a'b`` used to create an empty registered model that ``search_model_versions`` (a quoted
    filter) then failed on, and that ``nar registry list`` could never show."""
    if not isinstance(name, str) or not is_model_name(name):
        shown = repr(name[:80] + ("..." if len(name) > 80 else "")) if isinstance(name, str) else repr(name)
        raise RegistryError(f"registered model name {shown}: allowed are {MODEL_NAME_RULE}")
    return name


def _ensure_registered_model(ml: RegistryClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        ml.get_registered_model(name)
        return
    except MlflowException as exc:
        if _error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
            raise
    try:
        ml.create_registered_model(
            name,
            tags={"nar.kind": "processor"},
            description="Frozen neural-algorithmic-reasoning processors (nar). Load with "
            f"`nar.registry.load_processor('models:/{name}@champion')`.",
        )
    except MlflowException as exc:
        if _error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise


def _versions_with_sha(ml: RegistryClient, name: str, sha: str) -> list[Any]:
    return list(ml.search_model_versions(f"name='{name}' and tags.{TAG_SHA}='{sha}'"))


def _status(mv: Any) -> str:
    return (mv.tags or {}).get(TAG_STATUS, "")


def _age_s(mv: Any) -> float:
    return time.time() - (mv.creation_timestamp or 0) / 1000.0


def _aliases_of(ml: RegistryClient, name: str, version: str) -> tuple[str, ...]:
    aliases = ml.get_registered_model(name).aliases or {}
    return tuple(sorted(a for a, v in aliases.items() if str(v) == str(version)))


def _model_versions_links(ml: RegistryClient, model_id: str) -> list[dict[str, Any]]:
    raw = (ml.get_logged_model(model_id).tags or {}).get(MODEL_VERSIONS_TAG)
    try:
        links = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        links = []
    return [link for link in links if isinstance(link, dict)] if isinstance(links, list) else []


def _link_logged_model(ml: RegistryClient, model_id: str, name: str, version: str) -> None:
    """Record on the logged model that it is ``name`` version ``version``, as ``mlflow.register_model`` does
    (tag ``mlflow.modelVersions``: a JSON list of {name, version}); the MLflow UI reads it to show the
    model as registered. ``create_model_version(model_id=...)`` alone links only the other way round.
    Idempotent: a link already there is not added twice."""
    links = _model_versions_links(ml, model_id)
    if any(link.get("name") == name and str(link.get("version")) == str(version) for link in links):
        return
    links.append({"name": name, "version": int(version)})  # an int, as mlflow.register_model writes it
    ml.set_logged_model_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps(links)})


def _unlink_logged_model(ml: RegistryClient, model_id: str, name: str, version: str) -> None:
    """Remove a deleted version's link from its logged model (the UI would link a version that is gone)."""
    links = _model_versions_links(ml, model_id)
    kept = [link for link in links if not (link.get("name") == name and str(link.get("version")) == str(version))]
    if len(kept) != len(links):
        ml.set_logged_model_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps(kept)})


def _logged_model_id(mv: Any) -> str | None:
    """The logged model a version was created from (its source is ``models:/m-<id>``), None for older sources."""
    source = mv.source or ""
    return source[len("models:/") :].strip("/") if source.startswith("models:/m-") else None


def _backfill_link(ml: RegistryClient, name: str, mv: Any) -> None:
    """Versions registered before the logged-model link get it when their weights are registered again
    (a rerun of the register stage). Best effort: a registration that changes nothing does not fail on it."""
    from mlflow.exceptions import MlflowException

    model_id = _logged_model_id(mv)
    if model_id is None:
        return
    try:
        _link_logged_model(ml, model_id, name, str(mv.version))
    except (MlflowException, RegistryError) as exc:
        log.warning("could not link logged model %s to %s version %s: %s", model_id, name, mv.version, exc)


def _rollback(
    ml: RegistryClient,
    name: str,
    version: str,
    aliases_before: Mapping[str, Any],
    cause: BaseException,
    model_id: str | None = None,
) -> None:
    """Undo a version whose registration failed half-way: delete it, unlink its logged model, put moved
    aliases back."""
    # A version that exists but is not ready is the one state a registration must not leave behind, and what
    # made it fail (the tracking server's database restarting, the server itself) is usually what the undo
    # meets next: it gets a longer budget than the steps it undoes (by default about 45 s of waits, not 3.5 s).
    saved, ml.retry = ml.retry, replace(ml.retry, attempts=2 * ml.retry.attempts + 2)
    try:
        ml.delete_model_version(name, version)
        if model_id:
            _unlink_logged_model(ml, model_id, name, version)
        for alias, target in aliases_before.items():
            if str(target) != version:
                ml.set_registered_model_alias(name, alias, str(target))
        log.warning("registration of %s version %s failed; rolled back", name, version)
    except Exception as exc:
        raise RegistryError(
            f"registering {name} version {version} failed ({cause}) and the rollback failed too ({exc}); "
            f"the version is tagged {TAG_STATUS}={PENDING}: loaders refuse it and the next registration deletes it"
        ) from cause
    finally:
        ml.retry = saved


def _delete_stale(ml: RegistryClient, name: str, stale_after: float) -> None:
    """Delete versions left pending by interrupted registrations (any weights)."""
    for mv in ml.search_model_versions(f"name='{name}' and tags.{TAG_STATUS}='{PENDING}'"):
        if _age_s(mv) >= stale_after and _status(mv) == PENDING:
            log.warning("deleting %s version %s: left pending by an interrupted registration", name, mv.version)
            ml.delete_model_version(name, str(mv.version))
            if model_id := _logged_model_id(mv):
                _unlink_logged_model(ml, model_id, name, str(mv.version))


def _wait_ready(ml: RegistryClient, name: str, version: str, timeout: float) -> Any | None:
    """Wait for another registration's version to become ready; None if it disappeared (rolled back)."""
    from mlflow.exceptions import MlflowException

    deadline = time.monotonic() + timeout
    while True:
        try:
            mv = ml.get_model_version(name, version)
        except MlflowException as exc:
            if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        if _status(mv) == READY:
            return mv
        if time.monotonic() > deadline:
            raise RegistryError(
                f"{name} version {version} with the same weights is still {_status(mv) or 'incomplete'} after "
                f"{timeout:.0f}s (another registration is running or was interrupted); try again later"
            )
        time.sleep(0.5)
