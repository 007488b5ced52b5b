"""Install official TotalSegmentator weights: import a release zip, or download it by task.

A zip named <DatasetNNN_name>.zip must hold <DatasetNNN_name>/<trainer>__<plans>__<config>/ with
plans.json, dataset.json and fold_N/checkpoint_final.pth, as the task registry expects; anything
else is refused. Extraction goes to a temporary folder beside the destination and is renamed into
place, so an interrupted import never leaves a half model that would later load.
"""
from __future__ import annotations

import http.client
import logging
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from livervessels.errors import InputError
from livervessels.model_store import totalseg_results_dir
from livervessels.tasks import TASKS, ModelPart, get_task

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


def parts_of(task: str) -> list[ModelPart]:
    """The model parts a task needs, including the model that crops its input."""
    t = get_task(task)
    parts = list(t.parts)
    for helper in (t.crop_task, t.robust_crop_task):
        if helper:
            parts += [p for p in TASKS[helper].parts if p not in parts]
    return parts


def _known_part(dataset: str) -> ModelPart:
    for task in TASKS.values():
        for part in task.parts:
            if part.dataset == dataset:
                return part
    raise InputError(f"{dataset} is not a dataset of any known task; known: "
                     f"{', '.join(sorted({p.dataset for t in TASKS.values() for p in t.parts}))}")


def import_zip(zip_path: str | Path, dest: str | Path | None = None) -> Path:
    """Check and extract an official weights zip into dest (a results folder); returns the model folder.

    Raises:
        InputError: the zip is missing, corrupt, not the model its name says, or holds files outside
            its dataset folder.
    """
    zip_path = Path(zip_path)
    dest = Path(dest) if dest else totalseg_results_dir()
    if not zip_path.is_file():
        raise InputError(f"{zip_path} does not exist; pass the path of a downloaded weights zip")
    dataset = zip_path.name.removesuffix(".zip")
    part = _known_part(dataset)
    required = {f"{part.folder}/plans.json", f"{part.folder}/dataset.json",
                f"{part.folder}/fold_{part.fold}/checkpoint_final.pth"}
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = {n.rstrip("/") for n in zf.namelist()}
            missing = sorted(required - names)
            if missing:
                raise InputError(f"{zip_path.name} does not hold what its name says: missing {', '.join(missing)}")
            outside = [n for n in names if not n.startswith(dataset + "/") or ".." in Path(n).parts]
            if outside:
                raise InputError(f"{zip_path.name} holds files outside {dataset}/ ({outside[0]}); refusing it")
            dest.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{dataset}.partial-", dir=dest))
            try:
                zf.extractall(staging)
                target = dest / dataset
                if target.exists():
                    shutil.rmtree(target)
                os.replace(staging / dataset, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{zip_path} is not a valid zip ({exc}); download it again") from exc
    log.info("installed %s into %s", dataset, dest)
    return dest / part.folder


def download(url: str, target: Path, quiet: bool = False) -> Path:
    """Download url to target, resuming a previous partial download (target.part); checks the size.

    Raises:
        InputError: the server refused, the connection failed, or the download is shorter than
            announced (a rerun resumes it).
    """
    part_file = target.with_name(target.name + ".part")
    have = part_file.stat().st_size if part_file.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the partial file is complete
            os.replace(part_file, target)
            return target
        raise InputError(f"download of {url} failed: HTTP {exc.code}; check the URL or your connection") from exc
    except urllib.error.URLError as exc:
        raise InputError(f"download of {url} failed ({exc.reason}); check your connection, or download the "
                         f"zip elsewhere and import it with --zip") from exc
    with response:
        resumed = response.status == 206
        if have and not resumed:
            have = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        mode = "ab" if resumed else "wb"
        with open(part_file, mode) as fh, tqdm(total=expected, initial=have, unit="B", unit_scale=True,
                                               desc=target.name, disable=quiet or not sys.stderr.isatty()) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
            except http.client.IncompleteRead as exc:  # connection dropped: keep what arrived
                fh.write(exc.partial)
            except (ConnectionError, TimeoutError) as exc:
                log.warning("download interrupted: %s", exc)
    size = part_file.stat().st_size
    if expected is not None and size != expected:
        raise InputError(f"download of {url} incomplete ({size} of {expected} bytes); run the command again "
                         "to resume")
    os.replace(part_file, target)
    return target


def install_task(task: str, dest: str | Path | None = None, base_url: str | None = None, quiet: bool = False,
                 cache_dir: str | Path | None = None) -> list[Path]:
    """Download and import every model of a task that is not installed yet.

    Raises:
        InputError: a part has no download (it ships with the project) or its download or import
            failed.
    """
    dest = Path(dest) if dest else totalseg_results_dir()
    cache = Path(cache_dir) if cache_dir else dest / ".downloads"
    cache.mkdir(parents=True, exist_ok=True)
    installed = []
    for part in parts_of(task):
        if (dest / part.folder / f"fold_{part.fold}" / "checkpoint_final.pth").is_file():
            installed.append(dest / part.folder)
            continue
        if not part.release_tag:
            raise InputError(f"{part.dataset} has no download; it ships with this project (models/)")
        url = f"{base_url.rstrip('/')}/{part.dataset}.zip" if base_url else part.url
        if not quiet:
            print(f"downloading {part.dataset} from {url}", file=sys.stderr)
        zip_path = download(url, cache / f"{part.dataset}.zip", quiet=quiet)
        installed.append(import_zip(zip_path, dest))
        zip_path.unlink()
    return installed
