"""``mridip compare``: several protocols on one input, one table, one set of figures.

Every protocol runs on the same preprocessed data with the same coil maps (estimated
once, with the first protocol's ``[data]`` and ``[coils]`` options), so differences
come from the methods alone. With a reference, each reconstruction is scored by the one
metric definition of :mod:`mridip.metrics`, in the whole field of view and in a region
(the reference file's ``roi/heart`` where it has one).

Outputs in the folder: ``results.md``, ``results.csv``, one ``<protocol>.h5`` per method,
``frames.png`` (frame grid, one row per method), ``xt_profile.png`` (x-t profile through
the heart or the image centre), ``errors.png`` (error maps), ``<protocol>.gif``.

Parameter mapping: where the reference holds ``parameter_maps/T2`` or ``/T1`` (a data_tools
``t2_mapping_truth.h5``, ``t1_mapping_truth.h5``, ``molli_truth.h5``) and the methods give
those maps (a ``[mapping]`` table), the table gains their errors in ms
(:func:`mridip.metrics.map_errors`, inside the region where there is one, and per tissue
region of :data:`MAP_REGIONS`), and ``maps.png`` (``maps_T1.png`` for a second map) shows
the maps with their error maps.

A baseline whose lambda was tuned shows it in the table: ``lam`` and ``lam_candidates``
(each candidate with its held-out residual, the chosen one starred). ``xt_profile.png``
draws the profile's line on the first image (the reference where there is one); every
panel of ``errors.png`` names its frame. The folder follows the overwrite rule of
:mod:`mridip.io.safety`: an earlier run's ``results.*`` / ``<protocol>.h5`` are replaced
only with ``overwrite`` (or ``resume``), and never an input.

Long comparisons survive interruption: generator fits write checkpoints beside their
``<protocol>.h5`` (``<protocol>.h5.ckpt.*``, removed once the file is written), and with
``resume`` a rerun keeps every ``<protocol>.h5`` already made from the same input
(SHA-256), protocol text, seed and coil maps, and continues the interrupted fits.

With a reference, generator methods also get ``oracle_psnr`` / ``oracle_iteration``: the
best PSNR among their validated iterates, a diagnosis of how far the ground-truth-free
stop lands from the best iterate on the path. It never changes what is returned.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mridip.errors import InputFileError, MridipError, ProtocolError, ShapeError

if TYPE_CHECKING:
    from mridip.data import Reconstruction
    from mridip.protocols import Protocol


@dataclass
class Reference:
    """A reference image series and optional regions.

    Attributes
    ----------
    image : numpy.ndarray
        ``(S, T, Y, X)`` complex or magnitude.
    regions : dict of str -> numpy.ndarray
        bool ``(S, T, Y, X)`` masks (e.g. ``"heart"``).
    source : str
    maps : dict of str -> numpy.ndarray
        Reference parameter maps, float ``(S, Y, X)`` (``"T2"`` in ms).
    """

    image: np.ndarray
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    maps: dict[str, np.ndarray] = field(default_factory=dict)


def _as_stt(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None, None]
    elif a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ShapeError(f"{name} must be (Y, X), (T, Y, X) or (S, T, Y, X), got {a.shape}")
    return a


def load_reference(path: str | os.PathLike) -> Reference:
    """Read a reference: ``.npy`` array, a data_tools ``*_truth.h5`` or a mridip output ``.h5``.

    ``.h5`` files: dataset ``image`` (data_tools ground truth, with ``roi/<name>``
    regions) or ``reconstruction`` (a mridip output, e.g. a fully sampled reconstruction);
    either may come with ``parameter_maps/<name>`` ``(S, Y, X)``.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"reference {p} does not exist")
    if p.suffix == ".npy":
        try:
            return Reference(_as_stt(np.load(p), "reference"), {}, str(p))
        except ValueError as exc:
            raise InputFileError(f"reference {p} is not a readable .npy array: {exc}") from exc
    import h5py

    try:
        with h5py.File(p, "r") as f:
            if "image" in f:
                img = f["image"][()]
                regions = {k: _as_stt(f["roi"][k][()], f"roi/{k}").astype(bool) for k in f.get("roi", {})}
            elif "reconstruction" in f:
                img, regions = f["reconstruction"][()], {}
            else:
                raise InputFileError(
                    f"reference {p} has neither an 'image' (data_tools truth) nor a 'reconstruction' "
                    "(mridip output) dataset"
                )
            maps = {k: np.asarray(f["parameter_maps"][k][()], dtype=np.float64) for k in f.get("parameter_maps", {})}
    except OSError as exc:
        raise InputFileError(f"reference {p} is not a readable HDF5 file: {exc}") from exc
    for k, m in maps.items():
        if m.ndim == 2:
            maps[k] = m = m[None]
        if m.ndim != 3:
            raise InputFileError(f"reference {p}: parameter_maps/{k} must be (S, Y, X), got shape {m.shape}")
    return Reference(_as_stt(img, "reference"), regions, str(p), maps)


def _centre_crop(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre-crop (or zero-pad) the last two axes to ``shape`` (k-space centre convention)."""
    out = a
    for axis, n in zip((-2, -1), shape):
        m = out.shape[axis]
        if m > n:
            s = m // 2 - n // 2
            out = np.take(out, np.arange(s, s + n), axis=axis)
        elif m < n:
            pad = [(0, 0)] * out.ndim
            pad[axis] = (n // 2 - m // 2, n - m - (n // 2 - m // 2))
            out = np.pad(out, pad)
    return out


def _heart_line(region: np.ndarray | None, shape: tuple[int, int]) -> int:
    """Row through the centroid of the region (or the image centre) for the x-t profile."""
    if region is not None and region.any():
        ys = np.nonzero(region.any(axis=(0, 2)) if region.ndim == 3 else region.any(axis=1))[0]
        return int(round(ys.mean()))
    return shape[0] // 2


def split_overrides(overrides: list[str] | None, protocols: list[str]) -> dict[str, list[str]]:
    """``NAME:TABLE.KEY=VALUE`` targets protocol NAME; ``TABLE.KEY=VALUE`` targets all."""
    out: dict[str, list[str]] = {p: [] for p in protocols}
    for o in overrides or []:
        head = o.split("=", 1)[0]
        if ":" in head:
            name, rest = o.split(":", 1)
            if name not in out:
                raise ProtocolError(f"override {o!r} names protocol {name!r}, which is not compared; "
                                    f"protocols: {', '.join(protocols)}")
            out[name].append(rest)
        else:
            for p in protocols:
                out[p].append(o)
    return out


def compare(
    input: str | os.PathLike,
    protocols: list[str],
    output_dir: str | os.PathLike,
    *,
    reference: str | os.PathLike | None = None,
    region: str = "heart",
    device: str = "cpu",
    overrides: list[str] | None = None,
    seed: int = 0,
    progress: bool = True,
    echo: bool = True,
    resume: bool = False,
    trajectory: str | os.PathLike | None = None,
    overwrite: bool = False,
    coil_maps: str | os.PathLike | np.ndarray | torch.Tensor | None = None,
) -> list[dict[str, Any]]:
    """Run protocols on one input and write the comparison (see the module docstring).

    Parameters
    ----------
    input : path
        Raw ISMRMRD / fastMRI file.
    protocols : list of str
        Protocol names or files; labels in the table are their names.
    output_dir : path
        Folder for the table, figures and reconstructions (created).
    reference : path, optional
        Ground truth (``.npy``, data_tools ``*_truth.h5``) or a fully sampled
        reconstruction; else the input's own reference (fastMRI ``reconstruction_rss``).
    region : str
        Name of the reference region for the region metrics (default ``"heart"``).
    device, overrides, seed, progress
        As for :func:`mridip.recon.pipeline.reconstruct`; overrides as in
        :func:`split_overrides`.
    echo : bool
        Print the table.
    resume : bool
        Keep ``<protocol>.h5`` files already in ``output_dir`` whose input digest, protocol
        text, seed and coil-map digest match this run (:func:`reusable`), and continue
        interrupted generator fits from their checkpoints; everything else is run afresh.
    trajectory : path, optional
        Trajectory of BART ``.cfl`` k-space (see :func:`mridip.io.load_raw`).
    overwrite : bool
        Replace the results of an earlier run in ``output_dir`` (``results.md``,
        ``results.csv``, ``<protocol>.h5``); without it (or ``resume``) such a folder is
        refused before any work (:func:`mridip.io.safety.refuse_overwrite_dir`). A file of
        the folder that is an input (the raw file, the reference) is refused always.
    coil_maps : path or array, optional
        Coil maps ``(C, Y, X)`` or ``(S, C, Y, X)`` for every protocol instead of
        estimating them: an array, or a file for :func:`mridip.io.coilmaps.load_coil_maps`.

    Returns
    -------
    list of dict
        One row per protocol: method, protocol, PSNR / SSIM / NRMSE (whole and region),
        seconds, iterations, stop reason, device; with reference and method T2 (T1) maps also
        ``t2_mae_ms``, ``t2_mape`` (%) and ``t2_bias_ms`` (``t1_*``), and the same per
        reference region of :data:`MAP_REGIONS` other than ``region`` (``t1_mape_spheres``, ...).
    """
    from mridip import metrics, viz
    from mridip.coils import estimate_maps
    from mridip.device import resolve_device
    from mridip.io import file_sha256, load_raw, save_reconstruction
    from mridip.protocols import load_protocol
    from mridip.recon.pipeline import checkpoint_stem, preprocess, reconstruct, remove_checkpoints

    if not protocols:
        raise ProtocolError("compare needs at least one protocol (-p NAME)")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    per = split_overrides(overrides, protocols)
    protos = [load_protocol(p, per[p]) for p in protocols]
    labels = [pr.name for pr in protos]
    if len(set(labels)) != len(labels):
        raise ProtocolError(f"protocol names must differ to label the table: {labels}")
    from mridip.io.safety import refuse_overwrite_dir

    maps_file = coil_maps if isinstance(coil_maps, (str, os.PathLike)) else None
    # a resume replaces only what is not reusable: it is the user's consent for the folder
    refuse_overwrite_dir(out, inputs=(input, reference, trajectory, maps_file), overwrite=overwrite or resume,
                         marker_files=["results.md", "results.csv", *[f"{n}.h5" for n in labels]])
    dev = resolve_device(device)

    first = protos[0]
    raw = preprocess(load_raw(input, spokes_per_frame=first.spokes_per_frame(),
                              calibration=first.option("data", "calibration"), trajectory=trajectory), first)
    t0 = time.perf_counter()
    if coil_maps is not None:
        if maps_file is not None:
            from mridip.io.coilmaps import load_coil_maps

            coil_maps = load_coil_maps(maps_file)
        maps_t = torch.as_tensor(np.asarray(coil_maps.cpu() if torch.is_tensor(coil_maps) else coil_maps))
        maps_t = (maps_t[None] if maps_t.ndim == 3 else maps_t).to(dev, torch.complex64)
        want = (raw.num_slices, raw.num_coils, *raw.image_shape)
        if tuple(maps_t.shape) != want and not (maps_t.shape[0] == 1 and tuple(maps_t.shape[1:]) == want[1:]):
            raise ShapeError(f"coil maps have shape {tuple(maps_t.shape)}, expected (S, C, Y, X) = {want} "
                             "(after the protocol's coil compression)")
        maps_t = maps_t.expand(raw.num_slices, *maps_t.shape[1:])
    else:
        from mridip.recon.pipeline import stage

        maps = []
        for s in range(raw.num_slices):
            opts = {k: v for k, v in first.coils.items() if k != "method"}
            with stage(f"coil maps ({first.option('coils', 'method')}), slice {s}", progress):
                m, _ = estimate_maps(raw.slice(s), first.option("coils", "method"), device=dev,
                                     nufft_backend=first.option("data", "nufft_backend"), **opts)
            maps.append(m)
        maps_t = torch.stack(maps)
    maps_seconds = time.perf_counter() - t0
    provenance = {"input": str(input), "input_sha256": file_sha256(input), "coil_maps_sha256": tensor_sha256(maps_t)}

    ref = load_reference(reference) if reference is not None else None
    if ref is None and raw.reference is not None:
        ref = Reference(_as_stt(raw.reference, "reference"), {}, "input file")
    reg = None
    if ref is not None and region in ref.regions:
        reg = ref.regions[region]

    monitor = None
    if ref is not None:
        def monitor(s: int, x: torch.Tensor) -> float:
            # diagnostic only: PSNR of a generator's iterate on its path (the "oracle" column)
            if s >= ref.image.shape[0]:
                return math.nan
            return metrics.psnr(_centre_crop(x.detach().cpu().numpy(), ref.image.shape[-2:]), ref.image[s])

    rows, images, param_maps = [], {}, {}
    for pr in protos:
        target = out / f"{pr.name}.h5"
        rec = reusable(target, pr, seed, provenance) if resume else None
        if rec is not None:
            if echo:
                print(f"{target}: kept (same input, protocol, seed and coil maps)")
        else:
            if resume and echo and target.exists():
                print(f"{target}: made again (it is not from this input, protocol, seed and coil maps)")
            rec = reconstruct(raw, pr, device=dev, seed=seed, coil_maps=maps_t, progress=progress, monitor=monitor,
                              checkpoint=checkpoint_stem(target), resume=resume)
            rec.attrs["coil_maps_seconds"] = maps_seconds
            rec.attrs.update(provenance)
            save_reconstruction(target, rec)
            remove_checkpoints(target)
        img = rec.image
        a = rec.attrs
        row: dict[str, Any] = {
            "method": pr.method, "protocol": pr.name, "seconds": round(float(a["wall_seconds"]), 2),
            "iterations": int(a["iterations"]), "stop_reason": a["stop_reason"], "device": a["device"],
        }
        row.update(lambda_summary(a))
        if ref is not None:
            if img.shape[0] != ref.image.shape[0] or img.shape[1] != ref.image.shape[1]:
                raise ShapeError(
                    f"reconstruction (S, T) = {img.shape[:2]} and reference {ref.image.shape[:2]} differ"
                )
            img_c = _centre_crop(img, ref.image.shape[-2:])
            x, r = img_c.reshape(-1, *img_c.shape[-2:]), ref.image.reshape(-1, *ref.image.shape[-2:])
            whole = metrics.evaluate(x, r)
            row.update({"psnr": whole["psnr"], "ssim": whole["ssim"], "nrmse": whole["nrmse"]})
            if reg is not None:
                inr = metrics.evaluate(x, r, reg.reshape(-1, *reg.shape[-2:]))
                row.update({f"psnr_{region}": inr["psnr"], f"ssim_{region}": inr["ssim"], f"nrmse_{region}": inr["nrmse"]})
            images[pr.name] = img_c[0]
            row.update(oracle_summary(rec.log))
            for name in MAP_NAMES:  # T2, T1: errors in ms inside the region, per named tissue region
                if name not in ref.maps or name not in rec.parameter_maps:
                    continue
                est = _centre_crop(np.asarray(rec.parameter_maps[name]), ref.maps[name].shape[-2:])
                row.update(_map_columns(metrics, name, est, ref, reg, region))
                param_maps.setdefault(name, {})[pr.name] = est[0]
        else:
            images[pr.name] = img[0]
        rows.append(row)
        viz.save_cine_gif(images[pr.name], out / f"{pr.name}.gif")

    # figures of the first slice
    series = dict(images)
    if ref is not None:
        series = {"reference": ref.image[0], **series}
    viz.save_frame_grid(series, out / "frames.png")
    line = _heart_line(None if reg is None else reg[0], next(iter(images.values())).shape[-2:])
    viz.save_xt_profile(series, out / "xt_profile.png", row=line, mark=True)  # line drawn on the first image
    if ref is not None:
        viz.save_error_maps(images, ref.image[0], out / "errors.png",
                            frame=0, mask=None)
    for i, (name, by_method) in enumerate(param_maps.items()):  # maps.png (first map), maps_T1.png, ...
        viz.save_parameter_maps(by_method, ref.maps[name][0], out / ("maps.png" if i == 0 else f"maps_{name}.png"),
                                name=name, mask=None if reg is None else reg[0, 0])
    write_table(rows, out, region=region if reg is not None else None, reference=ref)
    if echo:
        print(format_table(rows, region if reg is not None else None))
        print(f"\nwritten to {out}/ (results.md, results.csv, frames.png, xt_profile.png, *.gif, *.h5)")
    return rows


def tensor_sha256(t: torch.Tensor) -> str:
    """SHA-256 hex digest of a tensor's values (complex64 on the CPU, C order)."""
    import hashlib

    a = np.ascontiguousarray(t.detach().to("cpu", torch.complex64).numpy())
    return hashlib.sha256(a.tobytes()).hexdigest()


def reusable(path: Path, proto: Protocol, seed: int, provenance: dict[str, str]) -> Reconstruction | None:
    """The reconstruction in ``path`` if it was made by this run's recipe, else None.

    The recipe: ``proto.text`` (the protocol after overrides), ``seed``, and the
    ``provenance`` digests (``input_sha256``, ``coil_maps_sha256``) that :func:`compare`
    records in every file it writes; the input's path may differ (a moved folder). A
    missing or unreadable file, or one written by ``mridip recon`` (no coil-map digest),
    is not reused.
    """
    from mridip.io import load_reconstruction

    if not path.exists():
        return None
    try:
        rec = load_reconstruction(path)
    except MridipError:
        return None
    a = rec.attrs
    same = (a.get("protocol") == proto.text and a.get("seed") == seed
            and all(a.get(k) == v for k, v in provenance.items() if k != "input"))
    return rec if same else None


def compare_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints of interrupted fits in a compare folder (``<protocol>.h5.ckpt.*``), sorted."""
    d = Path(output_dir)
    return sorted(d.glob("*.h5.ckpt.s*.pt")) if d.is_dir() else []


def lambda_summary(attrs: dict[str, Any]) -> dict[str, Any]:
    """The tuned lambda of a baseline and its candidates, for the table (empty if not tuned).

    ``lam``: the chosen relative lambda; ``lam_candidates``: every candidate with its
    held-out residual (``||A_val x - y_val||^2 / ||y_val||^2``, :func:`mridip.recon.baselines.tune_lambda`),
    the chosen one starred: ``"0.001:0.12 0.01:0.09* 0.1:0.15"``.
    """
    if "tuned_lam" not in attrs:
        return {}
    lam = attrs["tuned_lam"]
    out: dict[str, Any] = {"lam": float(lam[0] if isinstance(lam, list) else lam)}
    table = attrs.get("tune_table")
    if table and isinstance(table[0], list) and table and isinstance(table[0][0], list):
        table = table[0]  # several slices: the first slice's candidates
    if table:
        out["lam_candidates"] = " ".join(
            f"{c:g}:{r:.3g}" + ("*" if c == out["lam"] else "") for c, r in table
        )
    return out


def oracle_summary(log: dict[str, np.ndarray]) -> dict[str, Any]:
    """Best monitored PSNR on a generator's path and its iteration (empty if not monitored).

    ``log`` is a reconstruction's log with ``iteration`` and ``monitor`` (PSNR at each
    validation point, :func:`mridip.recon.fit.fit`). The result is what an oracle that
    knows the truth would have stopped at: a diagnosis of the ground-truth-free stop,
    never a reported reconstruction.
    """
    m = np.asarray(log.get("monitor", []), dtype=np.float64)
    if m.size == 0 or not np.isfinite(m).any():
        return {}
    k = int(np.nanargmax(m))
    return {"oracle_psnr": float(m[k]), "oracle_iteration": int(np.asarray(log["iteration"])[k])}


_COLUMNS = ["method", "protocol", "psnr", "ssim", "nrmse"]
#: parameter maps that compare scores (in ms) where the reference and a method both hold them
MAP_NAMES = ("T2", "T1")
#: reference regions scored separately for the maps where the reference has them (NIST-like
#: spheres, the brain, the myocardium and the blood pool of the MOLLI phantom)
MAP_REGIONS = ("spheres", "brain", "myocardium", "blood")


def _map_columns(metrics, name: str, est: np.ndarray, ref: Reference, reg, region: str) -> dict[str, float]:
    """``<name>_mae_ms``, ``_mape``, ``_bias_ms`` in the region (or where the reference > 0), and
    ``<name>_mae_ms_<r>`` / ``_mape_<r>`` / ``_bias_ms_<r>`` in the other :data:`MAP_REGIONS`."""
    key = name.lower()
    err = metrics.map_errors(est, ref.maps[name], None if reg is None else reg[:, 0])
    out = {f"{key}_mae_ms": err["mae"], f"{key}_mape": err["mape"], f"{key}_bias_ms": err["bias"]}
    for r in MAP_REGIONS:
        if r == region or r not in ref.regions or not (ref.regions[r][:, 0] & (ref.maps[name] > 0)).any():
            continue
        e = metrics.map_errors(est, ref.maps[name], ref.regions[r][:, 0])
        out.update({f"{key}_mae_ms_{r}": e["mae"], f"{key}_mape_{r}": e["mape"], f"{key}_bias_ms_{r}": e["bias"]})
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        return f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}"
    return str(v)


def _columns(rows: list[dict], region: str | None) -> list[str]:
    cols = list(_COLUMNS) if "psnr" in rows[0] else ["method", "protocol"]
    if region:
        cols += [f"psnr_{region}", f"ssim_{region}", f"nrmse_{region}"]
    cols += ["seconds", "iterations", "stop_reason", "device"]
    if any("lam" in r for r in rows):
        cols += ["lam", "lam_candidates"]
    if any("oracle_psnr" in r for r in rows):
        cols += ["oracle_psnr", "oracle_iteration"]
    if any("t2_mae_ms" in r for r in rows):
        cols += ["t2_mae_ms", "t2_mape", "t2_bias_ms"]
    for r in rows:  # T1 (and per-region map) columns, in the order the rows hold them
        cols += [k for k in r if k.startswith(("t1_", "t2_")) and k not in cols]
    return cols


def format_table(rows: list[dict], region: str | None = None) -> str:
    """Markdown table of comparison rows."""
    cols = _columns(rows, region)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def write_table(rows: list[dict], out: Path, *, region: str | None, reference: Reference | None) -> None:
    """Write ``results.md`` and ``results.csv``."""
    cols = _columns(rows, region)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    ref_line = (
        f"Reference: {reference.source}. Metrics: magnitude, reference / max, reconstruction scaled by the "
        "least-squares scalar; PSNR peak 1; SSIM Gaussian window, data range 1, mean over frames"
        + (f"; `*_{region}` columns inside the {region} region." if region else ".")
        if reference is not None else "No reference: images and timings only."
    )
    text = (
        "# mridip comparison\n\n" + ref_line + "\n\n"
        "Every method ran on the same preprocessed data and coil maps. Iterations of generator "
        "methods were chosen by held-out k-space self-validation (no ground truth); "
        "baseline lambdas were tuned on held-out k-space where the protocol says `tune = true`.\n\n"
        + format_table(rows, region) + "\n\n"
        + ("`lam`: the relative lambda chosen by held-out k-space self-validation; `lam_candidates`: each "
           "candidate `lambda:residual` (held-out ||A x - y||^2 / ||y||^2, the smallest wins, starred).\n\n"
           if any("lam" in r for r in rows) else "")
        + ("`oracle_psnr`: the best PSNR among a generator's validated iterates (at `oracle_iteration`), "
           "measured against the reference for diagnosis only; the image and the PSNR reported are "
           "the held-out choice.\n\n" if any("oracle_psnr" in r for r in rows) else "")
        + ("`t2_*` / `t1_*`: errors of the T2 / T1 map against the reference's, in ms (mape in %), no scaling"
           + (f", inside the {region} region" if region else ", where the reference map > 0")
           + " (`*_<region>` columns: inside that region of the reference)"
           + "; a generator's own maps or a pixel-wise fit of the method's images (`[mapping]`).\n\n"
           if any(k.startswith(("t1_", "t2_")) for r in rows for k in r) else "")
        + "Figures: `frames.png`, `xt_profile.png`" + (", `errors.png`" if reference is not None else "")
        + (", `maps.png`" if any(k.endswith("_mae_ms") for r in rows for k in r) else "")
        + ", one GIF per method.\n"
    )
    (out / "results.md").write_text(text)
