"""Numerical cardiac cine and brain T2-mapping phantoms, and multi-coil raw-data simulation.

The phantom is a short-axis cardiac slice inside a chest cross-section: body outline with
subcutaneous fat, soft tissue, two dark lungs, liver (image bottom left), vertebral body
with spinal canal, descending aorta, pericardial fat, the left ventricle (bright blood pool
with two papillary muscles inside an intermediate myocardial ring) and the right-ventricular
crescent. Intensities are bSSFP-like (blood 1.0, fat 0.85, myocardium 0.3, lung 0.03).

Geometry is written in normalised coordinates ``u`` (columns, X) and ``v`` (rows, Y), both
in [-1, 1) across the field of view, so everything scales with the image size. With the
nominal 320 mm field of view one normalised unit is 160 mm: the end-diastolic LV cavity is
54 mm across with a 10 mm wall, the end-systolic one 34 mm with a 15 mm wall.

Cardiac motion. One cycle is sampled by ``frames`` frames at phases ``t / frames``.
End-diastole is frame 0, end-systole is at one third of the cycle, followed by rapid
filling, diastasis and the atrial kick (a smooth periodic contraction curve ``s`` in
[0, 1]). The LV cavity radius shrinks by 38 % at end-systole while the myocardial area
grows by 10 % (through-plane motion of the thicker base into the slice), so the wall
thickens from 0.065 to 0.095 normalised units.

T2 mapping. :func:`t2_mapping_phantom` is an axial brain slice at 3 T (scalp fat, grey
and white matter with a smooth T2 variation, ventricles, three white-matter lesions) with
proton-density and T2 maps (:data:`BRAIN_TISSUES_3T`, literature values) and a smooth
background phase; :func:`t2_echo_images` makes its multi-echo spin-echo images
``M0 exp(-TE / T2) exp(i phase)`` and :func:`simulate_t2_mapping` their undersampled
multi-coil k-space, a different line mask per echo.

Raw data. :func:`coil_sensitivities` gives Biot-Savart loop-coil maps, and
:func:`simulate_cartesian` / :func:`simulate_radial` give multi-coil k-space with
correlated complex Gaussian noise (the same coil covariance in the data and in the
noise-only samples). The radial forward model is sigpy's NUFFT (independent of the
package's torchkbnufft operator); :func:`simulate_to_files` writes ISMRMRD / fastMRI files
with a ground-truth file beside them.

SNR definition (used by all simulators)
---------------------------------------
``snr = mean(|x|) / sigma_comb`` where ``x`` is the noise-free image series ``(T, Y, X)``
and the mean runs over the signal region (all frames; by default the pixels whose
time-mean magnitude exceeds 1 % of its maximum, i.e. the body including the lungs), and
``sigma_comb`` is the noise standard deviation (``sqrt(E|n|^2)`` of the complex noise) of
the optimal SENSE/Roemer combination ``x_hat = S^H Psi^-1 m / (S^H Psi^-1 S)`` of a *fully
sampled* Cartesian acquisition, root-mean-squared over the same region:
``sigma_comb^2 = mean_r 1 / (S(r)^H Psi^-1 S(r))``. Every k-space sample (Cartesian or
radial) carries noise of covariance ``Psi`` across coils; with the orthonormal FFT a
fully sampled acquisition has the same covariance per image pixel. Undersampling does
not change the per-sample noise, so ``snr`` is the image SNR of the fully sampled
acquisition, independent of the acceleration. For the T2-mapping echoes the region is
the head (``rois["object"]``) and the mean runs over all echoes.

Command line: ``python -m data_tools.phantom -o DIR --kind radial --size 64 --frames 8``,
or ``python -m data_tools.phantom -o DIR --kind t2map --size 128 --echoes 8``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from mridip.errors import DependencyError, ShapeError
from mridip.trajectories import GOLDEN_ANGLE_DEG, radial_trajectory, variable_density_lines

__all__ = [
    "cardiac_cine_phantom",
    "contraction_curve",
    "coil_sensitivities",
    "noise_covariance",
    "simulate_radial",
    "simulate_cartesian",
    "cartesian_center_lines",
    "t2_mapping_phantom",
    "t2_echo_images",
    "simulate_t2_mapping",
    "BRAIN_TISSUES_3T",
    "T2_LITERATURE_RANGE_MS",
    "simulate_to_files",
    "main",
]

# --------------------------------------------------------------------------- tissues
# label -> bSSFP-like relative magnitude
_BACKGROUND, _FAT, _TISSUE, _LUNG, _LIVER, _CORTEX, _MARROW, _CSF, _AORTA = range(9)
_PERI_FAT, _RV_WALL, _RV_BLOOD, _LV_MYO, _LV_BLOOD, _PAPILLARY = range(9, 15)
_INTENSITY = np.zeros(16, dtype=np.float32)
_INTENSITY[[_FAT, _TISSUE, _LUNG, _LIVER, _CORTEX, _MARROW, _CSF, _AORTA]] = [
    0.85, 0.20, 0.03, 0.36, 0.06, 0.45, 0.9, 0.95,
]
_INTENSITY[[_PERI_FAT, _RV_WALL, _RV_BLOOD, _LV_MYO, _LV_BLOOD, _PAPILLARY]] = [
    0.75, 0.30, 0.97, 0.30, 1.0, 0.30,
]

#: ROI name -> labels it contains.
_ROIS = {
    "body": tuple(range(1, 15)),
    "heart": (_RV_WALL, _RV_BLOOD, _LV_MYO, _LV_BLOOD, _PAPILLARY),
    "lv_blood": (_LV_BLOOD,),
    "myocardium": (_LV_MYO,),
    "rv_blood": (_RV_BLOOD,),
    "lungs": (_LUNG,),
    "liver": (_LIVER,),
    "fat": (_FAT, _PERI_FAT),
    "spine": (_CORTEX, _MARROW),
}

# body ellipse (centre, semi-axes) in normalised units; the coils are placed around it
_BODY_CENTRE = (0.0, 0.02)
_BODY_AXES = (0.90, 0.68)
_FAT_THICKNESS = 0.06


def _ellipse(u, v, cu, cv, au, av, angle=0.0):
    """Boolean inside-mask of an ellipse centred (cu, cv), semi-axes (au, av), rotated."""
    du, dv = u - cu, v - cv
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        du, dv = c * du + s * dv, -s * du + c * dv
    return (du / au) ** 2 + (dv / av) ** 2 <= 1.0


def contraction_curve(phase) -> np.ndarray:
    """Smooth periodic LV contraction ``s(phase)`` in [0, 1].

    ``s = 0`` at end-diastole (phase 0), ``s = 1`` at end-systole (phase 1/3), then rapid
    filling (to 0.3 by phase 0.55), diastasis and the atrial kick back to 0 at phase 1:
    the shape of a textbook LV volume curve. A shape-preserving (PCHIP) cubic through
    these key points, repeated periodically, so it is continuously differentiable, never
    leaves [0, 1] and has zero slope at end-diastole and end-systole.

    Parameters
    ----------
    phase : float or array
        Cardiac phase in cycles (any real; taken modulo 1).

    Returns
    -------
    numpy.ndarray
        float64, same shape as ``phase``.
    """
    from scipy.interpolate import PchipInterpolator

    knots = np.array([0.0, 0.10, 0.20, 1 / 3, 0.45, 0.55, 0.70, 0.85, 0.93])
    vals = np.array([0.0, 0.28, 0.72, 1.0, 0.72, 0.30, 0.20, 0.15, 0.07])
    # one period either side makes the interpolant periodic (same slopes at 0 and 1)
    curve = PchipInterpolator(
        np.concatenate([knots - 1.0, knots, knots + 1.0]), np.tile(vals, 3)
    )
    return curve(np.mod(np.asarray(phase, dtype=np.float64), 1.0))


def _respiratory_shift(t: int, frames: int) -> float:
    """Superior-inferior-like displacement (normalised units, +v) of the liver at frame t.

    An inspiration drift: a half-cosine ramp from 0 at the first frame to 0.08 (about
    13 mm for a 320 mm FOV, a typical diaphragm excursion) at the last one. Breathing is
    slower than the heart, so over one cardiac cycle it appears as a slow monotonic drift
    on top of the periodic contraction; the heart follows with 70 % of it.
    """
    return 0.08 * 0.5 * (1.0 - math.cos(math.pi * t / max(frames - 1, 1)))


@dataclass
class _Heart:
    cu: float
    cv: float
    r_lv: float
    r_epi: float
    s: float


def _heart_geometry(phase: float, slice_position: float, shift_v: float) -> _Heart:
    s = float(contraction_curve(phase))
    # towards the apex (slice_position -1) the ventricle is smaller, towards the base larger
    scale = 1.0 + 0.15 * slice_position
    r_lv_ed, r_epi_ed = 0.17 * scale, 0.235 * scale
    area_ed = r_epi_ed**2 - r_lv_ed**2  # / pi
    r_lv = r_lv_ed * (1.0 - 0.38 * s)
    # myocardium is nearly incompressible; +10 % area at end-systole models the thicker
    # basal wall moving into the slice, so the wall thickens more than area conservation
    r_epi = math.sqrt(r_lv**2 + area_ed * (1.0 + 0.10 * s))
    # the LV centre moves slightly towards the septum in systole; breathing moves the
    # heart mostly along +Y, a little along +X
    cu = 0.10 + 0.02 * slice_position - 0.012 * s + 0.2 * shift_v
    cv = -0.08 + 0.01 * slice_position + shift_v
    return _Heart(cu, cv, r_lv, r_epi, s)


def _paint_heart(lab, u, v, h: _Heart, slice_position: float) -> None:
    """Paint pericardial fat, RV, LV myocardium, LV blood and papillary muscles in place."""
    # RV: an ellipse left of and above the LV centre minus the LV epicardium -> a crescent
    # wrapping the septum from the anterior (~1 o'clock) to the inferior (~7 o'clock)
    # junction; it scales with the LV and its free wall moves inward in systole
    k = h.r_epi / 0.235
    rv_cu, rv_cv = h.cu - 0.10 * k, h.cv - 0.05 * k
    rv_au, rv_av = 0.28 * k * (1.0 - 0.10 * h.s), 0.26 * k * (1.0 - 0.06 * h.s)
    rv_angle = math.radians(-15.0)
    wall = 0.022
    fat = 0.03
    lab[_ellipse(u, v, h.cu, h.cv, h.r_epi + fat, h.r_epi * 1.03 + fat)] = _PERI_FAT
    lab[_ellipse(u, v, rv_cu, rv_cv, rv_au + wall + fat, rv_av + wall + fat, rv_angle)] = _PERI_FAT
    lab[_ellipse(u, v, rv_cu, rv_cv, rv_au + wall, rv_av + wall, rv_angle)] = _RV_WALL
    lab[_ellipse(u, v, rv_cu, rv_cv, rv_au, rv_av, rv_angle)] = _RV_BLOOD
    lab[_ellipse(u, v, h.cu, h.cv, h.r_epi, h.r_epi * 1.03)] = _LV_MYO
    lab[_ellipse(u, v, h.cu + 0.005, h.cv, h.r_lv, h.r_lv * 1.04)] = _LV_BLOOD
    # anterolateral (~4 o'clock) and posteromedial (~7 o'clock) papillary muscles
    r_pm = 0.032 * (1.0 + 0.35 * h.s)
    for ang in (math.radians(35.0), math.radians(125.0)):
        d = max(h.r_lv - r_pm * 0.9, 0.0)
        pu, pv = h.cu + d * math.cos(ang), h.cv + d * math.sin(ang)
        lab[_ellipse(u, v, pu, pv, r_pm, r_pm) & (lab == _LV_BLOOD)] = _PAPILLARY


def _supersampling(size: int) -> int:
    return max(2, min(4, 512 // max(size, 1)))


def _grid(shape: tuple[int, int], ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised coordinates (v rows, u columns) of the sub-pixel centres, [-1, 1)."""
    ny, nx = shape
    v = (np.arange(ny * ss) + 0.5) / (ny * ss) * 2.0 - 1.0
    u = (np.arange(nx * ss) + 0.5) / (nx * ss) * 2.0 - 1.0
    return np.meshgrid(v, u, indexing="ij")


def _block_mean(a: np.ndarray, ss: int) -> np.ndarray:
    ny, nx = a.shape[0] // ss, a.shape[1] // ss
    return a.reshape(ny, ss, nx, ss).mean(axis=(1, 3))


def _smooth_noise(size: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std smooth random field ``(size, size)``: white noise blurred by a
    Gaussian of ``sigma`` pixels (at least 1)."""
    field = gaussian_filter(rng.standard_normal((size, size)), sigma=max(sigma, 1.0))
    return field / (field.std() + 1e-12)


def _background_phase(size: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Smooth background phase ``(size, size)`` in rad: a random low-order polynomial in
    the normalised coordinates (B0 / receive-phase-like), typically ``1.2 * scale`` rad
    peak-to-peak across the field of view (at most ``3.4 * scale``)."""
    pv, pu = _grid((size, size), 1)
    c = rng.uniform(-1.0, 1.0, size=5)
    phase = c[0] * 0.5 + 0.5 * c[1] * pu + 0.5 * c[2] * pv + 0.3 * c[3] * pu * pv + 0.4 * c[4] * (pu**2 + pv**2)
    return scale * phase


def cardiac_cine_phantom(
    size: int = 128,
    frames: int = 20,
    *,
    respiration: bool = False,
    seed: int = 0,
    slice_position: float = 0.0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Short-axis cardiac cine phantom over one heartbeat.

    Parameters
    ----------
    size : int
        Image matrix N (the images are N x N); geometry scales with it.
    frames : int
        T, frames sampling one cardiac cycle at phases ``t / T``: frame 0 is
        end-diastole, end-systole is at phase 1/3 (frame ``round(T / 3)``).
    respiration : bool
        Add a slow respiratory drift: the liver moves by up to 0.08 normalised units
        (about 13 mm for a 320 mm FOV) along +Y over the cine, the heart by 70 % of that.
    seed : int
        Seed of the smooth texture and of the background phase.
    slice_position : float
        Position of the slice along the long axis, -1 (towards the apex, smaller
        ventricles) .. 0 (mid-ventricular) .. 1 (towards the base); used to make the
        slices of a multi-slice phantom differ.

    Returns
    -------
    images : numpy.ndarray
        complex64 ``(T, Y, X)``, magnitude in [0, ~1] (LV blood about 1), with a smooth
        low-amplitude texture (4 % smoothed noise) and a smooth background phase (a
        low-order polynomial, up to about 1.5 rad across the body).
    rois : dict of str -> numpy.ndarray
        bool ``(T, Y, X)`` masks: ``"body"`` (inside the body outline), ``"heart"`` (LV
        blood, papillary muscles, LV myocardium, RV blood, RV wall), ``"lv_blood"`` (LV
        cavity without papillary muscles), ``"myocardium"`` (LV myocardium including the
        septum), ``"rv_blood"``, ``"lungs"``, ``"liver"``, ``"fat"``, ``"spine"``. A
        pixel belongs to a region when more than half of its sub-pixels do.

    Notes
    -----
    Edges are anti-aliased by drawing on a grid supersampled 2-4 times per axis and
    averaging each pixel's sub-pixels, so the images show partial-volume edges rather than
    a pixel staircase.
    """
    if size < 8:
        raise ShapeError(f"phantom size must be >= 8 pixels, got {size}")
    if frames < 1:
        raise ShapeError(f"phantom frames must be >= 1, got {frames}")
    ss = _supersampling(size)
    v, u = _grid((size, size), ss)

    # static anatomy, painted back to front
    base = np.zeros(v.shape, dtype=np.uint8)
    bu, bv = _BODY_CENTRE
    au, av = _BODY_AXES
    base[_ellipse(u, v, bu, bv, au, av)] = _FAT
    inner = _ellipse(u, v, bu, bv, au - _FAT_THICKNESS, av - _FAT_THICKNESS)
    base[inner] = _TISSUE
    base[_ellipse(u, v, -0.42, -0.03, 0.33, 0.46, math.radians(8.0))] = _LUNG
    base[_ellipse(u, v, 0.45, -0.03, 0.31, 0.44, math.radians(-8.0))] = _LUNG
    overlay = [  # painted after the (moving) liver
        (_ellipse(u, v, 0.0, 0.44, 0.095, 0.085), _CORTEX),
        (_ellipse(u, v, 0.0, 0.44, 0.078, 0.068), _MARROW),
        (_ellipse(u, v, 0.0, 0.565, 0.034, 0.03), _CSF),
        (_ellipse(u, v, 0.15, 0.30, 0.05, 0.05), _AORTA),
    ]

    rng = np.random.default_rng(seed)
    # smooth low-amplitude texture: ~N/40-pixel grains
    texture = 1.0 + 0.04 * _smooth_noise(size, size / 40.0, rng)
    background = np.exp(1j * _background_phase(size, rng))

    images = np.zeros((frames, size, size), dtype=np.complex64)
    rois = {k: np.zeros((frames, size, size), dtype=bool) for k in _ROIS}
    for t in range(frames):
        shift = _respiratory_shift(t, frames) if respiration else 0.0
        lab = base.copy()
        lab[_ellipse(u, v, -0.42, 0.46 + shift, 0.42, 0.22, math.radians(-12.0)) & inner] = _LIVER
        for mask, label in overlay:
            lab[mask] = label
        heart = _heart_geometry(t / frames, slice_position, 0.7 * shift)
        _paint_heart(lab, u, v, heart, slice_position)
        mag = _block_mean(_INTENSITY[lab], ss)
        images[t] = (mag * texture * background).astype(np.complex64)
        for name, labels in _ROIS.items():
            # strictly more than half: single-tissue regions stay disjoint and inside
            # the unions that contain them
            rois[name][t] = _block_mean(np.isin(lab, labels).astype(np.float32), ss) > 0.5
    return images, rois


# --------------------------------------------------------------------------- brain T2
# Axial brain slice for T2 mapping at 3 T. Labels 1..5; 0 is background (air).
_B_SCALP, _B_GM, _B_WM, _B_CSF, _B_LESION = range(1, 6)

#: tissue -> (relative proton density M0, T2 in ms) of the T2-mapping phantom at 3 T.
#: M0 is water content relative to CSF (pure water = 1): WM about 0.69, GM about 0.80
#: (quantitative water-content mapping, e.g. Neeb, Zilles & Shah, NeuroImage 2006);
#: lesions (T2-hyperintense, MS-like) hold more water than WM; the scalp is mostly
#: subcutaneous fat, bright on proton-density-weighted images (0.9 is a relative value,
#: fat protons are not water).
#: T2: WM 69 ms, GM 99 ms at 3 T (Stanisz et al., MRM 2005;54:507-512; in-vivo 3 T
#: measurements, e.g. Wansapura et al., JMRI 1999;9:531-538, are of the same order). CSF: a round 1000 ms; measured
#: CSF T2 at 3 T is longer still and method dependent (Spijkerman et al., MAGMA
#: 2018;31:415-424), but over TE <= 80 ms a CSF T2 of 1 s or 2 s changes the signal by
#: less than 5 %, so nothing here depends on the exact value. Lesions 150 ms (about twice
#: WM, as T2-hyperintense white-matter lesions are). Subcutaneous fat 80 ms, inside the
#: 41-143 ms that multi-echo and single-echo spin-echo sequences give at 3 T (Pai, Li &
#: Majumdar, MRI 2008;26:1215-1220).
BRAIN_TISSUES_3T: dict[str, tuple[float, float]] = {
    "scalp": (0.90, 80.0),
    "gm": (0.80, 99.0),
    "wm": (0.69, 69.0),
    "csf": (1.00, 1000.0),
    "lesion": (0.85, 150.0),
}
#: T2 (ms) range each normal tissue of the phantom stays in: the literature value above
#: +-15 %, about the spread of 3 T values between methods; the phantom's smooth variation
#: (+-7.5 % at most) and WM/GM partial volume stay inside it.
T2_LITERATURE_RANGE_MS: dict[str, tuple[float, float]] = {
    "wm": (58.0, 80.0),
    "gm": (80.0, 115.0),
}
_BRAIN_LABELS = {"scalp": _B_SCALP, "gm": _B_GM, "wm": _B_WM, "csf": _B_CSF, "lesion": _B_LESION}
_BRAIN_ROIS = {
    "brain": (_B_WM, _B_GM, _B_LESION),
    "wm": (_B_WM,),
    "gm": (_B_GM,),
    "lesion": (_B_LESION,),
    "csf": (_B_CSF,),
    "object": (_B_SCALP, _B_GM, _B_WM, _B_CSF, _B_LESION),
}
# lesions (centre u, centre v, radius) in deep white matter, 11-15 mm across at 256 mm FOV
_LESIONS = ((0.27, -0.22, 0.065), (-0.27, 0.10, 0.055), (0.22, 0.37, 0.05))
_T2_VARIATION = 0.03  # relative std of the smooth WM/GM T2 variation, clipped at 2.5 std


def _wavy_ellipse(u, v, cu, cv, au, av, amp, lobes):
    """Inside-mask of an ellipse whose radius is modulated by ``1 + amp sin(lobes theta)``."""
    du, dv = (u - cu) / au, (v - cv) / av
    return np.hypot(du, dv) <= 1.0 + amp * np.sin(lobes * np.arctan2(dv, du))


def t2_mapping_phantom(size: int, *, seed: int = 0) -> dict:
    """Axial brain slice at 3 T with proton-density and T2 maps, for T2 mapping.

    Geometry (normalised coordinates as the cine phantom's, ``v`` rows / anterior at the
    top, ``u`` columns; meant for a 256 mm field of view, one normalised unit = 128 mm):
    a head ellipse of 154 x 189 mm with a 6 mm scalp (fat) ring, a grey-matter cortex
    band around white matter whose outline carries nine gyrus-like lobes, two thalami
    (grey matter), two lateral ventricles (CSF, frontal horns diverging anteriorly) and
    three small white-matter lesions. Tissue values are :data:`BRAIN_TISSUES_3T`.

    Parameters
    ----------
    size : int
        Image matrix N (the maps are N x N, N >= 8); the geometry scales with it.
    seed : int
        Seed of the smooth T2 variation and of the background phase.

    Returns
    -------
    dict
        ``m0`` float32 ``(Y, X)``: relative proton density (max 1, 0 outside the head);
        ``t2_ms`` float32 ``(Y, X)``: T2 in ms, 0 where ``m0`` is 0 (outside the head);
        ``phase`` float32 ``(Y, X)``: smooth background phase in rad (a random low-order
        polynomial, typically 3 rad peak-to-peak across the field of view, at most 8.5);
        ``rois`` dict of str -> bool ``(Y, X)``: ``"brain"`` (WM + GM + lesions),
        ``"wm"``, ``"gm"`` (cortex and thalami), ``"lesion"``, ``"csf"`` (ventricles),
        ``"object"`` (the whole head). A pixel belongs to a region when more than half of
        its sub-pixels do.

    Notes
    -----
    Drawn on a grid supersampled 2-4 times per axis (as :func:`cardiac_cine_phantom`).
    WM and GM T2 carry a smooth seeded variation (3 % std on ~N/8-pixel scales, at most
    +-7.5 %), so a T2 map is not piecewise constant. A pixel is one mono-exponential:
    ``m0`` is the mean sub-pixel M0 and ``1 / t2_ms`` the M0-weighted mean sub-pixel
    relaxation rate, i.e. the decay with the same signal and the same initial slope as
    the sub-pixel mixture; the echo images are exactly ``m0 exp(-TE / t2_ms) exp(i phase)``
    (:func:`t2_echo_images`).
    """
    if size < 8:
        raise ShapeError(f"phantom size must be >= 8 pixels, got {size}")
    ss = _supersampling(size)
    v, u = _grid((size, size), ss)
    lab = np.zeros(v.shape, dtype=np.uint8)
    lab[_ellipse(u, v, 0.0, 0.0, 0.60, 0.74)] = _B_SCALP
    lab[_ellipse(u, v, 0.0, 0.01, 0.55, 0.69)] = _B_GM
    lab[_wavy_ellipse(u, v, 0.0, 0.02, 0.43, 0.56, 0.06, 9)] = _B_WM
    for side in (-1.0, 1.0):
        lab[_ellipse(u, v, side * 0.11, 0.23, 0.08, 0.09)] = _B_GM  # thalamus
        lab[_ellipse(u, v, side * 0.075, -0.10, 0.045, 0.18, side * math.radians(15.0))] = _B_CSF
    for cu, cv, r in _LESIONS:
        lab[_ellipse(u, v, cu, cv, r, 0.85 * r)] = _B_LESION

    m0_lut = np.zeros(len(_BRAIN_LABELS) + 1)
    t2_lut = np.ones(len(_BRAIN_LABELS) + 1)  # background: M0 = 0, T2 is never used
    for name, label in _BRAIN_LABELS.items():
        m0_lut[label], t2_lut[label] = BRAIN_TISSUES_3T[name]
    rng = np.random.default_rng(seed)
    field = np.clip(_smooth_noise(size, size / 8.0, rng), -2.5, 2.5)
    field = np.repeat(np.repeat(field, ss, axis=0), ss, axis=1)  # smooth: no need to interpolate
    m0_sub = m0_lut[lab]
    t2_sub = t2_lut[lab] * np.where(np.isin(lab, (_B_WM, _B_GM)), 1.0 + _T2_VARIATION * field, 1.0)
    m0 = _block_mean(m0_sub, ss)
    r2 = _block_mean(m0_sub / t2_sub, ss)  # M0-weighted relaxation rate (times m0)
    t2 = np.where(m0 > 0, m0 / np.where(m0 > 0, r2, 1.0), 0.0)
    phase = _background_phase(size, rng, scale=2.5)
    rois = {
        name: _block_mean(np.isin(lab, labels).astype(np.float32), ss) > 0.5
        for name, labels in _BRAIN_ROIS.items()
    }
    return {
        "m0": m0.astype(np.float32),
        "t2_ms": t2.astype(np.float32),
        "phase": phase.astype(np.float32),
        "rois": rois,
    }


def t2_echo_images(m0, t2_ms, phase, te_ms) -> np.ndarray:
    """Spin-echo images of a T2 phantom: ``x_e = m0 exp(-te_ms[e] / t2_ms) exp(i phase)``.

    Parameters
    ----------
    m0 : array
        float ``(Y, X)`` proton density.
    t2_ms : array
        float ``(Y, X)`` T2 in ms; where it is 0 the images are 0.
    phase : array
        float ``(Y, X)`` background phase in rad.
    te_ms : sequence of float
        ``(E,)`` echo times in ms, > 0.

    Returns
    -------
    numpy.ndarray
        complex64 ``(E, Y, X)``.
    """
    m0, t2, phase = (np.asarray(a, dtype=np.float64) for a in (m0, t2_ms, phase))
    if m0.ndim != 2 or t2.shape != m0.shape or phase.shape != m0.shape:
        raise ShapeError(
            f"m0, t2_ms and phase must be (Y, X) maps of one shape, got {m0.shape}, "
            f"{t2.shape}, {phase.shape}"
        )
    te = np.asarray(te_ms, dtype=np.float64)
    if te.ndim != 1 or te.size == 0 or not np.all(np.isfinite(te)) or not np.all(te > 0):
        raise ShapeError(f"te_ms must be a 1-D sequence of echo times > 0 ms, got {te_ms!r}")
    decay = np.where(t2 > 0, np.exp(-te[:, None, None] / np.where(t2 > 0, t2, 1.0)), 0.0)
    return (m0 * decay * np.exp(1j * phase)).astype(np.complex64)


# --------------------------------------------------------------------------- coils
def coil_sensitivities(
    coils: int,
    shape: tuple[int, int],
    *,
    seed: int = 0,
    z: float = 0.0,
    normalize: bool = False,
) -> np.ndarray:
    """Receive sensitivities of circular loop coils around the phantom's body (Biot-Savart).

    ``coils`` loops of radius 0.34 normalised units (~55 mm for a 320 mm FOV) face the
    body centre, evenly spaced around an ellipse 0.12 outside the body outline (coil 0
    posterior); when more than 8 coils are asked for, alternate loops sit 0.2 above /
    below the slice (two rows). The field ``B`` of each loop (unit current) is integrated
    with the Biot-Savart law over 96 wire segments at points of the image plane ``z``,
    with a 0.08 conductor radius that keeps it finite next to the wire (outside the body);
    the receive sensitivity is the transverse component ``Bx - i By`` (B0 along z),
    times a per-coil gain in [0.8, 1.2] and a per-coil phase
    (cable length) drawn from ``seed``.

    Parameters
    ----------
    coils : int
        C, number of coils.
    shape : tuple of int
        ``(Y, X)`` image size; the field of view spans the normalised [-1, 1) of the phantom.
    seed : int
        Seed of gains and phase offsets.
    z : float
        Through-plane position of the slice in normalised units (multi-slice data).
    normalize : bool
        Divide by the root-sum-of-squares so that ``sum_c |S_c|^2 = 1`` at every pixel.
        The simulated files use normalised maps: then the ground-truth image is exactly
        what a SENSE reconstruction with normalised maps (ESPIRiT, Walsh, the package's
        convention) estimates, with no receive-field shading in the comparison.

    Returns
    -------
    numpy.ndarray
        complex64 ``(C, Y, X)``. Unless ``normalize``, NOT normalised to a sum of squares of 1 (as real coils are
        not): one common factor scales the maps so that the largest magnitude inside the
        body is 1; the root-sum-of-squares then falls from ~1 near the surface to about
        0.14-0.2 in the body centre (the heart), and the phase varies smoothly across
        the field of view.
    """
    if coils < 1:
        raise ShapeError(f"coils must be >= 1, got {coils}")
    ny, nx = int(shape[0]), int(shape[1])
    v, u = _grid((ny, nx), 1)
    pts = np.stack([u.ravel(), v.ravel(), np.full(u.size, float(z))], axis=1)  # (P, 3)
    rng = np.random.default_rng(seed)
    gains = rng.uniform(0.8, 1.2, size=coils)
    offsets = rng.uniform(0.0, 2.0 * math.pi, size=coils)
    bu, bv = _BODY_CENTRE
    au, av = _BODY_AXES
    radius, gap, wire = 0.34, 0.12, 0.08
    alpha = np.linspace(0.0, 2.0 * math.pi, 96, endpoint=False)
    dalpha = 2.0 * math.pi / alpha.size
    maps = np.zeros((coils, ny * nx), dtype=np.complex128)
    for c in range(coils):
        theta = 2.0 * math.pi * c / coils + math.pi / 2.0  # coil 0 posterior (below)
        centre = np.array([bu + (au + gap) * math.cos(theta), bv + (av + gap) * math.sin(theta), 0.0])
        if coils > 8:
            centre[2] = 0.2 if c % 2 else -0.2
        # outward normal of the ellipse at that point, in the image plane
        normal = np.array([math.cos(theta) / (au + gap), math.sin(theta) / (av + gap), 0.0])
        normal /= np.linalg.norm(normal)
        e1 = np.array([0.0, 0.0, 1.0])
        e2 = np.cross(normal, e1)
        wire_pts = centre + radius * (np.cos(alpha)[:, None] * e1 + np.sin(alpha)[:, None] * e2)
        dl = radius * dalpha * (-np.sin(alpha)[:, None] * e1 + np.cos(alpha)[:, None] * e2)
        b = np.zeros((pts.shape[0], 3))
        for p, d in zip(wire_pts, dl):
            r = pts - p
            dist2 = np.sum(r * r, axis=1) + wire**2
            b += np.cross(d, r) / (dist2**1.5)[:, None]
        maps[c] = gains[c] * np.exp(1j * offsets[c]) * (b[:, 0] - 1j * b[:, 1])
    maps = maps.reshape(coils, ny, nx)
    body = _ellipse(u, v, bu, bv, au, av)
    peak = np.abs(maps[:, body]).max() if body.any() else np.abs(maps).max()
    maps = maps / peak
    if normalize:
        maps = maps / np.sqrt((np.abs(maps) ** 2).sum(axis=0, keepdims=True))
    return maps.astype(np.complex64)


# --------------------------------------------------------------------------- noise
def noise_covariance(coils: int, *, seed: int = 0) -> np.ndarray:
    """A realistic receiver noise covariance ``Psi`` of unit mean variance.

    Variances differ across coils (uniform in [0.7, 1.4], then rescaled to mean 1);
    correlation coefficients fall with the distance between coils around the array:
    magnitude about 0.25 for neighbours, 0.11 next, 0.05 and 0.02 further (with +-0.03
    jitter), and a random phase per coil pair (from per-coil phases, which keeps ``Psi``
    Hermitian positive definite).

    Returns
    -------
    numpy.ndarray
        complex128 ``(C, C)`` Hermitian positive definite.
    """
    rng = np.random.default_rng(seed)
    var = rng.uniform(0.7, 1.4, size=coils)
    var /= var.mean()
    idx = np.arange(coils)
    d = np.abs(idx[:, None] - idx[None, :])
    d = np.minimum(d, coils - d)  # around the ring
    rho = np.where(d > 0, 0.25 * np.exp(-(d - 1) / 1.2), 1.0)
    jitter = rng.uniform(-0.03, 0.03, size=(coils, coils))
    jitter = np.triu(jitter, 1)
    rho = rho + jitter + jitter.T
    rho = np.clip(rho, 0.0, 1.0)
    # a small per-pair phase: phase differences of per-coil phases keep it PSD
    ph = np.exp(1j * rng.uniform(-0.6, 0.6, size=coils))
    corr = rho * np.outer(ph, ph.conj())
    w = np.linalg.eigvalsh(corr)
    if w.min() < 0.05:  # shrink the off-diagonal part until comfortably positive definite
        lam = (1.0 - 0.05) / (1.0 - w.min())
        corr = lam * corr + (1.0 - lam) * np.eye(coils)
    sd = np.sqrt(var)
    return corr * np.outer(sd, sd)


def _unit_covariance(noise_cov, coils: int, seq: np.random.SeedSequence) -> np.ndarray:
    if noise_cov is None:
        return noise_covariance(coils, seed=int(seq.generate_state(1)[0]))
    cov = np.asarray(noise_cov, dtype=np.complex128)
    if cov.shape != (coils, coils) or not np.allclose(cov, cov.conj().T):
        raise ShapeError(
            f"noise_cov must be a Hermitian ({coils}, {coils}) matrix for {coils} coils, "
            f"got shape {cov.shape}"
        )
    if np.linalg.eigvalsh(cov).min() <= 0:
        raise ShapeError("noise_cov must be positive definite (all eigenvalues > 0)")
    return cov


def _draw_noise(cov: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Complex Gaussian noise ``(C, *shape)`` with covariance ``E[n n^H] = cov`` across coils."""
    coils = cov.shape[0]
    n = int(np.prod(shape))
    z = (rng.standard_normal((coils, n)) + 1j * rng.standard_normal((coils, n))) / math.sqrt(2.0)
    chol = np.linalg.cholesky(cov)
    return (chol @ z).reshape((coils, *shape))


def _signal_region(images: np.ndarray, signal_mask) -> np.ndarray:
    if signal_mask is not None:
        m = np.asarray(signal_mask, dtype=bool)
        if m.ndim == 3:
            m = m.any(axis=0)
        if m.shape != images.shape[-2:] or not m.any():
            raise ShapeError(
                f"signal_mask must be a non-empty (Y, X) or (T, Y, X) mask matching the "
                f"images {images.shape}, got shape {np.shape(signal_mask)}"
            )
        return m
    mean_mag = np.abs(images).mean(axis=0)
    return mean_mag > 0.01 * mean_mag.max()


def _noise_scale(images, maps, cov_unit, snr, signal_mask) -> float:
    """Noise variance factor ``sigma^2`` so that ``Psi = sigma^2 cov_unit`` gives ``snr``."""
    if snr is None or not np.isfinite(snr):
        return 0.0
    if snr <= 0:
        raise ShapeError(f"snr must be > 0 (or inf for noise-free data), got {snr}")
    region = _signal_region(images, signal_mask)
    s = maps[:, region].astype(np.complex128)  # (C, P)
    inv = np.linalg.inv(cov_unit)
    # g(r) = 1 / (S^H Psi0^-1 S): noise variance of the optimal combination per unit sigma^2
    g = 1.0 / np.real(np.einsum("cp,cd,dp->p", s.conj(), inv, s))
    mean_mag = np.abs(images[:, region]).mean()
    return float((mean_mag / snr) ** 2 / g.mean())


def _check_inputs(images, maps) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    maps = np.asarray(maps)
    if images.ndim != 3:
        raise ShapeError(f"images must be (T, Y, X), got shape {images.shape}")
    if maps.ndim != 3 or maps.shape[1:] != images.shape[1:]:
        raise ShapeError(
            f"coil maps must be (C, Y, X) with (Y, X) = {images.shape[1:]} of the images, "
            f"got shape {maps.shape}"
        )
    return images.astype(np.complex64), maps.astype(np.complex64)


def _fft2c(x: np.ndarray) -> np.ndarray:
    """The package's centred orthonormal FFT (mridip.fft.fft2c) on a numpy array."""
    import torch

    from mridip.fft import fft2c

    return fft2c(torch.from_numpy(np.ascontiguousarray(x, dtype=np.complex64))).numpy()


def cartesian_center_lines(size: int, acceleration: float) -> int:
    """Fully sampled central lines of the simulated Cartesian cine: ``min(8, n // 2)``.

    ``n = round(size / acceleration)`` lines are sampled per frame; at most half of them
    are the fixed centre, so every frame also samples lines outside it (8 centre lines
    with 8 lines per frame, e.g. 64 x 64 at R = 8, would leave no line beyond the centre
    in any frame: a low-resolution acquisition, not an accelerated one). At least 1.
    """
    n_lines = max(1, int(round(size / acceleration)))
    return max(1, min(8, n_lines // 2))


def simulate_cartesian(
    images,
    maps,
    *,
    acceleration: float = 8.0,
    center_lines: int = 8,
    snr: float = 30.0,
    noise_samples: int = 4096,
    seed: int = 0,
    signal_mask=None,
    noise_cov=None,
) -> dict:
    """Undersampled multi-coil Cartesian cine k-space of an image series.

    ``kspace[t, c] = mask[t] * (F(maps[c] * images[t]) + n[t, c])`` with ``F`` the centred
    orthonormal 2-D FFT (k-space centre at ``(Ky // 2, Kx // 2)``) and ``n`` complex
    Gaussian noise of coil covariance ``noise_cov`` (see the module docstring for ``snr``).

    Parameters
    ----------
    images : array
        complex ``(T, Y, X)``.
    maps : array
        complex ``(C, Y, X)`` coil sensitivities.
    acceleration : float
        R per frame; phase-encode (Ky) lines from
        :func:`mridip.trajectories.variable_density_lines` (seeded with ``seed``).
    center_lines : int
        Fully sampled central lines per frame.
    snr : float
        Image SNR (module docstring); ``inf`` gives noise-free data.
    noise_samples : int
        N, noise-only samples per coil (a noise pre-scan).
    seed : int
        Seed of the mask, the covariance and the noise.
    signal_mask : array or None
        ``(Y, X)`` region for the SNR definition (default: ``|x|`` time-mean > 1 % of max).
    noise_cov : array or None
        ``(C, C)`` Hermitian positive definite shape of the coil noise covariance (its
        scale is set by ``snr``); default :func:`noise_covariance` drawn from ``seed``.
        Pass the same one to simulate several slices with one receiver.

    Returns
    -------
    dict
        ``kspace`` complex64 ``(T, C, Ky, Kx)`` (zero outside the mask), ``mask`` bool
        ``(T, Ky, Kx)``, ``noise`` complex64 ``(C, N)``, ``noise_cov`` complex128
        ``(C, C)`` (``None`` both when ``snr`` is inf), ``sigma2`` (float, noise variance
        scale of ``noise_cov``).
    """
    images, maps = _check_inputs(images, maps)
    frames, ny, nx = images.shape
    coils = maps.shape[0]
    if not acceleration >= 1:
        raise ShapeError(f"acceleration must be >= 1 (1 = fully sampled), got {acceleration}")
    mask = variable_density_lines(frames, ny, nx, acceleration, center_lines, seed=seed).numpy()
    ss = np.random.SeedSequence(seed).spawn(2)
    cov_unit = _unit_covariance(noise_cov, coils, ss[0])
    sigma2 = _noise_scale(images, maps, cov_unit, snr, signal_mask)
    kspace = _fft2c(maps[None] * images[:, None])  # (T, C, Ky, Kx)
    noise = cov = None
    if sigma2 > 0:
        cov = sigma2 * cov_unit
        rng = np.random.default_rng(ss[1])
        n = _draw_noise(cov, (frames, ny, nx), rng)  # (C, T, Ky, Kx)
        kspace = kspace + np.moveaxis(n, 0, 1)
        noise = _draw_noise(cov, (noise_samples,), rng).astype(np.complex64)
    kspace = (kspace * mask[:, None]).astype(np.complex64)
    return {"kspace": kspace, "mask": mask, "noise": noise, "noise_cov": cov, "sigma2": sigma2}


def simulate_t2_mapping(
    phantom: dict,
    maps,
    te_ms,
    *,
    acceleration: float = 4.0,
    center_lines: int | None = None,
    snr: float = 30.0,
    noise_samples: int = 4096,
    seed: int = 0,
    noise_cov=None,
) -> dict:
    """Undersampled multi-coil multi-echo spin-echo k-space of a T2 phantom.

    The echo images :func:`t2_echo_images` of ``phantom`` go through
    :func:`simulate_cartesian` with the echoes as frames: each echo gets its own
    variable-density random line mask around a fully sampled centre (echoes complement
    each other, as in accelerated model-based T2 mapping), and every sample carries
    complex Gaussian noise of one coil covariance.

    Parameters
    ----------
    phantom : dict
        :func:`t2_mapping_phantom` output (``m0``, ``t2_ms``, ``phase``, ``rois``).
    maps : array
        complex ``(C, Y, X)`` coil sensitivities.
    te_ms : sequence of float
        ``(E,)`` echo times in ms.
    acceleration : float
        R per echo.
    center_lines : int or None
        Fully sampled central lines per echo (default :func:`cartesian_center_lines`).
    snr : float
        Image SNR as defined in the module docstring: the mean echo magnitude over all
        echoes inside ``rois["object"]`` (the head) over the noise std of the combined
        fully sampled image; ``inf`` gives noise-free data.
    noise_samples, seed, noise_cov
        As in :func:`simulate_cartesian` (``seed`` draws the masks, the covariance and
        the noise).

    Returns
    -------
    dict
        :func:`simulate_cartesian`'s ``kspace`` complex64 ``(E, C, Ky, Kx)``, ``mask``
        bool ``(E, Ky, Kx)``, ``noise`` complex64 ``(C, N)``, ``noise_cov`` complex128
        ``(C, C)`` (``None`` both when ``snr`` is inf), ``sigma2``; plus ``images``
        complex64 ``(E, Y, X)`` (the noise-free echo images), ``te_ms`` float64 ``(E,)``
        and ``center_lines`` (int).
    """
    images = t2_echo_images(phantom["m0"], phantom["t2_ms"], phantom["phase"], te_ms)
    if center_lines is None:
        center_lines = cartesian_center_lines(images.shape[-2], acceleration)
    sim = simulate_cartesian(
        images, maps, acceleration=acceleration, center_lines=center_lines, snr=snr,
        noise_samples=noise_samples, seed=seed, signal_mask=phantom["rois"]["object"],
        noise_cov=noise_cov,
    )
    sim.update(images=images, te_ms=np.asarray(te_ms, dtype=np.float64), center_lines=int(center_lines))
    return sim


def _sigpy():
    try:
        import sigpy
    except ImportError as exc:  # pragma: no cover - sigpy is a declared dependency
        raise DependencyError(
            "the radial simulation needs sigpy: pip install sigpy"
        ) from exc
    return sigpy


def simulate_radial(
    images,
    maps,
    *,
    spokes_per_frame: int = 13,
    samples: int | None = None,
    angle_deg: float = GOLDEN_ANGLE_DEG,
    snr: float = 30.0,
    noise_samples: int = 4096,
    seed: int = 0,
    signal_mask=None,
    noise_cov=None,
) -> dict:
    """Multi-coil golden-angle radial cine k-space of an image series (sigpy NUFFT).

    Frame t holds spokes ``t * spokes_per_frame ... (t + 1) * spokes_per_frame - 1`` of
    one continuous golden-angle sequence (:func:`mridip.trajectories.radial_trajectory`).
    ``kspace[t, c, k] = sum_r maps[c, r] images[t, r] exp(-i k_t,k . r) / sqrt(Y X) + n``:
    on grid points this is exactly the centred orthonormal FFT of the coil image.

    sigpy convention (checked against ``fftshift(fft2(ifftshift(x), norm="ortho"))`` on
    an 8 x 8 image, relative error 3e-6 with the settings used here): ``sigpy.nufft``
    takes coordinates in pixels, i.e. cycles/pixel times N, whose last axis is ordered
    like the image's last axes (``coord[..., 0]`` = ky along Y, ``coord[..., 1]`` = kx
    along X), uses the ``exp(-i ...)`` sign and the orthonormal scaling with the centre
    at ``N // 2``. So ``coord = trajectory / (2 pi) * (Y, X)`` per component. It runs with
    twofold grid oversampling and a width-6 Kaiser-Bessel kernel (default 1.25 / 4 is
    only accurate to ~5e-3).

    Parameters
    ----------
    images : array
        complex ``(T, Y, X)``.
    maps : array
        complex ``(C, Y, X)``.
    spokes_per_frame : int
        Spokes per frame.
    samples : int or None
        Readout samples per spoke (default ``2 * max(Y, X)``: twofold readout oversampling).
    angle_deg : float
        Angle increment between consecutive spokes (golden angle by default).
    snr, noise_samples, seed, signal_mask, noise_cov
        As in :func:`simulate_cartesian` (the same per-sample noise model).

    Returns
    -------
    dict
        ``kspace`` complex64 ``(T, C, K)``, K = spokes_per_frame * samples;
        ``trajectory`` float32 ``(T, 2, K)`` radians/voxel in [-pi, pi), (ky, kx);
        ``noise`` complex64 ``(C, N)`` and ``noise_cov`` complex128 ``(C, C)`` (``None``
        when ``snr`` is inf); ``sigma2``.
    """
    images, maps = _check_inputs(images, maps)
    frames, ny, nx = images.shape
    coils = maps.shape[0]
    if spokes_per_frame < 1:
        raise ShapeError(f"spokes_per_frame must be >= 1, got {spokes_per_frame}")
    samples = 2 * max(ny, nx) if samples is None else int(samples)
    traj = radial_trajectory(frames, spokes_per_frame, samples, angle_deg).numpy()  # (T, 2, K)
    sp = _sigpy()
    scale = np.array([ny, nx], dtype=np.float64) / (2.0 * math.pi)
    K = traj.shape[-1]
    kspace = np.zeros((frames, coils, K), dtype=np.complex128)
    for t in range(frames):
        coord = (traj[t].T.astype(np.float64) * scale).astype(np.float32)  # (K, 2) pixels
        kspace[t] = sp.nufft(maps * images[t][None], coord, oversamp=2.0, width=6)
    ss = np.random.SeedSequence(seed).spawn(2)
    cov_unit = _unit_covariance(noise_cov, coils, ss[0])
    sigma2 = _noise_scale(images, maps, cov_unit, snr, signal_mask)
    noise = cov = None
    if sigma2 > 0:
        cov = sigma2 * cov_unit
        rng = np.random.default_rng(ss[1])
        kspace = kspace + np.moveaxis(_draw_noise(cov, (frames, K), rng), 0, 1)
        noise = _draw_noise(cov, (noise_samples,), rng).astype(np.complex64)
    return {
        "kspace": kspace.astype(np.complex64),
        "trajectory": traj.astype(np.float32),
        "noise": noise,
        "noise_cov": cov,
        "sigma2": sigma2,
    }


# --------------------------------------------------------------------------- files
_FILE_NAMES = {
    "radial": "radial_cine.h5",
    "cartesian": "cartesian_cine.h5",
    "fastmri": "fastmri_multislice.h5",
    "t2map": "t2_mapping.h5",
    "grappa": "grappa.h5",
    # T1 mapping and radial mapping scans: data_tools.t1_phantom.simulate_t1_to_files
    "t1map": "t1_mapping.h5",
    "t1map-radial": "t1_mapping_radial.h5",
    "molli": "molli.h5",
    "t2map-radial": "t2_mapping_radial.h5",
    # the textured, smoothly warped cine of data_tools.anatomical (issue 22)
    "anatomical": "anatomical_radial.h5",
    "anatomical-cartesian": "anatomical_cartesian.h5",
}
# a brain field of view (one normalised unit = 128 mm) and the scanner of the T2 phantom
_T2MAP_FOV_MM = (256.0, 256.0, 5.0)
_T2MAP_FIELD_T = 3.0
_T2MAP_TR_MS = 3000.0  # long TR: a multi-echo spin echo for T2 mapping, little T1 weighting


def simulate_grappa_export(
    path: str | os.PathLike,
    *,
    shape: tuple[int, int] = (144, 192),
    coils: int = 14,
    acceleration: int = 3,
    acs_lines: int = 48,
    phase_resolution: float = 106 / 144,
    echo_asymmetry: int = 0,
    snr: float = 40.0,
    seed: int = 0,
) -> dict:
    """A brain slice written as a Siemens GRAPPA export (:func:`~data_tools.writers.write_ismrmrd_grappa_export`).

    The image is the T2 phantom's first spin echo (TE 10 ms) of size ``min(shape)``, centred
    in a ``shape`` = (Y, X) field of view (the head inside the FOV), under Biot-Savart loop
    coils; k-space is fully
    sampled, then written with an R-fold imaging pattern, ``acs_lines`` reference lines,
    ``round(phase_resolution * Y)`` measured lines with an asymmetric centre (the centre
    line two lines past the middle of the measured ones, as partial phase resolution on a
    scanner gives), 2x readout oversampling and a noise scan at twice the dwell time.
    Complex Gaussian noise with the coils' correlation is added to every sample (the
    noise scan's samples have the same covariance scaled by the dwell ratio).

    Returns
    -------
    dict
        ``image`` complex64 ``(Y, X)`` truth, ``maps`` complex64 ``(C, Y, X)``,
        ``kspace`` complex64 ``(C, Y, X)`` noisy fully sampled k-space at recon
        resolution, ``lines`` (rows of the matrix that were measured), ``path``.
    """
    from data_tools.writers import write_ismrmrd_grappa_export

    Y, X = (int(v) for v in shape)
    n = min(Y, X)
    ph = t2_mapping_phantom(n, seed=seed)
    small = t2_echo_images(ph["m0"], ph["t2_ms"], ph["phase"], [10.0])[0]
    img = np.zeros((Y, X), dtype=np.complex64)  # the head inside the FOV, as a scanner plans it
    y0, x0 = (Y - n) // 2, (X - n) // 2
    img[y0 : y0 + n, x0 : x0 + n] = small
    maps = coil_sensitivities(coils, (Y, X), seed=seed, normalize=True)
    images, maps = _check_inputs(img[None], maps)
    rng = np.random.default_rng(seed)
    cov = noise_covariance(coils, seed=seed)
    sigma2 = _noise_scale(images, maps, cov, snr, None)
    k = _fft2c(maps * images[0][None])  # (C, Y, X)
    if sigma2 > 0:
        k = k + math.sqrt(sigma2) * _draw_noise(cov, (Y, X), rng)
    noise = math.sqrt(max(sigma2, 1e-12) * 2.0) * _draw_noise(cov, (4 * 128,), rng)  # 2x dwell: 2x variance
    n_lines = int(round(phase_resolution * Y))
    center = n_lines // 2 + 2 if n_lines < Y else n_lines // 2
    center = min(center, Y // 2)
    write_ismrmrd_grappa_export(
        path, k.astype(np.complex64), acceleration=acceleration, acs_lines=acs_lines,
        lines_acquired=n_lines, center_line=center, echo_asymmetry=echo_asymmetry,
        noise=noise.astype(np.complex64), noise_samples=128,
    )
    first = Y // 2 - center
    return {"image": images[0], "maps": maps, "kspace": k.astype(np.complex64),
            "lines": np.arange(first, first + n_lines), "path": os.fspath(path)}


def _fastmri_column_mask(nx: int, acceleration: float, rng: np.random.Generator) -> np.ndarray:
    """fastMRI-style random column mask: a fully sampled centre plus random columns."""
    center_fraction = 0.08 if acceleration <= 4 else 0.04
    n_center = max(2, int(round(nx * center_fraction)))
    n_total = max(n_center, int(round(nx / acceleration)))
    mask = np.zeros(nx, dtype=bool)
    c0 = nx // 2 - n_center // 2
    mask[c0 : c0 + n_center] = True
    rest = np.flatnonzero(~mask)
    mask[rng.choice(rest, size=n_total - n_center, replace=False)] = True
    return mask


def _write_truth(path: str, images, rois, maps, attrs: dict, noise_cov, parameter_maps=None) -> None:
    """Ground-truth file; ``parameter_maps`` (name -> float ``(S, Y, X)``) go to
    ``parameter_maps/<name>`` as float32, as in the reconstruction output files."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=np.asarray(images, dtype=np.complex64), compression="gzip")
        f.create_dataset("coil_maps", data=np.asarray(maps, dtype=np.complex64), compression="gzip")
        grp = f.create_group("roi")
        for name, m in rois.items():
            grp.create_dataset(name, data=np.asarray(m, dtype=bool), compression="gzip")
        if noise_cov is not None:
            f.create_dataset("noise_cov", data=np.asarray(noise_cov, dtype=np.complex64))
        if parameter_maps:
            grp = f.create_group("parameter_maps")
            for name, m in parameter_maps.items():
                grp.create_dataset(name, data=np.asarray(m, dtype=np.float32), compression="gzip")
        for k, val in attrs.items():
            f.attrs[k] = val


def simulate_to_files(
    output: str,
    *,
    kind: str = "radial",
    size: int = 128,
    frames: int = 20,
    coils: int = 8,
    spokes_per_frame: int = 13,
    acceleration: float = 8.0,
    snr: float = 30.0,
    slices: int = 3,
    respiration: bool = False,
    seed: int = 0,
    echoes: int = 8,
    echo_spacing_ms: float = 10.0,
    t1_model: str = "ir",
) -> list[str]:
    """Simulate a phantom and write raw data plus ground truth files into ``output``.

    - ``kind="t1map"``, ``"t1map-radial"``, ``"molli"``, ``"t2map-radial"``: T1 mapping
      (``t1_model`` ``ir`` / ``sr`` / ``vfa``) of the NIST-like phantom, Cartesian or radial,
      MOLLI of a short-axis slice, radial multi-echo T2: see
      :func:`data_tools.t1_phantom.simulate_t1_to_files` (``frames``, ``slices`` and
      ``respiration`` do not apply).

    - ``kind="radial"``: ``radial_cine.h5`` (ISMRMRD, one acquisition per golden-angle
      spoke, trajectory in cycles/pixel, noise scans first).
    - ``kind="cartesian"``: ``cartesian_cine.h5`` (ISMRMRD, variable-density lines per
      frame with ``acceleration``, :func:`cartesian_center_lines` central lines (8 at the
      benchmark's 128 x 128, R = 8), readout oversampling 2 in the file).
    - ``kind="anatomical"`` / ``"anatomical-cartesian"``: ``anatomical_radial.h5`` /
      ``anatomical_cartesian.h5``, as ``radial`` / ``cartesian`` but of the realistic
      phantom :func:`data_tools.anatomical.anatomical_cine` (real-image texture, smooth
      cardiac displacement field); the truth file also holds ``motion/displacement``
      float32 ``(1, T, 2, Y, X)`` (pixels, pull convention, component 0 = y),
      ``motion/contraction`` ``(T,)`` and the attribute ``texture`` (``"sigpy-brain"`` or
      ``"synthetic"``).
    - ``kind="fastmri"``: ``fastmri_multislice.h5`` (fastMRI layout ``(S, C, Ky, Kx)``),
      a static multi-slice phantom: end-diastolic frames of ``slices`` slices from apex-ward
      to base-ward (the ventricles grow), coil maps evaluated at each slice's position;
      with ``acceleration > 1`` a fastMRI-style random column mask (4 % / 8 % centre) is
      applied and a ``mask`` dataset written; ``reconstruction_rss`` is the root-sum-of-
      squares of the fully sampled noisy coil images (as in the fastMRI data set).
    - ``kind="t2map"``: ``t2_mapping.h5`` (ISMRMRD, 3 T, 256 mm FOV), a multi-echo spin
      echo of the brain phantom :func:`t2_mapping_phantom`: ``echoes`` echoes at
      ``TE = echo_spacing_ms * (1, ..., echoes)`` written as frames on ``idx.contrast``
      with the TE list in the header, a different variable-density line mask per echo
      with ``acceleration`` and :func:`cartesian_center_lines` embedded calibration
      lines, noise scans first, readout oversampling 2 in the file
      (:func:`simulate_t2_mapping`). ``frames``, ``spokes_per_frame``, ``slices`` and
      ``respiration`` do not apply.

    - ``"grappa"``: one brain slice (Y = 3 size / 4, X = size) written as a Siemens GRAPPA
      export (:func:`simulate_grappa_export`): R = ``acceleration`` rounded, Y / 3
      reference lines flagged 20 / 21, 74 % phase resolution with an asymmetric centre,
      2x readout oversampling, a noise scan at twice the dwell time.

    Beside each raw file ``<name>_truth.h5`` holds ``image`` complex64 ``(S, T, Y, X)``,
    ``roi/<name>`` bool ``(S, T, Y, X)``, ``coil_maps`` complex64 ``(S, C, Y, X)``,
    ``noise_cov`` complex64 ``(C, C)`` and attributes (kind, snr, seed, size, frames,
    coils, ...). ``S = 1`` for the cine kinds and t2map, ``T = 1`` for fastMRI. For
    t2map, ``T = E`` echoes, ``image`` holds the noise-free echo images, the static
    rois (:func:`t2_mapping_phantom`) are repeated over the echoes, and the file also
    holds ``parameter_maps/M0`` and ``parameter_maps/T2`` float32 ``(1, Y, X)`` (T2 in
    ms, 0 outside the head) and the attributes ``te_ms`` (float64 ``(E,)``), ``echoes``,
    ``echo_spacing_ms``, ``acceleration``, ``center_lines``, ``field_strength_t``.

    Returns
    -------
    list of str
        The written paths, raw file first, truth file second.
    """
    if kind not in _FILE_NAMES:
        raise ShapeError(f"kind must be one of {sorted(_FILE_NAMES)}, got {kind!r}")
    if kind in ("t1map", "t1map-radial", "molli", "t2map-radial"):
        from data_tools.t1_phantom import simulate_t1_to_files

        return simulate_t1_to_files(output, kind=kind, size=size, coils=coils, acceleration=acceleration,
                                    spokes_per_frame=spokes_per_frame, snr=snr, seed=seed, t1_model=t1_model,
                                    echoes=echoes, echo_spacing_ms=echo_spacing_ms)
    try:
        from data_tools import writers
    except ImportError as exc:
        raise DependencyError(
            f"data_tools.writers could not be imported ({exc}); the raw file writers "
            "need the ismrmrd and h5py packages: pip install ismrmrd h5py"
        ) from exc
    os.makedirs(output, exist_ok=True)
    raw_path = os.path.join(output, _FILE_NAMES[kind])
    truth_path = raw_path[: -len(".h5")] + "_truth.h5"
    attrs = {
        "kind": kind, "snr": float(snr), "seed": int(seed), "size": int(size),
        "coils": int(coils), "respiration": bool(respiration),
        "generator": "data_tools.phantom.simulate_to_files",
    }

    if kind == "grappa":
        shape = (max(8, (3 * size) // 4), size)  # 144 x 192 at size 192, as issue 17's export
        R = max(1, int(round(acceleration)))
        sim = simulate_grappa_export(raw_path, shape=shape, coils=coils, acceleration=R,
                                     acs_lines=max(8, shape[0] // 3), snr=snr, seed=seed)
        attrs.update(acceleration=float(R), acs_lines=max(8, shape[0] // 3))
        region = (np.abs(sim["image"]) > 0)[None, None]
        _write_truth(truth_path, sim["image"][None, None], {"head": region}, sim["maps"][None], attrs,
                     noise_covariance(coils, seed=seed))
        return [raw_path, truth_path]

    if kind == "t2map":
        if echoes < 2:
            raise ShapeError(f"a T2 map needs at least 2 echoes, got echoes={echoes}")
        if not echo_spacing_ms > 0:
            raise ShapeError(f"echo_spacing_ms must be > 0, got {echo_spacing_ms}")
        te = float(echo_spacing_ms) * np.arange(1, int(echoes) + 1, dtype=np.float64)
        phantom = t2_mapping_phantom(size, seed=seed)
        maps = coil_sensitivities(coils, (size, size), seed=seed, normalize=True)
        center = cartesian_center_lines(size, acceleration)
        sim = simulate_t2_mapping(
            phantom, maps, te, acceleration=acceleration, center_lines=center, snr=snr, seed=seed
        )
        # the fully sampled centre doubles as embedded parallel-imaging calibration
        writers.write_ismrmrd_cartesian(
            raw_path, sim["kspace"], sim["mask"], noise=sim["noise"], calibration_lines=center,
            fov_mm=_T2MAP_FOV_MM, field_strength_t=_T2MAP_FIELD_T, te_ms=te.tolist(),
            tr_ms=_T2MAP_TR_MS, flip_angle_deg=90.0, frame_counter="contrast",
        )
        del attrs["respiration"]
        attrs.update(
            frames=int(echoes), echoes=int(echoes), te_ms=te,
            echo_spacing_ms=float(echo_spacing_ms), acceleration=float(acceleration),
            center_lines=center, field_strength_t=_T2MAP_FIELD_T,
        )
        rois = {k: np.broadcast_to(m, (1, len(te)) + m.shape) for k, m in phantom["rois"].items()}
        _write_truth(
            truth_path, sim["images"][None], rois, maps[None], attrs, sim["noise_cov"],
            parameter_maps={"M0": phantom["m0"][None], "T2": phantom["t2_ms"][None]},
        )
        return [raw_path, truth_path]

    if kind in ("radial", "cartesian", "anatomical", "anatomical-cartesian"):
        anatomy = None
        if kind.startswith("anatomical"):
            from data_tools.anatomical import anatomical_cine

            anatomy = anatomical_cine(size, frames, respiration=respiration, seed=seed)
            images, rois = anatomy["images"], anatomy["rois"]
            attrs["texture"] = anatomy["texture"]
        else:
            images, rois = cardiac_cine_phantom(size, frames, respiration=respiration, seed=seed)
        maps = coil_sensitivities(coils, (size, size), seed=seed, normalize=True)
        attrs["frames"] = int(frames)
        if kind in ("radial", "anatomical"):
            sim = simulate_radial(images, maps, spokes_per_frame=spokes_per_frame, snr=snr, seed=seed)
            writers.write_ismrmrd_radial(
                raw_path, sim["kspace"], sim["trajectory"], spokes_per_frame=spokes_per_frame,
                image_shape=(size, size), noise=sim["noise"],
            )
            attrs["spokes_per_frame"] = int(spokes_per_frame)
            attrs["angle_deg"] = float(GOLDEN_ANGLE_DEG)
        else:
            center = cartesian_center_lines(size, acceleration)
            sim = simulate_cartesian(
                images, maps, acceleration=acceleration, center_lines=center, snr=snr, seed=seed
            )
            # the fully sampled centre doubles as embedded parallel-imaging calibration
            writers.write_ismrmrd_cartesian(
                raw_path, sim["kspace"], sim["mask"], noise=sim["noise"], calibration_lines=center
            )
            attrs["acceleration"] = float(acceleration)
            attrs["center_lines"] = center
        _write_truth(
            truth_path, images[None], {k: m[None] for k, m in rois.items()}, maps[None],
            attrs, sim["noise_cov"],
        )
        if anatomy is not None:
            import h5py

            with h5py.File(truth_path, "a") as f:
                g = f.create_group("motion")
                g.create_dataset("displacement", data=anatomy["displacement"][None], compression="gzip")
                g.create_dataset("contraction", data=anatomy["contraction"])
        return [raw_path, truth_path]

    # fastMRI: static multi-slice, T = 1
    if slices < 1:
        raise ShapeError(f"slices must be >= 1, got {slices}")
    positions = np.linspace(-0.6, 0.6, slices) if slices > 1 else np.zeros(1)
    ss = np.random.SeedSequence(seed).spawn(3)
    imgs, roi_list, map_list, clean = [], [], [], []
    for pos in positions:
        img, roi = cardiac_cine_phantom(size, 1, seed=seed, slice_position=float(pos))
        # coil maps of each slice at its own through-plane position (normalised units)
        mps = coil_sensitivities(coils, (size, size), seed=seed, z=0.05 * float(pos), normalize=True)
        clean.append(_fft2c(mps * img))  # (C, Ky, Kx), fully sampled
        imgs.append(img)
        roi_list.append(roi)
        map_list.append(mps)
    # one receiver for all slices: one covariance, its scale the mean of the per-slice
    # scales (so snr holds on average over slices), independent noise per slice
    cov_unit = noise_covariance(coils, seed=int(ss[0].generate_state(1)[0]))
    sigma2 = float(np.mean([
        _noise_scale(i, m, cov_unit, snr, None) for i, m in zip(imgs, map_list)
    ]))
    kspace = np.stack(clean)  # (S, C, Ky, Kx)
    cov = None
    if sigma2 > 0:
        cov = sigma2 * cov_unit
        noise = _draw_noise(cov, (len(positions), size, size), np.random.default_rng(ss[1]))
        kspace = kspace + np.moveaxis(noise, 0, 1)
    # fastMRI's reconstruction_rss: root-sum-of-squares of the fully sampled coil images
    coil_img = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    rss = np.sqrt(np.sum(np.abs(coil_img) ** 2, axis=1)).astype(np.float32)  # (S, Y, X)
    column_mask = None
    if acceleration > 1:
        column_mask = _fastmri_column_mask(size, acceleration, np.random.default_rng(ss[2]))
        kspace = kspace * column_mask[None, None, None, :]
        attrs["acceleration"] = float(acceleration)
    writers.write_fastmri(raw_path, kspace.astype(np.complex64), reference_rss=rss,
                          mask=column_mask)
    attrs["slices"] = int(slices)
    attrs["frames"] = 1
    attrs["slice_positions"] = positions.astype(np.float64)
    _write_truth(
        truth_path, np.stack(imgs), {k: np.stack([r[k] for r in roi_list]) for k in roi_list[0]},
        np.stack(map_list), attrs, cov,
    )
    return [raw_path, truth_path]


# --------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The simulation options, shared by ``python -m data_tools.phantom`` and ``mridip simulate``."""
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--kind", choices=sorted(_FILE_NAMES), default="radial",
                   help="radial or Cartesian cine (ISMRMRD), a static multi-slice fastMRI file, "
                   "t2map: a multi-echo spin-echo brain T2-mapping scan (ISMRMRD), grappa: "
                   "a brain slice shaped like a Siemens GRAPPA export (ACS lines, noise scan), "
                   "t1map / t1map-radial: the NIST-like T1 plate (IR, SR or VFA: --t1-model), "
                   "molli: a short-axis MOLLI 5(3)3 slice, t2map-radial: golden-angle multi-echo, "
                   "anatomical / anatomical-cartesian: a radial / Cartesian cine of the realistic "
                   "phantom (real-image texture, smooth cardiac warp; data_tools.anatomical)")
    p.add_argument("--size", type=int, default=128, help="image matrix N (N x N), default 128")
    p.add_argument("--frames", type=int, default=20,
                   help="cardiac frames T, default 20 (ignored for t2map: T = --echoes)")
    p.add_argument("--coils", type=int, default=8, help="receive coils C, default 8")
    p.add_argument("--spokes", type=int, default=13, help="radial spokes per frame, default 13")
    p.add_argument("--acceleration", type=float, default=8.0, help="R: Cartesian cine and t2map (per frame / echo), fastMRI, grappa (rounded); default 8")
    p.add_argument("--snr", type=float, default=30.0, help="image SNR, default 30 (inf: no noise)")
    p.add_argument("--slices", type=int, default=3, help="slices of the fastMRI phantom, default 3")
    p.add_argument("--respiration", action="store_true", help="add respiratory drift")
    p.add_argument("--echoes", type=int, default=8, help="t2map: echoes E, default 8")
    p.add_argument("--echo-spacing", type=float, default=10.0,
                   help="t2map: echo spacing in ms, TE = spacing x (1..E), default 10")
    p.add_argument("--t1-model", choices=("ir", "sr", "vfa"), default="ir",
                   help="t1map / t1map-radial: inversion recovery (default), saturation recovery or "
                   "variable flip angle (writes b1_map.npy)")
    p.add_argument("--seed", type=int, default=0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_tools.phantom",
        description="Write a numerical phantom as raw files (ISMRMRD radial or Cartesian "
        "cardiac cine, a static multi-slice fastMRI file, or a multi-echo spin-echo brain "
        "T2-mapping scan) plus a ground-truth file.",
    )
    add_arguments(p)
    return p


def simulate_from_args(args: argparse.Namespace) -> list[str]:
    """:func:`simulate_to_files` with the options of :func:`add_arguments`."""
    return simulate_to_files(
        args.output, kind=args.kind, size=args.size, frames=args.frames, coils=args.coils,
        spokes_per_frame=args.spokes, acceleration=args.acceleration, snr=args.snr,
        slices=args.slices, respiration=args.respiration, seed=args.seed,
        echoes=args.echoes, echo_spacing_ms=args.echo_spacing, t1_model=getattr(args, "t1_model", "ir"),
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: parse ``argv`` and call :func:`simulate_to_files`."""
    from mridip.errors import MridipError

    args = _parser().parse_args(argv)
    try:
        written = simulate_from_args(args)
    except MridipError as exc:
        print(f"data_tools.phantom: error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
