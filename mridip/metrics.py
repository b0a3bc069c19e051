"""Image quality metrics: the one definition used everywhere (DESIGN.md).

Magnitude images. The reference is divided by its maximum over the whole series; the
reconstruction is scaled by the least-squares scalar that best matches the reference
magnitude (inside the region, when one is given). Then

- PSNR = 10 log10(1 / MSE), peak 1;
- SSIM (Wang et al., IEEE TIP 2004) with data_range 1, Gaussian window (sigma 1.5,
  11 x 11), K1 = 0.01, K2 = 0.03, computed per frame in 2-D and averaged over frames
  (and over the region's pixels when a region is given);
- NRMSE = ||x - ref|| / ||ref||.

An optional region mask ``(T, Y, X)`` or ``(Y, X)`` restricts all three. Metrics are
computed once per reconstruction, on the CPU, in float64.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from mridip.errors import ShapeError

_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5 -> an 11 x 11 window


def _as_magnitude(a, name: str) -> np.ndarray:
    if torch.is_tensor(a):
        a = a.detach().cpu().numpy()
    a = np.abs(np.asarray(a)).astype(np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ShapeError(f"{name} must be (T, Y, X) or (Y, X), got shape {a.shape}")
    return a


def _region(mask, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask.detach().cpu() if torch.is_tensor(mask) else mask).astype(bool)
    if m.ndim == 2:
        m = np.broadcast_to(m, shape)
    if m.shape != shape:
        raise ShapeError(f"region mask has shape {m.shape}, expected {shape} or {shape[1:]}")
    if not m.any():
        raise ShapeError("region mask selects no pixel")
    return m


def prepare(recon, reference, mask=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Scale ``recon`` and ``reference`` per the metric definition.

    Parameters
    ----------
    recon, reference : array or tensor
        ``(T, Y, X)`` or ``(Y, X)``, complex or real; magnitudes are used.
    mask : array or None
        Region ``(T, Y, X)`` or ``(Y, X)``, bool.

    Returns
    -------
    x, ref, mask : numpy.ndarray
        float64 ``(T, Y, X)`` magnitudes: ``ref = |reference| / max |reference|`` and
        ``x = a |recon|`` with ``a`` the least-squares scalar over the region.
    """
    x = _as_magnitude(recon, "reconstruction")
    ref = _as_magnitude(reference, "reference")
    if x.shape != ref.shape:
        raise ShapeError(f"reconstruction {x.shape} and reference {ref.shape} differ in shape")
    peak = ref.max()
    if peak <= 0:
        raise ShapeError("reference is all zero")
    ref = ref / peak
    m = _region(mask, ref.shape)
    xs, rs = (x, ref) if m is None else (x[m], ref[m])
    denom = float(np.sum(xs * xs))
    a = float(np.sum(xs * rs)) / denom if denom > 0 else 0.0
    return a * x, ref, m


def psnr(recon, reference, mask=None) -> float:
    """Peak signal-to-noise ratio in dB (peak 1 after the metric's scaling)."""
    x, ref, m = prepare(recon, reference, mask)
    d = (x - ref) if m is None else (x - ref)[m]
    mse = float(np.mean(d * d))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def nrmse(recon, reference, mask=None) -> float:
    """Normalised root-mean-square error ``||x - ref|| / ||ref||`` after the metric's scaling."""
    x, ref, m = prepare(recon, reference, mask)
    if m is not None:
        x, ref = x[m], ref[m]
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SSIM map of two 2-D images with data_range 1 and a Gaussian window."""
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2

    def f(a):
        return gaussian_filter(a, _SSIM_SIGMA, truncate=_SSIM_TRUNCATE, mode="reflect")

    mx, my = f(x), f(y)
    sxx = f(x * x) - mx * mx
    syy = f(y * y) - my * my
    sxy = f(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return num / den


def ssim(recon, reference, mask=None) -> float:
    """Structural similarity, averaged over frames (and over the region when given)."""
    x, ref, m = prepare(recon, reference, mask)
    vals = []
    for t in range(x.shape[0]):
        s = _ssim_map(x[t], ref[t])
        if m is None:
            vals.append(float(s.mean()))
        elif m[t].any():
            vals.append(float(s[m[t]].mean()))
    return float(np.mean(vals))


def evaluate(recon, reference, mask=None) -> dict[str, float]:
    """PSNR (dB), SSIM and NRMSE of ``recon`` against ``reference`` (optionally in a region)."""
    return {
        "psnr": psnr(recon, reference, mask),
        "ssim": ssim(recon, reference, mask),
        "nrmse": nrmse(recon, reference, mask),
    }


def map_errors(estimate, reference, mask=None) -> dict[str, float]:
    """Errors of a quantitative parameter map in its physical units (no scaling).

    Unlike the image metrics above, a parameter map (T2 in ms) has absolute units, so it
    is compared as it is: mean absolute error ``mean |est - ref|``, mean absolute
    percentage error ``100 mean |est - ref| / ref`` and bias ``mean (est - ref)``, over
    the region (default: where the reference is > 0).

    Parameters
    ----------
    estimate, reference : array or tensor
        real ``(Y, X)`` or ``(S, Y, X)`` maps of the same shape and unit.
    mask : array, optional
        bool, same shape: the pixels to score (intersected with ``reference > 0``).

    Returns
    -------
    dict
        ``{"mae": ..., "mape": ..., "bias": ...}`` (mae and bias in the map's unit, mape in %).
    """
    est = np.asarray(estimate.detach().cpu() if isinstance(estimate, torch.Tensor) else estimate, dtype=np.float64)
    ref = np.asarray(reference.detach().cpu() if isinstance(reference, torch.Tensor) else reference, dtype=np.float64)
    if est.shape != ref.shape or np.iscomplexobj(estimate) or np.iscomplexobj(reference):
        raise ShapeError(f"map_errors: maps must be real and of one shape, got {est.shape} and {ref.shape}")
    sel = ref > 0
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != ref.shape:
            raise ShapeError(f"map_errors: mask {m.shape} and maps {ref.shape} differ in shape")
        sel &= m
    if not sel.any():
        raise ShapeError("map_errors: the region holds no pixel with a positive reference value")
    d = est[sel] - ref[sel]
    return {"mae": float(np.abs(d).mean()), "mape": float(100.0 * np.mean(np.abs(d) / ref[sel])),
            "bias": float(d.mean())}
