"""Tests of data_tools/phantom.py: anatomy, motion, coil maps, forward models, noise, SNR."""

import math
import os

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion, gaussian_filter

from data_tools.phantom import (
    cardiac_cine_phantom,
    coil_sensitivities,
    contraction_curve,
    main,
    noise_covariance,
    simulate_cartesian,
    cartesian_center_lines,
    simulate_radial,
    simulate_to_files,
)
from mridip.errors import ShapeError
from mridip.fft import fft2c, ifft2c
from mridip.trajectories import variable_density_lines

REQUIRED_ROIS = ("heart", "lv_blood", "myocardium", "body")


@pytest.fixture(scope="module")
def cine64():
    return cardiac_cine_phantom(64, 12)


def _centroid(mask):
    yy, xx = np.nonzero(mask)
    return np.array([yy.mean(), xx.mean()])


# ----------------------------------------------------------------------------- phantom
def test_phantom_shapes_dtypes_finite(cine64):
    images, rois = cine64
    assert images.shape == (12, 64, 64) and images.dtype == np.complex64
    assert np.isfinite(images.view(np.float32)).all()
    mag = np.abs(images)
    # bSSFP-like scale: blood ~1 times a 4 % texture, nothing wildly brighter
    assert 0.9 < mag.max() < 1.25
    for name in REQUIRED_ROIS:
        assert rois[name].shape == images.shape and rois[name].dtype == bool
        assert rois[name].any(axis=(1, 2)).all(), f"{name} empty in some frame"
    # smooth background phase: present (not a real image) but no wraps between neighbours
    body = binary_erosion(rois["body"][0], iterations=2)
    phase = np.angle(images[0])
    assert np.ptp(phase[body]) > 0.1
    jump = np.abs(np.angle(images[0, 1:] * images[0, :-1].conj()))
    assert jump[body[1:] & body[:-1]].max() < 0.3


def test_phantom_size_scales_anatomy():
    # same normalised geometry: region areas scale with size^2 (to partial-volume accuracy)
    _, small = cardiac_cine_phantom(48, 1)
    _, large = cardiac_cine_phantom(96, 1)
    for name in ("body", "lv_blood", "heart"):
        ratio = large[name].sum() / small[name].sum()
        assert abs(ratio - 4.0) < 0.4, (name, ratio)


def test_systole_thicker_myocardium_smaller_cavity(cine64):
    images, rois = cine64
    lv = rois["lv_blood"].sum(axis=(1, 2))
    myo = rois["myocardium"].sum(axis=(1, 2))
    ed, es = 0, int(np.argmin(lv))
    assert abs(es - 12 / 3) <= 1  # end-systole at ~1/3 of the cycle
    assert lv[es] < 0.5 * lv[ed]  # ejection (area) fraction > 50 %
    assert myo[es] > 1.05 * myo[ed]
    # mean wall thickness = area / mean circumference grows by > 30 % (model: 46 %)
    r_lv = np.sqrt(lv / math.pi)
    r_epi = np.sqrt((lv + myo) / math.pi)
    thickness = r_epi - r_lv
    assert thickness[es] > 1.3 * thickness[ed]
    # contrast: blood bright, myocardium intermediate, lungs dark
    mag = np.abs(images[ed])
    blood = mag[rois["lv_blood"][ed]].mean()
    muscle = mag[rois["myocardium"][ed]].mean()
    lung = mag[rois["lungs"][ed]].mean()
    assert blood > 2.5 * muscle and muscle > 5 * lung


def test_contraction_curve_periodic_and_bounded():
    phase = np.linspace(0, 1, 1001)
    s = contraction_curve(phase)
    assert s.min() >= -1e-12 and s.max() <= 1 + 1e-12
    assert abs(contraction_curve(0.0)) < 1e-6 and abs(contraction_curve(1.0)) < 1e-6
    assert abs(phase[np.argmax(s)] - 1 / 3) < 0.05
    # smooth: no jump larger than a slope of ~10 per cycle allows on this grid
    assert np.abs(np.diff(s)).max() < 0.01


def test_rois_consistent(cine64):
    _, rois = cine64
    heart, body = rois["heart"], rois["body"]
    for name in ("lv_blood", "myocardium", "rv_blood"):
        assert not (rois[name] & ~heart).any(), name
    assert not (heart & ~body).any()
    assert not (rois["lv_blood"] & rois["myocardium"]).any()
    assert not (rois["lungs"] & heart).any()
    # the LV cavity is inside the myocardial ring: their centroids nearly coincide
    d = _centroid(rois["lv_blood"][0]) - _centroid(rois["myocardium"][0])
    assert np.hypot(*d) < 1.5


def test_respiration_moves_heart_and_liver():
    _, still = cardiac_cine_phantom(64, 8)
    _, moving = cardiac_cine_phantom(64, 8, respiration=True)
    # frame 0 is identical; at the last frame the heart is 0.056 normalised units (1.8 px
    # at N = 64) further along +Y, the liver 0.08 (2.6 px, partly clipped by the body)
    assert (still["heart"][0] == moving["heart"][0]).all()
    dh = _centroid(moving["heart"][-1]) - _centroid(still["heart"][-1])
    assert dh[0] > 1.2 and abs(dh[1]) < 0.6
    dl = _centroid(moving["liver"][-1]) - _centroid(still["liver"][-1])
    assert dl[0] > 0.5
    # without respiration the heart comes back after one cycle (periodic motion)
    last = _centroid(still["heart"][-1]) - _centroid(still["heart"][0])
    assert np.hypot(*last) < 0.5


# ----------------------------------------------------------------------------- coils
def test_coil_maps_smooth_and_cover_body():
    maps = coil_sensitivities(8, (48, 48), seed=3)
    _, rois = cardiac_cine_phantom(48, 1)
    body = rois["body"][0]
    assert maps.shape == (8, 48, 48) and maps.dtype == np.complex64
    sos = np.sqrt((np.abs(maps) ** 2).sum(axis=0))
    # every body pixel is seen (centre ~0.14 of the surface), and the maps are NOT
    # normalised: the sum of squares varies several-fold across the body
    assert sos[body].min() > 0.08
    # scaled to a peak of 1 over the analytic body ellipse (the ROI differs at edge pixels)
    assert 0.8 < np.abs(maps[:, body]).max() <= 1.0 + 1e-5
    assert sos[body].max() / sos[body].min() > 3.0
    # each coil is brightest near its own part of the surface (different coils differ)
    peaks = {np.unravel_index(np.argmax(np.abs(m) * body), m.shape) for m in maps}
    assert len(peaks) == 8
    # smooth inside the body: a 1-pixel Gaussian blur changes a map by < 3 % (the phantom
    # image itself changes by ~25 %)
    inner = binary_erosion(body, iterations=2)
    for m in maps:
        g = gaussian_filter(m.real, 1.0) + 1j * gaussian_filter(m.imag, 1.0)
        assert np.linalg.norm((m - g)[inner]) / np.linalg.norm(m[inner]) < 0.03


def test_noise_covariance_realistic():
    cov = noise_covariance(8, seed=5)
    assert np.allclose(cov, cov.conj().T)
    assert np.linalg.eigvalsh(cov).min() > 0
    var = np.real(np.diag(cov))
    assert var.max() / var.min() > 1.2  # coils differ in noise level
    corr = np.abs(cov / np.sqrt(np.outer(var, var)))
    off = corr[~np.eye(8, dtype=bool)]
    assert off.max() < 0.35
    neighbours = np.array([corr[i, (i + 1) % 8] for i in range(8)])
    assert neighbours.min() > 0.15


# ----------------------------------------------------------------------------- forward
def test_cartesian_equals_masked_centred_fft():
    images, _ = cardiac_cine_phantom(32, 3)
    maps = coil_sensitivities(4, (32, 32))
    sim = simulate_cartesian(images, maps, acceleration=4.0, center_lines=6, snr=math.inf, seed=2)
    assert sim["kspace"].shape == (3, 4, 32, 32) and sim["kspace"].dtype == np.complex64
    assert sim["noise"] is None and sim["noise_cov"] is None
    expected_mask = variable_density_lines(3, 32, 32, 4.0, 6, seed=2).numpy()
    assert (sim["mask"] == expected_mask).all()
    # the convention written out with numpy's FFT (the simulator uses mridip.fft.fft2c)
    ax = (-2, -1)
    coil_images = (maps[None] * images[:, None]).astype(np.complex128)
    full = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(coil_images, axes=ax), norm="ortho"), axes=ax)
    expected = full * sim["mask"][:, None]
    # float32 FFTs of a 32 x 32 image agree to ~1e-6 of the peak
    assert np.abs(sim["kspace"] - expected).max() < 1e-5 * np.abs(full).max()
    assert (sim["kspace"][:, :, ~sim["mask"][0]][0] == 0).all()


def test_radial_on_grid_spokes_match_centred_fft():
    images, _ = cardiac_cine_phantom(16, 1)
    maps = coil_sensitivities(3, (16, 16))
    # two spokes at 0 and 90 deg with samples = N: kx (then ky) = -8 .. 7 on the grid
    sim = simulate_radial(images, maps, spokes_per_frame=2, samples=16, angle_deg=90.0, snr=math.inf)
    assert sim["kspace"].shape == (1, 3, 32) and sim["trajectory"].shape == (1, 2, 32)
    k = sim["kspace"].reshape(1, 3, 2, 16)
    full = fft2c(torch.from_numpy(maps[None] * images[:, None])).numpy()
    ref = np.abs(full).max()
    # NUFFT with 2x oversampling and a width-6 Kaiser-Bessel kernel: ~1e-5 relative error
    assert np.abs(k[0, :, 0] - full[0, :, 8, :]).max() < 1e-4 * ref  # ky = 0 row
    assert np.abs(k[0, :, 1] - full[0, :, :, 8]).max() < 1e-4 * ref  # kx = 0 column


def test_radial_off_grid_matches_explicit_dft():
    rng = np.random.default_rng(1)
    n = 8
    images = (rng.standard_normal((2, n, n)) + 1j * rng.standard_normal((2, n, n))).astype(np.complex64)
    maps = np.ones((1, n, n), np.complex64)
    sim = simulate_radial(images, maps, spokes_per_frame=3, snr=math.inf)
    traj = sim["trajectory"].astype(np.float64)  # (T, 2, K) radians/voxel
    assert sim["trajectory"].shape == (2, 2, 3 * 2 * n)  # default samples = 2N
    assert np.abs(traj).max() <= math.pi + 1e-6  # float32 pi rounds up by 9e-8
    pos = np.arange(n) - n // 2  # centred positions, the convention of fft2c
    for t in range(2):
        ey = np.exp(-1j * np.outer(traj[t, 0], pos))  # (K, Y)
        ex = np.exp(-1j * np.outer(traj[t, 1], pos))  # (K, X)
        dft = np.einsum("ky,kx,yx->k", ey, ex, images[t]) / n
        err = np.abs(sim["kspace"][t, 0] - dft).max() / np.abs(dft).max()
        assert err < 1e-4, err  # NUFFT accuracy (see above), golden-angle off-grid points


# ----------------------------------------------------------------------------- noise
@pytest.fixture(scope="module")
def noisy_cartesian():
    images, rois = cardiac_cine_phantom(32, 4)
    maps = coil_sensitivities(6, (32, 32), seed=1)
    sim = simulate_cartesian(images, maps, acceleration=1.0, snr=20.0, seed=7)
    return images, rois, maps, sim


def test_noise_covariance_realised(noisy_cartesian):
    images, _, maps, sim = noisy_cartesian
    cov = sim["noise_cov"]
    assert cov.shape == (6, 6) and sim["noise"].shape == (6, 4096)
    assert sim["noise"].dtype == np.complex64
    n = sim["kspace"] - fft2c(torch.from_numpy(maps[None] * images[:, None])).numpy()
    n = np.moveaxis(n, 1, 0).reshape(6, -1)  # (C, 4096) data noise samples
    scale = np.abs(cov).max()
    # sample covariance of 4096 complex samples: entry std ~ 1/sqrt(4096) = 1.6 % of the
    # variances; 5 % is ~3 sigma for the largest of 36 entries
    for samples in (n, sim["noise"]):
        est = samples @ samples.conj().T / samples.shape[1]
        assert np.abs(est - cov).max() < 0.05 * scale


def test_realised_snr_matches(noisy_cartesian):
    images, rois, maps, sim = noisy_cartesian
    cov = sim["noise_cov"]
    coil_images = ifft2c(torch.from_numpy(sim["kspace"])).numpy()  # (T, C, Y, X)
    inv = np.linalg.inv(cov)
    # optimal (Roemer / SENSE R = 1) combination with the true maps and covariance
    num = np.einsum("cyx,cd,tdyx->tyx", maps.conj(), inv, coil_images)
    den = np.real(np.einsum("cyx,cd,dyx->yx", maps.conj(), inv, maps))
    combined = num / den
    mean_mag = np.abs(images).mean(axis=0)
    region = mean_mag > 0.01 * mean_mag.max()  # the SNR definition's default region
    err = (combined - images)[:, region]
    snr = np.abs(images[:, region]).mean() / np.sqrt(np.mean(np.abs(err) ** 2))
    # ~3000 complex noise samples: the std estimate is good to ~1.3 %; 5 % is ~4 sigma
    assert abs(snr / 20.0 - 1.0) < 0.05, snr
    # the default region is the body plus its partial-volume rim (lungs 0.03 > 1 %)
    body = rois["body"][0]
    assert region[body].all() and region.sum() < 1.25 * body.sum()


def test_snr_independent_of_sampling():
    images, _ = cardiac_cine_phantom(32, 2)
    maps = coil_sensitivities(4, (32, 32))
    a = simulate_cartesian(images, maps, acceleration=1.0, snr=15.0, seed=3)
    b = simulate_cartesian(images, maps, acceleration=4.0, snr=15.0, seed=3)
    c = simulate_radial(images, maps, spokes_per_frame=5, snr=15.0, seed=3)
    assert np.isclose(a["sigma2"], b["sigma2"]) and np.isclose(a["sigma2"], c["sigma2"])
    np.testing.assert_allclose(a["noise_cov"], c["noise_cov"])
    # half the SNR, four times the noise variance
    d = simulate_cartesian(images, maps, acceleration=1.0, snr=7.5, seed=3)
    assert np.isclose(d["sigma2"], 4.0 * a["sigma2"], rtol=1e-6)


def test_radial_noise_has_the_covariance():
    images, _ = cardiac_cine_phantom(16, 4)
    maps = coil_sensitivities(4, (16, 16))
    clean = simulate_radial(images, maps, spokes_per_frame=32, snr=math.inf, seed=4)
    noisy = simulate_radial(images, maps, spokes_per_frame=32, snr=5.0, seed=4)
    n = np.moveaxis(noisy["kspace"] - clean["kspace"], 1, 0).reshape(4, -1)  # 4096 samples
    est = n @ n.conj().T / n.shape[1]
    # as for the Cartesian case: 5 % of the largest variance is ~3 sigma
    assert np.abs(est - noisy["noise_cov"]).max() < 0.05 * np.abs(noisy["noise_cov"]).max()


def test_bad_inputs_raise_shape_error():
    images, _ = cardiac_cine_phantom(16, 2)
    maps = coil_sensitivities(2, (16, 16))
    with pytest.raises(ShapeError, match="coil maps"):
        simulate_cartesian(images, maps[:, :8], snr=math.inf)
    with pytest.raises(ShapeError, match=r"\(T, Y, X\)"):
        simulate_radial(images[0], maps, snr=math.inf)
    with pytest.raises(ShapeError, match="snr"):
        simulate_cartesian(images, maps, snr=-1.0)
    with pytest.raises(ShapeError, match="size"):
        cardiac_cine_phantom(4, 2)


# ----------------------------------------------------------------------------- files

@pytest.mark.parametrize("kind", ["radial", "cartesian", "fastmri"])
def test_simulate_to_files_writes_raw_and_truth(tmp_path, kind):
    import h5py

    paths = simulate_to_files(
        str(tmp_path), kind=kind, size=32, frames=4, coils=4, spokes_per_frame=5,
        acceleration=4.0, snr=25.0, slices=2, seed=1,
    )
    assert len(paths) == 2 and all(os.path.getsize(p) > 0 for p in paths)
    raw, truth = paths
    assert truth == raw[:-3] + "_truth.h5"
    s, t = (2, 1) if kind == "fastmri" else (1, 4)
    with h5py.File(truth, "r") as f:
        assert f["image"].shape == (s, t, 32, 32) and f["image"].dtype == np.complex64
        assert f["coil_maps"].shape == (s, 4, 32, 32)
        for name in REQUIRED_ROIS:
            assert f["roi"][name].shape == (s, t, 32, 32) and f["roi"][name].dtype == bool
        assert f.attrs["kind"] == kind and f.attrs["snr"] == 25.0 and f.attrs["seed"] == 1
    try:
        from mridip.io import load_raw
    except ImportError:
        return  # the reader is the lead's to check
    data = load_raw(raw)
    assert data.num_slices == s and data.num_coils == 4
    if kind == "fastmri":
        return
    assert data.num_frames == 4 and data.kind == kind
    # the file holds exactly what the simulator made (same seeds -> same data)
    images, _ = cardiac_cine_phantom(32, 4, seed=1)
    maps = coil_sensitivities(4, (32, 32), seed=1, normalize=True)  # the files use RSS-normalised maps
    if kind == "radial":
        sim = simulate_radial(images, maps, spokes_per_frame=5, snr=25.0, seed=1)
        # cycles/pixel float32 in the file -> radians: ~1e-6 rounding
        np.testing.assert_allclose(data.trajectory[0].numpy(), sim["trajectory"], atol=1e-5)
    else:
        sim = simulate_cartesian(images, maps, acceleration=4.0, center_lines=cartesian_center_lines(32, 4.0),
                                 snr=25.0, seed=1)
        assert (data.mask[0].numpy() == sim["mask"]).all()
    ref = np.abs(sim["kspace"]).max()
    # the Cartesian readout goes through a 2x oversampling FFT and back (float32)
    assert np.abs(data.kspace[0].numpy() - sim["kspace"]).max() < 1e-4 * ref
    np.testing.assert_allclose(data.noise.numpy(), sim["noise"], atol=1e-4 * ref)


def test_command_line_writes_files(tmp_path, capsys):
    rc = main(["-o", str(tmp_path), "--kind", "cartesian", "--size", "16", "--frames", "2",
               "--coils", "2", "--acceleration", "2"])
    assert rc == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 2 and all(os.path.exists(p) for p in printed)


def test_normalised_coil_maps_have_unit_sum_of_squares():
    raw = coil_sensitivities(6, (32, 32), seed=2)
    maps = coil_sensitivities(6, (32, 32), seed=2, normalize=True)
    np.testing.assert_allclose((np.abs(maps) ** 2).sum(0), 1.0, rtol=1e-5)
    # same phases and relative magnitudes: normalisation divides every coil by the same RSS
    ratio = maps / raw
    np.testing.assert_allclose(ratio, ratio[:1].repeat(6, 0), rtol=1e-4)


@pytest.mark.parametrize("size, acceleration, center", [(128, 8.0, 8), (64, 4.0, 8), (64, 8.0, 4), (24, 3.0, 4)])
def test_simulated_cartesian_frames_sample_beyond_the_centre(tmp_path, size, acceleration, center):
    """Every frame samples lines outside the fixed centre (64 x 64 at R = 8 with 8 centre lines
    would have none: all 8 lines of each frame in the centre)."""
    assert cartesian_center_lines(size, acceleration) == center
    images, _ = cardiac_cine_phantom(size, 3, seed=0)
    maps = coil_sensitivities(2, (size, size), seed=0, normalize=True)
    mask = simulate_cartesian(images, maps, acceleration=acceleration, center_lines=center, snr=math.inf)["mask"]
    lines = mask.any(-1)  # (T, Ky)
    c0 = size // 2 - center // 2
    assert lines[:, c0 : c0 + center].all()
    outside = lines.sum(1) - center
    assert (outside >= center).all() and (lines.sum(1) == round(size / acceleration)).all()
