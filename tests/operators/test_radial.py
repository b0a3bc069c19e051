"""RadialSense against independent references: an explicit non-uniform DFT, sigpy's
NUFFT, CartesianSense on grid points; density compensation on a disk phantom."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mridip.data import Header, RawData
from mridip.errors import ShapeError
from mridip.operators import CartesianSense, RadialSense, make_operator
from mridip.trajectories import pipe_dcf, radial_trajectory, ramp_dcf

from registry import coil_maps, random_input, rel


def explicit_ndft(traj: torch.Tensor, shape) -> torch.Tensor:
    """Dense matrix (K, Y*X) of y_k = sum_n x_n exp(-i k.(n - n0)) / sqrt(Y X), float64."""
    ny, nx = shape
    yy, xx = torch.meshgrid(torch.arange(ny) - ny // 2, torch.arange(nx) - nx // 2, indexing="ij")
    pos = torch.stack([yy.reshape(-1), xx.reshape(-1)]).double()  # (2, N)
    phase = traj.double().T @ pos  # (K, N)
    return torch.exp(-1j * phase) / math.sqrt(ny * nx)


def test_matches_explicit_nonuniform_dft_8x8():
    """8 x 8 image, 2 frames, random off-grid samples: the Kaiser-Bessel NUFFT (6
    neighbours, 2x grid) approximates the exact sum to ~1e-3; 1e-2 leaves margin."""
    g = torch.Generator().manual_seed(0)
    traj = (torch.rand(2, 2, 40, generator=g) * 2 - 1) * math.pi * 0.999
    maps = coil_maps(2, (8, 8))
    A = RadialSense(maps, traj)
    x = random_input((2, 8, 8), seed=1)
    y = A(x)
    for t in range(2):
        E = explicit_ndft(traj[t], (8, 8))
        for c in range(2):
            ref = (E @ (maps[c] * x[t]).reshape(-1).to(torch.complex128)).to(torch.complex64)
            assert rel(y[t, c], ref) < 1e-2
    # adjoint against the explicit conjugate transpose
    yy = random_input(A.oshape, seed=2)
    E0 = explicit_ndft(traj[0], (8, 8))
    ref = sum(maps[c].conj() * (E0.conj().T @ yy[0, c].to(torch.complex128)).reshape(8, 8) for c in range(2))
    assert rel(A.adjoint(yy)[0], ref.to(torch.complex64)) < 1e-2


def test_on_grid_samples_equal_cartesian():
    """omega = 2 pi (j - N//2) / N hits grid point j: equal to the centred orthonormal FFT
    up to the NUFFT's interpolation error (~1e-4 on grid points)."""
    ny, nx = 8, 10
    jy, jx = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
    om = torch.stack([2 * math.pi * (jy - ny // 2) / ny, 2 * math.pi * (jx - nx // 2) / nx]).reshape(2, -1)
    maps = coil_maps(3, (ny, nx))
    R = RadialSense(maps, om[None].float())
    Cart = CartesianSense(maps, torch.ones(1, ny, nx, dtype=torch.bool))
    x = random_input((1, ny, nx), seed=3)
    assert rel(R(x).reshape(1, 3, ny, nx), Cart(x)) < 1e-3
    # fully sampled grid: the Toeplitz normal is the identity-weighted sum |S|^2 x
    assert rel(R.normal(x), Cart.normal(x)) < 1e-3


def test_matches_sigpy_nufft():
    """sigpy coordinates are pixels, k * N / (2 pi), with the last axis ordered like the
    image axes (ky, kx); sigpy's NUFFT is orthonormal. Both are Kaiser-Bessel
    approximations (sigpy with width 6, 2x grid here), so they agree to ~1e-3."""
    sp = pytest.importorskip("sigpy")
    ny, nx = 16, 12
    traj = radial_trajectory(2, 5, 32)  # (T, 2, K) radians/voxel
    maps = coil_maps(2, (ny, nx))
    x = random_input((2, ny, nx), seed=4)
    y = RadialSense(maps, traj)(x)
    scale = torch.tensor([ny, nx], dtype=torch.float64).reshape(2, 1) / (2 * math.pi)
    for t in range(2):
        coord = (traj[t].double() * scale).T.numpy()  # (K, 2) in pixels, (ky, kx)
        for c in range(2):
            img = (maps[c] * x[t]).numpy().astype(np.complex128)
            ref = sp.nufft(img, coord, oversamp=2.0, width=6)
            assert rel(y[t, c], torch.from_numpy(ref).to(torch.complex64)) < 5e-3


def test_weights_scale_samples_and_sample_mask():
    traj = radial_trajectory(2, 3, 16)
    maps = coil_maps(2, (8, 8))
    w = torch.rand(2, 48) + 0.5
    w[0, :5] = 0
    A, B = RadialSense(maps, traj, sample_weights=w), RadialSense(maps, traj)
    x = random_input((2, 8, 8), seed=5)
    assert rel(A(x), B(x) * w.sqrt()[:, None]) < 1e-6
    assert A.sample_mask.sum() == 2 * 48 - 5
    # restrict folds the mask into the weights and recomputes the kernels
    m = torch.rand(2, 48) > 0.5
    R = A.restrict(m)
    assert torch.equal(R.weights, A.weights * m)
    assert rel(R.normal(x), R.adjoint(R(x))) < 1e-3
    # select_frames shares the kernels (values), recomputes nothing
    F = A.select_frames(torch.tensor([1]))
    assert torch.equal(F.kernels[0], A.kernels[1]) and F.coil_maps.data_ptr() == A.coil_maps.data_ptr()


def test_bad_inputs_raise_clear_errors():
    maps = coil_maps(2, (8, 8))
    traj = radial_trajectory(2, 3, 16)
    with pytest.raises(ShapeError, match="radians/voxel"):
        RadialSense(maps, traj * 4)  # e.g. a trajectory left in pixels
    with pytest.raises(ShapeError, match="sample_weights"):
        RadialSense(maps, traj, sample_weights=torch.ones(3, 48))
    with pytest.raises(ShapeError, match=">= 0"):
        RadialSense(maps, traj, sample_weights=-torch.ones(2, 48))
    with pytest.raises(ShapeError, match="RadialSense.restrict"):
        RadialSense(maps, traj).restrict(torch.ones(2, 47, dtype=torch.bool))


def disk(n: int, radius: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    return ((yy**2 + xx**2) <= radius**2).to(torch.complex64)


@pytest.mark.parametrize("dcf", ["ramp", "pipe"])
def test_dcf_gridding_returns_disk(dcf):
    """F^H (w * F x) of a uniform disk (radius N/4), fully sampled radial (pi/2 N spokes):
    inside the disk, away from the Gibbs ringing at its edge, the gridding reconstruction
    is the disk itself within ~10% (ringing and the corners of k-space missing)."""
    n = 32
    traj = radial_trajectory(1, 52, 2 * n, angle_deg=180.0 / 52)  # uniform angles
    w = ramp_dcf(traj, (n, n)) if dcf == "ramp" else pipe_dcf(traj, (n, n), iterations=20)
    ones = torch.ones(1, n, n, dtype=torch.complex64)
    A = RadialSense(ones, traj, toeplitz=False)
    x = disk(n, n / 4)[None]
    recon = A.adjoint(A(x) * w[:, None])[0]
    inner_region = disk(n, n / 4 - 3).real.bool()
    err = (recon[inner_region] - 1).abs()
    assert float(err.mean()) < 0.1
    outside = ~disk(n, n / 4 + 3).real.bool()
    assert float(recon[outside].abs().mean()) < 0.1


def test_dcf_psf_normalization_unit_impulse():
    """normalization="psf": the DC-compensated adjoint of a unit impulse's k-space has
    unit height at the centre (exact up to float32 sums)."""
    n = 16
    traj = radial_trajectory(2, 21, 2 * n)
    ones = torch.ones(1, n, n, dtype=torch.complex64)
    A = RadialSense(ones, traj, toeplitz=False)
    delta = torch.zeros(2, n, n, dtype=torch.complex64)
    delta[:, n // 2, n // 2] = 1
    for fn in (ramp_dcf, lambda t, s, **k: pipe_dcf(t, s, iterations=10, **k)):
        w = fn(traj, (n, n), normalization="psf")
        psf = A.adjoint(A(delta) * w[:, None])
        assert torch.allclose(psf[:, n // 2, n // 2].real, torch.ones(2), atol=1e-3)


def test_make_operator_radial_and_cartesian():
    n, t, c = 8, 2, 2
    traj = radial_trajectory(t, 3, 16)
    header = Header(encoded_matrix=(n, n, 1), recon_matrix=(n, n, 1), trajectory="radial")
    raw = RawData(kspace=torch.zeros(1, t, c, 48, dtype=torch.complex64), kind="radial",
                  trajectory=traj[None], header=header)
    maps = coil_maps(c, (n, n))
    A = make_operator(raw, maps, sample_weights=torch.ones(t, 48), coil_batch=1)
    assert isinstance(A, RadialSense) and A.oshape == (t, c, 48) and A.coil_batch == 1
    mask = torch.rand(1, t, n, n) > 0.5
    craw = RawData(kspace=torch.zeros(1, t, c, n, n, dtype=torch.complex64), kind="cartesian", mask=mask)
    B = make_operator(craw, maps)
    assert isinstance(B, CartesianSense) and torch.equal(B.sample_mask, mask[0])
    with pytest.raises(ShapeError, match="coils"):
        make_operator(craw, coil_maps(3, (n, n)))


@pytest.mark.cuda
def test_cuda_kernels_and_dcf_match_cpu():
    """Kernels and DCF computed on the GPU equal the CPU ones (float32 orderings: 1e-4)."""
    traj = radial_trajectory(2, 5, 32)
    maps = coil_maps(2, (16, 16))
    A, G = RadialSense(maps, traj), RadialSense(maps.cuda(), traj.cuda())
    assert rel(G.kernels.cpu(), A.kernels) < 1e-4
    assert rel(pipe_dcf(traj.cuda(), (16, 16)).cpu(), pipe_dcf(traj, (16, 16))) < 1e-4
