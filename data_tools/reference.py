"""Independent reference reconstructions of raw files, for tests and benchmarks.

Nothing here uses mridip's readers, coil maps or solvers: a file is read with the
``ismrmrd`` package and numpy only, and reconstructed with sigpy (its own ESPIRiT and
SENSE), so agreement with mridip checks mridip's reading, calibration and physics against
code written independently of it.
"""

from __future__ import annotations

import os

import numpy as np


def read_cartesian_ismrmrd(path: str | os.PathLike) -> dict:
    """A 2D Cartesian ISMRMRD file (one slice, one frame) as whitened numpy arrays.

    Lines go to row ``e1 - center + Ky // 2`` (encodingLimits centre), asymmetric echoes
    are placed by ``center_sample``, the readout oversampling is cropped in image space,
    and data and ACS lines (flags 20 / 21) are whitened with the Cholesky factor of the
    noise scan's covariance.

    Returns
    -------
    dict
        ``kspace`` complex64 ``(C, Ky, X)`` (all measured lines), ``acs`` complex64
        ``(C, Ky, X)`` (calibration lines only, 0 elsewhere).
    """
    import ismrmrd

    ds = ismrmrd.Dataset(os.fspath(path), "dataset", create_if_needed=False)
    try:
        enc = ismrmrd.xsd.CreateFromDocument(ds.read_xml_header()).encoding[0]
        acqs = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    finally:
        ds.close()
    ex, Ky, nx = enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y, enc.reconSpace.matrixSize.x
    centre = enc.encodingLimits.kspace_encoding_step_1.center
    noise, lines, acs = [], {}, {}
    for a in acqs:
        if a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            noise.append(a.data)
            continue
        full = np.zeros((a.data.shape[0], ex), np.complex64)
        off = ex // 2 - a.center_sample
        full[:, off : off + a.data.shape[1]] = a.data
        img = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(full, -1), axis=-1), -1)
        img = img[:, ex // 2 - nx // 2 : ex // 2 - nx // 2 + nx]
        line = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(img, -1), axis=-1), -1)
        row = a.idx.kspace_encode_step_1 - centre + Ky // 2
        lines[row] = line
        if a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) or a.is_flag_set(
                ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING):
            acs[row] = line
    C = next(iter(lines.values())).shape[0]
    W = np.eye(C, dtype=np.complex64)
    if noise:
        n = np.concatenate(noise, 1)
        W = np.linalg.inv(np.linalg.cholesky(n @ n.conj().T / n.shape[1]))
    ksp = np.zeros((C, Ky, nx), np.complex64)
    kacs = np.zeros_like(ksp)
    for r, v in lines.items():
        ksp[:, r] = W @ v
    for r, v in acs.items():
        kacs[:, r] = W @ v
    return {"kspace": ksp, "acs": kacs}


def sigpy_sense_cartesian(path: str | os.PathLike, iterations: int = 10) -> np.ndarray:
    """sigpy's SENSE of a Cartesian ISMRMRD file with sigpy's ESPIRiT on the file's ACS lines.

    ``iterations`` CG iterations from zero (sigpy ``SenseRecon``), as mridip's ``cg-sense``
    protocol runs. Returns the image complex ``(Y, X)``.
    """
    import sigpy.mri as mr

    d = read_cartesian_ismrmrd(path)
    mps = mr.app.EspiritCalib(d["acs"], show_pbar=False).run()
    return mr.app.SenseRecon(d["kspace"], mps, max_iter=iterations, show_pbar=False).run()


def sigpy_sense_radial(path: str | os.PathLike, image_size: int, iterations: int = 10) -> np.ndarray:
    """sigpy's SENSE of a one-frame radial ISMRMRD file: ramp-DCF gridding of the coil images,
    EspiritCalib on their k-space, SenseRecon on sigpy's NUFFT. Returns ``(N, N)``."""
    import ismrmrd
    import sigpy as sp
    import sigpy.mri as mr

    ds = ismrmrd.Dataset(os.fspath(path), "dataset", create_if_needed=False)
    try:
        acqs = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    finally:
        ds.close()
    acqs = [a for a in acqs if not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]
    N = int(image_size)
    ksp = np.concatenate([a.data for a in acqs], axis=1)  # (C, spokes * samples)
    cyc = np.concatenate([a.traj for a in acqs], axis=0)  # (K, 2): column 0 = kx, 1 = ky
    coord = np.stack([cyc[:, 1], cyc[:, 0]], axis=-1) * N  # sigpy: (y, x) in 1/FOV units
    dcf = np.sqrt((coord**2).sum(-1))
    imgs = sp.nufft_adjoint(ksp * dcf, coord, (ksp.shape[0], N, N))
    mps = mr.app.EspiritCalib(sp.fft(imgs, axes=(-2, -1)), show_pbar=False).run()
    return mr.app.SenseRecon(ksp, mps, coord=coord, max_iter=iterations, show_pbar=False).run()
