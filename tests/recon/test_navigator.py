"""Tests of mridip/recon/navigator.py: navigator regions, alias-free low-resolution frames,
and the frame graph they give."""

import math

import numpy as np
import pytest
import torch

from mridip.errors import ShapeError
from mridip.fft import fft2c, ifft2c
from mridip.models.gip import knn_graph, temporal_graph
from mridip.operators import CartesianSense
from mridip.operators.radial import RadialSense
from mridip.recon.navigator import (
    navigator_descriptors,
    navigator_images,
    navigator_mask,
    radial_nyquist_radius,
)
from mridip.trajectories import radial_trajectory, readout_positions, variable_density_lines

from measure import noisy

T, N = 6, 24


def _two_phase_cine(n=N, frames=T):
    """Even frames: a large bright disc (diastole); odd frames: a smaller one (systole), in a
    body of strong fixed random texture. The texture's k-space is broad, so each frame's
    own undersampling aliases it differently: zero-filled frames differ by their aliasing
    more than by the motion."""
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32),
                            indexing="ij")
    texture = 2.0 * torch.rand(n, n, generator=torch.Generator().manual_seed(5))
    body = ((yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (0.4 * n) ** 2).float() * (0.4 + texture)
    out = []
    for t in range(frames):
        r = (0.2 if t % 2 == 0 else 0.14) * n
        out.append(body + 0.6 * ((yy - n / 2) ** 2 + (xx - n / 2) ** 2 < r * r).float())
    return torch.stack(out).to(torch.complex64)


def _maps(c, n=N):
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32),
                            indexing="ij")
    maps = torch.stack([torch.exp(-((yy - n * j / max(c - 1, 1)) ** 2 + (xx - n / 2) ** 2) / n**2)
                        * torch.exp(1j * 0.1 * j * xx) for j in range(c)]).to(torch.complex64)
    return maps / torch.sqrt((maps.abs() ** 2).sum(0))


# ------------------------------------------------------------------ regions
def test_cartesian_region_is_the_centre_block_every_frame_measured():
    mask = variable_density_lines(T, N, N, 4.0, center_lines=4, seed=0)
    A = CartesianSense(_maps(2), mask)
    region = navigator_mask(A)
    rows = torch.nonzero(region[0].any(1)).reshape(-1).tolist()
    assert rows == [N // 2 - 2, N // 2 - 1, N // 2, N // 2 + 1]  # the 4 centre lines, ky = 0 at N // 2
    assert bool(region[:, rows].all())  # the full readout of each of them, in every frame
    assert bool((region <= mask).all())  # only measured samples
    assert bool((region == region[:1]).all())  # the same region in every frame


def test_cartesian_without_a_common_centre_is_refused():
    mask = torch.zeros(T, N, N, dtype=torch.bool)
    for t in range(T):  # every frame its own lines, none shared
        mask[t, t::T] = True
    with pytest.raises(ShapeError, match="stages.graph"):
        navigator_mask(CartesianSense(_maps(2), mask))


def test_radial_nyquist_radius_of_uniform_full_and_centre_out_spokes():
    spokes, samples = 8, 2 * N
    # full spokes, uniform over 180 degrees in every frame: largest gap pi / S, so the
    # arc r * pi / S equals the Nyquist spacing 2 pi / N at r = 2 S / N
    full = radial_trajectory(T, spokes, samples, angle_deg=180.0 / spokes)
    ones = torch.ones(T, full.shape[-1], dtype=torch.bool)
    assert radial_nyquist_radius(full, ones, N) == pytest.approx(2 * spokes / N, rel=spokes * 1e-3 / math.pi)
    # centre-out spokes uniform over 360 degrees: gap 2 pi / S, half the radius
    r = torch.as_tensor(readout_positions(samples), dtype=torch.float32)
    r = r[r >= 0]
    theta = 2 * math.pi * torch.arange(spokes, dtype=torch.float32) / spokes
    half = torch.stack([(r[None] * torch.sin(theta)[:, None]).reshape(-1),
                        (r[None] * torch.cos(theta)[:, None]).reshape(-1)])
    half = half.unsqueeze(0).expand(T, 2, -1).contiguous()
    ones = torch.ones(T, half.shape[-1], dtype=torch.bool)
    assert radial_nyquist_radius(half, ones, N) == pytest.approx(spokes / N, rel=spokes * 1e-3 / math.pi)


def test_radial_region_and_too_few_spokes():
    traj = radial_trajectory(T, 13, 2 * N)
    A = RadialSense(_maps(2), traj)
    region = navigator_mask(A)
    radius = radial_nyquist_radius(traj, A.sample_mask, N)
    kr = torch.linalg.vector_norm(traj, dim=1)
    assert torch.equal(region, kr <= radius) and bool(region.any(1).all())
    with pytest.raises(ShapeError, match="too wide"):
        navigator_mask(RadialSense(_maps(2), radial_trajectory(T, 2, 2 * N)))


# ---------------------------------------------------------------- the images
def test_navigator_frame_is_the_alias_free_low_pass_of_the_frame():
    """One uniform coil: A restricted to the region is a projector in k-space, so the
    minimum-norm solution (CG from zero) is exactly the frame's k-space inside the region."""
    x = _two_phase_cine()
    mask = variable_density_lines(T, N, N, 4.0, center_lines=4, seed=0)
    A = CartesianSense(torch.ones(1, N, N, dtype=torch.complex64), mask)
    y = A(x)
    nav = navigator_images(A, y, iterations=3)
    region = navigator_mask(A)
    expected = ifft2c(fft2c(x) * region)
    torch.testing.assert_close(nav, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["cartesian", "radial"])
def test_navigator_graph_joins_frames_of_the_same_phase(kind):
    """The planted structure: even frames look alike, odd frames look alike. The navigator
    graph links each frame to frames of its phase; the temporal graph cannot."""
    x = _two_phase_cine()
    maps = _maps(4)
    if kind == "cartesian":
        A = CartesianSense(maps, variable_density_lines(T, N, N, 4.0, center_lines=4, seed=0))
    else:
        A = RadialSense(maps, radial_trajectory(T, 13, 2 * N))
    y = noisy(A, x, 0.005)
    k = 3  # self + the 2 other frames of the same phase
    graph = knn_graph(navigator_descriptors(navigator_images(A, y)), k)
    parity = graph % 2
    assert bool((parity == parity[:, :1]).all()), graph.tolist()
    temporal = temporal_graph(T, k) % 2
    assert not bool((temporal == temporal[:, :1]).all())
    if kind == "cartesian":  # the zero-filled frames' graph follows the aliasing instead
        zf = knn_graph(navigator_descriptors(A.adjoint(y)), k) % 2
        assert not bool((zf == zf[:, :1]).all())


def test_descriptors_remove_the_temporal_mean_and_phase():
    x = _two_phase_cine()
    d = navigator_descriptors(x * torch.exp(1j * torch.linspace(0, 3, T))[:, None, None])
    assert d.shape == (T, N * N)
    torch.testing.assert_close(d.sum(0), torch.zeros(N * N), rtol=0, atol=1e-5)
    torch.testing.assert_close(d, navigator_descriptors(x), rtol=0, atol=1e-6)


def test_wrong_shapes_are_refused():
    mask = variable_density_lines(T, N, N, 4.0, center_lines=4, seed=0)
    A = CartesianSense(_maps(2), mask)
    with pytest.raises(ShapeError, match="A.oshape"):
        navigator_images(A, torch.zeros(T, 2, N, N - 1, dtype=torch.complex64))

    class Other:
        pass

    with pytest.raises(ShapeError, match="no navigator region"):
        navigator_mask(Other())
    assert np.isfinite(float(navigator_images(A, A(_two_phase_cine())).abs().sum()))
