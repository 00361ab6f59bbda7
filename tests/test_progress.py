"""Progress in a log: plain lines every few seconds when stderr is not a terminal, nothing with ``--quiet``."""

from __future__ import annotations

import io
import re

import numpy as np
import soundfile as sf
from conftest import tone_mix
from rich.console import Console
from typer.testing import CliRunner

from stemclean import progress
from stemclean.cli import app


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_come_at_most_once_per_interval():
    out, clock = io.StringIO(), FakeClock()
    lines = progress.LogLines(Console(file=out, width=200), clock=clock)
    task = lines.add_task("cleaning song.wav", total=10)
    for seconds, completed in ((1, 1), (progress.LOG_INTERVAL_S, 4), (progress.LOG_INTERVAL_S + 1, 5)):
        clock.now = 100.0 + seconds
        lines.update(task, completed=completed)
    clock.now = 100.0 + 2 * progress.LOG_INTERVAL_S
    lines.advance(task, 3)
    interval = progress.LOG_INTERVAL_S
    assert out.getvalue().splitlines() == [
        f"cleaning song.wav: 40% after {interval:.0f} s, about {interval * 1.5:.0f} s left",
        f"cleaning song.wav: 80% after {2 * interval:.0f} s, about {2 * interval / 4:.0f} s left",
    ]


def test_run_writes_progress_lines_to_a_log(tmp_path, cli_env, monkeypatch):
    """Three chunks of a 20 s stem; with no wait between lines, each chunk gets its line, before the summary."""
    stem, mix = tone_mix(20.0)
    sf.write(tmp_path / "vocals.wav", stem, 44100, subtype="FLOAT")
    sf.write(tmp_path / "mix.wav", mix, 44100, subtype="FLOAT")
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)
    argv = ["run", str(tmp_path / "vocals.wav"), "-m", str(tmp_path / "mix.wav"), "-s", "1"]
    logged = CliRunner().invoke(app, argv)
    assert logged.exit_code == 0, logged.output
    *progress_lines, summary = logged.stderr.strip().splitlines()
    percents = [int(re.search(r"(\d+)% after", line)[1]) for line in progress_lines]
    assert all(line.startswith(f"cleaning {tmp_path / 'vocals.wav'}: ") for line in progress_lines)
    assert len(percents) == 3 and np.all(np.diff(percents) > 0) and percents[-1] == 100
    assert summary.startswith(str(tmp_path / "vocals_clean.wav"))
    quiet = CliRunner().invoke(app, [*argv, "-q", "-o", str(tmp_path / "quiet.wav")])
    assert quiet.exit_code == 0 and quiet.stderr == ""
