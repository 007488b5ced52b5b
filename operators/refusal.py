"""Bad input found inside a running graph ends the run quietly, with one line.

Holoscan logs an operator's exception as five framework errors before the application can say
what is wrong. An operator whose compute is wrapped here instead keeps the InputError on the
application (app.failure, reported by app.run with exit 2) and stops the graph.
"""
from __future__ import annotations

import functools

from livervessels.errors import InputError


def refuses_cleanly(compute):
    """Wrap an operator's compute: an InputError stops the graph and is kept as fragment.failure."""
    @functools.wraps(compute)
    def wrapper(self, op_input, op_output, context):
        try:
            return compute(self, op_input, op_output, context)
        except InputError as exc:
            fragment = self.fragment
            if getattr(fragment, "failure", None) is None:
                fragment.failure = exc
            fragment.stop_execution()
    return wrapper
