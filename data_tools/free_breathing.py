"""Free-breathing real-time cine phantom: heartbeats plus respiratory motion, with its truth.

Frame ``t`` (duration ``frame_ms``) shows the cardiac phantom of
:func:`data_tools.phantom.cardiac_cine_phantom` at cardiac phase
``phi_t = frac(t frame_ms heart_rate / 60 s)`` (nearest of 48 precomputed phases),
deformed by a known respiratory displacement field (the pull convention of
:mod:`mridip.operators.motion`, pixels, component 0 = y, 1 = x)::

    x_t(p) = beat_{phi_t}(p + u_t(p)),   u_t(p) = -d_t w(p) (1, 0.2)

with ``d_t = amplitude r_t`` (``amplitude_mm`` converted with the 320 mm field of view),
``r_t = (1 - cos(2 pi f_r t frame_ms)) / 2`` in [0, 1] (0 end-expiration; ``f_r`` =
breaths per minute / 60, with a slow seeded 10 % variation of depth from breath to breath)
and ``w`` a smooth Gaussian bump (sigma 0.45 normalised units) centred on the heart: the
heart and the diaphragm dome move by the full amplitude, the spine and the chest wall
much less, a non-rigid field as in a real chest. The warp is scipy's cubic spline
interpolation (independent of the package's bilinear warp). The phantom's own
``respiration`` option (a monotonic 13 mm drift over one beat) is not used here.

Files (:func:`simulate_free_breathing_files`): ISMRMRD radial (golden angle) or Cartesian
raw data with, in every image acquisition, ``physiology_time_stamp[0]`` = ticks (2.5 ms)
since the last R wave and ``physiology_time_stamp[1]`` = ticks since the last
end-expiration (the Siemens/Gadgetron convention of trigger-relative physiology
stamps), ``acquisition_time_stamp`` in ticks of 2.5 ms; and ``<name>_truth.h5`` with
``image`` ``(1, T, Y, X)``, ``roi/<name>``, ``coil_maps``, ``motion/displacement`` float32
``(1, T, 2, Y, X)`` pixels, ``motion/respiratory`` ``(T,)`` (``r_t``), ``motion/cardiac_phase``
``(T,)`` and attributes.

Command line: ``python -m data_tools.free_breathing -o DIR --kind radial --size 64 --frames 16``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
from scipy.ndimage import map_coordinates

from mridip.errors import ShapeError

_FOV_MM = 320.0
_HEART_CENTRE = (0.10, -0.08)  # (u, v) normalised, the phantom's LV centre
_BUMP_SIGMA = 0.45
_PHASES = 48
_TICK_MS = 2.5


def respiratory_curve(frames: int, frame_ms: float, breaths_per_min: float, seed: int = 0) -> np.ndarray:
    """``r_t`` in [0, 1] ``(T,)``: raised-cosine breathing, 10 % seeded depth variation per breath."""
    t_s = np.arange(frames) * frame_ms / 1000.0
    phase = t_s * breaths_per_min / 60.0
    rng = np.random.default_rng(seed + 101)
    depth = 1.0 + 0.1 * rng.uniform(-1, 1, size=int(phase.max()) + 2)
    r = 0.5 * (1.0 - np.cos(2 * math.pi * phase)) * depth[np.floor(phase).astype(int)]
    return r / max(r.max(), 1e-12) if r.max() > 0 else r


def respiratory_field(size: int, shift_px: np.ndarray) -> np.ndarray:
    """Pull displacement ``(T, 2, Y, X)`` float32 pixels for head-foot shifts ``shift_px`` ``(T,)``."""
    v = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    vv, uu = np.meshgrid(v, v, indexing="ij")
    w = np.exp(-((uu - _HEART_CENTRE[0]) ** 2 + (vv - _HEART_CENTRE[1]) ** 2) / (2 * _BUMP_SIGMA**2))
    u = np.zeros((len(shift_px), 2, size, size), dtype=np.float32)
    u[:, 0] = -shift_px[:, None, None] * w
    u[:, 1] = -0.2 * shift_px[:, None, None] * w
    return u


def _pull(img: np.ndarray, disp: np.ndarray, order: int) -> np.ndarray:
    Y, X = img.shape
    gy, gx = np.meshgrid(np.arange(Y), np.arange(X), indexing="ij")
    coords = np.stack([gy + disp[0], gx + disp[1]])
    if np.iscomplexobj(img):
        return (map_coordinates(img.real, coords, order=order, mode="constant")
                + 1j * map_coordinates(img.imag, coords, order=order, mode="constant")).astype(np.complex64)
    return map_coordinates(img.astype(np.float32), coords, order=order, mode="constant")


def free_breathing_cine(
    size: int = 64,
    frames: int = 16,
    *,
    frame_ms: float = 125.0,
    heart_rate_bpm: float = 60.0,
    breaths_per_min: float = 20.0,
    amplitude_mm: float = 12.0,
    seed: int = 0,
) -> dict:
    """Free-breathing cine image series with its true motion.

    Parameters
    ----------
    size : int
        N (images N x N, 320 mm field of view).
    frames : int
        T.
    frame_ms : float
        Frame duration (ms). Real-time cine frames last 30-60 ms; the default 125 ms
        (with 60 bpm and 20 breaths/min) coarsens time so that 16 frames hold 2 beats
        and two thirds of a breath, for small tests and benchmarks.
    heart_rate_bpm, breaths_per_min : float
        Rates of the two motions.
    amplitude_mm : float
        Peak respiratory displacement of the heart (5-15 mm is typical).
    seed : int
        Seed of the phantom texture and of the breathing depth.

    Returns
    -------
    dict
        ``images`` complex64 ``(T, Y, X)``; ``rois`` name -> bool ``(T, Y, X)``;
        ``displacement`` float32 ``(T, 2, Y, X)`` pixels (pull field); ``respiratory``
        ``(T,)`` in [0, 1]; ``cardiac_phase`` ``(T,)`` in [0, 1); ``frame_ms``;
        ``shift_px`` ``(T,)`` the heart's head-foot shift in pixels.
    """
    from data_tools.phantom import cardiac_cine_phantom

    if frames < 2 or size < 8:
        raise ShapeError(f"free_breathing_cine needs frames >= 2 and size >= 8, got {frames}, {size}")
    beat, beat_rois = cardiac_cine_phantom(size, _PHASES, seed=seed)
    t_s = np.arange(frames) * frame_ms / 1000.0
    cphase = np.mod(t_s * heart_rate_bpm / 60.0, 1.0)
    pidx = np.round(cphase * _PHASES).astype(int) % _PHASES
    r = respiratory_curve(frames, frame_ms, breaths_per_min, seed)
    shift = r * amplitude_mm * size / _FOV_MM
    disp = respiratory_field(size, shift)
    images = np.stack([_pull(beat[p], disp[t], 3) for t, p in enumerate(pidx)]).astype(np.complex64)
    rois = {k: np.stack([_pull(m[p].astype(np.float32), disp[t], 1) > 0.5 for t, p in enumerate(pidx)])
            for k, m in beat_rois.items()}
    return {"images": images, "rois": rois, "displacement": disp, "respiratory": r.astype(np.float64),
            "cardiac_phase": cphase, "frame_ms": float(frame_ms), "shift_px": shift}


def _stamp_physiology(path: str, acq_ms: np.ndarray, heart_rate_bpm: float, breaths_per_min: float) -> None:
    """Rewrite ``path`` with trigger-relative ECG / respiratory stamps in image acquisitions."""
    import ismrmrd

    ds = ismrmrd.Dataset(path, "dataset", create_if_needed=False)
    xml = ds.read_xml_header()
    acqs = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    ds.close()
    rr = 60000.0 / heart_rate_bpm
    br = 60000.0 / breaths_per_min
    if sum(not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) for a in acqs) != len(acq_ms):
        raise ShapeError(f"{path}: {len(acq_ms)} acquisition times for a different number of image acquisitions")
    j = 0
    for acq in acqs:
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            continue
        t = acq_ms[j]
        acq.physiology_time_stamp[0] = int(round((t % rr) / _TICK_MS))
        acq.physiology_time_stamp[1] = int(round((t % br) / _TICK_MS))
        acq.acquisition_time_stamp = int(round(t / _TICK_MS))
        j += 1
    os.remove(path)
    ds = ismrmrd.Dataset(path, "dataset", create_if_needed=True)
    try:
        ds.write_xml_header(xml)
        for acq in acqs:
            ds.append_acquisition(acq)
    finally:
        ds.close()


def simulate_free_breathing_files(
    output: str,
    *,
    kind: str = "radial",
    size: int = 64,
    frames: int = 16,
    coils: int = 8,
    spokes_per_frame: int = 13,
    acceleration: float = 8.0,
    snr: float = 30.0,
    frame_ms: float = 125.0,
    heart_rate_bpm: float = 60.0,
    breaths_per_min: float = 20.0,
    amplitude_mm: float = 12.0,
    seed: int = 0,
) -> list[str]:
    """Write ``free_breathing_<kind>.h5`` (ISMRMRD) and its ``_truth.h5`` into ``output``.

    Radial: golden-angle spokes, ``spokes_per_frame`` per frame (``idx.phase`` = frame),
    TR = ``frame_ms / spokes_per_frame``. Cartesian: variable-density lines with
    ``acceleration`` and :func:`data_tools.phantom.cartesian_center_lines` centre lines,
    TR = ``frame_ms / lines per frame``. Physiology stamps and truth as in the module
    docstring. Returns ``[raw_path, truth_path]``.
    """
    from data_tools import writers
    from data_tools.phantom import (_write_truth, cartesian_center_lines, coil_sensitivities,
                                    simulate_cartesian, simulate_radial)

    if kind not in ("radial", "cartesian"):
        raise ShapeError(f"kind must be 'radial' or 'cartesian', got {kind!r}")
    os.makedirs(output, exist_ok=True)
    raw_path = os.path.join(output, f"free_breathing_{kind}.h5")
    truth_path = raw_path[: -len(".h5")] + "_truth.h5"
    ph = free_breathing_cine(size, frames, frame_ms=frame_ms, heart_rate_bpm=heart_rate_bpm,
                             breaths_per_min=breaths_per_min, amplitude_mm=amplitude_mm, seed=seed)
    maps = coil_sensitivities(coils, (size, size), seed=seed, normalize=True)
    attrs = {"kind": kind, "snr": float(snr), "seed": int(seed), "size": int(size), "frames": int(frames),
             "coils": int(coils), "frame_ms": float(frame_ms), "heart_rate_bpm": float(heart_rate_bpm),
             "breaths_per_min": float(breaths_per_min), "amplitude_mm": float(amplitude_mm),
             "fov_mm": _FOV_MM, "generator": "data_tools.free_breathing.simulate_free_breathing_files"}
    if kind == "radial":
        sim = simulate_radial(ph["images"], maps, spokes_per_frame=spokes_per_frame, snr=snr, seed=seed)
        per_frame = spokes_per_frame
        tr = frame_ms / per_frame
        writers.write_ismrmrd_radial(raw_path, sim["kspace"], sim["trajectory"], spokes_per_frame=spokes_per_frame,
                                     image_shape=(size, size), noise=sim["noise"], tr_ms=tr)
        attrs["spokes_per_frame"] = int(spokes_per_frame)
        frame_of_acq = np.repeat(np.arange(frames), per_frame)
    else:
        center = cartesian_center_lines(size, acceleration)
        sim = simulate_cartesian(ph["images"], maps, acceleration=acceleration, center_lines=center, snr=snr,
                                 seed=seed)
        lines = sim["mask"].any(-1)  # (T, Ky)
        per_frame = int(lines.sum(1).max())
        tr = frame_ms / per_frame
        writers.write_ismrmrd_cartesian(raw_path, sim["kspace"], sim["mask"], noise=sim["noise"],
                                        calibration_lines=center, tr_ms=tr)
        attrs.update(acceleration=float(acceleration), center_lines=center)
        frame_of_acq = np.concatenate([np.full(int(lines[t].sum()), t) for t in range(frames)])
    # acquisition times: readouts of a frame evenly over its duration, frames back to back
    within = np.concatenate([np.arange((frame_of_acq == t).sum()) for t in range(frames)])
    counts = np.bincount(frame_of_acq, minlength=frames)
    acq_ms = frame_of_acq * frame_ms + (within + 0.5) * frame_ms / counts[frame_of_acq]
    _stamp_physiology(raw_path, acq_ms, heart_rate_bpm, breaths_per_min)
    _write_truth(truth_path, ph["images"][None], {k: m[None] for k, m in ph["rois"].items()}, maps[None],
                 attrs, sim["noise_cov"])
    import h5py

    with h5py.File(truth_path, "a") as f:
        g = f.create_group("motion")
        g.create_dataset("displacement", data=ph["displacement"][None].astype(np.float32), compression="gzip")
        g.create_dataset("respiratory", data=ph["respiratory"])
        g.create_dataset("cardiac_phase", data=ph["cardiac_phase"])
        g.create_dataset("shift_px", data=ph["shift_px"])
    return [raw_path, truth_path]


def main(argv: list[str] | None = None) -> int:
    """``python -m data_tools.free_breathing -o DIR [--kind radial|cartesian] ...``."""
    p = argparse.ArgumentParser(prog="python -m data_tools.free_breathing", description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--kind", choices=("radial", "cartesian"), default="radial")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--spokes", type=int, default=13)
    p.add_argument("--acceleration", type=float, default=8.0)
    p.add_argument("--snr", type=float, default=30.0)
    p.add_argument("--frame-ms", type=float, default=125.0)
    p.add_argument("--heart-rate", type=float, default=60.0, help="beats per minute")
    p.add_argument("--breaths", type=float, default=20.0, help="breaths per minute")
    p.add_argument("--amplitude-mm", type=float, default=12.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    for path in simulate_free_breathing_files(
        a.output, kind=a.kind, size=a.size, frames=a.frames, coils=a.coils, spokes_per_frame=a.spokes,
        acceleration=a.acceleration, snr=a.snr, frame_ms=a.frame_ms, heart_rate_bpm=a.heart_rate,
        breaths_per_min=a.breaths, amplitude_mm=a.amplitude_mm, seed=a.seed,
    ):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
