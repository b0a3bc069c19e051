"""Static methods on the real sigpy-brain k-space, scored on held-out k-space (no ground truth).

    python docs/scripts/sigpy_brain_heldout.py [PATH_TO_cartesian_ksp.npy]

The sample (8 coils, 230 x 180, 12.4 % sampled) has no fully sampled reference, so every method
reconstructs from the same 92 % of the measured samples and is scored by the relative residual
``||A_val x - y_val|| / ||y_val||`` on the other 8 % (drawn with a seed of its own; the
ConvDecoder's stopping rule holds out a further 8 % of its training samples). ESPIRiT maps are
estimated once from all data and shared. Prints a markdown table and writes ``sigpy_brain.png``.
Used for docs/results.md.
"""

import sys
import time

import numpy as np
import torch

from mridip.coils import estimate_maps
from mridip.io import from_arrays
from mridip.operators import make_operator
from mridip.protocols import load_protocol
from mridip.recon.baselines import cg_sense, gridding, l1_wavelet
from mridip.recon.fit import KSpaceLoss, split_holdout
from mridip.recon.pipeline import SliceProblem, run_generator
from mridip.viz import save_frame_grid


def _sigpy_l1(y_train: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """sigpy's own L1-wavelet app on the same training samples and maps (a cross-check)."""
    import sigpy.mri.app as app

    x = app.L1WaveletRecon(y_train.numpy()[0], maps.numpy(), 0.005, max_iter=100, show_pbar=False).run()
    return torch.from_numpy(np.asarray(x))[None].to(torch.complex64)


def main(path: str = "../shared/data/sigpy-brain/cartesian_ksp.npy") -> None:
    raw = from_arrays(np.load(path))  # (C, Ky, Kx) k-space, mask = any coil nonzero
    maps, valid = estimate_maps(raw, "espirit")
    A, y = make_operator(raw, maps), raw.kspace[0]
    train, val = split_holdout(A.sample_mask, 0.08, seed=11)
    A_train = A.restrict(train)
    score = KSpaceLoss(A.restrict(val), y)
    frame = torch.tensor([0])
    runs = {
        "zero-filled": lambda: gridding(A_train, y),
        "CG-SENSE (10 it.)": lambda: cg_sense(A_train, y, iterations=10)[0],
        "L1-wavelet lam=0.001": lambda: l1_wavelet(A_train, y, lam=0.001)[0],
        "L1-wavelet lam=0.003": lambda: l1_wavelet(A_train, y, lam=0.003)[0],
        "L1-wavelet lam=0.01": lambda: l1_wavelet(A_train, y, lam=0.01)[0],
        "sigpy L1WaveletRecon lam=0.005": lambda: _sigpy_l1(y * train[:, None], maps),
        "ConvDecoder (dip-static)": lambda: run_generator(
            SliceProblem(A=A_train, y=y, coil_maps=maps, valid=valid, raw=raw), load_protocol("dip-static"),
            seed=0, progress=False)[0],
    }
    images = {}
    print("| method | held-out relative residual | seconds |\n|---|---|---|")
    for name, run in runs.items():
        t0 = time.perf_counter()
        x = run() * valid
        sec = time.perf_counter() - t0
        images[name] = x
        print(f"| {name} | {float(score(x, frame)) ** 0.5:.4f} | {sec:.1f} |", flush=True)
    save_frame_grid({k: v for k, v in images.items() if "0.001" not in k and "0.003" not in k}, "sigpy_brain.png")


if __name__ == "__main__":
    main(*sys.argv[1:])
