"""Coil sensitivity maps: ESPIRiT and Walsh adaptive combine, from time-averaged data.

Methods
-------
:func:`espirit`
    ESPIRiT (Uecker et al., "ESPIRiT -- an eigenvalue approach to autocalibrating parallel
    MRI: where SENSE meets GRAPPA", MRM 71:990-1001, 2014), one set of maps. The
    calibration region (centre ``calib_width`` of the k-space grid) is unfolded into a
    block-Hankel matrix of ``kernel_width x kernel_width`` patches; its right singular
    vectors above ``threshold * sigma_max`` span the signal space. At every pixel the
    maps are the dominant eigenvector of the image-space operator
    ``W(r) = (N / w^2) sum_k v_k(r) v_k(r)^H`` (``v_k`` = centred inverse FFT of kernel k
    zero-padded to the grid, ``N = Y X``, ``w`` the kernel width), the same operator and
    scaling as sigpy's ``EspiritCalib`` and BART's ``ecalib``. It is pure torch and runs on
    the device of its input (or ``device``): ``W`` is formed without the per-kernel image
    stack, as the centred inverse FFT of the ``(2w-1)^2`` autocorrelation of the kernels
    (``v_kc conj(v_kd)`` is the transform of the correlation of kernel c with kernel d),
    and the eigenvectors come from one batched ``torch.linalg.eigh`` over pixels (exact,
    where sigpy runs 100 power iterations). Phases are referenced to coil
    ``reference_coil`` (0 by default, as sigpy and BART do).
:func:`walsh`
    Walsh, Gmitro and Marcellin, "Adaptive reconstruction of phased array MR imagery",
    MRM 43:682-690, 2000. The coil covariance ``R(r) = mean_{r' in block(r)} I(r') I(r')^H``
    of the coil images is smoothed over a ``block x block`` box; its dominant eigenvector
    at each pixel is the map (unit norm), phase referenced to the coil with the most
    energy (or ``reference_coil``). With ``stride > 1`` the eigen-decomposition runs on a
    grid ``stride`` times coarser and the maps are bilinearly upsampled (sensitivities are
    smooth), which cuts the cost by ``stride^2``.
:func:`estimate_maps`
    From a one-slice :class:`~mridip.data.RawData`. Cartesian: k-space averaged over frames
    (the sum over frames divided by the number of frames that sampled each location, so
    the union of the frames' lines fills the centre); the largest centred fully sampled
    rectangle of that union is the calibration region (ESPIRiT uses at most
    ``calib_width`` of it; Walsh uses all of it, zero-padded to the grid, as low-resolution
    coil images). Radial: the spokes of all frames are concatenated and gridded, all coils
    in one NUFFT call (:func:`mridip.operators.nufft.nufft_adjoint`, finufft where
    installed), with density compensation (:func:`mridip.trajectories.pipe_dcf` or
    ``ramp_dcf``); ESPIRiT then calibrates
    on the centre of the gridded k-space, Walsh on the gridded coil images.

k-space convention: the package's centred orthonormal FFT (:mod:`mridip.fft`,
``fftshift(fft2(ifftshift(x), norm="ortho"))``, centre at ``(Ky // 2, Kx // 2)``) is the
same as sigpy's ``sp.fft(..., center=True)``, and the calibration window is cut at
``n // 2 - c // 2`` as sigpy's ``resize`` does, so both see the same calibration data
(tests/test_coils.py checks the maps agree to 4e-5 on real brain data).

Normalisation and valid mask
----------------------------
Every method returns ``(maps, valid)``: ``maps`` complex64 ``(C, Y, X)`` with
``sum_c |S_c|^2 = 1`` inside ``valid`` and 0 outside (see :func:`normalise_maps`), and
``valid`` bool ``(Y, X)``:

- ESPIRiT: the dominant eigenvalue of ``W`` exceeds ``crop`` (0.95); the eigenvalue is ~1
  where the data are explained by the calibrated kernels (inside the object) and drops
  towards 0 in the noise-only background (Uecker et al. 2014, section "Cropping").
- Walsh: the smoothed coil-combined magnitude ``sqrt(lambda_max(R))`` (a block-smoothed
  root-sum-of-squares) exceeds ``threshold`` (0.05) times its maximum over the image.

Every reconstruction is zero outside ``valid`` (no map there). :func:`estimate_maps`
therefore checks that the valid region holds the object: when more than
``SUPPORT_WARNING`` (10 %) of the energy of the time-averaged root-sum-of-squares coil
image lies outside it, it warns (measured: 0.5-1.4 % on the simulated cines at
R = 3-8 with enough calibration lines, 53 % when every frame sampled only its 8 centre
lines and ESPIRiT cropped 85 % of the field of view away).

Cost (measured on this project's shared 2-core CPU machine, one torch thread, wall
seconds, best of 2-3 runs; timings there vary by ~50 % with the load)
--------------------------------------------------------------------------------------
=======================  ========  ==================  ======================
case                     espirit   walsh (auto stride)  sigpy EspiritCalib
=======================  ========  ==================  ======================
128 x 128, 8 coils       0.12      0.12 (stride 1)      0.64
230 x 180, 8 coils       0.27      0.30 (stride 1)      1.16
128 x 128, 32 coils      1.7       0.9 (stride 2)       15.5
256 x 256, 32 coils      13        2.5 (stride 3)       --
=======================  ========  ==================  ======================

(Walsh at full resolution: 2.6 s at 128 x 128 x 32, 26 s at 256 x 256 x 32.) The cost
is dominated by the per-pixel ``C x C`` eigen-decompositions (``~ Y X C^3``); for many
coils compress them first (:mod:`mridip.preprocess`) or use Walsh with a stride.
Memory: ESPIRiT holds ``W`` as ``C^2 Y X`` complex64 values (0.5 GB at 256 x 256 x 32);
Walsh holds ``C (C + 1) / 2`` smoothed products per pixel at full resolution before
striding. Maps are computed once per reconstruction, on the reconstruction's device,
so neither is on the critical path of an iterative fit.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mridip.data import RawData
from mridip.device import resolve_device
from mridip.errors import ProtocolError, ShapeError
from mridip.fft import fft2c, ifft2c

METHODS = ("espirit", "walsh")
DCF_METHODS = ("auto", "pipe", "ramp")

_ESPIRIT_OPTIONS = {"calib_width", "kernel_width", "threshold", "crop", "reference_coil"}
_WALSH_OPTIONS = {"block", "stride", "threshold", "reference_coil"}
# options of estimate_maps itself (radial gridding), valid for both methods
_GRID_OPTIONS = {"dcf", "dcf_iterations"}


# --------------------------------------------------------------------------- helpers
def _as_complex(t: Any, fn: str, what: str, ndim: int, shape_doc: str) -> torch.Tensor:
    """Check ``t`` is a complex tensor (or array) of ``ndim`` dimensions; return complex64."""
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(t)
    if not torch.is_tensor(t):
        raise ShapeError(f"{fn}: {what} must be a complex torch tensor {shape_doc}, got {type(t).__name__}")
    if not t.is_complex():
        raise ShapeError(f"{fn}: {what} must be complex (complex64) {shape_doc}, got dtype {t.dtype}")
    if t.ndim != ndim:
        raise ShapeError(f"{fn}: {what} must be {shape_doc}, got shape {tuple(t.shape)}")
    return t.to(torch.complex64)


def _pick_device(t: torch.Tensor, device: str | torch.device | None) -> torch.device:
    return t.device if device is None else resolve_device(device)


def _pair(v: int | tuple[int, int], fn: str, name: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        v = (int(v), int(v))
    try:
        a, b = (int(v[0]), int(v[1]))
    except (TypeError, IndexError, ValueError) as exc:
        raise ProtocolError(f"{fn}: {name} must be an int or a pair (y, x) of ints, got {v!r}") from exc
    if a < 1 or b < 1:
        raise ProtocolError(f"{fn}: {name} must be positive, got {v!r}")
    return a, b


def centre_slices(full: tuple[int, int], size: tuple[int, int]) -> tuple[slice, slice]:
    """Slices of the centred ``size`` window of a ``full`` grid (centre at index n // 2, as sigpy's resize)."""
    return tuple(slice(n // 2 - s // 2, n // 2 - s // 2 + s) for n, s in zip(full, size))  # type: ignore[return-value]


def _reference_phase(maps: torch.Tensor, ref: int) -> torch.Tensor:
    """Multiply every pixel of ``maps`` (C, Y, X) by the conjugate phase of coil ``ref``."""
    r = maps[ref]
    mag = r.abs()
    unit = torch.where(mag > 0, r / mag.clamp_min(torch.finfo(mag.dtype).tiny), torch.ones_like(r))
    return maps * unit.conj()


def _check_reference(ref: int | None, C: int, fn: str) -> None:
    if ref is not None and not (-C <= int(ref) < C):
        raise ProtocolError(f"{fn}: reference_coil {ref} out of range for {C} coils (use 0 .. {C - 1})")


# --------------------------------------------------------------------------- ESPIRiT
@torch.no_grad()
def espirit(
    calib_kspace: torch.Tensor,
    *,
    calib_width: int | tuple[int, int] = 24,
    kernel_width: int = 6,
    threshold: float = 0.02,
    crop: float = 0.95,
    reference_coil: int = 0,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ESPIRiT coil maps (Uecker et al., MRM 2014), one set of maps.

    Parameters
    ----------
    calib_kspace : torch.Tensor
        complex ``(C, Ky, Kx)`` k-space on the full grid (centred orthonormal convention of
        :mod:`mridip.fft`, centre at ``(Ky // 2, Kx // 2)``). Only the centred
        ``calib_width`` window is read; it must be fully sampled.
    calib_width : int or (int, int)
        Size of the calibration window ``(cy, cx)`` (clipped to the grid).
    kernel_width : int
        ESPIRiT kernel size ``w`` (patches ``w x w``).
    threshold : float
        Singular values above ``threshold * sigma_max`` of the calibration matrix span the
        signal space.
    crop : float
        Pixels whose dominant eigenvalue is ``<= crop`` are set to 0 (outside ``valid``).
    reference_coil : int
        Coil whose phase is removed from all maps at every pixel (0, as sigpy and BART).
    device : str, torch.device or None
        Where to compute and return (default: the device of ``calib_kspace``).

    Returns
    -------
    maps : torch.Tensor
        complex64 ``(C, Y, X)`` with ``(Y, X) = (Ky, Kx)``; unit norm over coils inside
        ``valid``, 0 outside.
    valid : torch.Tensor
        bool ``(Y, X)``, dominant eigenvalue ``> crop``.

    Raises
    ------
    ShapeError
        ``calib_kspace`` is not complex ``(C, Ky, Kx)`` or the calibration window is smaller
        than the kernel.
    """
    fn = "espirit"
    k = _as_complex(calib_kspace, fn, "calib_kspace", 3, "(C, Ky, Kx)")
    dev = _pick_device(k, device)
    k = k.to(dev)
    C, Ky, Kx = k.shape
    _check_reference(reference_coil, C, fn)
    cy, cx = _pair(calib_width, fn, "calib_width")
    cy, cx = min(cy, Ky), min(cx, Kx)
    w = int(kernel_width)
    if w < 1 or w > min(cy, cx) or 2 * w - 1 > min(Ky, Kx):
        raise ShapeError(
            f"{fn}: kernel_width {kernel_width} does not fit the calibration window ({cy}, {cx}) "
            f"of the ({Ky}, {Kx}) grid: use a kernel_width <= {min(cy, cx)} (6 is usual) or "
            "a larger calib_width"
        )
    calib = k[(slice(None),) + centre_slices((Ky, Kx), (cy, cx))]  # (C, cy, cx)

    # Block-Hankel calibration matrix: one row per w x w patch, columns ordered (coil, ky, kx).
    patches = calib.unfold(1, w, 1).unfold(2, w, 1)  # (C, ny, nx, w, w)
    mat = patches.permute(1, 2, 0, 3, 4).reshape(-1, C * w * w)
    _, s, vh = torch.linalg.svd(mat, full_matrices=False)
    V = vh[s > threshold * s.max()]  # (nk, C w^2): rows span the signal space
    if V.shape[0] == 0:
        raise ShapeError(f"{fn}: the calibration region is all zeros: no signal to calibrate on")

    # Q[(c,a),(d,b)] = sum_k V[k,(c,a)] conj(V[k,(d,b)]); the autocorrelation
    # G_cd[delta] = sum_{a-b=delta} Q[(c,a),(d,b)] is the k-space of W_cd = sum_k v_kc conj(v_kd).
    Q = (V.transpose(0, 1) @ V.conj()).reshape(C, w, w, C, w, w)
    G = torch.zeros(C, C, 2 * w - 1, 2 * w - 1, dtype=k.dtype, device=dev)
    for a1 in range(w):
        for a2 in range(w):
            # delta = a - b -> index a - b + w - 1; b runs backwards over a .. a + w - 1
            G[:, :, a1 : a1 + w, a2 : a2 + w] += Q[:, a1, a2].flip(-1, -2)
    Gpad = torch.zeros(C, C, Ky, Kx, dtype=k.dtype, device=dev)
    Gpad[(slice(None), slice(None)) + centre_slices((Ky, Kx), (2 * w - 1, 2 * w - 1))] = G
    # W(r) = (N / w^2) (1/N) sum_delta G[delta] e^{i 2 pi delta r / N} = sqrt(N)/w^2 ifft2c(Gpad)
    N = Ky * Kx
    W = ifft2c(Gpad) * (math.sqrt(N) / (w * w))  # (C, C, Y, X)
    del Gpad
    W = W.permute(2, 3, 0, 1)  # (Y, X, C, C), Hermitian per pixel
    W = 0.5 * (W + W.conj().transpose(-1, -2))
    evals, evecs = torch.linalg.eigh(W)  # ascending
    del W
    lam = evals[..., -1]  # (Y, X)
    maps = evecs[..., -1].permute(2, 0, 1).contiguous()  # (C, Y, X)
    maps = _reference_phase(maps, int(reference_coil))
    valid = lam > crop
    maps = maps * valid
    return maps.to(torch.complex64), valid


# --------------------------------------------------------------------------- Walsh
#: Work budget of a full-resolution Walsh decomposition, pixels x coils^2 (see auto_stride).
WALSH_FULL_RES_BUDGET = 2**23


def auto_stride(coils: int, image_shape: tuple[int, int]) -> int:
    """Walsh grid stride keeping ``(Y X / stride^2) C^2 <= 2^23`` (about 1 s on one CPU core).

    The per-pixel eigen-decompositions cost ``~ C^3`` each and the covariance ``C^2`` values
    per pixel; sensitivities are smooth, so a coarser grid loses nothing visible.
    """
    y, x = image_shape
    return max(1, math.ceil(math.sqrt(y * x * coils * coils / WALSH_FULL_RES_BUDGET)))


@torch.no_grad()
def walsh(
    coil_images: torch.Tensor,
    *,
    block: int = 7,
    stride: int | None = None,
    threshold: float = 0.05,
    reference_coil: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Walsh adaptive-combine coil maps (Walsh et al., MRM 2000).

    At every pixel ``r`` the map is the dominant eigenvector of the block-smoothed coil
    covariance ``R(r) = mean_{r' in block(r)} I(r') I(r')^H``.

    Parameters
    ----------
    coil_images : torch.Tensor
        complex ``(C, Y, X)`` coil images (low resolution is fine: maps are smooth).
    block : int
        Odd side of the square smoothing window, pixels.
    stride : int or None
        Eigen-decompose on a grid ``stride`` times coarser and upsample bilinearly
        (``1``: every pixel). ``None``: :func:`auto_stride` (1 up to 128 x 128 x 22 coils
        or 230 x 180 x 14, 2 for 128 x 128 x 32, 3 for 256 x 256 x 32).
    threshold : float
        ``valid`` where the smoothed coil-combined magnitude ``sqrt(lambda_max(R))``
        exceeds ``threshold`` times its maximum.
    reference_coil : int or None
        Coil whose phase is removed from all maps; ``None``: the coil with the most energy
        (its phase is the best defined over the object).
    device : str, torch.device or None
        Where to compute and return (default: the device of ``coil_images``).

    Returns
    -------
    maps : torch.Tensor
        complex64 ``(C, Y, X)``, unit norm over coils inside ``valid``, 0 outside.
    valid : torch.Tensor
        bool ``(Y, X)``.
    """
    fn = "walsh"
    img = _as_complex(coil_images, fn, "coil_images", 3, "(C, Y, X)")
    dev = _pick_device(img, device)
    img = img.to(dev)
    C, Y, X = img.shape
    _check_reference(reference_coil, C, fn)
    block = int(block)
    if block < 1 or block % 2 == 0:
        raise ProtocolError(f"{fn}: block must be a positive odd number of pixels (e.g. 7), got {block}")
    if stride is None:
        stride = auto_stride(C, (Y, X))
    stride = int(stride)
    if stride < 1:
        raise ProtocolError(f"{fn}: stride must be >= 1, got {stride}")

    # Coil covariance, box-smoothed (count_include_pad=False: edges average what exists).
    # Only the upper triangle c <= d is needed; R is Hermitian.
    iu = torch.triu_indices(C, C, device=dev)
    outer = img[iu[0]] * img[iu[1]].conj()  # (P, Y, X), P = C(C+1)/2
    ch = torch.view_as_real(outer).permute(0, 3, 1, 2).reshape(1, -1, Y, X)  # (1, 2P, Y, X)
    del outer
    # separable box mean (the count of in-image pixels of a window factorises too)
    pool = dict(count_include_pad=False, ceil_mode=True)
    sm = F.avg_pool2d(ch, (block, 1), stride=(stride, 1), padding=(block // 2, 0), **pool)
    del ch
    sm = F.avg_pool2d(sm, (1, block), stride=(1, stride), padding=(0, block // 2), **pool)
    Ys, Xs = sm.shape[-2:]
    sm = sm.reshape(-1, 2, Ys, Xs).permute(0, 2, 3, 1).contiguous()
    upper = torch.view_as_complex(sm)  # (P, Ys, Xs)
    R = torch.zeros(Ys, Xs, C, C, dtype=torch.complex64, device=dev)
    R[:, :, iu[0], iu[1]] = upper.permute(1, 2, 0)
    R = R + R.conj().transpose(-1, -2) - torch.diag_embed(torch.diagonal(R, dim1=-2, dim2=-1))
    evals, evecs = torch.linalg.eigh(R)
    del R
    lam = evals[..., -1].clamp_min(0)  # (Ys, Xs) local power of the dominant mode
    maps = evecs[..., -1].permute(2, 0, 1).contiguous()  # (C, Ys, Xs)
    ref = int(torch.argmax(img.abs().pow(2).sum((-2, -1)))) if reference_coil is None else int(reference_coil)
    maps = _reference_phase(maps, ref)
    mag = lam.sqrt()
    if stride > 1:
        # phase-referenced maps are smooth: interpolate real and imaginary parts
        # coarse sample i sits at fine pixel i * stride (window centre): align_corners
        # interpolation onto ((n - 1) stride + 1) >= Y pixels, then crop
        fine = ((Ys - 1) * stride + 1, (Xs - 1) * stride + 1)
        up = F.interpolate(torch.view_as_real(maps).permute(0, 3, 1, 2), size=fine,
                           mode="bilinear", align_corners=True)[..., :Y, :X]
        maps = torch.view_as_complex(up.permute(0, 2, 3, 1).contiguous())
        mag = F.interpolate(mag[None, None], size=fine, mode="bilinear", align_corners=True)[0, 0, :Y, :X]
    valid = mag > threshold * mag.max()
    return normalise_maps(maps, valid), valid


# --------------------------------------------------------------------------- normalisation
def normalise_maps(maps: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Scale maps to unit root-sum-of-squares over coils inside ``valid``, 0 outside.

    Parameters
    ----------
    maps : torch.Tensor
        complex ``(C, Y, X)``.
    valid : torch.Tensor or None
        bool ``(Y, X)``; ``None``: every pixel where ``sum_c |S_c|^2 > 0``.

    Returns
    -------
    torch.Tensor
        complex64 ``(C, Y, X)`` with ``sum_c |S_c|^2 = 1`` where ``valid`` (and the maps are
        not all zero) and ``S = 0`` elsewhere.
    """
    fn = "normalise_maps"
    m = _as_complex(maps, fn, "maps", 3, "(C, Y, X)")
    norm = m.abs().pow(2).sum(0).sqrt()  # (Y, X)
    if valid is None:
        valid = norm > 0
    else:
        if not torch.is_tensor(valid) or tuple(valid.shape) != tuple(m.shape[1:]):
            got = tuple(valid.shape) if torch.is_tensor(valid) else type(valid).__name__
            raise ShapeError(f"{fn}: valid must be a bool tensor (Y, X) = {tuple(m.shape[1:])}, got {got}")
        valid = valid.to(device=m.device, dtype=torch.bool) & (norm > 0)
    scale = torch.where(valid, 1.0 / norm.clamp_min(torch.finfo(norm.dtype).tiny), torch.zeros_like(norm))
    return m * scale


# --------------------------------------------------------------------------- from RawData
#: fraction of the coil-image energy outside ``valid`` above which estimate_maps warns
SUPPORT_WARNING = 0.10


def signal_outside(coil_images: torch.Tensor, valid: torch.Tensor) -> float:
    """Fraction of the root-sum-of-squares energy of ``coil_images`` (complex ``(C, Y, X)``)
    at pixels where ``valid`` (bool ``(Y, X)``) is False, in [0, 1]."""
    e = (coil_images.abs() ** 2).sum(0)
    total = float(e.sum())
    return float(e[~valid.to(e.device)].sum()) / total if total > 0 else 0.0


def _check_support(coil_images: torch.Tensor, valid: torch.Tensor, method: str) -> None:
    frac = signal_outside(coil_images, valid)
    if frac > SUPPORT_WARNING:
        warnings.warn(
            f"estimate_maps: {100 * frac:.0f} % of the signal energy of the time-averaged coil "
            f"images lies outside the {method} maps' valid region ({100 * float(valid.float().mean()):.0f} % "
            "of the field of view); every reconstruction is zero there. The calibration data "
            "are probably too few: use coils.method = 'walsh', a lower coils.crop (ESPIRiT), "
            "or data with more calibration lines",
            stacklevel=3,
        )


def centre_rectangle(full: torch.Tensor, cap: tuple[int, int] | None) -> tuple[int, int]:
    """Largest centred fully sampled rectangle ``(h, w)`` of a bool grid ``(Ky, Kx)``.

    Windows follow :func:`centre_slices` (so every centred sub-window of the result is
    fully sampled too). Maximises ``min(h, cap_y) * min(w, cap_x)`` (area where ``cap`` is
    None), preferring the larger area on ties.
    """
    full_np = full.detach().cpu().numpy().astype(bool)
    Ky, Kx = full_np.shape
    cap_y, cap_x = cap if cap is not None else (Ky, Kx)
    best, best_key = (0, 0), (0, 0)
    for h in range(1, Ky + 1):
        rows = full_np[centre_slices((Ky, Kx), (h, 1))[0]]
        cols = rows.all(0)  # (Kx,)
        if not cols[Kx // 2]:
            break  # rows added further out only remove columns
        # largest w with the centred window [Kx//2 - w//2, Kx//2 - w//2 + w) all True:
        # with L True columns left of the centre and R from the centre on (inclusive),
        # w // 2 <= L and w - w // 2 <= R, so w = min(2 L + 1, 2 R)
        right = int(np.cumprod(cols[Kx // 2 :]).sum())
        left = int(np.cumprod(cols[: Kx // 2][::-1]).sum())
        w = min(2 * left + 1, 2 * right)
        key = (min(h, cap_y) * min(w, cap_x), h * w)
        if key > best_key:
            best, best_key = (h, w), key
    return best


def _time_averaged_cartesian(raw: RawData) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, Ky, Kx) k-space averaged over frames where sampled, and the union mask (Ky, Kx).

    Where the slice has calibration (ACS) data (``raw.calibration``), those samples take
    the place of the frame average, as Gadgetron calibrates on its reference buffer: they
    are what the sequence measured for calibration (one contrast, often more lines than
    any frame), and an average over frames can cancel where the contrast changes sign
    (inversion recovery, MOLLI). The fully sampled centre that ESPIRiT and Walsh calibrate
    on is then the ACS block joined with what the frames sampled.
    """
    k = raw.kspace[0]  # (T, C, Ky, Kx)
    m = raw.mask[0].to(k.device)  # (T, Ky, Kx)
    count = m.sum(0).to(torch.float32)  # (Ky, Kx) frames that sampled each location
    ksum = (k * m[:, None]).sum(0)  # (C, Ky, Kx); unsampled entries are 0 anyway
    avg = (ksum / count.clamp_min(1.0)).to(torch.complex64)
    union = count > 0
    if raw.calibration is not None:
        cm = raw.calibration_mask[0].to(k.device)  # (Ky, Kx)
        avg = torch.where(cm, raw.calibration[0].to(device=k.device, dtype=torch.complex64), avg)
        union = union | cm
    return avg, union


def _gridded_coil_images(raw: RawData, dcf: str, dcf_iterations: int | None, device: torch.device,
                         backend: str | None = "auto") -> torch.Tensor:
    """Coil images (C, Y, X) from all spokes of all frames: ``NUFFT^H(dcf * y)``, all coils in one call.

    ``dcf``: ``"ramp"``, ``"pipe"`` or ``"auto"``: Pipe's iteration where it is fast
    (finufft's spreading on CPU, ~0.5 s for 30 iterations of 26 k samples; torchkbnufft on
    CUDA); on a CPU without finufft (torchkbnufft's interpolation: ~1.5 s per iteration)
    the analytic ramp where :func:`mridip.trajectories.full_spoke_samples` finds
    full-diameter spokes. Pipe is kept where it is affordable because for undersampled
    spokes the ramp over-weights the sparse outer k-space: measured median map error
    ``1 - |<S, S_true>|`` 7e-4 (ramp) against 3.5e-5 (Pipe) on 40 spokes at 64 x 64.
    The NUFFT is ``backend``'s (finufft where installed), all coils in one call.
    """
    try:
        from mridip.operators.nufft import nufft_adjoint
        from mridip.trajectories import full_spoke_samples, pipe_dcf, ramp_dcf
    except ImportError as exc:  # pragma: no cover - only while the radial operator is missing
        raise ProtocolError(
            "estimate_maps: radial data need mridip.operators.nufft and "
            "mridip.trajectories.pipe_dcf / ramp_dcf, which this installation lacks"
        ) from exc
    Y, X = raw.image_shape
    if Y < 1 or X < 1:
        raise ShapeError(
            "estimate_maps: radial RawData has no image size (header.recon_matrix is 0): "
            "set raw.header.recon_matrix = (X, Y, 1)"
        )
    k = raw.kspace[0].to(device)  # (T, C, K)
    traj = raw.trajectory[0].to(device=device, dtype=torch.float32)  # (T, 2, K)
    T, C, K = k.shape
    if dcf == "auto":
        from mridip.operators.nufft import available_backends

        fast_pipe = device.type == "cuda" or "finufft" in available_backends("cpu")
        dcf = "pipe" if fast_pipe or full_spoke_samples(traj) is None else "ramp"
    traj_all = traj.permute(1, 0, 2).reshape(1, 2, T * K)  # every frame's spokes, one set
    y_all = k.permute(1, 0, 2).reshape(1, C, T * K)  # (1, C, T K)
    if dcf == "pipe":
        its = {} if dcf_iterations is None else {"iterations": dcf_iterations}
        w = pipe_dcf(traj_all, (Y, X), backend=backend, **its)
    else:
        w = ramp_dcf(traj_all, (Y, X))
    w = w.to(device=device, dtype=torch.float32).reshape(1, 1, T * K)
    # the adjoint of RadialSense with unit maps and weights w, i.e. NUFFT^H(w y) / sqrt(YX)
    return nufft_adjoint(y_all * w, traj_all, (Y, X), backend=backend)[0]  # (C, Y, X)


def _calibration_hint(raw: RawData) -> str:
    if raw.calibration is None:
        return " (the data hold no calibration lines, ISMRMRD flags 20 / 21)"
    rows = int(raw.calibration_mask[0].any(-1).sum())
    return f" (with the file's {rows} calibration lines)"


@torch.no_grad()
def estimate_maps(
    raw: RawData,
    method: str = "espirit",
    *,
    device: str | torch.device | None = None,
    nufft_backend: str = "auto",
    **options: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coil maps of one slice from its time-averaged data.

    Parameters
    ----------
    raw : RawData
        One slice (``raw.kspace`` ``(1, T, C, ...)``; use ``raw.slice(s)``), Cartesian or radial.
    method : str
        ``"espirit"`` or ``"walsh"``.
    device : str, torch.device or None
        Where to compute and return (default: the device of ``raw.kspace``).
    nufft_backend : str
        Radial only: the NUFFT of the gridding and DCF (:mod:`mridip.operators.nufft`;
        ``"auto"``: the fastest installed).
    **options
        Passed to :func:`espirit` (``calib_width``, ``kernel_width``, ``threshold``,
        ``crop``, ``reference_coil``) or :func:`walsh` (``block``, ``stride``,
        ``threshold``, ``reference_coil``). Radial only: ``dcf`` (``"auto"`` default: Pipe's
        iteration where a fast NUFFT backend makes it cheap, else the analytic ramp for
        full-diameter spokes; or ``"pipe"``, ``"ramp"``) and ``dcf_iterations`` (default:
        ``pipe_dcf``'s). Cartesian Walsh also takes
        ``calib_width`` (cap on the low-resolution calibration region; default: all of
        the fully sampled centre).

    Returns
    -------
    maps : torch.Tensor
        complex64 ``(C, Y, X)``, ``sum_c |S_c|^2 = 1`` inside ``valid``, 0 outside.
    valid : torch.Tensor
        bool ``(Y, X)`` (see the module docstring).

    Warns
    -----
    UserWarning
        More than ``SUPPORT_WARNING`` of the time-averaged coil images' energy lies outside
        ``valid`` (see the module docstring): the maps would cut the object.

    Raises
    ------
    ProtocolError
        Unknown ``method`` or option, or a fully sampled centre too small to calibrate on.
    ShapeError
        ``raw`` is not a one-slice :class:`RawData`.
    """
    fn = "estimate_maps"
    if not isinstance(raw, RawData):
        raise ShapeError(f"{fn}: raw must be a mridip.data.RawData, got {type(raw).__name__}")
    if raw.num_slices != 1:
        raise ShapeError(
            f"{fn}: raw holds {raw.num_slices} slices; maps are per slice: pass raw.slice(s)"
        )
    method = str(method).lower()
    if method not in METHODS:
        raise ProtocolError(f"{fn}: unknown coil map method {method!r}; allowed: {', '.join(METHODS)}")
    allowed = (_ESPIRIT_OPTIONS if method == "espirit" else _WALSH_OPTIONS | {"calib_width"}) | _GRID_OPTIONS
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ProtocolError(
            f"{fn}: unknown option(s) {unknown} for method {method!r}; allowed: {sorted(allowed)}"
        )
    dcf = str(options.pop("dcf", "auto")).lower()
    dcf_iterations = options.pop("dcf_iterations", None)
    dcf_iterations = None if dcf_iterations is None else int(dcf_iterations)
    if dcf not in DCF_METHODS:
        raise ProtocolError(f"{fn}: unknown dcf {dcf!r}; allowed: {', '.join(DCF_METHODS)}")
    dev = _pick_device(raw.kspace, device)

    if raw.kind == "cartesian":
        avg, union = _time_averaged_cartesian(raw)
        avg = avg.to(dev)
        if method == "espirit":
            cap = _pair(options.pop("calib_width", 24), fn, "calib_width")
            kw = int(options.get("kernel_width", 6))
            h, w = centre_rectangle(union, cap)
            cy, cx = min(h, cap[0]), min(w, cap[1])
            if min(cy, cx) < kw + 2:
                raise ProtocolError(
                    f"{fn}: the fully sampled k-space centre (union over frames) is only "
                    f"{h} x {w}, too small for ESPIRiT with kernel_width {kw}" + _calibration_hint(raw)
                    + ": use method='walsh', a smaller kernel_width, or data with more calibration lines"
                )
            maps, valid = espirit(avg, calib_width=(cy, cx), **options)
            _check_support(ifft2c(avg), valid, method)
            return maps, valid
        cap = options.pop("calib_width", None)
        cap = None if cap is None else _pair(cap, fn, "calib_width")
        h, w = centre_rectangle(union, cap)
        if cap is not None:
            h, w = min(h, cap[0]), min(w, cap[1])
        if min(h, w) < 4:
            raise ProtocolError(
                f"{fn}: the fully sampled k-space centre (union over frames) is only {h} x {w} "
                "lines" + _calibration_hint(raw) + ": too small for coil maps; acquire calibration lines"
            )
        low = torch.zeros_like(avg)
        win = (slice(None),) + centre_slices(tuple(avg.shape[-2:]), (h, w))
        low[win] = avg[win]
        maps, valid = walsh(ifft2c(low), **options)
        _check_support(ifft2c(avg), valid, method)
        return maps, valid

    imgs = _gridded_coil_images(raw, dcf, dcf_iterations, dev, backend=nufft_backend)
    if method == "espirit":
        maps, valid = espirit(fft2c(imgs), **options)
    else:
        maps, valid = walsh(imgs, **options)
    _check_support(imgs, valid, method)
    return maps, valid


__all__ = ["espirit", "walsh", "normalise_maps", "estimate_maps", "auto_stride", "signal_outside",
           "SUPPORT_WARNING", "METHODS"]
