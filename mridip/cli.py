"""The ``mridip`` command line.

Each subcommand parses its arguments here and calls one library function, so the
Python API and the command line do the same thing. Errors a user can cause
(:class:`~mridip.errors.MridipError`) are printed as one message, without a traceback,
with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mridip import __version__
from mridip.errors import MridipError


def _cmd_info(args: argparse.Namespace) -> int:
    from mridip.io import describe

    for path in args.inputs:
        print(describe(path))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from data_tools.phantom import simulate_from_args

    for p in simulate_from_args(args):
        print(p)
    return 0


def _resume_command(args: argparse.Namespace) -> str:
    """The command line the user ran, with ``--resume`` (and without ``--restart``)."""
    import shlex

    argv = [a for a in getattr(args, "argv", None) or sys.argv[1:] if a not in ("--restart", "--overwrite")]
    return "mridip " + shlex.join(argv + ([] if "--resume" in argv else ["--resume"]))


def _check_checkpoints(args: argparse.Namespace, found: list) -> None:
    """Refuse to discard an interrupted fit; refuse ``--resume`` with nothing to resume."""
    if args.resume and args.restart:
        raise MridipError("--resume and --restart exclude each other: continue the fit, or start afresh")
    if found and not args.resume and not args.restart:
        raise MridipError(
            f"found {found[0]}, the checkpoint of an interrupted fit"
            + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")
            + f": continue it with `{_resume_command(args)}`, or give --restart to discard it and start afresh"
        )


def _cmd_recon(args: argparse.Namespace) -> int:
    from mridip.io.export import output_format, output_stem, save_output
    from mridip.io.safety import planned_outputs, refuse_overwrite
    from mridip.recon.pipeline import checkpoint_stem, find_checkpoints, reconstruct, remove_checkpoints

    out = Path(args.output)
    fmt = output_format(out, args.format)  # before the fit: a bad name fails at once
    if not out.parent.exists():
        raise MridipError(f"output folder {out.parent} does not exist: create it first")
    # before any work: never over an input, never over an earlier result without --overwrite
    inputs = (args.input, args.trajectory, args.coil_maps)
    for target, what in planned_outputs(out, fmt, provenance=args.provenance):
        refuse_overwrite(target, inputs=inputs, overwrite=args.overwrite, what=what)
    found = find_checkpoints(out)
    _check_checkpoints(args, found)
    if args.resume and not found:
        raise MridipError(
            f"--resume: no checkpoint beside {out} ({checkpoint_stem(out)}.s*.pt): nothing to resume "
            "(a baseline writes none, and a fit writes its first after fit.checkpoint_every iterations); "
            "run without --resume"
        )
    if args.restart:
        remove_checkpoints(out)
    coil_maps = None
    if args.coil_maps:
        from mridip.io.coilmaps import load_coil_maps

        coil_maps = load_coil_maps(args.coil_maps)
    try:
        recon = reconstruct(
            args.input,
            args.protocol,
            device=args.device,
            overrides=args.set,
            seed=args.seed,
            coil_maps=coil_maps,
            checkpoint=checkpoint_stem(out),
            resume=args.resume,
            progress=not args.quiet,
            trajectory=args.trajectory,
        )
    except KeyboardInterrupt:
        found = find_checkpoints(out)
        if found:
            raise KeyboardInterrupt(
                f"the fit so far is kept in {found[0]}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")
                + f"; continue it with `{_resume_command(args)}`"
            ) from None
        raise
    written = save_output(out, recon, fmt, provenance=args.provenance)
    remove_checkpoints(out)  # the fit finished: its checkpoints are no longer needed
    if not args.no_preview:
        from mridip.viz import save_cine_gif, save_frame_grid

        img = recon.image[0]
        stem = output_stem(out)  # out.nii.gz -> out.png, not out.nii.png
        save_frame_grid(img, stem + ".png")
        if img.shape[0] > 1:
            save_cine_gif(img, stem + ".gif")
    a = recon.attrs
    print(
        f"{', '.join(written)}: {recon.method}, image {tuple(recon.image.shape)} (S, T, Y, X), "
        f"{a['iterations']} iterations ({a['stop_reason']}), {a['wall_seconds']:.1f} s on {a['device']}"
    )
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from mridip.compare import compare, compare_checkpoints

    out = Path(args.output)
    _check_checkpoints(args, compare_checkpoints(out))
    try:
        compare(
            args.input, args.protocol, args.output, reference=args.reference, region=args.region,
            device=args.device, overrides=args.set, seed=args.seed, progress=not args.quiet, resume=args.resume,
            trajectory=args.trajectory, overwrite=args.overwrite or args.restart, coil_maps=args.coil_maps,
        )
    except KeyboardInterrupt:
        found = compare_checkpoints(out)
        if found:
            raise KeyboardInterrupt(
                f"finished methods and the interrupted fit's checkpoint {found[0]} are kept in {out}; "
                f"continue with `{_resume_command(args)}`"
            ) from None
        raise
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from mridip.io.twix import twix_to_ismrmrd

    out = Path(args.output)
    if out.suffix != ".h5":
        raise MridipError(f"output {out} must end in .h5 (an ISMRMRD file)")
    if not out.parent.exists():
        raise MridipError(f"output folder {out.parent} does not exist: create it first")
    twix_to_ismrmrd(args.input, out, measurement=args.measurement)
    print(f"{out}: ISMRMRD from {args.input} (measurement {args.measurement})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mridip.demo import run_demo

    run_demo(args.output, full=args.full, device=args.device, seed=args.seed, progress=not args.quiet,
             overrides=args.set)
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from mridip.batch import run as batch_run

    rows = batch_run(
        args.inputs, args.protocol, args.output, reference_glob=args.reference_glob, address=args.address,
        cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task, retries=args.retries,
        resume=args.resume, retry_failed=args.retry_failed, overwrite=args.overwrite, overrides=args.set,
        seed=args.seed, num_cpus=args.num_cpus, figures=args.figures, progress=not args.quiet,
    )
    return 1 if any(r["status"] != "done" for r in rows) else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from mridip.bench import main as bench_main

    return bench_main(device=args.device, as_json=args.json, repeats=args.repeats, quick=args.quick,
                      full=args.full, contended=args.contended, tiny=args.tiny)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mridip",
        description="MRI reconstruction from raw k-space with untrained generator networks "
        "(Deep Image Prior family), compared with compressed sensing.",
    )
    p.add_argument("--version", action="version", version=f"mridip {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("info", help="describe what a raw file holds (ISMRMRD, fastMRI, twix .dat, BART .cfl)")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="raw .h5 file(s)")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser(
        "simulate",
        help="write a numerical phantom as raw files: cardiac cine (ISMRMRD radial/Cartesian, fastMRI), "
        "a realistic textured cine (--kind anatomical), a Siemens-GRAPPA-shaped slice (--kind grappa), "
        "T2 / T1 / MOLLI mapping scans (--kind t2map, t1map, molli)",
    )
    from data_tools.phantom import add_arguments

    add_arguments(s)
    s.set_defaults(func=_cmd_simulate)

    s = sub.add_parser("recon", help="reconstruct a raw file with a protocol")
    s.add_argument("input", metavar="INPUT", help="raw file: ISMRMRD or fastMRI .h5, Siemens twix .dat, BART .cfl")
    s.add_argument("-p", "--protocol", required=True, help="protocol name (protocols/NAME.toml) or .toml file")
    s.add_argument(
        "-o", "--output", required=True,
        help="output: .h5 (full provenance), .mrd (ISMRMRD/MRD images) or .nii/.nii.gz (NIfTI magnitude); "
        "previews .png/.gif beside it",
    )
    s.add_argument("--format", choices=("h5", "mrd", "nifti"), help="output format (default: from the suffix)")
    s.add_argument("--provenance", action="store_true", help="with .mrd / .nii.gz: also write the full-provenance STEM.h5")
    s.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    s.add_argument(
        "--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
        help="override a protocol option, e.g. --set fit.iterations=3000 (repeatable)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of initialisation and hold-out split")
    s.add_argument("--resume", action="store_true", help="continue from the checkpoints beside OUTPUT")
    s.add_argument("--restart", action="store_true",
                   help="discard the checkpoints of an interrupted fit beside OUTPUT and start afresh")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an existing OUTPUT (and its --provenance .h5); an input is never replaced")
    s.add_argument("--coil-maps", metavar="FILE",
                   help="coil maps to use instead of estimating: a mridip output .h5, .npy (C, Y, X) / "
                   "(S, C, Y, X), or BART .cfl (bart ecalib)")
    s.add_argument("--no-preview", action="store_true", help="do not write PNG/GIF previews")
    s.add_argument("--trajectory", metavar="FILE", help="trajectory of BART .cfl k-space (traj.cfl, BART units)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_recon)

    s = sub.add_parser("compare", help="run several protocols on one input: table + figures")
    s.add_argument("input", metavar="INPUT", help="raw file: ISMRMRD or fastMRI .h5, Siemens twix .dat, BART .cfl")
    s.add_argument("-p", "--protocol", action="append", required=True, help="protocol (repeat for each)")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.add_argument("--reference", help="ground truth (.npy, data_tools *_truth.h5) or a reference reconstruction .h5")
    s.add_argument("--region", default="heart", help="reference region for region metrics (default heart)")
    s.add_argument("--trajectory", metavar="FILE", help="trajectory of BART .cfl k-space (traj.cfl, BART units)")
    s.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    s.add_argument(
        "--set", action="append", default=[], metavar="[PROTOCOL:]TABLE.KEY=VALUE",
        help="override for all protocols, or for one with a PROTOCOL: prefix (repeatable)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--resume", action="store_true",
        help="keep the reconstructions already in OUTPUT made from the same input, protocol, seed and coil "
        "maps, and continue interrupted fits from their checkpoints",
    )
    s.add_argument("--restart", action="store_true",
                   help="discard the checkpoints of interrupted fits in OUTPUT and its earlier results; start afresh")
    s.add_argument("--overwrite", action="store_true",
                   help="replace the results (results.md/csv, PROTOCOL.h5) of an earlier run in OUTPUT")
    s.add_argument("--coil-maps", metavar="FILE",
                   help="coil maps for every protocol instead of estimating: a mridip output .h5, .npy or BART .cfl")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=_cmd_compare)

    s = sub.add_parser("convert", help="convert a Siemens twix .dat file to ISMRMRD .h5")
    s.add_argument("input", metavar="INPUT.dat", help="Siemens twix raw file (VB or VD/VE)")
    s.add_argument("output", metavar="OUT.h5", help="ISMRMRD file to write")
    s.add_argument("--measurement", type=int, default=-1,
                   help="measurement of a multi-raid file (default -1, the last: the imaging scan)")
    s.set_defaults(func=_cmd_convert)

    s = sub.add_parser("demo", help="simulate a radial cine, reconstruct, compare, report (CPU, minutes)")
    s.add_argument("-o", "--output", default="mridip-demo", help="output folder (default ./mridip-demo)")
    s.add_argument("--full", action="store_true", help="the 128x128x20, 8-coil case (meant for a GPU)")
    s.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    s.add_argument(
        "--set", action="append", default=[], metavar="[PROTOCOL:]TABLE.KEY=VALUE",
        help="override a protocol option after the demo's own, as in compare (repeatable)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=_cmd_demo)

    s = sub.add_parser("bench", help="time the forward models (and fitting iterations)")
    s.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    s.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    s.add_argument("--repeats", type=int, default=3, help="timed repeats per case (median)")
    s.add_argument("--full", action="store_true",
                   help="also 32 coils, every backend in the set-up case, all-frame TDDIP steps, GIP stages")
    s.add_argument("--contended", action="store_true",
                   help="also a TDDIP step and a Toeplitz normal beside busy processes, with and without "
                   "the thread policy")
    s.add_argument("--tiny", action="store_true", help="smoke-test sizes (seconds; the numbers mean nothing)")
    s.add_argument("--quick", action="store_true", help="the default cases only (the old name of the default)")
    s.set_defaults(func=_cmd_bench)

    s = sub.add_parser(
        "batch", help="reconstruct many files, slices and protocols on Ray (local, or a cluster with --address)",
        description="One Ray task per (file, slice, protocol); the slices of a file are gathered into "
        "OUTDIR/PROTOCOL/LABEL.h5 as mridip recon writes it. Exit status 1 when any task failed. "
        "See docs/scale-out.md.",
    )
    s.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="raw files, folders, globs, or an input list (.csv / .toml: input, protocol, reference)")
    s.add_argument("-p", "--protocol", action="append", default=[], help="protocol (repeat for each)")
    s.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (manifest, outputs, logs)")
    s.add_argument("--reference-glob", metavar="PATTERN",
                   help="each input's reference, {stem} / {name} / {dir} replaced, e.g. '{stem}_truth.h5'")
    s.add_argument("--address", help="Ray cluster: auto (this machine's `ray start` cluster), HOST:PORT (its head) or ray://HOST:PORT; "
                   "default: start Ray here")
    s.add_argument("--num-cpus", type=int, help="CPUs of a Ray started here (default: all)")
    s.add_argument("--cpus-per-task", type=float, default=1.0, help="Ray CPUs per task (default 1)")
    s.add_argument("--gpus-per-task", type=float, default=0.0,
                   help="Ray GPUs per task, fractions share a GPU (default 0: reconstruct on the CPU)")
    s.add_argument("--retries", type=int, default=3, help="retries of a task whose worker died (default 3)")
    s.add_argument("--resume", action="store_true", help="skip the finished tasks of OUTDIR's manifest")
    s.add_argument("--retry-failed", action="store_true", help="as --resume, and rerun the failed tasks")
    s.add_argument("--overwrite", action="store_true", help="start afresh in an OUTDIR that holds a manifest")
    s.add_argument(
        "--set", action="append", default=[], metavar="[PROTOCOL:]TABLE.KEY=VALUE",
        help="override for all protocols, or for one with a PROTOCOL: prefix (repeatable)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--figures", type=int, default=1, help="compare's figures for the first N inputs (default 1)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_batch)
    return p


def main(argv: list[str] | None = None) -> int:
    import warnings

    # torchkbnufft scripts its kernels with torch.jit.script, which torch deprecates: not the
    # user's concern (the same filter as the tests', pyproject.toml)
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=DeprecationWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except MridipError as exc:
        print(f"mridip {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"mridip {args.command}: interrupted" + (f": {exc}" if str(exc) else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
