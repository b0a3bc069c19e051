"""Read fastMRI raw files (Zbontar et al., arXiv:1811.08839) into :class:`~mridip.data.RawData`.

A fastMRI ``.h5`` holds

- ``kspace``: complex64 ``(slices, coils, height, width)`` (multi-coil) or
  ``(slices, height, width)`` (single-coil); height is the readout (usually oversampled
  twice, ``encodedSpace.x = 2 x reconSpace.x``), width the phase encodes. The k-space
  centre is at ``(height // 2, width // 2)``, as in mridip's convention.
- ``ismrmrd_header``: a scalar dataset holding the ismrmrdHeader XML as bytes.
- optional ``mask``: ``(width,)`` sampled phase-encode columns (test / challenge files),
  or a full ``(height, width)`` / ``(slices, height, width)`` mask.
- optional ``reconstruction_rss``: ``(slices, Y, X)`` root-sum-of-squares reference of
  the centre-cropped (recon matrix) image.

mridip reads the rows of the array as image rows (``Ky`` axis) and the columns as image
columns (``Kx``), so images look as fastMRI shows them. Readout oversampling (height
``> reconSpace.x``) is cropped in image space to the recon x, exactly as fastMRI's own
centre crop does along that axis; the phase-encode width is kept (its image is
``width`` wide, wider than the reference: compare after centre-cropping to the
reference's shape). One frame: ``T = 1``.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from mridip.data import Header, RawData
from mridip.errors import InputFileError
from mridip.io.ismrmrd import _corrupt, _open_h5, parse_header_xml


def _header_from_file(f, path: str, kshape: tuple[int, ...]) -> Header:
    if "ismrmrd_header" in f:
        try:
            xml = f["ismrmrd_header"][()]
        except (OSError, RuntimeError) as exc:
            raise _corrupt(path, exc) from exc
        if isinstance(xml, np.ndarray):
            xml = xml.reshape(-1)[0]
        return parse_header_xml(xml)
    # a kspace-only file: describe what the array says
    ky, kx = kshape[-2], kshape[-1]
    return Header(encoded_matrix=(ky, kx, 1), recon_matrix=(ky, kx, 1))


def _mask_from_file(f, S: int, H: int, W: int) -> np.ndarray | None:
    if "mask" not in f:
        return None
    m = np.asarray(f["mask"][()]).astype(bool)
    if m.ndim == 1 and m.shape[0] == W:
        return np.broadcast_to(m[None, None, :], (S, H, W))
    if m.ndim == 2 and m.shape == (H, W):
        return np.broadcast_to(m[None], (S, H, W))
    if m.ndim == 3 and m.shape == (S, H, W):
        return m
    raise InputFileError(
        f"the fastMRI 'mask' has shape {m.shape}, which fits neither (width,) = ({W},) nor "
        f"(height, width) = ({H}, {W}) nor (slices, height, width): drop or fix the mask"
    )


def read_fastmri(path: str | os.PathLike) -> RawData:
    """Read a fastMRI ``.h5`` file.

    Returns
    -------
    RawData
        Cartesian, ``kspace`` ``(S, 1, C, Ky, Kx)`` with ``Ky`` = height cropped to the
        recon x where the readout is oversampled, ``Kx`` = width; mask ``(S, 1, Ky, Kx)``
        from the file's ``mask`` (else "any coil nonzero"); unsampled entries set to 0;
        ``reference`` ``(S, 1, Y, X)`` from ``reconstruction_rss`` (else
        ``reconstruction_esc``) where present; ``format = "fastmri"``.

    Raises
    ------
    InputFileError
        Missing or truncated file, no ``kspace`` dataset, bad mask, NaN samples.
    """
    path = os.fspath(path)
    f = _open_h5(path)
    try:
        if "kspace" not in f:
            raise InputFileError(
                f"{path!r} has no 'kspace' dataset (holds {sorted(f.keys())}): it is not a fastMRI file"
            )
        dset = f["kspace"]
        shape = tuple(dset.shape)
        if len(shape) not in (3, 4) or not np.issubdtype(dset.dtype, np.complexfloating):
            raise InputFileError(
                f"fastMRI 'kspace' must be complex (slices, coils, height, width) or (slices, "
                f"height, width), got shape {shape} dtype {dset.dtype}"
            )
        header = _header_from_file(f, path, shape)
        S, H, W = shape[0], shape[-2], shape[-1]
        C = shape[1] if len(shape) == 4 else 1
        mask_file = _mask_from_file(f, S, H, W)
        rx = header.recon_matrix[0]
        crop = 0 < rx < H
        Ky = rx if crop else H
        kspace = np.empty((S, 1, C, Ky, W), dtype=np.complex64)
        mask = np.empty((S, 1, Ky, W), dtype=bool)
        for s in range(S):  # one slice at a time: the file is held in memory once
            try:
                ks = np.asarray(dset[s], dtype=np.complex64)
            except (OSError, RuntimeError, ValueError) as exc:
                raise _corrupt(path, exc) from exc
            if ks.ndim == 2:
                ks = ks[None]
            if not np.isfinite(ks.view(np.float32)).all():
                raise InputFileError(
                    f"slice {s} of {path!r} contains NaN or Inf k-space values: the file is "
                    "corrupt; copy it again or drop the slice"
                )
            m = mask_file[s] if mask_file is not None else (ks != 0).any(axis=0)
            ks = ks * m[None]
            if crop:
                from mridip.preprocess import crop_readout

                ks = crop_readout(torch.from_numpy(ks), Ky, axis=-2).numpy()
                # the readout is fully sampled in each measured column, so a column is
                # measured after the crop wherever it was measured in any row before
                m = np.broadcast_to(m.any(axis=0, keepdims=True), (Ky, W))
                ks = ks * m[None]
            kspace[s, 0] = ks
            mask[s, 0] = m
        reference = None
        for name in ("reconstruction_rss", "reconstruction_esc"):
            if name in f:
                ref = np.asarray(f[name][()])
                if ref.ndim == 3 and ref.shape[0] == S:
                    reference = ref[:, None]
                    header.extra["reference_name"] = name
                    break
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    except InputFileError:
        f.close()
        raise
    except (OSError, KeyError, RuntimeError) as exc:
        f.close()
        raise _corrupt(path, exc) from exc
    f.close()
    header.extra["fastmri_attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
    header.extra["readout_axis"] = "rows (Ky axis)"
    if crop:
        header.extra["readout_cropped"] = (H, Ky)
    return RawData(kspace=torch.from_numpy(kspace), kind="cartesian", mask=torch.from_numpy(mask),
                   header=header, reference=reference, format="fastmri", source=path)
