"""BART ``.cfl`` / ``.hdr`` k-space (and trajectory) into :class:`~mridip.data.RawData`.

BART (Uecker et al., "Berkeley Advanced Reconstruction Toolbox", ISMRM 2015) stores an
array as ``NAME.hdr`` (text: ``# Dimensions`` and the sizes) + ``NAME.cfl`` (complex64,
column-major); :func:`mridip.recon.bart.read_cfl` reads the pair. Dimensions as in
BART's ``misc/mri.h``: 0 READ, 1 PHS1, 2 PHS2, 3 COIL, 4 MAPS, 5 TE, 10 TIME, 13 SLICE
(16 in all).

How BART's axes become mridip's:

- Cartesian k-space ``[X, Y, 1, C, 1, TE, 1, 1, 1, 1, T, 1, 1, S]`` -> ``(S, TE x T, C, Ky, Kx)``:
  BART dim 0 (READ, the readout) is the image x axis (columns, Kx) and dim 1 (PHS1) the
  image y axis (rows, Ky); both centred at ``N // 2``, as BART's centred ``fft`` and
  mridip's FFT have them, so ``bart fft -i 3`` of the file is the transpose of mridip's
  coil images. Unsampled entries are 0; the mask is "any coil nonzero" per sample (the
  rule of ``bart pattern``). Echoes (TE) and TIME are flattened into frames, TE slowest.
- Radial k-space ``[1, samples, spokes, C, 1, TE, ..., T, ..., S]`` with a trajectory
  ``[3, samples, spokes, 1, ..., T (or 1), ..., S (or 1)]`` in BART's units, k-space
  *pixels* (cycles per FOV: ``k`` in ``[-N/2, N/2)`` for an image of ``N`` pixels); row 0 is
  the coordinate along dim 0 (x, readout direction of the image), row 1 along dim 1
  (y), row 2 along dim 2 (z, must be 0). It becomes ``(S, T, C, K)`` with
  ``K = spokes x samples`` (spoke-major) and trajectory ``(S, T, 2, K)`` in radians/voxel,
  ``(ky, kx) = 2 pi (row 1 / Ny, row 0 / Nx)``. The image size ``(Ny, Nx)`` is
  ``image_shape`` or, if not given, ``2 ceil(max |k|)`` per axis (a radial trajectory
  reaches the edge of k-space: ``bart traj -r -x 128`` spans +-63.5, giving 128).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from mridip.data import Header, RawData
from mridip.errors import InputFileError, ShapeError

__all__ = ["read_bart", "cfl_base", "is_cfl"]

READ_DIM, PHS1_DIM, PHS2_DIM, COIL_DIM, MAPS_DIM, TE_DIM, TIME_DIM, SLICE_DIM = 0, 1, 2, 3, 4, 5, 10, 13
_DIM_NAMES = {0: "READ", 1: "PHS1", 2: "PHS2", 3: "COIL", 4: "MAPS", 5: "TE", 6: "COEFF", 7: "COEFF2",
              8: "ITER", 9: "CSHIFT", 10: "TIME", 11: "TIME2", 12: "LEVEL", 13: "SLICE", 14: "AVG", 15: "BATCH"}


def cfl_base(path: str | os.PathLike) -> str:
    """The BART file name without suffix: ``ksp``, ``ksp.cfl`` and ``ksp.hdr`` all give ``ksp``."""
    p = os.fspath(path)
    root, ext = os.path.splitext(p)
    return root if ext in (".cfl", ".hdr") else p


def is_cfl(path: str | os.PathLike) -> bool:
    """True when ``path`` (with ``.cfl``, ``.hdr`` or no suffix) names a BART pair whose
    ``.hdr`` has a ``# Dimensions`` line (the ``.cfl`` may be missing: the reader says so)."""
    base = cfl_base(path)
    hdr = base + ".hdr"
    if not os.path.isfile(hdr) or os.path.getsize(hdr) > 1 << 16:
        return False
    try:
        with open(hdr, errors="replace") as fh:
            return any(line.strip().startswith("# Dimensions") for line in fh)
    except OSError:
        return False


def _read_pair(path: str | os.PathLike, what: str) -> tuple[np.ndarray, list[int], str]:
    """Array padded to 16 BART dims, its dims, and the base name; missing halves named."""
    from mridip.recon.bart import BART_DIMS, read_cfl

    base = cfl_base(path)
    hdr, cfl = base + ".hdr", base + ".cfl"
    if not os.path.exists(hdr) and not os.path.exists(cfl):
        raise InputFileError(f"{what} not found: neither {hdr!r} nor {cfl!r} exists; check the path")
    for have, missing in ((cfl, hdr), (hdr, cfl)):
        if os.path.exists(have) and not os.path.exists(missing):
            raise InputFileError(
                f"{what}: {have!r} exists but {missing!r} is missing: a BART array is a pair of "
                "NAME.hdr (dimensions) + NAME.cfl (data); copy both"
            )
    arr = read_cfl(base)
    if arr.ndim > BART_DIMS:
        raise InputFileError(f"{hdr!r} lists {arr.ndim} dimensions; BART has at most {BART_DIMS}")
    dims = list(arr.shape) + [1] * (BART_DIMS - arr.ndim)
    if not np.isfinite(arr).all():
        raise InputFileError(f"{cfl!r} holds NaN or Inf values: the file is corrupt or was written wrongly")
    return arr.reshape(dims, order="A"), dims, base


def _check_unused(dims: list[int], allowed: set[int], name: str) -> None:
    for d, n in enumerate(dims):
        if n != 1 and d not in allowed:
            raise ShapeError(
                f"{name} has size {n} in BART dimension {d} ({_DIM_NAMES.get(d, '?')}); mridip reads "
                f"k-space with sizes only in {', '.join(f'{a} ({_DIM_NAMES[a]})' for a in sorted(allowed))}: "
                "reduce that dimension first (e.g. bart avg, bart slice)"
            )


def _to_stc(arr: np.ndarray, a: int, b: int) -> np.ndarray:
    """BART array -> ``(S, TE x T, C, dim a, dim b)`` (TE slowest in the frame axis)."""
    x = arr[:, :, :, :, 0, :, 0, 0, 0, 0, :, 0, 0, :, 0, 0]  # (d0, d1, d2, C, TE, T, S)
    # (S, TE, T, C, a, b): the two spatial dims asked for, the third must be 1
    spatial = {0, 1, 2}
    other = (spatial - {a, b}).pop()
    x = np.take(x, 0, axis=other)  # drop the singleton third spatial dim
    keep = [d for d in (0, 1, 2) if d != other]  # remaining spatial axes in order
    ia, ib = keep.index(a), keep.index(b)
    x = np.transpose(x, (5, 3, 4, 2, ia, ib))  # (S, TE, T, C, a, b)
    S, TE, T, C = x.shape[:4]
    return np.ascontiguousarray(x.reshape(S, TE * T, C, x.shape[4], x.shape[5]))


def read_bart(
    ksp_path: str | os.PathLike,
    trajectory: str | os.PathLike | None = None,
    *,
    image_shape: tuple[int, int] | None = None,
    spokes_per_frame: int | str | None = None,
) -> RawData:
    """Read BART k-space (and, for non-Cartesian data, its trajectory) into RawData.

    Parameters
    ----------
    ksp_path : str or PathLike
        ``NAME``, ``NAME.cfl`` or ``NAME.hdr`` of the k-space pair. Cartesian
        ``[X, Y, 1, C, 1, TE, ..., T (dim 10), ..., S (dim 13)]`` (zeros where unsampled);
        non-Cartesian ``[1, samples, spokes, C, 1, TE, ..., T, ..., S]``.
    trajectory : str or PathLike, optional
        The trajectory pair ``[3, samples, spokes, ..., T or 1, ..., S or 1]`` in BART units
        (k-space pixels, ``[-N/2, N/2)``); its presence makes the data radial.
    image_shape : (Y, X), optional
        Image size of non-Cartesian data (default: from the trajectory's extent).
    spokes_per_frame : int, "all" or None
        Non-Cartesian data with one frame in the file (TIME and TE of size 1): an int bins
        consecutive spokes (dim 2) into frames of that many (spokes left over at the end
        are dropped, with a warning); ``None`` / ``"all"`` keep the file's frames.

    Returns
    -------
    RawData
        ``format = "bart"``, ``source`` = the ``.cfl`` path. Cartesian ``(S, T, C, Ky, Kx)``
        with mask ``(S, T, Ky, Kx)`` (any coil nonzero); radial ``(S, T, C, K)`` with
        trajectory ``(S, T, 2, K)`` in radians/voxel, ``header.recon_matrix = (X, Y, 1)``.

    Raises
    ------
    InputFileError
        A missing ``.hdr`` or ``.cfl`` (named), a truncated ``.cfl``, NaN values, a
        trajectory in the wrong unit (cycles/pixel or radians/voxel instead of BART's
        k-space pixels) or beyond the image's k-space.
    ShapeError
        Sizes in BART dimensions mridip does not read, 3D Cartesian data, or a trajectory
        that does not fit the k-space.
    """
    from mridip.io.arrays import from_arrays

    arr, dims, base = _read_pair(ksp_path, "BART k-space")
    source = base + ".cfl"
    hdr = Header(extra={"bart_dims": dims[: max(i + 1 for i, d in enumerate(dims) if d > 1 or i < 4)]})
    if trajectory is None:
        _check_unused(dims, {READ_DIM, PHS1_DIM, PHS2_DIM, COIL_DIM, TE_DIM, TIME_DIM, SLICE_DIM}, source)
        if dims[READ_DIM] == 1:
            raise ShapeError(
                f"{source} has 1 sample in dim 0 (READ) and {dims[PHS1_DIM]} x {dims[PHS2_DIM]} in dims 1-2: "
                "this is the layout of non-Cartesian k-space; pass its trajectory (--trajectory traj.cfl)"
            )
        if dims[PHS2_DIM] > 1:
            raise ShapeError(
                f"{source} is 3D Cartesian k-space (dim 2, PHS2, has {dims[PHS2_DIM]} partitions); mridip "
                "reconstructs 2D slices: inverse-FFT along the partition axis first (bart fft -i 4) and "
                "move partitions to dim 13 (SLICE) with bart transpose 2 13"
            )
        k = _to_stc(arr, PHS1_DIM, READ_DIM)  # (S, T, C, Ky = dim 1, Kx = dim 0)
        raw = from_arrays(k, header=hdr)
    else:
        if dims[READ_DIM] != 1:
            raise ShapeError(
                f"{source} has {dims[READ_DIM]} entries in dim 0; non-Cartesian BART k-space is "
                "[1, samples, spokes, coils, ...] (a trajectory was given)"
            )
        k = _to_stc(arr, PHS2_DIM, PHS1_DIM)  # (S, T, C, spokes, samples)
        _check_unused(dims, {READ_DIM, PHS1_DIM, PHS2_DIM, COIL_DIM, TE_DIM, TIME_DIM, SLICE_DIM}, source)
        S, T, C, spokes, ns = k.shape
        tr_arr, tdims, tbase = _read_pair(trajectory, "BART trajectory")
        spf = None if spokes_per_frame in (None, "all") else int(spokes_per_frame)
        tsrc = tbase + ".cfl"
        if tdims[0] != 3 or tdims[1] != ns or tdims[2] != spokes:
            raise ShapeError(
                f"trajectory {tsrc} has dims {tdims[:3]}; it must be [3, samples, spokes] = [3, {ns}, {spokes}] "
                f"to fit the k-space {source}"
            )
        _check_unused(tdims, {0, 1, 2, TE_DIM, TIME_DIM, SLICE_DIM}, tsrc)
        if np.abs(tr_arr.imag).max() > 1e-6 * max(np.abs(tr_arr.real).max(), 1.0):
            raise InputFileError(f"trajectory {tsrc} has imaginary parts: BART trajectories are real")
        tr = tr_arr.real.astype(np.float64)  # [3, ns, spokes, 1, 1, TE, ..., T, ..., S]
        tr = tr[:, :, :, 0, 0, :, 0, 0, 0, 0, :, 0, 0, :, 0, 0]  # (3, ns, spokes, TE, T, S)
        tr = np.transpose(tr, (5, 3, 4, 0, 2, 1))  # (S, TE, T, 3, spokes, ns)
        tr = tr.reshape(tr.shape[0], tr.shape[1] * tr.shape[2], 3, spokes * ns)  # (S', T', 3, K)
        try:
            tr = np.broadcast_to(tr, (S, T, 3, spokes * ns))
        except ValueError:
            raise ShapeError(
                f"trajectory {tsrc} has {tr.shape[1]} frame(s) and {tr.shape[0]} slice(s); the k-space "
                f"{source} has {T} and {S}: give one trajectory per frame or one for all"
            ) from None
        kmax = float(np.abs(tr[:, :, :2]).max())
        if np.abs(tr[:, :, 2]).max() > 1e-3:
            raise ShapeError(f"trajectory {tsrc} has nonzero z coordinates (row 2): mridip reads 2D trajectories")
        if kmax <= 0.5 + 1e-6:
            raise InputFileError(
                f"trajectory {tsrc} reaches only |k| = {kmax:.3g}: that looks like cycles/pixel "
                "(ISMRMRD's unit, [-0.5, 0.5)); BART trajectories are in k-space pixels, [-N/2, N/2) "
                "for an N-pixel image: multiply by the image size (bart scale N) first"
            )
        if image_shape is None and kmax <= math.pi + 1e-3:
            raise InputFileError(
                f"trajectory {tsrc} reaches only |k| = {kmax:.3g}: that looks like radians/voxel "
                "([-pi, pi), mridip's internal unit); BART trajectories are in k-space pixels, [-N/2, N/2): "
                "multiply by N / (2 pi) first, or give image_shape if the image really is that small"
            )
        ky, kx = tr[:, :, 1], tr[:, :, 0]  # row 1 = y (dim 1), row 0 = x (dim 0)
        if image_shape is None:
            # up to the next whole pixel: bart traj's +-63.5 (and an odd spoke count's 63.49) -> 128
            Y = max(2 * int(math.ceil(float(np.abs(ky).max()) - 1e-3)), 1)
            X = max(2 * int(math.ceil(float(np.abs(kx).max()) - 1e-3)), 1)
        else:
            Y, X = (int(v) for v in image_shape)
        for name, comp, n in (("y (row 1)", ky, Y), ("x (row 0)", kx, X)):
            if np.abs(comp).max() > n / 2 + 0.5:
                raise InputFileError(
                    f"trajectory {tsrc} reaches |k{name[0]}| = {float(np.abs(comp).max()):.4g} k-space pixels, "
                    f"beyond the {n}-pixel image's {n / 2:g} ({name}); give the right image_shape, or "
                    "check the unit (BART: k-space pixels)"
                )
        traj = np.stack([2 * math.pi * ky / Y, 2 * math.pi * kx / X], axis=2).astype(np.float32)  # (S, T, 2, K)
        traj = np.clip(traj, -math.pi, math.pi)  # |k| = N/2 (+ rounding) is the edge of k-space
        hdr.trajectory = "radial"
        k = k.reshape(S, T, C, spokes * ns)
        if spf is not None and spf != spokes:
            if T != 1:
                raise ShapeError(
                    f"{source} already has {T} frames (BART dims TE x TIME); spokes_per_frame = {spf} "
                    "re-bins only data of one frame: drop data.spokes_per_frame"
                )
            nT = spokes // spf
            if spf < 1 or nT == 0:
                raise ShapeError(f"spokes_per_frame = {spf} must be between 1 and the {spokes} spokes of {source}")
            if nT * spf != spokes:
                warnings.warn(f"{source}: {spokes - nT * spf} spoke(s) at the end do not fill a frame of "
                              f"{spf} and are dropped", stacklevel=2)
            K = spf * ns
            k = k[..., : nT * K].reshape(S, C, nT, K).transpose(0, 2, 1, 3).copy()  # (S, nT, C, K)
            traj = traj[..., : nT * K].reshape(S, 2, nT, K).transpose(0, 2, 1, 3).copy()  # (S, nT, 2, K)
            spokes = spf
        raw = from_arrays(k, trajectory=traj, image_shape=(Y, X), header=hdr)
        raw.header.extra.update(samples_per_spoke=ns, spokes_per_frame=spokes, trajectory_file=tsrc)
    raw.format = "bart"
    raw.source = source
    return raw
