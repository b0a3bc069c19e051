"""Preprocessing of raw k-space: noise prewhitening, coil compression, readout-oversampling
crop and frame binning of radial spokes.

Everything here works on torch tensors (complex64 k-space) on the device they live on.
Order of use (what ``mridip recon`` does): read -> :func:`prewhiten` -> :func:`coil_compress`
-> coil maps -> reconstruction. Prewhitening comes first because coil compression by SVD
assumes coils with equal, uncorrelated noise (Buehrer et al., MRM 2007).

Shapes (DESIGN.md): Cartesian k-space ``(S, T, C, Ky, Kx)``, radial ``(S, T, C, K)``,
noise ``(C, N)``; the coil axis of :class:`~mridip.data.RawData` k-space is axis 2.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch

from mridip.data import RawData
from mridip.errors import ShapeError

__all__ = [
    "noise_covariance",
    "whitening_matrix",
    "prewhiten",
    "coil_compress",
    "crop_readout_oversampling",
    "crop_readout",
    "bin_spokes",
]


def _as_complex(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not t.is_complex():
        raise ShapeError(f"{name} must be complex (complex64), got dtype {t.dtype}")
    return t.to(torch.complex64)


# --------------------------------------------------------------------------- noise
def noise_covariance(noise: torch.Tensor) -> torch.Tensor:
    """Receiver noise covariance from noise-only samples.

    ``Psi = n n^H / N`` (noise is zero-mean, so the mean is not subtracted; this is the
    estimate of Roemer et al., MRM 1990 and Pruessmann et al., MRM 1999).

    Parameters
    ----------
    noise : torch.Tensor
        complex ``(C, N)`` noise samples of C coils.

    Returns
    -------
    torch.Tensor
        complex64 ``(C, C)`` Hermitian covariance, computed in double precision.
    """
    n = torch.as_tensor(noise)
    if n.ndim != 2 or not n.is_complex():
        raise ShapeError(
            f"noise must be a complex (C, N) tensor of noise-only samples, got "
            f"{tuple(n.shape)} {n.dtype}"
        )
    if n.shape[1] == 0:
        raise ShapeError("noise has no samples (N = 0): there is nothing to estimate a covariance from")
    n = n.to(torch.complex128)
    cov = (n @ n.conj().T) / n.shape[1]
    return cov.to(torch.complex64)


def whitening_matrix(cov: torch.Tensor) -> torch.Tensor:
    """Noise whitening matrix ``W = L^{-1}`` with ``cov = L L^H`` (Cholesky).

    Then ``W cov W^H = I``: applying ``W`` along the coil axis leaves coils with unit,
    uncorrelated noise.

    Parameters
    ----------
    cov : torch.Tensor
        complex ``(C, C)`` Hermitian positive definite noise covariance.

    Returns
    -------
    torch.Tensor
        complex64 ``(C, C)`` lower-triangular ``W``.
    """
    c = torch.as_tensor(cov)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ShapeError(f"noise covariance must be square (C, C), got {tuple(c.shape)}")
    c = c.to(torch.complex128)
    c = 0.5 * (c + c.conj().T)  # remove round-off asymmetry before Cholesky
    L, info = torch.linalg.cholesky_ex(c)
    if int(info) != 0:
        raise ShapeError(
            "the noise covariance is not positive definite (a dead or duplicated coil, or "
            f"fewer noise samples than coils): Cholesky failed at column {int(info) - 1}; "
            "drop that coil or skip prewhitening"
        )
    eye = torch.eye(c.shape[0], dtype=c.dtype, device=c.device)
    W = torch.linalg.solve_triangular(L, eye, upper=False)
    return W.to(torch.complex64)


def _apply_coil_matrix(M: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``M`` (C', C) applied along axis 2 of ``k`` (S, T, C, ...)."""
    M = M.to(device=k.device, dtype=k.dtype)
    shp = k.shape
    flat = k.reshape(shp[0], shp[1], shp[2], -1)
    out = torch.einsum("dc,stcn->stdn", M, flat)
    return out.reshape(shp[0], shp[1], M.shape[0], *shp[3:])


def _calibration_through(M: torch.Tensor, raw: RawData) -> torch.Tensor | None:
    """The calibration k-space ``(S, C, Ky, Kx)`` through the coil matrix ``M`` (C', C)."""
    if raw.calibration is None:
        return None
    return _apply_coil_matrix(M, raw.calibration[:, None])[:, 0]


def prewhiten(raw: RawData) -> RawData:
    """Noise-prewhiten k-space and noise with the file's noise scan.

    ``y_w = W y`` along the coil axis with ``W`` from :func:`whitening_matrix` of
    :func:`noise_covariance` of ``raw.noise``; afterwards the noise of every coil has
    unit variance and no correlation, so k-space is in units of the noise standard
    deviation. The mask and trajectory are unchanged.

    If ``raw.noise`` is None (no noise scan in the file), the data are returned unchanged
    and ``"prewhiten: skipped, no noise scan"`` is appended to the history, so a protocol
    that asks for prewhitening still runs on files without noise scans.

    Returns
    -------
    RawData
        A new object (the input is not modified); history gets ``"prewhiten"``.
    """
    if raw.noise is None:
        return dataclasses.replace(raw, history=[*raw.history, "prewhiten: skipped, no noise scan"])
    W = whitening_matrix(noise_covariance(raw.noise)).to(raw.kspace.device)
    k = _apply_coil_matrix(W, raw.kspace)
    noise = (W.to(raw.noise.device) @ raw.noise.to(torch.complex64))
    return dataclasses.replace(raw, kspace=k, noise=noise, calibration=_calibration_through(W, raw),
                               history=[*raw.history, "prewhiten"])


# ------------------------------------------------------------------ coil compression
def coil_compress(raw: RawData, num_coils: int | None = None, energy: float | None = None) -> RawData:
    """Compress the receive coils to fewer virtual coils by PCA (SVD) of all samples.

    With ``X`` the ``(C, M)`` matrix of all measured samples of all slices and frames,
    ``X X^H = U diag(lambda) U^H`` (eigenvalues descending); virtual coils are
    ``y_v = U[:, :k]^H y`` (Huang et al., MRI 2008; Buehrer et al., MRM 2007). The virtual
    coils are uncorrelated over the data and hold the fraction
    ``sum(lambda[:k]) / sum(lambda)`` of the signal energy. Noise samples are compressed
    with the same matrix. Prewhiten first so that the PCA ranks signal, not coil noise.

    Parameters
    ----------
    raw : RawData
    num_coils : int, optional
        Number of virtual coils k.
    energy : float, optional
        Keep the fewest virtual coils holding at least this fraction (0 < energy <= 1)
        of the energy. Give exactly one of ``num_coils`` and ``energy``.

    Returns
    -------
    RawData
        New object, ``C = k``; history gets ``"coil_compress: C -> k (energy e)"``.
    """
    if (num_coils is None) == (energy is None):
        raise ShapeError("coil_compress needs exactly one of num_coils (an int) or energy (a fraction in (0, 1])")
    C = raw.num_coils
    if num_coils is not None and not 1 <= int(num_coils) <= C:
        raise ShapeError(f"num_coils must be between 1 and the {C} coils of the data, got {num_coils}")
    if energy is not None and not 0.0 < float(energy) <= 1.0:
        raise ShapeError(f"energy must be a fraction in (0, 1], got {energy}")
    k = raw.kspace
    # accumulate X X^H slice by slice so no (C, M) copy of all data is made at once
    cov = torch.zeros((C, C), dtype=torch.complex128, device=k.device)
    for s in range(k.shape[0]):
        xs = k[s].transpose(0, 1).reshape(C, -1).to(torch.complex128)  # (C, T * samples)
        cov += xs @ xs.conj().T
    lam, U = torch.linalg.eigh(cov)  # ascending
    lam = lam.flip(0).clamp_min(0.0)
    U = U.flip(1)
    total = float(lam.sum())
    if total <= 0.0:
        raise ShapeError("coil_compress: the k-space is all zeros, there is nothing to compress")
    frac = torch.cumsum(lam, 0) / total
    if num_coils is not None:
        n = int(num_coils)
    else:
        # fewest coils whose cumulative energy reaches the target (tolerate round-off)
        n = int((frac < float(energy) - 1e-9).sum()) + 1
        n = min(n, C)
    A = U[:, :n].conj().T.to(torch.complex64)  # (k, C)
    kc = _apply_coil_matrix(A, k)
    noise = None if raw.noise is None else A.to(raw.noise.device) @ raw.noise.to(torch.complex64)
    kept = float(frac[n - 1])
    note = f"coil_compress: {C} -> {n} virtual coils (energy {kept:.4f})"
    return dataclasses.replace(raw, kspace=kc, noise=noise, calibration=_calibration_through(A, raw),
                               history=[*raw.history, note])


# ---------------------------------------------------------------- readout oversampling
def crop_readout(kspace: torch.Tensor, size: int, axis: int = -1) -> torch.Tensor:
    """Crop k-space along one axis to ``size`` samples by a centred crop in image space.

    ``k_out = F_n(crop_n(F_N^{-1} k))`` with centred orthonormal 1-D FFTs: the image along
    the readout is cut to its central ``size`` pixels (start ``N//2 - size//2``), which
    removes the oversampled field of view exactly and keeps the noise variance per sample.

    Parameters
    ----------
    kspace : torch.Tensor
        complex ``(..., N, ...)``.
    size : int
        Samples to keep along ``axis`` (<= N).
    axis : int
        The readout axis (default last).
    """
    k = _as_complex(kspace, "kspace")
    N = k.shape[axis]
    if not 1 <= size <= N:
        raise ShapeError(f"cannot crop a readout of {N} samples to {size}")
    if size == N:
        return k
    img = torch.fft.fftshift(
        torch.fft.ifft(torch.fft.ifftshift(k, dim=axis), dim=axis, norm="ortho"), dim=axis
    )
    start = N // 2 - size // 2
    img = img.narrow(axis, start, size)
    return torch.fft.fftshift(
        torch.fft.fft(torch.fft.ifftshift(img, dim=axis), dim=axis, norm="ortho"), dim=axis
    )


def crop_readout_oversampling(kspace: torch.Tensor, factor: float = 2.0, axis: int = -1) -> torch.Tensor:
    """Remove readout oversampling: ``(..., Kx)`` -> ``(..., Kx / factor)``.

    Scanners sample the readout ``factor`` times finer than the image needs (usually 2,
    ``encodedSpace.x = 2 x reconSpace.x`` in ISMRMRD) to keep aliasing out of the field
    of view; the image is cut back to the central ``1/factor`` of the doubled field of
    view along x (see :func:`crop_readout`).

    Parameters
    ----------
    kspace : torch.Tensor
        complex ``(..., Kx)`` with the readout on ``axis`` (default last).
    factor : float
        Oversampling factor; ``Kx / factor`` must be a whole number.

    Returns
    -------
    torch.Tensor
        complex64 ``(..., Kx / factor)``.
    """
    k = _as_complex(kspace, "kspace")
    N = k.shape[axis]
    n = N / float(factor)
    if factor < 1 or abs(n - round(n)) > 1e-6:
        raise ShapeError(
            f"readout of {N} samples cannot be cropped by oversampling factor {factor}: "
            "N / factor must be a whole number >= 1"
        )
    return crop_readout(k, int(round(n)), axis=axis)


# ------------------------------------------------------------------------ binning
def bin_spokes(
    spokes: torch.Tensor, trajectory: torch.Tensor, spokes_per_frame: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group consecutive radial spokes into frames.

    Frame t holds spokes ``t*spf ... (t+1)*spf - 1`` in acquisition order, spoke-major
    along K (all samples of its first spoke, then the next, ...). An incomplete last
    frame (fewer than ``spokes_per_frame`` spokes left) is dropped, with a warning
    saying how many spokes were dropped.

    Parameters
    ----------
    spokes : torch.Tensor
        complex ``(C, N_spokes, samples)``.
    trajectory : torch.Tensor
        float ``(2, N_spokes, samples)`` in radians/voxel, component 0 = ky, 1 = kx.
    spokes_per_frame : int

    Returns
    -------
    kspace : torch.Tensor
        complex64 ``(T, C, K)``, ``T = N_spokes // spokes_per_frame``,
        ``K = spokes_per_frame * samples``.
    trajectory : torch.Tensor
        float32 ``(T, 2, K)``.
    """
    y = _as_complex(spokes, "spokes")
    tr = torch.as_tensor(trajectory)
    if y.ndim != 3:
        raise ShapeError(f"spokes must be (C, N_spokes, samples), got {tuple(y.shape)}")
    C, n_sp, ns = y.shape
    if tuple(tr.shape) != (2, n_sp, ns):
        raise ShapeError(f"trajectory must be (2, N_spokes, samples) = {(2, n_sp, ns)}, got {tuple(tr.shape)}")
    spf = int(spokes_per_frame)
    if spf < 1:
        raise ShapeError(f"spokes_per_frame must be >= 1, got {spokes_per_frame}")
    T = n_sp // spf
    if T == 0:
        raise ShapeError(
            f"only {n_sp} spokes, fewer than spokes_per_frame = {spf}: lower spokes_per_frame"
        )
    left = n_sp - T * spf
    if left:
        warnings.warn(
            f"bin_spokes: {n_sp} spokes do not fill whole frames of {spf}; the last {left} "
            f"spoke(s) are dropped ({T} frames kept)",
            stacklevel=2,
        )
    y = y[:, : T * spf].reshape(C, T, spf * ns).transpose(0, 1).contiguous()
    tr = tr[:, : T * spf].to(torch.float32).reshape(2, T, spf * ns).transpose(0, 1).contiguous()
    return y, tr
