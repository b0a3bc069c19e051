"""BART .cfl/.hdr k-space reader (mridip/io/cfl.py).

Round trips: simulated Cartesian and radial k-space written with write_cfl in BART's
layout must give the same RawData (and the same CG-SENSE image) as the same data through
from_arrays and through the ISMRMRD writer. Where `bart` is installed, files that BART
itself wrote (phantom, traj) and BART's own `fft -i` / `nufft -a` images check the
orientation the reader assumes (BART dim 0 = image x = mridip columns).
"""

import math
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from data_tools.phantom import coil_sensitivities, simulate_cartesian, simulate_radial
from mridip.errors import InputFileError, ShapeError
from mridip.io import detect_format, from_arrays, load_raw
from mridip.io.cfl import read_bart
from mridip.recon.bart import read_cfl, write_cfl

N = 16
C = 3


def _object(T=1, n=N, seed=0):
    """Asymmetric complex test object (T, n, n): an off-centre square and a bar."""
    rng = np.random.default_rng(seed)
    x = np.zeros((T, n, n), dtype=np.complex64)
    for t in range(T):
        x[t, 2:7, 3:12] = 1.0 + 0.3j
        x[t, 9 + t % 2 : 14, 10:13] = 0.6
    return x + 0.02 * rng.standard_normal(x.shape).astype(np.float32)


def _bart_cartesian(k: np.ndarray) -> np.ndarray:
    """mridip (T, C, Ky, Kx) -> BART [Kx, Ky, 1, C, 1, ..., T (dim 10)]."""
    T, Cc, Ky, Kx = k.shape
    b = k.transpose(3, 2, 1, 0)  # (Kx, Ky, C, T)
    return b.reshape(Kx, Ky, 1, Cc, 1, 1, 1, 1, 1, 1, T)


def _bart_radial(k: np.ndarray, traj: np.ndarray, spokes: int, image_shape):
    """mridip (T, C, K), (T, 2, K) radians/voxel -> BART ksp [1, ns, spokes, C, ..., T]
    and traj [3, ns, spokes, ..., T] (k-space pixels)."""
    T, Cc, K = k.shape
    ns = K // spokes
    kb = k.reshape(T, Cc, spokes, ns).transpose(3, 2, 1, 0)  # (ns, spokes, C, T)
    kb = kb.reshape(1, ns, spokes, Cc, 1, 1, 1, 1, 1, 1, T)
    Y, X = image_shape
    tb = np.zeros((3, ns, spokes, T), dtype=np.complex64)
    tr = traj.reshape(T, 2, spokes, ns)
    tb[0] = (tr[:, 1] * X / (2 * math.pi)).transpose(2, 1, 0)  # row 0 = x (kx)
    tb[1] = (tr[:, 0] * Y / (2 * math.pi)).transpose(2, 1, 0)  # row 1 = y (ky)
    return kb, tb.reshape(3, ns, spokes, 1, 1, 1, 1, 1, 1, 1, T)


@pytest.fixture(scope="module")
def maps():
    return coil_sensitivities(C, (N, N), normalize=True).astype(np.complex64)


def test_cartesian_round_trip(tmp_path, maps):
    from data_tools.writers import write_ismrmrd_cartesian
    from mridip.io import read_ismrmrd
    from mridip.recon.pipeline import reconstruct

    sim = simulate_cartesian(_object(T=2), maps, acceleration=2, center_lines=10, snr=50, seed=1)
    write_cfl(tmp_path / "ksp", _bart_cartesian(sim["kspace"]))
    raw = read_bart(tmp_path / "ksp.cfl")
    ref = from_arrays(sim["kspace"], mask=sim["mask"])
    assert raw.format == "bart" and raw.source == str(tmp_path / "ksp.cfl")
    assert tuple(raw.kspace.shape) == (1, 2, C, N, N)
    torch.testing.assert_close(raw.kspace, ref.kspace, rtol=0, atol=0)
    assert torch.equal(raw.mask, ref.mask)
    h5 = write_ismrmrd_cartesian(tmp_path / "k.h5", sim["kspace"], sim["mask"])
    via_h5 = read_ismrmrd(h5)
    # one FFT crop pair in float32 (readout oversampling 2 in the writer): measured 1.3e-7
    assert (via_h5.kspace - raw.kspace).abs().max() <= 1e-5 * raw.kspace.abs().max()
    a = reconstruct(raw, "cg-sense", progress=False, coil_maps=maps).image
    b = reconstruct(ref, "cg-sense", progress=False, coil_maps=maps).image
    c = reconstruct(via_h5, "cg-sense", progress=False, coil_maps=maps).image
    np.testing.assert_array_equal(a, b)  # identical data and arithmetic
    # same problem up to the ~1e-7 k-space difference of the writer's readout crop; 10 CG
    # iterations in float32 on a well-conditioned R = 2 problem keep it near float precision
    # (measured 4.1e-6); a misplaced line or transposed axis gives O(1)
    assert np.linalg.norm(a - c) / np.linalg.norm(a) < 1e-4


def test_radial_round_trip(tmp_path, maps):
    from data_tools.writers import write_ismrmrd_radial
    from mridip.io import read_ismrmrd
    from mridip.recon.pipeline import reconstruct

    spf = 12
    sim = simulate_radial(_object(T=2), maps, spokes_per_frame=spf, samples=2 * N, snr=50, seed=2)
    kb, tb = _bart_radial(sim["kspace"], sim["trajectory"], spf, (N, N))
    write_cfl(tmp_path / "kspr", kb)
    write_cfl(tmp_path / "traj", tb)
    raw = read_bart(tmp_path / "kspr", trajectory=tmp_path / "traj.hdr")
    assert raw.kind == "radial" and raw.header.image_shape == (N, N)
    torch.testing.assert_close(raw.kspace[0], torch.from_numpy(sim["kspace"]), rtol=0, atol=0)
    # radians -> pixels -> radians in float32: a few ulp of pi (measured 2.4e-7)
    torch.testing.assert_close(raw.trajectory[0], torch.from_numpy(sim["trajectory"]), rtol=0, atol=2e-6)
    ref = from_arrays(sim["kspace"], trajectory=sim["trajectory"], image_shape=(N, N))
    h5 = write_ismrmrd_radial(tmp_path / "r.h5", sim["kspace"], sim["trajectory"], spokes_per_frame=spf,
                              image_shape=(N, N))
    via_h5 = read_ismrmrd(h5)
    a = reconstruct(raw, "cg-sense", progress=False, coil_maps=maps).image
    b = reconstruct(ref, "cg-sense", progress=False, coil_maps=maps).image
    c = reconstruct(via_h5, "cg-sense", progress=False, coil_maps=maps).image
    # trajectories agree to ~2e-7 rad (float32 unit conversions): a phase error of
    # ~2e-7 x N/2 ~ 2e-6 per sample, plus float32 NUFFT/CG rounding (measured 9e-6 against
    # from_arrays, 1.4e-5 against the ISMRMRD file); a swapped (ky, kx) gives O(1)
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-4
    assert np.linalg.norm(a - c) / np.linalg.norm(c) < 1e-4


def test_spokes_per_frame_rebins_one_frame(tmp_path, maps):
    sim = simulate_radial(_object(T=1), maps, spokes_per_frame=12, samples=2 * N, snr=float("inf"))
    kb, tb = _bart_radial(sim["kspace"], sim["trajectory"], 12, (N, N))
    write_cfl(tmp_path / "k", kb)
    write_cfl(tmp_path / "t", tb)
    raw = read_bart(tmp_path / "k", trajectory=tmp_path / "t", spokes_per_frame=4)
    assert tuple(raw.kspace.shape) == (1, 3, C, 4 * 2 * N)
    torch.testing.assert_close(raw.kspace[0, 1], torch.from_numpy(sim["kspace"][0, :, 4 * 2 * N : 8 * 2 * N]))
    torch.testing.assert_close(raw.trajectory[0, 2], torch.from_numpy(sim["trajectory"][0, :, 8 * 2 * N :]),
                               rtol=0, atol=2e-6)


def test_missing_halves_are_named(tmp_path):
    write_cfl(tmp_path / "a", np.ones((4, 4, 1, 2), np.complex64))
    os.remove(tmp_path / "a.hdr")
    with pytest.raises(InputFileError, match=r"a\.hdr.* is missing"):
        read_bart(tmp_path / "a.cfl")
    with pytest.raises(InputFileError, match=r"a\.hdr.* is missing"):
        detect_format(tmp_path / "a.cfl")
    write_cfl(tmp_path / "b", np.ones((4, 4, 1, 2), np.complex64))
    os.remove(tmp_path / "b.cfl")
    with pytest.raises(InputFileError, match=r"b\.cfl.* is missing"):
        load_raw(tmp_path / "b")


def test_trajectory_in_wrong_unit(tmp_path, maps):
    sim = simulate_radial(_object(T=1), maps, spokes_per_frame=8, samples=2 * N, snr=float("inf"))
    kb, tb = _bart_radial(sim["kspace"], sim["trajectory"], 8, (N, N))
    write_cfl(tmp_path / "k", kb)
    write_cfl(tmp_path / "cyc", tb / N)  # cycles/pixel
    with pytest.raises(InputFileError, match="cycles/pixel"):
        read_bart(tmp_path / "k", trajectory=tmp_path / "cyc")
    write_cfl(tmp_path / "rad", tb * (2 * math.pi / N))  # radians/voxel
    with pytest.raises(InputFileError, match="radians/voxel"):
        read_bart(tmp_path / "k", trajectory=tmp_path / "rad")
    write_cfl(tmp_path / "ok", tb)
    with pytest.raises(InputFileError, match="beyond"):
        read_bart(tmp_path / "k", trajectory=tmp_path / "ok", image_shape=(8, 8))
    with pytest.raises(ShapeError, match=r"\[3, samples, spokes\]"):
        write_cfl(tmp_path / "short", tb[:, :-1])
        read_bart(tmp_path / "k", trajectory=tmp_path / "short")


def test_detection_and_load_raw(tmp_path, maps):
    sim = simulate_cartesian(_object(), maps, acceleration=2, center_lines=6, snr=float("inf"))
    write_cfl(tmp_path / "ksp", _bart_cartesian(sim["kspace"]))
    for name in ("ksp", "ksp.cfl", "ksp.hdr"):
        assert detect_format(tmp_path / name) == "bart"
        assert load_raw(tmp_path / name).format == "bart"
    with pytest.raises(ShapeError, match="non-Cartesian BART k-space is"):
        load_raw(tmp_path / "ksp", trajectory=tmp_path / "ksp")  # Cartesian layout read as radial
    from mridip.io import describe

    assert "Cartesian k-space" in describe(tmp_path / "ksp")


def test_non_cartesian_layout_without_trajectory(tmp_path):
    write_cfl(tmp_path / "k", np.ones((1, 8, 4, 2), np.complex64))
    with pytest.raises(ShapeError, match="trajectory"):
        read_bart(tmp_path / "k")


def test_cli_recon_with_trajectory(tmp_path, maps):
    from mridip.cli import main
    from mridip.io import load_reconstruction

    sim = simulate_radial(_object(T=1), maps, spokes_per_frame=16, samples=2 * N, snr=50)
    kb, tb = _bart_radial(sim["kspace"], sim["trajectory"], 16, (N, N))
    write_cfl(tmp_path / "ksp", kb)
    write_cfl(tmp_path / "traj", tb)
    out = tmp_path / "out.h5"
    rc = main(["recon", str(tmp_path / "ksp.cfl"), "--trajectory", str(tmp_path / "traj.cfl"),
               "-p", "cg-sense", "-o", str(out), "-q", "--no-preview"])
    assert rc == 0
    assert load_reconstruction(out).image.shape == (1, 1, N, N)


# ------------------------------------------------------------------ BART itself
needs_bart = pytest.mark.skipif(shutil.which("bart") is None, reason="the `bart` command is not installed")


def _bart(*args, cwd):
    subprocess.run(["bart", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _fit_error(x: np.ndarray, y: np.ndarray) -> float:
    """Relative error of x against the best complex multiple of y."""
    s = np.vdot(y.ravel(), x.ravel()) / np.vdot(y.ravel(), y.ravel())
    return float(np.linalg.norm(x - s * y) / np.linalg.norm(x))


@needs_bart
def test_orientation_against_bart_fft(tmp_path):
    """`bart phantom -k` k-space read by read_bart; `bart fft -i 3` of it, transposed
    ([X, Y] -> (Y, X)), is mridip's centred inverse FFT of the RawData."""
    from mridip.fft import ifft2c

    _bart("phantom", "-k", "-x", 32, "-s", 2, "ksp", cwd=tmp_path)
    _bart("fft", "-i", "-u", 3, "ksp", "img", cwd=tmp_path)
    raw = read_bart(tmp_path / "ksp")
    mine = ifft2c(raw.kspace[0, 0]).numpy()  # (C, Y, X)
    theirs = read_cfl(tmp_path / "img")[:, :, 0, :].transpose(2, 1, 0)  # [X, Y, 1, C] -> (C, Y, X)
    assert _fit_error(mine, theirs) < 1e-5
    assert _fit_error(mine, theirs.transpose(0, 2, 1)) > 0.1  # the test can tell a transpose


@needs_bart
def test_orientation_against_bart_nufft(tmp_path):
    """`bart traj -r` + `bart phantom -k -t` read by read_bart; mridip's adjoint NUFFT per
    coil equals `bart nufft -a` transposed, up to BART's scalar normalisation."""
    from mridip.operators.radial import RadialSense

    _bart("traj", "-r", "-x", 64, "-y", 48, "traj", cwd=tmp_path)
    _bart("phantom", "-k", "-s", 2, "-t", "traj", "ksp", cwd=tmp_path)
    _bart("nufft", "-a", "-d", "64:64:1", "traj", "ksp", "img", cwd=tmp_path)
    raw = read_bart(tmp_path / "ksp", trajectory=tmp_path / "traj")
    assert raw.header.image_shape == (64, 64)  # 2 x 32 from the trajectory's extent
    A = RadialSense(torch.ones(1, 64, 64, dtype=torch.complex64), raw.trajectory[0], toeplitz=False)
    mine = np.stack([A.adjoint(raw.kspace[0][:, c : c + 1])[0].numpy() for c in range(raw.num_coils)])
    theirs = read_cfl(tmp_path / "img")[:, :, 0, :].transpose(2, 1, 0)
    # two different gridding NUFFTs (Kaiser-Bessel, 2x grid): agree to ~1e-4
    assert _fit_error(mine, theirs) < 1e-3
    assert _fit_error(mine, theirs.transpose(0, 2, 1)) > 0.1
    assert _fit_error(mine, theirs[:, ::-1, ::-1]) > 0.1
