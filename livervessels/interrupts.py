"""Ctrl-C and SIGTERM end a run quickly, with exit 130 / 143, an `error:` line and nothing left behind.

Python runs a signal handler only when the main thread is back in the interpreter; a network tile
or a large scipy call can keep it in C code for many seconds. So besides the handler (which raises
Interrupted, letting every `with` block clean up as usual), the C-level signal wakes a watchdog
thread through signal.set_wakeup_fd: if the main thread has not finished within GRACE_S, the
watchdog removes every registered temporary path (staging folders, unpacked zips), prints the
error line and ends the process with the signal's exit code.

Research use only; not a medical device.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

GRACE_S = 3.0  # the main thread's time to clean up itself before the watchdog does it
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

_temporary: set[Path] = set()
_lock = threading.Lock()
_reported = threading.Event()  # the main thread printed its own error line
_received: list[int] = []  # signals seen (frameworks may wrap or swallow the Interrupted exception)


class Interrupted(BaseException):
    """Raised in the main thread when SIGINT or SIGTERM arrives (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def register(path: Path) -> None:
    """A temporary path the watchdog (and the guardian, when running) removes if the run is killed
    before it is cleaned up."""
    with _lock:
        _temporary.add(Path(path))
        _tell_guardian("remove", Path(path))


def unregister(path: Path | None) -> None:
    if path is not None:
        with _lock:
            _temporary.discard(Path(path))
            _tell_guardian("forget", Path(path))


# ------------------------------------------------------------------ guardian process
# Under a framework that takes over the signals (Holoscan force-exits 3 s after SIGINT/SIGTERM,
# in C++, before any Python clean-up can run) or when the process is killed outright, only another
# process can clean up. The guardian reads commands on a pipe from this process; when the pipe
# closes without "done" (this process is gone), it removes the registered paths and says so on
# the shared stderr. It ignores SIGINT / SIGTERM itself (Ctrl-C reaches the whole process group).

_GUARDIAN_CODE = r"""
import os, shutil, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
remove, empty_dirs, done = set(), set(), False
for line in sys.stdin:
    command, _, path = line.rstrip(chr(10)).partition(" ")
    if command == "remove": remove.add(path)
    elif command == "forget": remove.discard(path)
    elif command == "rmdir-if-empty": empty_dirs.add(path)
    elif command == "done": done = True
if not done:
    for path in remove:
        if os.path.isdir(path): shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path): os.remove(path)
    for path in sorted(empty_dirs, key=len, reverse=True):  # a folder before its parent
        try: os.rmdir(path)
        except OSError: pass
    print("error: the run was stopped (interrupted, killed or crashed) before it finished; its partial outputs "
          "were removed and nothing was written to the output", file=sys.stderr, flush=True)
"""
_guardian = None


def _tell_guardian(command: str, path: Path | None = None) -> None:
    if _guardian is not None and _guardian.poll() is None:
        try:
            _guardian.stdin.write(f"{command} {path or ''}\n")
            _guardian.stdin.flush()
        except (BrokenPipeError, OSError):
            pass


def start_guardian(remove_if_empty: Iterable[Path] = ()) -> None:
    """Start the guardian process (once per process); remove_if_empty: folders created by this run
    that should not stay behind empty (e.g. an output folder and its parents a framework made at start);
    they are removed innermost first."""
    import subprocess

    global _guardian
    if _guardian is None:
        _guardian = subprocess.Popen([sys.executable, "-c", _GUARDIAN_CODE], stdin=subprocess.PIPE, text=True,
                                     stdout=subprocess.DEVNULL)
        with _lock:
            for path in _temporary:
                _tell_guardian("remove", path)
    for folder in remove_if_empty:
        _tell_guardian("rmdir-if-empty", Path(folder))


def release_guardian() -> None:
    """This process ends normally (it reported its own outcome): the guardian stops without acting."""
    global _guardian
    if _guardian is not None:
        _tell_guardian("done")
        try:
            _guardian.stdin.close()
            _guardian.wait(timeout=5)
        except Exception:  # noqa: BLE001  (it ends on its own once the pipe is closed)
            pass
        _guardian = None


def default_signal_disposition() -> None:
    """SIGINT / SIGTERM end the process at once, from any thread (libc signal(), process-wide):
    the shell sees 130 / 143 and the guardian cleans up. For frameworks that replace Python's
    handlers with their own from a thread Python cannot reach."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    for signum in EXIT_CODES:
        libc.signal(int(signum), 0)  # SIG_DFL


def remove_registered() -> None:
    with _lock:
        paths = list(_temporary)
        _temporary.clear()
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def report(signum: int) -> int:
    """In the main thread after an interrupt: remove what is left, print the error line, and return
    the exit code (130 / 143)."""
    remove_registered()
    print(f"error: interrupted by {signal.Signals(signum).name}; nothing was written to the output",
          file=sys.stderr, flush=True)
    mark_reported()
    return EXIT_CODES.get(signum, 128 + signum)


def end_process(code: int) -> NoReturn:
    """End the process now with `code`, after an interrupt was reported and cleaned up.

    A normal interpreter exit would run C++ destructors of native worker threads that the
    interrupt cut off mid-work (torch, OpenMP); one of them then calls std::terminate and the
    shell sees SIGABRT instead of 130 / 143. Nothing is left to save at this point."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def mark_reported() -> None:
    """The main thread has said why it stops: the watchdog only ends the process, silently."""
    _reported.set()


def received() -> int | None:
    """The first SIGINT / SIGTERM this process received, or None."""
    return _received[0] if _received else None


def _raise(signum, frame) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def install() -> bool:
    """Install the handlers and the watchdog (main thread only; a no-op elsewhere). Returns whether
    they were installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:
        os.close(read_fd)
        os.close(write_fd)
        return False
    for signum in EXIT_CODES:
        signal.signal(signum, _raise)
    threading.Thread(target=_watchdog, args=(read_fd,), name="livervessels-interrupt-watchdog",
                     daemon=True).start()
    return True


def _watchdog(read_fd: int) -> None:
    while True:
        data = os.read(read_fd, 1)
        if not data:
            return
        signum = data[0]
        if signum not in EXIT_CODES:
            continue
        if signum not in _received:
            _received.append(signum)
        time.sleep(GRACE_S)  # the main thread normally finishes its own clean-up by now
        remove_registered()
        if not _reported.is_set():
            print(f"error: interrupted by {signal.Signals(signum).name}; nothing was written to the output",
                  file=sys.stderr, flush=True)
        os._exit(EXIT_CODES[signum])
