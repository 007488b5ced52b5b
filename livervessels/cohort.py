"""Cohorts: many studies in one process, resumable, one row per study.

    studies, problems = find_studies("cohort/")           # or a CSV manifest: study_id,path
    rows = run_cohort(studies, "out/", run_study, options, problems=problems)

Each study gets OUT/<study_id>/ holding exactly what a single run writes, published in one step
(written into a hidden folder beside it, then renamed into place), so an interrupted or failed
study never leaves half its files. OUT/.cohort/<study_id>.json records the input's content hash, the
options and the row: a re-run skips a study whose outputs are there and whose input and options
have not changed, and redoes the rest. One bad study never stops the cohort: its row says why.
Models stay loaded in the process between studies (nnunet_runner's cache), and the next study is
read and decoded on a thread while the current one is in the network.

Plain Python over files; no holoscan or MONAI Deploy import. Research use only.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from livervessels import interrupts
from livervessels.errors import InputError
from livervessels.inputs import LoadedInput, is_nifti, load_input

log = logging.getLogger(__name__)

STATE_DIR = ".cohort"  # under OUT: one JSON per study (hash, options, row)
COHORT_CSV = "cohort.csv"
COHORT_PARQUET = "cohort.parquet"
# A study id becomes a folder name: letters, digits, dot, dash and underscore only.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# The row's first columns, in this order; the rest (volumes, HU, split, timings) follow sorted.
LEADING_COLUMNS = ("study_id", "input", "status", "error", "reused", "seconds", "input_sha256")


@dataclass(frozen=True)
class Study:
    """One entry of a cohort: an id (its output folder's name) and the input path."""

    study_id: str
    path: Path


@dataclass
class StudyProblem:
    """An entry that cannot run (missing path, duplicate or unusable id); it still gets a row."""

    study_id: str
    input: str
    error: str


@dataclass
class CohortResult:
    rows: list[dict]
    interrupted: bool = False
    files: list[Path] = field(default_factory=list)  # cohort.csv (and cohort.parquet)

    @property
    def failed(self) -> int:
        return sum(r["status"] == "failed" for r in self.rows)


def study_id_of(path: Path) -> str:
    """The id a folder entry gets: its name without .nii.gz / .nii / .zip."""
    name = path.name
    for suffix in (".nii.gz", ".nii", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_studies(source: str | Path) -> tuple[list[Study], list[StudyProblem]]:
    """The studies of a folder (each entry a NIfTI file, a DICOM folder or a zip) or of a CSV
    manifest (columns study_id,path; relative paths from the manifest's folder).

    Entries that cannot run (a path that does not exist, a duplicate id, an id that is not a safe
    folder name, a file that is none of the three kinds) come back as problems, each with its
    reason, so that the cohort still reports them.

    Raises:
        InputError: the source does not exist, a manifest lacks its columns, or there is no study.
    """
    source = Path(source)
    if not source.exists():
        raise InputError(f"cohort input {source} does not exist; give a folder of studies or a CSV manifest "
                         "(study_id,path)")
    entries: list[tuple[str, Path, str]] = []  # (id, path, where it was listed)
    if source.is_dir():
        for p in sorted(source.iterdir()):
            if p.name.startswith("."):
                continue
            entries.append((study_id_of(p), p, p.name))
    elif source.suffix.lower() == ".csv":
        with open(source, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"study_id", "path"} <= {c.strip() for c in reader.fieldnames}:
                raise InputError(f"manifest {source} needs the columns study_id,path (found: "
                                 f"{', '.join(reader.fieldnames or []) or 'none'})")
            for line, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                path = Path(row["path"])
                entries.append((row["study_id"], path if path.is_absolute() else source.parent / path,
                                f"line {line}"))
    else:
        raise InputError(f"cohort input {source} is neither a folder of studies nor a .csv manifest")
    if not entries:
        raise InputError(f"no studies in {source}")
    seen: dict[str, list[str]] = {}
    for sid, _, where in entries:
        seen.setdefault(sid, []).append(where)
    studies, problems = [], []
    for sid, path, where in entries:
        if len(seen[sid]) > 1:
            problems.append(StudyProblem(sid, str(path), f"duplicate study id '{sid}' ({', '.join(seen[sid])}); "
                                                         "give each study its own id"))
        elif not _SAFE_ID.match(sid):
            problems.append(StudyProblem(sid, str(path), f"study id '{sid}' ({where}) cannot be a folder name; use "
                                                         "letters, digits, '.', '-' and '_' only"))
        elif not path.exists():
            problems.append(StudyProblem(sid, str(path), f"input {path} ({where}) does not exist"))
        elif path.is_file() and not (is_nifti(path) or path.suffix.lower() == ".zip"):
            problems.append(StudyProblem(sid, str(path), f"{path.name} is not a study: expected a NIfTI file, a DICOM "
                                                         "folder or a zip"))
        else:
            studies.append(Study(sid, path))
    return studies, problems


def content_hash(path: Path) -> str:
    """sha256 over a file's bytes, or over a folder's files (relative names and bytes, sorted)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


RunStudy = Callable[[LoadedInput, Path], None]  # (the study read, its output folder to write)
Summarize = Callable[[Path], dict]  # (a finished study's output folder) -> row columns
# Runs the (study, input hash) pairs it is given into out_dir and yields each study's row as it
# finishes (any order); a study's outputs are published (or not) before its row is yielded.
Dispatch = Callable[[Iterator[tuple[Study, str]], Path], Iterator[dict]]


def run_cohort(studies: list[Study], out_dir: str | Path, run_study: RunStudy, options: dict, *,
               summarize: Summarize | None = None, problems: Iterable[StudyProblem] = (),
               progress: Callable[[int, int, int, dict], None] | None = None,
               prefetch: bool = True, dispatch: Dispatch | None = None) -> CohortResult:
    """Run every study that is not already done; returns one row per study (and per problem), also
    written to OUT/cohort.csv (and cohort.parquet when pyarrow is installed).

    options: what makes a result (task, mode, flags) - a change redoes every study. run_study writes
    a study's outputs into the folder it is given (which does not exist yet); summarize reads the
    row's columns from the finished folder. progress(done, total, failed, row) after each study.
    dispatch: where the studies run; by default one after the other in this process, the next one
    read ahead on a thread (local_dispatch); cohort_ray.ray_dispatch runs them on Ray actors.
    Ctrl-C / SIGTERM: the studies in progress are dropped (nothing of them is published), the rows
    so far are written, and Interrupted propagates (the next run resumes). One cohort run per output
    folder at a time: hidden partial folders left by a killed run are removed at the start.

    Raises:
        InputError: out_dir cannot be used.
        interrupts.Interrupted / KeyboardInterrupt: after writing the rows so far.
    """
    from livervessels.outputs.staging import check_output_folder

    out_dir = check_output_folder(out_dir)
    state_dir = out_dir / STATE_DIR
    state_dir.mkdir(parents=True, exist_ok=True)
    remove_partial_outputs(out_dir)
    options_key = json.dumps(options, sort_keys=True, default=str)
    problems = list(problems)
    rows: dict[str, dict] = {}
    for p in problems:
        rows[p.study_id + "\0" + p.input] = study_row(p.study_id, p.input, "failed", p.error)

    def to_run():
        """(study, input hash) of each study that is not done yet. Lazily: a cohort of thousands
        starts at once instead of reading every study before the first runs."""
        for study in studies:
            digest = content_hash(study.path)
            previous = _read_state(state_dir / f"{study.study_id}.json")
            if (previous and previous.get("status") == "ok" and previous.get("input_sha256") == digest
                    and previous.get("options") == options_key and (out_dir / study.study_id).is_dir()):
                rows[study.study_id] = {**previous["row"], "reused": True}
            else:
                yield study, digest

    total = len(studies) + len(problems)
    order = [s.study_id for s in studies]
    dispatch = dispatch or local_dispatch(run_study, summarize, prefetch=prefetch)
    try:
        with contextlib.closing(dispatch(to_run(), out_dir)) as finished:
            for row in finished:
                rows[row["study_id"]] = row
                _write_state(state_dir / f"{row['study_id']}.json",
                             {"input_sha256": row["input_sha256"], "options": options_key, "status": row["status"],
                              "row": row})
                if progress:
                    progress(len(rows), total, sum(r["status"] == "failed" for r in rows.values()), row)
    except BaseException:
        result = CohortResult(_ordered(rows, order), interrupted=True)
        result.files = write_cohort_table(result.rows, out_dir)
        raise
    result = CohortResult(_ordered(rows, order))
    result.files = write_cohort_table(result.rows, out_dir)
    return result


def local_dispatch(run_study: RunStudy, summarize: Summarize | None = None, *, prefetch: bool = True) -> Dispatch:
    """Studies one after the other in this process (models stay loaded), the next one read and
    decoded on a thread while the current one runs."""
    def dispatch(queue: Iterator[tuple[Study, str]], out_dir: Path) -> Iterator[dict]:
        following = next(queue, None)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cohort-read") \
            if prefetch else None
        pending = _submit(pool, following[0]) if pool and following else None
        try:
            while following is not None:
                (study, digest), current = following, pending
                following = next(queue, None)  # the next study is read while this one runs
                pending = _submit(pool, following[0]) if pool and following else None
                yield run_one(study, digest, out_dir, run_study, summarize, loading=current)
        finally:
            if pool is not None:  # the read-ahead finishes its study; a zip it unpacked is removed
                pool.shutdown(wait=True, cancel_futures=True)
            if pending is not None:
                _close_quietly(pending)
    return dispatch


def remove_partial_outputs(out_dir: Path, study_id: str | None = None) -> None:
    """Remove the hidden folders a study being written leaves when its process is killed (of one
    study, or of all): its partial outputs and an old result renamed aside while publishing."""
    for path in out_dir.glob(".*"):
        # the names run_one and _publish give them; an exact prefix, as ids may contain dots ("a" vs "a.b")
        study, partial, _ = path.name[1:].partition(".partial-")
        if not partial:
            study, partial, _ = path.name[1:].partition(".old-")
        if partial and path.is_dir() and study_id in (None, study):
            shutil.rmtree(path, ignore_errors=True)


def _submit(pool, study: Study):
    return pool.submit(load_input, study.path)


def _close_quietly(future) -> None:
    try:
        if future.done() and not future.cancelled() and future.exception() is None:
            future.result().close()
    except BaseException:  # noqa: BLE001  (only cleaning up)
        pass


def run_one(study: Study, digest: str, out_dir: Path, run_study: RunStudy, summarize: Summarize | None,
            loading: concurrent.futures.Future | None = None) -> dict:
    """One study: read it (or take the read-ahead's result), run it into a hidden folder, publish it
    in one rename; its row, also when it failed (every exception but an interrupt becomes the row's
    error)."""
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{study.study_id}.partial-", dir=out_dir))
    interrupts.register(work)
    target = out_dir / study.study_id
    try:
        loaded = loading.result() if loading is not None else load_input(study.path)
        with loaded:
            run_study(loaded, work / study.study_id)
        _publish(work / study.study_id, target)
        row = study_row(study.study_id, str(study.path), "ok", "", digest=digest)
        if summarize is not None:
            try:
                row.update(summarize(target))
            except Exception as exc:  # noqa: BLE001  (the study's outputs are fine; say the row is thin)
                row["error"] = f"outputs written, row incomplete: {type(exc).__name__}: {exc}"
    except InputError as exc:
        row = study_row(study.study_id, str(study.path), "failed", str(exc), digest=digest)
    except OSError as exc:  # a full or failing disk: say which file and what to do
        where = f" ({exc.filename})" if exc.filename else ""
        hint = "; free some space and run again (finished studies are kept)" if exc.errno == errno.ENOSPC else ""
        row = study_row(study.study_id, str(study.path), "failed", f"{exc.strerror or exc}{where}{hint}", digest=digest)
    except Exception as exc:  # noqa: BLE001  (one study's crash never stops the cohort)
        log.debug("study %s failed", study.study_id, exc_info=True)
        row = study_row(study.study_id, str(study.path), "failed", f"internal failure: {type(exc).__name__}: {exc}",
                   digest=digest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        interrupts.unregister(work)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def _publish(new: Path, target: Path) -> None:
    """Replace target (if any) with new: the old result is renamed aside, the new one renamed in."""
    if not new.exists():
        new.mkdir(parents=True)  # a run that writes nothing still gets its (empty) folder
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(target, old)
        interrupts.register(old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
            interrupts.unregister(old)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
        interrupts.unregister(old)


def study_row(study_id: str, input: str, status: str, error: str, digest: str = "") -> dict:
    """A study's row of the cohort table before its timing and summary columns are added."""
    return {"study_id": study_id, "input": input, "status": status, "error": error, "reused": False,
            "seconds": None, "input_sha256": digest}


def _ordered(rows: dict[str, dict], order: list[str]) -> list[dict]:
    listed = set(order)
    return [rows[s] for s in order if s in rows] + [r for k, r in rows.items() if k not in listed]


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, default=str))
    os.replace(tmp, path)


def write_cohort_table(rows: list[dict], out_dir: Path) -> list[Path]:
    """OUT/cohort.csv (always) and OUT/cohort.parquet (when pyarrow is installed), each replaced in
    one rename. Columns: LEADING_COLUMNS, then every other column any row has, sorted."""
    columns = list(LEADING_COLUMNS) + sorted({c for r in rows for c in r} - set(LEADING_COLUMNS))
    out = []
    tmp = out_dir / f".{COHORT_CSV}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    os.replace(tmp, out_dir / COHORT_CSV)
    out.append(out_dir / COHORT_CSV)
    try:
        import pandas as pd
        import pyarrow  # noqa: F401  (pandas' parquet engine)
    except ImportError:
        log.info("pyarrow not installed: %s written, no %s", COHORT_CSV, COHORT_PARQUET)
        return out
    tmp = out_dir / f".{COHORT_PARQUET}.tmp"
    pd.DataFrame(rows, columns=columns).to_parquet(tmp, index=False)
    os.replace(tmp, out_dir / COHORT_PARQUET)
    out.append(out_dir / COHORT_PARQUET)
    return out


def summarize_outputs(folder: Path) -> dict:
    """Row columns from a study's written reports: volumes (ml) and HU per structure, the split's
    fractions, confidence and flags, models, compute, timings per stage, warnings."""
    row: dict = {}
    qc = _read_state(folder / "qc.json") or {}
    stats = _read_state(folder / "statistics.json") or {}
    for name, s in (qc.get("structures") or {}).items():
        row[f"volume_ml.{name}"] = s.get("volume_ml")
    for name, s in stats.items():
        if isinstance(s, dict):
            for key in ("volume_ml", "mean_hu", "median_hu"):
                if key in s:
                    row[f"{key}.{name}"] = s[key]
    models = qc.get("models") or {}
    for key in ("plan", "support_task", "vessel_task", "compute"):
        if key in models:
            row[f"models.{key}"] = models[key]
    for stage, seconds in (qc.get("timings_s") or {}).items():
        row[f"seconds.{stage}"] = seconds
    split = qc.get("portal_hepatic_split") or {}
    for key in ("portal_fraction", "hepatic_fraction", "confidence", "branches", "portal_branches",
                "hepatic_branches"):
        if key in split:
            row[f"split.{key}"] = split[key]
    if split:
        row["split.flags"] = ";".join(split.get("flags") or [])
        row["split.intensity_used"] = (split.get("intensity") or {}).get("used")
        for tree in ("portal_tree", "hepatic_tree"):
            for key, value in (split.get(tree) or {}).items():
                row[f"split.{tree}.{key}"] = value
    if "warnings" in qc:
        row["warnings"] = " | ".join(qc["warnings"])
    return row


class ProgressReport:
    """Progress of a cohort: a bar with the count, failures and ETA on a terminal, one line per study
    otherwise (logs, schedulers). Called as progress(done, total, failed, row)."""

    def __init__(self, total: int, bar: bool | None = None):
        import sys

        self.total = total
        self.start = time.monotonic()
        self.first_done: int | None = None
        self.bar = None
        if bar if bar is not None else sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="study", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, done: int, total: int, failed: int, row: dict) -> None:
        import sys

        if self.first_done is None:  # studies skipped as already done count at once, not in the rate
            self.first_done = done - 1
            self.start = time.monotonic() - (row.get("seconds") or 0.0)
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix(failed=failed, refresh=False)
            self.bar.refresh()
            return
        ran = done - self.first_done
        rate = (time.monotonic() - self.start) / max(ran, 1)
        eta = rate * (total - done)
        what = row["status"] if not row.get("error") else f"{row['status']}: {row['error']}"
        print(f"cohort: {done}/{total} {row['study_id']} {what} ({row.get('seconds')} s); failed {failed}; "
              f"ETA {eta / 60:.1f} min", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
