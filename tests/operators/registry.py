"""One registry of every operator: the shared tests in test_registry.py run on each entry.

A new operator (or variant) is tested by adding one line to ``REGISTRY``: a name and a
factory ``f(device) -> LinearOperator``. Sizes are tiny so the whole set runs in seconds.
Every radial variant is registered once per NUFFT backend (``radial...[finufft]``,
``radial...[torchkbnufft]``), so each adjoint, normal and gradient test runs on both.
"""

from __future__ import annotations

import math

import torch

from mridip.operators import CartesianSense, RadialSense
from mridip.operators.motion import MotionSense
from mridip.operators.nufft import BACKENDS
from mridip.trajectories import radial_trajectory, variable_density_lines

T, C, Y, X = 3, 4, 16, 12  # non-square on purpose: catches swapped (ky, kx) axes


def coil_maps(coils: int = C, shape=(Y, X), device="cpu", seed: int = 1) -> torch.Tensor:
    """Smooth random complex coil maps ``(C, Y, X)`` (seeded, device-independent values)."""
    g = torch.Generator().manual_seed(seed)
    ny, nx = shape
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, ny), torch.linspace(-1, 1, nx), indexing="ij")
    maps = []
    for _ in range(coils):
        a, b, c, d = torch.randn(4, generator=g)
        mag = torch.exp(-((yy - 0.6 * a) ** 2 + (xx - 0.6 * b) ** 2))
        maps.append(mag * torch.exp(1j * (c * yy + d * xx)))
    return torch.stack(maps).to(torch.complex64).to(device)


def trajectory(frames: int = T, spokes: int = 5, samples: int = 24) -> torch.Tensor:
    return radial_trajectory(frames, spokes, samples)  # (T, 2, K)


def weights(frames: int = T, k: int = 5 * 24, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(frames, k, generator=g) + 0.1  # (T, K), strictly positive


def holdout(shape, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) > 0.3


def _cart(device):
    return CartesianSense(coil_maps(device=device), variable_density_lines(T, Y, X, 2.0, center_lines=4))


def _radial(device, backend="auto", **kw):
    return RadialSense(coil_maps(device=device), trajectory().to(device), backend=backend, **kw)


def _radial_variants(b: str) -> dict:
    return {
        f"radial[{b}]": lambda d: _radial(d, b),
        f"radial_weighted[{b}]": lambda d: _radial(d, b, sample_weights=weights().to(d)),
        f"radial_coil_batch[{b}]": lambda d: _radial(d, b, sample_weights=weights().to(d), coil_batch=3),
        f"radial_no_toeplitz[{b}]": lambda d: _radial(d, b, toeplitz=False),
        f"radial_restricted[{b}]": lambda d: _radial(d, b, sample_weights=weights().to(d)).restrict(holdout((T, 120)).to(d)),
        f"radial_frames[{b}]": lambda d: _radial(d, b, sample_weights=weights().to(d), coil_batch=3).select_frames(torch.tensor([2, 1])),
    }


def displacement(frames: int = T, shape=(Y, X), seed: int = 4) -> torch.Tensor:
    """Smooth random displacement ``(T, 2, Y, X)`` in pixels, up to ~2 px, with out-of-image pulls."""
    g = torch.Generator().manual_seed(seed)
    coarse = 2.0 * torch.randn(frames, 2, 3, 3, generator=g)
    return torch.nn.functional.interpolate(coarse, size=shape, mode="bilinear", align_corners=True)


REGISTRY = {
    "cartesian": _cart,
    "motion_cartesian": lambda d: MotionSense(_cart(d), displacement().to(d)),
    "motion_radial": lambda d: MotionSense(_radial(d, sample_weights=weights().to(d)), displacement().to(d)),
    "cartesian_restricted": lambda d: _cart(d).restrict(holdout((T, Y, X)).to(d)),
    "cartesian_frames": lambda d: _cart(d).select_frames(torch.tensor([2, 0])),
}
for _b in BACKENDS:
    REGISTRY.update(_radial_variants(_b))


def random_input(shape, device="cpu", seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, dtype=torch.complex64, generator=g).to(device)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


__all__ = ["REGISTRY", "coil_maps", "trajectory", "weights", "random_input", "rel", "math"]
