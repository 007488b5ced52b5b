"""The MONAI Deploy Express workflow definition (deploy/monai-deploy-express/livervessels-workflow.json).

Checked against the Workflow Manager's specification (guidelines/mwm-workflow-spec.md) and against
the MAP as the packager builds it (scripts/map_layout.py): image name, user, command, HOLOSCAN_*
paths. The router's conditions are evaluated here the way the Workflow Manager's conditions
resolver does for the two operators used (== compares case-insensitively; CONTAINS [..] is an exact
match against the list, a missing tag being NULL; `series.any` is true when any series matches).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pydicom
import pytest

from conftest import DEMO_STUDY, MODELS, ROOT

WORKFLOW = ROOT / "deploy" / "monai-deploy-express" / "livervessels-workflow.json"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return json.loads(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def map_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("map") / "root"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "map_layout.py"), str(root), "--models", str(MODELS)],
                   check=True, capture_output=True)
    return json.loads((root / "map_run.json").read_text())


def _tasks(workflow: dict) -> dict[str, dict]:
    return {t["id"]: t for t in workflow["tasks"]}


def test_the_workflow_follows_the_workflow_managers_specification(workflow):
    assert len(workflow["name"]) <= 15 and workflow["version"] and len(workflow["description"]) <= 200
    gateway = workflow["informatics_gateway"]
    assert 0 < len(gateway["ae_title"]) <= 16 and gateway["export_destinations"]
    tasks = _tasks(workflow)
    assert len(tasks) == len(workflow["tasks"])  # unique ids
    assert workflow["tasks"][0]["type"] == "router"  # the first task receives the study
    for task in workflow["tasks"]:
        for destination in task.get("task_destinations", []):
            assert destination["name"] in tasks, destination
        for destination in task.get("export_destinations", []):
            assert destination["Name"] in gateway["export_destinations"]
    export = next(t for t in workflow["tasks"] if t["type"] == "export")
    (source,) = export["artifacts"]["input"]
    reference = r"\{\{ context\.executions\.(\S+)\.artifacts\.(\S+) \}\}"
    task_id, artifact = re.fullmatch(reference, source["value"]).groups()
    assert artifact in {a["name"] for a in tasks[task_id]["artifacts"]["output"]}


def test_the_map_task_runs_the_map_as_the_packager_builds_it(workflow, map_run):
    (task,) = [t for t in workflow["tasks"] if t["type"] == "docker"]
    args = task["args"]
    assert args["container_image"] == map_run["image"]
    assert args["user"] == "1000:1000"  # the packager's default holoscan user
    assert args["command"].split()[-1].rstrip("/") == map_run["container_env"]["HOLOSCAN_APPLICATION"]
    for key in ("HOLOSCAN_INPUT_PATH", "HOLOSCAN_OUTPUT_PATH", "HOLOSCAN_MODEL_PATH", "HOLOSCAN_WORKDIR"):
        assert args[f"env_{key}"].rstrip("/") == map_run["container_env"][key].rstrip("/"), key
    assert {a["name"] for a in task["artifacts"]["input"]} == {"env_HOLOSCAN_INPUT_PATH"}
    assert 30 <= int(args["task_timeout_minutes"]) <= 180


def _series_tags(folder) -> list[dict[str, str]]:
    out = []
    for series in sorted(p for p in folder.iterdir() if p.is_dir()):
        ds = pydicom.dcmread(next(series.iterdir()), stop_before_pixels=True)
        out.append({"0008,0060": str(ds.get("Modality", "")), "0018,0015": str(ds.get("BodyPartExamined", ""))})
    return out


def _condition_holds(condition: str, series: list[dict[str, str]]) -> bool:
    m = re.fullmatch(r"\{\{ context\.dicom\.series\.any\('(\w{4})','(\w{4})'\) \}\} (==|CONTAINS) (.+)", condition)
    assert m, f"condition outside what this test evaluates: {condition}"
    group, element, operator, right = m.groups()
    values = [s.get(f"{group},{element}", "") or "NULL" for s in series]
    if operator == "==":
        return any(v.lower() == right.strip("'").lower() for v in values)
    options = [o.strip().strip("'") for o in right.strip("[]").split(",")]
    return any(v in options for v in values)


@pytest.mark.parametrize("modality, body_part, routed", [
    ("CT", "ABDOMEN", True), ("CT", "", True), ("CT", "CHEST_TO_PELVIS", True),
    ("CT", "HEAD", False), ("MR", "ABDOMEN", False),
])
def test_the_router_sends_abdominal_ct_to_the_map_and_nothing_else(workflow, modality, body_part, routed):
    (route,) = _tasks(workflow)["router"]["task_destinations"]
    series = [{"0008,0060": modality, "0018,0015": body_part}]
    assert all(_condition_holds(c, series) for c in route["conditions"]) == routed


def test_the_demo_study_is_routed_to_the_map(workflow):
    (route,) = _tasks(workflow)["router"]["task_destinations"]
    assert all(_condition_holds(c, _series_tags(DEMO_STUDY)) for c in route["conditions"])
