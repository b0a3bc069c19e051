"""Raw data in, reconstructions out.

- :func:`load_raw` reads an ISMRMRD or fastMRI ``.h5`` file, recognised by its content
  (an ISMRMRD group with ``xml`` + ``data``; a fastMRI ``kspace`` dataset), never by its
  name; :func:`read_ismrmrd` and :func:`read_fastmri` read one format directly.
- Siemens twix ``.dat`` files (:func:`mridip.io.twix.read_twix`, converted to ISMRMRD
  and read under the same rules) and BART ``.cfl``/``.hdr`` k-space with an optional
  trajectory (:func:`mridip.io.cfl.read_bart`) are recognised by content too.
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
from mridip.io.output import file_sha256 as _file_sha256
from mridip.io.output import load_reconstruction, save_reconstruction

__all__ = [
    "load_raw",
    "detect_format",
    "read_ismrmrd",
    "read_fastmri",
    "from_arrays",
    "describe",
    "save_reconstruction",
    "load_reconstruction",
    "save_output",
    "save_mrd",
    "save_nifti",
    "file_sha256",
    "parse_header_xml",
]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of an input file's bytes (provenance of a reconstruction's input).

    A BART array named without its suffix (``ksp``) or by its ``.hdr`` is digested by its
    ``.cfl`` data file.
    """
    from mridip.io.cfl import cfl_base, is_cfl

    if not os.path.isfile(path) or os.fspath(path).endswith(".hdr"):
        if is_cfl(path):
            return _file_sha256(cfl_base(path) + ".cfl")
    return _file_sha256(path)


def _ismrmrd_group(f) -> str | None:
    """Name of the first group holding ISMRMRD ``data`` + ``xml`` ("dataset" preferred)."""
    names = ["dataset"] + sorted(k for k in f.keys() if k != "dataset")
    for name in names:
        g = f.get(name)
        if g is not None and hasattr(g, "keys") and "data" in g and "xml" in g:
            return name
    return None


def detect_format(path: str | os.PathLike) -> str:
    """``"ismrmrd"``, ``"fastmri"``, ``"twix"``, ``"bart"`` or ``"output"`` (a mridip
    reconstruction), from content.

    A Siemens twix ``.dat`` is recognised by its first bytes (:func:`mridip.io.twix.twix_version`),
    a BART array by a ``NAME.hdr`` with a ``# Dimensions`` line (``NAME``, ``NAME.cfl`` or
    ``NAME.hdr`` may be given); HDF5 files by their groups.

    Raises
    ------
    InputFileError
        Missing, non-HDF5, truncated file, an HDF5 file of another kind, or half of a
        BART pair (the missing file is named).
    """
    from mridip.io.cfl import cfl_base, is_cfl
    from mridip.io.ismrmrd import _corrupt, _open_h5
    from mridip.io.twix import is_twix

    path = os.fspath(path)
    if is_cfl(path):
        return "bart"
    if os.path.isfile(path) and is_twix(path):
        return "twix"
    base = cfl_base(path)
    for have, missing in ((base + ".cfl", base + ".hdr"), (base + ".hdr", base + ".cfl")):
        if (base != path or not os.path.exists(path)) and os.path.exists(have) and not os.path.exists(missing):
            raise InputFileError(
                f"{have!r} exists but {missing!r} is missing: a BART array is a pair of NAME.hdr "
                "(dimensions) + NAME.cfl (data); copy both"
            )
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


def load_raw(
    path: str | os.PathLike,
    spokes_per_frame: int | str | None = None,
    *,
    calibration: str = "data+maps",
    trajectory: str | os.PathLike | None = None,
) -> RawData:
    """Read a raw file (ISMRMRD, fastMRI, Siemens twix .dat or BART .cfl; detected from its content).

    Parameters
    ----------
    path : str or PathLike
    spokes_per_frame : int or "all", optional
        For radial files without a frame index: spokes binned per frame, or ``"all"``
        for one frame of all spokes (see :func:`read_ismrmrd`). Ignored for fastMRI.
    calibration : str
        ``"data+maps"`` (default): acquisitions flagged parallel-calibration-only (ISMRMRD
        bit 20) are image data and calibration data; ``"maps"``: calibration data only
        (``RawData.calibration``), as in a separate reference scan.
    trajectory : path, optional
        A k-space trajectory file for formats that keep it apart from the k-space (BART
        ``.cfl``); ISMRMRD files carry their own.

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
    if trajectory is not None and fmt != "bart":
        raise InputFileError(
            f"a separate trajectory file ({os.fspath(trajectory)!r}) is for BART .cfl k-space; "
            f"{path!r} is {fmt} and carries its own trajectory (or is Cartesian): drop --trajectory"
        )
    if fmt == "bart":
        from mridip.io.cfl import read_bart

        return read_bart(path, trajectory=trajectory, spokes_per_frame=spokes_per_frame)
    if fmt == "twix":
        from mridip.io.twix import read_twix

        return read_twix(path, spokes_per_frame=spokes_per_frame, calibration=calibration)
    if fmt == "ismrmrd":
        with h5py.File(path, "r") as f:
            group = _ismrmrd_group(f)
        return read_ismrmrd(path, spokes_per_frame=spokes_per_frame, dataset=group, calibration=calibration)
    if fmt == "fastmri":
        return read_fastmri(path)
    raise InputFileError(
        f"{path!r} is a mridip reconstruction (output) file, not raw data: read it with "
        "mridip.io.load_reconstruction, or give the raw .h5 the reconstruction came from"
    )
