"""Sampling patterns and density compensation (mridip/trajectories.py)."""

from __future__ import annotations

import math

import pytest
import torch

from mridip.errors import ShapeError
from mridip.trajectories import (
    mask_acceleration,
    pipe_dcf,
    poisson_disc_mask,
    radial_trajectory,
    ramp_dcf,
    vista_mask,
)


def test_ramp_area_normalisation_matches_disc_area():
    """Area weights of fully sampled spokes sum to the disc area pi^3 in cell units,
    i.e. pi/4 of the grid: Y X pi / 4 (within 1%: the discrete rings and centre)."""
    n = 32
    w = ramp_dcf(radial_trajectory(2, 64, 2 * n), (n, n))
    assert w.shape == (2, 64 * 2 * n) and bool((w > 0).all())
    assert torch.allclose(w.sum(dim=1), torch.full((2,), n * n * math.pi / 4), rtol=1e-2)
    # the psf rule sums to Y X exactly
    wp = ramp_dcf(radial_trajectory(2, 64, 2 * n), (n, n), normalization="psf")
    assert torch.allclose(wp.sum(dim=1), torch.full((2,), float(n * n)), rtol=1e-5)


def test_pipe_dcf_grows_with_radius_like_the_ramp():
    """Pipe-Menon weights of radial spokes follow |k| (away from the centre and the edge
    where the kernel overhangs): correlation with the ramp > 0.98."""
    n = 32
    traj = radial_trajectory(1, 50, 2 * n, angle_deg=180.0 / 50)
    w = pipe_dcf(traj, (n, n), iterations=15)[0]
    r = torch.linalg.vector_norm(traj[0], dim=0)
    sel = (r > 0.2) & (r < 2.8)
    c = torch.corrcoef(torch.stack([w[sel], r[sel]]))[0, 1]
    assert float(c) > 0.98


def test_dcf_bad_input():
    with pytest.raises(ShapeError, match="radians/voxel"):
        ramp_dcf(radial_trajectory(1, 3, 8) * 10, (8, 8))
    with pytest.raises(ShapeError, match="normalization"):
        ramp_dcf(radial_trajectory(1, 3, 8), (8, 8), normalization="max")


def test_poisson_disc_mask_acceleration_and_centre():
    m = poisson_disc_mask(2, 32, 24, acceleration=3.0, center=6, seed=1)
    assert m.shape == (2, 32, 24) and m.dtype == torch.bool
    assert m[:, 16 - 3 : 16 + 3, 12 - 3 : 12 + 3].all()
    # r0 is tuned on frame 0 by bisection: within 10% of the target
    assert abs(mask_acceleration(m[0]) - 3.0) / 3.0 < 0.1
    assert not torch.equal(m[0], m[1])  # frames differ
    # denser at the centre than at the edge
    assert m[:, 8:24, 6:18].float().mean() > m[:, :4].float().mean()


def test_vista_mask_exact_lines_per_frame_and_interleaving():
    m = vista_mask(6, 40, 16, acceleration=4.0, center_lines=4)
    lines = m[:, :, 0]
    assert bool((lines.sum(dim=1) == 10).all())  # exactly round(40 / 4) lines per frame
    assert mask_acceleration(m) == pytest.approx(4.0)
    assert bool(m.all(dim=2).eq(m.any(dim=2)).all())  # whole readout lines
    assert bool(lines[:, 18:22].all())  # centre lines every frame
    assert lines.any(dim=0).sum() > 20  # frames interleave: the union covers many lines
