"""Tests of data_tools/anatomical.py: texture, smooth cardiac warp, files and their truth."""

import math
import os
import warnings

import numpy as np
import pytest
from scipy.ndimage import binary_erosion, map_coordinates

from data_tools.anatomical import (
    DEFAULT_TEXTURE_PATH,
    anatomical_cine,
    anatomical_cine_phantom,
    anatomical_displacement,
    texture_fields,
)
from data_tools.phantom import (
    cardiac_cine_phantom,
    cartesian_center_lines,
    coil_sensitivities,
    contraction_curve,
    main,
    simulate_cartesian,
    simulate_radial,
    simulate_to_files,
)
from mridip.errors import InputFileError, ShapeError

REQUIRED_ROIS = ("body", "heart", "myocardium", "lv_blood")
HAVE_BRAIN = os.path.exists(DEFAULT_TEXTURE_PATH)


def _cine(*args, **kwargs):
    with warnings.catch_warnings():  # a fresh clone has no sigpy-brain: synthetic texture
        warnings.simplefilter("ignore", UserWarning)
        return anatomical_cine(*args, **kwargs)


@pytest.fixture(scope="module")
def anat64():
    return _cine(64, 8)


def test_shapes_rois_and_truth_fields(anat64):
    images, rois, disp = anat64["images"], anat64["rois"], anat64["displacement"]
    assert images.shape == (8, 64, 64) and images.dtype == np.complex64
    assert np.isfinite(images.view(np.float32)).all()
    assert 0.8 < np.abs(images).max() < 1.6
    for name in REQUIRED_ROIS:
        assert rois[name].shape == images.shape and rois[name].dtype == bool
        assert rois[name].any(axis=(1, 2)).all(), name
    assert (rois["lv_blood"] <= rois["heart"]).all() and (rois["heart"] <= rois["body"]).all()
    assert disp.shape == (8, 2, 64, 64) and disp.dtype == np.float32
    assert np.abs(disp[0]).max() == 0.0  # frame 0 is the end-diastolic template
    np.testing.assert_allclose(anat64["contraction"], contraction_curve(np.arange(8) / 8))
    assert anat64["texture"] == ("sigpy-brain" if HAVE_BRAIN else "synthetic")
    im2, roi2 = anatomical_cine_phantom(64, 8, texture="synthetic" if not HAVE_BRAIN else "auto")
    np.testing.assert_array_equal(im2, images)
    with pytest.raises(ShapeError, match="size"):
        anatomical_cine(4, 2)


def _interior_stats(image, mask):
    """Relative std and mean squared neighbour difference (both pixels inside) / mean^2."""
    m = binary_erosion(mask, iterations=1)
    a = np.abs(image)
    dy = (a[1:] - a[:-1])[m[1:] & m[:-1]]
    dx = (a[:, 1:] - a[:, :-1])[m[:, 1:] & m[:, :-1]]
    mean = a[m].mean()
    return a[m].std() / mean, np.mean(np.concatenate([dy, dx]) ** 2) / mean**2


def test_texture_is_not_piecewise_constant(anat64):
    # inside single tissues (away from edges) the ellipse phantom has only its 4 % smooth
    # texture; the anatomical one real-image texture of 6-50 %: several times the spread
    # and the gradient energy
    ell, ell_rois = cardiac_cine_phantom(64, 1)
    for name in ("lv_blood", "liver", "lungs"):
        s_anat, g_anat = _interior_stats(anat64["images"][0], anat64["rois"][name][0])
        s_ell, g_ell = _interior_stats(ell[0], ell_rois[name][0])
        assert s_anat > 2.5 * s_ell, (name, s_anat, s_ell)
        assert g_anat > 4.0 * g_ell, (name, g_anat, g_ell)


def test_texture_sources(tmp_path):
    missing = str(tmp_path / "nothing.npy")
    with pytest.warns(UserWarning, match="synthetic texture"):
        static, heart, source = texture_fields(16, texture_path=missing)
    assert source == "synthetic" and static.shape == heart.shape == (16, 16)
    np.testing.assert_allclose([static.mean(), static.std()], [0.0, 1.0], atol=0.05)
    with pytest.raises(InputFileError, match="synthetic"):
        texture_fields(16, texture="sigpy-brain", texture_path=missing)
    with pytest.raises(ShapeError, match="texture"):
        texture_fields(16, texture="marble")
    if not HAVE_BRAIN:
        pytest.skip(f"sigpy-brain k-space not at {DEFAULT_TEXTURE_PATH}")
    real, real_heart, source = texture_fields(32, supersampling=2)
    assert source == "sigpy-brain" and real.shape == (64, 64)
    synth, _, _ = texture_fields(32, supersampling=2, texture="synthetic")
    # a real image's texture: two different crops of one brain, neither is the synthetic field
    assert abs(np.corrcoef(real.ravel(), synth.ravel())[0, 1]) < 0.2
    assert abs(np.corrcoef(real.ravel(), real_heart.ravel())[0, 1]) < 0.5
    # anatomical, not Gaussian: sulci / CSF make the relative-contrast field skewed
    skew = np.mean(real**3)
    assert abs(skew) > 0.2, skew


def test_displacement_smooth_and_bounded(anat64):
    disp = anat64["displacement"].astype(np.float64)  # (T, 2, Y, X) px
    n = 64
    # peak endocardial motion: ~7 mm = 1.4 px at 320 mm / 64 (k r exp(-r^2 / 2 sigma^2))
    assert 1.0 < np.abs(disp).max() < 2.5
    # smooth in space: no folding (Jacobian of p -> p + D(p) > 0.5), small curvature
    for t in range(disp.shape[0]):
        dyy, dyx = np.gradient(disp[t, 0])
        dxy, dxx = np.gradient(disp[t, 1])
        jac = (1 + dyy) * (1 + dxx) - dyx * dxy
        assert jac.min() > 0.5, t
    # smooth, not jumping at tissue edges: second differences (px) are bounded and halve
    # when the matrix doubles (an analytic field: D'' ~ 1 / N), whereas a field that jumps
    # at tissue edges keeps them near its amplitude (1-2 px) at every N
    def curvature(d):
        return max(np.abs(np.diff(d, n=2, axis=a)).max() for a in (-1, -2))

    c64 = curvature(disp)
    c128 = curvature(anatomical_displacement(128, 8).astype(np.float64))
    assert c64 < 0.3, c64  # k / sigma of the LV field: 0.6 / 3.8 px at N = 64
    assert 0.4 < c128 / c64 < 0.6, (c64, c128)
    # bounded frame-to-frame change (8 frames per beat: the fastest step of s is 0.45)
    assert np.abs(np.diff(disp, axis=0)).max() < 1.0
    # the field follows the contraction curve: D_t ~= s_t D_es (to the twist's
    # second-order term, < 0.05 px), so it is as smooth in time as s_t
    s = anat64["contraction"]
    es = int(np.argmax(s))
    for t in range(disp.shape[0]):
        assert np.abs(disp[t] - s[t] / s[es] * disp[es]).max() < 0.05
    # the field falls off: the spine and the image border do not move
    assert np.abs(disp[:, :, anat64["rois"]["spine"][0]]).max() < 0.05
    border = np.ones((n, n), dtype=bool)
    border[4:-4, 4:-4] = False
    assert np.abs(disp[:, :, border]).max() < 0.05


def test_systole_physiological(anat64):
    rois = anat64["rois"]
    lv = rois["lv_blood"].sum(axis=(1, 2)).astype(float)
    myo = rois["myocardium"].sum(axis=(1, 2)).astype(float)
    es = int(np.argmin(lv))
    assert abs(es - 8 / 3) <= 1
    # LV cavity area 30-60 % smaller at end-systole (model: 45 %)
    assert 0.40 <= lv[es] / lv[0] <= 0.70, lv
    # myocardium nearly incompressible in plane, so the wall thickens
    assert 0.85 < myo[es] / myo[0] < 1.15, myo
    thick = np.sqrt((lv + myo) / math.pi) - np.sqrt(lv / math.pi)
    assert thick[es] > 1.1 * thick[0]
    # the LV blood stays bright, the myocardium intermediate
    mag = np.abs(anat64["images"])
    assert mag[rois["lv_blood"]].mean() > 2.0 * mag[rois["myocardium"]].mean()


def test_images_are_the_warped_template(anat64):
    # an independent pixel-level warp (cubic splines) of frame 0 by the true displacement
    # reproduces frame t much better than frame 0 itself does: the truth field is the motion
    images, disp = anat64["images"], anat64["displacement"]
    # the background phase is static: warp the magnitude
    ref = np.abs(images[0]).astype(np.float64)
    grid = np.stack(np.meshgrid(np.arange(64), np.arange(64), indexing="ij")).astype(np.float64)
    es = int(np.argmax(anat64["contraction"]))
    heart = anat64["rois"]["heart"][0] | anat64["rois"]["heart"][es]
    warped = map_coordinates(ref, grid + disp[es], order=3, mode="nearest")
    target = np.abs(images[es])
    err_warp = np.linalg.norm((warped - target)[heart]) / np.linalg.norm(target[heart])
    err_static = np.linalg.norm((ref - target)[heart]) / np.linalg.norm(target[heart])
    assert err_warp < 0.5 * err_static, (err_warp, err_static)
    assert err_warp < 0.2


def test_respiration_moves_heart_not_spine():
    still = _cine(48, 4, texture="synthetic")
    moving = _cine(48, 4, texture="synthetic", respiration=True)

    def centroid(m):
        yy, xx = np.nonzero(m)
        return np.array([yy.mean(), xx.mean()])

    dy = centroid(moving["rois"]["heart"][-1]) - centroid(still["rois"]["heart"][-1])
    # 0.08 units x 0.9 (bump weight at the heart) = 1.7 px at 48 along +y, 20 % of it along +x
    assert 1.0 < dy[0] < 2.5 and 0.0 < dy[1] < 0.8, dy
    assert np.abs(moving["displacement"][-1, :, moving["rois"]["heart"][-1]]).max() > 1.0
    np.testing.assert_array_equal(moving["displacement"][-1], anatomical_displacement(48, 4, respiration=True)[-1])


@pytest.mark.parametrize("kind", ["anatomical", "anatomical-cartesian"])
def test_files_round_trip(tmp_path, kind):
    import h5py

    from mridip.io import load_raw

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        paths = simulate_to_files(str(tmp_path), kind=kind, size=32, frames=4, coils=4,
                                  spokes_per_frame=5, acceleration=4.0, snr=25.0, seed=1)
    raw, truth = paths
    assert os.path.basename(raw) == ("anatomical_radial.h5" if kind == "anatomical" else "anatomical_cartesian.h5")
    assert truth == raw[:-3] + "_truth.h5"
    ph = _cine(32, 4, seed=1)
    with h5py.File(truth, "r") as f:
        np.testing.assert_array_equal(f["image"][()], ph["images"][None])
        for name in REQUIRED_ROIS:
            np.testing.assert_array_equal(f["roi"][name][()], ph["rois"][name][None])
        assert f["motion/displacement"].shape == (1, 4, 2, 32, 32)
        np.testing.assert_array_equal(f["motion/displacement"][0], anatomical_displacement(32, 4))
        np.testing.assert_allclose(f["motion/contraction"][()], contraction_curve(np.arange(4) / 4))
        assert f.attrs["kind"] == kind and f.attrs["texture"] == ph["texture"] and f.attrs["frames"] == 4
        assert f["coil_maps"].shape == (1, 4, 32, 32)
    data = load_raw(raw)
    assert data.num_frames == 4 and data.num_coils == 4
    maps = coil_sensitivities(4, (32, 32), seed=1, normalize=True)
    if kind == "anatomical":
        assert data.kind == "radial"
        sim = simulate_radial(ph["images"], maps, spokes_per_frame=5, snr=25.0, seed=1)
        np.testing.assert_allclose(data.trajectory[0].numpy(), sim["trajectory"], atol=1e-5)
    else:
        assert data.kind == "cartesian"
        sim = simulate_cartesian(ph["images"], maps, acceleration=4.0,
                                 center_lines=cartesian_center_lines(32, 4.0), snr=25.0, seed=1)
        assert (data.mask[0].numpy() == sim["mask"]).all()
    ref = np.abs(sim["kspace"]).max()
    assert np.abs(data.kspace[0].numpy() - sim["kspace"]).max() < 1e-4 * ref


def test_command_line_kind_anatomical(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rc = main(["-o", str(tmp_path), "--kind", "anatomical", "--size", "16", "--frames", "2",
                   "--coils", "2", "--spokes", "3"])
    assert rc == 0
    printed = capsys.readouterr().out.split()
    assert [os.path.basename(p) for p in printed] == ["anatomical_radial.h5", "anatomical_radial_truth.h5"]
