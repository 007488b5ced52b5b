"""A local PACS and web viewer for a run's results: Orthanc + OHIF on 127.0.0.1.

    .venv/bin/python scripts/pacs_viewer.py OUTPUT_DIR [INPUT_STUDY]      (scripts/view.sh does this)

Starts Orthanc (Debian's orthanc + orthanc-dicomweb) with its own configuration and storage on a
free port, uploads the study and the run's DICOM outputs (SEG, SR, SC), serves OHIF's prebuilt
viewer (npm package @ohif/app, fetched once with `npm pack` into a cache folder) with the
DICOMweb API proxied from the same origin (no CORS), prints the URL that opens the study with the
SEG loaded, and stops everything on Ctrl-C. For a run from NIfTI, the CT and the SEG are first
written as DICOM (the SEG from the NIfTI masks' geometry). The viewer test (tests/viewer/) uses the
same functions.

Orthanc 1.10 has no bind-address setting: remote access is refused (RemoteAccessAllowed false) and
its DIMSE server is off, so only this machine talks to it; the viewer's server binds 127.0.0.1.
"""
from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from livervessels.outputs.dicomweb import DICOM_OUTPUTS  # what the app sends to a PACS, the viewer loads

REPO = Path(__file__).resolve().parent.parent
OHIF_PACKAGE = "@ohif/app"
OHIF_VERSION = "3.13.2"
OHIF_CACHE = Path(os.environ.get("LIVERVESSELS_CACHE", Path.home() / ".cache" / "livervessels")) / "ohif"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class ToolMissing(RuntimeError):
    """Orthanc, its DICOMweb plugin, npm or chromium is not installed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orthanc_binary() -> str:
    tool = shutil.which("Orthanc")
    if tool is None or not DICOMWEB_PLUGIN.exists():
        raise ToolMissing("Orthanc and its DICOMweb plugin are not installed (Debian: orthanc orthanc-dicomweb)")
    return tool


@contextlib.contextmanager
def orthanc(folder: Path) -> Iterator[str]:
    """Orthanc on a free port with its own configuration and storage under folder; yields its base
    URL (http://127.0.0.1:PORT) and stops it by its PID on exit, also when the caller fails."""
    binary = orthanc_binary()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "Name": "livervessels", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "DicomServerEnabled": False, "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "HttpTimeout": 60,
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    with open(folder / "orthanc.log", "w") as log:
        process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_for(url + "/system", process, folder / "orthanc.log", "Orthanc")
            yield url
        finally:
            _stop(process)


def _wait_for(url: str, process: subprocess.Popen | None, log: Path | None, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
                tail = log.read_text()[-2000:] if log and log.exists() else ""
                raise RuntimeError(f"{what} did not start: {tail}")
            time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def upload(orthanc_url: str, paths: list[Path]) -> list[dict]:
    """POST every DICOM file under paths to Orthanc's REST API; returns Orthanc's answers."""
    answers = []
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            request = urllib.request.Request(orthanc_url + "/instances", data=path.read_bytes(), method="POST",
                                             headers={"Content-Type": "application/dicom"})
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    answers.append(json.load(response))
            except urllib.error.HTTPError as exc:
                if exc.code == 400:  # not DICOM (a README, a JSON beside the files): skipped
                    continue
                raise
    return answers


def ohif_dist(cache: Path = OHIF_CACHE) -> Path:
    """OHIF's prebuilt viewer (dist/), fetched once with `npm pack` into cache."""
    dist = cache / OHIF_VERSION / "package" / "dist"
    if (dist / "index.html").is_file():
        return dist
    npm = shutil.which("npm")
    if npm is None:
        raise ToolMissing("npm is not installed; it fetches the OHIF viewer once")
    target = cache / OHIF_VERSION
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as tmp:
        subprocess.run([npm, "pack", f"{OHIF_PACKAGE}@{OHIF_VERSION}", "--silent"], cwd=tmp, check=True,
                       capture_output=True, timeout=900)
        (tarball,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as tar:
            try:
                tar.extractall(tmp, filter="data")  # no links or paths outside tmp
            except TypeError:  # Python before 3.10.12 / 3.11.4 has no extraction filters
                tar.extractall(tmp)
        shutil.rmtree(target / "package", ignore_errors=True)
        shutil.move(str(Path(tmp) / "package"), target / "package")
    return dist


def app_config(dicomweb_root: str = "/dicom-web") -> str:
    """OHIF's app-config.js for a DICOMweb server proxied from the viewer's own origin."""
    return """window.config = {
  routerBasename: null,
  extensions: [],
  modes: [],
  showStudyList: true,
  disableConfirmationPrompts: true,
  showLoadingIndicator: true,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  investigationalUseDialog: { option: 'never' },
  defaultDataSourceName: 'orthanc',
  dataSources: [{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
    sourceName: 'orthanc',
    configuration: {
      friendlyName: 'livervessels local Orthanc',
      name: 'orthanc',
      wadoUriRoot: '%(root)s', qidoRoot: '%(root)s', wadoRoot: '%(root)s',
      qidoSupportsIncludeField: false, supportsReject: false, imageRendering: 'wadors',
      thumbnailRendering: 'wadors', enableStudyLazyLoad: true, supportsFuzzyMatching: false,
      supportsWildcard: true, staticWado: false, singlepart: 'bulkdata,video',
      bulkDataURI: { enabled: true, relativeResolution: 'studies' },
      omitQuotationForMultipartRequest: true,
    },
  }],
};
""" % {"root": dicomweb_root}


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files from OHIF's dist/ (index.html for the viewer's routes), our app-config.js, and
    /dicom-web/* passed through to Orthanc."""

    dist: Path
    orthanc_url: str
    config: bytes

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(self.dist), **kwargs)

    def log_message(self, *args):  # quiet: the test and the user see the browser, not the log
        pass

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        if self.path.startswith("/dicom-web/"):
            return self._proxy()
        path = self.path.split("?", 1)[0]
        if path == "/app-config.js":
            return self._send(200, self.config, "application/javascript")
        if not (self.dist / path.lstrip("/")).is_file():
            self.path = "/index.html"  # a single-page app: its routes are served by index.html
        return super().do_GET()

    def do_POST(self):
        if self.path.startswith("/dicom-web/"):
            return self._proxy()
        self.send_error(405)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the browser went away (page closed)
            pass

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "content-type")}
        request = urllib.request.Request(self.orthanc_url + self.path, data=body, method=self.command,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                data, status, content_type = response.read(), response.status, response.headers["Content-Type"]
        except urllib.error.HTTPError as exc:
            data, status, content_type = exc.read(), exc.code, exc.headers.get("Content-Type", "text/plain")
        self._send(status, data, content_type or "application/octet-stream")


@contextlib.contextmanager
def viewer(dist: Path, orthanc_url: str) -> Iterator[str]:
    """The viewer on a free port of 127.0.0.1; yields its base URL."""
    handler = type("Handler", (_Handler,), {"dist": dist, "orthanc_url": orthanc_url,
                                            "config": app_config().encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def viewer_url(base: str, study_uid: str, seg_series_uid: str | None = None) -> str:
    url = f"{base}/viewer?StudyInstanceUIDs={study_uid}"
    return url + (f"&initialSeriesInstanceUID={seg_series_uid}" if seg_series_uid else "")


def dicom_for_nifti_run(output_dir: Path, ct_nifti: Path, folder: Path) -> list[Path]:
    """A run from NIfTI has no DICOM: write its CT as a DICOM series and its masks as a SEG of it."""
    import nibabel as nib
    import numpy as np
    import pydicom

    sys.path.insert(0, str(REPO))
    from livervessels.outputs.dicom_seg import write_dicom_seg
    from livervessels.synthetic.write_series import write_image_series

    image = nib.load(str(ct_nifti))
    ct_dir = folder / "ct"
    write_image_series(np.asarray(image.dataobj), image.affine, ct_dir, series_description="CT (from NIfTI)")
    datasets = sorted((pydicom.dcmread(p) for p in ct_dir.iterdir()), key=lambda d: int(d.InstanceNumber))
    masks = {p.name[:-7]: np.asarray(nib.load(str(p)).dataobj) > 0 for p in output_dir.glob("*.nii.gz")}
    seg = write_dicom_seg(masks, datasets, folder / "segmentations.dcm", algorithm_name="livervessels (from NIfTI)")
    return [ct_dir] + ([seg.path] if seg.path else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Open a run's results over its CT in a local OHIF viewer.")
    parser.add_argument("output_dir", type=Path, help="the run's output folder")
    parser.add_argument("input_study", type=Path, nargs="?",
                        help="the study the run read (a DICOM folder, or the CT NIfTI of a NIfTI run); default: "
                             "the input named in the run's qc.json")
    args = parser.parse_args(argv)
    qc = json.loads((args.output_dir / "qc.json").read_text())
    source = args.input_study or (Path(qc["input"]["file"]) if qc["input"].get("file") else None)
    if source is None or not source.exists():
        parser.error("pass the study the run read as INPUT_STUDY (the DICOM folder; qc.json names only a "
                     "NIfTI input's file)")
    try:
        dist = ohif_dist()
        with tempfile.TemporaryDirectory(prefix="livervessels_viewer_") as tmp, orthanc(Path(tmp) / "orthanc") as pacs:
            if source.is_file() and source.name.endswith((".nii", ".nii.gz")):
                paths = dicom_for_nifti_run(args.output_dir, source, Path(tmp) / "dicom")
            else:
                paths = [source] + [args.output_dir / f for f in DICOM_OUTPUTS if (args.output_dir / f).is_file()]
            answers = upload(pacs, paths)
            study = next(a["ParentStudy"] for a in answers)
            with urllib.request.urlopen(f"{pacs}/studies/{study}") as response:
                study_uid = json.load(response)["MainDicomTags"]["StudyInstanceUID"]
            seg_series = _seg_series_uid(pacs, study)
            with viewer(dist, pacs) as base:
                print(f"open {viewer_url(base, study_uid, seg_series)}   (Ctrl-C stops the viewer and Orthanc)",
                      flush=True)
                while True:
                    time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except ToolMissing as exc:
        print(f"error: {exc}; scripts/setup.sh installs it", file=sys.stderr)
        return 2


def _seg_series_uid(pacs: str, study: str) -> str | None:
    with urllib.request.urlopen(f"{pacs}/studies/{study}/series") as response:
        for series in json.load(response):
            if series["MainDicomTags"].get("Modality") == "SEG":
                return series["MainDicomTags"]["SeriesInstanceUID"]
    return None


if __name__ == "__main__":
    sys.exit(main())
