"""The one metric definition (DESIGN.md): scaling, PSNR, SSIM, NRMSE, regions."""

import numpy as np
import pytest

from mridip import metrics
from mridip.errors import ShapeError


def _ref(seed=0, shape=(3, 32, 32)):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[1], : shape[2]]
    base = np.exp(-((y - 16) ** 2 + (x - 14) ** 2) / 60.0)
    return np.stack([base * (1 + 0.1 * t) for t in range(shape[0])]) + 0.01 * rng.random(shape)


def test_scale_and_phase_invariance():
    ref = _ref()
    # a reconstruction differing by a global complex scalar is perfect: LS scaling + magnitude
    rec = 3.7 * np.exp(1j * 0.8) * ref
    assert metrics.psnr(rec, ref) > 250  # float64 round-off only
    assert metrics.nrmse(rec, ref) < 1e-12
    assert metrics.ssim(rec, ref) == pytest.approx(1.0, abs=1e-12)


def test_psnr_matches_definition_for_known_error():
    ref = _ref()
    peak = ref.max()
    rng = np.random.default_rng(1)
    noise = 0.01 * rng.standard_normal(ref.shape)
    rec = ref + noise * peak  # in normalised units the error is `noise`
    x, r, _ = metrics.prepare(rec, ref)
    mse = np.mean((x - r) ** 2)
    assert metrics.psnr(rec, ref) == pytest.approx(10 * np.log10(1 / mse))
    # LS scaling can only lower the error of the unscaled normalised estimate (1 / peak)
    assert mse <= np.mean((rec / peak - ref / peak) ** 2) + 1e-15
    # the error is ~ 1 % of peak: PSNR near 40 dB
    assert 37 < metrics.psnr(rec, ref) < 43


def test_ssim_drops_with_blur_and_region_restricts():
    from scipy.ndimage import gaussian_filter

    ref = _ref()
    blurred = np.stack([gaussian_filter(f, 2.0) for f in ref])
    assert metrics.ssim(blurred, ref) < 0.99
    mask = np.zeros(ref.shape[1:], bool)
    mask[:8, :8] = True  # flat corner: blur changes little there
    assert metrics.ssim(blurred, ref, mask) > metrics.ssim(blurred, ref)


def test_evaluate_keys_and_shape_errors():
    ref = _ref()
    out = metrics.evaluate(ref * 2, ref)
    assert set(out) == {"psnr", "ssim", "nrmse"}
    with pytest.raises(ShapeError, match="differ in shape"):
        metrics.psnr(ref[:2], ref)
    with pytest.raises(ShapeError, match="no pixel"):
        metrics.psnr(ref, ref, np.zeros(ref.shape, bool))
