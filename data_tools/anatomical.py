"""Realistic cardiac cine phantom: real-image texture, smooth intensities, a smooth beating warp.

The piecewise-constant ellipse phantom (:func:`data_tools.phantom.cardiac_cine_phantom`)
favours piecewise-constant priors (total variation). This phantom keeps its chest
layout (body, fat, lungs, liver, spine, aorta, pericardial fat, right and left ventricles
with papillary muscles; normalised coordinates, 320 mm field of view) but makes every
tissue textured and smoothly varying, and moves the heart by a smooth displacement field
instead of redrawing ellipses:

Texture. Two zero-mean, unit-std texture fields (one for the static chest, one for the
heart, so the heart's texture moves with it) are cut from a real MR image: the real
8-coil brain k-space of the sigpy MRI tutorial (mikgroup/sigpy-mri-tutorial,
``data/cartesian_ksp.npy``, BSD 3-Clause; shared/data/sigpy-brain/), reconstructed at run
time with mridip's CG-SENSE (:func:`mridip.recon.pipeline.reconstruct`, ``"cg-sense"``,
about 1 s), then the relative local contrast ``m / G_8(m) - 1`` (``G_8``: Gaussian blur
of 8 pixels) of two crops inside the brain (gyri, sulci, grey/white-matter and CSF
structure: an anatomical power spectrum, not a synthetic one), resampled to the phantom
grid. Nothing is cached on disk; the recon is kept in memory per process. Where the file
is missing (a fresh clone), a synthetic texture (a sum of smooth Gaussian random fields
of 0.7, 1.5, 3 and 6 pixels) is used with a warning. Each tissue gets a texture
amplitude (soft tissue 25 %, liver 15 %, myocardium 15 %, a trabecular rim of 30 %
inside the blood pools, 6 % elsewhere in the blood), and the whole chest a smooth
intensity variation (+-10 % over about a sixth of the field of view) and the smooth
background phase of the ellipse phantom. Edges are partial-volume (2-4x supersampling).

Motion (pull convention of :mod:`mridip.operators.motion`: ``x_t(p) = x_0(p + D_t(p))``,
pixels, component 0 = y, 1 = x). With the contraction curve ``s_t`` of
:func:`data_tools.phantom.contraction_curve` (0 at end-diastole, frame 0; 1 at
end-systole, phase 1/3) and ``r = p - c`` measured from the LV centre ``c``:

- radial contraction ``s k r exp(-|r|^2 / (2 sigma^2))``, ``sigma`` = 0.12 normalised
  units (19 mm), ``k`` chosen so that the end-systolic LV cavity area is 55 % of the
  end-diastolic one (a 45 % area change; radius 27 -> 20 mm). The field peaks near the
  endocardium and decays through the wall, so the wall thickens (about 25 %) at a
  nearly constant myocardial area, and vanishes within about 3 sigma of the heart;
- a systolic twist: rotation by ``s 4 deg exp(-|r|^2 / (2 (0.15)^2))`` about ``c``;
- the RV free wall moving in by ``s`` 0.06 units (10 mm) towards the LV centre: the same
  radial pull on a Gaussian ring (sigma 0.08) through the free wall, 0.38 units from
  ``c``, weighted by ``((1 + cos(theta - theta_RV)) / 2)^4`` towards the RV side (the
  septum moves with the LV); and the septal shift of the ellipse phantom (0.012 units) with a
  Gaussian falloff;
- optionally (``respiration``) the ellipse phantom's respiratory drift (up to 0.08 units,
  13 mm, along +Y, 20 % of it along +X) weighted by a Gaussian bump (sigma 0.4) around
  the heart and diaphragm, composed with the cardiac field:
  ``D = u_resp(p) + u_card(p + u_resp(p))``.

All parts are analytic and smooth (C-infinity), so ``D`` is smooth in space and in time
(``s_t`` is C^1 periodic). The heart is a template drawn once at end-diastole on the
supersampled grid and backward-warped with bilinear interpolation
(``scipy.ndimage.map_coordinates``, order 1) every frame; ROIs are the warped labels.

References: the textured, warped-template idea follows MRXCAT (Wissmann, Santelli,
Segars, Kozerke, "MRXCAT: Realistic numerical phantoms for cardiovascular magnetic
resonance", JCMR 2014;16:63), which warps the XCAT anatomy; the texture source is
the sigpy MRI tutorial data (Ong & Lustig, sigpy, ISMRM 2019). No code is taken from
either.
"""

from __future__ import annotations

import functools
import math
import os
import warnings

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates, zoom

from data_tools import phantom as _ph
from mridip.errors import InputFileError, ShapeError

__all__ = [
    "anatomical_cine",
    "anatomical_cine_phantom",
    "anatomical_displacement",
    "texture_fields",
    "DEFAULT_TEXTURE_PATH",
]

#: Where the real brain k-space is looked for (the shared data folder beside the checkout).
DEFAULT_TEXTURE_PATH = os.path.abspath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "sigpy-brain",
    "cartesian_ksp.npy",
))

_LV_CENTRE = (0.10, -0.08)  # (u, v): the ellipse phantom's mid-ventricular LV centre at ED
_RV_DIRECTION = (-0.894, -0.447)  # unit vector from the LV to the RV centre (-0.10, -0.05)
_RV_WALL_RADIUS = 0.38  # distance of the RV free wall from the LV centre
_SIGMA_LV = 0.12
_ES_AREA_RATIO = 0.55  # end-systolic / end-diastolic LV cavity area
_R_LV_ED = 0.17
_TWIST_DEG = 4.0
_SIGMA_TWIST = 0.15
_RV_WALL_SHIFT, _SIGMA_RV = 0.06, 0.08
_SEPTAL_SHIFT, _SIGMA_SHIFT = 0.012, 0.2
_RESP_CENTRE, _SIGMA_RESP = (0.0, 0.05), 0.4

# texture amplitude (relative) per label of data_tools.phantom
_AMP = np.zeros(16, dtype=np.float32)
_AMP[[_ph._FAT, _ph._TISSUE, _ph._LUNG, _ph._LIVER, _ph._CORTEX, _ph._MARROW, _ph._CSF, _ph._AORTA]] = [
    0.10, 0.25, 0.50, 0.15, 0.15, 0.20, 0.05, 0.05,
]
_AMP[[_ph._PERI_FAT, _ph._RV_WALL, _ph._RV_BLOOD, _ph._LV_MYO, _ph._LV_BLOOD, _ph._PAPILLARY]] = [
    0.12, 0.15, 0.06, 0.15, 0.06, 0.15,
]
_HEART_LABELS = (_ph._PERI_FAT, _ph._RV_WALL, _ph._RV_BLOOD, _ph._LV_MYO, _ph._LV_BLOOD, _ph._PAPILLARY)


# --------------------------------------------------------------------------- texture
@functools.lru_cache(maxsize=2)
def _brain_magnitude(path: str) -> np.ndarray:
    """CG-SENSE magnitude ``(230, 180)`` float32 of the sigpy-brain k-space, max 1."""
    from mridip.io import from_arrays
    from mridip.recon.pipeline import reconstruct

    try:
        k = np.load(path)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"could not read the texture k-space {path!r} ({exc}); pass "
                             "texture='synthetic' to use a synthetic texture") from exc
    if k.ndim != 3 or not np.iscomplexobj(k):
        raise InputFileError(f"texture k-space {path!r} must be complex (C, Ky, Kx), got "
                             f"{k.dtype} {k.shape}; pass texture='synthetic' instead")
    rec = reconstruct(from_arrays(k.astype(np.complex64)), "cg-sense", progress=False)
    mag = np.abs(np.asarray(rec.image)[0, 0]).astype(np.float32)
    return mag / max(float(mag.max()), 1e-12)


def _standardise(f: np.ndarray) -> np.ndarray:
    f = f - f.mean()
    f = f / (f.std() + 1e-12)
    return np.clip(f, -3.0, 3.0).astype(np.float32)


def _real_texture(mag: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two ``(n, n)`` texture fields from crops inside the brain of ``mag``."""
    rel = mag / (gaussian_filter(mag, 8.0) + 1e-3) - 1.0  # relative local contrast
    ny, nx = rel.shape
    side = int(min(ny, nx) * 0.62)  # 111 px of the 180-px-wide brain: inside the skull
    cy, cx = ny // 2, nx // 2
    a = rel[cy - side // 2 : cy - side // 2 + side, cx - side // 2 : cx - side // 2 + side]
    # the heart's: a smaller crop (finer texture per heart pixel), rotated, off-centre
    hs = int(side * 0.7)
    b = rel[cy - hs // 2 + 12 : cy - hs // 2 + 12 + hs, cx - hs // 2 : cx - hs // 2 + hs]
    b = np.rot90(b).copy()
    out = []
    for crop in (a, b):
        out.append(_standardise(zoom(crop, n / crop.shape[0], order=1)[:n, :n]))
    return out[0], out[1]


def _synthetic_texture(n: int, ss: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two ``(n, n)`` sums of smooth Gaussian random fields (0.7 .. 6 phantom pixels)."""
    out = []
    for _ in range(2):
        f = np.zeros((n, n))
        for sigma, w in ((0.7, 1.0), (1.5, 0.8), (3.0, 0.6), (6.0, 0.4)):
            g = gaussian_filter(rng.standard_normal((n, n)), sigma * ss, mode="wrap")
            f += w * g / (g.std() + 1e-12)
        out.append(_standardise(f))
    return out[0], out[1]


def texture_fields(
    size: int,
    *,
    supersampling: int = 1,
    texture: str = "auto",
    texture_path: str | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Static-chest and heart texture fields of the anatomical phantom.

    Parameters
    ----------
    size : int
        N, phantom matrix; the fields are ``(N ss, N ss)``.
    supersampling : int
        ss, sub-pixels per pixel and axis.
    texture : {"auto", "sigpy-brain", "synthetic"}
        ``"sigpy-brain"``: from the real brain k-space (error if missing); ``"synthetic"``:
        smooth random fields; ``"auto"``: the real one where the file exists, else the
        synthetic one with a ``UserWarning``.
    texture_path : str, optional
        The brain k-space ``.npy`` (complex ``(C, Ky, Kx)``); default
        :data:`DEFAULT_TEXTURE_PATH`.
    seed : int
        Seed of the synthetic texture.

    Returns
    -------
    static, heart : numpy.ndarray
        float32 ``(N ss, N ss)``, zero mean, unit std, clipped at +-3.
    source : str
        ``"sigpy-brain"`` or ``"synthetic"``.
    """
    if texture not in ("auto", "sigpy-brain", "synthetic"):
        raise ShapeError(f"texture must be 'auto', 'sigpy-brain' or 'synthetic', got {texture!r}")
    n = int(size) * int(supersampling)
    path = os.path.abspath(texture_path or DEFAULT_TEXTURE_PATH)
    if texture != "synthetic":
        if os.path.exists(path):
            static, heart = _real_texture(_brain_magnitude(path), n)
            return static, heart, "sigpy-brain"
        if texture == "sigpy-brain":
            raise InputFileError(
                f"the sigpy-brain k-space is not at {path}; copy cartesian_ksp.npy of "
                "mikgroup/sigpy-mri-tutorial there, pass texture_path=..., or use texture='synthetic'"
            )
        warnings.warn(
            f"sigpy-brain k-space not found at {path}: the anatomical phantom uses a synthetic "
            "texture (smooth random fields) instead of the real-image one", UserWarning, stacklevel=3,
        )
    static, heart = _synthetic_texture(n, int(supersampling), np.random.default_rng(seed + 7))
    return static, heart, "synthetic"


# --------------------------------------------------------------------------- motion
def _k_lv() -> float:
    """Radial-contraction gain: the ED cavity edge maps to the ES edge at s = 1."""
    r_es = _R_LV_ED * math.sqrt(_ES_AREA_RATIO)
    return (_R_LV_ED / r_es - 1.0) / math.exp(-(r_es**2) / (2 * _SIGMA_LV**2))


def _cardiac_field(u, v, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Pull displacement (du, dv) in normalised units at points (u, v), contraction s."""
    if s == 0.0:
        return np.zeros_like(u), np.zeros_like(v)
    ru, rv = u - _LV_CENTRE[0], v - _LV_CENTRE[1]
    r2 = ru**2 + rv**2
    g = s * _k_lv() * np.exp(-r2 / (2 * _SIGMA_LV**2))
    du, dv = g * ru, g * rv
    beta = s * math.radians(_TWIST_DEG) * np.exp(-r2 / (2 * _SIGMA_TWIST**2))
    cb, sb = np.cos(beta), np.sin(beta)
    du += cb * ru - sb * rv - ru
    dv += sb * ru + cb * rv - rv
    # RV free wall: inward (towards the LV centre) on a ring through the free wall,
    # weighted towards the RV side, so the septum and the LV are left alone
    r = np.sqrt(r2)
    eu, ev = _RV_DIRECTION
    w = (0.5 * (1.0 + (ru * eu + rv * ev) / np.maximum(r, 1e-9))) ** 4
    h = s * (_RV_WALL_SHIFT / _RV_WALL_RADIUS) * w * np.exp(-((r - _RV_WALL_RADIUS) ** 2) / (2 * _SIGMA_RV**2))
    du += h * ru
    dv += h * rv
    # the LV centre moves towards the septum (-u) in systole: content comes from +u
    du += s * _SEPTAL_SHIFT * np.exp(-r2 / (2 * _SIGMA_SHIFT**2))
    return du, dv


def _respiratory_field(u, v, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Pull displacement of a head-foot shift ``shift`` (normalised, +v) around the heart."""
    if shift == 0.0:
        return np.zeros_like(u), np.zeros_like(v)
    w = np.exp(-((u - _RESP_CENTRE[0]) ** 2 + (v - _RESP_CENTRE[1]) ** 2) / (2 * _SIGMA_RESP**2))
    return -0.2 * shift * w, -shift * w


def _total_field(u, v, s: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    ru, rv = _respiratory_field(u, v, shift)
    cu, cv = _cardiac_field(u + ru, v + rv, s)
    return ru + cu, rv + cv


def anatomical_displacement(size: int, frames: int, *, respiration: bool = False) -> np.ndarray:
    """True displacement field of :func:`anatomical_cine_phantom` (pull convention).

    Parameters
    ----------
    size, frames : int
        N (images N x N) and T, as in :func:`anatomical_cine_phantom`.
    respiration : bool
        Include the respiratory drift.

    Returns
    -------
    numpy.ndarray
        float32 ``(T, 2, Y, X)`` in pixels, component 0 = y (rows), 1 = x (columns), at the
        pixel centres: frame t is ``x_t(p) = x_0(p + D_t(p))`` (frame 0 is end-diastole,
        ``D_0 = 0`` without respiration).
    """
    _check(size, frames)
    v, u = _ph._grid((size, size), 1)
    s_t = _ph.contraction_curve(np.arange(frames) / frames)
    out = np.zeros((frames, 2, size, size), dtype=np.float32)
    for t in range(frames):
        shift = _ph._respiratory_shift(t, frames) if respiration else 0.0
        du, dv = _total_field(u, v, float(s_t[t]), shift)
        out[t, 0], out[t, 1] = dv * size / 2.0, du * size / 2.0  # 1 normalised unit = N / 2 px
    return out


def _check(size: int, frames: int) -> None:
    if size < 8:
        raise ShapeError(f"phantom size must be >= 8 pixels, got {size}")
    if frames < 1:
        raise ShapeError(f"phantom frames must be >= 1, got {frames}")


# --------------------------------------------------------------------------- phantom
def _labels(u, v) -> np.ndarray:
    """End-diastolic label map (data_tools.phantom labels) on the grid (u, v)."""
    lab = np.zeros(u.shape, dtype=np.uint8)
    bu, bv = _ph._BODY_CENTRE
    au, av = _ph._BODY_AXES
    lab[_ph._ellipse(u, v, bu, bv, au, av)] = _ph._FAT
    inner = _ph._ellipse(u, v, bu, bv, au - _ph._FAT_THICKNESS, av - _ph._FAT_THICKNESS)
    lab[inner] = _ph._TISSUE
    lab[_ph._ellipse(u, v, -0.42, -0.03, 0.33, 0.46, math.radians(8.0))] = _ph._LUNG
    lab[_ph._ellipse(u, v, 0.45, -0.03, 0.31, 0.44, math.radians(-8.0))] = _ph._LUNG
    lab[_ph._ellipse(u, v, -0.42, 0.46, 0.42, 0.22, math.radians(-12.0)) & inner] = _ph._LIVER
    lab[_ph._ellipse(u, v, 0.0, 0.44, 0.095, 0.085)] = _ph._CORTEX
    lab[_ph._ellipse(u, v, 0.0, 0.44, 0.078, 0.068)] = _ph._MARROW
    lab[_ph._ellipse(u, v, 0.0, 0.565, 0.034, 0.03)] = _ph._CSF
    lab[_ph._ellipse(u, v, 0.15, 0.30, 0.05, 0.05)] = _ph._AORTA
    _ph._paint_heart(lab, u, v, _ph._heart_geometry(0.0, 0.0, 0.0), 0.0)
    return lab


def _template(size: int, ss: int, rng: np.random.Generator, texture: str,
              texture_path: str | None, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """End-diastolic magnitude template and labels, both ``(N ss, N ss)``."""
    v, u = _ph._grid((size, size), ss)
    lab = _labels(u, v)
    static, heart, source = texture_fields(size, supersampling=ss, texture=texture,
                                           texture_path=texture_path, seed=seed)
    moving = np.isin(lab, _HEART_LABELS)
    tex = np.where(moving, heart, static)
    amp = _AMP[lab].copy()
    # trabecular rim: blood within ~4 mm of the endocardium carries the myocardium's texture,
    # darkened only (trabeculae and papillary strands are darker than blood)
    blood = np.isin(lab, (_ph._LV_BLOOD, _ph._RV_BLOOD))
    near_wall = gaussian_filter((~blood).astype(np.float32), 0.025 * size * ss / 2.0) > 0.2
    rim = blood & near_wall
    tex = np.where(rim, np.minimum(tex, 0.0), tex)
    amp[rim] = 0.30
    smooth = 1.0 + 0.10 * _ph._smooth_noise(size * ss, size * ss / 6.0, rng)
    mag = _ph._INTENSITY[lab] * np.clip(1.0 + amp * tex, 0.05, None) * smooth
    return mag.astype(np.float32), lab, source


def anatomical_cine(
    size: int = 128,
    frames: int = 20,
    *,
    respiration: bool = False,
    seed: int = 0,
    texture: str = "auto",
    texture_path: str | None = None,
) -> dict:
    """The anatomical cine phantom with its motion truth (module docstring).

    Parameters
    ----------
    size : int
        N (images N x N, N >= 8; 320 mm field of view).
    frames : int
        T, frames over one heartbeat at phases ``t / T`` (frame 0 end-diastole).
    respiration : bool
        Add the respiratory drift.
    seed : int
        Seed of the smooth intensity variation, the background phase and (synthetic)
        texture.
    texture, texture_path
        As in :func:`texture_fields`.

    Returns
    -------
    dict
        ``images`` complex64 ``(T, Y, X)`` (LV blood about 1); ``rois`` str -> bool
        ``(T, Y, X)`` (the regions of :func:`data_tools.phantom.cardiac_cine_phantom`:
        ``body``, ``heart``, ``myocardium``, ``lv_blood``, ``rv_blood``, ``lungs``,
        ``liver``, ``fat``, ``spine``); ``displacement`` float32 ``(T, 2, Y, X)`` pixels
        (:func:`anatomical_displacement`); ``contraction`` float64 ``(T,)`` (``s_t``);
        ``texture`` str (``"sigpy-brain"`` or ``"synthetic"``).
    """
    _check(size, frames)
    ss = _ph._supersampling(size)
    rng = np.random.default_rng(seed)
    mag0, lab0, source = _template(size, ss, rng, texture, texture_path, seed)
    phase = np.exp(1j * _ph._background_phase(size, rng))  # static: B0 / receive phase
    v, u = _ph._grid((size, size), ss)
    n = size * ss
    s_t = _ph.contraction_curve(np.arange(frames) / frames)
    images = np.zeros((frames, size, size), dtype=np.complex64)
    rois = {k: np.zeros((frames, size, size), dtype=bool) for k in _ph._ROIS}
    for t in range(frames):
        shift = _ph._respiratory_shift(t, frames) if respiration else 0.0
        du, dv = _total_field(u, v, float(s_t[t]), shift)
        # source position in supersampled index units: (v + 1) / 2 * n - 0.5
        coords = np.stack([(v + dv + 1.0) * n / 2.0 - 0.5, (u + du + 1.0) * n / 2.0 - 0.5])
        mag = map_coordinates(mag0, coords, order=1, mode="nearest")
        lab = map_coordinates(lab0, coords, order=0, mode="nearest")
        images[t] = (_ph._block_mean(mag, ss) * phase).astype(np.complex64)
        for name, labels in _ph._ROIS.items():
            rois[name][t] = _ph._block_mean(np.isin(lab, labels).astype(np.float32), ss) > 0.5
    return {
        "images": images,
        "rois": rois,
        "displacement": anatomical_displacement(size, frames, respiration=respiration),
        "contraction": np.asarray(s_t, dtype=np.float64),
        "texture": source,
    }


def anatomical_cine_phantom(
    size: int = 128,
    frames: int = 20,
    *,
    respiration: bool = False,
    seed: int = 0,
    texture: str = "auto",
    texture_path: str | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Realistic short-axis cine over one heartbeat: textured anatomy, smooth warp.

    The drop-in counterpart of :func:`data_tools.phantom.cardiac_cine_phantom` (same
    geometry, intensities, ROI names and cardiac timing), see the module docstring.

    Parameters
    ----------
    size, frames, respiration, seed, texture, texture_path
        As in :func:`anatomical_cine`.

    Returns
    -------
    images : numpy.ndarray
        complex64 ``(T, Y, X)``.
    rois : dict of str -> numpy.ndarray
        bool ``(T, Y, X)``, at least ``"body"``, ``"heart"``, ``"myocardium"``, ``"lv_blood"``.
    """
    out = anatomical_cine(size, frames, respiration=respiration, seed=seed, texture=texture,
                          texture_path=texture_path)
    return out["images"], out["rois"]
