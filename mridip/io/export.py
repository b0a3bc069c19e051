"""Outputs that other software opens: ISMRMRD / MRD images and NIfTI.

The ``.h5`` of :mod:`mridip.io.output` stays the one file with full provenance (protocol,
log, reference); the formats here carry the images and their geometry:

- :func:`save_mrd`: MRD images (``ismrmrd`` package, ``Dataset.append_image``), the complex
  series (``IMTYPE_COMPLEX``, complex64: magnitude and phase both survive, so a reader can
  take either, and a Gadgetron / ismrmrd-viewer chain can go on processing them) in the
  image group ``reconstruction``, one 2-D image per (slice, frame), and each parameter map
  as a real float32 series in the group ``map_<NAME>``; an ``ismrmrdHeader`` XML header
  (the input's, where at hand, else a minimal valid one with the reconSpace).
- :func:`save_nifti`: the magnitude series, float32 ``(X, Y, S, T)``, in NIfTI's RAS+ world
  (``nibabel``), each parameter map beside it as ``STEM_<NAME>.nii.gz`` ``(X, Y, S)``.
  NIfTI holds no complex data here (magnitude only): the ``.h5`` and ``.mrd`` hold it.
- :func:`save_output`: one entry point choosing the format by suffix (``.h5``, ``.mrd``,
  ``.nii``, ``.nii.gz``) or by name (``"h5"``, ``"mrd"``, ``"nifti"``).

Geometry comes from the reconstruction's attributes, filled by
:func:`mridip.recon.pipeline.reconstruct` from the ISMRMRD header:
``attrs["recon_fov_mm"]`` = ``[x, y, z]`` mm (x = readout = image columns X, y = phase =
rows Y, z = slice thickness) and ``attrs["slice_geometry"]`` = JSON list, one dict per
reconstructed slice, ``{"position", "read_dir", "phase_dir", "slice_dir"}`` in the patient
coordinates of the ISMRMRD acquisition header (LPS, mm). Where either is absent (array or
phantom input) 1 mm pixels and a transverse slice at the isocentre are written, with a
warning. Convention (MRD image header documentation): ``position`` is the centre of the
field-of-view box, so voxel ``(i, j)`` of a slice (i = column X, j = row Y) lies at
``position + (i + 0.5 - X / 2) dx read_dir + (j + 0.5 - Y / 2) dy phase_dir`` with
``dx = fov_x / X``, ``dy = fov_y / Y``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mridip.data import Reconstruction
from mridip.errors import DependencyError, InputFileError, ShapeError

#: the output formats of :func:`save_output` (``--format``)
FORMATS = ("h5", "mrd", "nifti")
#: suffixes recognised by :func:`output_format`, longest first
_SUFFIXES = ((".nii.gz", "nifti"), (".mrd.h5", "mrd"), (".nii", "nifti"), (".mrd", "mrd"), (".h5", "h5"))
#: LPS (ISMRMRD / DICOM patient coordinates) -> RAS (NIfTI world): negate x and y
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
#: image series numbers in MRD files (``image_series_index``): the images, then one per map
_IMAGE_SERIES = 1


@dataclass
class SliceGeometry:
    """Where the pixels of a reconstruction lie, per slice (ISMRMRD conventions).

    Attributes
    ----------
    fov_mm : numpy.ndarray
        float64 ``(3,)``: field of view (x = readout = columns X, y = phase = rows Y,
        z = slice thickness) in mm.
    position : numpy.ndarray
        float64 ``(S, 3)``: centre of each slice's field-of-view box, LPS, mm.
    read_dir, phase_dir, slice_dir : numpy.ndarray
        float64 ``(S, 3)`` unit vectors (LPS) of the columns (X), rows (Y) and slice normal.
    from_header : bool
        False where the reconstruction carried no geometry and the default (1 mm pixels,
        transverse, isocentre) was used.
    """

    fov_mm: np.ndarray
    position: np.ndarray
    read_dir: np.ndarray
    phase_dir: np.ndarray
    slice_dir: np.ndarray
    from_header: bool = True


def _unit(v, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (3,) or not np.isfinite(a).all():
        raise ShapeError(f"slice_geometry {name} must be 3 finite numbers, got {v!r}")
    n = np.linalg.norm(a)
    if n == 0:
        raise ShapeError(f"slice_geometry {name} is the zero vector: the header's geometry is broken")
    return a / n


def recon_geometry(recon: Reconstruction, *, warn: bool = True) -> SliceGeometry:
    """The slice geometry of ``recon`` from ``attrs["recon_fov_mm"]`` and ``attrs["slice_geometry"]``.

    Parameters
    ----------
    recon : Reconstruction
        ``image`` ``(S, T, Y, X)``.
    warn : bool
        Warn (``UserWarning``) where a part of the geometry is missing and a default is used:
        FOV = matrix x 1 mm (thickness 1 mm); slice ``s`` at ``(0, 0, s x thickness)`` mm,
        read = (1, 0, 0), phase = (0, 1, 0), slice = (0, 0, 1) (transverse).

    Returns
    -------
    SliceGeometry

    Raises
    ------
    ShapeError
        ``slice_geometry`` holds a number of slices other than S, or malformed vectors.
    """
    S, _, Y, X = recon.image.shape
    attrs = recon.attrs or {}
    missing = []
    fov = attrs.get("recon_fov_mm")
    if fov is not None:
        fov = np.asarray(fov, dtype=np.float64).reshape(-1)
        if fov.shape != (3,) or not np.isfinite(fov).all() or (fov <= 0).any():
            raise ShapeError(
                f"attrs['recon_fov_mm'] must be 3 positive numbers (x, y, z) in mm, got {attrs['recon_fov_mm']!r}"
            )
    else:
        missing.append("recon_fov_mm")
        fov = np.array([float(X), float(Y), 1.0])
    geo = attrs.get("slice_geometry")
    if isinstance(geo, (str, bytes)):
        try:
            geo = json.loads(geo)
        except json.JSONDecodeError as exc:
            raise ShapeError(f"attrs['slice_geometry'] is not JSON text ({exc})") from exc
    if geo:
        if len(geo) != S:
            raise ShapeError(
                f"attrs['slice_geometry'] has {len(geo)} entries for {S} reconstructed slice(s): "
                "it must hold one per slice of the image"
            )
        try:
            pos = np.array([np.asarray(g["position"], dtype=np.float64).reshape(3) for g in geo])
            dirs = {k: np.array([_unit(g[k], k) for g in geo]) for k in ("read_dir", "phase_dir", "slice_dir")}
        except (KeyError, TypeError, ValueError) as exc:
            raise ShapeError(
                f"attrs['slice_geometry'] entries need 'position', 'read_dir', 'phase_dir', 'slice_dir' "
                f"(3 numbers each): {exc}"
            ) from exc
    else:
        missing.append("slice_geometry")
        pos = np.zeros((S, 3))
        pos[:, 2] = np.arange(S) * fov[2]
        dirs = {k: np.tile(np.eye(3)[i], (S, 1)) for i, k in enumerate(("read_dir", "phase_dir", "slice_dir"))}
    if missing and warn:
        what = {
            "recon_fov_mm": "1 mm pixels and 1 mm slices",
            "slice_geometry": "a transverse orientation at the isocentre",
        }
        warnings.warn(
            f"the header gave no geometry ({' and '.join(missing)} absent from the reconstruction's attrs: "
            f"array or phantom input?): writing {' and '.join(what[m] for m in missing)}",
            UserWarning,
            stacklevel=3,
        )
    return SliceGeometry(fov_mm=fov, position=pos, from_header=not missing, **dirs)


def nifti_affine(geometry: SliceGeometry, shape: tuple[int, int, int]) -> np.ndarray:
    """The 4 x 4 voxel -> RAS+ (mm) affine of a NIfTI volume indexed ``(X, Y, S)``.

    Column 0 = ``dx`` x read_dir, column 1 = ``dy`` x phase_dir, column 2 = the step between
    slice positions (``(p[S-1] - p[0]) / (S - 1)``; ``thickness`` x slice_dir for one slice),
    all converted LPS -> RAS (x and y negated); the translation puts voxel ``(0, 0, 0)``'s
    centre at ``p[0] - (X / 2 - 0.5) dx read - (Y / 2 - 0.5) dy phase``.

    Parameters
    ----------
    geometry : SliceGeometry
    shape : (S, Y, X)
        Slices, rows, columns of the image.

    Warns
    -----
    UserWarning
        Slices with different orientations, or unequally spaced: NIfTI holds one regular
        grid, the first slice's orientation and the mean step are written (the ``.mrd``
        holds each slice's own geometry).
    """
    S, Y, X = shape
    dx, dy = geometry.fov_mm[0] / X, geometry.fov_mm[1] / Y
    read, phase = geometry.read_dir[0], geometry.phase_dir[0]
    p = geometry.position
    same = np.allclose(geometry.read_dir, read, atol=1e-4) and np.allclose(geometry.phase_dir, phase, atol=1e-4)
    if S > 1 and not same:
        warnings.warn("slices have different orientations: NIfTI holds one stack, the first slice's "
                      "orientation is written (the .mrd output keeps each slice's)", UserWarning, stacklevel=3)
    step = (p[-1] - p[0]) / (S - 1) if S > 1 else np.zeros(3)
    if S > 1:
        resid = p - (p[0] + np.arange(S)[:, None] * step)
        if np.abs(resid).max() > 1e-3 * max(1.0, np.linalg.norm(step)):
            warnings.warn("slices are not equally spaced: NIfTI holds a regular grid, the mean slice step "
                          "is written (the .mrd output keeps each slice's position)", UserWarning, stacklevel=3)
    if np.linalg.norm(step) < 1e-6:
        step = geometry.fov_mm[2] * geometry.slice_dir[0]
    m = np.eye(4)
    m[:3, 0] = _LPS_TO_RAS @ (dx * read)
    m[:3, 1] = _LPS_TO_RAS @ (dy * phase)
    m[:3, 2] = _LPS_TO_RAS @ step
    corner = p[0] - (X / 2 - 0.5) * dx * read - (Y / 2 - 0.5) * dy * phase
    m[:3, 3] = _LPS_TO_RAS @ corner
    return m


# ---------------------------------------------------------------- header facts from the input


def _input_header_xml(recon: Reconstruction) -> str | None:
    """The input's ismrmrdHeader XML: ``attrs["ismrmrd_header"]``, else read from ``attrs["input"]``
    (an ISMRMRD file's ``xml`` or a fastMRI file's ``ismrmrd_header``) where that file is still there."""
    attrs = recon.attrs or {}
    xml = attrs.get("ismrmrd_header")
    if not xml:
        src = attrs.get("input")
        if not src or not os.path.isfile(str(src)):
            return None
        try:
            import h5py

            from mridip.io import _ismrmrd_group

            with h5py.File(str(src), "r") as f:
                group = _ismrmrd_group(f)
                if group is not None:
                    xml = f[group]["xml"][0]
                elif "ismrmrd_header" in f:
                    xml = f["ismrmrd_header"][()]
        except (OSError, KeyError, ValueError, RuntimeError):
            return None
    if isinstance(xml, (bytes, bytearray, np.bytes_)):
        xml = bytes(xml).decode("utf-8", errors="replace")
    if not xml:
        return None
    xml = str(xml).strip().rstrip("\x00")
    from mridip.io.ismrmrd import parse_header_xml

    try:  # a header our own reader rejects is not copied into the output
        parse_header_xml(xml)
    except InputFileError:
        return None
    return xml


def _tr_ms(recon: Reconstruction, xml: str | None) -> float | None:
    """Repetition time in ms: ``attrs["tr_ms"]``, else the header's first sequenceParameters TR."""
    tr = (recon.attrs or {}).get("tr_ms")
    if tr is not None:
        tr = np.asarray(tr, dtype=np.float64).reshape(-1)
        return float(tr[0]) if tr.size and tr[0] > 0 else None
    if xml:
        from mridip.io.ismrmrd import parse_header_xml

        trs = parse_header_xml(xml).tr_ms
        if trs and trs[0] and trs[0] > 0:
            return float(trs[0])
    return None


def minimal_header_xml(recon: Reconstruction, geometry: SliceGeometry | None = None) -> str:
    """A minimal valid ismrmrdHeader for images of ``recon`` (built with ``ismrmrd.xsd``).

    encodedSpace = reconSpace = matrix ``(X, Y, 1)`` with the reconstruction's FOV (mm),
    encodingLimits slice ``(0, S - 1)`` and phase ``(0, T - 1)``, trajectory ``radial`` or
    ``cartesian`` from ``attrs["kind"]``. ``H1resonanceFrequency_Hz`` (required by the
    schema) is 0: not known.
    """
    x = _ismrmrd().xsd
    S, T, Y, X = recon.image.shape
    g = geometry if geometry is not None else recon_geometry(recon, warn=False)
    fov = g.fov_mm

    def space():
        return x.encodingSpaceType(
            matrixSize=x.matrixSizeType(x=int(X), y=int(Y), z=1),
            fieldOfView_mm=x.fieldOfViewMm(x=float(fov[0]), y=float(fov[1]), z=float(fov[2])),
        )

    kind = str((recon.attrs or {}).get("kind", "cartesian"))
    enc = x.encodingType(
        encodedSpace=space(),
        reconSpace=space(),
        encodingLimits=x.encodingLimitsType(
            slice=x.limitType(minimum=0, maximum=int(S - 1), center=0),
            phase=x.limitType(minimum=0, maximum=int(T - 1), center=0),
        ),
        trajectory=x.trajectoryType("radial" if kind == "radial" else "cartesian"),
    )
    hdr = x.ismrmrdHeader(
        experimentalConditions=x.experimentalConditionsType(H1resonanceFrequency_Hz=0),
        encoding=[enc],
    )
    return x.ToXML(hdr)


# ---------------------------------------------------------------- writing


def _ismrmrd():
    try:
        import ismrmrd
        import ismrmrd.xsd  # noqa: F401
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise DependencyError("writing .mrd needs the ismrmrd package: pip install ismrmrd") from exc
    return ismrmrd


def _nibabel():
    try:
        import nibabel
    except ImportError as exc:
        raise DependencyError("writing NIfTI needs nibabel: pip install nibabel (or write .h5 / .mrd)") from exc
    return nibabel


def _write_atomically(path: str, write: Callable[[str], None]) -> str:
    """:func:`mridip.io.output.write_atomically` with ``path``'s suffix kept on the temporary
    name (nibabel chooses compression by it)."""
    from mridip.io.output import write_atomically

    base = os.path.basename(os.fspath(path))
    ext = next((s for s, _ in _SUFFIXES if base.lower().endswith(s)), "")
    return write_atomically(path, write, suffix=ext)


def _slice_numbers(recon: Reconstruction) -> list[int]:
    """The input's slice index of each reconstructed slice (``attrs["slices"]``), else 0..S-1."""
    S = recon.image.shape[0]
    sl = (recon.attrs or {}).get("slices")
    if isinstance(sl, (list, tuple, np.ndarray)) and len(sl) == S:
        return [int(v) for v in sl]
    return list(range(S))


def _map_unit(name: str) -> str:
    # DESIGN.md: relaxation times (T1, T2, T1star, ...) in ms; M0 and the like in image units
    return "ms" if name[:1].upper() == "T" and name[1:2].isdigit() else "a.u."


def _maps(recon: Reconstruction, S: int) -> dict[str, np.ndarray]:
    out = {}
    for name, m in (recon.parameter_maps or {}).items():
        m = np.asarray(m)
        if np.iscomplexobj(m):
            raise ShapeError(f"parameter map {name!r} is complex; maps are real (float32, ms)")
        if m.ndim == 2:
            m = m[None]
        if m.ndim != 3 or m.shape[0] != S or m.shape[1:] != recon.image.shape[2:]:
            want = (S,) + recon.image.shape[2:]
            raise ShapeError(f"parameter map {name!r} must be (S, Y, X) = {want}, got {m.shape}")
        out[str(name)] = m.astype(np.float32)
    return out


def save_mrd(path: str | os.PathLike, recon: Reconstruction, *, header_xml: str | None = None) -> str:
    """Write ``recon`` as ISMRMRD / MRD images (``ismrmrd.Dataset``, group ``dataset``); returns the path.

    Layout of ``/dataset``:

    - ``xml``: the ismrmrdHeader: ``header_xml``, else the input's (``attrs["ismrmrd_header"]``
      or the file ``attrs["input"]``), else :func:`minimal_header_xml`.
    - ``reconstruction``: ``S x T`` complex64 images ``(Y, X)`` (matrix_size ``(X, Y, 1)``),
      ``image_type = IMTYPE_COMPLEX``, ``image_series_index = 1``, ``image_index`` 1, 2, ...
      in (slice, frame) order; ``slice`` = the input's slice number, ``phase`` = frame index;
      ``field_of_view`` (mm), ``position`` / ``read_dir`` / ``phase_dir`` / ``slice_dir`` (LPS)
      of the slice; meta attributes ``SeriesDescription``, ``ImageComment``.
    - ``map_<NAME>`` per parameter map: ``S`` float32 images, ``IMTYPE_REAL``, series 2, 3, ...
      in the maps' order, meta ``SeriesDescription`` / ``ImageComment`` = NAME and ``Units``.

    Complex images, not magnitude: a DIP or CS reconstruction's phase is part of the result
    (e.g. for phase-sensitive or further processing); a viewer shows the magnitude.

    Parameters
    ----------
    path : str or PathLike
        Target file (replaced atomically if it exists).
    recon : Reconstruction
        ``image`` complex64 ``(S, T, Y, X)``; ``parameter_maps`` float32 ``(S, Y, X)``.
    header_xml : str, optional
        ismrmrdHeader XML text to write instead of the input's.
    """
    ismrmrd = _ismrmrd()
    img = np.asarray(recon.image, dtype=np.complex64)
    S, T, Y, X = img.shape
    geo = recon_geometry(recon)
    xml = header_xml or _input_header_xml(recon) or minimal_header_xml(recon, geo)
    maps = _maps(recon, S)
    slice_no = _slice_numbers(recon)
    method = str(recon.method)

    def header(im, s: int) -> None:
        im.field_of_view = tuple(float(v) for v in geo.fov_mm)
        im.position = tuple(float(v) for v in geo.position[s])
        im.read_dir = tuple(float(v) for v in geo.read_dir[s])
        im.phase_dir = tuple(float(v) for v in geo.phase_dir[s])
        im.slice_dir = tuple(float(v) for v in geo.slice_dir[s])
        im.slice = slice_no[s]

    def write(tmp: str) -> None:
        ds = ismrmrd.Dataset(tmp, "dataset", create_if_needed=True)
        try:
            ds.write_xml_header(xml)
            n = 0
            for s in range(S):
                for t in range(T):
                    n += 1
                    im = ismrmrd.Image.from_array(np.ascontiguousarray(img[s, t]), acquisition=ismrmrd.Acquisition())
                    header(im, s)
                    im.phase = t
                    im.image_type = ismrmrd.IMTYPE_COMPLEX
                    im.image_series_index = _IMAGE_SERIES
                    im.image_index = n
                    im.meta = {"SeriesDescription": f"mridip {method}",
                               "ImageComment": f"{method} slice {slice_no[s]} frame {t}"}
                    ds.append_image("reconstruction", im)
            for k, (name, m) in enumerate(maps.items()):
                for s in range(S):
                    im = ismrmrd.Image.from_array(np.ascontiguousarray(m[s]), acquisition=ismrmrd.Acquisition())
                    header(im, s)
                    im.image_type = ismrmrd.IMTYPE_REAL
                    im.image_series_index = _IMAGE_SERIES + 1 + k
                    im.image_index = s + 1
                    im.meta = {"SeriesDescription": f"mridip {method} {name}", "ImageComment": name,
                               "Units": _map_unit(name)}
                    ds.append_image(f"map_{name}", im)
        finally:
            ds.close()

    return _write_atomically(os.fspath(path), write)


def _nifti_suffix(path: str) -> str:
    low = path.lower()
    for s in (".nii.gz", ".nii"):
        if low.endswith(s):
            return s
    raise InputFileError(f"NIfTI output {path!r} must end in .nii or .nii.gz")


def save_nifti(path: str | os.PathLike, recon: Reconstruction) -> list[str]:
    """Write the magnitude of ``recon`` as NIfTI-1 (``nibabel``), each parameter map beside it.

    - ``path`` (``.nii`` or ``.nii.gz``): float32 ``|image|`` as ``(X, Y, S, T)``; affine
      (sform and qform, code 1 = scanner) from :func:`nifti_affine` in RAS+ mm, voxel sizes
      ``fov_x / X``, ``fov_y / Y``, slice step from the slice positions (one slice: the
      thickness); ``pixdim[4]`` = TR in ms (``attrs["tr_ms"]`` or the input header's), 0
      where unknown; ``xyzt_units`` = mm, ms.
    - ``STEM_<NAME>.nii.gz`` (same suffix as ``path``) per parameter map: float32 ``(X, Y, S)``,
      same affine, units in the description (``ms`` for T1 / T2 ..., else image units).

    NIfTI gets the magnitude only; the complex data are in the ``.h5`` (and ``.mrd``).

    Returns
    -------
    list of str
        The files written, the image series first.
    """
    nib = _nibabel()
    path = os.fspath(path)
    suffix = _nifti_suffix(path)
    img = np.asarray(recon.image)
    S, T, Y, X = img.shape
    geo = recon_geometry(recon)
    affine = nifti_affine(geo, (S, Y, X))
    zooms3 = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    tr = _tr_ms(recon, _input_header_xml(recon))
    maps = _maps(recon, S)
    method = str(recon.method)

    def volume(data: np.ndarray, zooms: tuple, descrip: str):
        v = nib.Nifti1Image(data, affine)
        v.set_sform(affine, code=1)
        v.set_qform(affine, code=1)
        v.header.set_zooms(zooms)
        v.header.set_xyzt_units("mm", "msec")
        v.header["descrip"] = descrip[:79].encode("ascii", errors="replace")
        return v

    # (S, T, Y, X) -> (X, Y, S, T): i = column (read), j = row (phase), k = slice, t = frame
    mag = np.ascontiguousarray(np.abs(img).astype(np.float32).transpose(3, 2, 0, 1))
    series = volume(mag, zooms3 + (tr or 0.0,), f"mridip {method} magnitude (complex in .h5)")
    written = [_write_atomically(path, lambda tmp: nib.save(series, tmp))]
    stem = path[: -len(suffix)]
    for name, m in maps.items():
        vol = volume(np.ascontiguousarray(m.transpose(2, 1, 0)), zooms3, f"mridip {method} {name} ({_map_unit(name)})")
        written.append(_write_atomically(f"{stem}_{name}{suffix}", lambda tmp, vol=vol: nib.save(vol, tmp)))
    return written


# ---------------------------------------------------------------- dispatch


def output_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The output format of ``path``: ``"h5"``, ``"mrd"`` or ``"nifti"``.

    By ``format`` where given; else by suffix: ``.h5`` -> h5 (the provenance file),
    ``.mrd`` or ``.mrd.h5`` -> mrd, ``.nii`` / ``.nii.gz`` -> nifti. An explicit ``"mrd"``
    or ``"h5"`` takes any name but a NIfTI one (MRD files are often named ``.h5``);
    ``"nifti"`` needs ``.nii`` / ``.nii.gz`` (nibabel compresses by suffix).

    Raises
    ------
    InputFileError
        Unknown suffix (naming the choices), unknown format, or a format that contradicts
        a NIfTI suffix.
    """
    p = os.fspath(path)
    low = p.lower()
    by_suffix = next((fmt for s, fmt in _SUFFIXES if low.endswith(s)), None)
    if format is None:
        if by_suffix is None:
            raise InputFileError(
                f"output {p!r}: unknown suffix; use .h5 (mridip, full provenance), .mrd (ISMRMRD/MRD "
                "images) or .nii.gz (NIfTI magnitude), or name the format with --format {h5,mrd,nifti}"
            )
        return by_suffix
    fmt = str(format).lower()
    if fmt not in FORMATS:
        raise InputFileError(f"output format {format!r} unknown: choose one of {', '.join(FORMATS)}")
    if fmt == "nifti" and by_suffix != "nifti":
        raise InputFileError(f"NIfTI output {p!r} must end in .nii or .nii.gz")
    if fmt != "nifti" and by_suffix == "nifti":
        raise InputFileError(
            f"output {p!r} has a NIfTI suffix but the format asked is {fmt!r}: rename it or drop --format"
        )
    return fmt


def output_stem(path: str | os.PathLike) -> str:
    """``path`` without its output suffix (``out.nii.gz`` -> ``out``): the base of previews and side files."""
    p = os.fspath(path)
    low = p.lower()
    for s, _ in _SUFFIXES:
        if low.endswith(s):
            return p[: -len(s)]
    return os.path.splitext(p)[0]


def save_output(
    path: str | os.PathLike,
    recon: Reconstruction,
    format: str | None = None,
    *,
    provenance: bool = False,
) -> list[str]:
    """Write ``recon`` in the format of ``path``'s suffix or ``format``; returns the files written.

    Parameters
    ----------
    path : str or PathLike
        ``.h5`` (:func:`mridip.io.save_reconstruction`: complex, maps, reference, log and full
        provenance), ``.mrd`` (:func:`save_mrd`), ``.nii`` / ``.nii.gz`` (:func:`save_nifti`).
    recon : Reconstruction
    format : {"h5", "mrd", "nifti"}, optional
        Overrides the suffix (see :func:`output_format`).
    provenance : bool
        For ``mrd`` / ``nifti``: also write the full-provenance ``.h5`` as ``STEM.h5`` beside it
        (not by default: one output is what was asked for). Ignored for ``h5``.
    """
    from mridip.io.output import save_reconstruction

    p = os.fspath(path)
    fmt = output_format(p, format)
    if fmt == "h5":
        return [save_reconstruction(p, recon)]
    written = [save_mrd(p, recon)] if fmt == "mrd" else save_nifti(p, recon)
    if provenance:
        side = output_stem(p) + ".h5"
        if os.path.abspath(side) == os.path.abspath(p):  # an MRD file named STEM.h5
            side = output_stem(p) + ".mridip.h5"
        written.append(save_reconstruction(side, recon))
    return written
