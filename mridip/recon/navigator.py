"""Self-navigation: low-resolution frames from the k-space every frame samples densely.

Cine acquisitions sample the centre of k-space in every frame (Cartesian: a block of
centre lines; radial: every spoke crosses the centre). Inside the region where each frame
is sampled at least at the Nyquist density, a frame's data determine a low-resolution
image of that frame *without aliasing*; cardiac motion is visible in it. This is the
principle of self-gating (e.g. Larson et al., "Self-gated cardiac cine MRI", MRM 51:93,
2004, who take it from the k-space centre of radial spokes). mridip uses these
navigator frames to build the frame graph of the graph image prior
(:func:`mridip.recon.gip.run_gip`, ``stages.graph = "navigator"``) from the data alone,
before any network is fitted.

Navigator region (:func:`navigator_mask`):

- Cartesian (:class:`~mridip.operators.cartesian.CartesianSense`): the largest centred
  rectangle of the grid that *every* frame measured (the same rule as the calibration
  region of :mod:`mridip.coils`).
- Radial (:class:`~mridip.operators.radial.RadialSense`): the disc ``|k| <= r`` in which the
  arc between neighbouring spokes is at most the Nyquist spacing ``2 pi / N`` (radians per
  voxel, ``N = max(Y, X)``): ``r = 2 pi / (N g)`` with ``g`` the largest angular gap
  between the spokes of any frame (spoke angles taken over the full circle, so both full
  and centre-out spokes are handled).

Navigator frames (:func:`navigator_images`): CG-SENSE on the operator restricted to that
region, per frame, from zero (a few iterations: a minimum-norm low-resolution solution).
"""

from __future__ import annotations

import math

import torch

from mridip.errors import ShapeError
from mridip.operators.base import LinearOperator

#: angles (radians) closer than this are one spoke
_ANGLE_TOL = 1e-3


def radial_nyquist_radius(trajectory: torch.Tensor, mask: torch.Tensor, image_size: int) -> float:
    """Radius (radians/voxel) within which every frame's spokes are Nyquist-dense.

    Parameters
    ----------
    trajectory : torch.Tensor
        float ``(T, 2, K)`` in radians/voxel.
    mask : torch.Tensor
        bool ``(T, K)``, the measured samples.
    image_size : int
        ``N = max(Y, X)``; the Nyquist spacing is ``2 pi / N`` radians/voxel.

    Returns
    -------
    float
        ``2 pi / (N g)`` with ``g`` the largest angular gap (radians, over the full circle)
        between the spoke directions of any frame; 0 for a frame with fewer than two.
    """
    r = torch.linalg.vector_norm(trajectory, dim=1)  # (T, K)
    worst = 0.0
    for t in range(trajectory.shape[0]):
        keep = mask[t] & (r[t] > 0.5 * math.pi)  # the outer half of the spokes: well-defined angles
        ang = torch.atan2(trajectory[t, 0, keep], trajectory[t, 1, keep]).double()
        ang = torch.remainder(ang, 2 * math.pi)
        ang = torch.unique(torch.round(ang / _ANGLE_TOL)) * _ANGLE_TOL
        if ang.numel() < 2:
            return 0.0
        gaps = torch.diff(torch.cat([ang, ang[:1] + 2 * math.pi]))
        worst = max(worst, float(gaps.max()))
    return 2 * math.pi / (image_size * worst)


def navigator_mask(A: LinearOperator) -> torch.Tensor:
    """The navigator region of ``A``'s samples: bool, ``A.sample_mask``'s shape.

    Cartesian ``(T, Ky, Kx)``: the largest centred rectangle measured by every frame.
    Radial ``(T, K)``: the measured samples with ``|k| <=`` :func:`radial_nyquist_radius`.

    Raises
    ------
    ShapeError
        ``A`` is of another kind, or no frame-common centre region exists (the message says
        to build the GIP graph another way).
    """
    from mridip.coils import centre_rectangle, centre_slices
    from mridip.operators.cartesian import CartesianSense
    from mridip.operators.radial import RadialSense

    way_out = 'build the GIP graph another way (stages.graph = "features" or "temporal")'
    if isinstance(A, CartesianSense):
        m = A.sample_mask
        ky, kx = m.shape[1:]
        h, w = centre_rectangle(m.all(0), None)
        if h < 2 or w < 2:
            raise ShapeError(
                f"navigator: no centred k-space region of at least 2 x 2 is sampled by every frame "
                f"(largest: {h} x {w}); {way_out}"
            )
        region = torch.zeros(ky, kx, dtype=torch.bool, device=m.device)
        region[centre_slices((ky, kx), (h, w))] = True
        return m & region
    if isinstance(A, RadialSense):
        m = A.sample_mask
        radius = radial_nyquist_radius(A.trajectory, m, max(A.ishape[1:]))
        # at least 2 Nyquist steps across, or the "image" is a single number
        if radius * max(A.ishape[1:]) / (2 * math.pi) < 1.0:
            raise ShapeError(
                f"navigator: the spokes of some frame leave gaps too wide for a low-resolution image "
                f"(Nyquist radius {radius * max(A.ishape[1:]) / (2 * math.pi):.2f} k-space steps < 1); {way_out}"
            )
        return m & (torch.linalg.vector_norm(A.trajectory, dim=1) <= radius)
    raise ShapeError(f"navigator: no navigator region is defined for {type(A).__name__}; {way_out}")


@torch.no_grad()
def navigator_images(A: LinearOperator, y: torch.Tensor, iterations: int = 10,
                     region: torch.Tensor | None = None) -> torch.Tensor:
    """Low-resolution frames from the navigator region: complex64 ``(T, Y, X)``.

    CG-SENSE (``iterations`` steps from zero, unregularised) on ``A.restrict(region)`` with
    data ``y`` (``A.oshape``, any units; the result is in the same units). ``region``
    (bool, ``A.sample_mask``'s shape) defaults to :func:`navigator_mask` ``(A)``; pass the
    region of the full operator when ``A`` is a hold-out restriction of it (a random
    hold-out leaves no rectangle that every frame measured, though the region's
    geometry is unchanged).
    """
    from mridip.recon.baselines import cg_sense

    if tuple(y.shape) != tuple(A.oshape):
        raise ShapeError(f"navigator_images: y has shape {tuple(y.shape)}, expected A.oshape = {A.oshape}")
    if region is None:
        region = navigator_mask(A)
    x, _ = cg_sense(A.restrict(region), y, iterations=iterations)
    return x


def navigator_descriptors(images: torch.Tensor) -> torch.Tensor:
    """Frame descriptors ``(T, Y * X)``: magnitude minus its temporal mean (the dynamic part).

    ``images`` complex ``(T, Y, X)``. The magnitude ignores the coil maps' and the
    frames' phase; removing the temporal mean makes the cosine similarity of
    :func:`mridip.models.gip.knn_graph` compare motion, not the static anatomy.
    """
    mag = images.abs().float()
    return (mag - mag.mean(0, keepdim=True)).reshape(mag.shape[0], -1)


# ------------------------------------------------------------ physiological surrogates
#: respiratory and cardiac bands (Hz) of the self-navigator; the respiratory one is
#: mrpro's motion-corrected example's 0.2-0.5 Hz widened to slow breathing (0.1 Hz)
RESPIRATORY_BAND_HZ = (0.1, 0.5)
CARDIAC_BAND_HZ = (0.6, 3.0)


def bandpass(signal: torch.Tensor, frame_seconds: float, band: tuple[float, float]) -> torch.Tensor:
    """Zero-phase FFT band-pass of ``signal`` ``(T, ...)`` along frames (float64 inside).

    Frequencies ``|f|`` outside ``band`` (Hz; frame rate ``1 / frame_seconds``) are set to
    zero; the mean (0 Hz) always goes. The signal is mirrored before the FFT (even
    extension: no jump at the ends to leak into the band).
    """
    if frame_seconds <= 0:
        raise ShapeError(f"bandpass: frame_seconds must be > 0, got {frame_seconds}")
    s = signal.double()
    T = s.shape[0]
    ext = torch.cat([s, s.flip(0)], 0)  # (2T, ...)
    f = torch.fft.fftfreq(2 * T, d=frame_seconds).abs()
    keep = ((f >= band[0]) & (f <= band[1]) & (f > 0)).to(s.dtype)
    spec = torch.fft.fft(ext, dim=0) * keep.view(-1, *([1] * (s.ndim - 1)))
    return torch.fft.ifft(spec, dim=0).real[:T].to(signal.dtype if signal.is_floating_point() else torch.float64)


def pca_surrogate(features: torch.Tensor, frame_seconds: float, band: tuple[float, float],
                  components: int = 8, exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """The principal temporal component of ``features`` with the most power in ``band``.

    Parameters
    ----------
    features : torch.Tensor
        real ``(T, F)`` per-frame features (e.g. navigator magnitudes, coil k-space centre).
    frame_seconds : float
        Frame duration (s).
    band : (float, float)
        Pass band in Hz.
    components : int
        Principal components searched (SVD of the mean-free features).
    exclude : torch.Tensor, optional
        ``(T,)`` curve (e.g. the respiratory surrogate) projected out of the features first.

    Returns
    -------
    curve : torch.Tensor
        float32 ``(T,)``, the band-passed component, zero mean, unit std (sign arbitrary).
    info : dict
        ``component`` (index), ``peak_hz`` (frequency of its spectral peak in the band),
        ``band_fraction`` (fraction of the component's power in the band).
    """
    X = features.double()
    X = X - X.mean(0, keepdim=True)
    if exclude is not None:
        e = exclude.double() - exclude.double().mean()
        e = e / e.norm().clamp_min(1e-12)
        X = X - e[:, None] * (e @ X)[None]
    U, S, _ = torch.linalg.svd(X, full_matrices=False)
    k = min(components, U.shape[1])
    T = X.shape[0]
    f = torch.fft.rfftfreq(T, d=frame_seconds)
    inband = (f >= band[0]) & (f <= band[1]) & (f > 0)
    if not bool(inband.any()):
        raise ShapeError(
            f"navigator: {T} frames of {frame_seconds * 1e3:.0f} ms resolve no frequency in {band} Hz "
            "(too few frames or too slow a frame rate); give the surrogate another way"
        )
    best, best_power, best_frac = 0, -1.0, 0.0
    for i in range(k):
        p = torch.fft.rfft(U[:, i] * S[i]).abs() ** 2
        p[0] = 0
        power = float(p[inband].sum())
        if power > best_power:
            best, best_power, best_frac = i, power, power / max(float(p.sum()), 1e-30)
    curve = bandpass(U[:, best], frame_seconds, band)
    p = torch.fft.rfft(curve).abs() ** 2
    peak = float(f[inband][torch.argmax(p[inband])])
    curve = (curve - curve.mean()) / curve.std().clamp_min(1e-12)
    return curve.float(), {"component": best, "peak_hz": peak, "band_fraction": best_frac}


@torch.no_grad()
def navigator_features(A: LinearOperator, y: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """Per-frame features of the self-navigator: real ``(T, F)``.

    The magnitudes of the low-resolution navigator frames (:func:`navigator_images`,
    ``Y X`` values) followed by the real and imaginary parts of each coil's k-space
    centre: the mean of every frame's samples within the navigator region closest to
    ``k = 0`` (radial: the spokes' centre samples; Cartesian: the centre of the grid),
    ``2 C`` values. Coil PCA on them (:func:`pca_surrogate`) gives the surrogates.
    """
    img = navigator_images(A, y, iterations=iterations)  # (T, Y, X)
    T = img.shape[0]
    mag = img.abs().reshape(T, -1).double()
    mag = mag / mag.std().clamp_min(1e-30)
    m = A.sample_mask
    yy = y * m.unsqueeze(1).to(y.dtype)
    if yy.ndim == 3:  # radial (T, C, K): samples nearest k = 0
        r = torch.linalg.vector_norm(A.trajectory, dim=1).masked_fill(~m, float("inf"))  # (T, K)
        near = r <= r.amin(1, keepdim=True) + 1e-3
        dc = (yy * near.unsqueeze(1)).sum(-1) / near.sum(-1, keepdim=True).clamp_min(1)  # (T, C)
    else:  # Cartesian (T, C, Ky, Kx): grid centre, where measured
        ky, kx = yy.shape[-2:]
        dc = yy[..., ky // 2, kx // 2]
    dc = torch.cat([dc.real, dc.imag], 1).double()
    dc = dc / dc.std().clamp_min(1e-30)
    return torch.cat([mag, dc], 1)


def physiological_surrogates(A: LinearOperator, y: torch.Tensor, frame_seconds: float,
                             respiratory_band: tuple[float, float] = RESPIRATORY_BAND_HZ,
                             cardiac_band: tuple[float, float] = CARDIAC_BAND_HZ) -> dict:
    """Respiratory and cardiac surrogates from the data alone (self-navigation).

    Coil PCA of :func:`navigator_features`, band-passed (mrpro's motion-corrected
    example: SVD of the k-space centre, 0.2-0.5 Hz; XD-GRASP bins the same kind of
    self-navigator into respiratory x cardiac states, Feng et al., MRM 75:775, 2016).
    The cardiac curve comes from the features with the respiratory curve projected out.

    Returns
    -------
    dict
        ``respiratory`` and ``cardiac``: float32 ``(T,)`` (unit std, sign arbitrary; a
        band the frame rate cannot resolve gives no entry), ``respiratory_info`` and
        ``cardiac_info`` (see :func:`pca_surrogate`), ``frame_seconds``.
    """
    feats = navigator_features(A, y)
    out: dict = {"frame_seconds": float(frame_seconds)}
    resp = None
    for name, band in (("respiratory", respiratory_band), ("cardiac", cardiac_band)):
        try:
            curve, info = pca_surrogate(feats, frame_seconds, band, exclude=resp)
        except ShapeError as exc:
            out[f"{name}_info"] = {"error": str(exc)}
            continue
        out[name], out[f"{name}_info"] = curve, info
        if name == "respiratory":
            resp = curve
    return out
