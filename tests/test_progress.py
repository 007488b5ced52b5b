"""Stage progress (livervessels/progress.py): log lines when not on a terminal, nothing when quiet,
and the stage timings qc.json records."""
from __future__ import annotations

import io

import pytest

from livervessels.progress import Progress


def test_a_log_line_per_stage_start_and_end_when_not_on_a_terminal():
    out = io.StringIO()
    progress = Progress(stream=out)
    with progress.stage("segment, enhance, split") as step:
        step()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[livervessels] segment, enhance, split ..."
    assert lines[1].startswith("[livervessels] segment, enhance, split done in ") and lines[1].endswith(" s")
    timings = progress.run_timings()
    assert list(timings["stages"]) == ["segment_enhance_split"]  # snake_case keys, as qc.json holds them
    assert timings["total"] >= timings["stages"]["segment_enhance_split"] >= 0


def test_quiet_prints_nothing_and_still_times():
    out = io.StringIO()
    progress = Progress(quiet=True, stream=out)
    with progress.stage("read input"):
        pass
    assert out.getvalue() == "" and "read_input" in progress.run_timings()["stages"]


def test_a_stage_that_fails_is_not_recorded_as_done():
    out = io.StringIO()
    progress = Progress(stream=out)
    with pytest.raises(KeyboardInterrupt):
        with progress.stage("write outputs"):
            raise KeyboardInterrupt
    assert progress.run_timings()["stages"] == {} and "done" not in out.getvalue()
