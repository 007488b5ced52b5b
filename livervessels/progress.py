"""Stage progress: a bar per stage on a terminal, plain log lines otherwise, nothing when quiet."""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from tqdm import tqdm


class Progress:
    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.timings: dict[str, float] = {}
        self.started = time.perf_counter()

    def run_timings(self) -> dict:
        """{"stages": {stage: s} of the stages finished so far (snake_case keys), "total": s since this
        Progress was made}: what qc.json records of a run."""
        stages = {name.replace(", ", "_").replace(" ", "_"): s for name, s in self.timings.items()}
        return {"stages": stages, "total": round(time.perf_counter() - self.started, 3)}

    @contextlib.contextmanager
    def stage(self, name: str, total: int = 1) -> Iterator[callable]:
        """with progress.stage("predict", total=5) as step: ... step() after each unit of work."""
        start = time.perf_counter()
        bar = None
        if not self.quiet and self.tty:
            bar = tqdm(total=total, desc=name, file=self.stream, leave=True, unit="step",
                       bar_format="{desc:<28} {bar} {n_fmt}/{total_fmt} [{elapsed}]")
        elif not self.quiet:
            print(f"[livervessels] {name} ...", file=self.stream, flush=True)

        def step(n: int = 1) -> None:
            if bar is not None:
                bar.update(n)

        try:
            yield step
        except BaseException:
            if bar is not None:
                bar.close()
            raise
        seconds = time.perf_counter() - start
        self.timings[name] = round(seconds, 3)
        if bar is not None:
            bar.n = bar.total
            bar.refresh()
            bar.close()
        elif not self.quiet:
            print(f"[livervessels] {name} done in {seconds:.1f} s", file=self.stream, flush=True)
