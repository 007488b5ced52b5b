"""Run the application with clear errors, exit codes and no half-written outputs."""
from __future__ import annotations

import argparse
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
    given = _path_arguments(sys.argv)
    if given.input is not None and not Path(given.input).exists():
        # checked before the SDK's parser runs: it would print its usage and create the output first
        print(f"error: input folder {Path(given.input).absolute()} does not exist", file=sys.stderr)
        return 2
    output = _output_argument(sys.argv)
    # the SDK creates the output folder and its missing parents when it reads its arguments: a run
    # that fails or is stopped removes those again when they stay empty
    created = _missing_folders(output) if output is not None else []
    interrupts.install()
    interrupts.start_guardian(remove_if_empty=created)
    try:
        rc = _run_app(LiverVesselsApp())
        if rc != 0:
            _remove_empty_folders(created)
    finally:
        interrupts.release_guardian()
    if interrupts.received() is not None and rc in interrupts.EXIT_CODES.values():
        interrupts.end_process(rc)  # skip native destructors of the threads the interrupt cut off
    return rc


def _path_arguments(argv: list[str]) -> argparse.Namespace:
    """The SDK's -i/--input and -o/--output as its parser reads them (every spelling argparse takes:
    -oX, --output=X, --out X), without its side effects (it creates the output folder)."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--input", "-i")
    parser.add_argument("--output", "-o")
    try:
        known, _ = parser.parse_known_args(argv[1:])
    except argparse.ArgumentError:  # e.g. -o without a value: the SDK's parser reports it
        return argparse.Namespace(input=None, output=None)
    return known


def _output_argument(argv: list[str]) -> Path | None:
    """The output folder as the SDK will read it: -o/--output, else HOLOSCAN_OUTPUT_PATH."""
    given = _path_arguments(argv).output or os.environ.get("HOLOSCAN_OUTPUT_PATH")
    return Path(given).absolute() if given else None


def _missing_folders(path: Path) -> list[Path]:
    """path and those of its parents that do not exist yet, innermost first."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _remove_empty_folders(folders: list[Path]) -> None:
    """Remove the folders (innermost first) while each is an empty folder."""
    for folder in folders:
        if not folder.is_dir() or any(folder.iterdir()):
            return
        folder.rmdir()


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
    error = error or app.failure
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
