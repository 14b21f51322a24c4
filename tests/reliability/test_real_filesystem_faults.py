"""Read-only and full output directories on real file systems (issue 17 item 12), not simulated: a tmpfs mounted
read-only and a tmpfs of 12 KiB, in a private mount namespace (``unshare -rm``: no privileges needed where user
namespaces are allowed; skipped with the reason elsewhere). test_resource_faults.py covers the same faults by
making os.open/os.fsync fail in-process; these check that the real kernel errors take the same path."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import NAR, TINY, env, write_params


def _namespace_problem(tmp_path: Path) -> str | None:
    if not shutil.which("unshare"):
        return "no unshare(1)"
    probe = tmp_path / "probe"
    probe.mkdir()
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"], capture_output=True, text=True
    )
    probe.rmdir()
    return None if proc.returncode == 0 else f"cannot mount a tmpfs in a user namespace: {proc.stderr.strip()}"


def _in_namespace(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], cwd=cwd, env=env(), capture_output=True, text=True, timeout=120
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("nar generate: error: ")]


@pytest.fixture
def workspace(tmp_path) -> Path:
    problem = _namespace_problem(tmp_path)
    if problem:
        pytest.skip(problem)
    root = tmp_path / "ws"
    root.mkdir()
    write_params(root, TINY)
    return root


@pytest.mark.fault(
    category="data",
    fault="`nar generate --out` into a directory that is a real read-only mount (tmpfs -o ro)",
    expected="exit 2, one line naming the directory and 'Read-only file system'; no traceback",
    lossless=True,
)
def test_real_read_only_mount_is_one_line(workspace):
    (workspace / "ro").mkdir()
    script = f"mount -t tmpfs -o ro,size=1m tmpfs ro && {NAR} generate --out ro --no-progress; echo rc=$?"
    proc = _in_namespace(script, workspace)
    assert "rc=2" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (line,) = _error_lines(proc.stderr)
    assert f"cannot write in {workspace / 'ro'}" in line and "Read-only file system" in line, line


@pytest.mark.fault(
    category="data",
    fault="`nar generate --out` into a real tmpfs of 12 KiB that fills up during the split (ENOSPC from the kernel)",
    expected="exit 2, one line naming the shard and 'No space left on device'; only whole shards and the partial "
    "manifest left; with the mount grown the rerun completes the split byte-identical to a clean run",
    lossless=True,
)
def test_real_full_disk_is_one_line_and_resumes(workspace):
    (workspace / "full").mkdir()
    generate = f"{NAR} generate --algorithm bellman_ford --split train --no-progress"
    split = "full/bellman_ford/train"
    script = (
        f"mount -t tmpfs -o size=12k tmpfs full && {generate} --out full; echo rc1=$?; ls -a {split}; "
        f"mount -o remount,size=4m full && {generate} --out full >/dev/null; echo rc2=$?; "
        "mkdir kept && cp -r full/bellman_ford kept/"
    )
    proc = _in_namespace(script, workspace)
    out = proc.stdout
    assert "rc1=2" in out and "rc2=0" in out, out[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (line,) = _error_lines(proc.stderr)
    assert "No space left on device" in line and "shard-" in line and "rerun reuses them" in line, line
    left = out.split("rc1=2", 1)[1].split("rc2=", 1)[0].split()
    assert "manifest.json" not in left and "manifest.partial.json" in left, left
    assert all(name in (".", "..", "manifest.partial.json") or name.endswith(".safetensors.gz") for name in left), left

    clean = subprocess.run(
        [NAR, "generate", "--algorithm", "bellman_ford", "--split", "train", "--no-progress", "--out", "clean"],
        cwd=workspace,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert clean.returncode == 0, clean.stderr[-3000:]
    resumed = workspace / "kept/bellman_ford/train"
    expected = sorted(p.name for p in (workspace / "clean/bellman_ford/train").iterdir())
    assert sorted(p.name for p in resumed.iterdir()) == expected
    for name in expected:
        assert (resumed / name).read_bytes() == (workspace / "clean/bellman_ford/train" / name).read_bytes(), name
