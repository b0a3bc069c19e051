"""Wrap k-space arrays already in memory (numpy or torch) as :class:`~mridip.data.RawData`.

This is the way in for data that is not an ISMRMRD or fastMRI file: a ``.npy`` / ``.mat``
array, a BART ``.cfl`` read with BART's ``readcfl``, simulated data. What it expects:

Cartesian (no ``trajectory``):
    complex k-space ``(C, Ky, Kx)``, ``(T, C, Ky, Kx)`` or ``(S, T, C, Ky, Kx)`` on the
    image grid (readout oversampling already removed), *centred*: the k-space centre
    (DC) at index ``(Ky // 2, Kx // 2)``, so that the centred inverse FFT
    ``x = fftshift(ifft2(ifftshift(k)))`` over the last two axes gives the coil images
    (image rows = Ky axis, columns = Kx axis). Unsampled entries are 0. The mask, if not
    given, is "any coil nonzero": ``mask[..., ky, kx] = any_c(k[..., c, ky, kx] != 0)``
    (exact for zero-filled data; a sample that is exactly 0 in every coil counts as
    unmeasured, which for real noisy data does not happen).
Radial (``trajectory`` given):
    complex k-space ``(C, K)``, ``(T, C, K)`` or ``(S, T, C, K)`` with trajectory
    ``(2, K)``, ``(T, 2, K)`` or ``(S, T, 2, K)``, component 0 = ky (image rows),
    component 1 = kx (columns), in radians/voxel in [-pi, pi) (``trajectory_units =
    "radians"``) or cycles/pixel in [-0.5, 0.5) (``"cycles"``); ``image_shape = (Y, X)``
    is required.

The real 8-coil brain in ``shared/data/sigpy-brain/cartesian_ksp.npy`` is such a
Cartesian ``(C, Ky, Kx)`` = (8, 230, 180) array (the phase-encode plane of a 3D scan,
inverse-FFT'd along the readout, DC at (115, 90), 12.4 % sampled):
``from_arrays(np.load(path))`` gives ``kspace (1, 1, 8, 230, 180)`` and the brain
appears with the centred inverse FFT.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from mridip.data import Header, RawData
from mridip.errors import ShapeError
from mridip.trajectories import cycles_to_radians_checked


def _tensor(x, name: str) -> torch.Tensor:
    if torch.is_tensor(x):
        return x.detach()
    try:
        return torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
    except TypeError as exc:
        raise ShapeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}") from exc


def _lead(t: torch.Tensor, want: int, name: str, layouts: str) -> torch.Tensor:
    """Add leading singleton axes up to ``want`` dims."""
    if t.ndim > want or t.ndim < want - 2:
        raise ShapeError(f"{name} has shape {tuple(t.shape)}; expected {layouts}")
    while t.ndim < want:
        t = t[None]
    return t


def from_arrays(
    kspace,
    mask=None,
    trajectory=None,
    trajectory_units: str = "radians",
    noise=None,
    image_shape: tuple[int, int] | None = None,
    header: Header | None = None,
    calibration=None,
) -> RawData:
    """Wrap k-space arrays (numpy or torch) as :class:`~mridip.data.RawData`.

    Parameters
    ----------
    kspace : array or tensor, complex
        Cartesian ``(C, Ky, Kx)`` / ``(T, C, Ky, Kx)`` / ``(S, T, C, Ky, Kx)``, centred
        (DC at ``(Ky // 2, Kx // 2)``); radial ``(C, K)`` / ``(T, C, K)`` / ``(S, T, C, K)``.
    mask : array or tensor, optional
        Cartesian only, bool ``(Ky, Kx)`` / ``(T, Ky, Kx)`` / ``(S, T, Ky, Kx)``
        (broadcast over missing leading axes). Default: any coil nonzero. Entries of
        k-space outside the mask are set to 0.
    trajectory : array or tensor, optional
        Radial: ``(2, K)`` / ``(T, 2, K)`` / ``(S, T, 2, K)``, component 0 = ky,
        component 1 = kx. Its presence makes the data radial.
    trajectory_units : {"radians", "cycles"}
        radians/voxel in [-pi, pi) or cycles/pixel in [-0.5, 0.5).
    noise : array or tensor, optional
        complex ``(C, N)`` noise-only samples (for prewhitening).
    image_shape : (int, int), optional
        ``(Y, X)``; required for radial data, must equal ``(Ky, Kx)`` for Cartesian.
    header : Header, optional
        Acquisition facts to carry along; matrix sizes are filled in when left at 0.
    calibration : array or tensor, optional
        Cartesian only: calibration (ACS) k-space on the same grid, complex ``(C, Ky, Kx)``
        or ``(S, C, Ky, Kx)``, zero where not measured (its mask: any coil nonzero). Coil
        maps are then estimated from it (``RawData.calibration``).

    Returns
    -------
    RawData
        ``format = "arrays"``, complex64 k-space, bool mask or float32 trajectory in
        radians/voxel.
    """
    k = _tensor(kspace, "kspace")
    if not k.is_complex():
        raise ShapeError(
            f"kspace must be complex, got dtype {k.dtype}; if real and imaginary parts are a "
            "trailing axis of 2, combine them first (torch.view_as_complex)"
        )
    k = k.to(torch.complex64)
    # a copy: filling in matrix sizes must not change the caller's header
    hdr = dataclasses.replace(header) if header is not None else Header()
    nz = None if noise is None else _tensor(noise, "noise").to(torch.complex64)
    if nz is not None and nz.ndim != 2:
        raise ShapeError(f"noise must be (C, N), got shape {tuple(nz.shape)}")
    if trajectory is None:
        k = _lead(k, 5, "Cartesian kspace", "(C, Ky, Kx), (T, C, Ky, Kx) or (S, T, C, Ky, Kx) "
                  "(for radial data pass trajectory=...)")
        S, T, C, Ky, Kx = k.shape
        if image_shape is not None and tuple(image_shape) != (Ky, Kx):
            raise ShapeError(
                f"image_shape {tuple(image_shape)} differs from the Cartesian grid (Ky, Kx) = "
                f"{(Ky, Kx)}: zero-pad or crop the k-space to the image size first"
            )
        if mask is None:
            m = (k != 0).any(dim=2)
        else:
            m = _tensor(mask, "mask").to(torch.bool)
            m = _lead(m, 4, "mask", "(Ky, Kx), (T, Ky, Kx) or (S, T, Ky, Kx)")
            try:
                m = m.to(k.device).expand(S, T, Ky, Kx).clone()
            except RuntimeError as exc:
                raise ShapeError(
                    f"mask of shape {tuple(m.shape)} does not fit k-space (S, T, Ky, Kx) = "
                    f"{(S, T, Ky, Kx)}"
                ) from exc
            k = k * m[:, :, None]
        cal = cal_mask = None
        if calibration is not None:
            cal = _lead(_tensor(calibration, "calibration").to(torch.complex64), 4, "calibration",
                        "(C, Ky, Kx) or (S, C, Ky, Kx)")
            if tuple(cal.shape[1:]) != (C, Ky, Kx) or cal.shape[0] not in (1, S):
                raise ShapeError(
                    f"calibration must be (C, Ky, Kx) or (S, C, Ky, Kx) on the k-space grid "
                    f"{(S, C, Ky, Kx)}, got {tuple(cal.shape)}"
                )
            cal = cal.expand(S, C, Ky, Kx).clone()
            cal_mask = (cal != 0).any(dim=1)
        if hdr.encoded_matrix[0] == 0:
            hdr.encoded_matrix = (Kx, Ky, 1)
        if hdr.recon_matrix[0] == 0:
            hdr.recon_matrix = (Kx, Ky, 1)
        hdr.trajectory = "cartesian"
        if cal is not None:
            hdr.calibration_lines = int(cal_mask.any(-1).any(0).sum())
        return RawData(kspace=k, kind="cartesian", mask=m, noise=nz, header=hdr,
                       calibration=cal, calibration_mask=cal_mask)
    if calibration is not None:
        raise ShapeError("calibration is for Cartesian data; radial data calibrate on their own spokes")
    if mask is not None:
        raise ShapeError("mask is for Cartesian data; radial data (trajectory given) takes none")
    if trajectory_units not in ("radians", "cycles"):
        raise ShapeError(f"trajectory_units must be 'radians' or 'cycles', got {trajectory_units!r}")
    tr = _tensor(trajectory, "trajectory").to(torch.float32)
    k = _lead(k, 4, "radial kspace", "(C, K), (T, C, K) or (S, T, C, K)")
    S, T, C, K = k.shape
    tr = _lead(tr, 4, "trajectory", "(2, K), (T, 2, K) or (S, T, 2, K)")
    if tr.shape[-2] != 2 or tr.shape[-1] != K:
        raise ShapeError(
            f"trajectory must be (..., 2, K) with K = {K} samples per frame, got {tuple(tr.shape)}"
        )
    try:
        tr = tr.expand(S, T, 2, K).clone()
    except RuntimeError as exc:
        raise ShapeError(f"trajectory {tuple(tr.shape)} does not fit k-space (S, T, C, K) = {(S, T, C, K)}") from exc
    if trajectory_units == "cycles":
        tr = torch.from_numpy(cycles_to_radians_checked(tr.numpy(), "from_arrays"))
    tr = torch.where(tr >= math.pi, tr - 2.0 * math.pi, tr)  # +pi is the same point as -pi
    if image_shape is None:
        if hdr.recon_matrix[0] == 0:
            raise ShapeError("radial data need image_shape=(Y, X), the size of the image to reconstruct")
    else:
        Y, X = (int(v) for v in image_shape)
        hdr.recon_matrix = (X, Y, 1)
    if hdr.encoded_matrix[0] == 0:
        hdr.encoded_matrix = hdr.recon_matrix
    if hdr.trajectory == "cartesian":
        hdr.trajectory = "radial"
    return RawData(kspace=k, kind="radial", trajectory=tr, noise=nz, header=hdr)
