"""RadialSense against independent references: an explicit non-uniform DFT, sigpy's
NUFFT, CartesianSense on grid points; density compensation on a disk phantom."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mridip.data import Header, RawData
from mridip.errors import DependencyError, ProtocolError, ShapeError
from mridip.operators import CartesianSense, RadialSense, available_backends, default_backend, inner, make_operator
from mridip.operators import nufft as nufft_mod
from mridip.operators.nufft import BACKENDS
from mridip.trajectories import pipe_dcf, radial_trajectory, ramp_dcf

from registry import coil_maps, random_input, rel


def explicit_ndft(traj: torch.Tensor, shape) -> torch.Tensor:
    """Dense matrix (K, Y*X) of y_k = sum_n x_n exp(-i k.(n - n0)) / sqrt(Y X), float64."""
    ny, nx = shape
    yy, xx = torch.meshgrid(torch.arange(ny) - ny // 2, torch.arange(nx) - nx // 2, indexing="ij")
    pos = torch.stack([yy.reshape(-1), xx.reshape(-1)]).double()  # (2, N)
    phase = traj.double().T @ pos  # (K, N)
    return torch.exp(-1j * phase) / math.sqrt(ny * nx)


#: relative error bound against the explicit DFT per backend: torchkbnufft's Kaiser-Bessel
#: NUFFT (6 neighbours, 2x grid) measured 8.5e-4; finufft at eps 1e-5 (complex64) on its
#: 1.25x CPU grid measured 3.4e-5 (float32 rounding; 8e-6 on the 2x grid).
NDFT_TOL = {"torchkbnufft": 1e-2, "finufft": 2e-4}


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_explicit_nonuniform_dft_8x8(backend):
    """8 x 8 image, 2 frames, random off-grid samples, both backends against the dense
    non-uniform DFT matrix (float64): forward and adjoint within the backend's accuracy."""
    g = torch.Generator().manual_seed(0)
    traj = (torch.rand(2, 2, 40, generator=g) * 2 - 1) * math.pi * 0.999
    maps = coil_maps(2, (8, 8))
    A = RadialSense(maps, traj, backend=backend)
    assert A.backend == backend
    tol = NDFT_TOL[backend]
    x = random_input((2, 8, 8), seed=1)
    y = A(x)
    for t in range(2):
        E = explicit_ndft(traj[t], (8, 8))
        for c in range(2):
            ref = (E @ (maps[c] * x[t]).reshape(-1).to(torch.complex128)).to(torch.complex64)
            assert rel(y[t, c], ref) < tol
    # adjoint against the explicit conjugate transpose
    yy = random_input(A.oshape, seed=2)
    E0 = explicit_ndft(traj[0], (8, 8))
    ref = sum(maps[c].conj() * (E0.conj().T @ yy[0, c].to(torch.complex128)).reshape(8, 8) for c in range(2))
    assert rel(A.adjoint(yy)[0], ref.to(torch.complex64)) < tol
    # the Toeplitz normal against the dense normal E^H diag(w) E (Kaiser-Bessel's PSF is
    # exact up to its interpolation error too)
    x1 = x[:1]
    E0m = E0.to(torch.complex128)
    ref_n = sum(
        maps[c].conj() * (E0m.conj().T @ (E0m @ (maps[c] * x1[0]).reshape(-1).to(torch.complex128))).reshape(8, 8)
        for c in range(2)
    )
    assert rel(A.select_frames(torch.tensor([0])).normal(x1)[0], ref_n.to(torch.complex64)) < tol


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
    """Kernels and DCF computed on the GPU equal the CPU ones with the same backend
    (cufinufft / finufft or torchkbnufft; float32 orderings: 1e-4)."""
    traj = radial_trajectory(2, 5, 32)
    maps = coil_maps(2, (16, 16))
    b = default_backend("cuda")
    A, G = RadialSense(maps, traj, backend=b), RadialSense(maps.cuda(), traj.cuda(), backend=b)
    assert G.backend == b
    assert rel(G.kernels.cpu(), A.kernels) < 1e-4
    for db in available_backends("cuda"):
        assert rel(pipe_dcf(traj.cuda(), (16, 16), backend=db).cpu(), pipe_dcf(traj, (16, 16), backend=db)) < 1e-4


def test_backends_agree():
    """finufft and torchkbnufft on the same weighted 2-frame problem: forward, adjoint,
    Toeplitz normal and kernels' action agree to torchkbnufft's accuracy (~1e-3; measured
    forward 6e-4, normal 1.5e-4)."""
    ny, nx = 16, 12
    traj = radial_trajectory(2, 5, 32)
    maps = coil_maps(3, (ny, nx))
    w = torch.rand(2, 160, generator=torch.Generator().manual_seed(4)) + 0.1
    ops = {b: RadialSense(maps, traj, sample_weights=w, backend=b) for b in BACKENDS}
    F, K = ops["finufft"], ops["torchkbnufft"]
    x, y = random_input(F.ishape, seed=11), random_input(F.oshape, seed=12)
    assert rel(F(x), K(x)) < 3e-3
    assert rel(F.adjoint(y), K.adjoint(y)) < 3e-3
    assert rel(F.normal(x), K.normal(x)) < 3e-3
    # the kernels are the same format (real float32 (T, 2Y, 2X), scaling included)
    assert F.kernels.dtype == K.kernels.dtype == torch.float32
    assert tuple(F.kernels.shape) == tuple(K.kernels.shape) == (2, 2 * ny, 2 * nx)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_reaches_coil_maps(backend):
    """Autograd through the NUFFT to the coil maps: for real L, S.grad = 2 dL/d(conj S), so
    the directional derivative of L along D is Re<S.grad, D>. L is quadratic in S, so the
    central difference is exact up to float32 rounding (measured ~1e-4 relative)."""
    traj = radial_trajectory(2, 4, 24)
    maps = coil_maps(2, (8, 8))
    x = random_input((2, 8, 8), seed=13)
    y0 = random_input((2, 2, 96), seed=14)
    D = random_input((2, 8, 8), seed=15)

    def loss(s):
        return 0.5 * torch.linalg.vector_norm(RadialSense(s, traj, backend=backend, toeplitz=False)(x) - y0) ** 2

    s = maps.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(s), s)
    h = 1e-2
    with torch.no_grad():
        fd = (loss(maps + h * D) - loss(maps - h * D)) / (2 * h)
    assert abs(float(inner(grad, D).real) - float(fd)) < 2e-3 * abs(float(fd))


def test_backend_choice_and_errors(monkeypatch):
    assert available_backends("cpu") == list(BACKENDS)  # both installed here
    assert default_backend("cpu") == "finufft"
    traj, maps = radial_trajectory(1, 3, 16), coil_maps(1, (8, 8))
    assert RadialSense(maps, traj).backend == "finufft"
    A = RadialSense(maps, traj, backend="torchkbnufft")
    assert A.backend == "torchkbnufft" and A.select_frames(torch.tensor([0])).backend == "torchkbnufft"
    assert A.restrict(torch.ones(1, 48, dtype=torch.bool)).backend == "torchkbnufft"
    with pytest.raises(ProtocolError, match="unknown NUFFT backend"):
        RadialSense(maps, traj, backend="bart")
    # finufft missing: auto falls back, the named backend says how to install it
    real = nufft_mod._importable
    monkeypatch.setattr(nufft_mod, "_importable", lambda m: m != "finufft" and real(m))
    assert default_backend("cpu") == "torchkbnufft"
    assert RadialSense(maps, traj).backend == "torchkbnufft"
    with pytest.raises(DependencyError, match="pip install finufft"):
        RadialSense(maps, traj, backend="finufft")


def test_finufft_operator_copies_and_select_frames_share_points():
    """Plans are C objects: deep copies start without them; select_frames reuses the
    points and the plan cache (keyed by the original frame)."""
    import copy

    traj, maps = radial_trajectory(3, 3, 16), coil_maps(2, (8, 8))
    A = RadialSense(maps, traj, backend="finufft")
    x = random_input(A.ishape, seed=16)
    y = A(x)
    B = copy.deepcopy(A)
    assert rel(B(x), y) < 1e-6
    F = A.select_frames(torch.tensor([2]))
    assert F._nufft._points[0][0] is A._nufft._points[2][0]
    assert F._nufft._plans is A._nufft._plans  # mini-batches reuse the sorted plans
    assert rel(F(x[2:]), y[2:]) < 1e-6


def test_make_operator_passes_backend_and_cartesian_ignores_it():
    n, t, c = 8, 2, 2
    traj = radial_trajectory(t, 3, 16)
    header = Header(encoded_matrix=(n, n, 1), recon_matrix=(n, n, 1), trajectory="radial")
    raw = RawData(kspace=torch.zeros(1, t, c, 48, dtype=torch.complex64), kind="radial",
                  trajectory=traj[None], header=header)
    maps = coil_maps(c, (n, n))
    for b in BACKENDS:
        assert make_operator(raw, maps, backend=b).backend == b
    craw = RawData(kspace=torch.zeros(1, t, c, n, n, dtype=torch.complex64), kind="cartesian",
                   mask=torch.ones(1, t, n, n, dtype=torch.bool))
    assert isinstance(make_operator(craw, maps, backend="finufft"), CartesianSense)
