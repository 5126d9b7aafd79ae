"""The CLI's progress bar."""

import io
import sys

from xmark_core.cli import progress


def test_progress_bar_in_a_log_file_is_drawn_at_intervals_not_per_step(monkeypatch):
    """A bar on a file (CI log, nohup) keeps every redraw as text: 360 fast epochs must not
    write 360 bars, and the closing line still reports the whole count."""
    log = io.StringIO()  # not a TTY
    monkeypatch.setattr(sys, "stderr", log)
    with progress.tqdm_progress("train", "epoch") as step:
        for done in range(1, 361):
            step(done, 360)
    draws = [d for d in log.getvalue().replace("\n", "\r").split("\r") if d.strip()]
    assert len(draws) <= 3, draws
    assert "360/360" in draws[-1]
