"""The results in a real DICOM viewer: OHIF (npm @ohif/app, prebuilt) in headless Chromium, fed by
Orthanc over DICOMweb, all on 127.0.0.1 (scripts/pacs_viewer.py starts them, as view.sh does).

Checked on the demo study's SEG: it loads; every segment is listed with its label and exactly the
SEG's recommended colour; the axial view's orientation markers put anterior at the top and the
patient's right on the screen's left; on the slice where the masks change most between neighbouring slices the
overlay drawn on the screen covers the SEG's own frame for that slice (mapped to the screen through
the viewport's own world-to-canvas transform) better than the neighbouring slices' frames; the SRs
and the SC are series of the same study; stepping through the key-measurement SR in OHIF's SR display
shows each structure's volume and mean HU (statistics.json's numbers) and its name on the image the SR
anchors it to; no request leaves 127.0.0.1. Negative controls: a SEG whose
referenced CT series is not in the PACS, and a SEG shifted by one slice, must fail those checks.
"""
from __future__ import annotations

import copy
import io
import json
import os
import re
import sys
import time
import urllib.request
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image

from conftest import DEMO_STUDY, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import pacs_viewer as pv  # noqa: E402

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "viewer"


def _require(condition: bool, message: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(message + "; scripts/setup.sh installs it")
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    _require(Path(CHROMIUM).exists(), "Debian's chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def dist():
    try:
        return pv.ohif_dist()
    except pv.ToolMissing as exc:
        _require(False, str(exc))


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    try:
        pv.orthanc_binary()
    except pv.ToolMissing as exc:
        _require(False, str(exc))
    with pv.orthanc(tmp_path_factory.mktemp("orthanc")) as url:
        yield url


def _study_uid(pacs: str, answers: list[dict]) -> str:
    with urllib.request.urlopen(f"{pacs}/studies/{answers[0]['ParentStudy']}") as response:
        return json.load(response)["MainDicomTags"]["StudyInstanceUID"]


class ViewerCheck:
    """Opens a study with its SEG in OHIF and reports what a radiologist would see."""

    def __init__(self, browser, base: str):
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.external: list[str] = []
        self.page.route("**/*", self._route)

    def _route(self, route):
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            self.external.append(route.request.url)
            route.abort()

    def open(self, url: str, timeout_s: float = 120) -> bool:
        """True once a segment list is shown (the SEG loaded); False if it never is."""
        self.page.goto(url)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.page.get_by_text("Skip all").count():  # the onboarding tour covers the viewport
                self.page.get_by_text("Skip all").first.click()
            button = self.page.locator('[data-cy="panelSegmentation-btn"]')
            if button.count() and self._viewport_ready():
                if not self.page.locator('[data-cy="segmentation-select"]').count():
                    button.first.click()
                if self.segments():
                    return True
            time.sleep(1)
        return False

    def _viewport_ready(self) -> bool:
        return bool(self.page.evaluate("""() => { const cs = window.cornerstone;
            if (!cs) return false; const e = cs.getEnabledElements(); return e.length > 0 &&
            !!e[0].viewport.getCurrentImageId && !!e[0].viewport.getCurrentImageId(); }"""))

    def segments(self) -> dict[str, tuple[int, int, int]]:
        """{label: (r, g, b)} of the segment rows in the segmentation panel."""
        rows = self.page.evaluate("""() => {
            const out = [];
            const panel = document.querySelector('[data-cy="segmentation-select"]');
            if (!panel) return out;
            const root = panel.closest('div[class]').parentElement.parentElement;
            for (const el of root.querySelectorAll('*')) {
              const bg = el.style && el.style.backgroundColor;
              if (!bg) continue;
              const row = el.parentElement && el.parentElement.parentElement;
              if (!row) continue;
              out.push([row.innerText, bg]);
            }
            return out; }""")
        found = {}
        for text, colour in rows:
            label = [t for t in text.split("\n") if t.strip() and not t.strip().isdigit()]
            rgb = tuple(int(float(v)) for v in colour[colour.index("(") + 1:colour.index(")")].split(",")[:3])
            if label:
                found[label[-1].strip()] = rgb
        return found

    def orientation_markers(self) -> dict[str, str]:
        """{"top": letter, "left": letter} of the viewport's orientation markers."""
        return self.page.evaluate("""() => { const out = {};
            for (const el of document.querySelectorAll('.orientation-marker')) {
              const where = el.classList.contains('top-mid') ? 'top'
                : el.classList.contains('left-mid') ? 'left' : null;
              const value = el.querySelector('.orientation-marker-value');
              if (where && value) out[where] = value.innerText.trim(); }
            return out; }""")

    def current_sop_instance_uid(self) -> str:
        image_id = self.page.evaluate("() => window.cornerstone.getEnabledElements()[0].viewport.getCurrentImageId()")
        return image_id.split("/instances/")[1].split("/")[0]

    def go_to(self, index: int) -> None:
        self.page.evaluate(f"""async () => {{ const vp = window.cornerstone.getEnabledElements()[0].viewport;
            await vp.setImageIdIndex({index}); vp.render(); }}""")
        time.sleep(1.5)

    def image_ids(self) -> list[str]:
        return self.page.evaluate("() => window.cornerstone.getEnabledElements()[0].viewport.getImageIds()")

    def canvas_to_world(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """World coordinates of canvas points (0,0), (1,0), (0,1) and the canvas box on the page."""
        data = self.page.evaluate("""() => { const vp = window.cornerstone.getEnabledElements()[0].viewport;
            const r = vp.canvas.getBoundingClientRect();
            return {o: vp.canvasToWorld([0, 0]), x: vp.canvasToWorld([1, 0]), y: vp.canvasToWorld([0, 1]),
                    box: {x: r.x, y: r.y, width: r.width, height: r.height}}; }""")
        return np.array(data["o"]), np.array(data["x"]), np.array(data["y"]), data["box"]

    def overlay_mask(self) -> np.ndarray:
        """Canvas pixels the segmentation changes: the screenshot with every segment shown against
        the one with every segment hidden."""
        _, _, _, box = self.canvas_to_world()
        toggle = self.page.locator('[data-cy="all-segments-visibility-toggle"]')
        shown = self._shot(box)
        toggle.first.click()
        time.sleep(1.0)
        hidden = self._shot(box)
        toggle.first.click()
        time.sleep(0.5)
        return np.abs(shown.astype(int) - hidden.astype(int)).max(axis=-1) > 25

    def _shot(self, box: dict) -> np.ndarray:
        png = self.page.screenshot(clip=box)
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def close(self):
        self.page.close()


def _frames_by_source(seg_path: Path) -> dict[str, np.ndarray]:
    """{source SOP Instance UID: union of every segment there (rows, columns)} from the SEG itself."""
    seg = hd.seg.segread(seg_path)
    uids = [r[2] for r in seg.get_source_image_uids()]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=None,
                                               ignore_spatial_locations=True, assert_missing_frames_are_empty=True)
    return {uid: pixels[i].any(axis=-1) for i, uid in enumerate(uids)}


def _expected_on_canvas(mask: np.ndarray, ds: pydicom.Dataset, origin, dx, dy, shape) -> np.ndarray:
    """The image mask resampled onto the canvas (nearest pixel), through the viewport's transform."""
    ipp = np.array(ds.ImagePositionPatient, float)
    iop = np.array(ds.ImageOrientationPatient, float)
    row_dir, col_dir = iop[:3], iop[3:]
    spacing_r, spacing_c = (float(v) for v in ds.PixelSpacing)
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    world = origin + xs[..., None] * (dx - origin) + ys[..., None] * (dy - origin)
    rel = world - ipp
    col = np.rint(rel @ row_dir / spacing_c).astype(int)
    row = np.rint(rel @ col_dir / spacing_r).astype(int)
    inside = (row >= 0) & (row < mask.shape[0]) & (col >= 0) & (col < mask.shape[1])
    out = np.zeros(shape, bool)
    out[inside] = mask[row[inside], col[inside]]
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def check_seg_in_viewer(browser, base: str, study_uid: str, seg_series_uid: str, seg_path: Path, ct: list,
                        shot: Path, timeout_s: float = 120) -> list[str]:
    """What is wrong with the SEG series shown in the viewer, against the segments and frames of
    seg_path (the app's SEG, rendered by this test itself). Empty: nothing."""
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    expected = {str(d.SegmentLabel): tuple(int(v) for v in hd.color.CIELabColor.from_dicom_value(
        tuple(int(v) for v in d.RecommendedDisplayCIELabValue)).to_rgb()) for d in seg.SegmentSequence}
    check = ViewerCheck(browser, base)
    problems = []
    try:
        if not check.open(pv.viewer_url(base, study_uid, seg_series_uid), timeout_s):
            check.page.screenshot(path=str(shot))
            return [f"the SEG did not load: no segment list after {timeout_s:.0f} s"]
        listed = check.segments()
        if set(listed) != set(expected) or any(max(abs(a - b) for a, b in zip(listed[k], expected[k])) > 2
                                               for k in expected):
            problems.append(f"segments listed {listed} != the SEG's {expected}")
        # the slice where the union of segments changes most between neighbours
        frames = _frames_by_source(seg_path)
        order = [str(d.SOPInstanceUID) for d in ct]
        union = [frames.get(uid, np.zeros((int(ct[0].Rows), int(ct[0].Columns)), bool)) for uid in order]
        change = [min((union[k] ^ union[k - 1]).sum(), (union[k] ^ union[k + 1]).sum()) / max(union[k].sum(), 1)
                  if union[k].any() else 0 for k in range(1, len(order) - 1)]
        k = 1 + int(np.argmax(change))
        ids = check.image_ids()
        index = next(i for i, image_id in enumerate(ids) if order[k] in image_id)
        check.go_to(index)
        if check.current_sop_instance_uid() != order[k]:
            problems.append("could not show the chosen slice")
            return problems
        markers = check.orientation_markers()
        if markers != {"top": "A", "left": "R"}:  # radiological convention for an axial slice
            problems.append(f"orientation markers {markers}: anterior should be at the top, the patient's "
                            "right on the screen's left")
        origin, dx, dy, box = check.canvas_to_world()
        drawn = check.overlay_mask()
        check.page.screenshot(path=str(shot))
        shape = drawn.shape
        scores = {j: _dice(drawn, _expected_on_canvas(union[j], ct[j], origin, dx, dy, shape))
                  for j in (k - 1, k, k + 1)}
        if scores[k] < 0.8 or scores[k] <= max(scores[k - 1], scores[k + 1]):
            problems.append(f"overlay on slice {k} matches the SEG's frames poorly: Dice {scores}")
        if check.external:
            problems.append(f"requests left 127.0.0.1: {check.external[:3]}")
        return problems
    finally:
        check.close()


def sr_display(browser, base: str, study_uid: str, sr_series_uid: str, steps: int,
               timeout_s: float = 90) -> dict[str, set[str]]:
    """{SOP Instance UID of the image shown: annotation texts drawn on it}, stepping through the SR's
    measurements with the SR viewport's arrows (steps + 1 views, so a full cycle shows every one)."""
    check = ViewerCheck(browser, base)
    seen: dict[str, set[str]] = {}
    try:
        check.page.goto(pv.viewer_url(base, study_uid, sr_series_uid))
        texts: list[str] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not texts:
            time.sleep(1)
            if check.page.get_by_text("Skip all").count():
                check.page.get_by_text("Skip all").first.click()
            texts = check.page.evaluate("() => [...document.querySelectorAll('svg text')].map(t => t.textContent)")
        for _ in range(steps + 1):
            uid, texts = _settled(check)
            seen.setdefault(uid, set()).update(t for t in texts if t)
            check.page.locator('[data-cy="viewport-action-arrows-right"]').first.click()
        check.page.screenshot(path=str(ARTIFACTS / "demo_key_measurements_sr.png"))
        assert not check.external, check.external[:3]
        return seen
    finally:
        check.close()


def _settled(check: ViewerCheck, timeout_s: float = 15) -> tuple[str, tuple[str, ...]]:
    """The image shown and the annotation texts drawn, once two readings 0.5 s apart agree (the image
    changes before the annotations are redrawn)."""
    last = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = (check.current_sop_instance_uid(), tuple(check.page.evaluate(
            "() => [...document.querySelectorAll('svg text')].map(t => t.textContent)")))
        if now == last:
            return now
        last = now
    return last


def _shown_measurements(texts: set[str]) -> set[tuple[float, float, str]]:
    """(ml, HU, finding site) of OHIF's annotation texts ("Volume: 11.21 mlAttenuation Coefficient:
    158.50 [hnsf'U]363698007: Portal vein"; the finding site is listed under its SNOMED code)."""
    out = set()
    for text in texts:
        match = re.search(r"Volume: ([-0-9.]+) ml.*?Attenuation Coefficient: ([-0-9.]+).*?363698007: (.+)$", text)
        if match:
            out.add((round(float(match.group(1)), 2), round(float(match.group(2)), 2), match.group(3).strip()))
    return out


@pytest.fixture(scope="module")
def ct_datasets():
    return sorted((pydicom.dcmread(p, stop_before_pixels=True) for p in (DEMO_STUDY / "ct").iterdir()),
                  key=lambda d: float(d.ImagePositionPatient[2]))


def test_the_demo_seg_shows_in_ohif_as_written(browser, dist, pacs, demo_app_output, ct_datasets):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    answers = pv.upload(pacs, [DEMO_STUDY] + [demo_app_output / f for f in pv.DICOM_OUTPUTS])
    study_uid = _study_uid(pacs, answers)
    seg = pydicom.dcmread(demo_app_output / "segmentations.dcm", stop_before_pixels=True)
    with pv.viewer(dist, pacs) as base:
        problems = check_seg_in_viewer(browser, base, study_uid, seg.SeriesInstanceUID,
                                       demo_app_output / "segmentations.dcm", ct_datasets,
                                       ARTIFACTS / "demo_seg.png")
        assert problems == []
        # the SR and the SC are series of the same study, listed beside the CT and the SEG
        check = ViewerCheck(browser, base)
        check.page.goto(pv.viewer_url(base, study_uid))
        deadline = time.monotonic() + 90
        labels: list[str] = []
        while time.monotonic() < deadline and not {"SR", "OT", "SEG"} <= set(labels):
            time.sleep(1)
            labels = check.page.locator('[data-cy="series-modality-label"]').all_inner_texts()
        check.close()
        assert {"CT", "SEG", "SR", "OT"} <= set(labels)
        # the key measurements, as OHIF's SR display shows them: each on the image the SR anchors it to
        key_sr = hd.sr.srread(demo_app_output / "key_measurements_sr.dcm")
        stats = json.loads((demo_app_output / "statistics.json").read_text())["structures"]
        segments = {str(d.SegmentLabel): d for d in seg.SegmentSequence}
        # statistics.json's numbers and the SEG's structure, where the SR anchors them
        expected: dict[str, set[tuple[float, float, str]]] = {}
        for group in key_sr.content.get_planar_roi_measurement_groups():
            image = group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            segment = segments[group.tracking_identifier]
            numbers = stats[str(segment.TrackingID)]
            expected.setdefault(image, set()).add((round(numbers["volume_ml"], 2), round(numbers["mean_hu"], 2),
                                                   str(segment.SegmentedPropertyTypeCodeSequence[0].CodeMeaning)))
        assert sum(len(v) for v in expected.values()) == len(seg.SegmentSequence)
        shown = sr_display(browser, base, study_uid, key_sr.SeriesInstanceUID,
                           steps=len(seg.SegmentSequence))
        assert {uid: _shown_measurements(texts) for uid, texts in shown.items()} == expected


def test_negative_controls_fail_the_check(browser, dist, pacs, demo_app_output, ct_datasets, tmp_path):
    seg_path = demo_app_output / "segmentations.dcm"
    original = pydicom.dcmread(seg_path)
    # 1. a SEG shifted by one slice: each frame moved onto the source image below it
    shifted = copy.deepcopy(original)
    order = [str(d.SOPInstanceUID) for d in ct_datasets]
    for frame in shifted.PerFrameFunctionalGroupsSequence:  # the lowest slice's frame wraps to the top
        item = frame.DerivationImageSequence[0].SourceImageSequence[0]
        k = order.index(str(item.ReferencedSOPInstanceUID)) - 1
        item.ReferencedSOPInstanceUID = order[k]
        frame.PlanePositionSequence[0].ImagePositionPatient = ct_datasets[k].ImagePositionPatient
    shifted.SOPInstanceUID = pydicom.uid.generate_uid()
    shifted.SeriesInstanceUID = pydicom.uid.generate_uid()
    shifted_path = tmp_path / "shifted.dcm"
    shifted.save_as(shifted_path)
    # 2. a SEG whose referenced CT series is not in the PACS (another study, its CT left out)
    orphan = copy.deepcopy(original)
    orphan.StudyInstanceUID = pydicom.uid.generate_uid()
    orphan.SeriesInstanceUID = pydicom.uid.generate_uid()
    orphan.SOPInstanceUID = pydicom.uid.generate_uid()
    orphan.ReferencedSeriesSequence[0].SeriesInstanceUID = pydicom.uid.generate_uid()
    orphan_path = tmp_path / "orphan.dcm"
    orphan.save_as(orphan_path)

    answers = pv.upload(pacs, [DEMO_STUDY, shifted_path])
    study_uid = _study_uid(pacs, answers)
    pv.upload(pacs, [orphan_path])
    with pv.viewer(dist, pacs) as base:
        # both judged against the app's own SEG, as the positive case is
        shifted_problems = check_seg_in_viewer(browser, base, study_uid, shifted.SeriesInstanceUID, seg_path,
                                               ct_datasets, ARTIFACTS / "negative_shifted.png")
        orphan_problems = check_seg_in_viewer(browser, base, orphan.StudyInstanceUID, orphan.SeriesInstanceUID,
                                              seg_path, ct_datasets, ARTIFACTS / "negative_orphan.png", timeout_s=45)
    assert any("overlay" in p for p in shifted_problems), shifted_problems
    assert orphan_problems, "a SEG without its CT passed the viewer check"
