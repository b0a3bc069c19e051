"""T1-mapping phantoms and their raw files (inversion recovery, MOLLI, SR, VFA; Cartesian and radial).

Two phantoms, each with its maps (the truth) and regions:

- :func:`t1_mapping_phantom`: the T1 plate of the NIST / ISMRM system phantom on a
  brain-like background, at 3 T. Fourteen spheres span the plate's T1 values
  (:data:`NIST_T1_ARRAY_3T_MS`, about 20 - 1900 ms: the NiCl2 "T1 array" tabulated by
  Stupic et al., "A standard system phantom for magnetic resonance imaging", MRM 2021,
  and used as reference values by Keenan et al., PLOS ONE 2021; rounded, for phantom
  version 1 near 20 degC, and a given phantom's certificate differs by a few %), placed
  in two rings inside a head of white matter, a grey-matter band and a fat scalp
  (:data:`BRAIN_T1_3T`).
- :func:`cardiac_t1_phantom`: a short-axis slice at 1.5 T: myocardium ~1000 ms and blood
  ~1550 ms (native MOLLI values at 1.5 T: Kellman and Hansen, "T1-mapping in the heart:
  accuracy and precision", JCMR 2014; the SCMR consensus, Messroghli et al., JCMR 2017,
  lists ranges around these), skeletal muscle, subcutaneous fat and lungs.

Both are drawn on a supersampled grid; a pixel holds one mono-exponential recovery whose
``M0`` is the mean sub-pixel M0 and whose ``1 / T1`` is the M0-weighted mean sub-pixel
rate (as :func:`data_tools.phantom.t2_mapping_phantom` does for T2), so the images are
exactly the signal model of the truth maps and a reconstruction's map error is its own.

Signal models (ms; the conventions of :mod:`mridip.operators.signal`):

- ``ir``: ``M0 (1 - 2 exp(-TI / T1)) exp(i phase)`` (a perfect inversion, long TR);
- ``sr``: ``M0 (1 - exp(-TS / T1)) exp(i phase)``;
- ``vfa``: ``M0 sin(a) (1 - E1) / (1 - cos(a) E1) exp(i phase)``, ``a = B1 alpha`` with a
  smooth B1 map (0.8 - 1.2) written beside the raw file as ``b1_map.npy``;
- ``molli``: ``A - B exp(-TI / T1*)`` with the Look-Locker relations ``A = M0 T1* / T1``,
  ``B = A + M0`` and an apparent rate ``1 / T1* = 1 / T1 + 1 / T_RO`` (``T_RO`` =
  :data:`MOLLI_READOUT_MS`, so T1* is ~0.6 T1 in myocardium): data follow the 3-parameter
  model exactly, so MOLLI's own bias against the true T1 (heart rate, T2, inversion
  efficiency) is not simulated.

Files: :func:`simulate_t1_to_files` writes ISMRMRD (frames on ``idx.contrast`` for
Cartesian, ``idx.phase`` for radial; TI / flip angles / TR in the header's
sequenceParameters) and a ``*_truth.h5`` with ``parameter_maps/<name>`` ``(1, Y, X)``
(times in ms), as the T2 files of :mod:`data_tools.phantom`.
"""

from __future__ import annotations

import math
import os

import numpy as np

from data_tools.phantom import (
    GOLDEN_ANGLE_DEG,
    _background_phase,
    _block_mean,
    _ellipse,
    _grid,
    _smooth_noise,
    _supersampling,
    _write_truth,
    cartesian_center_lines,
    coil_sensitivities,
    simulate_cartesian,
    simulate_radial,
    t2_echo_images,
    t2_mapping_phantom,
)
from mridip.errors import ShapeError

#: T1 (ms) of the 14 spheres of the NIST / ISMRM system phantom's T1 (NiCl2) array at 3 T,
#: ~20 degC, rounded (Stupic et al., MRM 2021; Keenan et al., PLOS ONE 2021).
NIST_T1_ARRAY_3T_MS = (1838.0, 1398.0, 998.0, 726.0, 509.0, 367.0, 258.0, 185.0, 130.0, 90.9, 64.1,
                       46.4, 32.6, 23.4)
#: (relative M0, T1 ms) of the background at 3 T: WM / GM (Stanisz et al., MRM 2005, ~830 /
#: ~1330 ms; later inversion-recovery studies find WM 800 - 1100 ms) and scalp fat (~380 ms).
BRAIN_T1_3T = {"wm": (0.69, 830.0), "gm": (0.80, 1330.0), "fat": (0.90, 380.0)}
#: (relative M0, T1 ms) of the short-axis slice at 1.5 T (Kellman and Hansen, JCMR 2014;
#: Messroghli et al., JCMR 2017: native MOLLI myocardium ~950 - 1050 ms, blood ~1500 - 1600 ms).
CARDIAC_T1_1P5T = {"myocardium": (0.80, 1000.0), "blood": (0.95, 1550.0), "muscle": (0.75, 1010.0),
                   "fat": (0.90, 260.0), "lung": (0.08, 1200.0)}
#: readout saturation time constant of the simulated MOLLI: 1 / T1* = 1 / T1 + 1 / T_RO (ms)
MOLLI_READOUT_MS = 1500.0
#: default inversion times of the simulated IR scan (ms), TR 10 s (fully relaxed)
IR_TI_MS = (35.0, 70.0, 140.0, 280.0, 560.0, 1120.0, 2240.0, 4480.0)
IR_TR_MS = 10000.0
#: saturation-recovery times (ms) and VFA flip angles (deg) / TR (ms) of the other T1 scans
SR_TS_MS = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0)
VFA_FLIP_DEG = (2.0, 4.0, 7.0, 11.0, 16.0, 22.0)
VFA_TR_MS = 15.0
#: MOLLI 5(3)3 at 60 beats/min: 5 images after an inversion at TI 100 ms + n RR, three beats of
#: recovery, 3 images after a second inversion at 180 ms + n RR; effective TIs, sorted
MOLLI_TI_MS = (100.0, 180.0, 1100.0, 1180.0, 2100.0, 2180.0, 3100.0, 4100.0)

_FOV_BRAIN_MM = (256.0, 256.0, 5.0)
_FOV_HEART_MM = (320.0, 320.0, 8.0)
_T1_KINDS = {"t1map": "t1_mapping.h5", "t1map-radial": "t1_mapping_radial.h5", "molli": "molli.h5",
             "t2map-radial": "t2_mapping_radial.h5"}
T1_MODELS = ("ir", "sr", "vfa")


def _pixel_maps(lab: np.ndarray, table: dict[int, tuple[float, float]], ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel M0 and T1 of a supersampled label image: mean M0, M0-weighted mean rate."""
    m0_lut = np.zeros(int(lab.max()) + 1)
    t1_lut = np.ones(int(lab.max()) + 1)
    for label, (m0, t1) in table.items():
        if label < len(m0_lut):
            m0_lut[label], t1_lut[label] = m0, t1
    m0_sub = m0_lut[lab]
    m0 = _block_mean(m0_sub, ss)
    rate = _block_mean(m0_sub / t1_lut[lab], ss)
    t1 = np.where(m0 > 0, m0 / np.where(m0 > 0, rate, 1.0), 0.0)
    return m0.astype(np.float32), t1.astype(np.float32)


def _sphere_centres() -> list[tuple[float, float]]:
    outer = [(0.40 * math.sin(2 * math.pi * k / 9), -0.40 * math.cos(2 * math.pi * k / 9)) for k in range(9)]
    inner = [(0.17 * math.sin(2 * math.pi * k / 5 + 0.3), -0.17 * math.cos(2 * math.pi * k / 5 + 0.3))
             for k in range(5)]
    return outer + inner


def t1_mapping_phantom(size: int, *, seed: int = 0, sphere_radius: float = 0.085) -> dict:
    """The NIST / ISMRM T1 plate on a brain-like background at 3 T (see the module docstring).

    Geometry (normalised coordinates, one unit = 128 mm of a 256 mm field of view): a head
    ellipse of 0.62 x 0.76 with a fat scalp ring, a grey-matter band around white matter,
    and 14 spheres of radius ``sphere_radius`` (default 0.085, 11 mm): 9 on a ring of
    radius 0.40 (spheres 1 - 9, T1 1838 ... 130 ms, clockwise from the top) and 5 on a ring
    of radius 0.17 (spheres 10 - 14, 91 ... 23 ms).

    Parameters
    ----------
    size : int
        Matrix N (N x N, >= 16).
    seed : int
        Seed of the smooth background phase.
    sphere_radius : float
        Sphere radius in normalised units.

    Returns
    -------
    dict
        ``m0`` float32 ``(Y, X)`` (max 1), ``t1_ms`` float32 ``(Y, X)`` (0 outside the head),
        ``phase`` float32 ``(Y, X)`` rad, ``rois`` dict of bool ``(Y, X)``: ``"spheres"``
        (spheres with 100 <= T1 <= 2000 ms, the scored range), ``"all_spheres"``,
        ``"brain"`` (WM + GM outside the spheres), ``"object"`` (the head), ``"sphere_<k>"``
        (k = 1 .. 14); ``sphere_t1_ms`` the 14 values.
    """
    if size < 16:
        raise ShapeError(f"the T1 phantom needs size >= 16 pixels, got {size}")
    ss = _supersampling(size)
    v, u = _grid((size, size), ss)
    lab = np.zeros(v.shape, dtype=np.uint8)
    lab[_ellipse(u, v, 0.0, 0.0, 0.62, 0.76)] = 3  # fat
    lab[_ellipse(u, v, 0.0, 0.0, 0.57, 0.71)] = 2  # GM
    lab[_ellipse(u, v, 0.0, 0.0, 0.47, 0.61)] = 1  # WM
    table = {1: BRAIN_T1_3T["wm"], 2: BRAIN_T1_3T["gm"], 3: BRAIN_T1_3T["fat"]}
    for k, ((cu, cv), t1) in enumerate(zip(_sphere_centres(), NIST_T1_ARRAY_3T_MS)):
        lab[_ellipse(u, v, cu, cv, sphere_radius, sphere_radius)] = 10 + k
        table[10 + k] = (1.0, t1)
    m0, t1 = _pixel_maps(lab, table, ss)
    rng = np.random.default_rng(seed)
    phase = _background_phase(size, rng, scale=2.0).astype(np.float32)

    def roi(labels) -> np.ndarray:
        return _block_mean(np.isin(lab, list(labels)).astype(np.float32), ss) > 0.5

    rois = {f"sphere_{k + 1}": roi([10 + k]) for k in range(14)}
    scored = [10 + k for k, t in enumerate(NIST_T1_ARRAY_3T_MS) if 100.0 <= t <= 2000.0]
    rois.update(spheres=roi(scored), all_spheres=roi(range(10, 24)), brain=roi([1, 2]), object=m0 > 0)
    return {"m0": m0, "t1_ms": t1, "phase": phase, "rois": rois,
            "sphere_t1_ms": np.asarray(NIST_T1_ARRAY_3T_MS)}


def cardiac_t1_phantom(size: int, *, seed: int = 0) -> dict:
    """A short-axis slice at 1.5 T for MOLLI (values :data:`CARDIAC_T1_1P5T`).

    Geometry (one normalised unit = 160 mm of a 320 mm field of view): a body ellipse of
    skeletal muscle with a subcutaneous fat ring, two lungs, the left ventricle (blood pool
    radius 0.14, myocardium to 0.215: a ~12 mm wall) and the right-ventricular blood pool as
    a crescent beside it.

    Returns
    -------
    dict
        ``m0``, ``t1_ms``, ``phase`` float32 ``(Y, X)`` and ``rois`` bool ``(Y, X)``:
        ``"myocardium"``, ``"blood"`` (LV + RV pools), ``"heart"`` (both), ``"object"``.
    """
    if size < 16:
        raise ShapeError(f"the cardiac T1 phantom needs size >= 16 pixels, got {size}")
    ss = _supersampling(size)
    v, u = _grid((size, size), ss)
    lab = np.zeros(v.shape, dtype=np.uint8)
    lab[_ellipse(u, v, 0.0, 0.0, 0.88, 0.62)] = 4  # fat
    lab[_ellipse(u, v, 0.0, 0.0, 0.82, 0.56)] = 3  # muscle
    for side in (-1.0, 1.0):
        lab[_ellipse(u, v, side * 0.45, -0.05, 0.28, 0.38)] = 5  # lungs
    lv_u, lv_v = 0.08, 0.02
    lab[_ellipse(u, v, lv_u - 0.19, lv_v + 0.02, 0.17, 0.25, math.radians(-10))] = 2  # RV blood
    lab[_ellipse(u, v, lv_u, lv_v, 0.215, 0.215)] = 1  # myocardium
    lab[_ellipse(u, v, lv_u, lv_v, 0.14, 0.14)] = 2  # LV blood
    c = CARDIAC_T1_1P5T
    table = {1: c["myocardium"], 2: c["blood"], 3: c["muscle"], 4: c["fat"], 5: c["lung"]}
    m0, t1 = _pixel_maps(lab, table, ss)
    phase = _background_phase(size, np.random.default_rng(seed), scale=2.0).astype(np.float32)

    def roi(labels) -> np.ndarray:
        return _block_mean(np.isin(lab, list(labels)).astype(np.float32), ss) > 0.5

    rois = {"myocardium": roi([1]), "blood": roi([2]), "heart": roi([1, 2]), "object": m0 > 0}
    return {"m0": m0, "t1_ms": t1, "phase": phase, "rois": rois}


def t1_images(phantom: dict, model: str, *, ti_ms=IR_TI_MS, flip_angles_deg=VFA_FLIP_DEG,
              tr_ms: float = VFA_TR_MS, b1=None) -> np.ndarray:
    """Contrast images of a T1 phantom: complex64 ``(E, Y, X)`` (models of the module docstring).

    ``model`` ``"ir"`` / ``"sr"`` use ``ti_ms`` (ms), ``"vfa"`` ``flip_angles_deg``, ``tr_ms``
    and ``b1`` (``(Y, X)``, default 1); ``"molli"`` ``ti_ms`` (effective inversion times).
    """
    m0, t1, phase = (np.asarray(phantom[k], dtype=np.float64) for k in ("m0", "t1_ms", "phase"))
    safe = np.where(t1 > 0, t1, 1.0)
    on = (t1 > 0)[None]
    if model in ("ir", "sr", "molli"):
        ti = np.asarray(ti_ms, dtype=np.float64)[:, None, None]
        if ti.size < 2 or not np.all(np.isfinite(ti)) or np.any(ti < 0):
            raise ShapeError(f"ti_ms must hold >= 2 times >= 0 ms, got {ti_ms!r}")
        if model == "ir":
            curve = 1 - 2 * np.exp(-ti / safe)
        elif model == "sr":
            curve = 1 - np.exp(-ti / safe)
        else:
            t1s = 1.0 / (1.0 / safe + 1.0 / MOLLI_READOUT_MS)
            a = t1s / safe
            curve = a - (a + 1.0) * np.exp(-ti / t1s)
    elif model == "vfa":
        fa = np.deg2rad(np.asarray(flip_angles_deg, dtype=np.float64))[:, None, None]
        alpha = fa * (1.0 if b1 is None else np.asarray(b1, dtype=np.float64)[None])
        e1 = np.exp(-float(tr_ms) / safe)[None]
        curve = np.sin(alpha) * (1 - e1) / (1 - np.cos(alpha) * e1)
    else:
        raise ShapeError(f"model must be one of ir, sr, vfa, molli; got {model!r}")
    return (np.where(on, m0 * curve, 0.0) * np.exp(1j * phase)).astype(np.complex64)


def smooth_b1(size: int, *, seed: int = 0) -> np.ndarray:
    """A smooth relative B1 map in [0.8, 1.2] (a centre-bright transmit field plus noise): float32 ``(Y, X)``."""
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    b1 = 1.12 - 0.22 * (x ** 2 + y ** 2) + 0.03 * _smooth_noise(size, size / 4.0, np.random.default_rng(seed))
    return np.clip(b1, 0.8, 1.2).astype(np.float32)


def simulate_t1_to_files(
    output: str,
    *,
    kind: str = "t1map",
    size: int = 64,
    coils: int = 8,
    acceleration: float = 4.0,
    spokes_per_frame: int = 13,
    snr: float = 30.0,
    seed: int = 0,
    t1_model: str = "ir",
    echoes: int = 8,
    echo_spacing_ms: float = 10.0,
) -> list[str]:
    """Write a T1 (or radial T2) mapping scan and its truth into ``output``.

    - ``kind="t1map"``: ``t1_mapping.h5``, the NIST-like phantom :func:`t1_mapping_phantom`
      as a Cartesian scan, one contrast per TI (``t1_model="ir"``: :data:`IR_TI_MS`, TR
      10 s; ``"sr"``: :data:`SR_TS_MS` in the TI list; ``"vfa"``: :data:`VFA_FLIP_DEG` in the
      flip-angle list, TR :data:`VFA_TR_MS`, B1 map :func:`smooth_b1` also written as
      ``b1_map.npy``), a different variable-density line mask with ``acceleration`` per
      contrast around :func:`data_tools.phantom.cartesian_center_lines` central lines; the
      central lines of the last contrast (the longest TI: every tissue positive) are flagged
      as embedded calibration (ACS), because the TI images of an inversion recovery change
      sign and their average, from which coil maps are otherwise estimated, cancels where
      the mean of ``1 - 2 exp(-TI / T1)`` over the TIs is near 0 (T1 ~ 1000 ms here).
    - ``kind="t1map-radial"``: ``t1_mapping_radial.h5``, the same as golden-angle radial,
      ``spokes_per_frame`` spokes per contrast of one continuous golden-angle sequence.
    - ``kind="molli"``: ``molli.h5``, the short-axis phantom :func:`cardiac_t1_phantom`
      as MOLLI 5(3)3 (:data:`MOLLI_TI_MS`), Cartesian with ``acceleration``.
    - ``kind="t2map-radial"``: ``t2_mapping_radial.h5``, the brain T2 phantom of
      :func:`data_tools.phantom.t2_mapping_phantom` as golden-angle radial multi-echo
      (``echoes`` echoes at ``echo_spacing_ms`` (1 .. E)).

    The truth file ``<name>_truth.h5`` holds ``image`` (noise-free contrast images)
    ``(1, E, Y, X)``, ``roi/<name>`` ``(1, E, Y, X)``, ``coil_maps``, ``noise_cov``,
    ``parameter_maps/M0`` and ``/T1`` (``/T2``; MOLLI also ``/T1star``, ``/A``, ``/B``)
    float32 ``(1, Y, X)`` in ms, and attributes (kind, ti_ms or flip_angles_deg and tr_ms,
    acceleration, field strength, the scored regions in ``map_regions``).

    Returns
    -------
    list of str
        Raw file, truth file (and ``b1_map.npy`` for VFA).
    """
    from data_tools import writers

    if kind not in _T1_KINDS:
        raise ShapeError(f"kind must be one of {sorted(_T1_KINDS)}, got {kind!r}")
    if t1_model not in T1_MODELS:
        raise ShapeError(f"t1_model must be one of {T1_MODELS}, got {t1_model!r}")
    os.makedirs(output, exist_ok=True)
    raw_path = os.path.join(output, _T1_KINDS[kind])
    truth_path = raw_path[: -len(".h5")] + "_truth.h5"
    attrs = {"kind": kind, "snr": float(snr), "seed": int(seed), "size": int(size), "coils": int(coils),
             "generator": "data_tools.t1_phantom.simulate_t1_to_files"}
    written = [raw_path, truth_path]
    header: dict = {}
    if kind == "molli":
        ph = cardiac_t1_phantom(size, seed=seed)
        images = t1_images(ph, "molli", ti_ms=MOLLI_TI_MS)
        t1 = ph["t1_ms"].astype(np.float64)
        t1s = np.where(t1 > 0, 1.0 / (1.0 / np.where(t1 > 0, t1, 1.0) + 1.0 / MOLLI_READOUT_MS), 0.0)
        a = np.where(t1 > 0, ph["m0"] * t1s / np.where(t1 > 0, t1, 1.0), 0.0)
        pmaps = {"M0": ph["m0"], "T1": ph["t1_ms"], "T1star": t1s, "A": a, "B": a + ph["m0"] * (t1 > 0)}
        header = {"ti_ms": list(MOLLI_TI_MS), "tr_ms": 2.5, "flip_angle_deg": 35.0, "te_ms": 1.1}
        field_t, fov = 1.5, _FOV_HEART_MM
        attrs.update(ti_ms=np.asarray(MOLLI_TI_MS), model="molli", molli_readout_ms=MOLLI_READOUT_MS,
                     map_regions="myocardium,blood")
    elif kind == "t2map-radial":
        ph = t2_mapping_phantom(size, seed=seed)
        te = float(echo_spacing_ms) * np.arange(1, int(echoes) + 1, dtype=np.float64)
        images = t2_echo_images(ph["m0"], ph["t2_ms"], ph["phase"], te)
        pmaps = {"M0": ph["m0"], "T2": ph["t2_ms"]}
        header = {"te_ms": te.tolist(), "tr_ms": 3000.0, "flip_angle_deg": 90.0}
        field_t, fov = 3.0, _FOV_BRAIN_MM
        attrs.update(te_ms=te, model="t2", map_regions="brain")
    else:
        ph = t1_mapping_phantom(size, seed=seed)
        field_t, fov = 3.0, _FOV_BRAIN_MM
        pmaps = {"M0": ph["m0"], "T1": ph["t1_ms"]}
        attrs.update(model=t1_model, map_regions="spheres,brain", sphere_t1_ms=ph["sphere_t1_ms"])
        if t1_model == "vfa":
            b1 = smooth_b1(size, seed=seed)
            images = t1_images(ph, "vfa", b1=b1)
            header = {"flip_angle_deg": list(VFA_FLIP_DEG), "tr_ms": VFA_TR_MS, "te_ms": 2.0}
            attrs.update(flip_angles_deg=np.asarray(VFA_FLIP_DEG), tr_ms=VFA_TR_MS)
            pmaps["B1"] = b1
            b1_path = os.path.join(output, "b1_map.npy")
            np.save(b1_path, b1)
            written.append(b1_path)
        else:
            ti = IR_TI_MS if t1_model == "ir" else SR_TS_MS
            images = t1_images(ph, t1_model, ti_ms=ti)
            header = {"ti_ms": list(ti), "tr_ms": IR_TR_MS, "flip_angle_deg": 90.0, "te_ms": 10.0}
            attrs.update(ti_ms=np.asarray(ti))
    maps = coil_sensitivities(coils, (size, size), seed=seed, normalize=True)
    frames = images.shape[0]
    radial = kind.endswith("-radial")
    if radial:
        sim = simulate_radial(images, maps, spokes_per_frame=spokes_per_frame, snr=snr, seed=seed,
                              signal_mask=ph["rois"]["object"])
        writers.write_ismrmrd_radial(raw_path, sim["kspace"], sim["trajectory"], spokes_per_frame=spokes_per_frame,
                                     image_shape=(size, size), noise=sim["noise"], fov_mm=fov,
                                     field_strength_t=field_t, **header)
        attrs.update(spokes_per_frame=int(spokes_per_frame), angle_deg=float(GOLDEN_ANGLE_DEG))
    else:
        center = cartesian_center_lines(size, acceleration)
        sim = simulate_cartesian(images, maps, acceleration=acceleration, center_lines=center, snr=snr,
                                 seed=seed, signal_mask=ph["rois"]["object"])
        header.setdefault("te_ms", 1.5)
        writers.write_ismrmrd_cartesian(raw_path, sim["kspace"], sim["mask"], noise=sim["noise"],
                                        calibration_lines=center, fov_mm=fov, field_strength_t=field_t,
                                        frame_counter="contrast", calibration_frames=[frames - 1], **header)
        attrs.update(acceleration=float(acceleration), center_lines=int(center))
    attrs.update(frames=int(frames), field_strength_t=float(field_t))
    rois = {k: np.broadcast_to(m, (1, frames) + m.shape) for k, m in ph["rois"].items()}
    _write_truth(truth_path, images[None], rois, maps[None], attrs, sim["noise_cov"],
                 parameter_maps={k: np.asarray(v, dtype=np.float32)[None] for k, v in pmaps.items()})
    return written
