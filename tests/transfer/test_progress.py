"""Transfer progress: the plan says what runs and what the results will be, every step is counted (the
oracle too), lines carry an ETA, and a log (not a terminal) gets plain periodic lines, never \\r frames."""

from __future__ import annotations

import io
import re

from nar.transfer.progress import SweepProgress, duration, plan_line, run_summary


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plan_counts_every_result_the_sweep_reports():
    line = plan_line(
        "road", ["nar_frozen", "nar_finetune", "e2e", "bottleneck"], [50, 100, 200, 500, 1000], [0, 1, 2], 2, True
    )
    # 4 x 5 x 3 = 60 training runs, the oracle as one more step, and its 15 cells: the "75 results" at the end
    assert "61 steps" in line and "60 training runs = 4 variants" in line
    assert "5 sizes (50, 100, 200, 500, 1000)" in line and "3 seeds (0, 1, 2)" in line and "2 at a time" in line
    assert "oracle" in line and "15 size x seed cells" in line and "75 results in all" in line
    assert "oracle" not in plan_line("road", ["e2e"], [8], [0], 1, False)


def test_lines_count_to_the_total_with_an_eta_and_say_what_the_results_are():
    out, clock = io.StringIO(), Clock()
    p = SweepProgress("road", 4, oracle=True, oracle_cells=2, stream=out, clock=clock, interval=60)
    p.start("plan")
    clock.now += 10
    p.run_done("e2e/n8-s0", "test pointer_acc 0.900")
    clock.now += 10
    p.run_done("e2e/n8-s1", "x")
    clock.now += 20
    p.run_done("e2e/n4-s0", "x")
    p.run_done("e2e/n4-s1", "x")
    p.oracle_done("test pointer_acc 1.000")
    p.finish(6, 4, "metrics/transfer/road.json", 45.0)
    lines = out.getvalue().splitlines()
    assert lines[0] == "plan"
    assert lines[1].startswith("transfer road [1/5] e2e/n8-s0: test pointer_acc 0.900; elapsed 10 s, ETA ~30 s")
    assert "[2/5]" in lines[2] and "ETA ~20 s" in lines[2]  # 2 runs in 20 s, 2 to go
    assert "[4/5]" in lines[4] and "ETA" not in lines[4]
    assert lines[5].startswith("transfer road [5/5] oracle: test pointer_acc 1.000 (scored once, no training")
    assert (
        lines[6] == "transfer road: 6 results (4 trained runs + 2 oracle cells) in 45 s -> metrics/transfer/road.json"
    )
    assert "\r" not in out.getvalue()


def test_a_resumed_sweep_says_so_and_counts_from_what_was_done():
    out, clock = io.StringIO(), Clock()
    p = SweepProgress("digit_grid", 10, already_done=7, stream=out, clock=clock)
    p.start("plan", resumed_from="checkpoints/transfer/digit_grid/abc")
    assert p.eta() is None and "ETA after the first run" in p.status()
    clock.now += 30
    p.run_done("e2e/n50-s2", "x")
    p.stop()
    text = out.getvalue()
    assert "resuming: 7 of 10 training runs already done (checkpoints/transfer/digit_grid/abc)" in text
    assert "[8/10]" in text and "ETA ~1 min 00 s" in text  # only this sweep's pace: 30 s a run, 2 to go


def test_a_log_gets_plain_periodic_lines_and_a_terminal_a_status_line_in_place():
    log, clock = io.StringIO(), Clock()
    p = SweepProgress("road", 3, stream=log, clock=clock, interval=60)
    assert not p.tty
    p._heartbeat()  # nothing said for under a minute: quiet
    assert log.getvalue() == ""
    clock.now += 61
    p._heartbeat()
    p._heartbeat()  # just said: quiet again
    assert log.getvalue().count("\n") == 1 and "\r" not in log.getvalue()
    assert re.fullmatch(
        r"transfer road: 0/3 steps done, 3 training runs to go; elapsed 1 min 01 s, ETA after the first run\n",
        log.getvalue(),
    )

    tty = Terminal()
    q = SweepProgress("road", 3, stream=tty, clock=clock)
    assert q.tty and q.interval == 1.0
    q._heartbeat()
    q.run_done("e2e/n8-s0", "x")
    assert tty.getvalue().startswith("\r\x1b[Ktransfer road: 0/3 steps done")
    assert "\r\x1b[Ktransfer road [1/3] e2e/n8-s0" in tty.getvalue()  # the status line is cleared first


def test_disabled_progress_says_nothing():
    out = io.StringIO()
    p = SweepProgress("road", 2, stream=out, enabled=False)
    p.start("plan")
    p.run_done("a", "b")
    p.finish(2, 2, "x", 1.0)
    assert out.getvalue() == "" and p._thread is None


def test_durations_and_run_summaries():
    assert duration(42.4) == "42 s" and duration(185) == "3 min 05 s" and duration(3720) == "1 h 02 min"
    metrics = {"test": {"pointer_acc": 0.8934, "path_match": 0.41}}
    assert run_summary(metrics, 812, 95.2) == "test pointer_acc 0.893, path_match 0.410 (812 steps, 95 s)"
    assert run_summary({}) == "test pointer_acc -, path_match -"
