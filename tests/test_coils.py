"""Tests of mridip/coils.py: ESPIRiT and Walsh maps, normalisation, estimation from RawData.

References: sigpy's own ``EspiritCalib`` and ``SenseRecon`` on the real 8-coil brain
k-space (../shared/data/sigpy-brain), and simulated data with known smooth maps.
Maps are compared through ``|<S_a(r), S_b(r)>|`` per pixel (both unit norm over coils):
it is 1 exactly when the projections ``S S^H`` agree, whatever the per-pixel phase, and
``||S_a S_a^H - S_b S_b^H||_F = sqrt(2 (1 - |<S_a, S_b>|^2))``.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mridip.coils import espirit, estimate_maps, normalise_maps, walsh
from mridip.data import Header, RawData
from mridip.errors import ProtocolError, ShapeError
from mridip.fft import fft2c, ifft2c
from mridip.trajectories import radial_trajectory, variable_density_lines


# --------------------------------------------------------------------------- helpers
def _overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel ``|<a, b>|`` over coils of two map sets ``(C, Y, X)`` -> ``(Y, X)``."""
    return (a.conj() * b).sum(0).abs()


def _erode(mask: torch.Tensor, r: int) -> torch.Tensor:
    """Binary erosion of a ``(Y, X)`` bool mask by a ``(2r+1)^2`` square."""
    if r == 0:
        return mask
    return (-F.max_pool2d(-mask.float()[None, None], 2 * r + 1, 1, r))[0, 0] > 0.5


def _simulate(n: int = 64, coils: int = 6, radius: float = 26.0):
    """Disk object with texture and an inner ellipse; loop coils with Gaussian profiles.

    Returns object ``(Y, X)``, unit-norm maps ``(C, Y, X)`` and the object mask ``(Y, X)``.
    Coil centres sit 40 px from the centre, outside the 26-px disk; sigma = 24 px makes
    the profiles smooth (k-space width ~ n / (2 pi sigma) < 1 sample) and each map phase
    is a coil offset plus a gentle ramp (0.03 rad/px).
    """
    yy, xx = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    yy, xx = yy.float(), xx.float()
    inside = torch.sqrt(yy**2 + xx**2) <= radius
    obj = inside.float() * (1.0 + 0.3 * torch.cos(xx / 6.0) * torch.sin(yy / 9.0))
    obj = obj - 0.5 * ((((yy - 5) / 10) ** 2 + ((xx + 4) / 6) ** 2) <= 1).float()
    obj = obj.to(torch.complex64) * torch.exp(1j * 0.02 * xx)
    maps = []
    for c in range(coils):
        th = 2 * math.pi * c / coils
        cy, cx = 40 * math.sin(th), 40 * math.cos(th)
        mag = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 24.0**2))
        phase = th + 0.03 * (yy * math.cos(th) - xx * math.sin(th))
        maps.append(mag * torch.exp(1j * phase))
    maps = torch.stack(maps).to(torch.complex64)
    maps = maps / maps.abs().pow(2).sum(0).sqrt()
    return obj.to(torch.complex64), maps, inside


@pytest.fixture
def brain(sigpy_brain_path):
    """Real 8-coil brain k-space ``(C, Ky, Kx)`` as numpy (sigpy's input) and torch."""
    k = np.load(sigpy_brain_path)
    assert k.shape == (8, 230, 180) and k.dtype == np.complex64
    return k, torch.from_numpy(k)


def _cartesian_raw(k: torch.Tensor, mask: torch.Tensor) -> RawData:
    """One-slice Cartesian RawData from k-space ``(T, C, Ky, Kx)`` and mask ``(T, Ky, Kx)``."""
    return RawData(kspace=(k * mask[:, None])[None], kind="cartesian", mask=mask[None])


# --------------------------------------------------------------------------- real data
def test_brain_is_centred_kspace_in_both_axes(brain):
    """The sample is k-space in both axes with its centre at (Ky//2, Kx//2) (our convention)."""
    _, k = brain
    energy = k.abs().pow(2).sum(0)  # (Ky, Kx)
    peak = np.unravel_index(int(energy.argmax()), tuple(energy.shape))
    # the DC peak within 2 samples of the centre in each axis (an object off the FOV
    # centre shifts it by a linear phase only, never the peak position by more than ~1)
    assert abs(peak[0] - 115) <= 2 and abs(peak[1] - 90) <= 2
    # a centred inverse FFT gives a compact image: more than 90 % of the energy of the
    # zero-filled RSS image lies inside the central 80 % of the field of view
    rss2 = ifft2c(k).abs().pow(2).sum(0)
    centre = rss2[23:207, 18:162].sum() / rss2.sum()
    assert centre > 0.9


def test_espirit_matches_sigpy_on_brain(brain):
    """Package ESPIRiT == sigpy EspiritCalib on the same array (same parameters)."""
    sigpy_mri = pytest.importorskip("sigpy.mri")
    k_np, k = brain
    maps, valid = espirit(k, calib_width=24, kernel_width=6, threshold=0.02, crop=0.95)
    ref = torch.from_numpy(sigpy_mri.app.EspiritCalib(k_np, show_pbar=False).run())
    ref_valid = ref.abs().pow(2).sum(0) > 0
    assert maps.shape == (8, 230, 180) and maps.dtype == torch.complex64
    # same crop decision except where the eigenvalue sits within power-iteration error of
    # 0.95 (measured: identical masks)
    assert (valid == ref_valid).float().mean() > 0.999
    both = valid & ref_valid
    assert both.sum() > 20000  # the head covers ~30k of 41k pixels
    # Same operator and same eigenvector: sigpy runs 100 power iterations in float32,
    # we use eigh; the eigen-gap inside the head is large, so they agree to float32
    # round-off (measured 1 - |<S, S_ref>| < 1e-6, element-wise |S - S_ref| < 4e-5).
    assert (1 - _overlap(maps, ref)[both]).max() < 1e-4
    # both reference the phase to coil 0, so the maps themselves agree, not just S S^H
    assert (maps - ref)[:, both].abs().max() < 1e-3
    assert torch.all(maps[:, ~valid] == 0)


def test_walsh_close_to_espirit_on_brain(brain):
    """Walsh maps from the 24 x 24 calibration centre agree with ESPIRiT inside the head.

    Looser than the sigpy comparison because the methods differ: Walsh's covariance
    averages noise over a 7 x 7 block of a low-resolution image, and blocks that straddle
    the scalp edge mix in background noise; ESPIRiT's subspace projection is not affected
    the same way. So the comparison excludes a 6-pixel band (about one block) inside the
    edge of the common valid region. Measured inside it: min 0.977, mean 0.9991.
    """
    _, k = brain
    e_maps, e_valid = espirit(k)
    raw = _cartesian_raw(k[None], (k.abs().sum(0) > 0)[None])
    w_maps, w_valid = estimate_maps(raw, "walsh")
    inside = _erode(e_valid & w_valid, 6)
    assert inside.sum() > 20000
    ov = _overlap(e_maps, w_maps)[inside]
    assert ov.min() > 0.95
    assert ov.mean() > 0.995
    # the Walsh mask (smoothed RSS > 5 % of max) covers the ESPIRiT mask but for its rim
    assert (e_valid & ~w_valid).float().sum() < 0.05 * e_valid.sum()


def test_estimate_maps_cartesian_espirit_equals_espirit_on_brain(brain):
    """One frame, mask from the data: estimate_maps is espirit on the 24 x 24 centre."""
    _, k = brain
    raw = _cartesian_raw(k[None], (k.abs().sum(0) > 0)[None])
    maps, valid = estimate_maps(raw, "espirit")
    ref, ref_valid = espirit(k)
    assert torch.equal(valid, ref_valid)
    assert torch.allclose(maps, ref, atol=1e-6)


def _import_if_present(name: str):
    """Import ``name`` if its module exists; skip (only) when it is absent."""
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not in this checkout yet (written by another task)")
    return importlib.import_module(name)



def test_cg_sense_with_package_maps_matches_sigpy_sense(brain):
    """CG-SENSE with our ESPIRiT maps == sigpy SenseRecon (same maps, same lambda).

    Both solve min_x ||P F S x - y||^2 + lam ||x||^2 (sigpy writes it with 1/2 on both
    terms, the same minimiser) by CG from x = 0; run to convergence both must reach the
    same x, so NRMSE between them is far below 5 % (the bound allows for the stopping
    points of two CG runs in float32).
    """
    sigpy_mri = pytest.importorskip("sigpy.mri")
    cart = _import_if_present("mridip.operators.cartesian")
    baselines = _import_if_present("mridip.recon.baselines")
    k_np, k = brain
    maps, _ = espirit(k)
    mask = k.abs().sum(0) > 0  # (Ky, Kx)
    lam = 0.01
    A = cart.CartesianSense(maps, mask[None])
    x, info = baselines.cg_sense(A, k[None], lam=lam, iterations=100, tol=1e-6)
    x = x.reshape(230, 180)
    # cg_sense scales lam by the largest eigenvalue of A^H A; give sigpy that same value
    lam_eff = float(info.get("lam_effective", lam))
    assert 0.5 * lam < lam_eff < 2 * lam  # unit-norm maps + unitary FFT: ||A^H A|| ~ 1
    ref = sigpy_mri.app.SenseRecon(k_np, maps.numpy(), lamda=lam_eff, max_iter=60, show_pbar=False).run()
    ref = torch.from_numpy(np.asarray(ref)).reshape(230, 180)
    nrmse = torch.linalg.vector_norm(x - ref) / torch.linalg.vector_norm(ref)
    assert nrmse < 0.05
    # and the reconstruction is an image, not zeros: the head holds most of its energy
    assert torch.linalg.vector_norm(ref) > 0


# --------------------------------------------------------------------------- simulation
def test_estimate_maps_cartesian_simulation_recovers_maps():
    """Known smooth maps; 4 frames at R = 3 with a 16-line centre: maps recovered.

    ESPIRiT: noise-free data whose maps lie in the span of 6 x 6 kernels (Gaussian profiles,
    sigma = 24 px) is reproduced to ~1e-5 (measured max 1 - |<S, S_true>| = 3e-5 two
    pixels inside the object edge); 1e-3 leaves room for float32 SVD differences.
    Walsh: the 7 x 7 block mixes neighbouring sensitivities, an error of order
    (block * grad S / S)^2 ~ 1e-3 (measured max 1.6e-3); bound 1e-2.
    """
    obj, true_maps, inside = _simulate()
    mask = variable_density_lines(4, 64, 64, 3.0, center_lines=16, seed=1)  # (T, Ky, Kx)
    k = fft2c(true_maps[None] * obj[None, None])  # (T=1 -> broadcast, C, Ky, Kx)
    raw = _cartesian_raw(k.expand(4, -1, -1, -1), mask)
    core = _erode(inside, 2)
    for method, tol in (("espirit", 1e-3), ("walsh", 1e-2)):
        maps, valid = estimate_maps(raw, method)
        assert maps.shape == (6, 64, 64)
        assert bool(valid[inside].all()), method  # the whole object is valid
        err = 1 - _overlap(maps, true_maps)[core]
        assert err.max() < tol, (method, float(err.max()))


def test_estimate_maps_uses_union_of_frames():
    """Frames with complementary central lines: only their union is a calibration region.

    Each of 2 frames holds every other line of a 24-line centre; no single frame has a
    fully sampled centre, the average over frames has.
    """
    obj, true_maps, inside = _simulate()
    mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    mask[0, 20:44:2] = True
    mask[1, 21:44:2] = True
    k = fft2c(true_maps[None] * obj[None, None]).expand(2, -1, -1, -1)
    maps, valid = estimate_maps(_cartesian_raw(k, mask), "espirit")
    err = 1 - _overlap(maps, true_maps)[_erode(inside, 2)]
    assert err.max() < 1e-3  # same bound and reason as the fully sampled-centre case
    with pytest.raises(ProtocolError, match="too small"):
        estimate_maps(_cartesian_raw(k[:1], mask[:1]), "espirit")


def test_estimate_maps_radial_golden_angle_recovers_maps():
    """Golden-angle radial, 8 frames x 13 spokes: maps from the time-averaged gridding.

    The 104 spokes of all frames (128 samples each) are gridded together with Pipe-Menon
    density compensation: about Nyquist for 64 x 64 (pi/2 * 64 = 100 spokes), so the coil
    images carry faint streaks and the gridding is approximate, unlike the exact Cartesian
    centre. Measured max 1 - |<S, S_true>| 2 px inside the object: ESPIRiT 1.3e-4 (bound
    3e-3, looser than Cartesian's 1e-3 for the gridding error), Walsh 1.8e-3 (bound 1e-2,
    its block-averaging error dominates as in the Cartesian case). The data are simulated
    with the package's own NUFFT; what is tested here is the time-averaged, density-
    compensated gridding and the calibration on it, not the NUFFT's accuracy (tested in
    tests/operators).
    """
    _import_if_present("mridip.operators.radial")
    traj_mod = importlib.import_module("mridip.trajectories")
    if not hasattr(traj_mod, "pipe_dcf"):
        pytest.skip("mridip.trajectories.pipe_dcf is not in this checkout yet")
    from mridip.operators.radial import RadialSense

    obj, true_maps, inside = _simulate()
    T = 8
    traj = radial_trajectory(T, 13, 128)  # (T, 2, K) radians/voxel
    A = RadialSense(true_maps, traj, toeplitz=False)
    y = A(obj[None].expand(T, -1, -1).contiguous())  # (T, C, K)
    header = Header(recon_matrix=(64, 64, 1), encoded_matrix=(128, 64, 1), trajectory="radial")
    raw = RawData(kspace=y[None], kind="radial", trajectory=traj[None], header=header)
    core = _erode(inside, 2)
    for method, tol in (("espirit", 3e-3), ("walsh", 1e-2)):
        maps, valid = estimate_maps(raw, method)
        assert maps.shape == (6, 64, 64)
        assert bool(valid[inside].all()), method
        err = 1 - _overlap(maps, true_maps)[core]
        assert err.max() < tol, (method, float(err.max()))
    # the ramp DCF grids well enough too (measured ESPIRiT 3.3e-4)
    maps, _ = estimate_maps(raw, "espirit", dcf="ramp")
    assert (1 - _overlap(maps, true_maps)[core]).max() < 3e-3


def test_walsh_stride_matches_full_resolution():
    """Eigen-decomposition on a 2x coarser grid + bilinear upsampling ~ full resolution.

    Smooth maps (sigma = 24 px) change by < 1e-3 over 2 px, so interpolation error is
    of that order (bound 5e-3).
    """
    obj, true_maps, inside = _simulate()
    imgs = true_maps * obj
    full, v_full = walsh(imgs)
    coarse, v_coarse = walsh(imgs, stride=2)
    core = _erode(inside, 3)
    assert (1 - _overlap(full, coarse)[core]).max() < 5e-3
    assert (1 - _overlap(true_maps, coarse)[core]).max() < 1e-2


# --------------------------------------------------------------------------- normalise
def test_normalise_maps_unit_inside_zero_outside():
    g = torch.Generator().manual_seed(3)
    maps = torch.randn(5, 16, 12, dtype=torch.complex64, generator=g)
    maps[:, 0, 0] = 0  # an all-zero pixel inside valid must stay 0, not NaN
    valid = torch.rand(16, 12, generator=g) > 0.4
    valid[0, 0] = True
    out = normalise_maps(maps, valid)
    ss = out.abs().pow(2).sum(0)
    keep = valid.clone()
    keep[0, 0] = False
    assert torch.allclose(ss[keep], torch.ones(()), atol=1e-6)
    assert torch.all(out[:, ~valid] == 0)
    assert torch.all(out[:, 0, 0] == 0) and torch.isfinite(torch.view_as_real(out)).all()
    # phase and coil ratios are kept: out = maps / rss
    assert torch.allclose(out[:, keep], maps[:, keep] / maps[:, keep].abs().pow(2).sum(0).sqrt(), atol=1e-6)
    # valid=None: every non-zero pixel
    out2 = normalise_maps(maps)
    assert torch.allclose(out2.abs().pow(2).sum(0)[1:], torch.ones(()), atol=1e-6)


def test_returned_maps_are_normalised():
    obj, true_maps, _ = _simulate()
    for maps, valid in (espirit(fft2c(true_maps * obj)), walsh(true_maps * obj)):
        ss = maps.abs().pow(2).sum(0)
        assert torch.allclose(ss[valid], torch.ones(()), atol=1e-5)
        assert torch.all(ss[~valid] == 0)


# --------------------------------------------------------------------------- errors
def test_shape_errors_name_the_function():
    with pytest.raises(ShapeError, match="espirit"):
        espirit(torch.zeros(8, 32, dtype=torch.complex64))
    with pytest.raises(ShapeError, match="espirit"):
        espirit(torch.zeros(2, 32, 32))  # real
    with pytest.raises(ShapeError, match="kernel_width"):
        espirit(torch.ones(2, 32, 32, dtype=torch.complex64), calib_width=4, kernel_width=6)
    with pytest.raises(ShapeError, match="walsh"):
        walsh(torch.zeros(1, 2, 32, 32, dtype=torch.complex64))
    with pytest.raises(ShapeError, match="normalise_maps"):
        normalise_maps(torch.zeros(2, 8, 8, dtype=torch.complex64), torch.ones(8, 9, dtype=torch.bool))
    k = torch.zeros(2, 1, 2, 16, 16, dtype=torch.complex64)
    two_slices = RawData(kspace=k, kind="cartesian", mask=torch.ones(2, 1, 16, 16, dtype=torch.bool))
    with pytest.raises(ShapeError, match="estimate_maps.*slice"):
        estimate_maps(two_slices)
    with pytest.raises(ShapeError, match="estimate_maps"):
        estimate_maps(k)


def test_unknown_method_and_options_are_listed():
    k = torch.ones(1, 1, 2, 16, 16, dtype=torch.complex64)
    raw = RawData(kspace=k, kind="cartesian", mask=torch.ones(1, 1, 16, 16, dtype=torch.bool))
    with pytest.raises(ProtocolError, match="espirit, walsh"):
        estimate_maps(raw, "sense")
    with pytest.raises(ProtocolError, match="block"):
        estimate_maps(raw, "espirit", block=5)  # a Walsh option given to ESPIRiT
    with pytest.raises(ProtocolError, match="odd"):
        walsh(torch.ones(2, 8, 8, dtype=torch.complex64), block=4)
    with pytest.raises(ProtocolError, match="reference_coil"):
        espirit(torch.ones(2, 16, 16, dtype=torch.complex64), reference_coil=5)


@pytest.mark.cuda
def test_espirit_and_walsh_on_cuda_match_cpu():
    obj, true_maps, inside = _simulate()
    k = fft2c(true_maps * obj)
    for fn, arg in ((espirit, k), (walsh, true_maps * obj)):
        m_cpu, v_cpu = fn(arg)
        m_gpu, v_gpu = fn(arg, device="cuda")
        assert m_gpu.device.type == "cuda" and v_gpu.device.type == "cuda"
        core = _erode(v_cpu & v_gpu.cpu(), 1)
        assert (1 - _overlap(m_cpu, m_gpu.cpu())[core]).max() < 1e-4


# --------------------------------------------------------------------------- support check
def _phantom_raw(size: int, acceleration: float, center: int) -> RawData:
    from data_tools.phantom import cardiac_cine_phantom, coil_sensitivities, simulate_cartesian

    images, _ = cardiac_cine_phantom(size, 12, seed=0)
    maps = coil_sensitivities(8, (size, size), seed=0, normalize=True)
    s = simulate_cartesian(images, maps, acceleration=acceleration, center_lines=center, snr=30.0)
    return RawData(kspace=torch.from_numpy(s["kspace"])[None], kind="cartesian", mask=torch.from_numpy(s["mask"])[None])


def test_maps_that_cut_the_object_are_reported(recwarn):
    """Only the 8 centre lines in every frame (32 x 32 at R = 4): ESPIRiT's valid region keeps
    ~15 % of the field of view and half of the signal energy lies outside it -> a warning.
    With half of each frame's lines outside the centre the maps cover the object: no warning."""
    from mridip.coils import SUPPORT_WARNING, signal_outside

    bad = _phantom_raw(32, 4.0, 8)
    with pytest.warns(UserWarning, match="outside the espirit maps' valid region"):
        _, valid = estimate_maps(bad)
    assert valid.float().mean() < 0.3
    good = _phantom_raw(32, 4.0, 4)
    recwarn.clear()
    _, valid = estimate_maps(good)
    assert not [w for w in recwarn if "valid region" in str(w.message)]
    assert valid.float().mean() > 0.4
    # the measure itself: energy outside an all-False mask is everything, inside all-True nothing
    imgs = ifft2c(bad.kspace[0, 0])
    assert signal_outside(imgs, torch.zeros(32, 32, dtype=torch.bool)) == pytest.approx(1.0)
    assert signal_outside(imgs, torch.ones(32, 32, dtype=torch.bool)) == 0.0
    assert 0 < SUPPORT_WARNING < 0.5
