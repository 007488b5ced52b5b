"""Send a run's DICOM outputs (SEG, SR, SC) to a PACS over DICOMweb (STOW-RS, dicomweb-client).

For a researcher or a small site without MONAI Deploy Express, whose Informatics Gateway would
otherwise export them. Each object is sent on its own, so a refusal names the object and the
PACS's reason; the outputs are on disk before anything is sent, and stay there whatever happens.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom

from livervessels.errors import PacsError
from livervessels.outputs.dicom_reports import KEY_SR_FILE, SC_FILE, SR_FILE
from livervessels.outputs.dicom_seg import SEG_FILE

DICOM_OUTPUTS = (SEG_FILE, SR_FILE, KEY_SR_FILE, SC_FILE)


@dataclass
class SentObject:
    file: str
    sop_instance_uid: str
    study_instance_uid: str


def send_outputs(out_dir: str | Path, url: str, *, timeout_s: float = 60.0) -> list[SentObject]:
    """STOW-RS every DICOM output present in out_dir to the DICOMweb service at url (its base,
    e.g. http://pacs:8042/dicom-web).

    Raises:
        PacsError: the service is unreachable, answers with an HTTP error, or lists the object as
            failed; the message names the object, the reason and where the outputs are.
    """
    import requests
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session

    out_dir = Path(out_dir)
    files = [out_dir / name for name in DICOM_OUTPUTS if (out_dir / name).is_file()]
    if not files:
        raise PacsError(f"nothing to send: {out_dir} holds no DICOM output ({', '.join(DICOM_OUTPUTS)})")
    session = create_session()
    session.request = _with_timeout(session.request, timeout_s)
    client = DICOMwebClient(url=url.rstrip("/"), session=session)
    sent = []
    for path in files:
        ds = pydicom.dcmread(path)
        where = f"the outputs stay in {out_dir}"
        try:
            response = client.store_instances([ds])
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            reason = (exc.response.reason if exc.response is not None else "") or str(exc)
            raise PacsError(f"{url} refused {path.name} (HTTP {status} {reason}); {where}") from exc
        except requests.RequestException as exc:
            raise PacsError(f"{url} could not be reached to send {path.name} ({type(exc).__name__}: "
                            f"{_short(exc)}); {where}") from exc
        failed = getattr(response, "FailedSOPSequence", None) if response is not None else None
        if failed:
            reasons = ", ".join(str(getattr(item, "FailureReason", "?")) for item in failed)
            raise PacsError(f"{url} refused {path.name} (failure reason {reasons}); {where}")
        sent.append(SentObject(path.name, str(ds.SOPInstanceUID), str(ds.StudyInstanceUID)))
    return sent


def _with_timeout(request, timeout_s: float):
    def call(*args, **kwargs):
        kwargs.setdefault("timeout", timeout_s)
        return request(*args, **kwargs)
    return call


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 160 else text[:157] + "..."
