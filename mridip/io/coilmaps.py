"""Coil sensitivity maps from a file, for ``--coil-maps FILE`` (reuse across runs and tools).

Accepted files:

- a mridip output ``.h5`` (its ``coil_maps`` dataset, complex64 ``(S, C, Y, X)``, written
  by :func:`mridip.io.save_reconstruction` since maps are saved with the image);
- a ``.npy`` array ``(C, Y, X)`` or ``(S, C, Y, X)`` (sigpy users: ``mps`` of
  ``sigpy.mri.app.EspiritCalib(...).run()`` is ``(C, Y, X)``);
- a BART ``.cfl`` (+ ``.hdr``) from ``bart ecalib`` / ``bart caldir``: dims
  ``(X, Y, Z, C[, MAPS])`` (BART's READ, PHASE1, PHASE2, COIL, MAPS); the first ESPIRiT
  map set is used, partitions (Z) become slices.
"""

from __future__ import annotations

import os

import numpy as np

from mridip.errors import InputFileError

__all__ = ["load_coil_maps"]


def load_coil_maps(path: str | os.PathLike) -> np.ndarray:
    """Read coil maps as complex64 ``(S, C, Y, X)``.

    Parameters
    ----------
    path : path
        mridip output ``.h5``, ``.npy`` or BART ``.cfl`` / ``.hdr`` (see the module docstring).

    Returns
    -------
    numpy.ndarray
        complex64 ``(S, C, Y, X)``.

    Raises
    ------
    InputFileError
        Missing file, no ``coil_maps`` in an ``.h5``, wrong number of dimensions, NaN/Inf.
    """
    from mridip.io.cfl import is_cfl

    p = os.fspath(path)
    if is_cfl(p):
        from mridip.io.cfl import _read_pair

        arr, dims, base = _read_pair(p, "coil maps")
        if any(n > 1 for n in dims[5:]):
            raise InputFileError(f"coil maps {base}.cfl: dims {dims[:8]}: only READ, PHASE1, PHASE2, COIL "
                                 "and MAPS may exceed 1 (a bart ecalib output)")
        a = arr[:, :, :, :, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # (X, Y, Z, C), first map set
        maps = np.transpose(a, (2, 3, 1, 0))  # (Z=S, C, Y, X)
    elif not os.path.exists(p):
        raise InputFileError(f"coil maps file not found: {p!r}; check the path")
    elif p.endswith(".npy"):
        try:
            maps = np.load(p)
        except ValueError as exc:
            raise InputFileError(f"coil maps {p!r} is not a readable .npy array: {exc}") from exc
    else:
        import h5py

        try:
            with h5py.File(p, "r") as f:
                if "coil_maps" not in f:
                    raise InputFileError(
                        f"{p!r} holds no 'coil_maps' dataset (has {sorted(f.keys())[:10]}): give a mridip output "
                        ".h5 written by this version, a .npy (C, Y, X) / (S, C, Y, X) or a BART .cfl"
                    )
                maps = f["coil_maps"][()]
        except OSError as exc:
            raise InputFileError(f"coil maps {p!r} is not a readable HDF5, .npy or .cfl file: {exc}") from exc
    maps = np.asarray(maps)
    if maps.ndim == 3:
        maps = maps[None]
    if maps.ndim != 4:
        raise InputFileError(f"coil maps {p!r} must be (C, Y, X) or (S, C, Y, X), got shape {maps.shape}")
    if not np.isfinite(maps).all():
        raise InputFileError(f"coil maps {p!r} hold NaN or Inf values")
    return maps.astype(np.complex64)
