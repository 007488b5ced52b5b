"""What produced a benchmark's figures: the commit, whether the code differed from it, and the
versions of the libraries that decide the result. Stored in each results JSON so that a table can
be traced back to code (a run from uncommitted changes cannot be reproduced from git)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from livervessels.versions import software_versions

ROOT = Path(__file__).resolve().parent.parent


def provenance(paths: tuple[str, ...] = ("livervessels", "bench/*.py")) -> dict:
    """{"git_commit", "uncommitted_changes" (code under `paths`, not the results JSON beside it; None outside
    a git checkout), "software"}."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", *paths)
    return {"git_commit": commit, "uncommitted_changes": None if status is None else bool(status),
            "software": software_versions()}
