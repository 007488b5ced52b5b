"""Run the application with clear errors, exit codes and no half-written outputs."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from livervessels import interrupts
from livervessels.errors import InputError
from livervessels.outputs import staging

log = logging.getLogger("livervessels.app")


def _root_cause(exc: BaseException) -> BaseException:
    """Holoscan re-raises operator exceptions wrapped; find the original."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, InputError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return exc


def main(argv: list[str] | None = None) -> int:
    """0 on success, 2 for bad input, 1 for an internal failure, 130 / 143 when interrupted by
    Ctrl-C / SIGTERM (nothing written)."""
    from app.app import LiverVesselsApp

    if argv is not None:
        sys.argv = list(argv)  # Holoscan reads the program's arguments from sys.argv
    output = _output_argument(sys.argv)
    # the SDK creates the output folder when it reads its arguments: a run that fails or is stopped
    # removes it again when it was not there before and stays empty
    created = output if output is not None and not output.exists() else None
    interrupts.install()
    interrupts.start_guardian(remove_if_empty=created)
    try:
        rc = _run_app(LiverVesselsApp())
        if rc != 0 and created is not None and created.is_dir() and not any(created.iterdir()):
            created.rmdir()
    finally:
        interrupts.release_guardian()
    if interrupts.received() is not None and rc in interrupts.EXIT_CODES.values():
        interrupts.end_process(rc)  # skip native destructors of the threads the interrupt cut off
    return rc


def _output_argument(argv: list[str]) -> Path | None:
    """The output folder as the SDK will read it: -o/--output, else HOLOSCAN_OUTPUT_PATH."""
    for i, arg in enumerate(argv):
        if arg in ("-o", "--output") and i + 1 < len(argv):
            return Path(argv[i + 1]).absolute()
        if arg.startswith("--output="):
            return Path(arg.split("=", 1)[1]).absolute()
    env = os.environ.get("HOLOSCAN_OUTPUT_PATH")
    return Path(env).absolute() if env else None


def _run_app(app) -> int:
    error: BaseException | None = None
    try:
        app.run()
    except SystemExit as exc:  # argparse already printed what is wrong with the arguments
        return exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:  # report below, after cleaning up
        error = exc
    finally:
        if not app.committed:
            staging.abort(app.staging_dir)
        if app.output_lock is not None:
            app.output_lock.release()
    signum = interrupts.received()
    if signum is not None and not app.committed:
        return interrupts.report(signum)
    error = error or getattr(app, "failure", None)
    if error is None and not app.committed:
        error = RuntimeError("the application stopped before writing its outputs (see the log above)")
    if error is None:
        return 0
    cause = _root_cause(error) or error
    if isinstance(cause, InputError):
        print(f"error: {cause}", file=sys.stderr)
        return 2
    print(f"error: internal failure: {cause}", file=sys.stderr)
    return 1
