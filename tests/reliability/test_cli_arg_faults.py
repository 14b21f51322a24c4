"""Command-line arguments that used to get past the checks: ``nar generate --split`` and ``nar sweep --csv`` /
``--name`` paths that leave the workspace, ``nar serve --limit -1``, ``nar blueprint --stage bogus``, a
PREFECT_API_URL where no server answers. Each through the real ``nar`` command: exit 2, one line naming the
option and what is allowed, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import TINY, files, make_repo, nar, one_line_error, write_params


def _outside(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A directory outside the workspace holding files a stray write would overwrite or delete."""
    outside = tmp_path / "outside"
    (outside / "bfs" / "x").mkdir(parents=True)
    (outside / "manifest.json").write_text('{"unrelated": true}')
    (outside / "bfs" / "x" / "shard-00099.safetensors.gz").write_bytes(b"not ours")
    return outside, files(outside)


@pytest.mark.fault(
    category="security",
    fault="nar generate --split naming a path: an absolute directory, ../../x, ../bellman_ford/train (another "
    "algorithm's split), and a split directory that is a symlink to outside the workspace",
    expected="exit 2, one line naming --split and what is allowed (a split name; inside the workspace) before "
    "any work; nothing written inside or outside",
    inputs=4,
    lossless=True,
)
def test_generate_split_cannot_name_a_path_or_leave_the_workspace(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    write_params(root, TINY)
    outside, outside_before = _outside(tmp_path)
    size = ["--count", "2", "--size", "4", "--no-progress", "--algorithm", "bfs"]
    for split in (str(outside), "../../x", "../bellman_ford/train"):
        before = files(root)
        message = one_line_error(nar(["generate", "--split", split, *size], root), "generate")
        assert message.startswith(f"--split {split!r}: allowed: a split name of letters, digits and _"), message
        assert files(root) == before

    # a valid name whose directory is a symlink out of the workspace
    (root / "data" / "synthetic" / "bfs").mkdir(parents=True)
    (root / "data" / "synthetic" / "bfs" / "train").symlink_to(outside / "bfs", target_is_directory=True)
    before = files(root)
    message = one_line_error(nar(["generate", "--split", "train", *size], root), "generate")
    assert message.startswith("--split directory") and "outside the workspace" in message, message
    assert files(root) == before
    assert files(outside) == outside_before
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


@pytest.mark.fault(
    category="security",
    fault="nar sweep --csv ../x.csv, --csv /outside/x.csv, --name ../../x (the default sweeps/<name>.csv)",
    expected="exit 2, one line naming the option and 'outside the workspace' before Dask or any experiment "
    "starts; nothing written; the flow refuses the same paths before its first experiment",
    inputs=3,
    lossless=True,
)
def test_sweep_results_file_cannot_leave_the_workspace(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    write_params(root, TINY)
    outside, outside_before = _outside(tmp_path)
    grid = ["-S", "generate.seed=1,2", "--target", "generate@bfs"]
    cases = [
        ("--csv", ["--csv", "../x.csv"]),
        ("--csv", ["--csv", str(outside / "manifest.json")]),
        ("--name", ["--name", "../../x"]),
    ]
    before = files(root)
    for option, args in cases:
        message = one_line_error(nar(["sweep", "--root", str(root), *grid, *args], root), "sweep")
        assert message.startswith(f"{option} ") and "outside the workspace" in message, message
    assert files(root) == before and files(outside) == outside_before
    assert not (tmp_path / "x.csv").exists()

    from flows.sweep import results_path
    from nar.errors import UserError

    assert results_path(root, None, "sweep-1") == root.resolve() / "sweeps" / "sweep-1.csv"
    with pytest.raises(UserError, match="--csv '../x.csv' resolves to .*, outside the workspace"):
        results_path(root, "../x.csv", "sweep-1")


@pytest.mark.fault(
    category="orchestration",
    fault="nar serve --limit -1 / --limit 0; nar blueprint --stage bogus (was a Prefect flow traceback)",
    expected="exit 2 with only one line on stderr naming the option and what is allowed; no flow run started",
    inputs=3,
)
def test_serve_limit_and_blueprint_stage_are_checked_before_prefect_starts(tmp_path):
    root = make_repo(tmp_path / "ws")
    for limit in ("-1", "0"):
        proc = nar(["serve", "--root", ".", "--limit", limit], root)
        message = one_line_error(proc, "serve")
        assert message.startswith(f"--limit {limit}: allowed: an integer >= 1"), message
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]

    proc = nar(["blueprint", "--stage", "bogus"], root)
    message = one_line_error(proc, "blueprint")
    assert message.startswith("stage 'bogus' is not in dvc.yaml; stages: ["), message
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]
    assert not (root / ".prefect").exists()


@pytest.mark.fault(
    category="orchestration",
    fault="PREFECT_API_URL pointing at a closed port (and at a name that does not resolve) for `nar serve`, "
    "`nar blueprint` and `nar sweep` (it used to be ~100 lines of httpx traceback)",
    expected="exit 2 within seconds, one line naming the URL, the reason and the fix (start a server or unset "
    "the variable); nothing written",
    inputs=4,
    lossless=True,
)
def test_unreachable_prefect_api_is_one_line(tmp_path):
    import socket

    root = make_repo(tmp_path / "ws")
    with socket.socket() as s:  # a port nothing listens on: bound, never listening, closed before use
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    before = files(root)
    for command in (["serve", "--root", "."], ["blueprint", "--stage", "generate"], ["sweep", "-S", "a=1"]):
        proc = nar(command, root, timeout=60, PREFECT_API_URL=url)
        message = one_line_error(proc, command[0])
        assert message.startswith(f"PREFECT_API_URL={url}: no Prefect server answers there ("), message
        assert "prefect server start" in message and "unset PREFECT_API_URL" in message, message
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]
    proc = nar(["serve", "--root", "."], root, timeout=60, PREFECT_API_URL="http://nar-no-such-host.invalid/api")
    assert "PREFECT_API_URL=http://nar-no-such-host.invalid/api: no Prefect server" in one_line_error(proc, "serve")
    assert files(root) == before
