"""A throw-away Orthanc PACS for tests: free ports, its own configuration and storage, stopped by PID.

Orthanc 1.10 has no bind-address setting: RemoteAccessAllowed false makes it refuse every client
but this machine, and its DICOM (DIMSE) server stays off; only HTTP (REST + DICOMweb) is used.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def orthanc_binary() -> str:
    """Orthanc's path; missing fails under CI (the setup installs it) and skips elsewhere."""
    tool = shutil.which("Orthanc")
    if tool is None or not DICOMWEB_PLUGIN.exists():
        message = "Orthanc and its DICOMweb plugin are not installed (Debian: orthanc orthanc-dicomweb)"
        if os.environ.get("CI"):
            pytest.fail(message + "; scripts/setup.sh installs them")
        pytest.skip(message)
    return tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def orthanc(folder: Path):
    """Yields the base URL (http://127.0.0.1:PORT); Orthanc is stopped by its PID on exit."""
    binary = orthanc_binary()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "Name": "livervessels-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "DicomServerEnabled": False, "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "HttpTimeout": 60,
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "w")
    process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/system", timeout=2) as response:
                    json.load(response)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Orthanc did not start: " + (folder / "orthanc.log").read_text()[-2000:])
                time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
