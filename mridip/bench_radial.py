"""Radial timings at real sizes: NUFFT backends, coil-map set-up and CG-SENSE, against sigpy.

Functions return lists of dicts (one per timed item) so that :mod:`mridip.bench` can print
them in its table:

:func:`backend_rows`
    Forward, adjoint, forward + adjoint, Toeplitz normal and operator set-up (Toeplitz
    kernels) of :class:`~mridip.operators.radial.RadialSense` with each NUFFT backend on
    the reference cine case (128 x 128, 20 frames, 8 coils, 13 spokes x 256 samples).
:func:`radial_setup_case`
    The measured problem of issue 18 simulated in memory: one 192 x 192 frame, 16 coils,
    69 golden-angle spokes x 384 samples (twofold readout oversampling). Times
    :func:`mridip.coils.estimate_maps` (ESPIRiT on the density-compensated gridding) and
    30 iterations of :func:`mridip.recon.baselines.cg_sense` per backend, and the same
    pipeline in sigpy (ramp DCF gridding, ``EspiritCalib``, ``SenseRecon`` 30 CG
    iterations), with the quality of each (maps against the true ones, image NRMSE).

Every timing is one wall-clock measurement after a warm-up (the set-up cases are too long
to repeat on a shared machine); ``cpu_seconds`` is the process CPU time of the same run.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from mridip.bench import _sync, time_call


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float, object]:
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0, out


# ------------------------------------------------------------------ operator timings
def backend_rows(device: str | torch.device = "cpu", *, size: int = 128, frames: int = 20, coils: int = 8,
                 spokes: int = 13, samples: int = 256, repeats: int = 3,
                 backends: list[str] | None = None) -> list[dict]:
    """Operator timings of :class:`RadialSense` per NUFFT backend.

    Returns
    -------
    list of dict
        ``{"name", "backend", "case", "device", "seconds", "cpu_seconds", "threads"}``,
        names ``radial_setup`` (construction with Toeplitz kernels), ``radial_forward``,
        ``radial_adjoint``, ``radial_forward_adjoint``, ``radial_normal``; plus one
        ``radial_backend_agreement`` row with the relative difference of each backend's
        forward from the first backend's.
    """
    from mridip.operators import RadialSense, available_backends
    from mridip.trajectories import radial_trajectory

    dev = torch.device(device)
    backends = list(backends or available_backends(dev))
    g = torch.Generator().manual_seed(0)
    case = f"{size}x{size}x{frames} C{coils} {spokes}x{samples}"
    maps = torch.randn(coils, size, size, dtype=torch.complex64, generator=g).to(dev)
    traj = radial_trajectory(frames, spokes, samples).to(dev)
    x = torch.randn(frames, size, size, dtype=torch.complex64, generator=g).to(dev)
    rows: list[dict] = []
    ref = None
    for b in backends:
        setup, setup_cpu, A = _timed(lambda: RadialSense(maps, traj, backend=b), dev)
        rows.append({"name": "radial_setup", "backend": b, "case": case, "device": dev.type,
                     "seconds": setup, "cpu_seconds": setup_cpu, "threads": torch.get_num_threads()})
        with torch.no_grad():
            y = A(x)
            calls = {
                "radial_forward": lambda: A(x),
                "radial_adjoint": lambda: A.adjoint(y),
                "radial_forward_adjoint": lambda: A.adjoint(A(x)),
                "radial_normal": lambda: A.normal(x),
            }
            for name, fn in calls.items():
                sec = time_call(fn, repeats=repeats, warmup=1, device=dev)
                rows.append({"name": name, "backend": b, "case": case, "device": dev.type, "seconds": sec,
                             "cpu_seconds": time_call.last_cpu_seconds, "threads": torch.get_num_threads()})
            if ref is None:
                ref = y
            diff = float(torch.linalg.vector_norm(y - ref) / torch.linalg.vector_norm(ref))
        rows.append({"name": "radial_backend_agreement", "backend": b, "case": case, "device": dev.type,
                     "seconds": None, "rel_diff_forward": diff, "reference_backend": backends[0]})
    return rows


# ---------------------------------------------------------------- set-up + CG-SENSE
def _simulated_radial(size: int, coils: int, spokes: int, samples: int, seed: int, snr: float):
    """Cine phantom frame 0, normalised Biot-Savart coil maps, golden-angle k-space (finufft forward)."""
    from data_tools.phantom import cardiac_cine_phantom, coil_sensitivities
    from mridip.data import Header, RawData
    from mridip.operators import RadialSense, default_backend
    from mridip.trajectories import radial_trajectory

    imgs, _ = cardiac_cine_phantom(size, 1, seed=seed)
    x = torch.from_numpy(np.asarray(imgs)).to(torch.complex64)  # (1, Y, X)
    maps = torch.from_numpy(coil_sensitivities(coils, (size, size), seed=seed, normalize=True)).to(torch.complex64)
    traj = radial_trajectory(1, spokes, samples)  # (1, 2, K)
    A = RadialSense(maps, traj, toeplitz=False, backend=default_backend("cpu"))
    with torch.no_grad():
        y = A(x)  # (1, C, K)
    g = torch.Generator().manual_seed(seed + 1)
    sigma = float(y.abs().pow(2).mean().sqrt()) / snr
    y = y + sigma * torch.randn(y.shape, dtype=torch.complex64, generator=g)
    header = Header(recon_matrix=(size, size, 1), encoded_matrix=(samples, size, 1), trajectory="radial")
    raw = RawData(kspace=y[None], kind="radial", trajectory=traj[None], header=header)
    return raw, x, maps


def _map_error(maps: torch.Tensor, true: torch.Tensor, support: torch.Tensor) -> float:
    """Median over the object of 1 - |<S, S_true>| (1 = orthogonal; phase-invariant)."""
    ov = (maps.conj() * true).sum(0).abs()
    return float((1 - ov[support]).median())


def _nrmse(x: torch.Tensor, ref: torch.Tensor, support: torch.Tensor) -> float:
    """NRMSE of magnitudes inside ``support`` after the least-squares scale (package metric)."""
    a, b = x.abs()[..., support].double(), ref.abs()[..., support].double()
    s = float((a * b).sum() / (a * a).sum().clamp_min(1e-30))
    return float(torch.linalg.vector_norm(s * a - b) / torch.linalg.vector_norm(b))


def _sigpy_pipeline(raw, iterations: int) -> tuple[dict, np.ndarray, np.ndarray]:
    import sigpy as sp
    import sigpy.mri as mr

    Y, X = raw.image_shape
    y = raw.kspace[0, 0].numpy()  # (C, K)
    traj = raw.trajectory[0, 0].numpy().astype(np.float64)  # (2, K) radians/voxel
    coord = (traj * (np.array([Y, X])[:, None] / (2 * math.pi))).T.astype(np.float32)  # (K, 2) pixels
    times = {}
    t0 = time.perf_counter()
    dcf = np.linalg.norm(coord, axis=1)  # ramp
    dcf = dcf / dcf.max()
    imgs = sp.nufft_adjoint(y * dcf, coord, oshape=(y.shape[0], Y, X))
    ksp = sp.fft(imgs, axes=(-2, -1))
    times["gridding"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mps = mr.app.EspiritCalib(ksp, calib_width=24, show_pbar=False).run()
    times["espirit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    img = mr.app.SenseRecon(y, mps, coord=coord, max_iter=iterations, show_pbar=False).run()
    times["cg_sense"] = time.perf_counter() - t0
    return times, np.asarray(mps), np.asarray(img)


def radial_setup_case(*, size: int = 192, coils: int = 16, spokes: int = 69, samples: int = 384,
                      iterations: int = 30, backends: list[str] | None = None, sigpy: bool = True,
                      old_pipe: bool = False, seed: int = 0, snr: float = 30.0, warmup: bool = True) -> list[dict]:
    """Coil maps + CG-SENSE on one simulated radial frame, per backend and in sigpy (CPU).

    Parameters
    ----------
    size, coils, spokes, samples : int
        Image ``size x size``, coils, golden-angle spokes x readout samples (one frame).
    iterations : int
        CG-SENSE iterations (run to the end: ``tol = 0``).
    backends : list of str, optional
        NUFFT backends (default: all available on CPU).
    sigpy : bool
        Also run the sigpy pipeline (ramp DCF gridding, ``EspiritCalib``, ``SenseRecon``).
    old_pipe : bool
        Also time the maps as before issue 18 with torchkbnufft: Pipe DCF (30 iterations,
        the protocol default) and torchkbnufft gridding.
    warmup : bool
        First run every pipeline once on a 32 x 32, 2-coil case, so one-time costs (library
        loading, torchkbnufft's kernel scripting, first calls of LAPACK) are not timed.

    Returns
    -------
    list of dict
        One row per pipeline: ``{"name", "backend", "case", "maps_seconds", "dcf",
        "operator_seconds", "cg_seconds", "total_seconds", "map_error", "nrmse", "threads"}``
        (``map_error``: median over the object of ``1 - |<S, S_true>|``; ``nrmse``: the
        CG-SENSE image against the phantom inside the maps' support).
    """
    from mridip.coils import _gridded_coil_images, espirit, estimate_maps
    from mridip.fft import fft2c
    from mridip.operators import RadialSense, available_backends
    from mridip.recon.baselines import cg_sense
    from mridip.trajectories import full_spoke_samples

    dev = torch.device("cpu")
    if warmup:
        radial_setup_case(size=32, coils=2, spokes=8, samples=64, iterations=2, backends=backends,
                          sigpy=sigpy, old_pipe=old_pipe, seed=seed, snr=snr, warmup=False)
    raw, x_true, true_maps = _simulated_radial(size, coils, spokes, samples, seed, snr)
    support = x_true[0].abs() > 0.05 * float(x_true.abs().max())
    case = f"{size}x{size} C{coils} {spokes}x{samples} T1"
    y = raw.kspace[0]
    rows = []
    backends = list(backends or available_backends(dev))
    spokes_full = full_spoke_samples(raw.trajectory[0]) is not None

    def maps_with(backend: str, dcf: str, its):
        if backend == "finufft":  # what estimate_maps runs ("auto" resolves to finufft here)
            return estimate_maps(raw, "espirit", dcf=dcf, dcf_iterations=its)
        imgs = _gridded_coil_images(raw, dcf, its, dev, backend=backend)
        return espirit(fft2c(imgs))

    # finufft: what estimate_maps runs by default here (Pipe, 30 iterations as in the
    # protocol default, with finufft's spreading); torchkbnufft: the ramp (what "auto"
    # picks without finufft) and, with old_pipe, Pipe as before issue 18
    variants = [(b, "pipe", 30) if b == "finufft" else (b, "ramp" if spokes_full else "pipe", 30) for b in backends]
    if "finufft" in backends:
        variants.append(("finufft", "ramp", None))
    if old_pipe and "torchkbnufft" in backends:
        variants.append(("torchkbnufft", "pipe", 30))
    for b, dcf, its in variants:
        tm, cm, (maps, valid) = _timed(lambda: maps_with(b, dcf, its), dev)
        to, co, A = _timed(lambda: RadialSense(maps, raw.trajectory[0], backend=b), dev)
        tc, cc, (x, info) = _timed(lambda: cg_sense(A, y, iterations=iterations, tol=0.0), dev)
        rows.append({
            "name": "radial_maps_cg_sense", "backend": b, "case": case, "device": "cpu",
            "dcf": dcf if dcf == "ramp" else f"{dcf} ({its} it.)",
            "maps_seconds": tm, "operator_seconds": to, "cg_seconds": tc, "total_seconds": tm + to + tc,
            "cpu_seconds": cm + co + cc, "iterations": iterations,
            "map_error": _map_error(maps, true_maps, support), "nrmse": _nrmse(x[0], x_true[0], support),
            "threads": torch.get_num_threads(),
        })
    if sigpy:
        t0, c0 = time.perf_counter(), time.process_time()
        times, mps, img = _sigpy_pipeline(raw, iterations)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        mps_t = torch.from_numpy(mps).to(torch.complex64)
        rows.append({
            "name": "radial_maps_cg_sense", "backend": "sigpy", "case": case, "device": "cpu", "dcf": "ramp",
            "maps_seconds": times["gridding"] + times["espirit"], "operator_seconds": 0.0,
            "cg_seconds": times["cg_sense"], "total_seconds": total, "cpu_seconds": cpu,
            "iterations": iterations, "map_error": _map_error(mps_t, true_maps, support),
            "nrmse": _nrmse(torch.from_numpy(img).to(torch.complex64), x_true[0], support),
            "threads": torch.get_num_threads(),
        })
    return rows


def format_rows(rows: list[dict]) -> str:
    """Plain-text table of the rows of :func:`backend_rows` or :func:`radial_setup_case`."""
    if not rows:
        return ""
    keys = [k for k in rows[0] if k not in ("case", "device")]
    for r in rows[1:]:
        keys += [k for k in r if k not in keys and k not in ("case", "device")]

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = [" | ".join(keys)]
    lines += [" | ".join(fmt(r.get(k)) for k in keys) for r in rows]
    return f"case: {rows[0].get('case')}\n" + "\n".join(lines)


__all__ = ["backend_rows", "radial_setup_case", "format_rows"]
