"""BART interoperability: the .cfl/.hdr file format and ``bart pics`` as an external reference.

BART (the Berkeley Advanced Reconstruction Toolbox, Uecker et al.) stores arrays as a
pair of files: ``NAME.hdr`` (text: a ``# Dimensions`` line followed by the sizes of all
dimensions, separated by spaces) and ``NAME.cfl`` (raw complex64, little-endian,
interleaved real/imag, **column-major**: the first dimension varies fastest).

Dimension conventions of ``bart pics`` (BART ``misc/mri.h``): 0-2 image / k-space axes
(READ, PHS1, PHS2), 3 = coils (COIL_DIM), 4 = sets of maps (MAPS_DIM), 10 = time
(TIME_DIM); 16 dimensions in all. This module maps mridip's arrays as

- k-space ``(T, C, Ky, Kx)`` -> BART ``[Ky, Kx, 1, C, 1, ..., T (dim 10)]``
- radial k-space ``(T, C, K)`` -> BART ``[1, K, 1, C, 1, ..., T]``
- coil maps ``(C, Y, X)`` -> BART ``[Y, X, 1, C, 1]``
- images ``(T, Y, X)`` <- BART ``[Y, X, 1, 1, 1, ..., T]``
- radial trajectory ``(T, 2, K)`` (radians/voxel, component 0 = ky, 1 = kx) -> BART
  ``[3, K, 1, ..., T]`` in BART's units (k-space *pixels*, i.e. cycles/FOV:
  ``k_bart = k * N / (2 pi)`` with ``N`` the image size along that axis), rows
  (ky -> dim 0 coordinate, kx -> dim 1 coordinate, 0).

So mridip's Y is BART's dim 0 and X its dim 1 (both centred at ``N // 2``, like mridip's
FFT); ``tests/recon/test_bart.py`` checks the orientation on an asymmetric object.

Install BART: Debian / Ubuntu ``apt-get install -y bart``; other systems: build from
https://github.com/mrirecon/bart.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from typing import Sequence

import numpy as np
import torch

from mridip.errors import DependencyError, InputFileError, ShapeError

__all__ = ["write_cfl", "read_cfl", "bart_available", "bart_pics", "BART_DIMS", "TIME_DIM", "COIL_DIM", "MAPS_DIM"]

#: Number of dimensions BART uses (DIMS in misc/mri.h).
BART_DIMS = 16
COIL_DIM = 3
MAPS_DIM = 4
TIME_DIM = 10

_INSTALL = "install it with `apt-get install -y bart` (Debian/Ubuntu) or build it from https://github.com/mrirecon/bart"


def _to_numpy(array) -> np.ndarray:
    if torch.is_tensor(array):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def write_cfl(path_base: str | os.PathLike, array) -> None:
    """Write ``array`` as BART ``path_base.hdr`` + ``path_base.cfl`` (complex64, column-major).

    Parameters
    ----------
    path_base : str or path
        File name without extension.
    array : numpy array or torch tensor
        Any shape (up to 16 dims); the array's axis ``i`` becomes BART dimension ``i``
        (so ``array[i0, i1, ...]`` is stored with ``i0`` varying fastest).
    """
    arr = _to_numpy(array).astype(np.complex64, copy=False)
    if arr.ndim > BART_DIMS:
        raise ShapeError(f"write_cfl: BART supports at most {BART_DIMS} dimensions, got {arr.ndim}")
    dims = list(arr.shape) or [1]
    base = os.fspath(path_base)
    with open(base + ".hdr", "w") as fh:
        fh.write("# Dimensions\n")
        fh.write(" ".join(str(d) for d in dims) + "\n")
    # Fortran order: the first axis varies fastest, as BART reads it
    arr.reshape(dims).ravel(order="F").astype("<c8").tofile(base + ".cfl")


def read_cfl(path_base: str | os.PathLike) -> np.ndarray:
    """Read BART ``path_base.hdr`` + ``path_base.cfl`` into a complex64 numpy array.

    Trailing singleton dimensions are dropped (BART writes 16); BART dimension ``i`` is
    the returned array's axis ``i``.
    """
    base = os.fspath(path_base)
    try:
        with open(base + ".hdr") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise InputFileError(f"read_cfl: cannot read the BART header {base}.hdr: {exc}") from exc
    dims = None
    for i, line in enumerate(lines):
        if line.strip().startswith("# Dimensions") and i + 1 < len(lines):
            dims = [int(v) for v in lines[i + 1].split()]
            break
    if not dims:
        raise InputFileError(f"read_cfl: {base}.hdr has no '# Dimensions' line: is it a BART header?")
    n = int(np.prod(dims))
    data = np.fromfile(base + ".cfl", dtype="<c8")
    if data.size != n:
        raise InputFileError(
            f"read_cfl: {base}.cfl holds {data.size} complex values, the header says {dims} = {n}: "
            "the file is truncated or does not belong to this header"
        )
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    return data.reshape(dims, order="F").astype(np.complex64)


def bart_available() -> bool:
    """True when the ``bart`` command is on PATH."""
    return shutil.which("bart") is not None


def _bart_dims(**axes: int) -> list[int]:
    dims = [1] * BART_DIMS
    for dim, size in axes.items():
        dims[int(dim[1:])] = int(size)
    return dims


def _place(arr: np.ndarray, dims: list[int]) -> np.ndarray:
    """Reshape an array whose axes are already in BART order to the 16-dim shape ``dims``."""
    return arr.reshape([d for d in dims])


def bart_pics(
    y: torch.Tensor,
    coil_maps: torch.Tensor,
    *,
    trajectory: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    regularization: str | Sequence[str] = "T:1024:0:0.01",
    iterations: int = 100,
    data_scale: float | None = None,
    extra_args: Sequence[str] = (),
) -> torch.Tensor:
    """Reconstruct with ``bart pics`` (run as a subprocess in a temporary directory).

    Parameters
    ----------
    y : torch.Tensor
        complex64 k-space: Cartesian ``(T, C, Ky, Kx)`` (with ``mask``) or radial
        ``(T, C, K)`` (with ``trajectory``).
    coil_maps : torch.Tensor
        complex64 ``(C, Y, X)``.
    trajectory : torch.Tensor, optional
        float ``(T, 2, K)`` in radians/voxel (component 0 = ky, 1 = kx); converted to BART's
        pixel units.
    mask : torch.Tensor, optional
        bool ``(T, Ky, Kx)`` (Cartesian); passed as ``-p`` pattern. Default: all measured.
    regularization : str or sequence of str
        BART ``-R`` terms, e.g. ``"T:1024:0:0.01"`` (TV along time, bit 10, weight 0.01),
        ``"W:3:0:0.005"`` (l1-wavelet in Y, X), ``"L:3:3:0.01"``.
    iterations : int
        ``-i``.
    data_scale : float, optional
        ``-w``: BART divides the data by this before solving and (with ``-S``, always
        passed) multiplies the image back, so the BART weight ``lam_bart`` acts like an
        absolute weight ``lam_bart * data_scale`` on the original data. Pass
        ``mridip.recon.baselines.data_scale(A, y)`` to make BART's weights the package's
        relative weights. Default: BART's own automatic scaling.
    extra_args : sequence of str
        More ``pics`` options (e.g. ``("-m",)`` for ADMM, ``("-e",)``).

    Returns
    -------
    torch.Tensor
        complex64 ``(T, Y, X)`` on ``y``'s device, oriented like mridip images.

    Raises
    ------
    DependencyError
        ``bart`` is not on PATH.
    """
    if not bart_available():
        raise DependencyError(f"bart_pics needs the BART command line tool `bart` on PATH: {_INSTALL}")
    if not torch.is_tensor(coil_maps) or coil_maps.ndim != 3:
        raise ShapeError(f"bart_pics: coil_maps must be (C, Y, X), got {tuple(getattr(coil_maps, 'shape', ()))}")
    c, ny, nx = (int(s) for s in coil_maps.shape)
    ksp = _to_numpy(y).astype(np.complex64)
    maps = _to_numpy(coil_maps).astype(np.complex64)
    regs = [regularization] if isinstance(regularization, str) else list(regularization)
    args = ["bart", "pics", "-S", "-i", str(int(iterations))]
    for r in regs:
        args += ["-R", str(r)]
    if data_scale is not None:
        args += ["-w", repr(float(data_scale))]
    args += [str(a) for a in extra_args]
    with tempfile.TemporaryDirectory(prefix="mridip_bart_") as tmp:
        p = lambda name: os.path.join(tmp, name)  # noqa: E731
        # maps (C, Y, X) -> [Y, X, 1, C]
        write_cfl(p("maps"), _place(maps.transpose(1, 2, 0), _bart_dims(d0=ny, d1=nx, d3=c)))
        if trajectory is None:
            if ksp.ndim != 4 or ksp.shape[1] != c:
                raise ShapeError(f"bart_pics: Cartesian k-space must be (T, C, Ky, Kx) with C = {c}, got {ksp.shape}")
            t, _, ky, kx = ksp.shape
            if (ky, kx) != (ny, nx):
                raise ShapeError(f"bart_pics: k-space matrix {(ky, kx)} differs from the coil maps' {(ny, nx)}")
            # (T, C, Ky, Kx) -> [Ky, Kx, 1, C, ..., T]
            write_cfl(p("ksp"), _place(ksp.transpose(2, 3, 1, 0), _bart_dims(d0=ky, d1=kx, d3=c, d10=t)))
            if mask is not None:
                m = _to_numpy(mask).astype(np.complex64)
                if m.shape != (t, ky, kx):
                    raise ShapeError(f"bart_pics: mask must be (T, Ky, Kx) = {(t, ky, kx)}, got {m.shape}")
                write_cfl(p("pat"), _place(m.transpose(1, 2, 0), _bart_dims(d0=ky, d1=kx, d10=t)))
                args += ["-p", p("pat")]
        else:
            traj = _to_numpy(trajectory).astype(np.float64)
            if ksp.ndim != 3 or ksp.shape[1] != c:
                raise ShapeError(f"bart_pics: radial k-space must be (T, C, K) with C = {c}, got {ksp.shape}")
            t, _, k = ksp.shape
            if traj.shape != (t, 2, k):
                raise ShapeError(f"bart_pics: trajectory must be (T, 2, K) = {(t, 2, k)}, got {traj.shape}")
            # radians/voxel -> BART pixels (cycles per FOV); rows: dim-0 (Y) and dim-1 (X) coordinates
            tb = np.zeros((3, k, t), dtype=np.complex64)
            tb[0] = (traj[:, 0, :] * ny / (2 * math.pi)).T
            tb[1] = (traj[:, 1, :] * nx / (2 * math.pi)).T
            write_cfl(p("traj"), _place(tb, _bart_dims(d0=3, d1=k, d10=t)))
            write_cfl(p("ksp"), _place(ksp.transpose(2, 1, 0), _bart_dims(d1=k, d3=c, d10=t)))
            args += ["-t", p("traj")]
        args += [p("ksp"), p("maps"), p("out")]
        run = subprocess.run(args, capture_output=True, text=True)
        if run.returncode != 0:
            raise DependencyError(
                f"bart pics failed (exit {run.returncode}): {run.stderr.strip() or run.stdout.strip()}\n"
                f"command: {' '.join(args)}"
            )
        out = read_cfl(p("out"))
    # [Y, X, 1, ..., T] (trailing ones dropped) -> (T, Y, X)
    full = out.reshape(out.shape + (1,) * (BART_DIMS - out.ndim))
    img = full[(slice(None), slice(None)) + (0,) * (TIME_DIM - 2) + (slice(None),) + (0,) * (BART_DIMS - TIME_DIM - 1)]
    img = img.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(img)).to(device=y.device if torch.is_tensor(y) else "cpu")


def bart_pics_method(
    A,
    y: torch.Tensor,
    *,
    regularization: str = "T:1024:0:0.002",
    iterations: int = 100,
) -> tuple[torch.Tensor, dict]:
    """The ``bart-pics`` baseline: ``bart pics`` on the data, coil maps and sampling of operator ``A``.

    Parameters
    ----------
    A : CartesianSense or RadialSense
        The operator the other methods use; its coil maps and mask (Cartesian) or trajectory
        (radial, all samples measured) are handed to BART.
    y : torch.Tensor
        Measured k-space in ``A.oshape``.
    regularization : str
        BART ``-R`` terms separated by spaces (``"T:1024:0:0.002"`` temporal TV,
        ``"W:3:0:0.005"`` l1-wavelet); weights relative to ``max |A^H y|`` (``-w``), as the
        package's own baselines.
    iterations : int
        ``-i``.

    Returns
    -------
    x, info
        ``x`` complex64 ``(T, Y, X)`` on ``A``'s device; ``info`` with iterations, stop reason,
        seconds.
    """
    import time

    from mridip.errors import ShapeError
    from mridip.recon.baselines import data_scale

    t0 = time.perf_counter()
    maps = getattr(A, "coil_maps", None)
    if maps is None:
        raise ShapeError(f"bart-pics needs a SENSE operator with coil maps, got {type(A).__name__}")
    traj = getattr(A, "trajectory", None)
    if traj is not None and not bool((A.weights == 1).all()):
        raise ShapeError("bart-pics: the radial operator has sample weights; BART takes unweighted samples only")
    regs = [r for r in str(regularization).split() if r]
    x = bart_pics(
        y, maps, trajectory=traj, mask=None if traj is not None else A.sample_mask,
        regularization=regs, iterations=iterations, data_scale=data_scale(A, y),
    )
    info = {"iterations": int(iterations), "stop_reason": "max_iterations (bart pics -i)",
            "seconds": time.perf_counter() - t0, "objective": []}
    return x.to(y.device), info
