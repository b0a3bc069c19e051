"""Sampling patterns: radial golden-angle trajectories, Cartesian masks, unit conversion.

Units inside the package: radians/voxel in [-pi, pi) (torchkbnufft's). Files use
cycles/pixel in [-0.5, 0.5) (ISMRMRD convention): convert with :func:`cycles_to_radians`
and :func:`radians_to_cycles`, only in :mod:`mridip.io` and :mod:`data_tools`.
Angles are converted from degrees with :func:`degrees_to_radians`, never by hand.

Trajectory layout: ``(T, 2, K)``, component 0 = ky (image rows, Y), component 1 = kx
(image columns, X); ``K = spokes_per_frame * samples``, spoke-major (all samples of
spoke 0, then spoke 1, ...).
"""

from __future__ import annotations

import math

import numpy as np
import torch

GOLDEN_RATIO = (1.0 + math.sqrt(5.0)) / 2.0
#: Golden angle for full spokes (Winkelmann et al., IEEE TMI 2007): 180 deg / golden ratio.
GOLDEN_ANGLE_DEG = 180.0 / GOLDEN_RATIO  # 111.2461...


def degrees_to_radians(deg: float | np.ndarray | torch.Tensor):
    """Angle in degrees -> radians (the one conversion helper for angles)."""
    return deg * (math.pi / 180.0)


def cycles_to_radians(traj):
    """k-space positions in cycles/pixel ([-0.5, 0.5)) -> radians/voxel ([-pi, pi))."""
    return traj * (2.0 * math.pi)


def radians_to_cycles(traj):
    """k-space positions in radians/voxel ([-pi, pi)) -> cycles/pixel ([-0.5, 0.5))."""
    return traj / (2.0 * math.pi)


def tiny_golden_angle_deg(n: int) -> float:
    """The n-th tiny golden angle in degrees, 180 / (golden ratio + n - 1).

    n = 1 is the golden angle 111.246 deg; n = 2, 3, 5, 7 give 68.75, 49.75, 32.04,
    23.63 deg (Wundrak et al., MRM 2016).
    """
    if n < 1:
        raise ValueError(f"tiny golden angle index must be >= 1, got {n}")
    return 180.0 / (GOLDEN_RATIO + n - 1)


def radial_spoke_angles(num_spokes: int, angle_deg: float = GOLDEN_ANGLE_DEG, first: int = 0) -> np.ndarray:
    """Angles (radians) of ``num_spokes`` consecutive spokes ``first, first+1, ...``.

    Spoke j has angle ``j * angle_deg`` (mod 360 deg): continuous over frames, so frame t
    of a golden-angle acquisition holds spokes ``t*spf ... (t+1)*spf - 1``.
    """
    j = np.arange(first, first + num_spokes, dtype=np.float64)
    return np.mod(degrees_to_radians(j * angle_deg), 2.0 * math.pi)


def readout_positions(samples: int) -> np.ndarray:
    """Radial positions (radians/voxel) of ``samples`` readout points of a full spoke.

    ``r_i = (i - samples/2) * 2 pi / samples`` for i = 0 .. samples-1, in [-pi, pi). With
    ``samples = 2 N`` for an N-pixel image this is the usual twofold readout oversampling.
    """
    return (np.arange(samples, dtype=np.float64) - samples / 2.0) * (2.0 * math.pi / samples)


def radial_trajectory(
    frames: int,
    spokes_per_frame: int,
    samples: int,
    angle_deg: float = GOLDEN_ANGLE_DEG,
    first_spoke: int = 0,
) -> torch.Tensor:
    """Radial trajectory of full spokes, continuous over frames.

    Parameters
    ----------
    frames, spokes_per_frame, samples : int
        T, spokes per frame, readout samples per spoke.
    angle_deg : float
        Angle increment between consecutive spokes in degrees (golden angle by default;
        see :func:`tiny_golden_angle_deg`).
    first_spoke : int
        Index of the first spoke (to continue a sequence).

    Returns
    -------
    torch.Tensor
        float32 ``(T, 2, K)`` in radians/voxel, K = spokes_per_frame * samples,
        component 0 = ky, component 1 = kx.
    """
    theta = radial_spoke_angles(frames * spokes_per_frame, angle_deg, first_spoke)
    r = readout_positions(samples)
    theta = theta.reshape(frames, spokes_per_frame, 1)
    ky = r[None, None, :] * np.sin(theta)
    kx = r[None, None, :] * np.cos(theta)
    traj = np.stack([ky.reshape(frames, -1), kx.reshape(frames, -1)], axis=1)
    # r in [-pi, pi) but rotation can land a point at +pi exactly; wrap into [-pi, pi)
    traj = np.where(traj >= math.pi, traj - 2.0 * math.pi, traj)
    return torch.from_numpy(traj.astype(np.float32))


def variable_density_lines(
    frames: int,
    lines: int,
    readout: int,
    acceleration: float,
    center_lines: int = 8,
    seed: int = 0,
    density_power: float = 2.0,
) -> torch.Tensor:
    """Per-frame random variable-density phase-encode lines with a fully sampled centre.

    Each frame samples ``round(lines / acceleration)`` lines: the ``center_lines`` central
    ones and the rest drawn without replacement with probability proportional to
    ``(1 - |ky|/ky_max) ** density_power``, independently per frame (so frames
    complement each other, as cine undersampling schemes do).

    Parameters
    ----------
    frames, lines, readout : int
        T, Ky, Kx.
    acceleration : float
        R = (all lines) / (sampled lines) per frame, >= 1.
    center_lines : int
        Number of fully sampled central lines (the ky = 0 line is at index lines // 2).
    seed : int
        Seed of the random draw.

    Returns
    -------
    torch.Tensor
        bool ``(T, Ky, Kx)``; the exact acceleration is ``mask_acceleration(mask)``.
    """
    if acceleration < 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    n_lines = max(1, int(round(lines / acceleration)))
    center_lines = min(center_lines, n_lines)
    rng = np.random.default_rng(seed)
    c0 = lines // 2 - center_lines // 2
    center = np.arange(c0, c0 + center_lines)
    ky = np.abs(np.arange(lines) - lines // 2) / max(lines // 2, 1)
    prob = np.clip(1.0 - ky, 1e-3, None) ** density_power
    prob[center] = 0.0
    mask = np.zeros((frames, lines, readout), dtype=bool)
    n_rand = n_lines - center_lines
    for t in range(frames):
        mask[t, center, :] = True
        if n_rand > 0:
            pick = rng.choice(lines, size=n_rand, replace=False, p=prob / prob.sum())
            mask[t, pick, :] = True
    return torch.from_numpy(mask)


def mask_acceleration(mask: torch.Tensor) -> float:
    """Exact acceleration of a Cartesian mask ``(..., Ky, Kx)``: all samples / sampled samples."""
    m = torch.as_tensor(mask).bool()
    sampled = int(m.sum())
    if sampled == 0:
        return math.inf
    return float(m.numel()) / sampled
