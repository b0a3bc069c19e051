"""Tests of BART interoperability (mridip/recon/bart.py).

The .cfl tests always run. Tests that call the `bart` binary skip when it is not on
PATH (CI installs it: apt-get install -y bart).
"""

import math

import numpy as np
import pytest
import torch

from mridip.errors import DependencyError, InputFileError
from mridip.fft import fft2c
from mridip.metrics import psnr
from mridip.recon import bart as bart_mod
from mridip.recon.bart import bart_available, bart_pics, read_cfl, write_cfl

from measure import noisy

needs_bart = pytest.mark.skipif(not bart_available(), reason="BART (`bart`) is not on PATH: apt-get install -y bart")

T, N, C = 4, 32, 4


def _asymmetric_cine():
    """An 'L'-shaped object off centre plus a moving disc: no flip or transpose maps it to itself."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, N), torch.linspace(-1, 1, N), indexing="ij")
    frames = []
    for t in range(T):
        img = ((yy > -0.6) & (yy < 0.5) & (xx > -0.5) & (xx < -0.3)).float()  # vertical bar, left
        img = img + ((yy > 0.3) & (yy < 0.5) & (xx > -0.5) & (xx < 0.4)).float()  # foot, bottom
        cx = -0.1 + 0.1 * math.cos(2 * math.pi * t / T)
        img = img + 0.7 * (((yy + 0.4) ** 2 + (xx - cx - 0.4) ** 2) < 0.04).float()  # top right disc
        frames.append(img.clamp(max=1.0))
    x = torch.stack(frames).to(torch.complex64) * torch.exp(0.3j * xx)
    maps = []
    for c in range(C):
        a = 2 * math.pi * c / C + 0.3
        mag = torch.exp(-((yy - math.cos(a)) ** 2 + (xx - math.sin(a)) ** 2) / 2.0)
        maps.append(mag * torch.exp(1j * (0.5 * c + 0.3 * yy)))
    maps = torch.stack(maps).to(torch.complex64)
    return x, maps / torch.sqrt((maps.abs() ** 2).sum(0, keepdim=True))


def test_cfl_round_trip_and_column_major(tmp_path):
    a = (np.arange(2 * 3 * 5) + 1j * np.arange(2 * 3 * 5)[::-1]).reshape(2, 3, 5).astype(np.complex64)
    base = tmp_path / "arr"
    write_cfl(base, a)
    hdr = (tmp_path / "arr.hdr").read_text().splitlines()
    assert hdr[0] == "# Dimensions" and hdr[1].split() == ["2", "3", "5"]
    raw = np.fromfile(tmp_path / "arr.cfl", dtype=np.complex64)
    # column-major: the first axis varies fastest
    assert raw[1] == a[1, 0, 0] and raw[2] == a[0, 1, 0] and raw[6] == a[0, 0, 1]
    back = read_cfl(base)
    assert back.dtype == np.complex64 and back.shape == a.shape and np.array_equal(back, a)


def test_cfl_trailing_singletons_and_torch_input(tmp_path):
    t = torch.randn(4, 1, 3, dtype=torch.complex64)
    write_cfl(tmp_path / "t", t.reshape(4, 1, 3, 1, 1))
    assert read_cfl(tmp_path / "t").shape == (4, 1, 3)
    assert np.array_equal(read_cfl(tmp_path / "t"), t.numpy())


def test_read_cfl_truncated_file_is_an_input_error(tmp_path):
    write_cfl(tmp_path / "x", np.ones((4, 4), np.complex64))
    data = (tmp_path / "x.cfl").read_bytes()
    (tmp_path / "x.cfl").write_bytes(data[:-8])
    with pytest.raises(InputFileError, match="truncated"):
        read_cfl(tmp_path / "x")
    with pytest.raises(InputFileError, match="cannot read"):
        read_cfl(tmp_path / "missing")


def test_missing_bart_names_the_install_command(monkeypatch):
    monkeypatch.setattr(bart_mod.shutil, "which", lambda name: None)
    assert not bart_available()
    with pytest.raises(DependencyError, match="apt-get install -y bart"):
        bart_pics(torch.zeros(1, 1, 4, 4, dtype=torch.complex64), torch.ones(1, 4, 4, dtype=torch.complex64))


@needs_bart
def test_bart_orientation_cartesian_fully_sampled():
    """Fully sampled, unregularised: BART returns the object itself, not a flipped / transposed one."""
    x, maps = _asymmetric_cine()
    y = fft2c(x.unsqueeze(1) * maps)  # (T, C, Ky, Kx), mridip's centred orthonormal FFT
    mask = torch.ones(T, N, N, dtype=torch.bool)
    xb = bart_pics(y, maps, mask=mask, regularization=[], iterations=20)
    assert xb.shape == x.shape
    # same (unitary, centred) FFT and sum_c |S_c|^2 = 1: exact up to float32 rounding
    assert torch.allclose(xb, x, atol=1e-4)
    for flipped in (x.flip(-1), x.flip(-2), x.transpose(-1, -2)):
        assert (xb - flipped).abs().max() > 0.5


@needs_bart
def test_temporal_tv_agrees_with_bart_pics():
    """Package temporal TV vs `bart pics -R T:1024:0:lam` on the same undersampled data.

    Lambda mapping: BART solves 0.5||A x - y/w||^2 + lam_bart ||D_t x||_1 on data divided by
    w (-w) and multiplies the image back by w (-S); with w = max|A^H y| that is the package's
    objective with lam_eff = lam * max|A^H y|, i.e. lam_bart = lam (relative). Both use
    circular temporal differences and a unitary centred FFT.
    """
    from mridip.operators.cartesian import CartesianSense
    from mridip.recon.baselines import data_scale, temporal_tv

    x, maps = _asymmetric_cine()
    # interleaved lines: the frames together sample every line, so the temporal-TV minimiser
    # is unique (with lines that no frame samples, the temporal mean there is unconstrained
    # and two converged solvers may land anywhere along that null space)
    mask = torch.zeros(T, N, N, dtype=torch.bool)
    for t in range(T):
        mask[t, t % 4 :: 4, :] = True
        mask[t, N // 2 - 2 : N // 2 + 2, :] = True
    A = CartesianSense(maps, mask)
    y = noisy(A, x, 0.01)
    lam = 0.02
    ours, _ = temporal_tv(A, y, lam=lam)
    theirs = bart_pics(y, maps, mask=mask, regularization=f"T:1024:0:{lam}", iterations=200,
                       data_scale=data_scale(A, y))
    # both near the same minimiser (measured: PSNR of one against the other ~60-69 dB)
    assert abs(psnr(ours, x) - psnr(theirs, x)) < 0.5
    assert psnr(theirs, ours) > 35.0


@needs_bart
@pytest.mark.slow
def test_bart_radial_orientation_and_units():
    """Radial: trajectory units (radians/voxel -> BART pixels) and orientation, via unregularised CG."""
    from mridip.operators.radial import RadialSense
    from mridip.recon.baselines import cg_sense
    from mridip.trajectories import radial_trajectory

    x, maps = _asymmetric_cine()
    traj = radial_trajectory(T, 24, 2 * N)
    A = RadialSense(maps, traj)
    y = A(x)
    ours, _ = cg_sense(A, y, iterations=10)
    theirs = bart_pics(y, maps, trajectory=traj, regularization=[], iterations=10, extra_args=("-l2", "-r", "0"))
    # two NUFFT implementations after 10 CG steps (measured agreement ~55 dB)
    assert psnr(theirs, ours) > 35.0
    assert psnr(theirs, x) > 20.0 and psnr(theirs.flip(-1), x) < psnr(theirs, x) - 3.0


@needs_bart
@pytest.mark.slow
def test_bart_pics_protocol_matches_temporal_tv_on_a_raw_file(tmp_path):
    """The built-in `bart-pics` protocol through reconstruct(): same data, maps, lam as temporal-tv."""
    import h5py

    from data_tools.phantom import simulate_to_files
    from mridip.recon.pipeline import reconstruct

    raw, truth_path = simulate_to_files(tmp_path, kind="radial", size=32, frames=4, coils=3,
                                        spokes_per_frame=32, snr=40.0, seed=3)
    with h5py.File(truth_path) as f:
        truth = f["image"][0]
    theirs = reconstruct(raw, "bart-pics", overrides=["baseline.regularization=\"T:1024:0:0.002\""],
                         progress=False)  # the protocol's 1000 BART iterations
    ours = reconstruct(raw, "temporal-tv", overrides=["baseline.tune=false", "baseline.lam=0.002"],
                       progress=False)
    assert theirs.method == "bart-pics" and theirs.image.shape == ours.image.shape
    # measured here: 31.91 vs 32.03 dB, agreement 50 dB (BART at 100 iterations: 0.74 dB short)
    assert abs(psnr(theirs.image[0], truth) - psnr(ours.image[0], truth)) < 0.5
    assert psnr(theirs.image[0], ours.image[0]) > 40.0
