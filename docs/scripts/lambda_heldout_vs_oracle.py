"""Held-out lambda choice vs the oracle (ground truth) on a data_tools phantom.

    python docs/scripts/lambda_heldout_vs_oracle.py PROTOCOL [--kind radial|cartesian]
        [--size 64] [--frames 12] [--coils 4] [--spokes 13] [--acceleration 6]
        [--values 0.0005,0.001,...]

For every lambda of the grid (default: the protocol's ``baseline.tune_values``) it prints
the held-out k-space error that ``tune_lambda`` scores (what the protocol's ``tune = true``
chooses by, no ground truth) and the PSNR against the phantom's truth of the same method
solved with that lambda on all data (what an oracle would choose by). The phantom is
written as an ISMRMRD file and read back, prewhitened, with ESPIRiT maps, exactly as
``mridip compare`` does. Used for the held-out vs oracle table of docs/baselines.md.
"""

import argparse
import tempfile
import time

import torch

from data_tools.phantom import simulate_to_files
from mridip.compare import _centre_crop, load_reference
from mridip.io import load_raw
from mridip.metrics import psnr
from mridip.protocols import load_protocol
from mridip.recon.baselines import METHODS, tune_lambda
from mridip.recon.pipeline import preprocess, slice_problem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("protocol")
    ap.add_argument("--kind", default="radial", choices=["radial", "cartesian"])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--coils", type=int, default=4)
    ap.add_argument("--spokes", type=int, default=13)
    ap.add_argument("--acceleration", type=float, default=6.0)
    ap.add_argument("--values", default="", help="comma-separated lambdas (default: the protocol's grid)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    proto = load_protocol(a.protocol)
    opts = dict(proto.baseline)
    opts.pop("tune", None)
    grid = [float(v) for v in a.values.split(",")] if a.values else [float(v) for v in opts["tune_values"]]
    opts.pop("tune_values", None)
    opts.pop("lam", None)
    fn = METHODS[proto.method]

    with tempfile.TemporaryDirectory() as d:
        raw_path, truth_path = simulate_to_files(
            d, kind=a.kind, size=a.size, frames=a.frames, coils=a.coils, spokes_per_frame=a.spokes,
            acceleration=a.acceleration, snr=30.0, seed=a.seed)
        raw = preprocess(load_raw(raw_path), proto)
        truth = load_reference(truth_path).image[0]
    problem = slice_problem(raw.slice(0), proto, torch.device("cpu"))
    A, y, valid = problem.A, problem.y, problem.valid

    t0 = time.perf_counter()
    best, table = tune_lambda(lambda A_, y_, lam: fn(A_, y_, lam=lam, **opts)[0], A, y, grid, seed=a.seed)
    tune_s = time.perf_counter() - t0
    what = (f"{a.kind} {a.size}x{a.size}x{a.frames}, {a.coils} coils, "
            + (f"{a.spokes} spokes/frame" if a.kind == "radial" else f"R = {a.acceleration:g}"))
    print(f"{proto.name} on the {what} phantom; held-out choice {best:g} ({tune_s:.0f} s for the sweep)\n")
    print("| lam | held-out error | PSNR (all data) | seconds |\n|---|---|---|---|")
    rows = []
    for lam, err in table:
        t0 = time.perf_counter()
        x, _ = fn(A, y, lam=lam, **opts)
        sec = time.perf_counter() - t0
        x = (x * valid).numpy()
        p = psnr(_centre_crop(x, truth.shape[-2:]), truth)
        rows.append((lam, p))
        mark = " (held-out)" if lam == best else ""
        print(f"| {lam:g}{mark} | {err:.5f} | {p:.2f} | {sec:.1f} |", flush=True)
    oracle = max(rows, key=lambda r: r[1])
    print(f"\noracle choice {oracle[0]:g} ({oracle[1]:.2f} dB)")


if __name__ == "__main__":
    main()
