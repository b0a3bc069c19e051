"""Preprocessing: prewhitening, coil compression, readout crop, spoke binning."""

import math

import pytest
import torch

from mridip.errors import ShapeError
from mridip.io import from_arrays
from mridip.preprocess import (
    bin_spokes,
    coil_compress,
    crop_readout_oversampling,
    noise_covariance,
    prewhiten,
    whitening_matrix,
)


def _correlated_noise(C, N, gen):
    """Noise with a strongly non-identity covariance Psi = A A^H (seeded)."""
    A = torch.randn(C, C, dtype=torch.complex64, generator=gen) + 2 * torch.eye(C)
    n = torch.randn(C, N, dtype=torch.complex64, generator=gen)
    return A @ n, A @ A.conj().T


def test_whitening_matrix_inverts_covariance():
    gen = torch.Generator().manual_seed(0)
    _, psi = _correlated_noise(5, 10, gen)
    W = whitening_matrix(psi)
    torch.testing.assert_close(W @ psi @ W.conj().T, torch.eye(5, dtype=torch.complex64),
                               atol=1e-4, rtol=0)  # float32 Cholesky + solve of a cond~50 matrix
    with pytest.raises(ShapeError, match="positive definite"):
        whitening_matrix(torch.zeros(3, 3, dtype=torch.complex64))


def test_prewhiten_makes_noise_covariance_identity():
    C, N = 4, 20000
    gen = torch.Generator().manual_seed(1)
    noise, psi = _correlated_noise(C, N, gen)
    # independent noise-only "k-space" with the same covariance as the noise scan
    A = torch.linalg.cholesky(psi)
    kspace = (A @ torch.randn(C, N, dtype=torch.complex64, generator=gen)).reshape(1, 1, C, 100, 200)
    raw = from_arrays(kspace, mask=torch.ones(100, 200, dtype=torch.bool), noise=noise)
    out = prewhiten(raw)
    assert out.history[-1] == "prewhiten" and raw.history == []
    eye = torch.eye(C, dtype=torch.complex64)
    # on the noise scan itself the whitening is exact (up to float32 round-off)
    torch.testing.assert_close(noise_covariance(out.noise), eye, atol=1e-4, rtol=0)
    # on independent samples: each covariance entry is an average of N products of unit
    # variance, standard error 1/sqrt(N), plus the same again from estimating W; 5/sqrt(N)
    # bounds all 16 entries with a wide margin
    cov = noise_covariance(out.kspace[0, 0].reshape(C, -1))
    assert float((cov - eye).abs().max()) < 5 / math.sqrt(N)
    # before whitening the data are far from white
    assert float((noise_covariance(raw.kspace[0, 0].reshape(C, -1)) - eye).abs().max()) > 1


def test_prewhiten_without_noise_is_a_noted_no_op():
    raw = from_arrays(torch.ones(2, 4, 4, dtype=torch.complex64))
    out = prewhiten(raw)
    assert torch.equal(out.kspace, raw.kspace)
    assert out.history == ["prewhiten: skipped, no noise scan"]


def test_coil_compress_energy_and_orthogonality():
    gen = torch.Generator().manual_seed(2)
    C, M = 6, 3000
    # rank-3 signal in 6 coils plus weak noise
    B = torch.randn(C, 3, dtype=torch.complex64, generator=gen)
    x = B @ torch.randn(3, M, dtype=torch.complex64, generator=gen)
    x = x + 0.01 * torch.randn(C, M, dtype=torch.complex64, generator=gen)
    k = x.reshape(C, 1, M).permute(1, 0, 2).reshape(1, C, 30, 100)  # (T, C, Ky, Kx)
    raw = from_arrays(k, mask=torch.ones(30, 100, dtype=torch.bool),
                      noise=torch.randn(C, 50, dtype=torch.complex64, generator=gen))
    out = coil_compress(raw, energy=0.999)
    assert out.num_coils == 3  # the noise floor holds < 0.1 % of the energy
    assert out.noise.shape == (3, 50)
    y = out.kspace[0, 0].reshape(3, -1).to(torch.complex128)
    G = y @ y.conj().T
    off = G - torch.diag(torch.diagonal(G))
    assert float(off.abs().max() / G.diagonal().real.max()) < 1e-4  # uncorrelated virtual coils
    kept = float(out.kspace.abs().pow(2).sum() / raw.kspace.abs().pow(2).sum())
    assert kept > 0.999
    assert f"{kept:.4f}" in out.history[-1]
    # all coils kept: a unitary change of basis, energy exactly preserved
    full = coil_compress(raw, num_coils=C)
    torch.testing.assert_close(full.kspace.abs().pow(2).sum(), raw.kspace.abs().pow(2).sum(), rtol=1e-5, atol=0)
    with pytest.raises(ShapeError, match="exactly one"):
        coil_compress(raw)


def test_crop_readout_oversampling_inverts_zero_padding():
    gen = torch.Generator().manual_seed(3)
    k = torch.randn(2, 3, 10, dtype=torch.complex64, generator=gen)
    img = torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(k, dim=-1), norm="ortho"), dim=-1)
    big = torch.zeros(2, 3, 20, dtype=torch.complex64)
    big[..., 5:15] = img  # centred in the doubled FOV
    k2 = torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(big, dim=-1), norm="ortho"), dim=-1)
    torch.testing.assert_close(crop_readout_oversampling(k2, 2), k, atol=1e-6, rtol=0)
    with pytest.raises(ShapeError, match="whole number"):
        crop_readout_oversampling(k2, 3)


def test_bin_spokes_order_and_drop():
    C, n, ns = 2, 7, 4
    spokes = torch.arange(C * n * ns, dtype=torch.float32).reshape(C, n, ns).to(torch.complex64)
    traj = torch.rand(2, n, ns)
    with pytest.warns(UserWarning, match="last 1 spoke"):
        k, t = bin_spokes(spokes, traj, 3)
    assert k.shape == (2, C, 12) and t.shape == (2, 2, 12)
    # frame 1 = spokes 3, 4, 5 of every coil, spoke-major
    assert torch.equal(k[1, 1], spokes[1, 3:6].reshape(-1))
    assert torch.equal(t[1, 0], traj[0, 3:6].reshape(-1))
    with pytest.raises(ShapeError):
        bin_spokes(spokes, traj, 8)
