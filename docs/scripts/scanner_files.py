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
    import ismrmrd
    import sigpy.mri as mr

    from data_tools.phantom import simulate_grappa_export
    from mridip import metrics
    from mridip.recon.pipeline import reconstruct

    path = os.path.join(out, "grappa_export.h5")
    sim = simulate_grappa_export(path, shape=(144, 192), coils=14, acceleration=3, acs_lines=48,
                                 phase_resolution=106 / 144, snr=40.0, seed=0)
    t0 = time.perf_counter()
    rec = reconstruct(path, "cg-sense", progress=False)
    t_mridip = time.perf_counter() - t0

    t0 = time.perf_counter()
    ds = ismrmrd.Dataset(path, "dataset", create_if_needed=False)
    enc = ismrmrd.xsd.CreateFromDocument(ds.read_xml_header()).encoding[0]
    acqs = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    ds.close()
    ex, Ky, nx = enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y, enc.reconSpace.matrixSize.x
    centre = enc.encodingLimits.kspace_encoding_step_1.center
    noise, lines, acs = [], {}, {}
    for a in acqs:
        if a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            noise.append(a.data)
            continue
        full = np.zeros((a.data.shape[0], ex), np.complex64)
        off = ex // 2 - a.center_sample
        full[:, off : off + a.data.shape[1]] = a.data
        img = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(full, -1), axis=-1), -1)[:, ex // 2 - nx // 2 : ex // 2 + nx // 2]
        line = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(img, -1), axis=-1), -1)
        row = a.idx.kspace_encode_step_1 - centre + Ky // 2
        lines[row] = line
        if a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) or a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING):
            acs[row] = line
    n = np.concatenate(noise, 1)
    W = np.linalg.inv(np.linalg.cholesky(n @ n.conj().T / n.shape[1]))
    ksp = np.zeros((n.shape[0], Ky, nx), np.complex64)
    kacs = np.zeros_like(ksp)
    for r, v in lines.items():
        ksp[:, r] = W @ v
    for r, v in acs.items():
        kacs[:, r] = W @ v
    mps = mr.app.EspiritCalib(kacs, show_pbar=False).run()
    ref = mr.app.SenseRecon(ksp, mps, max_iter=10, show_pbar=False).run()
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
    import ismrmrd
    import sigpy as sp
    import sigpy.mri as mr
    import torch

    from data_tools.phantom import cardiac_cine_phantom, coil_sensitivities
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
    ds = ismrmrd.Dataset(path, "dataset", create_if_needed=False)
    acqs = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    ds.close()
    ksp = np.concatenate([a.data for a in acqs], axis=1)  # (C, spokes * ns)
    cyc = np.concatenate([a.traj for a in acqs], axis=0)  # (K, 2): column 0 = kx, 1 = ky
    coord = np.stack([cyc[:, 1], cyc[:, 0]], axis=-1) * N  # sigpy: (y, x), 1/FOV units
    dcf = np.sqrt((coord**2).sum(-1))
    imgs = sp.nufft_adjoint(ksp * dcf, coord, (C, N, N))
    mps = mr.app.EspiritCalib(sp.fft(imgs, axes=(-2, -1)), show_pbar=False).run()
    ref = mr.app.SenseRecon(ksp, mps, coord=coord, max_iter=10, show_pbar=False).run()
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
