"""Wall-clock time of named steps, in seconds, for the timings each stage reports (qc.json, metadata)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(timings: dict[str, float], step: str, *, add: bool = False, ndigits: int | None = None) -> Iterator[None]:
    """Time the with-block into timings[step] (seconds); add=True accumulates over repeated blocks
    (a loop's steps); ndigits rounds what is stored. The time is stored also when the block raises,
    so a failed run's report says how far it got."""
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        value = timings.get(step, 0.0) + elapsed if add else elapsed
        timings[step] = round(value, ndigits) if ndigits is not None else value
