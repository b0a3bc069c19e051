"""From raw data and a protocol to a :class:`~mridip.data.Reconstruction`.

``reconstruct(raw, protocol)`` is the Python mirror of ``mridip recon``: it preprocesses
(noise prewhitening, coil compression), estimates coil maps per slice, builds the
operator that the file's trajectory calls for (Cartesian or radial), runs the protocol's
method (a generator through the one fitting loop, or a compressed-sensing baseline) on
each slice, and returns the image series with its provenance.
"""

from __future__ import annotations

import inspect
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mridip import __version__
from mridip.data import RawData, Reconstruction
from mridip.device import resolve_device
from mridip.errors import ProtocolError, ShapeError
from mridip.protocols import Protocol, load_protocol


@dataclass
class SliceProblem:
    """Everything a method needs for one slice.

    Attributes
    ----------
    A : LinearOperator
        Forward model, ishape ``(T, Y, X)``, on the compute device.
    y : torch.Tensor
        Measured k-space ``A.oshape`` complex64 on the compute device.
    coil_maps : torch.Tensor
        ``(C, Y, X)`` complex64.
    valid : torch.Tensor
        ``(Y, X)`` bool, where the coil maps are valid.
    raw : RawData
        The slice's raw data (``S = 1``), after preprocessing.
    """

    A: Any
    y: torch.Tensor
    coil_maps: torch.Tensor
    valid: torch.Tensor
    raw: RawData


def preprocess(raw: RawData, proto: Protocol) -> RawData:
    """Noise prewhitening and coil compression as the protocol's ``[data]`` table says."""
    from mridip import preprocess as pp

    # idempotent: data that went through a step already (compare shares them) skip it
    if proto.option("data", "prewhiten") and raw.noise is not None and "prewhiten" not in raw.history:
        raw = pp.prewhiten(raw)
    ncc = int(proto.option("data", "coil_compression"))
    if 0 < ncc != raw.num_coils:
        if ncc > raw.num_coils:
            raise ProtocolError(
                f"data.coil_compression = {ncc} but the data have only {raw.num_coils} coils"
            )
        raw = pp.coil_compress(raw, num_coils=ncc)
    return raw


@contextmanager
def stage(description: str, progress: bool):
    """A one-step tqdm status line (``description: elapsed``) while a long step without
    iterations of its own runs (coil estimation, a baseline solve); nothing if not ``progress``."""
    if not progress:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=1, desc=description, leave=False, dynamic_ncols=True, bar_format="{desc}: {elapsed}")
    try:
        yield bar
    finally:
        bar.update(1)
        bar.close()


def slice_problem(raw: RawData, proto: Protocol, device: torch.device, coil_maps: torch.Tensor | None = None,
                  progress: bool = False) -> SliceProblem:
    """Coil maps, operator and data of one slice (``raw.kspace`` ``(1, T, C, ...)``).

    ``progress`` shows a status line while the coil maps are estimated (ESPIRiT takes
    tens of seconds on scanner-sized data)."""
    from mridip.coils import estimate_maps
    from mridip.operators import make_operator

    if coil_maps is None:
        opts = {k: v for k, v in proto.coils.items() if k != "method"}
        method = proto.option("coils", "method")
        with stage(f"coil maps ({method})", progress):
            maps, valid = estimate_maps(raw, method, device=device,
                                        nufft_backend=proto.option("data", "nufft_backend"), **opts)
    else:
        maps = torch.as_tensor(coil_maps).to(device=device, dtype=torch.complex64)
        if tuple(maps.shape) != (raw.num_coils, *raw.image_shape):
            raise ShapeError(
                f"coil maps have shape {tuple(maps.shape)}, expected (C, Y, X) = "
                f"{(raw.num_coils, *raw.image_shape)}"
            )
        valid = (maps.abs() ** 2).sum(0) > 0
    A = make_operator(raw, maps, backend=proto.option("data", "nufft_backend"))
    y = raw.kspace[0].to(device=device, dtype=torch.complex64)
    return SliceProblem(A=A, y=y, coil_maps=maps, valid=valid.to(device), raw=raw)


# ------------------------------------------------------------------------- methods
MethodResult = tuple[torch.Tensor, dict]


def run_generator(problem: SliceProblem, proto: Protocol, *, seed: int, checkpoint: str | None = None,
                  resume: bool = False, progress: bool = True, description: str = "",
                  monitor: Callable[[torch.Tensor], float] | None = None,
                  build: Callable[..., torch.nn.Module] | None = None,
                  restore_best: bool = False) -> MethodResult:
    """Fit the protocol's generator to one slice through the one fitting loop.

    The k-space is divided by the 99th magnitude percentile of a quick CG-SENSE image
    (10 iterations) so that the generator's output has magnitude ~1 on every file and one
    learning rate transfers; the result is multiplied back. ``monitor`` (diagnostic only,
    see :func:`mridip.recon.fit.fit`) receives the ``(T, Y, X)`` image in the data's units.

    ``build(T, (Y, X), **options)`` replaces :func:`mridip.models.build_generator` for
    generators that need more than the protocol's ``[model]`` (a mapping generator's
    signal model); ``restore_best`` leaves the model at its returned iterate
    (:func:`mridip.recon.fit.fit`), which ``info["model"]`` then holds.
    """
    from mridip.models import build_generator, generator_options
    from mridip.recon.baselines import cg_sense
    from mridip.recon.fit import data_scale, fit_kspace

    A, y = problem.A, problem.y
    quick, _ = cg_sense(A, y, iterations=10)
    scale = data_scale(quick)
    T, ny, nx = A.ishape
    torch.manual_seed(seed)
    options = {**proto.model, "seed": seed} if "seed" in generator_options(proto.method) else dict(proto.model)
    if build is None:
        model = build_generator(proto.method, T, (ny, nx), **options)
    else:
        model = build(T, (ny, nx), **options)
    model = model.to(y.device)
    cfg = proto.fit_config(seed=seed, progress=progress)
    mon = None if monitor is None else (lambda x: monitor(x * scale))
    res = fit_kspace(model, A, y / scale, cfg, checkpoint=checkpoint, resume=resume, description=description,
                     monitor=mon, restore_best=restore_best)
    info = fit_info(res, model, scale)
    if restore_best:
        info["model"] = model
    return res.image * scale, info


def fit_info(res, model: torch.nn.Module, scale: float) -> dict[str, Any]:
    """The info of a generator fit that :func:`reconstruct` turns into attrs: iterations,
    stop, timing, data-term path, data scale, history and the parameter count."""
    return {
        "iterations": res.iterations,
        "best_iteration": res.best_iteration,
        "stop_reason": res.stop_reason,
        "loss_path": res.loss_path,
        "seconds_per_iteration": res.seconds_per_iteration,
        "fit_seconds": res.seconds,
        "resumed_seconds": res.resumed_seconds,
        "data_scale": scale,
        "history": res.history,
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }


def run_baseline(problem: SliceProblem, proto: Protocol, *, seed: int, progress: bool = False,
                 description: str = "", **_: Any) -> MethodResult:
    """Run the protocol's compressed-sensing baseline, tuning lambda first if asked.

    ``progress``: a tqdm bar over the lambda candidates (candidate k of n, its held-out
    residual) and a status line while the final solve runs.
    """
    from mridip.recon.baselines import METHODS, tune_lambda

    fn = METHODS[proto.method]
    opts = dict(proto.baseline)
    tune = bool(opts.pop("tune", False))
    values = [float(v) for v in opts.pop("tune_values", [])]
    info: dict[str, Any] = {}
    if tune:
        if "lam" not in inspect.signature(fn).parameters:
            raise ProtocolError(f"baseline.tune: method {proto.method!r} has no lam to tune")
        if len(values) < 2:
            raise ProtocolError("baseline.tune = true needs baseline.tune_values with >= 2 values")
        rest = {k: v for k, v in opts.items() if k != "lam"}
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(values), desc=f"{description or proto.name}: tune lambda", leave=False,
                       dynamic_ncols=True, unit="candidate")
        # one candidate per call: the hold-out split depends on the seed only, so the table equals
        # one call with all values, and each candidate's residual shows as soon as it is known
        table = []
        try:
            for k, lam in enumerate(values):
                if bar is not None:
                    bar.set_postfix_str(f"candidate {k + 1}/{len(values)}: lam {lam:g}")
                _, row = tune_lambda(lambda A, y, lam: fn(A, y, lam=lam, **rest)[0], problem.A, problem.y,
                                     [lam], seed=seed)
                table += row
                if bar is not None:
                    bar.set_postfix_str(f"candidate {k + 1}/{len(values)}: lam {lam:g}, held-out residual "
                                        f"{row[0][1]:.4g}")
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        best = min(table, key=lambda row: row[1])[0]
        opts["lam"] = best
        info["tuned_lam"] = best
        info["tune_table"] = [list(map(float, row)) for row in table]
    with stage(f"{description or proto.name}: {proto.method}"
               + (f" (up to {opts['iterations']} iterations)" if "iterations" in opts else ""), progress):
        x, binfo = fn(problem.A, problem.y, **opts)
    info.update({k: v for k, v in binfo.items() if k in ("iterations", "stop_reason", "lam_effective")})
    info.setdefault("iterations", 0)
    info.setdefault("stop_reason", "closed form")
    if "objective" in binfo:
        info["history"] = {"objective": np.asarray(binfo["objective"], dtype=np.float64)}
    return x, info


def _run_gip(*args, **kwargs) -> MethodResult:
    from mridip.recon.gip import run_gip

    return run_gip(*args, **kwargs)


def _run_mapping(*args, **kwargs) -> MethodResult:
    from mridip.recon.mapping import run_mapping

    return run_mapping(*args, **kwargs)


def _run_moco(*args, **kwargs) -> MethodResult:
    from mridip.recon.moco import run_moco

    return run_moco(*args, **kwargs)


def _run_grappa(*args, **kwargs) -> MethodResult:
    from mridip.recon.grappa import run_grappa  # the slice's ACS data (raw.calibration) go with A, y

    return run_grappa(*args, **kwargs)


#: Methods with their own schedule or inputs (still on the one fitting loop); others use
#: run_generator or run_baseline.
RUNNERS: dict[str, Callable[..., MethodResult]] = {"gip": _run_gip, "dip-mapping": _run_mapping,
                                                   "grappa": _run_grappa, "moco-dip": _run_moco}


def _runner(proto: Protocol) -> Callable[..., MethodResult]:
    if proto.method in RUNNERS:
        return RUNNERS[proto.method]
    return run_generator if proto.is_generator else run_baseline


# --------------------------------------------------------------------------- entry
def reconstruct(
    raw: RawData | str | os.PathLike,
    protocol: str | os.PathLike | dict | Protocol,
    *,
    device: str | torch.device = "cpu",
    overrides: list[str] | dict[str, Any] | None = None,
    seed: int = 0,
    coil_maps: torch.Tensor | np.ndarray | None = None,
    slices: list[int] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    monitor: Callable[[int, torch.Tensor], float] | None = None,
    trajectory: str | os.PathLike | None = None,
) -> Reconstruction:
    """Reconstruct raw data with a protocol (the Python mirror of ``mridip recon``).

    Parameters
    ----------
    raw : RawData or path
        Raw data, or an ISMRMRD / fastMRI file to read with :func:`mridip.io.load_raw`.
    protocol : str, path, dict or Protocol
        Built-in protocol name, TOML file, parsed dict, or a loaded protocol.
    device : str or torch.device
        ``"cpu"`` (default), ``"cuda"`` or ``"auto"``.
    overrides : list of "TABLE.KEY=VALUE" or dict
        Protocol overrides (``["fit.iterations=500"]``).
    seed : int
        Seed of network initialisation, hold-out split and frame sampling.
    coil_maps : tensor, optional
        ``(C, Y, X)`` (one slice) or ``(S, C, Y, X)`` maps to use instead of estimating.
    slices : list of int, optional
        Slices to reconstruct (default: the protocol's ``data.slices``, "all").
    checkpoint : path, optional
        Checkpoint file stem for generator fits (one file per slice: ``STEM.sN.pt``).
    resume : bool
        Continue generator fits from their checkpoints. ``attrs["wall_seconds"]`` then
        includes the wall time the interrupted runs spent (``attrs["resumed_seconds"]``),
        not the time between runs.
    monitor : callable, optional
        ``monitor(slice, x (T, Y, X)) -> float``, a diagnostic score (e.g. PSNR against a
        known truth) of generator methods' iterates at each validation point, zeroed
        outside the coil maps' valid region like the output; recorded in the log as
        ``monitor``, never used to stop or to choose the returned image. Baselines ignore it.
    trajectory : path, optional
        Trajectory file for a ``raw`` path whose format keeps it apart (BART ``.cfl``).

    Returns
    -------
    Reconstruction
        ``image`` complex64 ``(S, T, Y, X)`` in the units of the (prewhitened) data, zero
        outside the coil maps' valid region. With a ``[mapping]`` model, also
        ``parameter_maps`` float32 ``(S, Y, X)`` each (``M0`` in the image's units, ``T2``
        in ms; zero outside the valid region): a mapping generator's own maps, or for any
        other method a pixel-wise fit of its images (:mod:`mridip.recon.mapping`).
    """
    from mridip.io import load_raw

    t0 = time.perf_counter()
    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol, overrides)
    if isinstance(protocol, Protocol) and overrides:
        raise ProtocolError("give overrides with a protocol name or file, not with a loaded Protocol")
    dev = resolve_device(device)
    source = None
    if not isinstance(raw, RawData):
        source = str(raw)
        raw = load_raw(raw, spokes_per_frame=proto.spokes_per_frame(),
                       calibration=proto.option("data", "calibration"), trajectory=trajectory)
    raw = preprocess(raw, proto)
    if slices is None:
        sel = proto.option("data", "slices")
        slices = list(range(raw.num_slices)) if sel == "all" else [int(s) for s in str(sel).split(",")]
    for s in slices:
        if not 0 <= s < raw.num_slices:
            raise ProtocolError(f"slice {s} requested but the data have {raw.num_slices} slice(s)")
    maps_all = None
    if coil_maps is not None:
        maps_all = torch.as_tensor(coil_maps)
        if maps_all.ndim == 3:
            maps_all = maps_all[None]
    run = _runner(proto)
    images, infos, maps_used = [], [], []
    for i, s in enumerate(slices):
        problem = slice_problem(raw.slice(s), proto, dev, None if maps_all is None else maps_all[min(i, len(maps_all) - 1)],
                                progress=progress)
        maps_used.append(problem.coil_maps.detach().to("cpu", torch.complex64).numpy())
        ck = None if checkpoint is None else f"{checkpoint}.s{s}.pt"
        mon = None
        if monitor is not None:
            def mon(x: torch.Tensor, s: int = s, valid: torch.Tensor = problem.valid) -> float:
                return monitor(s, x * valid.to(x.device))
        x, info = run(problem, proto, seed=seed, checkpoint=ck, resume=resume, progress=progress,
                      description=f"{proto.name} slice {s}", monitor=mon)
        # no coil sees pixels outside the maps' valid region: the data say nothing there, and a
        # generator's output there is arbitrary. Every method's image is zero there alike.
        x = x * problem.valid.to(x.device)
        if proto.option("mapping", "model"):
            from mridip.recon.mapping import slice_parameter_maps

            info["parameter_maps"], info["parameter_maps_source"] = slice_parameter_maps(x, info, problem, proto)
        images.append(x.detach().to("cpu", torch.complex64).numpy())
        infos.append(info)
    image = np.stack(images, 0)
    # a resumed fit also counts the time its earlier runs spent (not the time between runs)
    resumed = float(sum(float(i.get("resumed_seconds", 0.0)) for i in infos))
    wall = time.perf_counter() - t0 + resumed
    attrs: dict[str, Any] = {
        "method": proto.method,
        "protocol_name": proto.name,
        "protocol": proto.text,
        "mridip_version": __version__,
        "device": str(dev) if dev.type == "cpu" else f"{dev} ({torch.cuda.get_device_name(dev)})",
        "seed": seed,
        "iterations": int(sum(int(i.get("iterations", 0)) for i in infos)),
        "stop_reason": "; ".join(sorted({str(i.get("stop_reason", "")) for i in infos})),
        "wall_seconds": wall,
        "resumed_seconds": resumed,
        "slices": list(slices),
        "kind": raw.kind,
        "preprocessing": list(raw.history),
        "coil_method": "given" if coil_maps is not None else str(proto.option("coils", "method")),
    }
    attrs.update(_geometry_attrs(raw, slices))
    from mridip.threads import thread_summary

    attrs["threads"] = thread_summary()
    backend = getattr(problem.A, "backend", None)
    if backend:
        attrs["nufft_backend"] = str(backend)
    if raw.kind == "cartesian":
        attrs["calibration"] = (
            f"{raw.header.extra.get('calibration_use', 'data+maps')}: "
            f"{raw.header.calibration_lines} calibration lines" if raw.calibration is not None
            else "none in the data (coil maps from the frames' fully sampled centre)"
        )
    if source:
        from mridip.io import file_sha256

        attrs["input"] = source
        attrs["input_sha256"] = file_sha256(source)
    # GIP also reports its frame graph (T, k), which stage image or ADMM X it returned and
    # the seconds per step of each stage
    for key in _PER_SLICE_ATTRS:  # one list, shared with gather_slices
        vals = [i[key] for i in infos if key in i]
        if vals:
            attrs[key] = vals[0] if len(vals) == 1 else vals
    log = {}
    if len(infos) == 1 and "history" in infos[0]:
        log = dict(infos[0]["history"])
    reference = None
    if raw.reference is not None:
        reference = np.asarray(raw.reference)[slices]
    parameter_maps = {}
    if infos and "parameter_maps" in infos[0]:
        parameter_maps = {k: np.stack([i["parameter_maps"][k] for i in infos]) for k in infos[0]["parameter_maps"]}
        attrs["parameter_maps_source"] = infos[0].get("parameter_maps_source", "")
    motion = {}
    if infos and "motion" in infos[0]:  # motion-corrected methods: (S, T, ...) per item
        motion = {k: np.stack([i["motion"][k] for i in infos]) for k in infos[0]["motion"]}
    return Reconstruction(image=image, method=proto.method, attrs=attrs, reference=reference, log=log,
                          parameter_maps=parameter_maps, coil_maps=np.stack(maps_used), motion=motion)


def _geometry_attrs(raw: RawData, slices: list[int]) -> dict[str, Any]:
    """What outputs for other software (MRD, NIfTI: :mod:`mridip.io.export`) need of the header.

    ``recon_fov_mm`` [x, y, z] (mm), ``slice_geometry`` (JSON list, one entry per
    reconstructed slice: position in mm, read / phase / slice directions), ``tr_ms`` and
    the input's ``ismrmrd_header`` XML, each only where the input says.
    """
    import json

    h = raw.header
    out: dict[str, Any] = {}
    if h.recon_fov_mm is not None:
        out["recon_fov_mm"] = [float(v) for v in h.recon_fov_mm]
    geo = h.extra.get("slice_geometry")
    if geo and len(geo) == raw.num_slices:
        out["slice_geometry"] = json.dumps([geo[s] for s in slices])
    if h.tr_ms:
        out["tr_ms"] = float(h.tr_ms[0])
    if h.xml:
        out["ismrmrd_header"] = str(h.xml)
    return out


#: attrs that :func:`reconstruct` takes per slice and lists when there are several
_PER_SLICE_ATTRS = ("best_iteration", "seconds_per_iteration", "tuned_lam", "tune_table", "parameters", "data_scale", "graph",
                    "returned", "stage_seconds_per_iteration", "loss_path")


def gather_slices(parts: list[Reconstruction]) -> Reconstruction:
    """One reconstruction from single-slice ones, as :func:`reconstruct` builds it for all of them.

    ``parts[i]`` is ``reconstruct(raw, protocol, slices=[s_i], ...)`` (one slice each, in
    slice order) of one input, protocol and seed; the result has what
    ``reconstruct(raw, protocol, slices=[s_0, s_1, ...])`` would have: the images,
    references and parameter maps stacked on S, ``iterations`` / ``wall_seconds`` /
    ``resumed_seconds`` summed, the stop reasons as the sorted set, ``slices`` and
    ``slice_geometry`` concatenated, the per-slice attrs of ``_PER_SLICE_ATTRS`` listed
    (one value where there is one part), the log only for a single part. Used by
    :mod:`mridip.batch`, which fits each slice as its own task.

    Parameters
    ----------
    parts : list of Reconstruction
        ``image`` complex64 ``(1, T, Y, X)`` each.

    Returns
    -------
    Reconstruction
        ``image`` complex64 ``(S, T, Y, X)``, ``S = len(parts)``.
    """
    import json

    if not parts:
        raise ShapeError("gather_slices needs at least one single-slice reconstruction")
    for p in parts:
        if p.image.shape[0] != 1 or len(p.attrs.get("slices", [0])) != 1:
            raise ShapeError(f"gather_slices takes single-slice reconstructions, got image {p.image.shape}")
    if len(parts) == 1:
        return parts[0]
    first = parts[0].attrs
    attrs: dict[str, Any] = dict(first)
    attrs["iterations"] = int(sum(int(p.attrs.get("iterations", 0)) for p in parts))
    attrs["stop_reason"] = "; ".join(sorted({str(p.attrs.get("stop_reason", "")) for p in parts}))
    attrs["wall_seconds"] = float(sum(float(p.attrs.get("wall_seconds", 0.0)) for p in parts))
    attrs["resumed_seconds"] = float(sum(float(p.attrs.get("resumed_seconds", 0.0)) for p in parts))
    attrs["slices"] = [int(s) for p in parts for s in p.attrs["slices"]]
    devices = sorted({str(p.attrs.get("device", "")) for p in parts})
    attrs["device"] = devices[0] if len(devices) == 1 else "; ".join(devices)
    if "slice_geometry" in first:
        geo = [g for p in parts for g in json.loads(p.attrs["slice_geometry"])]
        attrs["slice_geometry"] = json.dumps(geo)
    for key in _PER_SLICE_ATTRS:
        vals = [p.attrs[key] for p in parts if key in p.attrs]
        if vals:
            attrs[key] = vals[0] if len(vals) == 1 else vals
    reference = None
    if all(p.reference is not None for p in parts):
        reference = np.concatenate([np.asarray(p.reference) for p in parts], 0)
    maps = {}
    if parts[0].parameter_maps:
        maps = {k: np.concatenate([np.asarray(p.parameter_maps[k]) for p in parts], 0)
                for k in parts[0].parameter_maps}
    image = np.concatenate([np.asarray(p.image, dtype=np.complex64) for p in parts], 0)
    coil_maps = None  # (S, C, Y, X): each slice's maps, as reconstruct keeps them
    if all(p.coil_maps is not None for p in parts):
        coil_maps = np.concatenate([np.asarray(p.coil_maps) for p in parts], 0)
    return Reconstruction(image=image, method=parts[0].method, attrs=attrs, reference=reference, log={},
                          coil_maps=coil_maps, parameter_maps=maps)


def checkpoint_stem(output: str | os.PathLike) -> str:
    """Checkpoint stem beside an output file: ``OUT.h5`` -> ``OUT.h5.ckpt``."""
    return str(Path(output)) + ".ckpt"


def find_checkpoints(output: str | os.PathLike) -> list[Path]:
    """The checkpoint files of :func:`checkpoint_stem` ``(output)`` that exist (sorted):
    ``OUT.ckpt.sN.pt`` and the stage files of schedules built on them."""
    out = Path(output)
    return sorted(out.parent.glob(out.name + ".ckpt.s*.pt"))


def remove_checkpoints(output: str | os.PathLike) -> None:
    """Delete the checkpoints of :func:`checkpoint_stem` ``(output)`` (a finished fit's)."""
    for f in find_checkpoints(output):
        f.unlink()
