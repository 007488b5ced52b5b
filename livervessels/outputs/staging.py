"""Write outputs to a temporary folder and move them into place only when all succeeded.

An interrupted or failed run therefore leaves no half-written file in the output folder.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from livervessels import interrupts
from livervessels.errors import InputError

# Free space needed where the outputs go. A 512x512x300 study with SEG, masks, meshes and previews
# writes at most about 80 MB (the SEG: 1-bit frames, 9.8 MB per segment); the rest is margin.
MIN_FREE_MB = 200


def check_output_folder(out_dir: str | Path) -> Path:
    """Check before any work that out_dir can receive the outputs; returns it absolute.

    Raises:
        InputError: out_dir is an existing file, or the folder (or the nearest existing folder
            above it, where it would be created) is not writable or has under MIN_FREE_MB free.
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output {out_dir} exists and is not a folder; give a folder path (or remove the file)")
    existing = out_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"output {out_dir} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"output folder {existing} is not writable; choose another output path or fix its "
                         f"permissions")
    free_mb = shutil.disk_usage(existing).free / 2**20
    if free_mb < MIN_FREE_MB:
        raise InputError(f"only {free_mb:.0f} MB free at {existing}; the outputs need up to {MIN_FREE_MB} MB: "
                         "free some space or choose another output path")
    return out_dir


class OutputLock:
    """An exclusive lock on an output path for one run (a hidden .NAME.lock file beside it), so a
    second run into the same output refuses at once instead of silently overwriting the first.
    The operating system releases it if the process dies.

    Raises (on entering):
        InputError: another run holds the lock.
    """

    def __init__(self, out_dir: str | Path):
        out_dir = Path(out_dir).absolute()
        self.path = out_dir.parent / f".{out_dir.name}.lock"  # beside it: the same file whether it exists or not
        self.out_dir = out_dir
        self._fd: int | None = None

    def __enter__(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        except PermissionError:  # an existing output folder in a read-only parent: lock inside it
            if not self.out_dir.is_dir():
                raise InputError(f"cannot write beside {self.out_dir} ({self.path.parent} is not writable); "
                                 "choose another output path") from None
            self.path = self.out_dir / self.path.name
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InputError(f"another run (process {holder}) is writing to {self.out_dir}; wait for it to finish "
                             "or choose another output") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        interrupts.register(self.path)  # a killed run leaves no lock file either
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            interrupts.unregister(self.path)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def begin(out_dir: str | Path) -> Path:
    """A fresh staging folder on the same file system as out_dir (so the final moves are renames)."""
    out_dir = Path(out_dir).absolute()
    parent = out_dir if out_dir.is_dir() else out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    interrupts.register(staging)  # removed even if the run is killed in the middle of a long step
    return staging


def commit(staging: Path, out_dir: str | Path) -> list[Path]:
    """Move everything from staging into out_dir; returns the final paths."""
    out_dir = Path(out_dir).absolute()
    interrupts.unregister(staging)
    if not out_dir.exists():
        os.replace(staging, out_dir)  # one rename publishes the whole folder
        return sorted(out_dir.rglob("*"))
    moved = []
    for item in sorted(staging.iterdir()):
        target = out_dir / item.name
        if target.is_symlink() or (item.is_dir() and target.is_file()):
            target.unlink()  # a folder cannot be renamed over a file or a link (the link is not followed)
        elif target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
        moved.append(target)
    staging.rmdir()
    return moved


def abort(staging: Path | None) -> None:
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
        interrupts.unregister(staging)


@contextlib.contextmanager
def staged_output(out_dir: str | Path) -> Iterator[Path]:
    """with staged_output(out) as tmp: write into tmp; moved into out on success, deleted on error.

    Raises:
        InputError: out cannot be created or written, or another run holds its lock. Any error raised
            inside the block propagates after the temporary folder is deleted.
    """
    staging = begin(out_dir)
    try:
        yield staging
    except BaseException:
        abort(staging)
        raise
    commit(staging, out_dir)
