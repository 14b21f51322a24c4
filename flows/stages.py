"""What the flows know about DVC: the stage list in dependency order, running ``dvc`` with its output
streamed into the Prefect log, and which failures are worth a retry.

Stages run through DVC's command line (``python -m dvc repro --single-item <stage>``), not its Python
API: the stage's own command inherits DVC's file descriptors, so only a subprocess whose output we read
puts the stage's own messages (and its error) into the flow log, once.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# DVC's logger propagates to the root logger, where Prefect also prints: every line twice otherwise.
logging.getLogger("dvc").propagate = False

# Items of these foreach stages are algorithms / natural-input tasks (dvc.yaml: generate@<algorithm>,
# natural@<task>, transfer@<task>); the flows' `algorithms` and `tasks` parameters filter them.
ALGORITHM_STAGES = ("generate",)
TASK_STAGES = ("natural", "transfer")

# Failures worth retrying: another DVC process holds the repo lock, or a service (MLflow server, its
# database, a DVC remote) did not answer. Anything else (a bad param, a bug, a failed check) fails at once.
TRANSIENT = re.compile(
    r"unable to acquire lock|database is locked|connection (refused|reset|aborted)|max retries exceeded|"
    r"temporarily unavailable|temporary failure in name resolution|remote end closed|bad gateway|"
    r"service unavailable|gateway time-?out|read timed out|connect timeout|(status|error) code 50[234]",
    re.IGNORECASE,
)
# Lines that carry the reason a stage failed (DVC's ERROR lines, nar's "nar <cmd>: error: ...", tracebacks).
_ERROR_LINE = re.compile(r"\berror\b|exception|traceback|failed", re.IGNORECASE)

_RAN = re.compile(r"^Running stage '(?P<stage>[^']+)'")
_SKIPPED = re.compile(r"^Stage '(?P<stage>[^']+)' didn't change, skipping")
_RESTORED = re.compile(r"^Stage '(?P<stage>[^']+)' is cached - skipping run, checking out outputs")


class StageFailed(RuntimeError):
    """``dvc`` exited non-zero. The message carries the stage's own error lines; ``transient`` says
    whether the cause looks temporary (lock held, service unreachable), i.e. whether a retry may help."""

    def __init__(self, what: str, returncode: int, errors: Sequence[str]) -> None:
        self.what, self.returncode, self.errors = what, returncode, list(errors)
        self.transient = any(TRANSIENT.search(line) for line in errors)
        kind = "transient failure, may be retried" if self.transient else "not retried"
        detail = "\n".join(self.errors) or "(no output)"
        super().__init__(f"{what} failed (exit code {returncode}; {kind}):\n{detail}")

    def __reduce__(self):  # picklable across Dask workers and Prefect's result storage
        return (type(self), (self.what, self.returncode, self.errors))


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a StageFailed only when its cause looks transient."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the state's data cannot be read back: do not guess
        return False
    return isinstance(exc, StageFailed) and exc.transient


# --------------------------------------------------------------------------- the stage list


def pipeline_stages(root: str | Path) -> tuple[list[str], dict[str, set[str]]]:
    """Every pipeline stage of the repo at ``root`` (foreach stages expanded: ``generate@bfs``) in dependency
    order, stages that do not depend on each other in dvc.yaml order; and for each, the stages it depends on."""
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    root = Path(root).resolve()
    with Repo(str(root)) as repo:
        stages = [s for s in repo.index.stages if isinstance(s, PipelineStage)]
        # stage.addressing is relative to this process's cwd; name stages relative to the repo instead
        label = {s: _address(root, s) for s in stages}
        position = {s: i for i, s in enumerate(stages)}
        graph = repo.index.graph.subgraph(stages)  # edges point from a stage to the stages it depends on
        order = nx.lexicographical_topological_sort(graph.reverse(copy=True), key=lambda s: f"{position[s]:06d}")
        names = [label[s] for s in order]
        upstream = {label[s]: {label[d] for d in nx.descendants(graph, s)} for s in stages}
    return names, upstream


def _address(root: Path, stage: Any) -> str:
    """``generate@bfs`` for the repo's own dvc.yaml, ``sub/dvc.yaml:name`` for another one."""
    dvcfile = Path(stage.path).resolve()
    if dvcfile == root / "dvc.yaml":
        return stage.name
    return f"{dvcfile.relative_to(root).as_posix()}:{stage.name}"


def _group(stage: str) -> tuple[str, str | None]:
    """``generate@bfs`` -> (``generate``, ``bfs``); ``sub/dvc.yaml:register`` -> (``register``, None)."""
    name = stage.rsplit(":", 1)[-1]
    group, _, item = name.partition("@")
    return group, item or None


def select_stages(
    ordered: Sequence[str],
    upstream: Mapping[str, set[str]],
    stages: Iterable[str] | None = None,
    algorithms: Iterable[str] | None = None,
    tasks: Iterable[str] | None = None,
    with_upstream: bool = True,
) -> list[str]:
    """The stages a flow run covers, in ``ordered``'s order.

    ``stages``: stage names (``pretrain@tiny``) or groups (``pretrain``); None: all. ``with_upstream``
    adds the stages they depend on, as ``dvc repro <stage>`` would. ``algorithms`` / ``tasks`` then keep
    only those items of the generate (algorithm) and natural/transfer (task) stages; they win over
    ``with_upstream``, since the user named them. Unknown names raise ValueError listing what exists.
    """
    ordered = list(ordered)
    if stages is None:
        chosen = set(ordered)
    else:
        chosen = set()
        for name in stages:
            matches = [s for s in ordered if s == name or _group(s)[0] == name or s.rsplit(":", 1)[-1] == name]
            if not matches:
                groups = sorted({_group(s)[0] for s in ordered})
                raise ValueError(f"stage {name!r} is not in dvc.yaml; stages: {ordered}; groups: {groups}")
            chosen.update(matches)
        if with_upstream:
            for name in list(chosen):
                chosen |= upstream.get(name, set())

    def items(kinds: tuple[str, ...]) -> set[str]:
        return {item for s in ordered for g, item in [_group(s)] if g in kinds and item}

    for wanted, kinds, what in ((algorithms, ALGORITHM_STAGES, "algorithm"), (tasks, TASK_STAGES, "task")):
        if wanted is None:
            continue
        wanted = set(wanted)
        known = items(kinds)
        unknown = sorted(wanted - known)
        if unknown:
            raise ValueError(f"{what} {unknown[0]!r} has no stage in dvc.yaml; {what}s: {sorted(known)}")
        chosen = {s for s in chosen if _group(s)[0] not in kinds or _group(s)[1] in wanted}
    return [s for s in ordered if s in chosen]


# --------------------------------------------------------------------------- running dvc


@dataclass
class DvcRun:
    """One ``dvc`` invocation: its exit code, output lines and what happened to each stage."""

    returncode: int
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def outcomes(self) -> dict[str, str]:
        """Stage -> ``ran`` | ``skipped`` (unchanged) | ``restored`` (from DVC's run cache), in output order."""
        out: dict[str, str] = {}
        for line in self.lines:
            for pattern, outcome in ((_RAN, "ran"), (_SKIPPED, "skipped"), (_RESTORED, "restored")):
                m = pattern.match(line.strip())
                if m:
                    out[m["stage"]] = outcome
        return out

    def errors(self, limit: int = 12) -> list[str]:
        """The lines that say why it failed (the last ones that look like errors, else the last lines)."""
        tail = [line for line in self.lines[-200:] if line.strip()]
        hits = [line for line in tail if _ERROR_LINE.search(line)]
        return (hits or tail)[-limit:]


def dvc_env(root: str | Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``dvc`` runs in: this interpreter's bin first on PATH (so dvc.yaml's ``nar ...``
    commands resolve to this venv), no analytics, a progress bar at most every 30 s (it goes to the log)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("TQDM_MININTERVAL", "30")
    env.update(extra or {})
    return env


def _split_output(stream: Any) -> Iterator[str]:
    """Lines of a binary stream, splitting on \\r too (progress bars redraw with \\r)."""
    pending = b""
    while True:
        chunk = stream.read1(65536)
        if not chunk:
            break
        pending += chunk
        parts = re.split(rb"\r\n|\r|\n", pending)
        pending = parts.pop()
        for part in parts:
            yield part.decode("utf-8", "replace").rstrip()
    if pending:
        yield pending.decode("utf-8", "replace").rstrip()


def run_dvc(
    args: Sequence[str],
    root: str | Path,
    log: Callable[[str], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> DvcRun:
    """Run ``python -m dvc <args>`` in ``root``, passing every output line to ``log`` as it comes."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", *args],
        cwd=str(root),
        env=dvc_env(root, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    run = DvcRun(returncode=-1)
    assert proc.stdout is not None
    try:
        for line in _split_output(proc.stdout):
            if not line.strip():
                continue
            run.lines.append(line)
            if log is not None:
                log(line)
    finally:
        # the flow was cancelled or crashed while reading: do not leave dvc (and its lock) behind
        if proc.poll() is None and sys.exc_info()[0] is not None:
            proc.terminate()
        run.returncode = proc.wait()
        run.seconds = time.monotonic() - start
    return run


def has_commit(root: str | Path) -> bool:
    """Whether the git repo at ``root`` has a commit (DVC experiments start from one)."""
    proc = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=str(root), capture_output=True)
    return proc.returncode == 0


def tracking_env(root: str | Path) -> dict[str, str]:
    """MLFLOW_TRACKING_URI for an experiment: ``dvc exp run --temp`` runs in a copy under .dvc/tmp/exps,
    and the default store (``mlflow.db`` in the current directory) would vanish with it; point it at the
    workspace's store instead (an explicit MLFLOW_TRACKING_URI is kept)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return {}
    from nar.tracking import tracking_uri

    return {"MLFLOW_TRACKING_URI": tracking_uri(Path(root).resolve())}


def create_tracking_store(root: str | Path) -> None:
    """Create the workspace's default SQLite MLflow store now, before experiments start side by side: two
    ``nar pretrain`` opening a missing ``mlflow.db`` at once race to create its tables and one fails
    ("table ... already exists"). Nothing to do with an explicit MLFLOW_TRACKING_URI or an existing store."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return
    from nar.tracking import tracking_uri

    uri = tracking_uri(Path(root).resolve())
    if not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists():
        return
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments(max_results=1)  # creates every table
