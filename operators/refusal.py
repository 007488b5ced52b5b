"""Bad input found inside a running graph ends the run quietly, with one line; every node's time is kept.

Holoscan logs an operator's exception as five framework errors before the application can say
what is wrong. An operator whose compute is wrapped here instead keeps the InputError on the
application (app.failure, reported by app.run with exit 2) and stops the graph.
"""
from __future__ import annotations

import functools
import time

from livervessels.errors import InputError


def refuses_cleanly(compute):
    """Wrap an operator's compute: an InputError stops the graph and is kept as fragment.failure;
    the compute's duration goes into fragment.stage_timings[operator name] (qc.json's stages)."""
    @functools.wraps(compute)
    def wrapper(self, op_input, op_output, context):
        start = time.perf_counter()
        try:
            return compute(self, op_input, op_output, context)
        except InputError as exc:
            fragment = self.fragment
            if getattr(fragment, "failure", None) is None:
                fragment.failure = exc
            fragment.stop_execution()
        finally:
            timings = getattr(self.fragment, "stage_timings", None)
            if timings is not None:
                timings[self.name] = round(time.perf_counter() - start, 3)
    return wrapper
