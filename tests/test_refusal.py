"""operators/refusal.py: bad input inside the graph stops it and is kept for one error line."""
from __future__ import annotations

import pytest

from livervessels.errors import InputError
from operators.refusal import refuses_cleanly


class _Fragment:
    def __init__(self):
        self.stopped = 0

    def stop_execution(self):
        self.stopped += 1


class _Operator:
    def __init__(self, fragment, error: Exception | None):
        self.fragment, self.error = fragment, error

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        if self.error:
            raise self.error
        return "emitted"


def test_input_error_stops_the_graph_and_the_first_one_is_kept():
    fragment = _Fragment()
    first, second = InputError("slice missing"), InputError("later")
    assert _Operator(fragment, first).compute(None, None, None) is None
    _Operator(fragment, second).compute(None, None, None)
    assert fragment.failure is first and fragment.stopped == 2
    assert _Operator(_Fragment(), None).compute(None, None, None) == "emitted"


def test_other_exceptions_stay_internal_failures():
    with pytest.raises(RuntimeError):
        _Operator(_Fragment(), RuntimeError("bug")).compute(None, None, None)
