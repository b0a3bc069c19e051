"""Write real raw-data files: ISMRMRD (with the ``ismrmrd`` package's Dataset API and
XML schema classes) and fastMRI ``.h5`` (with h5py, as fastMRI's files are laid out).

These produce what a scanner converter would: the tests and the phantom write data with
them and read it back with :mod:`mridip.io`, so the readers are exercised on real files.

Conventions (DESIGN.md): k-space complex64, centred (DC at ``(Ky // 2, Kx // 2)``);
Cartesian ``(T, C, Ky, Kx)`` or ``(S, T, C, Ky, Kx)`` with mask ``(T, Ky, Kx)`` /
``(S, T, Ky, Kx)``; radial ``(T, C, K)`` with trajectory ``(T, 2, K)`` in radians/voxel,
component 0 = ky, 1 = kx. In the files: trajectories in cycles/pixel, traj column 0 = kx,
column 1 = ky; ISMRMRD matrix sizes ``(x, y, z)`` = (readout, phase, partition).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from mridip.errors import ShapeError
from mridip.trajectories import radians_to_cycles

GAMMA_HZ_PER_T = 42.577478518e6  # proton gyromagnetic ratio / 2 pi (CODATA 2018)
_DWELL_US = 5.0  # dwell time written for data and noise (equal: no noise rescaling)
_NOISE_CHUNK = 256  # noise samples per noise acquisition
#: encoding counters a Cartesian file's frames may be written on
CARTESIAN_FRAME_COUNTERS = ("phase", "contrast")


def _np(x, dtype=None) -> np.ndarray:
    try:
        import torch

        if torch.is_tensor(x):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    a = np.asarray(x)
    return a.astype(dtype, copy=False) if dtype is not None else a


def _centred_fft1(x: np.ndarray, axis: int = -1, inverse: bool = False) -> np.ndarray:
    f = np.fft.ifft if inverse else np.fft.fft
    return np.fft.fftshift(f(np.fft.ifftshift(x, axes=axis), axis=axis, norm="ortho"), axes=axis)


def _oversample_readout(lines: np.ndarray, factor: int) -> np.ndarray:
    """Simulate readout oversampling: zero-pad the image along x to ``factor`` x the FOV.

    ``(..., Kx)`` -> ``(..., factor * Kx)``; the image is placed at
    ``[N // 2 - Kx // 2, ...)`` of the ``N = factor * Kx`` grid, the exact inverse of the
    reader's centred crop (mridip.preprocess.crop_readout).
    """
    if factor == 1:
        return lines
    kx = lines.shape[-1]
    n = factor * kx
    img = _centred_fft1(lines, inverse=True)
    big = np.zeros(lines.shape[:-1] + (n,), dtype=np.complex64)
    start = n // 2 - kx // 2
    big[..., start : start + kx] = img
    return _centred_fft1(big).astype(np.complex64)


def _xsd():
    import ismrmrd.xsd as x

    return x


def _header(
    *,
    trajectory: str,
    encoded: tuple[int, int, int],
    recon: tuple[int, int, int],
    encoded_fov: tuple[float, float, float],
    recon_fov: tuple[float, float, float],
    limits: dict[str, tuple[int, int, int]],
    coils: int,
    field_strength_t: float,
    te_ms: float | Sequence[float] | None,
    tr_ms: float | None,
    flip_angle_deg: float | Sequence[float] | None = None,
    acceleration: int | None = None,
    trajectory_description: str | None = None,
    ti_ms: float | Sequence[float] | None = None,
) -> str:
    """The ismrmrdHeader XML text, built with the schema classes of ``ismrmrd.xsd``.

    ``te_ms`` is one echo time or one per contrast (the TE list of sequenceParameters);
    ``ti_ms`` and ``flip_angle_deg`` likewise (the TI and flipAngle_deg lists).
    """
    x = _xsd()

    def space(m, f):
        return x.encodingSpaceType(
            matrixSize=x.matrixSizeType(x=int(m[0]), y=int(m[1]), z=int(m[2])),
            fieldOfView_mm=x.fieldOfViewMm(x=float(f[0]), y=float(f[1]), z=float(f[2])),
        )

    lim = x.encodingLimitsType(**{
        name: x.limitType(minimum=int(a), maximum=int(b), center=int(c))
        for name, (a, b, c) in limits.items()
    })
    enc = x.encodingType(
        encodedSpace=space(encoded, encoded_fov),
        reconSpace=space(recon, recon_fov),
        encodingLimits=lim,
        trajectory=x.trajectoryType(trajectory),
    )
    if trajectory_description:
        enc.trajectoryDescription = x.trajectoryDescriptionType(identifier=trajectory_description)
    if acceleration is not None:
        enc.parallelImaging = x.parallelImagingType(
            accelerationFactor=x.accelerationFactorType(
                kspace_encoding_step_1=int(acceleration), kspace_encoding_step_2=1
            ),
            calibrationMode=x.calibrationModeType.EMBEDDED,
        )
    seq = x.sequenceParametersType(
        TR=[float(tr_ms)] if tr_ms is not None else [],
        TE=[] if te_ms is None else [float(t) for t in np.atleast_1d(te_ms)],
        flipAngle_deg=[] if flip_angle_deg is None else [float(a) for a in np.atleast_1d(flip_angle_deg)],
        TI=[] if ti_ms is None else [float(t) for t in np.atleast_1d(ti_ms)],
    )
    hdr = x.ismrmrdHeader(
        experimentalConditions=x.experimentalConditionsType(
            H1resonanceFrequency_Hz=int(round(GAMMA_HZ_PER_T * field_strength_t))
        ),
        acquisitionSystemInformation=x.acquisitionSystemInformationType(
            systemVendor="mridip", systemModel="data_tools simulator",
            systemFieldStrength_T=float(field_strength_t), receiverChannels=int(coils),
        ),
        encoding=[enc],
        sequenceParameters=seq,
    )
    return x.ToXML(hdr)


def _noise_acquisitions(noise: np.ndarray | None, coils: int, samples: int = _NOISE_CHUNK,
                        dwell_us: float = _DWELL_US):
    """Noise scans ``(C, N)`` as acquisitions of up to ``samples`` samples each, dwell ``dwell_us``."""
    import ismrmrd

    if noise is None:
        return []
    n = _np(noise, np.complex64)
    if n.ndim != 2 or n.shape[0] != coils:
        raise ShapeError(f"noise must be (C, N) with C = {coils} coils, got {n.shape}")
    out = []
    for i in range(0, n.shape[1], samples):
        acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(n[:, i : i + samples]))
        acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        acq.sample_time_us = float(dwell_us)
        out.append(acq)
    return out


def _write(path: str, xml: str, acqs: list, order: np.ndarray | None = None, tr_ms: float = 3.0) -> None:
    import ismrmrd

    path = os.fspath(path)
    if os.path.exists(path):
        os.remove(path)  # the Dataset API appends; a fresh file is wanted
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if order is not None:
        acqs = [acqs[i] for i in order]
    ds = ismrmrd.Dataset(path, "dataset", create_if_needed=True)
    try:
        ds.write_xml_header(xml)
        for i, acq in enumerate(acqs):
            acq.scan_counter = i
            acq.acquisition_time_stamp = int(round(i * tr_ms / 2.5))  # ticks of 2.5 ms
            if i == len(acqs) - 1:
                acq.set_flag(ismrmrd.ACQ_LAST_IN_MEASUREMENT)
            ds.append_acquisition(acq)
    finally:
        ds.close()


def _set_geometry(acq, slice_index: int, fov_z: float) -> None:
    acq.read_dir[0] = 1.0
    acq.phase_dir[1] = 1.0
    acq.slice_dir[2] = 1.0
    acq.position[2] = float(slice_index * fov_z)


def write_ismrmrd_cartesian(
    path: str | os.PathLike,
    kspace,
    mask,
    *,
    noise=None,
    fov_mm: tuple[float, float, float] = (320.0, 320.0, 8.0),
    readout_oversampling: int = 2,
    field_strength_t: float = 1.5,
    te_ms: float | Sequence[float] = 1.5,
    tr_ms: float = 3.0,
    flip_angle_deg: float | Sequence[float] | None = None,
    calibration_lines: int = 0,
    shuffle_seed: int | None = None,
    frame_counter: str = "phase",
    ti_ms: float | Sequence[float] | None = None,
    calibration_frames: Sequence[int] | None = None,
) -> str:
    """Write Cartesian k-space as an ISMRMRD file, one acquisition per sampled line.

    Parameters
    ----------
    path : str or PathLike
        Output ``.h5`` (replaced if it exists).
    kspace : array or tensor
        complex ``(T, C, Ky, Kx)`` or ``(S, T, C, Ky, Kx)`` at recon resolution, centred.
    mask : array or tensor
        bool ``(T, Ky, Kx)`` or ``(S, T, Ky, Kx)``; constant along Kx (whole lines).
    noise : array or tensor, optional
        complex ``(C, N)``: written first as noise acquisitions (flag 19) of up to 256
        samples each.
    fov_mm : (x, y, z)
        Recon field of view in mm (x = readout = image columns).
    readout_oversampling : int
        The readout is written ``factor`` times oversampled: the image is zero-padded
        along x to ``factor`` x the FOV (encodedSpace x = factor x reconSpace x), so the
        reader's crop returns the input exactly.
    field_strength_t, tr_ms, flip_angle_deg
        Header facts (T, ms, deg).
    te_ms : float or sequence of float
        Echo time in ms, or one per contrast (``T`` values when ``frame_counter`` is
        ``"contrast"``, e.g. the echoes of a multi-echo spin echo); written as the
        header's sequenceParameters TE list.
    ti_ms : float or sequence of float, optional
        Inversion (or saturation-recovery) time(s) in ms, one per frame for a T1-mapping
        scan: the header's sequenceParameters TI list (written as given, not checked
        against the frames: a file may hold one TI for all). ``flip_angle_deg`` may
        likewise be one per frame (variable flip angles).
    calibration_lines : int
        The central ``calibration_lines`` lines (where sampled) are flagged
        ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING and the header gets a parallelImaging
        section (embedded calibration).
    calibration_frames : sequence of int, optional
        Frames whose central lines carry that flag (default: all). A mapping scan flags one
        contrast (e.g. the longest TI of an inversion recovery): readers average the
        calibration lines of all flagged frames, and contrasts of opposite sign cancel.
    shuffle_seed : int, optional
        Write the image acquisitions in a random order after the noise scans (readers
        must not depend on order).
    frame_counter : {"phase", "contrast"}
        The encoding counter that holds the frame index: ``"phase"`` (cardiac phases of
        a cine, the default) or ``"contrast"`` (echoes of a multi-echo / mapping scan);
        the other counter stays 0.

    Acquisitions: ``idx.kspace_encode_step_1`` = ky row, ``idx.phase`` (or
    ``idx.contrast``) = frame, ``idx.slice`` = slice, ``center_sample`` = readout centre,
    flags first / last in phase (or contrast) on each frame's first and last line;
    encodingLimits kspace_encoding_step_1 = (0, Ky - 1, Ky // 2), phase (or contrast) =
    (0, T - 1, 0).

    Returns
    -------
    str
        The path written.
    """
    import ismrmrd

    k = _np(kspace)
    m = _np(mask).astype(bool)
    if not np.iscomplexobj(k):
        raise ShapeError(f"kspace must be complex, got {k.dtype}")
    if k.ndim == 4:
        k = k[None]
    if m.ndim == 3:
        m = m[None]
    if k.ndim != 5:
        raise ShapeError(f"kspace must be (T, C, Ky, Kx) or (S, T, C, Ky, Kx), got {k.shape}")
    S, T, C, Ky, Kx = k.shape
    if m.shape != (S, T, Ky, Kx):
        raise ShapeError(f"mask must be (S, T, Ky, Kx) = {(S, T, Ky, Kx)} (or without S), got {m.shape}")
    lines = m.any(axis=-1)  # (S, T, Ky)
    if (m != lines[..., None]).any():
        raise ShapeError(
            "the mask samples parts of readout lines; ISMRMRD Cartesian files hold whole lines "
            "(mask constant along Kx): use a line mask"
        )
    os_f = int(readout_oversampling)
    if os_f < 1 or os_f != readout_oversampling:
        raise ShapeError(f"readout_oversampling must be a whole number >= 1, got {readout_oversampling}")
    if frame_counter not in CARTESIAN_FRAME_COUNTERS:
        raise ShapeError(
            f"frame_counter must be one of {CARTESIAN_FRAME_COUNTERS}, got {frame_counter!r}"
        )
    contrasts = T if frame_counter == "contrast" else 1
    te = np.asarray(te_ms, dtype=np.float64)
    if te.ndim > 1 or (te.ndim == 1 and te.size != contrasts):
        raise ShapeError(
            f"te_ms must be one echo time or one per contrast ({contrasts} with "
            f"frame_counter={frame_counter!r} and T = {T} frames), got shape {te.shape}"
        )
    if not (np.all(np.isfinite(te)) and np.all(te > 0)):
        raise ShapeError(f"te_ms must be > 0 ms, got {te_ms!r}")
    n_lines = int(lines.sum())
    accel = max(1, int(round(S * T * Ky / max(n_lines, 1))))
    xml = _header(
        trajectory="cartesian",
        encoded=(os_f * Kx, Ky, 1),
        recon=(Kx, Ky, 1),
        encoded_fov=(os_f * fov_mm[0], fov_mm[1], fov_mm[2]),
        recon_fov=tuple(fov_mm),
        limits={
            "kspace_encoding_step_0": (0, os_f * Kx - 1, (os_f * Kx) // 2),
            "kspace_encoding_step_1": (0, Ky - 1, Ky // 2),
            "kspace_encoding_step_2": (0, 0, 0),
            "slice": (0, S - 1, 0),
            "phase": (0, (T - 1) if frame_counter == "phase" else 0, 0),
            "repetition": (0, 0, 0),
            "average": (0, 0, 0),
            "contrast": (0, contrasts - 1, 0),
        },
        coils=C,
        field_strength_t=field_strength_t,
        te_ms=te,
        tr_ms=tr_ms,
        flip_angle_deg=flip_angle_deg,
        acceleration=accel if calibration_lines > 0 else None,
        ti_ms=ti_ms,
    )
    first_flag = getattr(ismrmrd, f"ACQ_FIRST_IN_{frame_counter.upper()}")
    last_flag = getattr(ismrmrd, f"ACQ_LAST_IN_{frame_counter.upper()}")
    c0 = Ky // 2 - int(calibration_lines) // 2
    calib = set(range(c0, c0 + int(calibration_lines))) if calibration_lines > 0 else set()
    acqs = _noise_acquisitions(noise, C)
    for s in range(S):
        for t in range(T):
            rows = np.flatnonzero(lines[s, t])
            if len(rows) == 0:
                continue
            data = _oversample_readout(k[s, t][:, rows, :].astype(np.complex64), os_f)  # (C, n, os*Kx)
            for j, ky in enumerate(rows):
                acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(data[:, j, :]))
                acq.idx.kspace_encode_step_1 = int(ky)
                setattr(acq.idx, frame_counter, t)
                acq.idx.slice = s
                acq.center_sample = (os_f * Kx) // 2
                acq.sample_time_us = _DWELL_US
                _set_geometry(acq, s, fov_mm[2])
                if j == 0:
                    acq.set_flag(first_flag)
                if j == len(rows) - 1:
                    acq.set_flag(last_flag)
                if int(ky) in calib and (calibration_frames is None or t in calibration_frames):
                    acq.set_flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
                acqs.append(acq)
    order = None
    if shuffle_seed is not None:
        # noise scans stay first (as scanners write them); the image lines are shuffled
        n_noise = len(acqs) - n_lines
        perm = np.random.default_rng(shuffle_seed).permutation(n_lines) + n_noise
        order = np.concatenate([np.arange(n_noise), perm])
    _write(os.fspath(path), xml, acqs, order, tr_ms)
    return os.fspath(path)


def write_ismrmrd_radial(
    path: str | os.PathLike,
    kspace,
    trajectory,
    *,
    spokes_per_frame: int,
    image_shape: tuple[int, int],
    noise=None,
    write_phase: bool = True,
    fov_mm: tuple[float, float, float] = (320.0, 320.0, 8.0),
    field_strength_t: float = 1.5,
    te_ms: float | Sequence[float] = 1.5,
    tr_ms: float = 3.0,
    ti_ms: float | Sequence[float] | None = None,
    flip_angle_deg: float | Sequence[float] | None = None,
) -> str:
    """Write radial k-space as an ISMRMRD file, one acquisition per spoke.

    Parameters
    ----------
    path : str or PathLike
    kspace : array or tensor
        complex ``(T, C, K)`` (or ``(S, T, C, K)``), ``K = spokes_per_frame x samples``,
        spoke-major.
    trajectory : array or tensor
        ``(T, 2, K)`` (or ``(S, T, 2, K)``) radians/voxel, component 0 = ky, 1 = kx.
    spokes_per_frame : int
    image_shape : (Y, X)
        Recon matrix (reconSpace); encodedSpace x = samples per spoke.
    noise : array or tensor, optional
        complex ``(C, N)`` noise acquisitions, written first.
    write_phase : bool
        ``idx.phase`` = frame (True) or 0 for all spokes (the reader then bins by
        ``spokes_per_frame``).
    te_ms, tr_ms, ti_ms, flip_angle_deg
        Header facts (ms, deg): one value, or one per frame for a mapping scan (multi-echo
        TE list, multi-TI TI list, variable flip angles), written as sequenceParameters lists.

    Each acquisition's traj field is ``(samples, 2)`` in cycles/pixel, column 0 = kx,
    column 1 = ky; ``idx.kspace_encode_step_1`` = spoke number (mod 65536); the header
    trajectory is "radial".

    Returns
    -------
    str
        The path written.
    """
    import ismrmrd

    k = _np(kspace)
    tr = _np(trajectory, np.float64)
    if not np.iscomplexobj(k):
        raise ShapeError(f"kspace must be complex, got {k.dtype}")
    if k.ndim == 3:
        k = k[None]
    if tr.ndim == 3:
        tr = tr[None]
    if k.ndim != 4:
        raise ShapeError(f"radial kspace must be (T, C, K) or (S, T, C, K), got {k.shape}")
    S, T, C, K = k.shape
    tr = np.broadcast_to(tr, (S, T, 2, K)) if tr.shape[-2:] == (2, K) else tr
    if tr.shape != (S, T, 2, K):
        raise ShapeError(f"trajectory must be (T, 2, K) = {(T, 2, K)} (or with S), got {tr.shape}")
    spf = int(spokes_per_frame)
    if spf < 1 or K % spf:
        raise ShapeError(f"K = {K} samples per frame is not a multiple of spokes_per_frame = {spf}")
    ns = K // spf
    Y, X = (int(v) for v in image_shape)
    xml = _header(
        trajectory="radial",
        encoded=(ns, Y, 1),
        recon=(X, Y, 1),
        encoded_fov=(fov_mm[0] * ns / X, fov_mm[1], fov_mm[2]),
        recon_fov=tuple(fov_mm),
        limits={
            "kspace_encoding_step_0": (0, ns - 1, ns // 2),
            "kspace_encoding_step_1": (0, min(T * spf, 65536) - 1, 0),
            "kspace_encoding_step_2": (0, 0, 0),
            "slice": (0, S - 1, 0),
            "phase": (0, (T - 1) if write_phase else 0, 0),
            "repetition": (0, 0, 0),
            "average": (0, 0, 0),
            "contrast": (0, 0, 0),
        },
        coils=C,
        field_strength_t=field_strength_t,
        te_ms=te_ms,
        tr_ms=tr_ms,
        trajectory_description="radial spokes, trajectory in each acquisition (cycles/pixel)",
        ti_ms=ti_ms,
        flip_angle_deg=flip_angle_deg,
    )
    acqs = _noise_acquisitions(noise, C)
    cyc = radians_to_cycles(tr).astype(np.float32)
    for s in range(S):
        for t in range(T):
            y = k[s, t].astype(np.complex64).reshape(C, spf, ns)
            c = cyc[s, t].reshape(2, spf, ns)
            for j in range(spf):
                # file layout: column 0 = kx (package component 1), column 1 = ky (component 0)
                traj = np.ascontiguousarray(np.stack([c[1, j], c[0, j]], axis=1))
                acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(y[:, j]), traj)
                acq.idx.kspace_encode_step_1 = (t * spf + j) % 65536
                acq.idx.phase = t if write_phase else 0
                acq.idx.slice = s
                acq.center_sample = ns // 2
                acq.sample_time_us = _DWELL_US
                _set_geometry(acq, s, fov_mm[2])
                acqs.append(acq)
    _write(os.fspath(path), xml, acqs, None, tr_ms)
    return os.fspath(path)


def write_fastmri(
    path: str | os.PathLike,
    kspace,
    *,
    reference_rss=None,
    mask=None,
    fov_mm: tuple[float, float, float] = (220.0, 220.0, 5.0),
    field_strength_t: float = 3.0,
) -> str:
    """Write a fastMRI-style ``.h5`` (multi-coil layout of Zbontar et al., arXiv:1811.08839).

    Parameters
    ----------
    path : str or PathLike
    kspace : array or tensor
        complex64 ``(S, C, Ky, Kx)`` (fastMRI: slices, coils, height, width), centred.
        Height is written as the readout (encodedSpace x), width as the phase encodes.
    reference_rss : array, optional
        ``(S, Y, X)`` root-sum-of-squares reference, stored as ``reconstruction_rss``;
        its ``(Y, X)`` becomes the recon matrix (x = Y, y = X). With Y < Ky the reader
        crops the readout to Y.
    mask : array, optional
        ``(Kx,)`` sampled columns (as fastMRI's test files hold it) or ``(Ky, Kx)``.
    fov_mm : (x, y, z)
        Recon field of view in mm.
    field_strength_t : float

    Datasets: ``kspace``, ``ismrmrd_header`` (a scalar dataset of the XML bytes),
    optional ``mask``, ``reconstruction_rss``; attributes ``acquisition``, ``max``,
    ``norm``, ``patient_id`` as in fastMRI.

    Returns
    -------
    str
        The path written.
    """
    import h5py

    k = _np(kspace)
    if not np.iscomplexobj(k) or k.ndim != 4:
        raise ShapeError(f"fastMRI kspace must be complex (S, C, Ky, Kx), got {k.dtype} {k.shape}")
    S, C, H, W = k.shape
    ref = None
    if reference_rss is not None:
        ref = _np(reference_rss, np.float32)
        if ref.ndim != 3 or ref.shape[0] != S:
            raise ShapeError(f"reference_rss must be (S, Y, X) with S = {S}, got {ref.shape}")
        ry, rx = ref.shape[1:]
    else:
        ry, rx = H, W
    xml = _header(
        trajectory="cartesian",
        encoded=(H, W, 1),
        recon=(ry, rx, 1),
        encoded_fov=(fov_mm[0] * H / ry, fov_mm[1] * W / rx, fov_mm[2]),
        recon_fov=tuple(fov_mm),
        limits={
            "kspace_encoding_step_1": (0, W - 1, W // 2),
            "kspace_encoding_step_2": (0, 0, 0),
            "slice": (0, S - 1, 0),
            "average": (0, 0, 0),
            "contrast": (0, 0, 0),
            "phase": (0, 0, 0),
            "repetition": (0, 0, 0),
        },
        coils=C,
        field_strength_t=field_strength_t,
        te_ms=None,
        tr_ms=None,
    )
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=k.astype(np.complex64))
        f.create_dataset("ismrmrd_header", data=np.bytes_(xml.encode("utf-8")))
        if mask is not None:
            mk = _np(mask).astype(bool)
            if mk.shape not in ((W,), (H, W)):
                raise ShapeError(f"mask must be (Kx,) = ({W},) or (Ky, Kx) = ({H}, {W}), got {mk.shape}")
            f.create_dataset("mask", data=mk)
        if ref is not None:
            f.create_dataset("reconstruction_rss", data=ref)
            f.attrs["max"] = float(ref.max())
            f.attrs["norm"] = float(np.linalg.norm(ref))
        f.attrs["acquisition"] = "MRIDIP_PHANTOM"
        f.attrs["patient_id"] = ""
    return path


def write_ismrmrd_grappa_export(
    path: str | os.PathLike,
    kspace,
    *,
    acceleration: int = 3,
    acs_lines: int = 48,
    lines_acquired: int | None = None,
    center_line: int | None = None,
    readout_oversampling: int = 2,
    echo_asymmetry: int = 0,
    noise=None,
    noise_samples: int = 128,
    noise_dwell_us: float = 2.0 * _DWELL_US,
    fov_mm: tuple[float, float, float] = (230.0, 172.5, 5.0),
    field_strength_t: float = 3.0,
    te_ms: float = 4.9,
    tr_ms: float = 250.0,
) -> str:
    """Write one slice of fully sampled k-space as a Siemens GRAPPA export would hold it.

    What ``siemens_to_ismrmrd`` writes for a 2D GRAPPA scan with integrated reference
    lines, in the same layout: a noise scan first (its own sample count and dwell time),
    then a block of reference (ACS) lines flagged parallel calibration only (bit 20), then
    the imaging lines, every ``acceleration``-th line through the centre; the imaging lines
    inside the ACS block are flagged calibration-and-imaging (bit 21) and are not repeated
    in the reference block. Phase resolution below 100 % (``lines_acquired`` < Ky) gives
    asymmetric ky limits: ``kspace_encode_step_1`` runs 0 .. ``lines_acquired - 1`` with
    the k-space centre at ``center_line`` (encodingLimits), inside a Ky-line matrix. The
    readout is ``readout_oversampling`` x oversampled (encodedSpace x), and an asymmetric
    echo drops the first ``echo_asymmetry`` encoded samples of every line
    (``number_of_samples`` < encoded x, ``center_sample`` moved accordingly).

    Parameters
    ----------
    path : str or PathLike
        Output ``.h5`` (replaced if it exists).
    kspace : array or tensor
        complex ``(C, Ky, Kx)`` fully sampled, centred, at recon resolution.
    acceleration : int
        GRAPPA factor R of the imaging lines.
    acs_lines : int
        Reference lines around the centre (all of them measured, in the ACS block or as
        imaging lines).
    lines_acquired, center_line : int, optional
        ky lines measured (default Ky) and the index of the centre among them (default
        ``lines_acquired // 2``): line ``e1`` sits at matrix row ``e1 - center_line + Ky // 2``.
    readout_oversampling : int
    echo_asymmetry : int
        Encoded readout samples not acquired at the start of each line (0: full echo).
    noise : array, optional
        complex ``(C, N)`` noise at the noise scan's own dwell time, written
        ``noise_samples`` per acquisition.
    noise_samples, noise_dwell_us
        Samples per noise acquisition and the noise scan's dwell time (us); the data's
        dwell time is ``_DWELL_US``.
    fov_mm, field_strength_t, te_ms, tr_ms
        Header facts (mm, T, ms).

    Returns
    -------
    str
        The path written.
    """
    import ismrmrd

    k = _np(kspace)
    if not np.iscomplexobj(k) or k.ndim != 3:
        raise ShapeError(f"kspace must be complex (C, Ky, Kx), got {k.dtype} {k.shape}")
    C, Ky, Kx = k.shape
    n_lines = int(lines_acquired or Ky)
    c_line = int(n_lines // 2 if center_line is None else center_line)
    first_row = Ky // 2 - c_line
    if first_row < 0 or first_row + n_lines > Ky:
        raise ShapeError(f"{n_lines} lines with centre {c_line} do not fit a {Ky}-line matrix")
    os_f = int(readout_oversampling)
    ex = os_f * Kx
    R = int(acceleration)
    xml = _header(
        trajectory="cartesian",
        encoded=(ex, Ky, 1),
        recon=(Kx, Ky, 1),
        encoded_fov=(os_f * fov_mm[0], fov_mm[1], fov_mm[2]),
        recon_fov=tuple(fov_mm),
        limits={
            "kspace_encoding_step_0": (0, ex - 1, ex // 2),
            "kspace_encoding_step_1": (0, n_lines - 1, c_line),
            "kspace_encoding_step_2": (0, 0, 0),
            "slice": (0, 0, 0),
            "phase": (0, 0, 0),
            "repetition": (0, 0, 0),
            "average": (0, 0, 0),
            "contrast": (0, 0, 0),
        },
        coils=C,
        field_strength_t=field_strength_t,
        te_ms=te_ms,
        tr_ms=tr_ms,
        acceleration=R,
    )
    acs = set(range(c_line - acs_lines // 2, c_line - acs_lines // 2 + acs_lines)) & set(range(n_lines))
    imaging = [e1 for e1 in range(n_lines) if (e1 - c_line) % R == 0]
    data = _oversample_readout(k.astype(np.complex64), os_f)  # (C, Ky, ex)

    def line(e1: int, flag: int):
        y = np.ascontiguousarray(data[:, e1 + first_row, echo_asymmetry:])
        acq = ismrmrd.Acquisition.from_array(y)
        acq.idx.kspace_encode_step_1 = int(e1)
        acq.center_sample = ex // 2 - int(echo_asymmetry)
        acq.sample_time_us = _DWELL_US
        acq.read_dir[0] = 1.0
        acq.phase_dir[1] = 1.0
        acq.slice_dir[2] = 1.0
        if flag is not None:
            acq.set_flag(flag)
        return acq

    acqs = _noise_acquisitions(noise, C, noise_samples, noise_dwell_us)
    for e1 in sorted(acs - set(imaging)):
        acqs.append(line(e1, ismrmrd.ACQ_IS_PARALLEL_CALIBRATION))
    for e1 in imaging:
        acqs.append(line(e1, ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING if e1 in acs else None))
    _write(os.fspath(path), xml, acqs, None, tr_ms)
    return os.fspath(path)
