"""Command lines: `TotalSegmentator` (drop-in for TotalSegmentator's), `TotalSegmentatorEnhanced`,
`TotalSegmentatorBatch` (cohorts), `TotalSegmentatorResection` (future liver remnant from Couinaud
segments) and `TotalSegmentator weights` to install official weights.

Exit codes: 0 success, 2 bad usage or input (one `error:` line), 1 internal failure, 130 / 143
interrupted by Ctrl-C / SIGTERM (nothing written); TotalSegmentatorBatch: 3 when some studies failed.
No usage statistics are collected or sent.
"""
from __future__ import annotations

import argparse
import signal
import sys
import traceback

from livervessels import interrupts
from livervessels.compute import PRECISIONS
from livervessels.errors import InputError, PacsError
from livervessels.tasks import TASKS

INPUT_HELP = "input: a NIfTI file (.nii/.nii.gz), a folder of DICOM slices, or a .zip holding one DICOM study"
DEVICE_HELP = ("auto, cpu, gpu, gpu:N, cuda or cuda:N (default: LIVERVESSELS_DEVICE, else auto: the GPU when "
               "present, else the CPU); every computing stage runs there")
PRECISION_HELP = ("network precision: auto, fp32 (exact parity with TotalSegmentator on the CPU), bf16, fp16 (GPU) "
                  "(default: LIVERVESSELS_PRECISION, else auto: fp16 on a GPU as TotalSegmentator, bf16 on a CPU "
                  "with native bfloat16, else fp32)")


def _run(fn, argv, parser: argparse.ArgumentParser) -> int:
    """Parse argv and run fn(args), turning every failure into one stderr line and its exit code:
    0 done, 2 bad input or usage (InputError), 4 PACS refused (PacsError), 1 internal failure,
    130 / 143 interrupted (the process ends there)."""
    args = parser.parse_args(argv)
    interrupts.install()  # Ctrl-C / SIGTERM: exit 130 / 143 within seconds, nothing left behind
    try:
        fn(args)
        return 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PacsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (interrupts.Interrupted, KeyboardInterrupt) as exc:
        interrupts.end_process(interrupts.report(exc.signum if isinstance(exc, interrupts.Interrupted)
                                                 else signal.SIGINT))
    except Exception as exc:  # an internal failure: say so, the traceback only with --verbose
        if getattr(args, "verbose", False):
            traceback.print_exc()
        print(f"error: internal failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, help=INPUT_HELP)
    parser.add_argument("-o", "--output", required=True, help="output folder (with --ml: output file)")
    parser.add_argument("-d", "--device", default=None, help=DEVICE_HELP)
    parser.add_argument("--precision", default=None, choices=PRECISIONS, help=PRECISION_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug details")
    parser.add_argument("-m", "--model_dir", action="append", default=None,
                        help="folder with nnU-Net models (results layout); may repeat. Searched before "
                             "TOTALSEG_WEIGHTS_PATH, TOTALSEG_HOME_DIR and ~/.totalsegmentator")
    parser.add_argument("--robust_crop", action="store_true",
                        help="crop for liver_vessels with the 3 mm model instead of the 6 mm one (more robust)")
    parser.add_argument("-p", "--preview", action="store_true", help="write a preview PNG")
    parser.add_argument("-s", "--statistics", action="store_true",
                        help="write statistics.json (volume, mean/median HU per structure; vessel tree measures)")


def totalsegmentator_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="TotalSegmentator",
        description="Segment CT with TotalSegmentator's official nnU-Net weights (compatible options and "
                    "outputs). Research use only. Install weights with: TotalSegmentator weights --task TASK",
    )
    _common(p)
    p.add_argument("-ta", "--task", default="total", help=f"task: {', '.join(sorted(TASKS))} (default total)")
    p.add_argument("-f", "--fast", action="store_true", help="lower resolution model (total: 3 mm)")
    p.add_argument("-ff", "--fastest", action="store_true", help="lowest resolution model (total: 6 mm)")
    p.add_argument("-rs", "--roi_subset", nargs="+", default=None, metavar="NAME",
                   help="only these classes (runs only the model parts that predict them)")
    p.add_argument("-ml", "--ml", action="store_true",
                   help="one label map file instead of one mask per class (names in the NIfTI header "
                        "extension and a JSON sidecar)")
    p.add_argument("-ot", "--output_type", default="nifti", choices=["nifti", "dicom_seg"],
                   help="nifti masks, or one DICOM SEG (DICOM input only)")
    p.add_argument("-nr", "--nr_thr_resamp", type=int, default=1, help="threads for resampling")
    p.add_argument("-ns", "--nr_thr_saving", type=int, default=6, help="threads for writing masks")
    return p


def weights_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="TotalSegmentator weights",
        description="Install official TotalSegmentator weights: download by task (resumable), or import a "
                    "zip you downloaded elsewhere (e.g. Dataset008_HepaticVessel.zip).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", help=f"download every model of a task: {', '.join(sorted(TASKS))}")
    src.add_argument("--zip", nargs="+", help="import these zip files")
    p.add_argument("--dest", default=None,
                   help="results folder to install into (default: TotalSegmentator's, i.e. TOTALSEG_WEIGHTS_PATH, "
                        "TOTALSEG_HOME_DIR/nnunet/results or ~/.totalsegmentator/nnunet/results)")
    p.add_argument("--base_url", default=None, help="download from this base URL instead of GitHub releases")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only errors")
    p.add_argument("-v", "--verbose", action="store_true", help="print debug details")
    return p


def _weights(args) -> None:
    from livervessels import weights

    if args.zip:
        for z in args.zip:
            folder = weights.import_zip(z, args.dest)
            print(f"installed {folder}")
    else:
        for folder in weights.install_task(args.task, args.dest, base_url=args.base_url, quiet=args.quiet):
            print(f"installed {folder}")


def _segment(args) -> None:
    from livervessels.api import totalsegmentator

    totalsegmentator(args.input, args.output, task=args.task, fast=args.fast, fastest=args.fastest,
                     roi_subset=args.roi_subset, robust_crop=args.robust_crop, ml=args.ml,
                     statistics=args.statistics, preview=args.preview, device=args.device,
                     precision=args.precision, output_type=args.output_type, quiet=args.quiet, verbose=args.verbose,
                     nr_thr_resamp=args.nr_thr_resamp, nr_thr_saving=args.nr_thr_saving, model_dirs=args.model_dir)


def totalsegmentator_main(argv: list[str] | None = None) -> int:
    """`TotalSegmentator ...` and `TotalSegmentator weights ...`; returns the exit code (see _run), never
    raises except argparse's SystemExit on bad usage."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["weights"]:
        return _run(_weights, argv[1:], weights_parser())
    return _run(_segment, argv, totalsegmentator_parser())


def enhanced_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="TotalSegmentatorEnhanced",
        description="Enhanced liver vessel pipeline: liver vessel segmentation, repair of the vessel mask, and "
                    "portal vein / hepatic vein split. On a DICOM study it writes the same files as the MONAI "
                    "Deploy app (NIfTI masks, DICOM SEG, QC JSON). Research use only.",
    )
    _common(p)
    p.add_argument("--mode", required=True, choices=["enhanced_liver"], help="pipeline to run")
    p.add_argument("--no_fallback_full_liver", action="store_true",
                   help="fail when the liver mask is missing or empty instead of working on the whole volume")
    p.add_argument("--min_component_size", type=float, default=None,
                   help="remove vessel components smaller than this many voxels that are not connected to the "
                        "main trees (default: the enhancement's physical default)")
    p.add_argument("--split_portal_hepatic", action="store_true",
                   help="label the vessels portal vein branches (1) / hepatic veins (2)")
    p.add_argument("--split_support_dir", default=None, metavar="PATH",
                   help="folder with liver.nii.gz, portal_vein_and_splenic_vein.nii.gz, inferior_vena_cava.nii.gz "
                        "(support labels for the split); a liver_vessels.nii.gz there is used as the raw vessel "
                        "mask and no model runs")
    p.add_argument("--generate_split_support", action="store_true",
                   help="produce support labels missing from --split_support_dir with the inference engine")
    p.add_argument("--no_skeleton", action="store_true",
                   help="split voxel-wise along geodesic paths instead of on the centerline graph")
    p.add_argument("--min_split_component_size", type=int, default=0,
                   help="leave vessel components smaller than this many voxels unlabelled in the split")
    p.add_argument("--couinaud", action="store_true",
                   help="Couinaud segments 1-8 from the split's hepatic veins and portal bifurcation "
                        "(needs --split_portal_hepatic): liver_segments_vessel.nii.gz, SEG segments, volumes in "
                        "statistics and qc.json; refused, with the reason in qc.json, where the veins do not allow it")
    p.add_argument("--resect", type=int, nargs="+", default=None, metavar="N",
                   help="with --couinaud: Couinaud segments (1-8) to resect; the future liver remnant (ml, %% of "
                        "the liver) goes to qc.json and statistics.json (and the SR)")
    p.add_argument("--export_meshes", action="store_true", help="write smoothed STL surfaces (LPS mm) per structure")
    p.add_argument("--send_to", default=None, metavar="URL",
                   help="DICOMweb base URL of a PACS (e.g. http://pacs:8042/dicom-web): once written, the SEG, SR "
                        "and SC are sent there (STOW-RS); if it is unreachable or refuses one, the outputs stay on "
                        "disk and the exit code is 4")
    return p


def _enhance(args) -> None:
    from livervessels.api import enhance_liver_vessels

    enhance_liver_vessels(
        args.input, args.output, split_portal_hepatic=args.split_portal_hepatic,
        split_support_dir=args.split_support_dir, generate_split_support=args.generate_split_support,
        robust_crop=args.robust_crop, no_fallback_full_liver=args.no_fallback_full_liver,
        min_component_size=args.min_component_size, no_skeleton=args.no_skeleton,
        min_split_component_size=args.min_split_component_size, device=args.device, precision=args.precision,
        export_meshes=args.export_meshes, preview=args.preview, statistics=args.statistics, quiet=args.quiet,
        verbose=args.verbose, model_dirs=args.model_dir, send_to=args.send_to, couinaud=args.couinaud,
        resect=args.resect,
    )


def enhanced_main(argv: list[str] | None = None) -> int:
    """`TotalSegmentatorEnhanced ...`; returns the exit code (see _run), never raises except argparse's
    SystemExit on bad usage."""
    return _run(_enhance, sys.argv[1:] if argv is None else list(argv), enhanced_parser())


COHORT_INPUT_HELP = ("a folder whose entries are studies (a NIfTI file, a DICOM folder or a zip each; the id is the "
                     "name without extension) or a CSV manifest with the columns study_id,path")


def batch_parser(enhanced: bool) -> argparse.ArgumentParser:
    """TotalSegmentatorEnhanced's options (with --mode) or TotalSegmentator's, for a cohort."""
    p = enhanced_parser() if enhanced else totalsegmentator_parser()
    p.prog = "TotalSegmentatorBatch"
    p.description = ("Run a cohort in one process: each study of INPUT into OUT_DIR/<study_id>/ with exactly the files "
                     "a single run writes, and one row per study in OUT_DIR/cohort.csv (and cohort.parquet). Takes "
                     "TotalSegmentatorEnhanced's options when --mode is given, else TotalSegmentator's. Re-running "
                     "skips studies already done whose input and options have not changed. Exit 0: all studies "
                     "succeeded; 3: some failed (their rows say why); 2: bad usage. Research use only.")
    for action in p._actions:
        if action.dest == "input":
            action.help = COHORT_INPUT_HELP
        elif action.dest == "output":
            action.help = "output folder: one folder per study, cohort.csv, cohort.parquet"
    p.add_argument("--no_progress", action="store_true", help="no progress bar or per-study lines")
    p.add_argument("--ray", metavar="ADDRESS", help="run the studies on a pool of Ray actors: 'auto' (this machine's "
                   "Ray cluster, else a local Ray instance) or a cluster address (HOST:6379, ray://HOST:10001); "
                   "inputs and OUT_DIR must be on a path every node sees")
    p.add_argument("--ray_workers", type=int, metavar="N", help="Ray actors (default: one per GPU, else one per "
                   "--ray_cpus_per_worker CPUs of the cluster)")
    p.add_argument("--ray_cpus_per_worker", type=int, default=4, metavar="C",
                   help="CPUs each Ray actor reserves and uses (default 4)")
    return p


def _batch(args) -> int:
    from livervessels.api import run_cohort

    enhanced = getattr(args, "mode", None) is not None
    skip = {"input", "output", "no_progress", "mode", "model_dir", "ray", "ray_workers", "ray_cpus_per_worker"}
    options = {k: v for k, v in vars(args).items() if k not in skip}
    options["model_dirs"] = args.model_dir
    result = run_cohort(args.input, args.output, "enhanced" if enhanced else "totalsegmentator",
                        progress=False if args.no_progress else None, ray=args.ray, ray_workers=args.ray_workers,
                        ray_cpus_per_worker=args.ray_cpus_per_worker, **options)
    ok = len(result.rows) - result.failed
    print(f"{ok} of {len(result.rows)} studies succeeded; rows in {result.files[0]}")
    return 3 if result.failed else 0


def batch_main(argv: list[str] | None = None) -> int:
    """`TotalSegmentatorBatch ...`; returns 0 when every study succeeded, 3 when some failed, else the
    exit code of _run; never raises except argparse's SystemExit on bad usage."""
    argv = sys.argv[1:] if argv is None else list(argv)
    enhanced = any(a == "--mode" or a.startswith("--mode=") for a in argv)
    status: list[int] = []
    code = _run(lambda args: status.append(_batch(args)), argv, batch_parser(enhanced))
    return code if code or not status else status[0]


def resection_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="TotalSegmentatorResection",
        description="Future liver remnant: the liver volume left when Couinaud segments are resected, from a "
                    "liver_segments label map (`TotalSegmentator -ta liver_segments --ml`) or its folder of masks. "
                    "Research use only.")
    p.add_argument("-i", "--input", required=True,
                   help="label map .nii.gz (values 1-8) or folder of liver_segment_N.nii.gz")
    p.add_argument("-r", "--remove", required=True, nargs="+", type=int, metavar="N",
                   help="segments to resect, 1-8 (e.g. 5 6 7 8: right hepatectomy; 2 3: left lateral sectionectomy)")
    p.add_argument("-o", "--output", default=None, help="also write the report as JSON to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="print debug details")
    return p


def _resection(args) -> None:
    from livervessels.resection import (
        couinaud_volumes,
        format_report,
        future_liver_remnant,
        read_couinaud_labels,
        write_report_json,
    )

    labels, spacing = read_couinaud_labels(args.input)
    report = future_liver_remnant(couinaud_volumes(labels, spacing), args.remove)
    report = {"input": str(args.input), "spacing_mm": [round(s, 4) for s in spacing], **report}
    if args.output:
        write_report_json(report, args.output)
    print(format_report(report))


def resection_main(argv: list[str] | None = None) -> int:
    """`TotalSegmentatorResection -i SEGMENTS -r 5 6 7 8`; returns the exit code (see _run)."""
    return _run(_resection, sys.argv[1:] if argv is None else list(argv), resection_parser())


if __name__ == "__main__":
    sys.exit(totalsegmentator_main())
