"""The graph's nodes (operators/*.py) and their wiring in app/app.py, without running the app.

The flows join ports the operators declare, every required input is fed and every node leads to
the commit; each computing node hands on its function's result with the plan and sources kept;
the writers write into the folder they were given and nowhere else.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from monai.deploy.core import Application, ConditionType
from monai.deploy.core import app_context as sdk_app_context
from monai.deploy.core.domain import Image

import operators
import operators as ops
from app.app import LiverVesselsApp
from livervessels import interrupts
from livervessels.errors import InputError
from livervessels.model_plan import DEMO_PLAN
from livervessels.outputs import staging
from livervessels.pipeline import add_portal_hepatic_split
from livervessels.stage_types import CtStudy, DicomReports, LiverVesselResult, SegResult
from livervessels.study import load_ct_study
from livervessels.synthetic.phantom import LABELS
from livervessels.synthetic.write_series import write_image_series
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.staged_writer import StagedWriterOperator

from conftest import DEMO_STUDY, MODELS

SPLIT_MASKS = {"portal_vein_branches", "hepatic_veins", "liver_vessels_labeled"}


class _App(Application):
    """A fragment to build nodes on, with what LiverVesselsApp gives refusal.py and the QC writer."""

    def __init__(self):
        super().__init__(["app"])
        self.stage_timings: dict[str, float] = {}
        self.run_started = time.perf_counter()
        self.committed = False


class _Input:
    """op_input: receive(name) returns the message set for that port."""

    def __init__(self, **ports):
        self.ports, self.received = ports, []

    def receive(self, name):
        self.received.append(name)
        return self.ports[name]


class _Output:
    """op_output: emit(value, name) is recorded."""

    def __init__(self):
        self.emitted: list[tuple[str, object]] = []

    def emit(self, value, name):
        self.emitted.append((name, value))


def _optional(op, port: str) -> bool:
    return any(kind == ConditionType.NONE for kind, _ in op.spec.inputs[port].conditions)


def _compute(op, **ports) -> dict:
    """Run op.compute on the messages given; the ports it reads and emits are the ones it declares,
    every required input is read once and every output emitted once."""
    op_input, op_output = _Input(**ports), _Output()
    op.compute(op_input, op_output, None)
    declared_in, declared_out = set(op.spec.inputs), set(op.spec.outputs)
    required = {p for p in declared_in if not _optional(op, p)}
    assert set(op_input.received) <= declared_in and sorted(required) == sorted(
        p for p in op_input.received if p in required), (op.name, op_input.received)
    names = [name for name, _ in op_output.emitted]
    assert sorted(names) == sorted(declared_out), (op.name, names)
    return dict(op_output.emitted)


@pytest.fixture
def fragment():
    return _App()


# ---- the graph as app/app.py composes it ---------------------------------------------------------

@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    """LiverVesselsApp.compose() on the demo study, its add_flow calls recorded instead of made."""
    out = tmp_path_factory.mktemp("graph") / "out"
    flows = []

    class Recording(LiverVesselsApp):
        def add_flow(self, upstream, downstream, port_pairs=None):
            flows.append((upstream, downstream, port_pairs))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["app", "-i", str(DEMO_STUDY), "-o", str(out), "-m", str(MODELS)])
        mp.setattr(sdk_app_context, "set_up_logging", lambda *a, **k: None)  # keep pytest's logging
        mp.setattr(ops.nnunet_segmentation, "preload_models", lambda *a, **k: None)  # no model load
        app = Recording()
        try:
            app.compose()
        finally:
            staging.abort(app.staging_dir)
            if app.output_lock is not None:
                app.output_lock.release()
    return app, flows, out


def _nodes(flows) -> list:
    nodes = []
    for up, down, _ in flows:
        for op in (up, down):
            if all(op is not n for n in nodes):
                nodes.append(op)
    return nodes


def test_each_flow_joins_an_output_and_an_input_its_operators_declare(composed):
    _, flows, _ = composed
    assert flows
    for up, down, pairs in flows:
        assert pairs, f"{up.name} -> {down.name} names no ports"
        for source, target in pairs:
            assert source in up.spec.outputs, f"{up.name} declares no output {source!r}: {list(up.spec.outputs)}"
            assert target in down.spec.inputs, f"{down.name} declares no input {target!r}: {list(down.spec.inputs)}"


def test_every_node_is_in_the_graph_once_with_each_required_input_fed_once(composed):
    _, flows, _ = composed
    nodes = _nodes(flows)
    assert sorted(type(op).__name__ for op in nodes) == sorted(operators.__all__)
    assert len({op.name for op in nodes}) == len(nodes)
    fed = Counter((id(down), target) for _, down, pairs in flows for _, target in pairs)
    read = {(id(up), source) for up, _, pairs in flows for source, _ in pairs}
    for op in nodes:
        for port in op.spec.inputs:
            expected = 0 if _optional(op, port) else 1  # the SDK loader's input_folder: its own attribute instead
            assert fed[(id(op), port)] == expected, f"{op.name}.{port} fed {fed[(id(op), port)]} times"
        for port in op.spec.outputs:
            assert (id(op), port) in read, f"{op.name}.{port} goes nowhere"


def test_every_node_runs_before_the_commit_and_the_graph_has_no_cycle(composed):
    _, flows, _ = composed
    nodes = _nodes(flows)
    after = {id(op): {id(down) for up, down, _ in flows if up is op} for op in nodes}
    by_id = {id(op): op for op in nodes}
    # topological order: a cycle would leave nodes that never become free
    indegree = Counter(d for targets in after.values() for d in targets)
    free = [i for i in after if indegree[i] == 0]
    order = []
    while free:
        i = free.pop()
        order.append(i)
        for d in after[i]:
            indegree[d] -= 1
            if indegree[d] == 0:
                free.append(d)
    assert len(order) == len(nodes), "the graph has a cycle"
    assert [by_id[i].name for i in order[:1]] == ["study_loader"] and by_id[order[-1]].name == "output_commit"
    # the commit publishes the staging folder: a writer not upstream of it could still be writing
    commit = next(op for op in nodes if isinstance(op, ops.OutputCommitOperator))
    reaches = {id(commit)}
    for i in reversed(order):
        if after[i] & reaches:
            reaches.add(i)
    assert {by_id[i].name for i in set(by_id) - reaches} == set()


def test_writers_write_into_the_staging_folder_that_the_commit_publishes(composed):
    app, flows, out = composed
    nodes = _nodes(flows)
    writers = [op for op in nodes if isinstance(op, StagedWriterOperator)]
    assert len(writers) == 5
    assert all(op.output_folder == app.staging_dir for op in writers), [(op.name, op.output_folder) for op in writers]
    commit = next(op for op in nodes if isinstance(op, ops.OutputCommitOperator))
    assert commit.staging_folder == app.staging_dir and commit.output_folder == out
    assert app.staging_dir != out and app.staging_dir.parent in (out, out.parent)


# ---- the nodes on a small phantom study -----------------------------------------------------------

@pytest.fixture(scope="module")
def phantom_dicom(tmp_path_factory, small_phantom) -> Path:
    folder = tmp_path_factory.mktemp("phantom_dicom")
    write_image_series(small_phantom.ct, small_phantom.affine, folder / "ct")
    write_image_series(small_phantom.ct, small_phantom.affine, folder / "mr", modality="MR")
    return folder


@pytest.fixture(scope="module")
def study(phantom_dicom) -> CtStudy:
    return load_ct_study(phantom_dicom)


@pytest.fixture(scope="module")
def ct_image(study) -> Image:
    """The image message as ops.CTSeriesToVolumeOperator emits it."""
    volume = study.volume
    return Image(volume.array, metadata={"affine": volume.affine, "spacing": volume.spacing, CT_STUDY_KEY: study})


def _truth_result(phantom) -> LiverVesselResult:
    """What inference hands on, made from the phantom's labels."""
    masks = {name: (phantom.labels == value).astype(np.uint8) for name, value in LABELS.items()}
    return LiverVesselResult(masks, plan=DEMO_PLAN, timings={"segment": 1.5},
                             sources={name: "phantom labels" for name in masks})


@pytest.fixture(scope="module")
def split_result(small_phantom, study) -> LiverVesselResult:
    """What the split hands the writers (the raw vessels standing in for the enhanced ones)."""
    raw = _truth_result(small_phantom)
    masks = {**raw.masks, "enhanced_liver_vessels": raw.masks["liver_vessels"]}
    masks, split_qc = add_portal_hepatic_split(study.volume, masks)
    return replace(raw, masks=masks, enhancement={"method": "stand-in", "voxels": 1}, split_qc=split_qc)


def test_loader_selector_and_volume_nodes_hand_on_the_ct_series(fragment, phantom_dicom, small_phantom, study,
                                                               monkeypatch):
    monkeypatch.setattr(interrupts, "default_signal_disposition", lambda: None)  # pytest keeps its Ctrl-C
    loader = ops.StudyLoaderOperator(fragment, input_folder=phantom_dicom, name="study_loader")
    selector = ops.CTSeriesSelectorOperator(fragment, name="ct_series_selector")
    to_volume = ops.CTSeriesToVolumeOperator(fragment, name="ct_series_to_volume")
    studies = _compute(loader)["dicom_study_list"]
    assert sum(len(s.get_all_series()) for s in studies) == 2  # the CT and the MR series
    selected = _compute(selector, dicom_study_list=studies)["study_selected_series_list"]
    image = _compute(to_volume, study_selected_series_list=selected)["image"]
    ct_study = image.metadata()[CT_STUDY_KEY]
    assert isinstance(ct_study, CtStudy)
    ct_uid = pydicom.dcmread(next((phantom_dicom / "ct").iterdir()), stop_before_pixels=True).SeriesInstanceUID
    assert ct_study.selection.selected.series_uid == study.selection.selected.series_uid == ct_uid
    assert np.array_equal(image.asnumpy(), small_phantom.ct)
    assert np.allclose(image.metadata()["affine"], small_phantom.affine, atol=1e-4)
    assert set(fragment.stage_timings) == {"study_loader", "ct_series_selector", "ct_series_to_volume"}


def test_segmentation_node_decides_its_plan_once_and_hands_its_inputs_on(fragment, ct_image, monkeypatch):
    preloads, calls = [], []
    monkeypatch.setattr(ops.nnunet_segmentation, "preload_models", lambda *a: preloads.append(a))
    made = LiverVesselResult({}, plan=DEMO_PLAN)

    def collect(volume, **kw):
        calls.append((volume, kw))
        return made

    monkeypatch.setattr(ops.nnunet_segmentation, "collect_masks", collect)
    op = ops.NnUNetSegmentationOperator(fragment, model_dirs=[MODELS], device="cpu", name="nnunet_segmentation")
    assert op.plan.name == "demo"  # models/ holds only the demo model
    assert preloads == [(op.plan, [MODELS], "cpu")]
    assert _compute(op, image=ct_image) == {"result": made}
    [(volume, kw)] = calls
    assert volume is ct_image.metadata()[CT_STUDY_KEY].volume
    assert kw == {"plan": op.plan, "model_dirs": [MODELS], "device": "cpu"}


def test_enhancement_node_hands_its_device_and_the_volume_to_the_repair(fragment, ct_image, small_phantom,
                                                                         monkeypatch):
    calls = []

    def repair(volume, masks, **options):
        calls.append((volume, options))
        return {**masks, "enhanced_liver_vessels": masks["liver_vessels"]}, {"method": "stub"}

    monkeypatch.setattr(ops.vessel_enhancement, "add_enhanced_vessels", repair)
    op = ops.VesselEnhancementOperator(fragment, device="cuda:3", name="vessel_enhancement")
    _compute(op, image=ct_image, result=_truth_result(small_phantom))
    [(volume, options)] = calls
    assert volume is ct_image.metadata()[CT_STUDY_KEY].volume and options == {"device": "cuda:3"}


def test_enhancement_node_adds_the_enhanced_mask_and_keeps_the_rest(fragment, ct_image, small_phantom):
    given = _truth_result(small_phantom)
    before = {name: mask.copy() for name, mask in given.masks.items()}
    op = ops.VesselEnhancementOperator(fragment, device="cpu", name="vessel_enhancement")
    result = _compute(op, image=ct_image, result=given)["result"]
    assert isinstance(result, LiverVesselResult) and result is not given
    assert set(result.masks) == set(before) | {"enhanced_liver_vessels"}
    for name, mask in before.items():
        assert np.array_equal(result.masks[name], mask), name
    enhanced = result.masks["enhanced_liver_vessels"]
    assert enhanced.shape == small_phantom.ct.shape and enhanced.any()
    assert result.enhancement and result.split_qc == {}
    assert result.plan is given.plan and result.sources == given.sources and result.timings == given.timings
    # the message it received is not changed: other readers may share it
    assert set(given.masks) == set(before) and given.enhancement == {}
    assert all(np.array_equal(given.masks[n], m) for n, m in before.items())
    assert fragment.stage_timings["vessel_enhancement"] >= 0


def test_split_node_adds_the_portal_and_hepatic_masks_and_keeps_the_rest(fragment, ct_image, small_phantom):
    raw = _truth_result(small_phantom)
    given = replace(raw, masks={**raw.masks, "enhanced_liver_vessels": raw.masks["liver_vessels"]},
                    enhancement={"method": "stand-in", "voxels": int(raw.masks["liver_vessels"].sum())})
    before = {name: mask.copy() for name, mask in given.masks.items()}
    op = ops.PortalHepaticSplitOperator(fragment, name="portal_hepatic_split")
    result = _compute(op, image=ct_image, result=given)["result"]
    assert isinstance(result, LiverVesselResult) and result is not given
    gained = set(result.masks) - set(before)
    assert SPLIT_MASKS <= gained <= SPLIT_MASKS | {"liver_vessels_skeleton_labeled"}
    for name, mask in before.items():
        assert np.array_equal(result.masks[name], mask), name
    portal, hepatic = result.masks["portal_vein_branches"] > 0, result.masks["hepatic_veins"] > 0
    assert portal.any() and hepatic.any() and not (portal & hepatic).any()
    assert result.split_qc
    assert result.enhancement == given.enhancement and result.plan is given.plan
    assert result.sources == given.sources and result.timings == given.timings
    assert set(given.masks) == set(before) and given.split_qc == {}
    assert fragment.stage_timings["portal_hepatic_split"] >= 0


def test_couinaud_node_adds_the_segments_only_when_enabled(fragment, ct_image, small_phantom):
    from operators.couinaud_segments import couinaud_requested

    raw = _truth_result(small_phantom)
    given = replace(raw, masks={**raw.masks, "portal_vein_branches": raw.masks["liver_vessels"],
                                "hepatic_veins": np.zeros_like(raw.masks["liver_vessels"])},
                    split_qc={"confidence": {"overall": 0.9}})
    off = _compute(ops.CouinaudSegmentsOperator(fragment, name="couinaud_segments"), image=ct_image,
                   result=given)["result"]
    assert off is given  # passed on untouched
    on = _compute(ops.CouinaudSegmentsOperator(fragment, enabled=True, name="couinaud_segments"), image=ct_image,
                  result=given)["result"]
    # no hepatic veins in this result: refused, with the reason, and no label map
    assert on.couinaud["refused"] == "no portal vein or no hepatic vein branches in the split"
    assert "liver_segments_vessel" not in on.masks and set(on.masks) == set(given.masks)
    assert fragment.stage_timings["couinaud_segments"] >= 0
    assert [couinaud_requested({"LIVERVESSELS_COUINAUD": v}) for v in ("1", "true", "YES", "0", "no", "")] == \
        [True, True, True, False, False, False]
    assert couinaud_requested({}) is False
    with pytest.raises(InputError, match="LIVERVESSELS_COUINAUD='maybe' is not understood"):
        couinaud_requested({"LIVERVESSELS_COUINAUD": "maybe"})


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_writers_write_only_into_their_folder_and_the_commit_publishes_it(fragment, ct_image, split_result,
                                                                         tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a write to a relative path would land in the tree watched here
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep.txt").write_text("untouched")
    staged = tmp_path / ".out.partial"
    staged.mkdir()
    before = _tree(tmp_path)
    kw = {"output_folder": staged}
    seg = _compute(ops.DicomSegWriterOperator(fragment, name="dicom_seg_writer", **kw),
                   image=ct_image, result=split_result)["seg"]
    nifti = _compute(ops.NiftiWriterOperator(fragment, name="nifti_writer", **kw),
                     image=ct_image, result=split_result)["files"]
    artifacts = _compute(ops.StudyArtifactsWriterOperator(fragment, name="study_artifacts_writer", **kw),
                         image=ct_image, result=split_result)["files"]
    reports = _compute(ops.DicomReportWriterOperator(fragment, name="dicom_report_writer", **kw),
                       image=ct_image, result=split_result, seg=seg, artifacts=artifacts)["reports"]
    timings_before_qc = dict(fragment.stage_timings)
    report = _compute(ops.QcReportWriterOperator(fragment, name="qc_report_writer", **kw),
                      image=ct_image, result=split_result, seg=seg, reports=reports)["report"]

    written = _tree(tmp_path) - before
    assert written and all(p.is_relative_to(staged) for p in written), sorted(map(str, written))
    assert _tree(tmp_path) >= before and (tmp_path / "elsewhere" / "keep.txt").read_text() == "untouched"
    assert isinstance(seg, SegResult) and seg.path == staged / "segmentations.dcm"
    assert isinstance(reports, DicomReports)
    emitted = [Path(p) for p in [*nifti, *artifacts]] + [o.path for o in (reports.sr, reports.sc, reports.key_sr)]
    assert all(p is not None and p.is_file() and p.is_relative_to(staged) for p in emitted), emitted
    assert {p.name for p in map(Path, nifti)} == {f"{name}.nii.gz" for name in split_result.masks}
    assert {"qc.json", "statistics.json", "enhanced_liver_vessels_metadata.json"} <= {p.name for p in written}
    # qc.json's stage times are the ones refusal.py kept for the nodes that ran before it
    assert report["timings_s"]["stages"] == timings_before_qc
    assert set(timings_before_qc) == {"dicom_seg_writer", "nifti_writer", "study_artifacts_writer",
                                      "dicom_report_writer"}

    staged_names = {p.relative_to(staged) for p in written}
    out = tmp_path / "out"
    commit = ops.OutputCommitOperator(fragment, staging_folder=staged, output_folder=out, name="output_commit")
    assert _compute(commit, report=report, files=nifti, artifacts=artifacts) == {}
    assert fragment.committed is True
    assert not staged.exists() and {p.relative_to(out) for p in _tree(out)} == staged_names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "out"]
