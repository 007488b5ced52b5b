"""Write outputs to a temporary folder and move them into place only when all succeeded.

An interrupted or failed run therefore leaves no half-written file in the output folder.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def begin(out_dir: str | Path) -> Path:
    """A fresh staging folder on the same file system as out_dir (so the final moves are renames)."""
    out_dir = Path(out_dir).absolute()
    parent = out_dir if out_dir.is_dir() else out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))


def commit(staging: Path, out_dir: str | Path) -> list[Path]:
    """Move everything from staging into out_dir; returns the final paths."""
    out_dir = Path(out_dir).absolute()
    if not out_dir.exists():
        os.replace(staging, out_dir)  # one rename publishes the whole folder
        return sorted(out_dir.rglob("*"))
    moved = []
    for item in sorted(staging.iterdir()):
        target = out_dir / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
        moved.append(target)
    staging.rmdir()
    return moved


def abort(staging: Path | None) -> None:
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def staged_output(out_dir: str | Path) -> Iterator[Path]:
    """with staged_output(out) as tmp: write into tmp; moved into out on success, deleted on error."""
    staging = begin(out_dir)
    try:
        yield staging
    except BaseException:
        abort(staging)
        raise
    commit(staging, out_dir)
