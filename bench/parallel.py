"""Run a benchmark's independent cases on several processes (the CI machine and ours have 2 cores)."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


def run_cases(fn: Callable[..., T], cases: Iterable[tuple], jobs: int = 1) -> list[T]:
    """fn(*case) for every case, in order; on `jobs` worker processes when jobs > 1 (0: one per
    core). Each worker keeps its own caches, so give it whole seeds, not single conditions.

    Raises:
        whatever fn raises (the first failing case, after the running ones finish).
    """
    cases = list(cases)
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(cases) <= 1:
        return [fn(*c) for c in cases]
    with ProcessPoolExecutor(min(jobs, len(cases))) as pool:
        return list(pool.map(fn, *zip(*cases)))
