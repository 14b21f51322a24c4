"""``register``: freeze a pretrained processor and register it as a version of ``nar-processor``.

It logs the processor as an MLflow pyfunc model (:mod:`nar.registry.pyfunc`) and registers a version with
its lineage as tags, a Markdown model card, alias ``candidate`` and, if it passes the gate, alias
``champion``.

Consistency (what a registry user may rely on; the version life cycle is :mod:`nar.registry.versions`):

- Registrations are serialised by a lock file (:mod:`nar.registry.locks`). Across machines, identical
  weights still end in one version: every version carries its weights' sha256 from the moment it is
  created, and when two exist the lower version number wins and the other registration deletes its own
  and returns the winner. Alias moves across machines are last-writer-wins (a shared lock would be
  needed to serialise the gate itself).
- A version left pending by an interrupted registration is deleted by a later ``register`` (the next
  one on a locked SQLite store; against a server once it is older than ``stale_after``, 15 minutes by
  default).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nar.errors import NarError
from nar.registry.card import model_card
from nar.registry.client import RegistryClient, mlflow_env, registration_experiment
from nar.registry.format import (
    LoadedProcessor,
    ProcessorMeta,
    RegistryError,
    _write_atomic,
    config_sha256,
    read_pretrained,
)
from nar.registry.gate import (
    PERCENT,
    TAG_SCALE,
    TAG_UNIT,
    Gate,
    metric_value,
    ood_scores,
    scale_gate,
    scale_score,
)
from nar.registry.locks import registry_lock
from nar.registry.pyfunc import LINEAGE_FILE, log_model
from nar.registry.versions import (
    PENDING,
    READY,
    REGISTERED_MODEL,
    TAG_ATTEMPT,
    TAG_CONFIG_SHA,
    TAG_GATE,
    TAG_SHA,
    TAG_STATUS,
    _age_s,
    _aliases_of,
    _backfill_link,
    _delete_stale,
    _ensure_registered_model,
    _link_logged_model,
    _rollback,
    _status,
    _versions_with_sha,
    _wait_ready,
    check_model_name,
)
from nar.tracking import (
    RetryPolicy,
    dataset_version,
    dvc_locked_hashes,
    git_commit,
    params_hash,
    portable_uri,
    read_with_details,
    safe_uri,
    sqlite_path,
    tracking_uri,
)

log = logging.getLogger(__name__)

EXPERIMENT = "nar-register"
CARD_FILE = "model_card.md"
DEFAULT_OUT = Path("models/registered.json")


@dataclass(frozen=True)
class RegistrationResult:
    """What ``register`` did. ``reason`` says why (gate decision, or that nothing changed);
    ``gate`` is the gate decision recorded when the version was created."""

    name: str
    version: str
    uri: str
    sha256: str
    aliases: tuple[str, ...]
    created: bool
    champion: bool
    reason: str
    gate: str = ""
    model_uri: str = ""
    tracking_uri: str = ""
    config_sha256: str = ""  # empty for versions registered before config hashes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        return d

    def record(self, workspace: Path | None = None) -> dict[str, Any]:
        """The content of ``models/registered.json``: the same for a rerun that changed nothing
        (so DVC does not rerun downstream stages), unless aliases moved meanwhile.

        The file is tracked by git, so it holds nothing of one machine or one store's history: no
        absolute path (a SQLite store inside ``workspace`` is named relative to it, e.g.
        ``sqlite:///mlflow.db``; one outside it not at all) and no logged-model id (``m-<random>``,
        new in every store; the registered version's ``uri`` finds it)."""
        keys = ("name", "version", "uri", "sha256", "config_sha256", "aliases", "gate")
        out = {k: v for k, v in self.to_dict().items() if k in keys}
        portable = portable_uri(self.tracking_uri, workspace or Path.cwd()) if self.tracking_uri else None
        if portable is not None:
            out["tracking_uri"] = portable
        return out


def _dataset_lineage(workspace: Path, algorithms: Sequence[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    datasets: dict[str, dict[str, str]] = {}
    for algo in algorithms:
        root = workspace / "data" / "synthetic" / algo
        splits = {}
        if root.is_dir():
            for split_dir in sorted(p for p in root.iterdir() if (p / "manifest.json").is_file()):
                splits[split_dir.name] = dataset_version(split_dir)
        if splits:
            datasets[algo] = splits
    dvc = {
        path: md5
        for path, md5 in dvc_locked_hashes("generate", workspace).items()
        if any(Path(path).name == a or path.rstrip("/").endswith(f"/{a}") for a in algorithms)
    }
    return datasets, dvc


def _tag_value(value: Any, limit: int = 5000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 30] + f"...(see {LINEAGE_FILE})"


def _existing_result(ml: RegistryClient, name: str, mv: Any, reason: str, uri: str) -> RegistrationResult:
    tags = mv.tags or {}
    aliases = _aliases_of(ml, name, mv.version)
    return RegistrationResult(
        name=name,
        version=str(mv.version),
        uri=f"models:/{name}/{mv.version}",
        sha256=tags.get(TAG_SHA, ""),
        config_sha256=tags.get(TAG_CONFIG_SHA, ""),
        aliases=aliases,
        created=False,
        champion="champion" in aliases,
        reason=reason,
        gate=tags.get(TAG_GATE, ""),
        model_uri=mv.source or "",
        tracking_uri=safe_uri(uri),
    )


def register(
    pretrain_dir: str | Path,
    metrics_path: str | Path | None = None,
    *,
    name: str = REGISTERED_MODEL,
    gate: Gate | None = None,
    workspace: str | Path | None = None,
    out: str | Path | None = DEFAULT_OUT,
    params: Mapping[str, Any] | None = None,
    uri: str | None = None,
    retry: RetryPolicy | None = None,
    use_lock: bool = True,
    lock_timeout: float = 600.0,
    stale_after: float = 900.0,
    wait_timeout: float = 300.0,
    experiment: str = EXPERIMENT,
) -> RegistrationResult:
    """Freeze the pretrained processor in ``pretrain_dir`` and register it as a version of ``name``.

    pretrain_dir: ``models/pretrain/<name>`` (``processor.safetensors`` + ``processor.json``).
    metrics_path: its metrics JSON (default ``metrics/pretrain/<name>.json``); the gate reads it.
    params: the configuration the processor came from; its hash is recorded (``params_hash``).
    uri: tracking URI (default: ``nar.tracking.tracking_uri(workspace)``).
    out: where to write ``registered.json`` (relative to the workspace; None: do not write).
    use_lock: serialise with other registrations through :func:`lock_path` (leave it on).
    stale_after: a ``pending`` version older than this (seconds) is an interrupted registration and
        is deleted; with the lock on a SQLite store every pending version is (nobody else can be running).

    Identical weights (same sha256) already registered: no new version; the existing one is returned.
    """
    check_model_name(name)
    ws = Path(workspace or Path.cwd()).resolve()
    pretrain_dir = ws / pretrain_dir
    loaded = read_pretrained(pretrain_dir)
    meta = loaded.meta
    metrics_file = ws / (metrics_path or Path("metrics") / "pretrain" / f"{meta.name}.json")
    if not metrics_file.is_file():
        raise RegistryError(f"no metrics file {metrics_file} (pass --metrics); the gate needs the scores")
    try:  # the headline file over its details (metrics/pretrain/details/<name>.json) when present
        metrics = read_with_details(metrics_file)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{metrics_file}: not valid JSON: {exc}") from None
    gate = gate or Gate()
    score = metric_value(metrics, gate.metric)
    size, per_algo = ood_scores(metrics)
    datasets, dvc = _dataset_lineage(ws, meta.algorithms)
    lineage = {
        "source": str(pretrain_dir.relative_to(ws)) if pretrain_dir.is_relative_to(ws) else str(pretrain_dir),
        "metrics": str(metrics_file.relative_to(ws)) if metrics_file.is_relative_to(ws) else str(metrics_file),
        "git_commit": git_commit(ws, outputs=[out] if out is not None else []),
        "params_hash": params_hash(params if params is not None else meta.to_json()),
        "datasets": datasets,
        "dvc": dvc,
        "ood_test_size": size,
        "ood_scores": per_algo,
        "gate": asdict(gate),
    }
    uri = uri or tracking_uri(ws)
    retry = retry or RetryPolicy.from_env()
    if use_lock and sqlite_path(uri) is not None:
        stale_after = 0.0  # nobody else can be half-way through: every pending version is an orphan
    lock = registry_lock(uri, lock_timeout) if use_lock else contextlib.nullcontext()
    with lock, mlflow_env(uri):
        ml = RegistryClient(uri, retry)  # created inside the retries: a locked database is retried, a bad URI one line
        try:
            # first: a copied workspace's store is refused before anything is created in it
            experiment_id = registration_experiment(ml, experiment, ws)
            result = _register(
                ml, loaded, metrics, lineage, score, name, gate, experiment_id, stale_after, wait_timeout, metrics_file
            )
        except NarError:
            raise
        except Exception as exc:
            raise RegistryError(f"MLflow at {safe_uri(uri)}: {type(exc).__name__}: {exc}") from exc
    if out is not None:
        _write_atomic(ws / out, (json.dumps(result.record(ws), indent=2) + "\n").encode())
    log.info("registered %s: %s", result.uri, result.reason)
    return result


def _register(
    ml: RegistryClient,
    loaded: LoadedProcessor,
    metrics: Mapping[str, Any],
    lineage: dict[str, Any],
    score: float,
    name: str,
    gate: Gate,
    experiment_id: str,
    stale_after: float,
    wait_timeout: float,
    metrics_file: Path,
) -> RegistrationResult:
    sha, meta = loaded.sha256, loaded.meta
    _ensure_registered_model(ml, name)
    for _ in range(3):  # a round restarts only if a concurrent registration we waited for rolled back
        # 1. identical weights already registered (or being registered right now elsewhere)?
        existing = _versions_with_sha(ml, name, sha)
        ready = sorted((v for v in existing if _status(v) == READY), key=lambda v: int(v.version))
        if ready:
            _backfill_link(ml, name, ready[0])
            return _existing_result(
                ml,
                name,
                ready[0],
                f"identical weights are already version {ready[0].version}; nothing registered",
                ml.uri,
            )
        _delete_stale(ml, name, stale_after)
        fresh = sorted((v for v in existing if _age_s(v) < stale_after), key=lambda v: int(v.version))
        if fresh:
            winner = _wait_ready(ml, name, str(fresh[0].version), wait_timeout)
            if winner is not None:
                return _existing_result(
                    ml,
                    name,
                    winner,
                    f"identical weights were registered concurrently as version {winner.version}",
                    ml.uri,
                )
            continue
        # 2. log the model, then create the version (tagged with the sha256 from the start)
        run, model_id, model_uri = log_model(ml, loaded, metrics, lineage, experiment_id, metrics_file)
        tags = _version_tags(meta, metrics, lineage, gate, score)
        tags[TAG_ATTEMPT] = attempt = uuid.uuid4().hex
        aliases_before = dict(ml.get_registered_model(name).aliases or {})
        try:
            mv = ml.create_model_version(name, source=model_uri, run_id=run.run_id, tags=tags, model_id=model_id)
        except BaseException:
            # if MLflow created it but the answer was lost, it stays pending: refused, deleted later
            run.end_quietly("FAILED")
            raise
        version = str(mv.version)
        try:
            result = _finish(
                ml, name, version, attempt, meta, metrics, lineage, gate, score, model_id, model_uri, stale_after
            )
        except BaseException as exc:
            _rollback(ml, name, version, aliases_before, exc, model_id)
            run.end_quietly("FAILED")
            raise
        run.end_quietly("FINISHED")
        if result is not None:
            return result
        # lost a race to a lower version with the same weights: ours was deleted; wait for the winner
    raise RegistryError(f"could not register {sha[:16]}...: concurrent registrations kept rolling back")


def _finish(
    ml: RegistryClient,
    name: str,
    version: str,
    attempt: str,
    meta: ProcessorMeta,
    metrics: Mapping[str, Any],
    lineage: Mapping[str, Any],
    gate: Gate,
    score: float,
    model_id: str,
    model_uri: str,
    stale_after: float,
) -> RegistrationResult | None:
    sha = meta.weights_sha256 or ""
    others = [v for v in _versions_with_sha(ml, name, sha) if str(v.version) != version]
    # a create_model_version retried after a lost response may have created a twin: ours, delete it
    for twin in [v for v in others if (v.tags or {}).get(TAG_ATTEMPT) == attempt]:
        ml.delete_model_version(name, str(twin.version))
    others = [v for v in others if (v.tags or {}).get(TAG_ATTEMPT) != attempt]
    # 3. a concurrent registration of the same weights (no shared lock, e.g. two machines, one server):
    #    the lowest version number wins; the others delete themselves and return it
    live = [v for v in others if _status(v) == READY or _age_s(v) < stale_after]
    if live:
        winner = min(live, key=lambda v: (_status(v) != READY, int(v.version)))
        if _status(winner) == READY or int(winner.version) < int(version):
            ml.delete_model_version(name, version)
            return None
    # 4. card, aliases, gate
    aliases = dict(ml.get_registered_model(name).aliases or {})
    champion_version = aliases.get("champion")
    champion_score = None
    if champion_version is not None:
        champ = ml.get_model_version(name, str(champion_version))
        raw = (champ.tags or {}).get(gate.tag)
        champion_score = float(raw) if raw not in (None, "") else None
    promote, reason = gate.decide(score, champion_score, None if champion_version is None else str(champion_version))
    if promote and champion_version is not None:
        promote, reason = scale_gate(reason, scale_score(metrics), (champ.tags or {}).get(TAG_SCALE), champion_version)
    card = model_card(name=name, version=version, meta=meta, metrics=metrics, lineage=lineage, gate_reason=reason)
    ml.update_model_version(name, version, description=card)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / CARD_FILE).write_text(card)
        ml.log_model_artifacts(model_id, tmp)
    ml.set_registered_model_alias(name, "candidate", version)
    if promote:
        ml.set_registered_model_alias(name, "champion", version)
    ml.set_model_version_tag(name, version, TAG_GATE, _tag_value(reason))
    _link_logged_model(ml, model_id, name, version)
    # 5. complete: from now on loaders accept it
    ml.set_model_version_tag(name, version, TAG_STATUS, READY)
    aliases = ("candidate", "champion") if promote else ("candidate",)
    return RegistrationResult(
        name=name,
        version=version,
        uri=f"models:/{name}/{version}",
        sha256=sha,
        config_sha256=config_sha256(meta),
        aliases=aliases,
        created=True,
        champion=promote,
        reason=reason,
        gate=reason,
        model_uri=model_uri,
        tracking_uri=safe_uri(ml.uri),
    )


def _version_tags(
    meta: ProcessorMeta, metrics: Mapping[str, Any], lineage: Mapping[str, Any], gate: Gate, score: float
) -> dict[str, str]:
    tags = {
        TAG_SHA: meta.weights_sha256 or "",
        TAG_CONFIG_SHA: config_sha256(meta),  # what log_model wrote as processor.json, canonical
        TAG_STATUS: PENDING,
        "processor_kind": meta.config.kind,
        "hidden": str(meta.config.hidden),
        "algorithms": ",".join(meta.algorithms),
        "spec_versions": _tag_value(meta.spec_versions),
        "dataset_versions": _tag_value(lineage["datasets"]),
        "dvc_hashes": _tag_value(lineage["dvc"]),
        "git_commit": lineage["git_commit"],
        "params_hash": lineage["params_hash"],
        "pretrain_name": meta.name,
        "ood_test_size": str(lineage["ood_test_size"] or ""),
        gate.tag: repr(score),
    }
    if "ood_score" in metrics:
        tags["ood_score"] = repr(float(metrics["ood_score"]))
    scale = scale_score(metrics)
    if scale is not None:
        tags[TAG_SCALE] = repr(scale)
        for algo, sizes in metrics["scale"].items():
            if isinstance(sizes, Mapping):
                for n, families in sizes.items():
                    for family, value in families.items():
                        tags[f"scale.{algo}.{n}.{family}"] = repr(float(value))
    for algo, value in lineage["ood_scores"].items():
        tags[f"ood_score.{algo}"] = repr(value)  # % (ood_scores), like ood_score and scale_score
    tags[TAG_UNIT] = PERCENT
    return tags
