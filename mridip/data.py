"""The two data types every module boundary speaks: :class:`RawData` and :class:`Reconstruction`.

Shapes (DESIGN.md order, always):

- Cartesian k-space ``(S, T, C, Ky, Kx)`` complex64 with sampling mask ``(S, T, Ky, Kx)`` bool
- radial k-space ``(S, T, C, K)`` complex64 with trajectory ``(S, T, 2, K)`` float32 in
  radians/voxel in [-pi, pi); component 0 = ky (image rows, Y), component 1 = kx (columns, X)
- noise samples ``(C, N)`` complex64
- calibration (ACS) k-space ``(S, C, Ky, Kx)`` complex64 on the Cartesian grid of the data,
  with its mask ``(S, Ky, Kx)`` bool (Cartesian only; ``None`` where the file has none)
- images ``(S, T, Y, X)`` complex64

Several slices are a leading ``S`` axis (never a list); ``raw.slice(s)`` gives the data of one
slice with ``S = 1``, and ``raw.kspace[s]`` its ``(T, C, ...)`` tensor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mridip.errors import InputFileError, ShapeError

KINDS = ("cartesian", "radial")


@dataclass
class Header:
    """What a raw file says about its acquisition.

    Matrix sizes follow ISMRMRD: ``(x, y, z)`` = (readout, phase encode, partition).
    FOVs are in mm, times in ms, field strength in tesla. ``None`` / empty where the
    file does not say.
    """

    encoded_matrix: tuple[int, int, int] = (0, 0, 1)
    recon_matrix: tuple[int, int, int] = (0, 0, 1)
    encoded_fov_mm: tuple[float, float, float] | None = None
    recon_fov_mm: tuple[float, float, float] | None = None
    field_strength_t: float | None = None
    te_ms: list[float] = field(default_factory=list)
    tr_ms: list[float] = field(default_factory=list)
    ti_ms: list[float] = field(default_factory=list)
    flip_angle_deg: list[float] = field(default_factory=list)
    readout_oversampling: float = 1.0
    ky_center: int | None = None
    calibration_lines: int = 0
    noise_scans: int = 0
    trajectory: str = "cartesian"
    system: str | None = None
    xml: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int]:
        """Reconstructed image size ``(Y, X)`` from the recon matrix."""
        return (int(self.recon_matrix[1]), int(self.recon_matrix[0]))


@dataclass
class RawData:
    """Raw k-space of one acquisition, ready for preprocessing and reconstruction.

    Attributes
    ----------
    kspace : torch.Tensor
        complex64, Cartesian ``(S, T, C, Ky, Kx)`` (unsampled entries are 0) or radial
        ``(S, T, C, K)``.
    kind : str
        ``"cartesian"`` or ``"radial"``.
    mask : torch.Tensor or None
        bool ``(S, T, Ky, Kx)``, True where a line/sample was measured (Cartesian only).
    trajectory : torch.Tensor or None
        float32 ``(S, T, 2, K)``, radians/voxel in [-pi, pi), (ky, kx) order (radial only).
    noise : torch.Tensor or None
        complex64 ``(C, N)`` noise-only samples (noise scans), same receiver scaling as data.
    calibration : torch.Tensor or None
        complex64 ``(S, C, Ky, Kx)`` (Cartesian only): every acquisition flagged parallel
        calibration (ISMRMRD bit 20) or calibration-and-imaging (bit 21), placed on the same
        grid as ``kspace`` (same readout crop, same line centring), averaged over frames and
        repeats, 0 where not measured. Coil maps are estimated from it where present
        (:func:`mridip.coils.estimate_maps`); whether calibration-only lines are also in
        ``kspace`` is the reader's ``calibration`` choice (``header.extra["calibration_use"]``).
    calibration_mask : torch.Tensor or None
        bool ``(S, Ky, Kx)``, True where ``calibration`` was measured.
    header : Header
    reference : numpy.ndarray or None
        ``(S, T, Y, X)`` reference image when the file carries one (fastMRI's
        ``reconstruction_rss``); magnitude or complex.
    format : str
        ``"ismrmrd"``, ``"fastmri"`` or ``"arrays"``.
    source : str or None
        Path of the file it came from.
    history : list of str
        Preprocessing steps applied, in order (e.g. ``"prewhiten"``).
    """

    kspace: torch.Tensor
    kind: str
    header: Header = field(default_factory=Header)
    mask: torch.Tensor | None = None
    trajectory: torch.Tensor | None = None
    noise: torch.Tensor | None = None
    calibration: torch.Tensor | None = None
    calibration_mask: torch.Tensor | None = None
    reference: np.ndarray | None = None
    format: str = "arrays"
    source: str | None = None
    history: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    def __repr__(self) -> str:
        """One line of what the data are (the tensors' values would fill pages)."""
        k = tuple(self.kspace.shape)
        parts = [f"{self.kind}", f"kspace {k} {str(self.kspace.dtype).replace('torch.', '')}"]
        if self.mask is not None:
            parts.append(f"mask {tuple(self.mask.shape)}")
        if self.trajectory is not None:
            parts.append(f"trajectory {tuple(self.trajectory.shape)}")
        parts += [f"{self.num_slices} slice(s)", f"{self.num_frames} frame(s)", f"{self.num_coils} coils",
                  f"image {self.image_shape}"]
        parts.append(f"{self.header.calibration_lines} calibration lines" if self.calibration is not None
                     else "no calibration data")
        parts.append("noise " + (f"{tuple(self.noise.shape)}" if self.noise is not None else "none"))
        if self.reference is not None:
            parts.append(f"reference {tuple(np.shape(self.reference))}")
        if self.history:
            parts.append("history " + "+".join(self.history))
        parts += [f"format {self.format}", f"source {self.source!r}"]
        return "RawData(" + ", ".join(parts) + ")"

    __str__ = __repr__

    # ------------------------------------------------------------------ shapes
    @property
    def num_slices(self) -> int:
        return int(self.kspace.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.kspace.shape[1])

    @property
    def num_coils(self) -> int:
        return int(self.kspace.shape[2])

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(Y, X)`` of the images to reconstruct.

        Cartesian: the k-space grid ``(Ky, Kx)`` (readout oversampling already cropped).
        Radial: the header's recon matrix.
        """
        if self.kind == "cartesian":
            return (int(self.kspace.shape[-2]), int(self.kspace.shape[-1]))
        return self.header.image_shape

    def slice(self, s: int) -> "RawData":
        """The data of slice ``s`` as a :class:`RawData` with ``S = 1`` (views, no copy)."""
        if not 0 <= s < self.num_slices:
            raise IndexError(f"slice {s} out of range: the data has {self.num_slices} slice(s)")
        ref = None if self.reference is None else self.reference[s : s + 1]
        return dataclasses.replace(
            self,
            kspace=self.kspace[s : s + 1],
            mask=None if self.mask is None else self.mask[s : s + 1],
            trajectory=None if self.trajectory is None else self.trajectory[s : s + 1],
            calibration=None if self.calibration is None else self.calibration[s : s + 1],
            calibration_mask=None if self.calibration_mask is None else self.calibration_mask[s : s + 1],
            reference=ref,
            history=list(self.history),
        )

    def validate(self) -> None:
        """Check shapes, dtypes and finiteness; raise a clear error naming the problem."""
        k = self.kspace
        if self.kind not in KINDS:
            raise ShapeError(f"RawData.kind must be one of {KINDS}, got {self.kind!r}")
        if not torch.is_tensor(k) or not k.is_complex():
            raise ShapeError("RawData.kspace must be a complex torch tensor (complex64)")
        if self.kind == "cartesian":
            if k.ndim != 5:
                raise ShapeError(
                    f"Cartesian k-space must be (S, T, C, Ky, Kx), got shape {tuple(k.shape)}"
                )
            if self.mask is None:
                raise ShapeError("Cartesian RawData needs a sampling mask (S, T, Ky, Kx)")
            want = (k.shape[0], k.shape[1], k.shape[3], k.shape[4])
            if tuple(self.mask.shape) != want:
                raise ShapeError(
                    f"Cartesian mask must be (S, T, Ky, Kx) = {want}, got {tuple(self.mask.shape)}"
                )
        else:
            if k.ndim != 4:
                raise ShapeError(f"radial k-space must be (S, T, C, K), got shape {tuple(k.shape)}")
            if self.trajectory is None:
                raise ShapeError(
                    "radial RawData needs a trajectory (S, T, 2, K) in radians/voxel; an "
                    "ISMRMRD radial file must carry it in each acquisition's traj field"
                )
            want = (k.shape[0], k.shape[1], 2, k.shape[3])
            if tuple(self.trajectory.shape) != want:
                raise ShapeError(
                    f"radial trajectory must be (S, T, 2, K) = {want}, "
                    f"got {tuple(self.trajectory.shape)}"
                )
            if self.trajectory.abs().max() > np.pi + 1e-4:
                raise ShapeError(
                    "radial trajectory exceeds pi radians/voxel: it must be in radians/voxel "
                    "in [-pi, pi) (files use cycles/pixel in [-0.5, 0.5); convert with "
                    "mridip.trajectories.cycles_to_radians)"
                )
        if (self.calibration is None) != (self.calibration_mask is None):
            raise ShapeError("RawData.calibration and calibration_mask go together: give both or neither")
        if self.calibration is not None:
            if self.kind != "cartesian":
                raise ShapeError("RawData.calibration is for Cartesian data (radial data calibrate on their own spokes)")
            want = (k.shape[0], k.shape[2], k.shape[3], k.shape[4])
            if not torch.is_tensor(self.calibration) or not self.calibration.is_complex() \
                    or tuple(self.calibration.shape) != want:
                raise ShapeError(
                    f"RawData.calibration must be complex (S, C, Ky, Kx) = {want}, got "
                    f"{tuple(getattr(self.calibration, 'shape', ()))}"
                )
            if tuple(self.calibration_mask.shape) != (want[0], want[2], want[3]):
                raise ShapeError(
                    f"RawData.calibration_mask must be (S, Ky, Kx) = {(want[0], want[2], want[3])}, "
                    f"got {tuple(self.calibration_mask.shape)}"
                )
        if not torch.isfinite(torch.view_as_real(k)).all():
            raise InputFileError(
                "k-space contains NaN or Inf values: the file is corrupt or was written "
                "wrongly; fix or drop the affected acquisitions before reconstructing"
            )
        if self.noise is not None and (self.noise.ndim != 2 or self.noise.shape[0] != k.shape[2]):
            raise ShapeError(
                f"noise samples must be (C, N) with C = {k.shape[2]} coils, "
                f"got {tuple(self.noise.shape)}"
            )


@dataclass
class Reconstruction:
    """A reconstructed image series with its provenance.

    Attributes
    ----------
    image : numpy.ndarray
        complex64 ``(S, T, Y, X)``.
    method : str
        Name of the method (e.g. ``"tddip"``, ``"cg-sense"``).
    attrs : dict
        Provenance written as file attributes: protocol (TOML text after overrides),
        mridip version, device, seed, iterations, stop reason, wall seconds, ...
    parameter_maps : dict of str -> numpy.ndarray
        float32 ``(S, Y, X)`` maps (parameter mapping only), times in ms.
    reference : numpy.ndarray or None
        ``(S, T, Y, X)`` reference carried over from the input, if it had one.
    log : dict of str -> numpy.ndarray
        Per-iteration records of the fit (``iteration``, ``loss``, ``val_loss``, ...).
    coil_maps : numpy.ndarray or None
        complex64 ``(S, C, Y, X)``: the coil maps the reconstruction used (saved in the
        output file and reusable with ``--coil-maps FILE``).
    motion : dict of str -> numpy.ndarray
        Motion-corrected methods only (written under ``motion/``): ``displacement``
        float32 ``(S, T, 2, Y, X)`` pixels (component 0 = y, 1 = x; pull field of
        :func:`mridip.operators.motion.warp`), ``template`` complex64 ``(S, T, Y, X)``
        and surrogate curves ``(S, T)`` (``respiratory``, ``cardiac``, ``*_phase``).

    Notes
    -----
    Why numpy here and torch in :class:`RawData`: raw data go *into* the computation
    (operators, coil estimation, on CPU or GPU), so they are torch tensors that
    ``.to(device)`` moves; a reconstruction is a *result* (written to files, plotted,
    scored), always on the CPU, so it is numpy. Convert with ``torch.from_numpy(recon.image)``
    and ``raw.kspace.numpy()``.
    """

    image: np.ndarray
    method: str
    attrs: dict[str, Any] = field(default_factory=dict)
    parameter_maps: dict[str, np.ndarray] = field(default_factory=dict)
    reference: np.ndarray | None = None
    log: dict[str, np.ndarray] = field(default_factory=dict)
    coil_maps: np.ndarray | None = None
    motion: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        img = np.asarray(self.image)
        if img.ndim == 2:
            img = img[None, None]
        elif img.ndim == 3:
            img = img[None]
        if img.ndim != 4:
            raise ShapeError(
                f"Reconstruction.image must be (S, T, Y, X), got shape {tuple(img.shape)}"
            )
        self.image = img.astype(np.complex64, copy=False)
        if self.coil_maps is not None:
            maps = self.coil_maps
            maps = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps)
            if maps.ndim == 3:
                maps = maps[None]
            if maps.ndim != 4:
                raise ShapeError(f"Reconstruction.coil_maps must be (S, C, Y, X), got shape {tuple(maps.shape)}")
            self.coil_maps = maps.astype(np.complex64, copy=False)

    def __repr__(self) -> str:
        extra = [f"maps {', '.join(self.parameter_maps)}"] if self.parameter_maps else []
        if self.coil_maps is not None:
            extra.append(f"coil_maps {tuple(self.coil_maps.shape)}")
        return (f"Reconstruction({self.method}, image {tuple(self.image.shape)} (S, T, Y, X)"
                + "".join(", " + e for e in extra) + f", {len(self.attrs)} attrs)")
