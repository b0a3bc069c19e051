"""ECG and respiratory stamps of ISMRMRD acquisitions (``physiology_time_stamp``).

ISMRMRD acquisition headers carry three ``physiology_time_stamp`` channels. Scanners
(Siemens, through siemens_to_ismrmrd / Gadgetron) write channel 0 as the time since the
last ECG trigger (R wave) in ticks of 2.5 ms, and channel 1 (where a respiratory
trigger is recorded) as the time since the last respiratory trigger; a channel that is
zero in every image acquisition was not recorded. Read here straight from the HDF5
``dataset/data`` headers with h5py (no k-space is read), so the file's reader
(:mod:`mridip.io.ismrmrd`) stays as it is.

From a trigger-relative stamp ``tau_i`` the phase of acquisition ``i`` is
``tau_i / (length of its trigger interval)``, the interval being ended by the next reset
of the stamp (the last, unfinished one takes the median interval length; a scan with no
complete interval has only its observed span, so its phase is relative to that). A frame's
phase is the circular mean of its acquisitions' phases.
"""

from __future__ import annotations

import os

import numpy as np

from mridip.errors import InputFileError

TICK_MS = 2.5
CHANNELS = {0: "cardiac", 1: "respiratory"}
_NOISE_FLAG_BIT = 19  # ACQ_IS_NOISE_MEASUREMENT (1-based flag 19)
_CAL_ONLY_BIT = 20  # ACQ_IS_PARALLEL_CALIBRATION


def read_physiology(path: str | os.PathLike) -> dict:
    """Physiology stamps of the image acquisitions of an ISMRMRD file.

    Returns
    -------
    dict
        ``stamps`` uint32 ``(N, 3)`` (ticks), ``acquisition_ms`` float64 ``(N,)``,
        ``phase`` / ``slice`` int ``(N,)`` (``idx``), and ``found``: the names
        (``"cardiac"``, ``"respiratory"``) of the channels that are non-zero somewhere.
        ``N`` counts the acquisitions that are neither noise nor calibration-only, in file order.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            head = f["dataset/data"].fields("head")[:]
    except (OSError, KeyError) as exc:
        raise InputFileError(f"{path}: no ISMRMRD acquisitions to read physiology stamps from ({exc})") from exc
    flags = head["flags"].astype(np.uint64)
    noise = (flags >> np.uint64(_NOISE_FLAG_BIT - 1)) & np.uint64(1)
    cal = (flags >> np.uint64(_CAL_ONLY_BIT - 1)) & np.uint64(1)
    keep = (noise == 0) & (cal == 0)
    h = head[keep]
    stamps = np.asarray(h["physiology_time_stamp"], dtype=np.uint32).reshape(-1, 3)
    found = [name for c, name in CHANNELS.items() if stamps.shape[0] and bool((stamps[:, c] > 0).any())]
    return {"stamps": stamps, "acquisition_ms": h["acquisition_time_stamp"].astype(np.float64) * TICK_MS,
            "phase": h["idx"]["phase"].astype(np.int64), "slice": h["idx"]["slice"].astype(np.int64),
            "found": found}


def trigger_phase(stamps: np.ndarray) -> np.ndarray:
    """Phase in [0, 1) of each sample of a trigger-relative stamp ``(N,)`` (ticks)."""
    tau = np.asarray(stamps, dtype=np.float64)
    resets = np.flatnonzero(np.diff(tau) < 0) + 1  # first sample of each new interval
    starts = np.concatenate([[0], resets])
    ends = np.concatenate([resets, [tau.size]])
    lengths = np.array([tau[e - 1] for e in ends], dtype=np.float64)  # last stamp of each interval
    full = lengths[1:-1] if len(lengths) > 2 else lengths[:-1]
    typical = float(np.median(full)) if full.size else float(lengths.max())
    out = np.zeros_like(tau)
    for i, (s, e) in enumerate(zip(starts, ends)):
        # an interval's length: its last stamp plus one sample step; the unfinished last
        # (and the possibly truncated first) take at least the typical length
        step = float(np.median(np.diff(tau[s:e]))) if e - s > 1 else 0.0
        L = lengths[i] + step
        if i == len(starts) - 1 or i == 0:
            L = max(L, typical + step)
        out[s:e] = np.clip(tau[s:e] / max(L, 1e-9), 0.0, 1.0 - 1e-9)
    return out


def frame_physiology(path: str | os.PathLike, num_frames: int, slice_index: int = 0) -> dict:
    """Per-frame cardiac / respiratory phases (where the file records them).

    Frames follow ``idx.phase`` where it varies, else consecutive equal bins of the
    slice's acquisitions (the reader's ``spokes_per_frame`` binning).

    Returns
    -------
    dict
        ``cardiac`` and/or ``respiratory``: float64 ``(T,)`` phases in [0, 1) (circular
        mean over each frame's acquisitions); ``found`` as :func:`read_physiology`.
    """
    p = read_physiology(path)
    sel = p["slice"] == slice_index
    out: dict = {"found": p["found"]}
    if not sel.any():
        return out
    ph = p["phase"][sel]
    if np.unique(ph).size == num_frames:
        frame = np.searchsorted(np.unique(ph), ph)
    else:
        n = int(sel.sum())
        frame = np.minimum(np.arange(n) * num_frames // max(n, 1), num_frames - 1)
    for c, name in CHANNELS.items():
        if name not in p["found"]:
            continue
        phi = trigger_phase(p["stamps"][sel, c])
        z = np.exp(2j * np.pi * phi)
        acc = np.bincount(frame, weights=z.real, minlength=num_frames) + 1j * np.bincount(frame, weights=z.imag,
                                                                                       minlength=num_frames)
        out[name] = np.mod(np.angle(acc) / (2 * np.pi), 1.0)
    return out
