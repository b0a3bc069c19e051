"""Read ISMRMRD raw files (the ``ismrmrd`` HDF5 layout) into :class:`~mridip.data.RawData`.

File layout (ISMRMRD 1.x, Inati et al., MRM 2017): a group (``/dataset`` by default)
holding ``xml`` (the ismrmrdHeader) and ``data``, one compound record per acquisition
(readout) with a fixed header, a trajectory ``(samples, dims)`` and complex samples
``(coils, samples)``.

What the reader does with what a scanner file holds:

- flags (1-based bit numbers of the ISMRMRD spec): noise measurement (19) -> noise
  samples ``(C, N)``, never image data; parallel calibration only (20) and
  calibration-and-imaging (21) -> calibration data (``RawData.calibration``, the ACS
  block on the data's grid, for coil maps); lines flagged 21 are image data too, lines
  flagged 20 only are image data with ``calibration="data+maps"`` (the default) and not
  with ``"maps"``; reverse (22) -> readout flipped;
  navigator (23), phase correction (24), HP/RT feedback (26, 28), dummy scans (27),
  surface-coil correction (29), phase stabilisation (30, 31) -> skipped.
- Cartesian: line ``idx.kspace_encode_step_1`` goes to row
  ``e1 - center + Ky // 2`` of the encoded matrix, ``center`` from
  ``encodingLimits/kspace_encoding_step_1/center``, so partial-Fourier and asymmetric
  acquisitions land at the right place; an asymmetric echo (fewer samples than the
  encoded x) is placed by ``center_sample``; lines may come in any order; missing lines
  stay zero and False in the mask; repeated lines (``idx.average`` or repeats) are
  averaged; readout oversampling (encoded x > recon x) is cropped in image space; the
  readout samples an asymmetric echo did not measure are False in the mask.
- Radial: trajectory from each acquisition's ``traj`` field in cycles/pixel, column 0 =
  kx, column 1 = ky, converted to radians/voxel ``(ky, kx)``; no readout crop (the
  NUFFT grid takes the oversampled readout). Samples a little past the Nyquist edge
  (gradient-delay correction, rounding) are wrapped, which the discrete Fourier model
  makes exact; other units are refused
  (:func:`mridip.trajectories.cycles_to_radians_checked`).
- Frames: the counters ``contrast``, ``set``, ``repetition``, ``phase`` that vary in the
  file are flattened into the frame axis (slowest first); where none varies, a radial
  file's spokes (in ``scan_counter`` order) are binned ``spokes_per_frame`` at a time
  and a Cartesian file has one frame. Slices (``idx.slice``) are the leading S axis.
- Noise scans with a different dwell time than the data are scaled by
  ``sqrt(noise_dwell / data_dwell)`` so that their variance matches the data's.

Data are read a block of acquisitions at a time straight into preallocated arrays, so a
large file is held in memory once.
"""

from __future__ import annotations

import math
import os
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mridip.data import Header, RawData
from mridip.errors import InputFileError
from mridip.trajectories import cycles_to_radians_checked

# ISMRMRD acquisition flags, 1-based bit numbers as in the spec (ismrmrd.constants)
ACQ_IS_NOISE_MEASUREMENT = 19
ACQ_IS_PARALLEL_CALIBRATION = 20
ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING = 21
ACQ_IS_REVERSE = 22
ACQ_IS_NAVIGATION_DATA = 23
ACQ_IS_PHASECORR_DATA = 24
ACQ_IS_HPFEEDBACK_DATA = 26
ACQ_IS_DUMMYSCAN_DATA = 27
ACQ_IS_RTFEEDBACK_DATA = 28
ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA = 29
ACQ_IS_PHASE_STABILIZATION_REFERENCE = 30
ACQ_IS_PHASE_STABILIZATION = 31

#: flags of acquisitions that are not image data and are skipped
SKIPPED_FLAGS = {
    ACQ_IS_NAVIGATION_DATA: "navigator",
    ACQ_IS_PHASECORR_DATA: "phase correction",
    ACQ_IS_HPFEEDBACK_DATA: "HP feedback",
    ACQ_IS_DUMMYSCAN_DATA: "dummy scan",
    ACQ_IS_RTFEEDBACK_DATA: "RT feedback",
    ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA: "surface-coil correction",
    ACQ_IS_PHASE_STABILIZATION_REFERENCE: "phase stabilisation reference",
    ACQ_IS_PHASE_STABILIZATION: "phase stabilisation",
}

#: counters that make up the frame axis, slowest first
FRAME_COUNTERS = ("contrast", "set", "repetition", "phase")

_BLOCK = 512  # most acquisitions read per h5py call
_BLOCK_BYTES = 4 << 20  # samples read (and FFT-cropped) per batch: bounded extra memory


def _block_size(heads: np.ndarray) -> int:
    """Acquisitions per batch so that one batch holds about 4 MB of samples."""
    per = int(heads["number_of_samples"].max()) * int(heads["active_channels"].max()) * 8
    return int(min(_BLOCK, max(1, _BLOCK_BYTES // max(per, 1))))
_NONCARTESIAN = ("radial", "goldenangle", "spiral", "other")


def _bit(flags: np.ndarray, bit: int) -> np.ndarray:
    return ((flags >> np.uint64(bit - 1)) & np.uint64(1)).astype(bool)


# ============================================================================ XML
def _strip_ns(root: ET.Element) -> ET.Element:
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def _text(el: ET.Element | None, path: str) -> str | None:
    if el is None:
        return None
    f = el.find(path)
    return None if f is None or f.text is None else f.text.strip()


def _num(el: ET.Element | None, path: str, cast=float):
    t = _text(el, path)
    if t is None or t == "":
        return None
    try:
        return cast(float(t)) if cast is int else cast(t)
    except ValueError:
        return None


def _floats(el: ET.Element | None, path: str) -> list[float]:
    if el is None:
        return []
    out = []
    for f in el.findall(path):
        try:
            out.append(float(f.text))
        except (TypeError, ValueError):
            pass
    return out


def parse_header_xml(xml: str | bytes) -> Header:
    """Parse an ismrmrdHeader XML document into a :class:`~mridip.data.Header`.

    Tolerant of namespaces and of elements it does not know (real scanner headers
    carry many). Encoding limits go to ``header.extra["limits"]`` as
    ``{name: (minimum, maximum, center)}``; the parallel-imaging acceleration factors to
    ``header.extra["acceleration_factor"]``.

    Raises
    ------
    InputFileError
        The text is not XML or has no ``encoding`` element.
    """
    if isinstance(xml, (bytes, bytearray, np.bytes_)):
        xml = bytes(xml).decode("utf-8", errors="replace")
    xml = str(xml).strip().rstrip("\x00")
    try:
        root = _strip_ns(ET.fromstring(xml))
    except ET.ParseError as exc:
        raise InputFileError(
            f"the ISMRMRD XML header is not valid XML ({exc}); the file is corrupt or was "
            "written wrongly: re-convert it (e.g. with siemens_to_ismrmrd)"
        ) from exc
    enc = root.find("encoding")
    if enc is None:
        raise InputFileError(
            "the ISMRMRD XML header has no <encoding> section (matrix size, trajectory): "
            "re-convert the raw data with a converter that writes a complete header"
        )

    def matrix(space: str) -> tuple[int, int, int]:
        m = enc.find(f"{space}/matrixSize")
        return (
            _num(m, "x", int) or 0,
            _num(m, "y", int) or 0,
            _num(m, "z", int) or 1,
        )

    def fov(space: str):
        f = enc.find(f"{space}/fieldOfView_mm")
        vals = (_num(f, "x"), _num(f, "y"), _num(f, "z"))
        return None if any(v is None for v in vals) else tuple(float(v) for v in vals)

    limits: dict[str, tuple[int, int, int]] = {}
    lim = enc.find("encodingLimits")
    if lim is not None:
        for child in lim:
            mn, mx, c = _num(child, "minimum", int), _num(child, "maximum", int), _num(child, "center", int)
            if mn is not None and mx is not None:
                limits[child.tag] = (mn, mx, c if c is not None else (mn + mx + 1) // 2)
    extra: dict[str, Any] = {"limits": limits}
    pi = enc.find("parallelImaging")
    if pi is not None:
        a1 = _num(pi, "accelerationFactor/kspace_encoding_step_1", int)
        a2 = _num(pi, "accelerationFactor/kspace_encoding_step_2", int)
        extra["acceleration_factor"] = (a1 or 1, a2 or 1)
        mode = _text(pi, "calibrationMode")
        if mode:
            extra["calibration_mode"] = mode
    enc_m, rec_m = matrix("encodedSpace"), matrix("reconSpace")
    if rec_m[0] == 0:
        rec_m = enc_m
    enc_fov, rec_fov = fov("encodedSpace"), fov("reconSpace")
    os_factor = 1.0
    if enc_m[0] > 0 and rec_m[0] > 0:
        os_factor = enc_m[0] / rec_m[0]
    seq = root.find("sequenceParameters")
    sysinfo = root.find("acquisitionSystemInformation")
    vendor = " ".join(v for v in (_text(sysinfo, "systemVendor"), _text(sysinfo, "systemModel")) if v)
    ky_lim = limits.get("kspace_encoding_step_1")
    traj = (_text(enc, "trajectory") or "cartesian").lower()
    h = Header(
        encoded_matrix=enc_m,
        recon_matrix=rec_m,
        encoded_fov_mm=enc_fov,
        recon_fov_mm=rec_fov,
        field_strength_t=_num(sysinfo, "systemFieldStrength_T"),
        te_ms=_floats(seq, "TE"),
        tr_ms=_floats(seq, "TR"),
        ti_ms=_floats(seq, "TI"),
        flip_angle_deg=_floats(seq, "flipAngle_deg"),
        readout_oversampling=float(os_factor),
        ky_center=None if ky_lim is None else int(ky_lim[2]),
        trajectory=traj,
        system=vendor or None,
        xml=xml,
        extra=extra,
    )
    return h


# ====================================================================== scanning
@dataclass
class _Scan:
    """Everything the acquisition headers say, read without touching the samples."""

    path: str
    dataset: str
    header: Header
    heads: np.ndarray  # structured acquisition headers, one per acquisition
    noise: np.ndarray  # bool (n_acq,)
    image: np.ndarray  # bool (n_acq,) image data to reconstruct
    calib_only: np.ndarray  # bool (n_acq,) parallel calibration, not imaging
    calib_any: np.ndarray  # bool (n_acq,) flagged 20 or 21
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "radial" if self.header.trajectory in _NONCARTESIAN else "cartesian"


def _open_h5(path: str):
    import h5py

    if not os.path.exists(path):
        raise InputFileError(f"input file not found: {path!r}; check the path (and the working folder)")
    if os.path.isdir(path):
        raise InputFileError(f"{path!r} is a folder, not a raw file: give the path of an .h5 file")
    try:
        ok = h5py.is_hdf5(path)
    except OSError:
        ok = False
    if not ok:
        raise InputFileError(
            f"{path!r} is not an HDF5 file (or its first bytes are damaged): mridip reads "
            "ISMRMRD and fastMRI .h5 files; convert scanner raw data with siemens_to_ismrmrd "
            "(or the vendor's ISMRMRD converter), and load numpy arrays with "
            "mridip.io.from_arrays"
        )
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(
            f"cannot open {path!r} as HDF5 ({exc}): the file is truncated or corrupt; "
            "copy or convert it again"
        ) from exc


def _corrupt(path: str, exc: Exception) -> InputFileError:
    return InputFileError(
        f"reading {path!r} failed ({type(exc).__name__}: {exc}): the file is truncated or "
        "corrupt; copy or convert it again"
    )


def _scan(path: str, dataset: str = "dataset", calibration: str = "data+maps") -> _Scan:
    f = _open_h5(path)
    try:
        if dataset not in f or not hasattr(f[dataset], "keys"):
            raise InputFileError(
                f"{path!r} has no ISMRMRD group {dataset!r} (top level holds {sorted(f.keys())}); "
                "pass dataset=<name> if the group is named differently"
            )
        grp = f[dataset]
        if "xml" not in grp or "data" not in grp:
            raise InputFileError(
                f"ISMRMRD group {dataset!r} in {path!r} lacks 'xml' or 'data' (has "
                f"{sorted(grp.keys())}): the file holds no raw acquisitions"
            )
        xml = grp["xml"][0]
        header = parse_header_xml(xml)
        d = grp["data"]
        if d.shape[0] == 0:
            raise InputFileError(f"{path!r} holds no acquisitions: there is nothing to reconstruct")
        # whole records a block at a time: h5py's field-only read (d.fields("head"))
        # converts and keeps every record's samples (measured: memory grows with the
        # file), whereas block reads stay bounded at one block
        heads = np.concatenate(
            [d[i : i + 128]["head"].copy() for i in range(0, d.shape[0], 128)]
        )
    except InputFileError:
        f.close()
        raise
    except (OSError, KeyError, ValueError, RuntimeError, IndexError) as exc:
        f.close()
        raise _corrupt(path, exc) from exc
    f.close()
    flags = heads["flags"].astype(np.uint64)
    noise = _bit(flags, ACQ_IS_NOISE_MEASUREMENT)
    skip = np.zeros_like(noise)
    skipped: dict[str, int] = {}
    for bit, name in SKIPPED_FLAGS.items():
        b = _bit(flags, bit) & ~noise
        if b.any():
            skipped[name] = int(b.sum())
        skip |= b
    cal20 = _bit(flags, ACQ_IS_PARALLEL_CALIBRATION)
    cal21 = _bit(flags, ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
    calib_only = cal20 & ~cal21 & ~noise & ~skip
    image = ~noise & ~skip
    if calibration == "maps":
        image &= ~calib_only
    calib_any = (cal20 | cal21) & ~noise & ~skip
    header.noise_scans = int(noise.sum())
    header.extra["calibration_use"] = calibration
    if calib_any.any():
        header.calibration_lines = int(len(np.unique(heads["idx"]["kspace_encode_step_1"][calib_any])))
        header.extra["calibration_only_acquisitions"] = int(calib_only.sum())
    return _Scan(path, dataset, header, heads, noise, image, calib_only, calib_any, skipped)


def _frame_index(heads: np.ndarray) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Flatten the varying frame counters (contrast, set, repetition, phase) to one index."""
    idx = heads["idx"]
    frame = np.zeros(len(heads), dtype=np.int64)
    axes = []
    for name in FRAME_COUNTERS:
        v = idx[name].astype(np.int64)
        if len(v) and v.max() != v.min():
            size = int(v.max()) + 1
            frame = frame * size + v
            axes.append((name, size))
    return frame, axes


def _slice_index(heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sl = heads["idx"]["slice"].astype(np.int64)
    values, inverse = np.unique(sl, return_inverse=True)
    return inverse.astype(np.int64), values


def _samples_kept(h) -> tuple[int, int]:
    """(first sample kept, samples kept) after discard_pre / discard_post."""
    ns = int(h["number_of_samples"])
    pre, post = int(h["discard_pre"]), int(h["discard_post"])
    if pre + post >= ns:
        return 0, ns  # nonsense discard values: keep everything rather than nothing
    return pre, ns - pre - post


def _read_blocks(path: str, dataset: str, which: np.ndarray, block: int = _BLOCK):
    """Yield (acquisition index, record) for the acquisitions ``which`` (sorted), blockwise."""
    f = _open_h5(path)
    try:
        d = f[dataset]["data"]
        which = np.sort(which)
        i = 0
        while i < len(which):
            lo = int(which[i])
            hi = min(lo + block, d.shape[0])
            try:
                recs = d[lo:hi]
            except (OSError, RuntimeError, ValueError) as exc:
                raise _corrupt(path, exc) from exc
            while i < len(which) and which[i] < hi:
                a = int(which[i])
                yield a, recs[a - lo]
                i += 1
    finally:
        f.close()


def _samples(rec, h, a: int, path: str) -> np.ndarray:
    C, ns = int(h["active_channels"]), int(h["number_of_samples"])
    raw = np.asarray(rec["data"], dtype=np.float32)
    if raw.size != 2 * C * ns:
        raise InputFileError(
            f"acquisition {a} of {path!r} holds {raw.size // 2} complex samples, its header "
            f"says {C} coils x {ns} samples: the file is corrupt; convert it again"
        )
    y = raw.view(np.complex64).reshape(C, ns)
    if not np.isfinite(raw).all():
        raise InputFileError(
            f"acquisition {a} of {path!r} contains NaN or Inf k-space values: the file is "
            "corrupt or was written wrongly; fix or drop that acquisition before reconstructing"
        )
    return y


def _read_noise(scan: _Scan) -> torch.Tensor | None:
    which = np.flatnonzero(scan.noise)
    if len(which) == 0:
        return None
    heads = scan.heads
    C = int(heads["active_channels"][which[0]])
    total = int(heads["number_of_samples"][which].astype(np.int64).sum())
    out = np.empty((C, total), dtype=np.complex64)
    pos = 0
    for a, rec in _read_blocks(scan.path, scan.dataset, which):
        h = heads[a]
        if int(h["active_channels"]) != C:
            raise InputFileError(
                f"noise acquisition {a} of {scan.path!r} has {int(h['active_channels'])} coils, "
                f"others have {C}: the file mixes coil configurations"
            )
        y = _samples(rec, h, a, scan.path)
        out[:, pos : pos + y.shape[1]] = y
        pos += y.shape[1]
    # noise variance per sample grows with the receiver bandwidth 1 / dwell time: bring the
    # noise scan to the data's dwell time so its level is that of the data noise
    img = np.flatnonzero(scan.image)
    d_noise = float(heads["sample_time_us"][which[0]])
    d_data = float(heads["sample_time_us"][img[0]]) if len(img) else d_noise
    if d_noise > 0 and d_data > 0 and abs(d_noise / d_data - 1.0) > 1e-3:
        out *= np.float32(math.sqrt(d_noise / d_data))
        scan.header.extra["noise_dwell_scaling"] = math.sqrt(d_noise / d_data)
    return torch.from_numpy(out)


def _check_channels(scan: _Scan, which: np.ndarray) -> int:
    ch = scan.heads["active_channels"][which]
    if ch.min() != ch.max():
        raise InputFileError(
            f"{scan.path!r}: image acquisitions have different coil counts "
            f"({sorted(set(int(c) for c in ch))}): the file mixes coil configurations; split it"
        )
    return int(ch[0])


# ====================================================================== Cartesian
def _cartesian_geometry(scan: _Scan, which: np.ndarray | None = None) -> dict[str, Any]:
    """Grid and line placement of the acquisitions ``which`` (default: the image data).

    The grid (encoded x, lines, centre line, readout crop) is the same for image and
    calibration acquisitions, so the calibration block lands on the image data's grid.
    """
    h = scan.header
    heads = scan.heads
    if which is None:
        which = np.flatnonzero(scan.image)
    idx = heads["idx"][which]
    ex, ey, ez = h.encoded_matrix
    if ex <= 0:
        data = np.flatnonzero(scan.image | scan.calib_any)
        ex = int(max(_samples_kept(heads[a])[1] for a in data[:1000]))
    e1 = idx["kspace_encode_step_1"].astype(np.int64)
    e2 = idx["kspace_encode_step_2"].astype(np.int64)
    if ez > 1 or (len(e2) and e2.max() != e2.min()):
        raise InputFileError(
            f"{scan.path!r} is a 3D Cartesian acquisition (kspace_encode_step_2 varies, "
            f"encoded z = {ez}); mridip reconstructs 2D slices: inverse-FFT along the "
            "partition axis first and pass the slices with mridip.io.from_arrays"
        )
    lim = h.extra.get("limits", {}).get("kspace_encoding_step_1")
    if ey <= 0:
        ey = int(lim[1] + 1) if lim else int(e1.max() + 1)
    center = int(lim[2]) if lim else ey // 2
    if lim is not None:
        bad = (e1 < lim[0]) | (e1 > lim[1])
        if bad.any():
            a = int(which[np.flatnonzero(bad)[0]])
            raise InputFileError(
                f"acquisition {a} of {scan.path!r} has line index kspace_encode_step_1 = "
                f"{int(e1[bad][0])}, outside the header's encodingLimits [{lim[0]}, {lim[1]}]: "
                "the header and the data disagree; fix the encodingLimits in the XML header "
                "or re-convert the file"
            )
    rows = e1 - center + ey // 2
    bad = (rows < 0) | (rows >= ey)
    if bad.any():
        a = int(which[np.flatnonzero(bad)[0]])
        raise InputFileError(
            f"acquisition {a} of {scan.path!r}: line kspace_encode_step_1 = {int(e1[bad][0])} "
            f"with k-space centre line {center} falls outside the {ey} encoded lines: the "
            "header's encodedSpace/encodingLimits do not match the data; fix the header"
        )
    rx = h.recon_matrix[0] if h.recon_matrix[0] > 0 else ex
    nkx = rx if 0 < rx < ex else ex
    frame, axes = _frame_index(heads[which])
    sl, slice_values = _slice_index(heads[which])
    T = int(frame.max()) + 1
    return dict(which=which, rows=rows, frame=frame, axes=axes, sl=sl, slice_values=slice_values,
                ex=ex, ey=ey, nkx=nkx, T=T, S=len(slice_values), center=center)


def _readout_extent(off: int, n: int, ex: int, nkx: int) -> tuple[int, int]:
    """Samples ``[j0, j1)`` of the cropped readout (``nkx``) that a line measured at
    encoded samples ``[off, off + n)`` of ``ex`` covers.

    Encoded sample ``i`` sits at ``k = (i - ex // 2) / FOV_enc`` and recon sample ``j`` at
    ``(j - nkx // 2) / FOV_rec`` with ``FOV_enc / FOV_rec = ex / nkx``, so
    ``j = nkx // 2 + (i - ex // 2) * nkx / ex``. The crop interpolates (a sinc in k), so
    a recon sample counts as measured only where it lies inside the measured range; the
    samples past an asymmetric echo's start are unmeasured, not zero-valued data.
    """
    if off == 0 and n == ex:
        return 0, nkx
    r = nkx / ex
    j0 = int(math.ceil(nkx // 2 + (off - ex // 2) * r - 1e-9))
    j1 = int(math.floor(nkx // 2 + (off + n - 1 - ex // 2) * r + 1e-9)) + 1
    return max(j0, 0), min(j1, nkx)


def _read_cartesian(scan: _Scan, which: np.ndarray | None = None, frames: bool = True,
                    slice_values: np.ndarray | None = None):
    """Lines ``which`` (default: the image data) on the grid ``(S, T, C, Ky, Kx)``.

    ``frames=False`` puts every line in one frame (calibration data); ``slice_values``
    maps ``idx.slice`` values to the S axis (default: the values of ``which``); lines of
    other slices are dropped. Returns k-space, mask ``(S, T, Ky, Kx)`` and an info dict.
    """
    g = _cartesian_geometry(scan, which)
    which, rows, frame, sl = g["which"], g["rows"], g["frame"], g["sl"]
    if slice_values is not None:
        raw_sl = scan.heads["idx"]["slice"][which].astype(np.int64)
        keep = np.isin(raw_sl, slice_values)
        if not keep.all():
            warnings.warn(
                f"{scan.path}: {int((~keep).sum())} calibration line(s) belong to slices without "
                "image data and are not used",
                stacklevel=3,
            )
        which, rows, frame = which[keep], rows[keep], frame[keep]
        sl = np.searchsorted(slice_values, raw_sl[keep])
        g["slice_values"], g["S"] = np.asarray(slice_values), len(slice_values)
    if not frames:
        frame = np.zeros_like(frame)
        g["T"], g["axes"] = 1, []
    ex, ey, nkx, S, T = g["ex"], g["ey"], g["nkx"], g["S"], g["T"]
    C = _check_channels(scan, which)
    heads = scan.heads
    kspace = np.zeros((S, T, C, ey, nkx), dtype=np.complex64)
    count = np.zeros((S, T, ey), dtype=np.int32)
    extent = np.zeros((S, T, ey, 2), dtype=np.int64)  # measured readout range per line
    extent[..., 0] = nkx
    pos = {int(a): i for i, a in enumerate(which)}
    pending: list[tuple[int, np.ndarray]] = []

    def flush():
        # crop the readout of a whole block at once (one batched FFT pair)
        if not pending:
            return
        lines = np.stack([p[1] for p in pending])  # (B, C, ex)
        if nkx != ex:
            from mridip.preprocess import crop_readout

            lines = crop_readout(torch.from_numpy(lines), nkx, axis=-1).numpy()
        for (i, _), line in zip(pending, lines):
            s, t, r = sl[i], frame[i], rows[i]
            kspace[s, t, :, r, :] += line
            count[s, t, r] += 1
        pending.clear()

    block = _block_size(heads[which])
    for a, rec in _read_blocks(scan.path, scan.dataset, which, block):
        h = heads[a]
        y = _samples(rec, h, a, scan.path)
        first, n = _samples_kept(h)
        y = y[:, first : first + n]
        if _bit(np.uint64(h["flags"]), ACQ_IS_REVERSE):
            y = y[:, ::-1]
        if n == ex:
            off = 0
        else:
            # asymmetric echo: the k-space centre sample goes to the matrix centre
            off = ex // 2 - (int(h["center_sample"]) - first)
            if off < 0 or off + n > ex:
                raise InputFileError(
                    f"acquisition {a} of {scan.path!r} has {n} readout samples with centre "
                    f"sample {int(h['center_sample'])}, which do not fit the encoded readout "
                    f"of {ex}: the header's encodedSpace x is wrong; fix the header"
                )
        line = np.zeros((C, ex), dtype=np.complex64)
        line[:, off : off + n] = y
        j0, j1 = _readout_extent(off, n, ex, nkx)
        i = pos[a]
        e = extent[sl[i], frame[i], rows[i]]
        e[0], e[1] = min(e[0], j0), max(e[1], j1)
        pending.append((i, line))
        if len(pending) >= block:
            flush()
    flush()
    np.divide(kspace, np.maximum(count, 1)[:, :, None, :, None], out=kspace,
              casting="unsafe")
    cols = np.arange(nkx)
    mask = (count[..., None] > 0) & (cols >= extent[..., :1]) & (cols < extent[..., 1:])
    kspace *= mask[:, :, None]  # what the crop smeared past an asymmetric echo's start is not data
    info = dict(frame_axes=g["axes"], slice_values=np.asarray(g["slice_values"]).tolist(),
                repeats_averaged=int((count > 1).sum()))
    if (mask.sum(-1) < nkx)[count > 0].any():
        info["readout_partial"] = int(nkx - mask.sum(-1)[count > 0].min())
    return torch.from_numpy(kspace), torch.from_numpy(mask), info


def _read_calibration(scan: _Scan, slice_values: list[int]):
    """The calibration lines (flags 20 / 21) as ``(S, C, Ky, Kx)`` and mask ``(S, Ky, Kx)``.

    Lines measured in several frames or repeats are averaged: coil sensitivities do not
    change with the cardiac phase or the repetition. None where the file has no
    calibration data.
    """
    which = np.flatnonzero(scan.calib_any)
    on_image_slices = np.isin(scan.heads["idx"]["slice"][which].astype(np.int64), slice_values)
    if not on_image_slices.any():
        if len(which):
            warnings.warn(f"{scan.path}: the {len(which)} calibration line(s) belong to slices without "
                          "image data and are not used", stacklevel=3)
        return None, None, {}
    k, m, _ = _read_cartesian(scan, which, frames=False, slice_values=np.asarray(slice_values))
    k, mask = k[:, 0].contiguous(), m[:, 0].contiguous()
    mask_np = mask.numpy()
    rows = np.flatnonzero(mask_np.any(axis=(0, 2)))
    cols = np.flatnonzero(mask_np.any(axis=(0, 1)))
    info = {"calibration_region": {
        "lines": int(len(rows)),
        "rows": [int(rows.min()), int(rows.max())] if len(rows) else [],
        "readout": [int(cols.min()), int(cols.max())] if len(cols) else [],
        "contiguous_lines": _centre_run(mask_np.any(axis=2)),
    }}
    return k, mask, info


def _centre_run(lines: np.ndarray) -> int:
    """Longest run of consecutive sampled rows of ``lines`` (S, Ky), the smallest over slices."""
    best = []
    for row in lines:
        run = longest = 0
        for v in row:
            run = run + 1 if v else 0
            longest = max(longest, run)
        best.append(longest)
    return int(min(best)) if best else 0


def _slice_geometry(scan: _Scan, slice_values: list[int]) -> list[dict[str, list[float]]]:
    """Position (mm) and read / phase / slice directions of each slice's first image line."""
    heads = scan.heads
    img = np.flatnonzero(scan.image)
    sl = heads["idx"]["slice"][img]
    out = []
    for v in slice_values:
        h = heads[img[np.flatnonzero(sl == v)[0]]]
        out.append({name: [float(c) for c in h[name]]
                    for name in ("position", "read_dir", "phase_dir", "slice_dir")})
    return out


# ========================================================================= radial
def _radial_order(scan: _Scan, which: np.ndarray) -> np.ndarray:
    """Image acquisitions in acquisition order (scan_counter where it is usable)."""
    sc = scan.heads["scan_counter"][which].astype(np.int64)
    if len(np.unique(sc)) == len(sc):
        return which[np.argsort(sc, kind="stable")]
    return which


def _radial_layout(scan: _Scan, spokes_per_frame: int | None) -> dict[str, Any]:
    heads = scan.heads
    which = _radial_order(scan, np.flatnonzero(scan.image))
    tdim = heads["trajectory_dimensions"][which]
    if tdim.min() < 2:
        a = int(which[np.argmin(tdim)])
        raise InputFileError(
            f"{scan.path!r} is a {scan.header.trajectory} acquisition but acquisition {a} "
            "carries no trajectory (trajectory_dimensions < 2): mridip needs the k-space "
            "positions of every spoke in the traj field (cycles/pixel, column 0 = kx, "
            "column 1 = ky); re-convert with the trajectory, or compute it and pass the "
            "data with mridip.io.from_arrays(..., trajectory=...)"
        )
    kept = {_samples_kept(heads[a])[1] for a in which[:2000]}
    if len(kept) != 1:
        raise InputFileError(
            f"{scan.path!r}: radial spokes have different sample counts {sorted(kept)}; "
            "mridip needs spokes of one length"
        )
    ns = kept.pop()
    sl, slice_values = _slice_index(heads[which])
    frame, axes = _frame_index(heads[which])
    S = len(slice_values)
    slots: dict[int, list[list[int]]] = {}
    dropped = 0
    if axes:
        T = int(frame.max()) + 1
        for s in range(S):
            per = [[] for _ in range(T)]
            for a, t in zip(which[sl == s], frame[sl == s]):
                per[int(t)].append(int(a))
            slots[s] = per
        counts = [len(p) for s in slots for p in slots[s]]
        spf = min(counts)
        if spf == 0:
            raise InputFileError(
                f"{scan.path!r}: some frames (from idx.{'/'.join(n for n, _ in axes)}) hold no "
                "spokes; the frame counters do not match the data"
            )
        if max(counts) != spf:
            dropped = sum(c - spf for c in counts)
            warnings.warn(
                f"{scan.path}: frames hold {spf} to {max(counts)} spokes; the first {spf} "
                f"spokes of each frame are used ({dropped} spokes dropped)",
                stacklevel=3,
            )
    else:
        if spokes_per_frame == "all":
            spokes_per_frame = int(np.bincount(sl).min())
        if spokes_per_frame is None:
            raise InputFileError(
                f"{scan.path!r} is radial with {len(which)} spokes and no frame index "
                "(idx.phase / repetition do not vary): give spokes_per_frame (protocol key "
                "data.spokes_per_frame, or spokes_per_frame=N in Python) to bin consecutive "
                f"spokes into frames; spokes_per_frame={int(np.bincount(sl).min())} (or \"all\") "
                "gives one static frame, the default of static methods (cg-sense, dip, ...)"
            )
        spf = int(spokes_per_frame)
        if spf < 1:
            raise InputFileError(f"spokes_per_frame must be >= 1, got {spokes_per_frame}")
        n_per_slice = np.bincount(sl, minlength=S)
        T = int(n_per_slice.min()) // spf
        if T == 0:
            raise InputFileError(
                f"{scan.path!r} has only {int(n_per_slice.min())} spokes per slice, fewer "
                f"than spokes_per_frame = {spf}: lower spokes_per_frame"
            )
        for s in range(S):
            acq = which[sl == s]
            slots[s] = [acq[t * spf : (t + 1) * spf].tolist() for t in range(T)]
        dropped = int(n_per_slice.sum() - S * T * spf)
        if dropped:
            warnings.warn(
                f"{scan.path}: spokes do not fill whole frames of {spf}; {dropped} spoke(s) "
                f"at the end are dropped ({T} frames kept)",
                stacklevel=3,
            )
    return dict(slots=slots, S=S, T=T, spf=spf, ns=ns, axes=axes, dropped=dropped,
                slice_values=slice_values, n_spokes=len(which))


def _read_radial(scan: _Scan, spokes_per_frame: int | None):
    L = _radial_layout(scan, spokes_per_frame)
    S, T, spf, ns = L["S"], L["T"], L["spf"], L["ns"]
    heads = scan.heads
    target: dict[int, tuple[int, int, int]] = {}
    for s, per in L["slots"].items():
        for t, acqs in enumerate(per[:T]):
            for j, a in enumerate(acqs[:spf]):
                target[a] = (s, t, j)
    which = np.array(sorted(target), dtype=np.int64)
    C = _check_channels(scan, which)
    kspace = np.zeros((S, T, C, spf * ns), dtype=np.complex64)
    traj = np.zeros((S, T, 2, spf * ns), dtype=np.float32)
    for a, rec in _read_blocks(scan.path, scan.dataset, which, _block_size(heads[which])):
        h = heads[a]
        y = _samples(rec, h, a, scan.path)
        first, n = _samples_kept(h)
        dims = int(h["trajectory_dimensions"])
        tr = np.asarray(rec["traj"], dtype=np.float32).reshape(int(h["number_of_samples"]), dims)
        s, t, j = target[a]
        sel = slice(j * ns, (j + 1) * ns)
        kspace[s, t, :, sel] = y[:, first : first + n]
        # file: column 0 = kx, column 1 = ky (cycles/pixel); package: (ky, kx) radians/voxel
        traj[s, t, 0, sel] = tr[first : first + n, 1]
        traj[s, t, 1, sel] = tr[first : first + n, 0]
    if not np.isfinite(traj).all():
        raise InputFileError(f"{scan.path!r}: the trajectory holds NaN or Inf values; the file is corrupt")
    traj = cycles_to_radians_checked(traj, f"{scan.path!r}")
    info = dict(frame_axes=L["axes"], slice_values=L["slice_values"].tolist(),
                spokes_per_frame=spf, samples_per_spoke=ns, spokes_dropped=L["dropped"])
    return torch.from_numpy(kspace), torch.from_numpy(np.ascontiguousarray(traj)), info


# ========================================================================= public
def read_ismrmrd(
    path: str | os.PathLike,
    spokes_per_frame: int | str | None = None,
    dataset: str = "dataset",
    *,
    calibration: str = "data+maps",
    include_calibration: bool | None = None,
) -> RawData:
    """Read an ISMRMRD raw file into :class:`~mridip.data.RawData`.

    Parameters
    ----------
    path : str or PathLike
        ISMRMRD ``.h5`` file.
    spokes_per_frame : int or "all", optional
        Radial files whose frame counters (``idx.phase`` etc.) do not vary: bin this many
        consecutive spokes into a frame, or ``"all"`` for one frame of every spoke of a
        slice (required then; ignored where the file has frames).
    dataset : str
        Name of the ISMRMRD group in the file (``"dataset"``).
    calibration : {"data+maps", "maps"}
        What the acquisitions flagged parallel-calibration-only (bit 20) are for.
        ``"data+maps"`` (default): measured samples of the same image, so image data too
        (averaged with any imaging line of the same position), and calibration data;
        ``"maps"``: calibration data only (a separate reference scan of another
        contrast or resolution). Calibration-and-imaging lines (bit 21) are both in
        either case. ``RawData.calibration`` holds all of them (Cartesian only).
    include_calibration : bool, optional
        Older spelling: True is ``calibration="data+maps"``, False ``"maps"``.

    Returns
    -------
    RawData
        Cartesian ``(S, T, C, Ky, Kx)`` with mask ``(S, T, Ky, Kx)``, readout oversampling
        cropped (Kx = recon x), calibration ``(S, C, Ky, Kx)`` with its mask where the
        file has calibration lines; or radial ``(S, T, C, K)`` with trajectory
        ``(S, T, 2, K)`` in radians/voxel. ``noise`` ``(C, N)`` from the noise scans.
        ``header.extra`` holds ``calibration_region`` (lines, rows, readout columns,
        longest run of consecutive lines) and ``slice_geometry`` (per slice: position in
        mm, read / phase / slice directions, patient coordinates).

    Raises
    ------
    InputFileError
        Missing, truncated or inconsistent file, NaN samples, lines outside the encoding
        limits, a radial file without trajectory or with a trajectory in another unit, or
        missing ``spokes_per_frame``.
    """
    path = os.fspath(path)
    if include_calibration is not None:
        calibration = "data+maps" if include_calibration else "maps"
    if calibration not in ("data+maps", "maps"):
        raise InputFileError(f"calibration must be 'data+maps' or 'maps', got {calibration!r}")
    scan = _scan(path, dataset, calibration)
    if not scan.image.any():
        raise InputFileError(
            f"{path!r} holds {len(scan.heads)} acquisitions but none is image data "
            f"(noise scans: {int(scan.noise.sum())}, calibration only: {int(scan.calib_only.sum())}, "
            f"skipped: {scan.skipped}): nothing to reconstruct"
            + (" (with data.calibration = \"data+maps\" the calibration lines are reconstructed)"
               if scan.calib_only.any() else "")
        )
    noise = _read_noise(scan)
    header = scan.header
    if scan.skipped:
        header.extra["skipped_acquisitions"] = dict(scan.skipped)
    if scan.kind == "cartesian":
        kspace, mask, info = _read_cartesian(scan)
        header.extra.update(info)
        cal, cal_mask, cal_info = _read_calibration(scan, info["slice_values"])
        header.extra.update(cal_info)
        header.extra["slice_geometry"] = _slice_geometry(scan, info["slice_values"])
        raw = RawData(kspace=kspace, kind="cartesian", mask=mask, noise=noise, header=header,
                      calibration=cal, calibration_mask=cal_mask, format="ismrmrd", source=path)
    else:
        kspace, traj, info = _read_radial(scan, spokes_per_frame)
        header.extra.update(info)
        header.extra["slice_geometry"] = _slice_geometry(scan, info["slice_values"])
        raw = RawData(kspace=kspace, kind="radial", trajectory=traj, noise=noise, header=header,
                      format="ismrmrd", source=path)
    if noise is not None and noise.shape[0] != raw.num_coils:
        raise InputFileError(
            f"{path!r}: noise scans have {noise.shape[0]} coils, image data {raw.num_coils}: "
            "the noise scan belongs to another coil setup; drop it"
        )
    return raw
