"""The MAP configuration and layout: what `monai-deploy package` reads and copies."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def test_app_yaml_is_valid_for_the_packager():
    from holoscan_cli.packager.config_reader import ApplicationConfiguration

    config = ApplicationConfiguration()
    config.read(ROOT / "app.yaml")  # raises on a broken file
    app = config._application_object
    assert config.title() and app["version"]
    assert app["input-formats"] and app["output-formats"]
    assert {"cpu", "gpu", "memory", "gpuMemory", "sharedMemory"} <= set(config._resource_object)


def test_assembled_package_runs_from_its_own_folders(tmp_path):
    """The packager copies app/ and the --add folder only; the app must import from that layout."""
    env = {**os.environ, "ASSEMBLE_ONLY": "1"}
    subprocess.run(["bash", str(ROOT / "scripts" / "package_map.sh")], check=True, env=env, capture_output=True)
    build = ROOT / "build" / "map"
    assert (build / "app" / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    # Run the assembled app/__main__.py as the MAP would: without this checkout's editable install
    # (python -S skips the .pth files), with site-packages for the third-party libraries only.
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    probe = (f"import sys, runpy; sys.path.append({site_packages!r}); runpy.run_path({str(build / 'app')!r});"
             "import app.app, operators, livervessels.pipeline as p;"
             "print(app.app.__file__, operators.__file__, p.__file__)")
    result = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "HOLOSCAN_LIB_DIR": str(build / "lib"), "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    files = [Path(f) for f in result.stdout.split()]
    assert files[0].is_relative_to(build / "app")
    assert all(f.is_relative_to(build / "lib") for f in files[1:]), files


@pytest.mark.parametrize("fail", [False, True])
def test_staged_outputs_appear_only_on_success(tmp_path, fail):
    from livervessels.outputs.staging import staged_output

    out = tmp_path / "out"
    with pytest.raises(RuntimeError) if fail else _nothing():
        with staged_output(out) as staging:
            (staging / "a.nii.gz").write_bytes(b"1")
            assert not out.exists()
            if fail:
                raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ([] if fail else ["out"])
    if not fail:
        assert (out / "a.nii.gz").read_bytes() == b"1"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
