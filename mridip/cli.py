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


def _cmd_recon(args: argparse.Namespace) -> int:
    from mridip.io.export import output_format, output_stem, save_output
    from mridip.recon.pipeline import checkpoint_stem, reconstruct, remove_checkpoints

    out = Path(args.output)
    fmt = output_format(out, args.format)  # before the fit: a bad name fails at once
    if not out.parent.exists():
        raise MridipError(f"output folder {out.parent} does not exist: create it first")
    recon = reconstruct(
        args.input,
        args.protocol,
        device=args.device,
        overrides=args.set,
        seed=args.seed,
        checkpoint=checkpoint_stem(out),
        resume=args.resume,
        progress=not args.quiet,
        trajectory=args.trajectory,
    )
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
    from mridip.compare import compare

    compare(
        args.input, args.protocol, args.output, reference=args.reference, region=args.region,
        device=args.device, overrides=args.set, seed=args.seed, progress=not args.quiet, resume=args.resume,
        trajectory=args.trajectory,
    )
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
        help="write a numerical phantom as raw files: cardiac cine (ISMRMRD radial/Cartesian, fastMRI) "
        "or multi-echo T2 mapping (ISMRMRD, --kind t2map)",
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
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except MridipError as exc:
        print(f"mridip {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mridip {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
