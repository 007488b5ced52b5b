"""The timed() helper: what each stage writes into its timings."""
import time

import pytest

from livervessels.timing import timed


def test_timed_stores_the_block_duration_under_the_step_name():
    timings: dict[str, float] = {}
    with timed(timings, "sleep"):
        time.sleep(0.02)
    assert set(timings) == {"sleep"}
    assert 0.015 <= timings["sleep"] < 5.0


def test_add_accumulates_repeated_blocks_and_plain_replaces():
    timings = {"loop": 100.0, "once": 100.0}
    for _ in range(3):
        with timed(timings, "loop", add=True):
            time.sleep(0.01)
    with timed(timings, "once"):
        pass
    assert timings["loop"] >= 100.025  # kept the earlier 100 s and added three blocks
    assert timings["once"] < 1.0  # replaced, not added


def test_ndigits_rounds_what_is_stored():
    timings: dict[str, float] = {}
    with timed(timings, "step", ndigits=1):
        time.sleep(0.01)
    assert timings["step"] == round(timings["step"], 1)


def test_a_failing_block_still_records_its_time_and_the_error_propagates():
    timings: dict[str, float] = {}
    with pytest.raises(ValueError, match="boom"):
        with timed(timings, "failing"):
            time.sleep(0.01)
            raise ValueError("boom")
    assert timings["failing"] >= 0.005
