"""``mridip compare``: several protocols on one input, one table, one set of figures.

Every protocol runs on the same preprocessed data with the same coil maps (estimated
once, with the first protocol's ``[data]`` and ``[coils]`` options), so differences
come from the methods alone. With a reference, each reconstruction is scored by the one
metric definition of :mod:`mridip.metrics`, in the whole field of view and in a region
(the reference file's ``roi/heart`` where it has one).

Outputs in the folder: ``results.md``, ``results.csv``, one ``<protocol>.h5`` per method,
``frames.png`` (frame grid, one row per method), ``xt_profile.png`` (x-t profile through
the heart or the image centre), ``errors.png`` (error maps), ``<protocol>.gif``.

Parameter mapping: where the reference holds ``parameter_maps/T2`` (a data_tools
``t2_mapping_truth.h5``) and the methods give T2 maps (a ``[mapping]`` table), the table
gains the T2 errors in ms (:func:`mridip.metrics.map_errors`, inside the region where
there is one) and ``maps.png`` shows the maps.

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

    Returns
    -------
    list of dict
        One row per protocol: method, protocol, PSNR / SSIM / NRMSE (whole and region),
        seconds, iterations, stop reason, device; with reference and method T2 maps also
        ``t2_mae_ms``, ``t2_mape`` (%) and ``t2_bias_ms``.
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
    dev = resolve_device(device)

    first = protos[0]
    raw = preprocess(load_raw(input, spokes_per_frame=first.spokes_per_frame(),
                              calibration=first.option("data", "calibration"), trajectory=trajectory), first)
    t0 = time.perf_counter()
    maps = []
    for s in range(raw.num_slices):
        opts = {k: v for k, v in first.coils.items() if k != "method"}
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

    rows, images, t2_maps = [], {}, {}
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
            if "T2" in ref.maps and "T2" in rec.parameter_maps:
                t2 = _centre_crop(np.asarray(rec.parameter_maps["T2"]), ref.maps["T2"].shape[-2:])
                err = metrics.map_errors(t2, ref.maps["T2"], None if reg is None else reg[:, 0])
                row.update({"t2_mae_ms": err["mae"], "t2_mape": err["mape"], "t2_bias_ms": err["bias"]})
                t2_maps[pr.name] = t2[0]
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
    viz.save_xt_profile(series, out / "xt_profile.png", row=line)
    if ref is not None:
        viz.save_error_maps(images, ref.image[0], out / "errors.png",
                            frame=0, mask=None)
    if t2_maps:
        viz.save_parameter_maps(t2_maps, ref.maps["T2"][0], out / "maps.png",
                                mask=None if reg is None else reg[0, 0])
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
    if any("oracle_psnr" in r for r in rows):
        cols += ["oracle_psnr", "oracle_iteration"]
    if any("t2_mae_ms" in r for r in rows):
        cols += ["t2_mae_ms", "t2_mape", "t2_bias_ms"]
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
        + ("`oracle_psnr`: the best PSNR among a generator's validated iterates (at `oracle_iteration`), "
           "measured against the reference for diagnosis only; the image and the PSNR reported are "
           "the held-out choice.\n\n" if any("oracle_psnr" in r for r in rows) else "")
        + ("`t2_*`: errors of the T2 map against the reference's, in ms (mape in %), no scaling"
           + (f", inside the {region} region" if region else ", where the reference T2 > 0")
           + "; a generator's own maps or a pixel-wise fit of the method's images (`[mapping]`).\n\n"
           if any("t2_mae_ms" in r for r in rows) else "")
        + "Figures: `frames.png`, `xt_profile.png`" + (", `errors.png`" if reference is not None else "")
        + (", `maps.png`" if any("t2_mae_ms" in r for r in rows) else "")
        + ", one GIF per method.\n"
    )
    (out / "results.md").write_text(text)
