"""The `nar` command line: arguments, params overrides, user errors without tracebacks."""

import subprocess
import sys

import pytest
import yaml

from nar.cli import main
from nar.data.dataset import load_dataset

SMALL = {
    "generate": {
        "seed": 3,
        "algorithms": ["bellman_ford"],
        "shard_size": 16,
        "splits": {"train": {"count": 40, "sizes": [4, 7]}, "test": {"count": 4, "sizes": [12]}},
    }
}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(SMALL))
    return tmp_path


def test_generate_from_params(workspace):
    assert main(["generate", "--no-progress"]) == 0
    train = load_dataset(workspace / "data/synthetic/bellman_ford/train")
    test = load_dataset(workspace / "data/synthetic/bellman_ford/test")
    assert len(train) == 40 and len(test) == 4
    assert {t.num_nodes for t in train} <= {4, 7}
    assert {t.num_nodes for t in test} == {12}


def test_generate_overrides(workspace):
    args = ["generate", "--algorithm", "bellman_ford", "--split", "extra", "--count", "5", "--size", "9"]
    assert main([*args, "--seed", "11", "--out", "custom", "--no-progress"]) == 0
    data = load_dataset(workspace / "custom/bellman_ford/extra")
    assert len(data) == 5 and {t.num_nodes for t in data} == {9}


def test_same_seed_same_bytes_different_seed_different(workspace):
    main(["generate", "--split", "train", "--out", "a", "--no-progress"])
    main(["generate", "--split", "train", "--out", "b", "--no-progress"])
    main(["generate", "--split", "train", "--out", "c", "--seed", "4", "--no-progress"])
    shards = sorted(p.name for p in (workspace / "a/bellman_ford/train").iterdir())
    for name in shards:
        a = (workspace / "a/bellman_ford/train" / name).read_bytes()
        assert a == (workspace / "b/bellman_ford/train" / name).read_bytes(), name
    assert (workspace / "a/bellman_ford/train/manifest.json").read_bytes() != (
        workspace / "c/bellman_ford/train/manifest.json"
    ).read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--algorithm", "quicksort"], "--algorithm 'quicksort' is unknown"),
        (["generate", "--split", "nope"], "--split 'nope' is not in params.yaml"),
        (["generate", "--count", "0"], "--count must be >= 1"),
        (["generate", "--size", "-3"], "--size: got -3; allowed: node counts from 1 to 1024"),
        (["generate", "--seed", "-1"], "--seed must be >= 0"),
        (["generate", "--out", "../outside"], "outside the workspace"),
    ],
)
@pytest.mark.fault(
    category="config",
    fault="bad `nar generate` argument (unknown algorithm/split, count 0, size -3, seed -1, --out ../outside)",
    expected="exit 2, one line, no traceback, nothing written",
    lossless=True,
)
def test_bad_arguments_are_one_line_errors(workspace, capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (workspace / "data").exists()


@pytest.mark.fault(
    category="config",
    fault="generate.seed -5 through `python -m nar.cli`",
    expected="exit 2 naming the key, no traceback, nothing written",
    lossless=True,
)
def test_bad_params_stop_before_work(workspace):
    (workspace / "params.yaml").write_text(yaml.safe_dump({"generate": {"algorithms": ["bellman_ford"], "seed": -5}}))
    proc = subprocess.run([sys.executable, "-m", "nar.cli", "generate"], cwd=workspace, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "generate.seed: got -5" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (workspace / "data").exists()


# a command that prints more than a pipe holds, run through nar.cli.main
_PRINTS_A_LOT = """
import argparse, sys
import nar.cli
parser = argparse.ArgumentParser()
parser.set_defaults(command="list", func=lambda args: [print("row", i) for i in range(200_000)])
nar.cli.build_parser = lambda: parser
sys.exit(nar.cli.main([]))
"""


def test_a_closed_pipe_ends_quietly():
    """`nar registry list | head`: the reader goes away; nar ends without a traceback (exit 141, as a shell
    tool ended by SIGPIPE), and without SIGPIPE's default action, which killed `nar transfer` mid-cleanup."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _PRINTS_A_LOT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    proc.stdout.read(10)
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == ""


def test_flow_commands_come_from_the_entry_point_group():
    """`nar serve`, `nar blueprint` and `nar sweep` belong to flows (the layer above nar): nar.cli finds them
    through the ``nar.commands`` entry points of the installed package, never by importing flows itself."""
    from importlib.metadata import entry_points

    import nar.cli

    entries = {e.name: e.value for e in entry_points(group=nar.cli.COMMAND_GROUP)}
    assert entries == {"flows": "flows.cli:add_flow_parsers"}, "reinstall the package: pip install -e ."
    commands = nar.cli.build_parser()._subparsers._group_actions[0].choices  # argparse's subcommand table
    assert {"serve", "blueprint", "sweep"} <= set(commands)
