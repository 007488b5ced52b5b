"""Python API, TotalSegmentator-compatible:

    from livervessels.api import totalsegmentator, enhance_liver_vessels
    img = totalsegmentator("ct.nii.gz")                         # nibabel label map, nothing written
    totalsegmentator("dicom_folder", "out", task="liver_vessels")  # one mask per class in out/
    masks = enhance_liver_vessels("ct.nii.gz", "out", split_portal_hepatic=True)

Both accept a NIfTI path, a nibabel image, a DICOM folder or a zip holding one study (or what
livervessels.inputs.load_input read from one). Nothing is
sent anywhere: no usage statistics, no network access except `weights` downloads.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from livervessels import model_store
from livervessels.compute import resolve
from livervessels.errors import InputError, PacsError
from livervessels.geometry import nifti_image
from livervessels.inference import check_roi_subset, segment
from livervessels.inputs import LoadedInput, load_input
from livervessels.model_plan import choose_model_plan, preload_models
from livervessels.outputs import qc as qc_report
from livervessels.outputs.dicom_seg import SEG_FILE, write_dicom_seg
from livervessels.outputs.dicomweb import send_outputs
from livervessels.outputs.nifti import LabelMasks, write_masks, write_multilabel
from livervessels.outputs.staging import OutputLock, check_output_folder, staged_output
from livervessels.outputs.structures import structures_for
from livervessels.outputs.study_outputs import write_reports, write_study_artifacts, write_study_outputs
from livervessels.pipeline import run_liver_vessels
from livervessels.progress import Progress
from livervessels.resection import check_segments_to_remove
from livervessels.stage_types import SegResult
from livervessels.study import nifti_input_report
from livervessels.tasks import FAST_VARIANTS, get_task

DICOM_SEG_NEEDS_DICOM = ("--output_type dicom_seg needs DICOM input (a folder of slices or a zip); a DICOM SEG "
                         "must reference the source images")

log = logging.getLogger(__name__)

OUTPUT_TYPES = ("nifti", "dicom_seg")


def resolve_task_name(task: str, fast: bool = False, fastest: bool = False) -> str:
    """TotalSegmentator's --fast/--fastest pick a variant of the task."""
    get_task(task)
    if fastest and (task, "fastest") in FAST_VARIANTS:
        return FAST_VARIANTS[(task, "fastest")]
    if fast and (task, "fast") in FAST_VARIANTS:
        return FAST_VARIANTS[(task, "fast")]
    if fast or fastest:
        log.warning("--fast/--fastest have no effect for task %s", task)
    return task


def _configure_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    logging.getLogger("numexpr").setLevel(logging.WARNING)


def totalsegmentator(
    input: str | Path | nib.Nifti1Image | LoadedInput,
    output: str | Path | None = None,
    task: str = "total",
    fast: bool = False,
    fastest: bool = False,
    roi_subset: list[str] | None = None,
    robust_crop: bool = False,
    ml: bool = False,
    statistics: bool = False,
    preview: bool = False,
    device: str | None = None,
    precision: str | None = None,
    output_type: str = "nifti",
    quiet: bool = False,
    verbose: bool = False,
    nr_thr_resamp: int = 1,
    nr_thr_saving: int = 6,
    model_dirs: list | None = None,
) -> nib.Nifti1Image:
    """Segment with a registered task; returns the label map (input grid) as a nibabel image.

    With output: one uint8 mask per class in the output folder, or with ml=True one label map at
    `output` (names in the header extension and a JSON sidecar); output_type="dicom_seg" writes
    segmentations.dcm (DICOM input only). device: auto, cpu, gpu, gpu:N, cuda, cuda:N; precision:
    auto, fp32 (exact parity with TotalSegmentator on the CPU), bf16, fp16 (GPU); both default to
    LIVERVESSELS_DEVICE / LIVERVESSELS_PRECISION, then auto (livervessels.compute).

    Raises:
        InputError: bad input, options, device or precision.
        ModelNotFoundError: the task's weights are not installed.
    """
    _configure_logging(quiet, verbose)
    compute = resolve(device, precision)
    if output_type not in OUTPUT_TYPES:
        raise InputError(f"unknown output type '{output_type}'; use one of {', '.join(OUTPUT_TYPES)}")
    task_obj = get_task(resolve_task_name(task, fast, fastest))
    check_roi_subset(task_obj, roi_subset)
    model_store.check_model_dirs(model_dirs, task_obj)  # before any work; never silently other weights
    if output_type == "dicom_seg" and (isinstance(input, nib.spatialimages.SpatialImage)
                                       or str(input).endswith((".nii", ".nii.gz"))):
        raise InputError(DICOM_SEG_NEEDS_DICOM)
    target, folder = _output_paths(output, ml)
    if folder is not None:  # before any work: a bad output path must not cost a whole inference
        check_output_folder(folder)
        if target is not None and target.is_dir():
            raise InputError(f"--ml output {target} is a folder; give a file name (e.g. {target}.nii.gz)")
    progress = Progress(quiet)
    with progress.stage("read input"):
        loaded = load_input(input)
    # the unpacked zip is removed at the end (also on failure or Ctrl-C); a second run into the same
    # output refuses instead of overwriting this one
    with loaded, (OutputLock(target or folder) if folder is not None else contextlib.nullcontext()):
        if output_type == "dicom_seg" and loaded.study is None:
            raise InputError(DICOM_SEG_NEEDS_DICOM)
        del nr_thr_resamp  # resampling runs in torch/scipy threads; accepted for compatibility
        with progress.stage(f"segment ({task_obj.name})"):
            labels = segment(loaded.volume, task_obj, model_dirs=model_dirs, device=compute, roi_subset=roi_subset,
                             robust_crop=robust_crop)
        dtype = np.uint8 if max(labels.classes, default=0) < 256 else np.uint16
        image = nifti_image(labels.array.astype(dtype), loaded.volume.affine)
        if output is None:
            return image
        with progress.stage("write outputs"):
            with staged_output(folder) as staging:
                names = list(labels.classes.values())
                masks = LabelMasks(labels.array, labels.classes)
                if ml:
                    write_multilabel(labels.array, loaded.volume.affine, labels.classes, staging / target.name)
                elif output_type == "dicom_seg":
                    write_dicom_seg(masks, loaded.study.series_volume.sorted_datasets, staging / SEG_FILE,
                                    algorithm_name=f"livervessels {task_obj.name}", structures=structures_for(names),
                                    series_description=f"Segmentation {task_obj.name} (research)",
                                    unreferenceable_uids=loaded.study.selection.selected.derived_sop_uids)
                else:
                    write_masks(masks, loaded.volume.affine, staging, threads=nr_thr_saving)
                if statistics:
                    from livervessels.outputs.measurements import structure_statistics

                    qc_report.write_json(structure_statistics(masks, loaded.volume), staging / "statistics.json")
                if preview:
                    from livervessels.outputs.preview import render_preview

                    render_preview(loaded.volume, masks, staging / f"preview_{task_obj.name}.png",
                                   title=f"{task_obj.name}: {len(names)} classes")
        return image


def _output_paths(output: str | Path | None, ml: bool) -> tuple[Path | None, Path | None]:
    """(label map file or None, folder written into) for totalsegmentator's output argument."""
    if output is None:
        return None, None
    output = Path(output)
    if not ml:
        return None, output
    target = output if output.name.endswith((".nii", ".nii.gz")) else output.with_name(output.name + ".nii.gz")
    return target, target.parent


def enhance_liver_vessels(
    input: str | Path | nib.Nifti1Image | LoadedInput,
    output: str | Path | None = None,
    *,
    split_portal_hepatic: bool = False,
    split_support_dir: str | Path | None = None,
    generate_split_support: bool = False,
    robust_crop: bool = False,
    no_fallback_full_liver: bool = False,
    min_component_size: float | None = None,
    no_skeleton: bool = False,
    min_split_component_size: int = 0,
    device: str | None = None,
    precision: str | None = None,
    export_meshes: bool = False,
    preview: bool = False,
    statistics: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    model_dirs: list | None = None,
    send_to: str | None = None,
    couinaud: bool = False,
    resect: list[int] | None = None,
) -> dict[str, nib.Nifti1Image]:
    """The enhanced liver vessel pipeline; returns every output mask as a nibabel image.

    couinaud (needs split_portal_hepatic): Couinaud segments 1-8 from the split's hepatic veins and
    portal bifurcation, as liver_segments_vessel (a label map), SEG segments, and volumes in
    statistics and qc.json; refused with the reason in qc.json where the veins do not allow it.
    resect (needs couinaud): segment numbers; the future liver remnant after resecting them goes to
    qc.json and statistics.json (and so to the SR).

    With output, writes the masks as NIfTI, enhanced_liver_vessels_metadata.json and qc.json, and
    for DICOM input a DICOM SEG: on a DICOM study, the same files the MONAI Deploy app writes.
    device / precision: as totalsegmentator(); the device also runs the repair's vesselness.
    send_to: a DICOMweb base URL; once the outputs are in place, the SEG, SR and SC are sent there
    (STOW-RS).

    Raises:
        InputError: bad input, options, device or precision.
        ModelNotFoundError: no usable models.
        PacsError: send_to could not be reached or refused an object (the outputs stay on disk).
    """
    _configure_logging(quiet, verbose)
    if send_to is not None and output is None:
        raise InputError("--send_to needs an output folder: the objects are sent from there")
    if resect:
        if not couinaud:
            raise InputError("--resect gives the future liver remnant on the vessel-derived Couinaud segments: "
                             "add --couinaud")
        resect = check_segments_to_remove(resect)
    compute = resolve(device, precision)
    if output is not None:
        check_output_folder(output)  # before any work
    plan = None
    if split_support_dir is None:  # the models load while the input is read
        plan = choose_model_plan(model_dirs)
        preload_models(plan, model_dirs, compute)
    progress = Progress(quiet)
    with progress.stage("read input"):
        loaded: LoadedInput = load_input(input)
    with loaded, (OutputLock(output) if output is not None else contextlib.nullcontext()):  # as above
        volume = loaded.volume
        enhance_options: dict = {}
        if no_fallback_full_liver:
            enhance_options["fallback_full_volume"] = False
        if min_component_size is not None:
            enhance_options["min_component_size"] = int(min_component_size)
        split_options = {"use_skeleton": not no_skeleton, "min_component_size": int(min_split_component_size)}
        with progress.stage("segment, enhance, split"):
            result = run_liver_vessels(volume, model_dirs=model_dirs, device=compute, plan=plan,
                                       robust_crop=robust_crop,
                                       support_dir=split_support_dir, generate_support=generate_split_support,
                                       enhance_options=enhance_options, split=split_portal_hepatic,
                                       split_options=split_options, couinaud=couinaud, resect=resect)
        images = {name: nifti_image(np.asarray(m, np.uint8), volume.affine) for name, m in result.masks.items()}
        if output is None:
            return images
        with progress.stage("write outputs"), staged_output(output) as staging:
            artifacts = {"statistics": statistics, "preview": preview, "meshes": export_meshes}
            if loaded.study is not None:  # the app's outputs, written by the same function
                write_study_outputs(staging, loaded.study, result, **artifacts, run_timings=progress.run_timings())
            else:
                seg = SegResult(None, skipped_reason="NIfTI input: a DICOM SEG needs DICOM source images")
                source = loaded.source or "<nibabel image>"
                write_masks(result.masks, volume.affine, staging)
                write_study_artifacts(staging, volume, result, **artifacts)
                write_reports(staging, nifti_input_report(source, volume), volume.spacing, result, seg,
                              run_timings=progress.run_timings())
        if send_to is not None:
            if loaded.study is None:
                raise PacsError(f"NIfTI input: there are no DICOM outputs to send to {send_to}; the outputs are "
                                f"in {output}")
            with progress.stage("send to PACS"):
                send_outputs(output, send_to)
        return images


COHORT_MODES = ("enhanced", "totalsegmentator")
# options that decide where or how fast a result is made, not what it holds: a change re-runs nothing
_NOT_RESULT_OPTIONS = ("device", "quiet", "verbose", "nr_thr_resamp", "nr_thr_saving")


def run_cohort(
    input: str | Path,
    output: str | Path,
    mode: str = "enhanced",
    *,
    progress: bool | None = None,
    prefetch: bool = True,
    ray: str | None = None,
    ray_workers: int | None = None,
    ray_cpus_per_worker: int = 4,
    **options,
):
    """Many studies in one process: every entry of a folder (NIfTI files, DICOM folders, zips) or of a
    CSV manifest (study_id,path) runs as enhance_liver_vessels(...) (mode "enhanced") or
    totalsegmentator(...) (mode "totalsegmentator") with `options`, into OUTPUT/<study_id>/.

    Models load once; a re-run skips studies whose outputs are complete and whose input and
    options have not changed; one bad study never stops the cohort. Returns a
    livervessels.cohort.CohortResult (one row per study; also OUTPUT/cohort.csv and, with pyarrow,
    cohort.parquet). progress: a bar on a terminal, log lines otherwise (default: unless quiet).
    ray: run the studies on a pool of Ray actors instead of in this process: "auto" (this machine's
    cluster, else a local Ray instance) or a cluster address; ray_workers actors (default one per
    GPU, else one per ray_cpus_per_worker CPUs). See livervessels.cohort_ray.

    Raises:
        InputError: bad cohort input, output folder, mode or options (before any study runs).
        interrupts.Interrupted / KeyboardInterrupt: Ctrl-C or SIGTERM, after the rows so far are written.
    """
    from livervessels import cohort

    if mode not in COHORT_MODES:
        raise InputError(f"unknown cohort mode '{mode}'; use one of {', '.join(COHORT_MODES)}")
    _check_cohort_options(mode, options)
    studies, problems = cohort.find_studies(input)
    check_output_folder(output)
    quiet, verbose = options.get("quiet", False), options.get("verbose", False)
    _configure_logging(quiet, verbose)
    per_study = {**options, "quiet": not verbose}  # one progress line per study, not per stage
    if ray:  # Ray's workers do not start in this folder
        for key in ("model_dirs", "split_support_dir"):
            if isinstance(per_study.get(key), (list, tuple)):
                per_study[key] = [str(Path(d).resolve()) for d in per_study[key]]
            elif per_study.get(key):
                per_study[key] = str(Path(per_study[key]).resolve())
    if mode == "enhanced":
        def run_study(loaded: LoadedInput, folder: Path) -> None:
            enhance_liver_vessels(loaded, folder, **per_study)
    else:
        ml = options.get("ml", False)

        def run_study(loaded: LoadedInput, folder: Path) -> None:
            totalsegmentator(loaded, folder / "segmentations.nii.gz" if ml else folder, **per_study)
    result_options = {"mode": mode, **{k: v for k, v in options.items() if k not in _NOT_RESULT_OPTIONS}}
    show = cohort.ProgressReport(len(studies) + len(problems), bar=None) if (progress if progress is not None
                                                                             else not quiet) else None
    dispatch = None
    if not ray and _gpus_for_cohort(options.get("device")) > 1:
        ray = "auto"  # one worker per GPU; Ray keeps each worker on its own GPU
    if ray:
        from livervessels.cohort_ray import RayPool, check_address, ray_dispatch

        if (ray_workers is not None and ray_workers < 1) or ray_cpus_per_worker < 1:
            raise InputError("ray_workers and ray_cpus_per_worker must be at least 1")
        check_address(ray)  # before the output folder is made
        dispatch = ray_dispatch(RayPool(ray, ray_workers, ray_cpus_per_worker), run_study, cohort.summarize_outputs)
    try:
        return cohort.run_cohort(studies, output, run_study, result_options, summarize=cohort.summarize_outputs,
                                 problems=problems, progress=show, prefetch=prefetch, dispatch=dispatch)
    finally:
        if show is not None:
            show.close()


def _gpus_for_cohort(device: str | None) -> int:
    """GPUs a local cohort can use, one worker each: all visible ones when the device allows a GPU
    and Ray is installed (0 otherwise; a single worker then runs every study)."""
    if str(device or "auto").lower() not in ("auto", "gpu", "cuda"):  # the CPU, or one GPU chosen by number
        return 0
    import importlib.util

    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count > 1 and importlib.util.find_spec("ray") is None:
        logging.getLogger(__name__).warning("%d GPUs but Ray is not installed: the cohort runs on one; "
                                            "pip install 'ray==2.60.0' for one worker per GPU", count)
        return 0
    return count


def _check_cohort_options(mode: str, options: dict) -> None:
    """The checks a single run makes before any work, made once for the whole cohort."""
    import inspect

    fn = enhance_liver_vessels if mode == "enhanced" else totalsegmentator
    accepted = set(inspect.signature(fn).parameters) - {"input", "output"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InputError(f"option(s) {', '.join(unknown)} do not apply to cohort mode '{mode}'")
    resolve(options.get("device"), options.get("precision"))
    if mode == "totalsegmentator":
        if options.get("output_type", "nifti") not in OUTPUT_TYPES:
            raise InputError(f"unknown output type '{options['output_type']}'; use one of {', '.join(OUTPUT_TYPES)}")
        task_obj = get_task(resolve_task_name(options.get("task", "total"), options.get("fast", False),
                                              options.get("fastest", False)))
        check_roi_subset(task_obj, options.get("roi_subset"))
        model_store.check_model_dirs(options.get("model_dirs"), task_obj)
    elif options.get("split_support_dir") is None:
        choose_model_plan(options.get("model_dirs"))
