"""GRAPPA: k-space interpolation of the missing phase-encode lines (Griswold et al., MRM 2002).

GRAPPA (GeneRalized Autocalibrating Partially Parallel Acquisitions; M. A. Griswold et al.,
Magn. Reson. Med. 47:1202-1210, 2002) fills every missing k-space point of coil ``c`` as a
linear combination of the measured points of *all* coils around it::

    k_c(ky, kx) = sum_{c', o, d} w_{c, c', o, d} k_{c'}(ky + o, kx + d)

with ``o`` the ky offsets of the nearest measured lines (the "source" lines) and ``d`` the
readout offsets. The weights ``w`` are fitted on the fully sampled calibration (ACS) block,
where every point is known, by Tikhonov-regularised least squares::

    W = argmin ||S W - T||_F^2 + (lam * sigma_max(S))^2 ||W||_F^2

``S`` (M, N) holds, for every ACS position whose source window lies in the ACS, the
``N = (source lines) x (readout points) x C`` source values, ``T`` (M, C) the target values
of all coils; ``sigma_max(S)`` is the calibration matrix's largest singular value, so
``lam`` is relative and one value (0.01, the usual choice) works whatever the data scale.

Sampling patterns. The weights depend on where the source lines lie relative to the
target. For each missing line of each frame the sources are the ``kernel_size[0]`` nearest
measured lines (``kernel_size[0] // 2`` below, the rest above; where one side runs out, the
other side gives more); the tuple of their ky offsets is the line's *pattern*, and one
kernel is fitted per distinct pattern (shared by every frame and line with that pattern).
A regular R gives R - 1 patterns (plus a few near the ACS block and the k-space edges); any
irregular mask (regular R plus extra ACS lines, variable density) works the same way. A
pattern whose span does not fit in the ACS block (or that leaves fewer calibration
equations than unknowns) loses its farthest source line until it fits
(``info["reduced_patterns"]``); a line that even its nearest source line cannot reach is
left zero (``info["unfilled_lines"]``; the outer lines of partial-Fourier data).

Measured samples are kept as measured (data consistency); the filled coil k-space is
combined into one image (:func:`combine_coils`). Everything runs in torch on the device of
the data (CPU or CUDA), complex64, except the small kernel fits (N x N normal equations),
which use complex128.

Functions: :func:`grappa` (the ``grappa`` baseline, ``f(A, y, **params) -> (x, info)``),
:func:`grappa_kspace` (the filled coil k-space), :func:`calibrate_kernel` (one pattern's
weights), :func:`time_averaged_calibration`, :func:`combine_coils`, :func:`run_grappa`
(the pipeline runner that hands the slice's ACS data to :func:`grappa`).
"""

from __future__ import annotations

import time
import warnings
from collections import Counter, defaultdict
from typing import Any, Sequence

import numpy as np
import torch

from mridip.errors import ProtocolError, ShapeError
from mridip.fft import ifft2c

__all__ = [
    "grappa", "grappa_kspace", "calibrate_kernel", "time_averaged_calibration", "combine_coils",
    "run_grappa", "COMBINE",
]

Tensor = torch.Tensor

#: Coil combinations of :func:`grappa`.
COMBINE = ("sense", "rss")

#: Elements of one gathered source block (positions x N); bounds the memory of the apply step.
_CHUNK_ELEMENTS = 1 << 22


# ----------------------------------------------------------------------------- checks
def _kernel_size(kernel_size: Sequence[int]) -> tuple[int, int]:
    try:
        ky, kx = (int(v) for v in kernel_size)
        ok = all(int(v) == v for v in kernel_size) and ky >= 1 and kx >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ProtocolError(
            f"grappa: kernel_size must be two whole numbers >= 1 (source lines along ky, readout points "
            f"along kx), e.g. baseline.kernel_size = [4, 5]; got {kernel_size!r}"
        )
    return ky, kx


def _line_axis(mask: Tensor) -> str:
    """``"ky"`` when the mask (T, Ky, Kx) samples whole rows, ``"kx"`` when whole columns."""
    rows = mask.any(-1, keepdim=True).expand_as(mask)
    if bool((rows == mask).all()):
        return "ky"
    cols = mask.any(-2, keepdim=True).expand_as(mask)
    if bool((cols == mask).all()):
        return "kx"
    raise ShapeError(
        "grappa: the sampling mask is not made of whole lines (it is not constant along kx, nor along "
        "ky): GRAPPA here interpolates along one phase-encode axis; use cg-sense or l1-wavelet for 2-D "
        "(Poisson-disc, random) sampling"
    )


# ------------------------------------------------------------------------ calibration
def time_averaged_calibration(kspace: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Calibration data from the k-space itself: the time average's fully sampled centre.

    Each k-space point is averaged over the frames that measured it; the calibration block
    is the contiguous run of lines around ``Ky // 2`` that some frame measured (for one
    frame: the embedded, fully sampled ACS centre).

    Parameters
    ----------
    kspace : torch.Tensor
        complex64 ``(T, C, Ky, Kx)``, zero where not measured.
    mask : torch.Tensor
        bool ``(T, Ky, Kx)``, whole lines along kx.

    Returns
    -------
    calibration, calibration_mask
        complex64 ``(C, Ky, Kx)`` (zero outside the block) and bool ``(Ky, Kx)``.
    """
    m = mask.to(kspace.device).bool()
    count = m.sum(0)  # (Ky, Kx)
    avg = (kspace * m.unsqueeze(1)).sum(0) / count.clamp(min=1).unsqueeze(0)
    lines = (count > 0).all(-1).cpu().numpy()  # (Ky,) lines measured in some frame
    ny = lines.size
    c = ny // 2
    block = np.zeros(ny, dtype=bool)
    if lines[c]:
        lo, hi = c, c
        while lo > 0 and lines[lo - 1]:
            lo -= 1
        while hi < ny - 1 and lines[hi + 1]:
            hi += 1
        block[lo : hi + 1] = True
    cmask = torch.from_numpy(block).to(kspace.device)[:, None].expand(m.shape[1:]).clone()
    return (avg * cmask).to(torch.complex64), cmask


def _unfold_kx(k: Tensor, kx_size: int) -> Tensor:
    """(..., Ky, Kx) -> (..., Ky, Kx, kx_size): element [..., kx, j] = k[..., kx + j - left] (0 outside)."""
    left = (kx_size - 1) // 2
    right = kx_size - 1 - left
    pad = torch.nn.functional.pad(k, (left, right)) if k.dtype != torch.bool else \
        torch.nn.functional.pad(k.to(torch.uint8), (left, right)).bool()
    return pad.unfold(-1, kx_size, 1)


def _sources(U: Tensor, frames: Tensor, rows: Tensor, offsets: Tensor) -> Tensor:
    """Source values of targets ``(frames[i], rows[i])``: ``U`` (T, C, Ky, Kx, n_kx) ->
    (n, Kx, N) with N ordered (offset, readout point, coil), the order of the kernels' rows."""
    idx = rows[:, None] + offsets[None, :]  # (n, n_o)
    src = U[frames[:, None], :, idx]  # (n, n_o, C, Kx, n_kx)
    n, n_o, c, kx, n_kx = src.shape
    return src.permute(0, 3, 1, 4, 2).reshape(n, kx, n_o * n_kx * c)


def calibrate_kernel(
    calibration: Tensor,
    calibration_mask: Tensor,
    offsets: Sequence[int],
    *,
    kernel_kx: int = 5,
    lam: float = 0.01,
) -> tuple[Tensor | None, dict]:
    """GRAPPA weights of one sampling pattern, fitted on the ACS block.

    Solves ``min_W ||S W - T||_F^2 + (lam sigma_max(S))^2 ||W||_F^2`` (complex128), with one
    row of ``S`` per ACS position ``(ky, kx)`` whose target and whole source window
    (lines ``ky + offsets``, readout points ``kx - (kernel_kx - 1) // 2 ...``) are measured
    calibration points, and ``T`` the targets of all coils there.

    Parameters
    ----------
    calibration : torch.Tensor
        complex ``(C, Ky, Kx)`` ACS k-space on the data's grid (zero elsewhere).
    calibration_mask : torch.Tensor
        bool ``(Ky, Kx)``, True where ``calibration`` was measured.
    offsets : sequence of int
        ky offsets of the source lines relative to the target line (non-zero).
    kernel_kx : int
        Readout points of the kernel (centred on the target; an even count has one more
        point at lower kx).
    lam : float
        Tikhonov weight relative to ``sigma_max(S)``.

    Returns
    -------
    W, info
        ``W`` complex128 ``(N, C)``, ``N = len(offsets) * kernel_kx * C`` ordered (offset,
        readout point, source coil), or ``None`` when the ACS block has fewer usable
        positions than unknowns; ``info``: ``equations`` (M), ``unknowns`` (N),
        ``lam_effective`` (``lam * sigma_max``).
    """
    c, ny, _ = calibration.shape
    dev = calibration.device
    off = torch.as_tensor(list(offsets), dtype=torch.long, device=dev)
    n_unknowns = int(off.numel()) * kernel_kx * c
    cm = calibration_mask.to(dev).bool()
    mU = _unfold_kx(cm, kernel_kx).all(-1)  # (Ky, Kx): the whole readout window measured
    rows = torch.arange(ny, device=dev)
    inside = ((rows[:, None] + off[None, :]) >= 0).all(1) & ((rows[:, None] + off[None, :]) < ny).all(1)
    rows = rows[inside]
    info: dict[str, Any] = {"equations": 0, "unknowns": n_unknowns, "lam_effective": 0.0}
    if rows.numel() == 0:
        return None, info
    valid = cm[rows] & mU[rows[:, None] + off[None, :]].all(1)  # (n_r, Kx)
    keep = valid.any(1)
    rows, valid = rows[keep], valid[keep]
    m = int(valid.sum())
    info["equations"] = m
    if m < n_unknowns:
        return None, info
    U = _unfold_kx(calibration.to(torch.complex128), kernel_kx)[None]  # (1, C, Ky, Kx, n_kx)
    S = _sources(U, torch.zeros_like(rows), rows, off)[valid]  # (M, N)
    T = calibration.to(torch.complex128)[:, rows].permute(1, 2, 0)[valid]  # (M, C)
    G = S.conj().T @ S  # (N, N)
    smax2 = float(torch.linalg.eigvalsh(G)[-1].clamp(min=0))
    reg = (lam * lam) * smax2
    G = G + reg * torch.eye(n_unknowns, dtype=G.dtype, device=dev)
    W = torch.linalg.solve(G, S.conj().T @ T)  # (N, C)
    info["lam_effective"] = float(lam * np.sqrt(smax2))
    return W, info


# ------------------------------------------------------------------------------ patterns
def _line_patterns(lines: np.ndarray, n_ky: int) -> dict[tuple[int, ...], list[tuple[int, int]]]:
    """Missing lines of each frame grouped by their pattern (ky offsets of their sources).

    ``lines`` bool (T, Ky). Sources: the ``n_ky // 2`` nearest measured lines below and the
    ``n_ky - n_ky // 2`` nearest above; a side that runs out is made up from the other.
    """
    groups: dict[tuple[int, ...], list[tuple[int, int]]] = defaultdict(list)
    n_below = n_ky // 2
    for t in range(lines.shape[0]):
        measured = np.flatnonzero(lines[t])
        if measured.size == 0:
            continue
        for r in np.flatnonzero(~lines[t]):
            below = measured[measured < r][::-1]  # nearest first
            above = measured[measured > r]
            nb = min(len(below), max(n_below, n_ky - len(above)))
            na = min(len(above), n_ky - nb)
            src = np.concatenate([below[:nb], above[:na]])
            groups[tuple(sorted(int(s - r) for s in src))].append((t, int(r)))
    return groups


def _reduce(offsets: tuple[int, ...]) -> tuple[int, ...]:
    """The pattern without its farthest source line (ties: the one at higher ky)."""
    far = max(offsets, key=lambda o: (abs(o), o))
    return tuple(o for o in offsets if o != far)


def _acs_run(calibration_mask: Tensor) -> int:
    """Longest run of consecutive ky lines with calibration data."""
    lines = calibration_mask.any(-1).cpu().numpy()
    best = run = 0
    for v in lines:
        run = run + 1 if v else 0
        best = max(best, run)
    return best


# ------------------------------------------------------------------------------- k-space
@torch.no_grad()
def grappa_kspace(
    kspace: Tensor,
    mask: Tensor,
    calibration: Tensor | None = None,
    calibration_mask: Tensor | None = None,
    *,
    kernel_size: Sequence[int] = (4, 5),
    lam: float = 0.01,
) -> tuple[Tensor, dict]:
    """Fill the missing lines of multi-coil Cartesian k-space by GRAPPA.

    Parameters
    ----------
    kspace : torch.Tensor
        complex64 ``(T, C, Ky, Kx)``, zero where not measured.
    mask : torch.Tensor
        bool ``(T, Ky, Kx)``: whole lines, along kx (rows) or along ky (columns, e.g. fastMRI;
        then the roles of ky and kx below swap).
    calibration : torch.Tensor, optional
        complex ``(C, Ky, Kx)`` ACS k-space on the same grid (``RawData.calibration[s]``),
        zero elsewhere. Default: :func:`time_averaged_calibration` of the data.
    calibration_mask : torch.Tensor, optional
        bool ``(Ky, Kx)``, where ``calibration`` was measured (with ``calibration``).
    kernel_size : (int, int)
        ``(source lines along the undersampled axis, readout points)``; 4 x 5 as in Griswold
        et al. (four acquired lines, two each side, five readout points).
    lam : float
        Tikhonov weight relative to the calibration matrix's largest singular value.

    Returns
    -------
    kspace_filled, info
        complex64 ``(T, C, Ky, Kx)`` on ``kspace``'s device, measured samples unchanged;
        ``info``: ``patterns`` (kernels fitted), ``reduced_patterns``, ``unfilled_lines``,
        ``acs_lines`` (longest run of calibration lines), ``calibration_source``,
        ``lam_effective`` (largest ``lam sigma_max`` of the fits), ``kernels`` (pattern
        offsets -> ``W`` (N, C) complex64), ``targets`` (pattern -> number of lines filled),
        ``seconds``.

    Raises
    ------
    ProtocolError
        The calibration block is too small for the kernel at this sampling.
    ShapeError
        Wrong shapes, or a mask that is not made of whole lines.
    """
    t0 = time.perf_counter()
    n_ky, n_kx = _kernel_size(kernel_size)
    lam = float(lam)
    if not np.isfinite(lam) or lam < 0:
        raise ProtocolError(f"grappa: lam must be a finite number >= 0, got {lam}")
    if not torch.is_tensor(kspace) or kspace.ndim != 4 or not kspace.is_complex():
        raise ShapeError(f"grappa: kspace must be complex (T, C, Ky, Kx), got {tuple(getattr(kspace, 'shape', ()))}")
    T, C, ny, nx = kspace.shape
    dev = kspace.device
    if not torch.is_tensor(mask) or tuple(mask.shape) != (T, ny, nx):
        raise ShapeError(f"grappa: mask must be bool (T, Ky, Kx) = {(T, ny, nx)}, "
                         f"got {tuple(getattr(mask, 'shape', ()))}")
    mask = mask.to(dev).bool()
    if (calibration is None) != (calibration_mask is None):
        raise ShapeError("grappa: give calibration and calibration_mask together (or neither)")
    source = "data.calibration"
    if calibration is not None:
        if not torch.is_tensor(calibration) or tuple(calibration.shape) != (C, ny, nx) or not calibration.is_complex():
            raise ShapeError(f"grappa: calibration must be complex (C, Ky, Kx) = {(C, ny, nx)}, "
                             f"got {tuple(getattr(calibration, 'shape', ()))}")
        if not torch.is_tensor(calibration_mask) or tuple(calibration_mask.shape) != (ny, nx):
            raise ShapeError(f"grappa: calibration_mask must be bool (Ky, Kx) = {(ny, nx)}, "
                             f"got {tuple(getattr(calibration_mask, 'shape', ()))}")
        calibration = calibration.to(device=dev, dtype=torch.complex64)
        calibration_mask = calibration_mask.to(dev).bool()

    axis = _line_axis(mask)
    k, m, cal, cm = kspace.to(torch.complex64), mask, calibration, calibration_mask
    if axis == "kx":  # whole columns measured: interpolate along kx, the same code transposed
        k, m = k.transpose(-2, -1), m.transpose(-2, -1)
        if cal is not None:
            cal, cm = cal.transpose(-2, -1), cm.transpose(-2, -1)
    if cal is None:
        cal, cm = time_averaged_calibration(k, m)
        source = "time-averaged k-space"
    lines = m.any(-1).cpu().numpy()  # (T, Ky')
    groups = _line_patterns(lines, n_ky)
    out = k * m.unsqueeze(1)
    info: dict[str, Any] = {"iterations": 0, "stop_reason": "closed form", "patterns": 0, "reduced_patterns": 0,
                            "unfilled_lines": 0, "acs_lines": _acs_run(cm), "calibration_source": source,
                            "lam_effective": 0.0, "kernels": {}, "targets": {}, "undersampled_axis": axis}
    if groups:
        counts = Counter({p: len(v) for p, v in groups.items()})
        main = max(counts, key=lambda p: (counts[p], len(p)))
        need = max(main) - min(main) + 1
        if info["acs_lines"] < need:
            raise ProtocolError(
                f"grappa: the calibration (ACS) block has {info['acs_lines']} consecutive line(s) "
                f"(from {source}), but the kernel of {len(main)} source lines x {n_kx} readout points needs "
                f">= {need} at this sampling (its most common line pattern spans {need} lines; a regular R needs "
                f"(kernel lines - 1) x R + 1, and more for a good fit): acquire more ACS lines (Siemens "
                f"'Reference lines PE' 24-48), keep the file's calibration lines (ISMRMRD flags 20/21; "
                f"data.calibration = \"data+maps\" also keeps calibration-only lines as data), use a smaller "
                f"baseline.kernel_size, or use cg-sense"
            )
        U = _unfold_kx(out, n_kx)  # (T, C, Ky, Kx, n_kx)
        fitted: dict[tuple[int, ...], Tensor | None] = {}
        for pattern, targets in groups.items():
            p = pattern
            W = None
            while p:
                if p not in fitted:
                    fitted[p], kinfo = calibrate_kernel(cal, cm, p, kernel_kx=n_kx, lam=lam)
                    if fitted[p] is not None:
                        info["lam_effective"] = max(info["lam_effective"], kinfo["lam_effective"])
                W = fitted[p]
                if W is not None:
                    break
                p = _reduce(p)
            if W is None:
                info["unfilled_lines"] += len(targets)
                continue
            if p != pattern:
                info["reduced_patterns"] += 1
            Wc = W.to(torch.complex64)
            info["kernels"][p] = Wc
            info["targets"][p] = info["targets"].get(p, 0) + len(targets)
            tr = torch.as_tensor(targets, dtype=torch.long, device=dev)  # (n, 2): frame, line
            off = torch.as_tensor(p, dtype=torch.long, device=dev)
            step = max(1, _CHUNK_ELEMENTS // (nx * Wc.shape[0]))
            for i in range(0, tr.shape[0], step):
                f, r = tr[i : i + step, 0], tr[i : i + step, 1]
                est = _sources(U, f, r, off) @ Wc  # (n, Kx, C)
                out[f, :, r] = est.permute(0, 2, 1)
        info["patterns"] = len(info["kernels"])
    if info["unfilled_lines"]:
        warnings.warn(f"grappa: {info['unfilled_lines']} missing line(s) lie too far from any measured line "
                      "for the ACS block to calibrate a kernel; they stay zero (zero-filled)", stacklevel=2)
    out = torch.where(m.unsqueeze(1), k, out)  # data consistency: measured samples as measured
    if axis == "kx":
        out = out.transpose(-2, -1)
    info["seconds"] = time.perf_counter() - t0
    return out.contiguous(), info


# ------------------------------------------------------------------------- combination
def combine_coils(coil_images: Tensor, coil_maps: Tensor | None = None, combine: str = "sense") -> Tensor:
    """One image from coil images.

    ``"sense"``: ``x = sum_c conj(S_c) x_c / sum_c |S_c|^2`` (0 where ``sum_c |S_c|^2`` is
    below 1e-6 of its maximum), the per-pixel least-squares estimate of the object given
    the coil maps: for maps normalised to ``sum_c |S_c|^2 = 1`` (ESPIRiT, Walsh) it is the
    SENSE combination ``sum_c conj(S_c) x_c``, the same image scale, phase and valid region
    as CG-SENSE and the DIP methods. ``"rss"``: root-sum-of-squares ``sqrt(sum_c |x_c|^2)``,
    needs no maps but loses the phase (real, >= 0) and carries the coils' combined receive
    profile ``sqrt(sum_c |S_c|^2)`` (1 for normalised maps).

    Parameters
    ----------
    coil_images : torch.Tensor
        complex ``(T, C, Y, X)``.
    coil_maps : torch.Tensor, optional
        complex ``(C, Y, X)`` (needed for ``"sense"``).
    combine : {"sense", "rss"}

    Returns
    -------
    torch.Tensor
        complex64 ``(T, Y, X)``.
    """
    if combine == "rss":
        return torch.sqrt((coil_images.abs() ** 2).sum(1)).to(torch.complex64)
    if combine != "sense":
        raise ProtocolError(f"grappa: unknown combine {combine!r}; allowed: {', '.join(map(repr, COMBINE))}")
    if coil_maps is None:
        raise ShapeError("grappa: combine = 'sense' needs the coil maps (C, Y, X)")
    maps = coil_maps.to(device=coil_images.device, dtype=torch.complex64)
    den = (maps.abs() ** 2).sum(0)  # (Y, X)
    ok = den > 1e-6 * float(den.max()) if float(den.max()) > 0 else den > 0
    x = (maps.conj().unsqueeze(0) * coil_images).sum(1)
    return torch.where(ok, x / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(x)).to(torch.complex64)


# ------------------------------------------------------------------------------ method
@torch.no_grad()
def grappa(
    A,
    y: Tensor,
    *,
    calibration: Tensor | None = None,
    calibration_mask: Tensor | None = None,
    kernel_size: Sequence[int] = (4, 5),
    lam: float = 0.01,
    combine: str = "sense",
) -> tuple[Tensor, dict]:
    """The ``grappa`` baseline: GRAPPA-filled coil k-space, combined into one image per frame.

    Parameters
    ----------
    A : CartesianSense
        The slice's Cartesian operator: its mask ``(T, Ky, Kx)`` says what was measured, its
        coil maps ``(C, Y, X)`` combine the coil images (``combine = "sense"``).
    y : torch.Tensor
        complex64 measured k-space ``(T, C, Ky, Kx)``.
    calibration, calibration_mask : torch.Tensor, optional
        ACS k-space ``(C, Ky, Kx)`` and its mask ``(Ky, Kx)`` (``RawData.calibration[s]``);
        default: the time-averaged data's fully sampled centre
        (:func:`time_averaged_calibration`).
    kernel_size : (int, int)
        Source lines along ky x readout points along kx (:func:`grappa_kspace`).
    lam : float
        Tikhonov weight of the kernel fit relative to the calibration matrix's largest
        singular value.
    combine : {"sense", "rss"}
        Coil combination (:func:`combine_coils`); ``"rss"`` loses the phase.

    Returns
    -------
    x, info
        ``x`` complex64 ``(T, Y, X)`` on ``A``'s device; ``info`` as :func:`grappa_kspace`
        (``iterations`` 0, ``stop_reason`` ``"closed form"``), with ``seconds`` for all.
    """
    t0 = time.perf_counter()
    if hasattr(A, "trajectory") or not hasattr(A, "mask") or not hasattr(A, "coil_maps"):
        raise ProtocolError(
            f"GRAPPA here is for Cartesian data (a CartesianSense operator), got {type(A).__name__}: "
            "use cg-sense (or another baseline) for radial data"
        )
    if combine not in COMBINE:
        raise ProtocolError(f"grappa: unknown combine {combine!r}; allowed: {', '.join(map(repr, COMBINE))}")
    if not torch.is_tensor(y) or tuple(y.shape) != tuple(A.oshape) or not y.is_complex():
        raise ShapeError(f"grappa: k-space y must be complex {tuple(A.oshape)} (the operator's), "
                         f"got {tuple(getattr(y, 'shape', ()))}")
    k, info = grappa_kspace(y, A.mask, calibration, calibration_mask, kernel_size=kernel_size, lam=lam)
    x = combine_coils(ifft2c(k), A.coil_maps, combine)
    info["seconds"] = time.perf_counter() - t0
    info["combine"] = combine
    return x, info


def run_grappa(problem, proto, *, seed: int = 0, **_: Any) -> tuple[Tensor, dict]:
    """Pipeline runner of ``grappa``: the slice's ACS data (``problem.raw.calibration[0]``, on
    the problem's device) and the protocol's ``[baseline]`` options go to :func:`grappa`.

    Raises
    ------
    ProtocolError
        Radial data, or ``[baseline]`` keys that are not GRAPPA options.
    """
    raw = problem.raw
    if raw.kind != "cartesian":
        raise ProtocolError(
            "GRAPPA here is for Cartesian data; use cg-sense (or l1-wavelet, tv, ...) for radial data"
        )
    opts = dict(proto.baseline)
    for key in ("calibration", "calibration_mask"):
        if key in opts:
            raise ProtocolError(f"baseline.{key} is not a protocol option: grappa takes the file's calibration "
                                "(ACS) lines, or the data's fully sampled centre")
    if opts.pop("tune", False):
        raise ProtocolError("grappa: baseline.tune is not supported (lam is the kernel fit's relative Tikhonov "
                            "weight; 0.01 is the usual value)")
    opts.pop("tune_values", None)
    dev = problem.y.device
    cal = cmask = None
    if raw.calibration is not None:
        cal = raw.calibration[0].to(device=dev, dtype=torch.complex64)
        cmask = raw.calibration_mask[0].to(dev).bool()
    x, info = grappa(problem.A, problem.y, calibration=cal, calibration_mask=cmask, **opts)
    keep = ("iterations", "stop_reason", "lam_effective", "patterns", "reduced_patterns", "unfilled_lines",
            "acs_lines", "calibration_source", "seconds")
    return x, {k: info[k] for k in keep if k in info}
