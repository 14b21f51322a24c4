"""Progress in a log: plain periodic lines, never carriage-return frames (issue 18 item 5)."""

import io

from nar.progress import PlainProgress, duration, progress_bar


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_log_gets_a_plain_line_per_interval_and_one_at_the_end():
    out, clock = io.StringIO(), Clock()
    bar = PlainProgress(100, desc="bfs/train", unit="graph", file=out, interval=30, clock=clock)
    for _ in range(50):
        clock.t += 1.0
        bar.update(1)
    bar.set_postfix(loss="0.123")
    bar.close()
    bar.close()  # once only
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "bfs/train: 30/100 graph (30 %), 30 s elapsed, ETA 1 min 10 s"
    assert lines[-1] == "bfs/train: 50/100 graph (50 %), 50 s elapsed, ETA 50 s, loss=0.123"
    assert len(lines) == 2


def test_a_non_terminal_stream_gets_plain_progress_and_the_shared_duration():
    assert isinstance(progress_bar(10, file=io.StringIO()), PlainProgress)
    assert duration(185) == "3 min 05 s"
    from nar.transfer.progress import duration as transfer_duration

    assert transfer_duration is duration  # one helper, not two
