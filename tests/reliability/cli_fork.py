"""Run many ``nar`` command lines fast: one interpreter imports the CLI and the heavy modules once, then
forks a child per command line. Each child is a separate process that chdirs to its workspace, has its
own stdout/stderr files and exit status, and runs exactly what the ``nar`` console script runs
(``sys.exit(nar.cli.main(argv))``, an uncaught exception printing its traceback). Used by the config-fault
matrix, where a fresh interpreter per case (1-2 s of imports each) would dominate the suite's time.

    python -m tests.reliability.cli_fork jobs.json   # [{"cwd": ..., "argv": [...]}, ...] -> results on stdout
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback


def _child(job: dict, out: str, err: str) -> None:
    os.chdir(job["cwd"])
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    sys.argv = ["nar", *job["argv"]]
    signal.alarm(int(job.get("timeout", 60)))
    from nar.cli import main

    try:
        code = main(job["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def run_jobs(jobs: list[dict], tmp: str) -> list[dict]:
    import nar.cli  # noqa: F401  (everything below is imported before the first fork)

    for module in ("torch", "nar.models.model", "nar.training.loop", "nar.natural.config", "nar.transfer.config"):
        __import__(module)
    from prefect.client.schemas.schedules import CronSchedule  # noqa: F401  (flows' cron check)

    results = []
    for i, job in enumerate(jobs):
        out, err = os.path.join(tmp, f"{i}.out"), os.path.join(tmp, f"{i}.err")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(job, out, err)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        with open(out) as o, open(err) as e:
            results.append({"returncode": code, "stdout": o.read(), "stderr": e.read()})
    return results


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run_jobs(json.loads(open(sys.argv[1]).read()), tmp)))
