"""A real PACS round trip: Orthanc (Debian, DICOMweb plugin) on 127.0.0.1, the demo study in it,
the CT series retrieved over DICOMweb, the app run on it, SEG + SR + SC sent back (STOW-RS)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from livervessels import cli
from livervessels.errors import PacsError
from livervessels.outputs.dicomweb import send_outputs

from conftest import DEMO_STUDY, MODELS, ROOT, run_app

sys.path.insert(0, str(ROOT / "scripts"))
from pacs_viewer import ToolMissing, free_port, orthanc, orthanc_binary, upload  # noqa: E402

pytestmark = pytest.mark.slow


def _retrieve_series(client, study_uid: str, series_uid: str, folder: Path) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    pixels = {}
    for ds in client.retrieve_series(study_uid, series_uid):
        ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
        pixels[str(ds.SOPInstanceUID)] = ds.pixel_array.copy()
    return pixels


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    try:
        orthanc_binary()
    except ToolMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; scripts/setup.sh installs them")
        pytest.skip(str(exc))
    with orthanc(tmp_path_factory.mktemp("orthanc")) as url:
        yield url


def test_the_app_round_trip_through_a_pacs(pacs, tmp_path):
    from dicomweb_client.api import DICOMwebClient

    answers = upload(pacs, [DEMO_STUDY])
    assert answers and all(a["Status"] in ("Success", "AlreadyStored") for a in answers)
    client = DICOMwebClient(url=pacs + "/dicom-web")
    (study,) = client.search_for_studies()
    study_uid = study["0020000D"]["Value"][0]
    series = client.search_for_series(study_uid)
    ct = max((s for s in series if s["00080060"]["Value"][0] == "CT"), key=lambda s: s["00201209"]["Value"][0])
    ct_uid = ct["0020000E"]["Value"][0]
    first = _retrieve_series(client, study_uid, ct_uid, tmp_path / "ct")

    out = tmp_path / "out"
    result = run_app(tmp_path / "ct", out)
    assert result.returncode == 0, result.stderr[-3000:]
    sent = send_outputs(out, pacs + "/dicom-web")
    assert [s.file for s in sent] == ["segmentations.dcm", "measurements_sr.dcm", "key_measurements_sr.dcm",
                                      "preview_sc.dcm"]

    # Orthanc files all four under the source study, as new series
    by_modality = {}
    for s in client.search_for_series(study_uid):
        by_modality.setdefault(s["00080060"]["Value"][0], []).append(s["0020000E"]["Value"][0])
    assert {"SEG", "SR"} <= set(by_modality) and len(by_modality) >= 4  # CT, SEG, SR, SC (OT), localizer
    assert len(by_modality["SR"]) == 2
    assert len(client.search_for_studies()) == 1
    for item in sent:
        instance = client.search_for_instances(study_uid, search_filters={"SOPInstanceUID": item.sop_instance_uid})
        assert len(instance) == 1, item
    # the stored SEG references the CT series retrieved, and its frames are the ones written
    seg_local = pydicom.dcmread(out / "segmentations.dcm")
    seg_stored = client.retrieve_instance(study_uid, by_modality["SEG"][0], seg_local.SOPInstanceUID)
    assert seg_stored.ReferencedSeriesSequence[0].SeriesInstanceUID == ct_uid
    assert np.array_equal(seg_stored.pixel_array, seg_local.pixel_array)
    # a second retrieval of the CT gives identical pixels
    second = _retrieve_series(client, study_uid, ct_uid, tmp_path / "ct2")
    assert second.keys() == first.keys() and all(np.array_equal(first[k], second[k]) for k in first)


def test_an_unreachable_or_refusing_pacs_leaves_the_outputs_and_names_the_object(pacs, tmp_path, capsys):
    out = tmp_path / "out"
    dead = f"http://127.0.0.1:{free_port()}/dicom-web"  # nothing listens there
    rc = cli.enhanced_main(["-i", str(DEMO_STUDY), "-o", str(out), "--mode", "enhanced_liver", "-m", str(MODELS),
                            "--split_portal_hepatic", "--statistics", "--preview", "-q", "--send_to", dead])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert rc == 4 and len(errors) == 1
    assert "could not be reached" in errors[0] and "segmentations.dcm" in errors[0] and str(out) in errors[0]
    assert {"segmentations.dcm", "measurements_sr.dcm", "preview_sc.dcm", "qc.json"} <= {p.name for p in out.iterdir()}
    # a PACS that answers with an error for the object (no DICOMweb service at that path)
    with pytest.raises(PacsError, match=r"refused segmentations\.dcm \(HTTP 404"):
        send_outputs(out, pacs + "/no-dicom-web-here")
