"""Run the application with clear errors, exit codes and no half-written outputs."""
from __future__ import annotations

import logging
import sys

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
    """0 on success, 2 for bad input, 1 for an internal failure."""
    from app.app import LiverVesselsApp

    if argv is not None:
        sys.argv = list(argv)  # Holoscan reads the program's arguments from sys.argv
    app = LiverVesselsApp()
    error: BaseException | None = None
    try:
        app.run()
    except SystemExit as exc:  # argparse already printed what is wrong with the arguments
        if not app.committed:
            staging.abort(app.staging_dir)
        return exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:  # report below, after cleaning up
        error = exc
    finally:
        if not app.committed:
            staging.abort(app.staging_dir)
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
