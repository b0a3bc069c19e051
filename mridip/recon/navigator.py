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
