"""Scanner-shaped files at their real sizes through mridip, against independent references.

    python3 run.py mridip ...   # the environment; then:
    .venv/bin/python docs/scripts/scanner_files.py [--out DIR]

Two files of issue 17, written the way scanner exports are, then reconstructed exactly as
``mridip recon FILE -p cg-sense`` does (no options):

1. a Siemens GRAPPA export (data_tools.phantom.simulate_grappa_export): 14 coils, 144 x 192,
   R = 3, 48 ACS lines (flags 20 / 21 mixed), 106 of 144 lines with the centre at 55, 2x
   readout oversampling, a noise scan with its own sample count and dwell time. Reference:
   the file read with the ismrmrd package and numpy only, sigpy's EspiritCalib on its ACS
   lines, sigpy's SenseRecon with the same CG iterations.
2. a static 16-coil radial frame, 192 x 192, 69 golden-angle spokes x 384 samples (2x
   readout oversampling), trajectory stretched by 1.0006 as a gradient-delay correction
   does (max 0.5003 cycles/pixel), no frame index. Reference: the file read with the
   ismrmrd package, sigpy's NUFFT with a ramp DCF for the coil images, EspiritCalib,
   SenseRecon on the NUFFT with the same CG iterations.

Prints NRMSE (mridip.metrics, magnitude, least-squares scaled) of mridip against the
reference and against the truth, and the seconds of each (one process, this machine).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))


def grappa_case(out: str) -> dict:
    from data_tools.phantom import simulate_grappa_export
    from data_tools.reference import sigpy_sense_cartesian
    from mridip import metrics
    from mridip.recon.pipeline import reconstruct

    path = os.path.join(out, "grappa_export.h5")
    sim = simulate_grappa_export(path, shape=(144, 192), coils=14, acceleration=3, acs_lines=48,
                                 phase_resolution=106 / 144, snr=40.0, seed=0)
    t0 = time.perf_counter()
    rec = reconstruct(path, "cg-sense", progress=False)
    t_mridip = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = sigpy_sense_cartesian(path, iterations=10)
    t_ref = time.perf_counter() - t0
    return {
        "file": "GRAPPA export (14 coils, 144 x 192, R = 3, 48 ACS)",
        "nrmse_vs_reference": metrics.nrmse(rec.image[0], ref[None]),
        "nrmse_vs_truth": metrics.nrmse(rec.image[0], sim["image"][None]),
        "reference_vs_truth": metrics.nrmse(ref[None], sim["image"][None]),
        "seconds_mridip": t_mridip, "seconds_reference": t_ref,
        "backend": rec.attrs.get("nufft_backend", "-"),
    }


def radial_case(out: str) -> dict:
    import torch

    from data_tools.phantom import cardiac_cine_phantom, coil_sensitivities
    from data_tools.reference import sigpy_sense_radial
    from data_tools.writers import write_ismrmrd_radial
    from mridip import metrics
    from mridip.operators.radial import RadialSense
    from mridip.recon.pipeline import reconstruct
    from mridip.trajectories import radial_trajectory

    N, C, spokes, ns = 192, 16, 69, 384
    images, _ = cardiac_cine_phantom(N, frames=1, seed=0)
    x = torch.from_numpy(images[:1].astype(np.complex64))  # (1, Y, X)
    maps = torch.from_numpy(coil_sensitivities(C, (N, N), seed=0, normalize=True))
    traj = radial_trajectory(1, spokes, ns) * 1.0006  # delay-corrected: past the Nyquist edge
    wrapped = torch.remainder(traj + math.pi, 2 * math.pi) - math.pi
    y = RadialSense(maps, wrapped)(x)
    rng = np.random.default_rng(0)
    sigma = 0.02 * float(y.abs().mean())
    y = y + torch.from_numpy((sigma * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape)) / math.sqrt(2)).astype(np.complex64))
    path = os.path.join(out, "radial_delay.h5")
    write_ismrmrd_radial(path, y, traj, spokes_per_frame=spokes, image_shape=(N, N), write_phase=False)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reader's "past the Nyquist edge" warning
        rec = reconstruct(path, "cg-sense", progress=False)
    t_mridip = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = sigpy_sense_radial(path, N, iterations=10)
    t_ref = time.perf_counter() - t0
    truth = x.numpy()
    return {
        "file": "radial, 16 coils, 192 x 192, 69 x 384, delay-corrected (0.5003 cycles/pixel)",
        "nrmse_vs_reference": metrics.nrmse(rec.image[0], ref[None]),
        "nrmse_vs_truth": metrics.nrmse(rec.image[0], truth),
        "reference_vs_truth": metrics.nrmse(ref[None], truth),
        "seconds_mridip": t_mridip, "seconds_reference": t_ref,
        "backend": rec.attrs.get("nufft_backend", "-"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="folder for the files (default: a temporary one)")
    args = p.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="mridip-scanner-")
    os.makedirs(out, exist_ok=True)
    rows = [grappa_case(out), radial_case(out)]
    print("| file | NRMSE vs independent reference | mridip vs truth | reference vs truth | mridip s | reference s | NUFFT |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['file']} | {r['nrmse_vs_reference']:.2e} | {r['nrmse_vs_truth']:.4f} | "
              f"{r['reference_vs_truth']:.4f} | {r['seconds_mridip']:.1f} | {r['seconds_reference']:.1f} | {r['backend']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
