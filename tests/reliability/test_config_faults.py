"""Bad configuration, section by section: the real ``nar`` command of each stage (as dvc.yaml runs it) in a
subprocess, on the tiny profile with one bad value. Each must exit 2 with one line naming the key, the value
and what is allowed, print no traceback, and leave the workspace exactly as it was (no work started)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .helpers import env, files, nar, one_line_error, stage_command, tiny, write_params, write_pretrained


@dataclass(frozen=True)
class Case:
    section: str
    kind: str  # wrong type | unknown key | out of range | unknown name | empty list | missing key | not finite ...
    changes: dict[str, Any]
    key: str  # the key the message must start with
    allowed: str  # a fragment of what the message says is allowed
    xfail: str = ""

    @property
    def id(self) -> str:
        return f"{self.section}-{self.kind.replace(' ', '_')}-{next(iter(self.changes)).split('.')[-1]}"


TRAIN = "pretrain.runs.tiny.train"
CASES = [
    # generate
    Case("generate", "wrong type", {"generate.shard_size": "big"}, "generate.shard_size", "an integer"),
    Case("generate", "unknown key", {"generate.colour": "red"}, "generate.colour", "one of the keys"),
    Case("generate", "out of range", {"generate.sampler.p_range": [0.5, 1.5]}, "generate.sampler.p_range", "<= 1"),
    Case("generate", "out of range", {"generate.splits.val.count": 0}, "generate.splits.val.count", ">= 1"),
    Case("generate", "unknown name", {"generate.algorithms": ["bfs", "quicksort"]}, "generate.algorithms[1]", "bfs"),
    Case("generate", "unknown name", {"generate.sampler.kind": "torus"}, "generate.sampler.kind", "'grid'"),
    Case("generate", "empty list", {"generate.splits.train.sizes": []}, "generate.splits.train.sizes", "non-empty"),
    # natural
    Case("natural", "wrong type", {"natural.seed": "zero"}, "natural.seed", "an integer"),
    Case("natural", "unknown key", {"natural.road.colour": 1}, "natural.road.colour", "one of the keys"),
    Case(
        "natural",
        "out of range",
        {"natural.road.splits.train.sizes": [1]},
        "natural.road.splits.train.sizes[0]",
        "from 2",
    ),
    Case("natural", "unknown name", {"natural.algorithm": "dfs"}, "natural.algorithm", "'bellman_ford'"),
    Case("natural", "unknown name", {"natural.road.regions": {"north": 1.0}}, "natural.road.regions", "train"),
    Case("natural", "empty list", {"natural.road.splits.ood.sizes": []}, "natural.road.splits.ood.sizes", "non-empty"),
    # pretrain
    Case(
        "pretrain",
        "wrong type",
        {"pretrain.runs.tiny.batch_size": "eight"},
        "pretrain.runs.tiny.batch_size",
        "an integer",
    ),
    Case("pretrain", "unknown key", {f"{TRAIN}.colour": 1}, f"{TRAIN}.colour", "one of the keys"),
    Case("pretrain", "out of range", {f"{TRAIN}.steps": 0}, TRAIN, "steps must be >= 1"),
    Case("pretrain", "out of range", {f"{TRAIN}.learning_rate": -1.0}, f"{TRAIN}.learning_rate", "> 0"),
    Case("pretrain", "unknown name", {"pretrain.device": "tpu"}, "pretrain.device", "'cpu'"),
    Case(
        "pretrain",
        "unknown name",
        {"pretrain.runs.tiny.train_data": "stream"},
        "pretrain.runs.tiny.train_data",
        "'online'",
    ),
    Case(
        "pretrain",
        "unknown name",
        {"pretrain.runs.tiny.model.processor.kind": "transformer"},
        "pretrain.runs.tiny.model.processor",
        "'mpnn'",
    ),
    Case("pretrain", "unknown name", {f"{TRAIN}.algorithms": ["quicksort"]}, TRAIN, "bellman_ford"),
    Case("pretrain", "empty list", {f"{TRAIN}.algorithms": []}, f"{TRAIN}.algorithms", "non-empty"),
    # register (dvc.yaml passes its values as arguments; the command validates the section too)
    Case("register", "wrong type", {"register.gate_margin": "abc"}, "register.gate_margin", "a number"),
    # .nan never compares >=: the champion could never move again
    Case("register", "not finite nan", {"register.gate_margin": float("nan")}, "register.gate_margin", "finite"),
    Case("register", "not finite inf", {"register.gate_margin": float("inf")}, "register.gate_margin", "finite"),
    Case("register", "wrong type", {"register.run": 3}, "register.run", "string"),
    Case("register", "unknown key", {"register.colour": "red"}, "register.colour", "one of the keys"),
    Case("register", "out of range", {"register.model_name": "bad/name"}, "register.model_name", "letters, digits"),
    Case("register", "unknown name", {"register.run": "nope"}, "register.run", "tiny"),
    Case("register", "empty value", {"register.gate_metric": ""}, "register.gate_metric", "non-empty"),
    # flows (read by `nar serve`)
    Case("flows", "wrong type", {"flows.retries": "two"}, "flows.retries", "an integer"),
    Case("flows", "unknown key", {"flows.colour": 1}, "flows.colour", "one of the keys"),
    Case("flows", "out of range", {"flows.retry_delay_seconds": -5}, "flows.retry_delay_seconds", ">= 0"),
    Case("flows", "unknown name", {"flows.timezone": "Mars/Olympus_Mons"}, "flows.timezone", "IANA"),
    Case("flows", "out of range", {"flows.schedule": "at 2 every night"}, "flows.schedule", "cron"),
    # transfer
    Case("transfer", "wrong type", {"transfer.workers": "two"}, "transfer.workers", "an integer"),
    Case("transfer", "unknown key", {"transfer.tasks.road.colour": 1}, "transfer.tasks.road.colour", "one of the keys"),
    Case("transfer", "out of range", {"transfer.sizes": [8, 4]}, "transfer.sizes", "increasing"),
    Case(
        "transfer", "out of range", {"transfer.tasks.road.learning_rate": 0}, "transfer.tasks.road.learning_rate", "> 0"
    ),
    Case("transfer", "unknown name", {"transfer.variants": ["nar_frozen", "magic"]}, "transfer.variants[1]", "e2e"),
    Case("transfer", "unknown name", {"transfer.tasks.city": {}}, "transfer.tasks", "road"),
    Case("transfer", "empty list", {"transfer.seeds": []}, "transfer.seeds", "non-empty"),
    Case(
        "transfer", "out of range", {"transfer.tasks.road.cost_context": -1}, "transfer.tasks.road.cost_context", ">= 0"
    ),
    Case(
        "transfer",
        "unknown name",
        {"transfer.tasks.road.bottleneck_loss": "hinge"},
        "transfer.tasks.road.bottleneck_loss",
        "tree_hinge",
    ),
    Case(
        "transfer",
        "unknown name",
        {"transfer.tasks.road.cost_hinge_variants": ["bottleneck"]},
        "transfer.tasks.road.cost_hinge_variants[0]",
        "nar_frozen",
    ),
    Case(  # digit_grid's interface is latent: no per-edge scalar for the hinge
        "transfer",
        "out of range",
        {"transfer.tasks.digit_grid.cost_hinge_variants": ["e2e"], "transfer.tasks.digit_grid.cost_hinge_weight": 1},
        "transfer.tasks.digit_grid.cost_hinge_variants",
        "only nar_costs under interface 'latent'",
    ),
    # evaluate
    Case("evaluate", "wrong type", {"evaluate.low_data": "few"}, "evaluate.low_data", "an integer"),
    Case("evaluate", "unknown key", {"evaluate.colour": 1}, "evaluate.colour", "one of the keys"),
    Case("evaluate", "out of range", {"evaluate.low_data": 0}, "evaluate.low_data", ">= 1"),
    Case("evaluate", "unknown name", {"evaluate.headline": "accuracy"}, "evaluate.headline", "'pointer_acc'"),
    Case("evaluate", "empty list", {"evaluate.tasks": []}, "evaluate.tasks", "non-empty"),
    # a section nobody knows
    Case("params", "unknown key", {"genrate": {"seed": 1}}, "genrate", "one of the sections"),
]
COMMANDS = {
    "generate": ["generate", "--algorithm", "bfs", "--no-progress"],
    "natural": ["natural", "--task", "road", "--no-progress"],
    "pretrain": ["pretrain", "--run", "tiny", "--no-progress"],
    "flows": ["serve", "--root", "."],
    "transfer": ["transfer", "--task", "digit_grid", "--no-progress"],
    "evaluate": ["evaluate"],
    "params": ["generate", "--algorithm", "bfs", "--no-progress"],
}


def _argv(case: Case, params: dict[str, Any]) -> list[str]:
    if case.section == "register":
        good = tiny()  # the command line as DVC builds it; values DVC cannot template stay as they were
        for key, value in case.changes.items():
            if isinstance(value, str | int | float) and key.startswith("register.") and value != "":
                good["register"][key.split(".", 1)[1]] = value
        return stage_command("register", good)
    return COMMANDS[case.section]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every case's command line, each in its own forked ``nar`` process (tests/reliability/cli_fork.py):
    case id -> (the error message, or the AssertionError saying why it is not a clean one; changed files)."""
    prepared = []
    for case in CASES:
        root = tmp_path_factory.mktemp(case.id)
        params = tiny(**case.changes)
        write_params(root, params)
        if case.section == "register":
            write_pretrained(root, "tiny")
        prepared.append((case, root, _argv(case, params), files(root)))
    jobs = tmp_path_factory.mktemp("jobs") / "jobs.json"
    jobs.write_text(json.dumps([{"cwd": str(root), "argv": argv, "timeout": 90} for _, root, argv, _ in prepared]))
    run = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("cli_fork.py")), str(jobs)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = {}
    for (case, root, argv, before), out in zip(prepared, json.loads(run.stdout), strict=True):
        proc = subprocess.CompletedProcess(["nar", *argv], out["returncode"], out["stdout"], out["stderr"])
        changed = sorted(set(files(root).items()) ^ set(before.items()))
        try:
            results[case.id] = one_line_error(proc, argv[0]), changed
        except AssertionError as exc:
            results[case.id] = exc, changed
    return results


@pytest.mark.fault(
    category="config",
    fault="the same bad value through the installed `nar` console script (a fresh interpreter)",
    expected="the same exit status and error line as the forked run of the matrix",
    lossless=True,
)
def test_console_script_gives_the_same_answer(tmp_path, outcomes):
    case = CASES[0]
    write_params(tmp_path, tiny(**case.changes))
    message = one_line_error(nar(COMMANDS[case.section], tmp_path), COMMANDS[case.section][0])
    assert message == outcomes[case.id][0]
    assert files(tmp_path) == {"params.yaml": (tmp_path / "params.yaml").stat().st_size}


def _marks(case: Case) -> list:
    changes = ", ".join(f"{k}={v!r}" for k, v in case.changes.items())
    fault = pytest.mark.fault(
        category="config",
        fault=f"params.yaml {case.section}: {case.kind} ({changes})",
        expected="exit 2 before any work; one line naming key, value and what is allowed; no traceback",
        lossless=True,
    )
    return [fault, pytest.mark.xfail(reason=case.xfail)] if case.xfail else [fault]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_marks(c)) for c in CASES])
def test_bad_value_stops_the_stage_before_any_work(case, outcomes):
    message, changed = outcomes[case.id]
    if isinstance(message, Exception):
        raise message
    assert message.startswith(f"{case.key}: got ") or message.startswith(f"{case.key}: "), message
    assert "allowed" in message and case.allowed in message, message
    value = next(iter(case.changes.values()))
    shown = [repr(v) for v in value] if isinstance(value, list) and value else [repr(value)]
    if not isinstance(value, dict):
        assert any(s in message for s in shown) or repr(value) in message, message
    assert changed == [], f"the refused stage changed files: {changed}"
