"""Orthogonal 2-D discrete wavelet transform in torch (Haar, Daubechies dbN), multi-level.

The transform is *orthogonal* for every image size, so soft thresholding of its
coefficients is the exact proximal operator of ``lam * ||Psi x||_1`` (used by
:func:`mridip.recon.baselines.l1_wavelet`) and the inverse is the adjoint.

Construction (Mallat 1989; Daubechies, *Ten Lectures on Wavelets*, SIAM 1992):

- scaling (low-pass) filter ``h`` of length ``L = 2N`` for ``dbN`` from the spectral
  factorisation of Daubechies' polynomial, minimum-phase root choice, ``sum(h) = sqrt(2)``;
  ``db1`` is Haar; high-pass ``g[j] = (-1)^j h[L-1-j]``.
- analysis along one axis of even length ``m`` with **periodic extension**:
  ``a[k] = sum_j h[j] x[(2k + j) mod m]``, ``d[k] = sum_j g[j] x[(2k + j) mod m]``,
  ``k = 0 .. m/2 - 1``. Periodisation keeps the filter bank orthogonal for any even ``m``.
- **odd lengths**: the last sample is carried unchanged into the approximation band
  (it is a coefficient of its own); the even-length part is transformed as above. This
  is a block-diagonal orthogonal map, so orthogonality and perfect reconstruction hold
  for odd sizes too, with no padding (the coefficient array has the image's shape).
- 2-D, one level: the transform along Y, then along X, of the current approximation
  (LL) band; the next level recurses on LL only (the standard Mallat pyramid).

Coefficient layout: one tensor of the image's shape ``(..., Y, X)`` (Mallat layout): after
each level the approximation band occupies the leading ``ceil(n / 2)`` rows / columns
of the previous approximation band, followed by the detail coefficients.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from mridip.errors import ShapeError

__all__ = ["wavelet_filter", "max_levels", "default_levels", "wavedec2", "waverec2", "WAVELETS"]

#: Names accepted by :func:`wavelet_filter`: "haar" (= "db1") and "db1" ... "db10".
WAVELETS = ("haar",) + tuple(f"db{n}" for n in range(1, 11))


@functools.lru_cache(maxsize=None)
def _daubechies(n: int) -> tuple[float, ...]:
    """Minimum-phase Daubechies scaling filter with ``n`` vanishing moments (length 2n)."""
    if n == 1:
        return (1.0 / math.sqrt(2.0),) * 2
    # |H(w)|^2 = cos^{2n}(w/2) P(sin^2(w/2)), P(y) = sum_k C(n-1+k, k) y^k (Daubechies 1988)
    p = [math.comb(n - 1 + k, k) for k in range(n)]
    y_roots = np.roots(p[::-1])  # np.roots wants the highest degree first
    # each y-root gives z + 1/z = 2 - 4y; keep the root inside the unit circle (minimum phase)
    zeros = []
    for yr in y_roots:
        b = 2.0 - 4.0 * yr
        z1, z2 = np.roots([1.0, -b, 1.0])
        zeros.append(z1 if abs(z1) < 1 else z2)
    poly = np.array([1.0 + 0j])
    for _ in range(n):
        poly = np.convolve(poly, [1.0, 1.0])  # the n-fold zero at z = -1 (w = pi)
    for z in zeros:
        poly = np.convolve(poly, [1.0, -z])
    h = np.real(poly)
    h = h * (math.sqrt(2.0) / h.sum())
    return tuple(float(v) for v in h)


def wavelet_filter(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-pass ``h`` and high-pass ``g`` analysis filters (float64, length ``L``).

    Parameters
    ----------
    name : str
        ``"haar"`` or ``"dbN"``, N = 1 .. 10 (N vanishing moments, ``L = 2N`` taps;
        PyWavelets / MATLAB naming, so ``"db4"`` has 8 taps).
    """
    key = name.strip().lower()
    if key == "haar":
        key = "db1"
    if key not in WAVELETS:
        raise ShapeError(f"unknown wavelet {name!r}: use one of {', '.join(WAVELETS)}")
    h = np.array(_daubechies(int(key[2:])))
    g = ((-1.0) ** np.arange(h.size)) * h[::-1]
    return torch.from_numpy(h.copy()), torch.from_numpy(g.copy())


def max_levels(shape: tuple[int, int]) -> int:
    """Largest number of levels for an image ``(Y, X)``: until a band would have < 2 samples."""
    levels, (ny, nx) = 0, shape
    while ny >= 2 and nx >= 2:
        ny, nx = (ny + 1) // 2, (nx + 1) // 2
        levels += 1
    return levels


def default_levels(shape: tuple[int, int], wavelet: str = "db4") -> int:
    """Levels such that the coarsest approximation band is still at least one filter long.

    ``J = max(1, floor(log2(min(Y, X) / L)))`` with ``L`` the filter length, capped by
    :func:`max_levels` (e.g. 32 x 32 with db4 (L = 8): 2 levels; 256 x 256: 5 levels).
    """
    length = wavelet_filter(wavelet)[0].numel()
    j = int(math.floor(math.log2(max(min(shape), 1) / length))) if min(shape) >= length else 1
    return max(1, min(j, max_levels(shape)))


@functools.lru_cache(maxsize=256)
def _tables(m: int, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index tables for periodic analysis / synthesis along an axis of even length ``m``.

    analysis: ``ana[k, j] = (2k + j) mod m``  -> (m/2, L)
    synthesis (the adjoint, as a gather): sample ``n`` receives ``h[j] a[k]`` for every
    ``j`` with ``n - j`` even and ``k = ((n - j) mod m) / 2``; ``syn_k[n, i]`` holds those
    ``k`` and ``syn_j[n, i]`` the ``j`` (i = 0 .. L/2 - 1).
    """
    k = np.arange(m // 2)[:, None]
    j = np.arange(length)[None, :]
    ana = (2 * k + j) % m
    n = np.arange(m)[:, None]
    jj = (n % 2) + 2 * np.arange(length // 2)[None, :]  # taps of n's parity
    kk = ((n - jj) % m) // 2
    return torch.from_numpy(ana), torch.from_numpy(kk), torch.from_numpy(jj)


def _analysis_last(x: torch.Tensor, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """One level along the last axis: (..., n) -> (..., n) as [a, (carried sample), d]."""
    n = x.shape[-1]
    m = n - n % 2
    ana, _, _ = _tables(m, h.numel())
    xs = x[..., :m][..., ana.to(x.device)]  # (..., m/2, L)
    a = xs @ h
    d = xs @ g
    parts = [a, x[..., m:], d] if n % 2 else [a, d]
    return torch.cat(parts, dim=-1)


def _synthesis_last(c: torch.Tensor, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Inverse (= adjoint) of :func:`_analysis_last`."""
    n = c.shape[-1]
    m = n - n % 2
    half = m // 2
    a = c[..., :half]
    d = c[..., n - half:]
    _, kk, jj = _tables(m, h.numel())
    kk, jj = kk.to(c.device), jj.to(c.device)
    x = (a[..., kk] * h[jj]).sum(-1) + (d[..., kk] * g[jj]).sum(-1)  # (..., m)
    if n % 2:
        x = torch.cat([x, c[..., half:half + 1]], dim=-1)
    return x


def _filters_for(x: torch.Tensor, wavelet: str) -> tuple[torch.Tensor, torch.Tensor]:
    h, g = wavelet_filter(wavelet)
    dtype = x.dtype if x.is_complex() or x.is_floating_point() else torch.float32
    return h.to(device=x.device, dtype=dtype), g.to(device=x.device, dtype=dtype)


def _check(x: torch.Tensor, levels: int | None, wavelet: str) -> int:
    if not torch.is_tensor(x) or x.ndim < 2:
        raise ShapeError("wavelet transform: input must be a tensor (..., Y, X) with at least 2 dims")
    shape = (int(x.shape[-2]), int(x.shape[-1]))
    top = max_levels(shape)
    if levels is None:
        return default_levels(shape, wavelet)
    if not 1 <= levels <= top:
        raise ShapeError(
            f"wavelet transform: levels={levels} is not possible for an image {shape}: "
            f"use 1 .. {top} (or levels=None for the default)"
        )
    return int(levels)


def _band_sizes(shape: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    sizes, (ny, nx) = [], shape
    for _ in range(levels):
        sizes.append((ny, nx))
        ny, nx = (ny + 1) // 2, (nx + 1) // 2
    return sizes


def wavedec2(x: torch.Tensor, wavelet: str = "db4", levels: int | None = None) -> torch.Tensor:
    """Forward orthogonal 2-D wavelet transform over the last two axes.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., Y, X)``, real or complex (complex64 images in the package); any Y, X >= 2.
    wavelet : str
        ``"haar"`` or ``"db1"`` .. ``"db10"``.
    levels : int or None
        Decomposition levels, default :func:`default_levels`.

    Returns
    -------
    torch.Tensor
        Coefficients ``(..., Y, X)`` in the Mallat layout (module docstring), same dtype;
        ``||wavedec2(x)|| = ||x||``.
    """
    levels = _check(x, levels, wavelet)
    h, g = _filters_for(x, wavelet)
    c = x.clone()
    for ny, nx in _band_sizes((x.shape[-2], x.shape[-1]), levels):
        band = c[..., :ny, :nx]
        band = _analysis_last(band.transpose(-1, -2), h, g).transpose(-1, -2)  # along Y
        band = _analysis_last(band, h, g)  # along X
        c[..., :ny, :nx] = band
    return c


def waverec2(c: torch.Tensor, wavelet: str = "db4", levels: int | None = None) -> torch.Tensor:
    """Inverse (= adjoint) of :func:`wavedec2` with the same ``wavelet`` and ``levels``.

    Parameters
    ----------
    c : torch.Tensor
        Coefficients ``(..., Y, X)`` from :func:`wavedec2`.

    Returns
    -------
    torch.Tensor
        Image ``(..., Y, X)``; ``waverec2(wavedec2(x)) == x`` to rounding.
    """
    levels = _check(c, levels, wavelet)
    h, g = _filters_for(c, wavelet)
    x = c.clone()
    for ny, nx in reversed(_band_sizes((c.shape[-2], c.shape[-1]), levels)):
        band = x[..., :ny, :nx]
        band = _synthesis_last(band, h, g)  # along X
        band = _synthesis_last(band.transpose(-1, -2), h, g).transpose(-1, -2)  # along Y
        x[..., :ny, :nx] = band
    return x
