"""Lay out the MAP's file system as holoscan-cli's packager builds it, without Docker.

    .venv/bin/python scripts/map_layout.py ROOT [--models DIR]

The packager's own code does the work: its argument parser, PackagingArguments (app.json and
pkg.json), PythonAppBuilder (the app, lib and models folders it copies into the image) and the
Dockerfile it renders, whose ENV lines give the run environment (PYTHONPATH with every folder under
--add, the HOLOSCAN_* variables). Only the image build itself is skipped. The packager fetches its
manifest of base images from the internet; an offline one with the same structure is handed to it
instead (the image names are only used by a Docker build).

ROOT then holds opt/holoscan/{app,lib,models}, etc/holoscan/{app.json,pkg.json},
var/holoscan/{app.yaml,input,output,logs} and map_run.json: the command from app.json and the
environment with every container path moved under ROOT, which tests/test_map_layout.py runs.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTAINER_ROOTS = ("/opt/holoscan", "/var/holoscan", "/etc/holoscan")


def _offline_artifact_manifest(folder: Path) -> Path:
    """The packager's bundled manifest, re-keyed to the installed holoscan-cli version."""
    import holoscan_cli
    from packaging.version import Version

    bundled = json.loads((Path(holoscan_cli.__file__).parent / "package-source.json").read_text())
    version = ".".join(str(i) for i in Version(holoscan_cli.__version__).release[:3])
    path = folder / "artifacts.json"
    path.write_text(json.dumps({version: next(iter(bundled.values()))}))
    return path


def _dockerfile_env(dockerfile: str) -> dict[str, str]:
    """ENV lines of the release stage, in order, with $VAR / ${VAR} expanded as Docker does."""
    env: dict[str, str] = {}
    release = dockerfile[dockerfile.index("AS release"):] if "AS release" in dockerfile else dockerfile
    for line in release.splitlines():
        m = re.match(r"ENV\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda v: env.get(v.group(1), ""),
                                     m.group(2))
    return env


def _under_root(value: str, root: Path) -> str:
    """Container paths (also inside a colon-separated list) moved under root."""
    parts = []
    for item in value.split(":"):
        if item.startswith(CONTAINER_ROOTS):
            item = str(root) + item
        parts.append(item)
    return ":".join(p for p in parts if p)


def _version() -> str:
    return re.search(r'__version__ = "(.+)"', (REPO / "livervessels" / "__init__.py").read_text())[1]


def build_layout(root: Path, models: Path) -> dict:
    """Lay out the MAP under root; returns the run description also written to root/map_run.json."""
    from holoscan_cli.__main__ import parse_args
    from holoscan_cli.packager import packager
    from holoscan_cli.packager.arguments import PackagingArguments
    from holoscan_cli.packager.container_builder import PythonAppBuilder

    root = root.resolve()
    with tempfile.TemporaryDirectory(prefix="map_layout_") as tmp:
        tmp = Path(tmp)
        build = tmp / "build"
        subprocess.run(["bash", str(REPO / "scripts" / "package_map.sh")], check=True, cwd=REPO,
                       env={**os.environ, "ASSEMBLE_ONLY": "1", "MAP_BUILD_DIR": str(build),
                            "PYTHON": sys.executable}, stdout=subprocess.DEVNULL)
        argv0 = sys.argv[0]
        sys.argv[0] = "monai-deploy"  # the packager picks its SDK flavour from the program name
        try:
            args = parse_args(["monai-deploy", "package", str(build / "app"), "-c", str(REPO / "app.yaml"),
                               "-t", f"livervessels:{_version()}", "--platform", "x86_64", "-m", str(models),
                               "--add", str(build / "lib"), "--source", str(_offline_artifact_manifest(tmp))])
            context = tmp / "context"
            context.mkdir()
            packaging = PackagingArguments(args, str(context))
            packager._create_app_manifest(packaging.application_manifest, str(context))
            packager._create_package_manifest(packaging.package_manifest, str(context))
            builder = PythonAppBuilder(packaging.build_parameters, str(context))
            builder._copy_supporting_files(packaging.platforms[0])
            dockerfile = Path(builder._write_dockerfile(packaging.platforms[0])).read_text()
            image = packaging.platforms[0].tag  # the image name the build would give
        finally:
            sys.argv[0] = argv0

        env = _dockerfile_env(dockerfile)
        app_manifest = json.loads((context / "map" / "app.json").read_text())
        if root.exists():
            shutil.rmtree(root)
        # the Dockerfile's COPY lines, with the container's roots moved under ROOT
        copies = {"app": env["HOLOSCAN_APPLICATION"], "lib": "/opt/holoscan/lib", "models": env["HOLOSCAN_MODEL_PATH"],
                  "map/app.json": env["HOLOSCAN_APP_MANIFEST_PATH"], "map/pkg.json": env["HOLOSCAN_PKG_MANIFEST_PATH"],
                  "app.config": env["HOLOSCAN_CONFIG_PATH"]}
        for src, dst in copies.items():
            target = Path(_under_root(dst, root))
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if (context / src).is_dir() else shutil.copyfile)(context / src, target)
    workdir = Path(_under_root(app_manifest["workingDirectory"], root))
    for sub in ("input", "output", "logs"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    run_env = {k: _under_root(v, root) for k, v in env.items() if k.startswith("HOLOSCAN_") or k == "PYTHONPATH"}
    run = {"image": image, "container_env": {k: v for k, v in env.items() if k.startswith("HOLOSCAN_")},
           "command": json.loads(app_manifest["command"]), "workdir": str(workdir), "env": run_env,
           "pythonpath": [p for p in run_env["PYTHONPATH"].split(":") if p]}
    run["command"] = [_under_root(c, root) for c in run["command"]]
    (root / "map_run.json").write_text(json.dumps(run, indent=2))
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to lay the MAP's file system out in (replaced)")
    parser.add_argument("--models", type=Path, default=REPO / "models", help="model folder to bake in")
    args = parser.parse_args()
    run = build_layout(args.root, args.models)
    print(json.dumps(run, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
