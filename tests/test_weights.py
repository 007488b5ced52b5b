"""Installing official weights: zip import (layout checks, atomic) and resumable download from a
local HTTP server on 127.0.0.1 (no test reaches the internet)."""
from __future__ import annotations

import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from livervessels import weights
from livervessels.cli import totalsegmentator_main
from livervessels.errors import InputError
from livervessels.model_store import find_model_folder
from livervessels.tasks import TASKS

from conftest import MODELS

DEMO = MODELS / "Dataset990_LiverVesselsDemo" / "nnUNetTrainer__nnUNetPlans__3d_fullres"


def fake_official_zip(folder: Path, dataset: str = "Dataset008_HepaticVessel", trainer_dir: str | None = None,
                      drop: str | None = None) -> Path:
    """A zip laid out like an official release zip, holding the demo model's files."""
    part = next(p for t in TASKS.values() for p in t.parts if p.dataset == dataset)
    inner = f"{dataset}/{trainer_dir or part.folder.split('/')[1]}"
    path = folder / f"{dataset}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for f in ("plans.json", "dataset.json", "fold_0/checkpoint_final.pth"):
            if f != drop:
                zf.write(DEMO / f, f"{inner}/{f}")
    return path


def test_import_installs_a_loadable_model(tmp_path):
    zip_path = fake_official_zip(tmp_path)
    installed = weights.import_zip(zip_path, tmp_path / "results")
    assert installed == find_model_folder(TASKS["liver_vessels"].parts[0], [tmp_path / "results"])
    assert not [p for p in (tmp_path / "results").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("defect,message", [
    ("missing_checkpoint", "does not hold what its name says"),
    ("wrong_trainer", "does not hold what its name says"),
    ("unknown_name", "not a dataset of any known task"),
])
def test_import_refuses_a_zip_that_does_not_hold_what_its_name_says(tmp_path, defect, message):
    if defect == "missing_checkpoint":
        zip_path = fake_official_zip(tmp_path, drop="fold_0/checkpoint_final.pth")
    elif defect == "wrong_trainer":
        zip_path = fake_official_zip(tmp_path, trainer_dir="nnUNetTrainerOther__nnUNetPlans__3d_fullres")
    else:
        zip_path = fake_official_zip(tmp_path)
        zip_path = zip_path.rename(tmp_path / "Dataset123_Other.zip")
    with pytest.raises(InputError, match=message):
        weights.import_zip(zip_path, tmp_path / "results")
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files from `root` with Range support; `cut` bytes drop the connection early."""

    root: Path
    cut: int | None = None
    requests: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.root / self.path.lstrip("/")
        self.requests.append((self.path, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: self.cut] if self.cut else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = type("Handler", (_RangeHandler,), {"root": served, "cut": None, "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_by_task_installs_every_model_the_task_needs(tmp_path, server):
    served, handler, url = server
    fake_official_zip(served)  # liver_vessels also needs the 6 mm (298) and 3 mm (297) crop models
    fake_official_zip(served, "Dataset298_TotalSegmentator_total_6mm_1559subj")
    fake_official_zip(served, "Dataset297_TotalSegmentator_total_3mm_1559subj")
    rc = totalsegmentator_main(["weights", "--task", "liver_vessels", "--dest", str(tmp_path / "r"), "--base_url", url,
                                "-q"])
    assert rc == 0
    for part in weights.parts_of("liver_vessels"):
        assert find_model_folder(part, [tmp_path / "r"])
    assert all(path.startswith("/Dataset") for path, _ in handler.requests)


def test_interrupted_download_resumes_and_checks_the_size(tmp_path, server):
    served, handler, url = server
    source = fake_official_zip(served)
    full = source.read_bytes()
    target = tmp_path / "dl" / source.name
    target.parent.mkdir()
    handler.cut = len(full) // 3  # the connection drops after a third
    with pytest.raises(InputError, match="incomplete"):
        weights.download(f"{url}/{source.name}", target, quiet=True)
    partial = target.with_name(target.name + ".part")
    assert 0 < partial.stat().st_size < len(full) and not target.exists()
    handler.cut = None
    weights.download(f"{url}/{source.name}", target, quiet=True)
    assert target.read_bytes() == full
    assert handler.requests[-1][1] == f"bytes={len(full) // 3}-"  # it asked only for the rest


def test_missing_file_on_the_server_is_a_clear_error(tmp_path, server):
    _, _, url = server
    with pytest.raises(InputError, match="HTTP 404"):
        weights.download(f"{url}/nothing.zip", tmp_path / "nothing.zip", quiet=True)
