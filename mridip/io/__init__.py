"""Raw data in, reconstructions out.

- :func:`load_raw` reads an ISMRMRD or fastMRI ``.h5`` file, recognised by its content
  (an ISMRMRD group with ``xml`` + ``data``; a fastMRI ``kspace`` dataset), never by its
  name; :func:`read_ismrmrd` and :func:`read_fastmri` read one format directly.
- :func:`from_arrays` wraps k-space arrays already in memory.
- :func:`describe` is the text of ``mridip info``.
- :func:`save_reconstruction` / :func:`load_reconstruction` write and read the output
  file of DESIGN.md; :func:`file_sha256` is the input digest recorded in it.

Trajectories are converted here from the files' cycles/pixel to radians/voxel, the
package's unit; see ``docs/data.md`` for the conventions and flags used.
"""

from __future__ import annotations

import os

from mridip.data import RawData
from mridip.errors import InputFileError
from mridip.io.arrays import from_arrays
from mridip.io.fastmri import read_fastmri
from mridip.io.info import describe
from mridip.io.ismrmrd import parse_header_xml, read_ismrmrd
from mridip.io.output import file_sha256, load_reconstruction, save_reconstruction

__all__ = [
    "load_raw",
    "detect_format",
    "read_ismrmrd",
    "read_fastmri",
    "from_arrays",
    "describe",
    "save_reconstruction",
    "load_reconstruction",
    "file_sha256",
    "parse_header_xml",
]


def _ismrmrd_group(f) -> str | None:
    """Name of the first group holding ISMRMRD ``data`` + ``xml`` ("dataset" preferred)."""
    names = ["dataset"] + sorted(k for k in f.keys() if k != "dataset")
    for name in names:
        g = f.get(name)
        if g is not None and hasattr(g, "keys") and "data" in g and "xml" in g:
            return name
    return None


def detect_format(path: str | os.PathLike) -> str:
    """``"ismrmrd"``, ``"fastmri"`` or ``"output"`` (a mridip reconstruction), from content.

    Raises
    ------
    InputFileError
        Missing, non-HDF5, truncated file, or an HDF5 file of another kind.
    """
    from mridip.io.ismrmrd import _corrupt, _open_h5

    path = os.fspath(path)
    f = _open_h5(path)
    try:
        keys = sorted(f.keys())
        if _ismrmrd_group(f) is not None:
            return "ismrmrd"
        if "kspace" in f:
            return "fastmri"
        if "reconstruction" in f:
            return "output"
    except (OSError, RuntimeError, KeyError) as exc:
        raise _corrupt(path, exc) from exc
    finally:
        f.close()
    raise InputFileError(
        f"{path!r} is an HDF5 file but neither ISMRMRD (a group with 'data' and 'xml') nor "
        f"fastMRI ('kspace' + 'ismrmrd_header'); it holds {keys[:10]}. Convert the data to "
        "ISMRMRD (siemens_to_ismrmrd, or data_tools.writers), or load arrays with "
        "mridip.io.from_arrays"
    )


def load_raw(path: str | os.PathLike, spokes_per_frame: int | None = None) -> RawData:
    """Read a raw file (ISMRMRD or fastMRI, detected from its content).

    Parameters
    ----------
    path : str or PathLike
    spokes_per_frame : int, optional
        For radial ISMRMRD files without a frame index: spokes binned per frame (see
        :func:`read_ismrmrd`). Ignored for fastMRI.

    Returns
    -------
    RawData
        Multi-slice data on a leading S axis; see :mod:`mridip.data` for the shapes.

    Raises
    ------
    InputFileError
        Missing, truncated, unknown or inconsistent file (message says which and what
        to do).
    """
    import h5py

    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt == "ismrmrd":
        with h5py.File(path, "r") as f:
            group = _ismrmrd_group(f)
        return read_ismrmrd(path, spokes_per_frame=spokes_per_frame, dataset=group)
    if fmt == "fastmri":
        return read_fastmri(path)
    raise InputFileError(
        f"{path!r} is a mridip reconstruction (output) file, not raw data: read it with "
        "mridip.io.load_reconstruction, or give the raw .h5 the reconstruction came from"
    )
