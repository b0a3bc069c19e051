"""``mridip batch``: reconstruct a study (many files, slices and protocols) on Ray.

One task is one (file, slice, protocol). :func:`run` expands the inputs, plans each file
(reads it once, in a Ray task, for its digest and slice count), submits one Ray task per
slice with the resources asked for, and gathers the slices of a (file, protocol) back
into one output, ``OUTDIR/<protocol>/<label>.h5``, equal to ``mridip recon`` of the file
(:func:`mridip.recon.pipeline.gather_slices`). Ray is the scheduler: without an address
it starts locally with the machine's cores and GPUs; ``address="auto"`` or
``"ray://HOST:PORT"`` joins a running cluster (``docs/scale-out.md``).

Faults:

- A worker that dies (killed process, out of memory, a lost node) is retried by Ray up
  to ``retries`` times; generator fits checkpoint into ``OUTDIR/work/`` with the fitting
  loop's own machinery (``fit.checkpoint_every``) and every attempt resumes from the last
  checkpoint, so a retried fit continues where the dead one stopped (the task's log says
  at which iteration).
- Bad input (any :class:`~mridip.errors.MridipError`: a truncated file, a wrong shape) is
  not retried: the task is recorded as failed with the message and every other task goes
  on. A CUDA out-of-memory error is retried (the next attempt may land on a freer GPU);
  any other exception is a bug and is recorded, not retried.

Resume: ``OUTDIR/manifest.json`` holds one record per task, rewritten atomically as
results arrive. A task's key is the SHA-256 of (input file digest, protocol text after
overrides, seed, mridip version, slice); a record holds status (``running``, ``done``,
``failed``), output, seconds, device, error and attempts. ``resume`` skips the finished
tasks whose key matches (and keeps failed ones failed); ``retry_failed`` runs the failed
ones again too; a changed protocol, ``--set``, seed or input is a new key and runs.

Layout of OUTDIR::

    manifest.json             the tasks (see above)
    <protocol>/<label>.h5     one output per (file, protocol), as mridip recon writes it
    logs/<label>.<protocol>.s<N>.<key8>.log    one log per task (every attempt appends)
    work/<key16>.h5           a finished slice until its file's output is gathered;
                              checkpoints of running fits beside it
    results.csv, results.md   one row per task; results.md adds a per-protocol summary
    figures/<label>/          compare's figures (frames, x-t profile, errors) for a subset

The test-only switch ``MRIDIP_BATCH_TEST_KILL_FIRST_ATTEMPT`` (read by :func:`run` in the
driver: ``1`` / ``all``, or a text that the task's name contains) makes the first attempt
of those tasks kill its own worker process with SIGKILL: a generator fit once its first
checkpoint is written, any other method at its start.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from glob import glob, has_magic
from pathlib import Path
from typing import Any

import numpy as np

from mridip import __version__
from mridip.errors import DependencyError, InputFileError, MridipError, ProtocolError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "mridip-batch-manifest"
KILL_SWITCH = "MRIDIP_BATCH_TEST_KILL_FIRST_ATTEMPT"
#: suffixes of raw files that folder and glob inputs pick up
RAW_SUFFIXES = (".h5", ".hdf5", ".mrd", ".dat", ".cfl")
#: results table columns, in order
COLUMNS = ("input", "label", "slice", "protocol", "status", "seconds", "iterations", "stop_reason", "device",
           "psnr", "ssim", "nrmse", "attempts", "output", "error")
INSTALL_HINT = ("mridip batch runs on Ray, which is not installed: pip install 'mridip[batch]' "
                "(or pip install 'ray>=2.9')")


def import_ray():
    """``ray``, or a :class:`DependencyError` that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise DependencyError(INSTALL_HINT) from exc
    return ray


# ------------------------------------------------------------------------------ inputs
@dataclass
class Job:
    """One (input file, protocol) of the study, before it is split into slices.

    Attributes
    ----------
    input : str
        Absolute path of the raw file.
    protocol : str
        Protocol name or file as given.
    reference : str or None
        Absolute path of the reference (``.npy``, ``*_truth.h5``, a mridip output), if any.
    overrides : list of str
        ``TABLE.KEY=VALUE`` overrides of this protocol (after the ``PROTOCOL:`` prefix
        rule of :func:`mridip.compare.split_overrides`).
    """

    input: str
    protocol: str
    reference: str | None = None
    overrides: list[str] = field(default_factory=list)


def _is_manifest_input(path: str) -> bool:
    return path.lower().endswith((".csv", ".toml")) and os.path.isfile(path)


def _read_input_manifest(path: str) -> list[dict[str, str]]:
    """Rows ``{"input", "protocol"?, "reference"?}`` of a CSV or TOML input list.

    CSV: a header with ``input`` and optionally ``protocol`` and ``reference`` columns.
    TOML: ``[[input]]`` tables with the same keys (``protocol`` may be a list). Relative
    paths are relative to the manifest's folder.
    """
    base = os.path.dirname(os.path.abspath(path))
    rows: list[dict[str, Any]] = []
    if path.lower().endswith(".csv"):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "input" not in reader.fieldnames:
                raise InputFileError(f"input list {path} needs a header line with an 'input' column "
                                     "(and optionally 'protocol', 'reference')")
            rows = [dict(r) for r in reader]
    else:
        from mridip.protocols import tomllib

        try:
            doc = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InputFileError(f"input list {path} is not valid TOML: {exc}") from exc
        rows = doc.get("input", [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "input" in r for r in rows):
            raise InputFileError(f"input list {path} needs [[input]] tables, each with input = \"FILE\"")
    out = []
    for r in rows:
        item = {"input": os.path.join(base, str(r["input"]).strip())}
        protos = r.get("protocol") or []
        item["protocols"] = [str(p).strip() for p in ([protos] if isinstance(protos, str) else protos) if str(p).strip()]
        if r.get("reference"):
            item["reference"] = os.path.join(base, str(r["reference"]).strip())
        out.append(item)
    return out


def _looks_raw(path: str, *, by_name: bool = True) -> bool:
    """False for files that are certainly not raw data: a mridip output, a reference (an
    HDF5 ``image`` without ``kspace``: a data_tools ``*_truth.h5``), and with ``by_name``
    (folders and globs) files of other suffixes or named ``*_truth.h5``. A file that cannot
    be read stays in: its task fails with the reader's message."""
    from mridip.io import detect_format

    if by_name and (not path.lower().endswith(RAW_SUFFIXES) or path.endswith("_truth.h5")):
        return False
    try:
        return detect_format(path) != "output"
    except MridipError:
        try:
            import h5py

            with h5py.File(path, "r") as f:
                return not ("image" in f and "kspace" not in f)  # a reference / truth file
        except OSError:
            return True


def expand_inputs(inputs: list[str], protocols: list[str], *, reference_glob: str | None = None,
                  overrides: list[str] | None = None, echo: bool = True) -> list[Job]:
    """The (file, protocol) jobs of a study.

    Parameters
    ----------
    inputs : list of str
        Raw files, folders (their raw files, not recursive), glob patterns, or input lists
        (``.csv`` / ``.toml``: input, protocol, reference; see :func:`_read_input_manifest`).
    protocols : list of str
        Protocols for every input that its list row does not give its own.
    reference_glob : str, optional
        Pattern of each input's reference: ``{stem}`` (file name without suffix),
        ``{name}`` and ``{dir}`` are replaced, then the pattern is globbed (relative
        patterns in the input's folder); it must match one file or none.
    overrides : list of str
        ``[PROTOCOL:]TABLE.KEY=VALUE`` (:func:`mridip.compare.split_overrides`).
    echo : bool
        Say which named files were skipped as not raw data (references, mridip outputs).

    Raises
    ------
    InputFileError
        A named file or folder that does not exist, a glob that matches nothing, the same
        file listed twice, a reference pattern with several matches.
    """
    from mridip.compare import split_overrides

    entries: list[dict[str, Any]] = []
    skipped: list[str] = []
    for item in inputs:
        item = os.fspath(item)
        if _is_manifest_input(item):
            entries += _read_input_manifest(item)
        elif os.path.isdir(item):
            found = sorted(p for p in glob(os.path.join(item, "*")) if os.path.isfile(p) and _looks_raw(p))
            if not found:
                raise InputFileError(f"folder {item} holds no raw files ({', '.join(RAW_SUFFIXES)})")
            entries += [{"input": p} for p in found]
        elif has_magic(item):
            found = sorted(p for p in glob(item, recursive=True) if os.path.isfile(p) and _looks_raw(p))
            if not found:
                raise InputFileError(f"pattern {item!r} matches no raw files")
            entries += [{"input": p} for p in found]
        elif os.path.exists(item) or os.path.exists(item + ".cfl"):
            # a shell's data/*.h5 names the truth files beside the raw ones too: not inputs
            if os.path.isdir(item) or not _looks_raw(item, by_name=False):
                skipped.append(item)
                continue
            entries.append({"input": item})
        else:
            raise InputFileError(f"input {item} does not exist")
    if skipped and echo:
        print(f"mridip batch: {len(skipped)} named file(s) are references or outputs, not raw data, and are "
              f"skipped: {', '.join(skipped[:4])}{' ...' if len(skipped) > 4 else ''}", file=sys.stderr)
    jobs: list[Job] = []
    seen: dict[tuple[str, str], str] = {}
    all_protocols = sorted({p for e in entries for p in e.get("protocols", [])} | set(protocols))
    per = split_overrides(list(overrides or []), all_protocols)
    for e in entries:
        path = os.path.abspath(e["input"])
        protos = e.get("protocols") or list(protocols)
        if not protos:
            raise ProtocolError(f"no protocol for {path}: give -p PROTOCOL or a protocol column in the input list")
        ref = e.get("reference")
        if ref is None and reference_glob:
            ref = _match_reference(path, reference_glob)
        for p in protos:
            k = (path, p)
            if k in seen:
                continue
            seen[k] = path
            jobs.append(Job(path, p, None if ref is None else os.path.abspath(ref), list(per.get(p, []))))
    return jobs


def _match_reference(path: str, pattern: str) -> str | None:
    p = Path(path)
    stem = p.name
    for suf in (".nii.gz",) + tuple(p.suffixes[-1:]):
        if stem.endswith(suf):
            stem = stem[: -len(suf)]
            break
    pat = pattern.format(stem=stem, name=p.name, dir=str(p.parent))
    if not os.path.isabs(pat) and "/" not in pattern:
        pat = str(p.parent / pat)
    found = sorted(glob(pat))
    if len(found) > 1:
        raise InputFileError(f"reference pattern {pattern!r} matches {len(found)} files for {path} "
                             f"({', '.join(found[:3])} ...): make it match one")
    return found[0] if found else None


def labels_for(paths: list[str]) -> dict[str, str]:
    """A short unique name per input: the file's stem, with parent folder names prefixed
    (``s001__radial_cine``) until no two inputs share one."""
    def parts(p: str) -> list[str]:
        pp = Path(p)
        name = pp.name
        for suf in (".nii.gz", ".h5", ".hdf5", ".mrd", ".dat", ".cfl", ".hdr"):
            if name.endswith(suf):
                name = name[: -len(suf)]
                break
        return [*pp.parent.parts[1:], name]

    uniq = sorted(set(paths))
    depth = {p: 1 for p in uniq}
    for _ in range(64):
        lab = {p: "__".join(parts(p)[-depth[p]:]) for p in uniq}
        clash = {}
        for p, label in lab.items():
            clash.setdefault(label, []).append(p)
        dup = [ps for ps in clash.values() if len(ps) > 1]
        if not dup:
            return lab
        for ps in dup:
            for p in ps:
                depth[p] += 1
    return {p: hashlib.sha256(p.encode()).hexdigest()[:12] for p in uniq}  # pragma: no cover


def task_key(input_sha256: str, protocol_text: str, seed: int, slice_index: int | None,
             version: str = __version__) -> str:
    """SHA-256 hex key of a task: input digest, protocol text after overrides, seed, mridip
    version and slice (``None``: a whole file that could not be read)."""
    doc = json.dumps([input_sha256, protocol_text, int(seed), version, slice_index])
    return hashlib.sha256(doc.encode()).hexdigest()


# ------------------------------------------------------------------------- worker side
def _count_attempt(path: str) -> int:
    with open(path, "a") as f:
        f.write(f"{time.time():.3f} {socket.gethostname()} {os.getpid()}\n")
    with open(path) as f:
        return sum(1 for _ in f)


def plan_file(path: str, spokes_per_frame: Any, calibration: str) -> dict[str, Any]:
    """Ray task: digest and slice count of one raw file (``{"sha256", "num_slices"}``), or
    ``{"error"}`` with a reader's message for bad input."""
    from mridip.io import file_sha256, load_raw

    try:
        sha = file_sha256(path)
    except OSError as exc:
        return {"error": f"InputFileError: cannot read {path}: {exc}", "sha256": hashlib.sha256(path.encode()).hexdigest()}
    try:
        raw = load_raw(path, spokes_per_frame=spokes_per_frame, calibration=calibration)
    except MridipError as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "sha256": sha}
    return {"sha256": sha, "num_slices": int(raw.num_slices)}


def _kill_self_after(ck: str | None, log) -> None:
    """The test switch: SIGKILL this worker now, or once checkpoint ``ck`` exists."""
    def kill():
        print(f"test switch {KILL_SWITCH}: killing this worker (pid {os.getpid()})", file=log, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    if ck is None:
        kill()

    def watch():
        while not os.path.exists(ck):
            time.sleep(0.02)
        kill()

    threading.Thread(target=watch, daemon=True).start()


def run_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Ray task: reconstruct one slice of one file with one protocol.

    Writes ``spec["work"]`` (the single-slice reconstruction, :func:`save_reconstruction`)
    and appends to ``spec["log"]``. Bad input (a :class:`MridipError`) is returned as a
    failed record, so Ray never retries it; a dead worker is retried by Ray and the next
    attempt resumes the fit from its checkpoint.

    Returns
    -------
    dict
        ``status`` ("done" / "failed"), ``seconds``, ``iterations``, ``stop_reason``,
        ``device``, ``psnr`` / ``ssim`` / ``nrmse`` (with a reference), ``attempts``,
        ``node``, ``error``.
    """
    import torch

    from mridip.io import save_reconstruction
    from mridip.recon.fit import read_checkpoint
    from mridip.recon.pipeline import checkpoint_stem, reconstruct, remove_checkpoints

    t0 = time.perf_counter()
    attempt = _count_attempt(spec["attempts_file"])
    proto = spec["protocol"]
    s = int(spec["slice"])
    stem = checkpoint_stem(spec["work"])
    ck = f"{stem}.s{s}.pt"
    gpus = float(spec.get("gpus", 0) or 0)
    device = "cuda" if gpus > 0 else "cpu"
    record: dict[str, Any] = {"attempts": attempt, "node": socket.gethostname(), "pid": os.getpid()}
    Path(spec["log"]).parent.mkdir(parents=True, exist_ok=True)
    with open(spec["log"], "a", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"=== {spec['name']} attempt {attempt} on {socket.gethostname()} pid {os.getpid()}, "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        print(f"input {spec['input']} slice {s}, protocol {proto.name} ({proto.method}), seed {spec['seed']}, "
              f"key {spec['key']}")
        print(f"device {device}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}, "
              f"torch threads {torch.get_num_threads()}")
        if os.path.exists(ck):
            try:
                it = int(read_checkpoint(ck).get("iteration", 0))
                print(f"resuming from checkpoint {ck} at iteration {it}")
                record["resumed_iteration"] = it
            except MridipError as exc:
                print(f"checkpoint {ck} is unreadable ({exc}); starting afresh")
                os.remove(ck)
        if spec.get("kill") and attempt == 1:
            gen_ck = ck if proto.is_generator and int(proto.option("fit", "checkpoint_every", 0) or 0) > 0 else None
            _kill_self_after(gen_ck, log)
        try:
            rec = reconstruct(spec["input"], proto, device=device, seed=spec["seed"], slices=[s], checkpoint=stem,
                              resume=True, progress=False)
        except MridipError as exc:
            msg = f"{type(exc).__name__}: {exc}"
            print(f"failed (bad input, not retried): {msg}")
            record.update(status="failed", error=msg, seconds=time.perf_counter() - t0)
            return record
        save_reconstruction(spec["work"], rec)
        remove_checkpoints(spec["work"])
        a = rec.attrs
        record.update(status="done", seconds=float(a["wall_seconds"]), iterations=int(a["iterations"]),
                      stop_reason=str(a["stop_reason"]), device=str(a["device"]), error="")
        record.update(_slice_metrics(rec, spec.get("reference"), s))
        print(f"done: {a['iterations']} iterations ({a['stop_reason']}), {a['wall_seconds']:.2f} s on {a['device']}"
              + (f", PSNR {record['psnr']:.2f} dB" if "psnr" in record else ""))
    return record


def _slice_metrics(rec, reference: str | None, s: int) -> dict[str, float]:
    """PSNR / SSIM / NRMSE of slice ``s`` against the reference file (or the input's own)."""
    from mridip import metrics
    from mridip.compare import _centre_crop, load_reference

    if reference is not None:
        ref = load_reference(reference).image
        if s >= ref.shape[0]:
            return {}
        ref = ref[s]
    elif rec.reference is not None:
        ref = np.asarray(rec.reference)[0]
        ref = ref if ref.ndim == 3 else ref[None]
    else:
        return {}
    img = _centre_crop(rec.image[0], ref.shape[-2:])
    if img.shape[0] != ref.shape[0]:
        return {}
    m = metrics.evaluate(img, ref)
    return {"psnr": float(m["psnr"]), "ssim": float(m["ssim"]), "nrmse": float(m["nrmse"])}


# -------------------------------------------------------------------------- manifest
def read_manifest(outdir: str | os.PathLike) -> dict[str, Any]:
    """``OUTDIR/manifest.json`` (``{"format", "tasks": {key: record}, "outputs": {...}}``),
    or an empty one where there is none."""
    p = Path(outdir) / MANIFEST
    if not p.exists():
        return {"format": MANIFEST_FORMAT, "version": 1, "tasks": {}, "outputs": {}}
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{p} is not a readable batch manifest ({exc}); move it away, or give --overwrite") from exc
    if doc.get("format") != MANIFEST_FORMAT:
        raise InputFileError(f"{p} is not a mridip batch manifest; choose another output folder")
    doc.setdefault("tasks", {})
    doc.setdefault("outputs", {})
    return doc


def write_manifest(outdir: str | os.PathLike, doc: dict[str, Any]) -> None:
    """Write the manifest atomically (a temporary file renamed over it)."""
    folder = os.fspath(outdir)
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=0, sort_keys=True, default=str)
        os.replace(tmp, os.path.join(folder, MANIFEST))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ---------------------------------------------------------------------------- driver
def _init_ray(ray, address: str | None, num_cpus: int | None):
    """Join ``address``, or use a Ray already initialised in this process, or start one locally."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": True, "logging_level": "warning"}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # "local": a new Ray of this machine, even where a `ray start` cluster runs here
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
    except ConnectionError as exc:
        raise MridipError(f"cannot reach the Ray cluster at {address!r}: {exc}; start one with "
                          "`ray start --head`, or drop --address to run on this machine") from exc
    except ImportError as exc:
        raise DependencyError(f"Ray client mode (ray://) needs `pip install 'ray[client]'`: {exc}") from exc
    return True


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return "" if v is None else str(v)


def write_results(rows: list[dict[str, Any]], outdir: Path) -> None:
    """``results.csv`` (one row per task) and ``results.md`` (the table, a per-protocol
    summary mean ± sd over the finished tasks, and the failures with their reasons)."""
    with open(outdir / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k)) for k in COLUMNS})
    show = [c for c in COLUMNS if c not in ("output", "error")]
    lines = ["# mridip batch results", "", f"{len(rows)} tasks: {sum(r['status'] == 'done' for r in rows)} done, "
             f"{sum(r['status'] == 'failed' for r in rows)} failed.", "",
             "| " + " | ".join(show) + " |", "|" + "---|" * len(show)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in show) + " |")
    lines += ["", "## Per protocol (finished tasks, mean ± sd)", "",
              "| protocol | done | failed | seconds | iterations | PSNR | SSIM | NRMSE |", "|---|---|---|---|---|---|---|---|"]
    for proto, s in summarize(rows).items():
        def ms(key: str) -> str:
            m, sd = s.get(key, (math.nan, math.nan))
            return "" if math.isnan(m) else f"{m:.4g} ± {sd:.2g}"
        lines.append(f"| {proto} | {s['done']} | {s['failed']} | {ms('seconds')} | {ms('iterations')} | {ms('psnr')} "
                     f"| {ms('ssim')} | {ms('nrmse')} |")
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += ["", "## Failed", ""]
        lines += [f"- {r['label']} slice {_fmt(r.get('slice')) or 'all'}, {r['protocol']}: {r.get('error', '')}"
                  for r in failed]
    (outdir / "results.md").write_text("\n".join(lines) + "\n")


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per protocol: counts and (mean, sd) of seconds, iterations and metrics of finished tasks."""
    out: dict[str, dict[str, Any]] = {}
    for proto in dict.fromkeys(r["protocol"] for r in rows):
        rs = [r for r in rows if r["protocol"] == proto]
        done = [r for r in rs if r["status"] == "done"]
        s: dict[str, Any] = {"done": len(done), "failed": len(rs) - len(done)}
        for key in ("seconds", "iterations", "psnr", "ssim", "nrmse"):
            v = np.array([float(r[key]) for r in done if r.get(key) not in (None, "")], dtype=np.float64)
            v = v[np.isfinite(v)]
            if len(v):
                s[key] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)
        out[proto] = s
    return out


def _figures(label: str, outputs: dict[str, str], reference: str | None, folder: Path) -> None:
    """compare's figures (frame grid, x-t profile, error maps) of one input's first slice."""
    from mridip import viz
    from mridip.compare import _centre_crop, _heart_line, load_reference
    from mridip.io import load_reconstruction

    images, ref, reg = {}, None, None
    for name, path in outputs.items():
        rec = load_reconstruction(path)
        images[name] = rec.image[0]
        if ref is None and reference is None and rec.reference is not None:
            ref = np.asarray(rec.reference)[0]
    if reference is not None:
        r = load_reference(reference)
        ref, reg = r.image[0], r.regions.get("heart")
    if ref is not None:
        images = {k: _centre_crop(v, ref.shape[-2:]) for k, v in images.items()}
    folder.mkdir(parents=True, exist_ok=True)
    series = dict(images) if ref is None else {"reference": ref, **images}
    viz.save_frame_grid(series, folder / "frames.png")
    line = _heart_line(None if reg is None else reg[0], next(iter(images.values())).shape[-2:])
    viz.save_xt_profile(series, folder / "xt_profile.png", row=line)
    if ref is not None:
        viz.save_error_maps(images, ref, folder / "errors.png", frame=0, mask=None)


def _kill_selected(name: str, value: str | None) -> bool:
    if not value:
        return False
    return value.lower() in ("1", "all", "true", "yes") or value in name


def run(
    inputs: list[str],
    protocols: list[str],
    outdir: str | os.PathLike,
    *,
    reference_glob: str | None = None,
    address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
    retries: int = 3,
    resume: bool = False,
    retry_failed: bool = False,
    overwrite: bool = False,
    overrides: list[str] | None = None,
    seed: int = 0,
    num_cpus: int | None = None,
    figures: int = 1,
    progress: bool = True,
    echo: bool = True,
) -> list[dict[str, Any]]:
    """Reconstruct every (file, slice, protocol) of a study on Ray; returns the results table.

    Parameters
    ----------
    inputs : list of str
        Raw files, folders, globs, or input lists (see :func:`expand_inputs`).
    protocols : list of str
        Protocol names or files, each run on every input (that its list row leaves open).
    outdir : path
        Output folder (layout in the module docstring). An existing one with a manifest
        needs ``resume``, ``retry_failed`` or ``overwrite``; on a cluster it must be a
        folder every node sees at the same path (as must the inputs).
    reference_glob : str, optional
        Pattern of each input's reference (:func:`expand_inputs`); else a reference
        column of an input list, else the input's own (fastMRI ``reconstruction_rss``).
    address : str, optional
        ``None``: start Ray on this machine (all its cores and GPUs, or ``num_cpus``);
        ``"auto"``: the cluster this machine is part of (``ray start``); ``"HOST:PORT"``:
        a cluster's head (its GCS port, 6379 by default); ``"ray://HOST:PORT"``: a remote
        cluster's Ray Client port (needs ``ray[client]``). A Ray already initialised
        in this process is used as it is.
    cpus_per_task, gpus_per_task : float
        Ray resources of each task; fractional GPUs share one device. With GPUs a task
        reconstructs on ``cuda`` (the device Ray gave it through ``CUDA_VISIBLE_DEVICES``).
    retries : int
        Attempts after a worker died (killed, out of memory, lost node). Bad input is
        never retried.
    resume : bool
        Skip the tasks of the manifest that finished with the same key; run the rest
        (generator fits continue from their checkpoints). Failed tasks stay failed.
    retry_failed : bool
        As ``resume``, and run the failed tasks again.
    overwrite : bool
        Start afresh in an existing output folder (its manifest, work files and results
        are replaced; other outputs are overwritten as tasks finish).
    overrides : list of str
        ``[PROTOCOL:]TABLE.KEY=VALUE`` protocol overrides.
    seed : int
        Seed of every task (as ``mridip recon --seed``).
    num_cpus : int, optional
        CPUs of a locally started Ray (default: all of the machine's).
    figures : int
        Write compare's figures for the first this many inputs (0: none).
    progress, echo : bool
        Progress bar over tasks; print the summary.

    Returns
    -------
    list of dict
        One row per task (columns :data:`COLUMNS`); ``status`` "done" or "failed".

    Raises
    ------
    MridipError
        Bad arguments (an unknown protocol or key, inputs that do not exist, an output
        folder that holds an earlier run without resume / overwrite); nothing has run.
    """
    from mridip.io.safety import OverwriteError, refuse_overwrite_dir
    from mridip.protocols import load_protocol

    ray = import_ray()
    out = Path(outdir).absolute()  # workers need not share the driver's working folder
    if cpus_per_task <= 0 or gpus_per_task < 0 or retries < 0:
        raise MridipError("--cpus-per-task must be > 0, --gpus-per-task >= 0 and --retries >= 0")
    if gpus_per_task > 1 and gpus_per_task != int(gpus_per_task):
        raise MridipError(f"--gpus-per-task {gpus_per_task}: fractions are for sharing one GPU (<= 1), "
                          "or ask for whole GPUs")
    jobs = expand_inputs(list(inputs), list(protocols), reference_glob=reference_glob, overrides=overrides, echo=echo)
    if not jobs:
        raise InputFileError("no inputs to reconstruct")
    continuing = resume or retry_failed
    if (out / MANIFEST).exists() and not (continuing or overwrite):
        raise OverwriteError(f"output folder {out} holds the manifest of an earlier batch: give --resume to run "
                             "its unfinished tasks, --retry-failed to also rerun the failed ones, --overwrite to "
                             "start afresh, or choose another folder")
    refuse_overwrite_dir(out, inputs=[j.input for j in jobs] + [j.reference for j in jobs],
                         overwrite=overwrite or continuing, marker_files=(MANIFEST, "results.csv", "results.md"))
    protos = {}
    for j in jobs:
        k = (j.protocol, tuple(j.overrides))
        if k not in protos:
            protos[k] = load_protocol(j.protocol, j.overrides)
    names = {}
    for (given, _), pr in protos.items():
        if names.setdefault(pr.name, given) != given:
            raise ProtocolError(f"two protocols are both named {pr.name!r} ({names[pr.name]}, {given}): rename one")
    labels = labels_for([j.input for j in jobs])

    out.mkdir(parents=True, exist_ok=True)
    if overwrite and not continuing:
        import shutil

        shutil.rmtree(out / "work", ignore_errors=True)
        (out / MANIFEST).unlink(missing_ok=True)
    for sub in ("work", "logs"):
        (out / sub).mkdir(exist_ok=True)
    manifest = read_manifest(out) if continuing else {"format": MANIFEST_FORMAT, "version": 1, "tasks": {}, "outputs": {}}
    kill = os.environ.get(KILL_SWITCH)

    started = _init_ray(ray, address, num_cpus)
    try:
        rows = _drive(ray, jobs, protos, labels, out, manifest, seed=seed, cpus=cpus_per_task, gpus=gpus_per_task,
                      retries=retries, retry_failed=retry_failed, kill=kill, progress=progress)
    finally:
        if started:
            ray.shutdown()
    write_results(rows, out)
    if figures > 0:
        _write_figures(rows, jobs, labels, out, figures)
    if echo:
        print(format_summary(rows, out))
    return rows


def format_summary(rows: list[dict[str, Any]], out: Path) -> str:
    """The text printed at the end of a batch: counts, per-protocol summary, failures."""
    done = sum(r["status"] == "done" for r in rows)
    failed = [r for r in rows if r["status"] == "failed"]
    lines = [f"mridip batch: {len(rows)} tasks, {done} done, {len(failed)} failed; results in {out}/results.md"]
    for proto, s in summarize(rows).items():
        sec = s.get("seconds")
        psnr = s.get("psnr")
        lines.append(f"  {proto}: {s['done']} done, {s['failed']} failed"
                     + (f", {sec[0]:.2f} ± {sec[1]:.2f} s per task" if sec else "")
                     + (f", PSNR {psnr[0]:.2f} ± {psnr[1]:.2f} dB" if psnr else ""))
    for r in failed:
        lines.append(f"  FAILED {r['input']} slice {_fmt(r.get('slice')) or 'all'}, {r['protocol']}: {r.get('error', '')}")
    return "\n".join(lines)


def _write_figures(rows, jobs, labels, out: Path, n: int) -> None:
    by_input: dict[str, dict[str, str]] = {}
    refs: dict[str, str | None] = {}
    for j in jobs:
        refs[j.input] = j.reference
    for r in rows:
        if r["status"] == "done" and r.get("output") and os.path.exists(r["output"]):
            by_input.setdefault(r["input"], {})[r["protocol"]] = r["output"]
    for path in list(by_input)[:n]:
        try:
            _figures(labels[path], by_input[path], refs.get(path), out / "figures" / labels[path])
        except (MridipError, ValueError) as exc:  # a figure is never worth failing the study
            print(f"mridip batch: no figures for {path}: {exc}", file=sys.stderr)


def _drive(ray, jobs, protos, labels, out: Path, manifest, *, seed, cpus, gpus, retries, retry_failed, kill,
           progress) -> list[dict[str, Any]]:
    """Plan, submit, wait, record, gather; returns the rows in job and slice order."""
    import torch

    from mridip.io import load_reconstruction, save_reconstruction
    from mridip.recon.pipeline import gather_slices

    tasks = manifest["tasks"]
    last_save = [0.0]

    def save_manifest(force: bool = True):
        # at most one rewrite a second while results stream in (a study's manifest is MBs)
        if force or time.monotonic() - last_save[0] >= 1.0:
            write_manifest(out, manifest)
            last_save[0] = time.monotonic()

    # 1. plan: one Ray task per distinct (file, reader options): digest and slice count
    plan_remote = ray.remote(plan_file).options(num_cpus=min(1.0, cpus), max_retries=retries)
    plan_refs: dict[tuple, Any] = {}
    for j in jobs:
        pr = protos[(j.protocol, tuple(j.overrides))]
        k = (j.input, str(pr.spokes_per_frame()), pr.option("data", "calibration"))
        if k not in plan_refs:
            plan_refs[k] = plan_remote.remote(j.input, pr.spokes_per_frame(), pr.option("data", "calibration"))
    plans = dict(zip(plan_refs, ray.get(list(plan_refs.values()))))

    # 2. the task list, in job and slice order
    order: list[str] = []
    specs: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}  # (file, protocol) -> slice keys
    group_info: dict[str, dict[str, Any]] = {}
    seen_keys: dict[str, str] = {}
    for j in jobs:
        pr = protos[(j.protocol, tuple(j.overrides))]
        plan = plans[(j.input, str(pr.spokes_per_frame()), pr.option("data", "calibration"))]
        label = labels[j.input]
        base = {"input": j.input, "label": label, "protocol": pr.name, "seed": seed, "mridip_version": __version__,
                "input_sha256": plan["sha256"], "protocol_sha256": hashlib.sha256(pr.text.encode()).hexdigest()}
        if "error" in plan:
            key = task_key(plan["sha256"], pr.text, seed, None)
            tasks[key] = {**base, "slice": None, "status": "failed", "error": plan["error"], "seconds": 0.0,
                          "attempts": 1, "output": ""}
            order.append(key)
            continue
        sel = pr.option("data", "slices")
        n = plan["num_slices"]
        slices = list(range(n)) if sel == "all" else [int(x) for x in str(sel).split(",")]
        bad = [s for s in slices if not 0 <= s < n]
        if bad:
            key = task_key(plan["sha256"], pr.text, seed, None)
            tasks[key] = {**base, "slice": None, "status": "failed", "seconds": 0.0, "attempts": 1, "output": "",
                          "error": f"ProtocolError: slice {bad[0]} requested but the data have {n} slice(s)"}
            order.append(key)
            continue
        target = out / pr.name / f"{label}.h5"
        gkey = hashlib.sha256(json.dumps([plan["sha256"], pr.text, seed, __version__]).encode()).hexdigest()
        groups[gkey] = []
        group_info[gkey] = {"input": j.input, "protocol": pr.name, "output": str(target)}
        for s in slices:
            key = task_key(plan["sha256"], pr.text, seed, s)
            if key in seen_keys:
                raise InputFileError(f"{j.input} and {seen_keys[key]} are the same file (equal SHA-256): list it once")
            seen_keys[key] = j.input
            name = f"{label}.{pr.name}.s{s}"
            specs[key] = {"key": key, "name": name, "input": j.input, "slice": s, "protocol": pr, "seed": seed,
                          "reference": j.reference, "work": str(out / "work" / f"{key[:16]}.h5"),
                          "attempts_file": str(out / "work" / f"{key[:16]}.attempts"),
                          "log": str(out / "logs" / f"{name}.{key[:8]}.log"), "gpus": gpus,
                          "kill": _kill_selected(name, kill), "group": gkey}
            groups[gkey].append(key)
            order.append(key)
            old = tasks.get(key)
            keep = old is not None and (
                (old.get("status") == "done" and (os.path.exists(old.get("work", "")) or os.path.exists(old.get("output", ""))))
                or (old.get("status") == "failed" and not retry_failed))
            if not keep:
                tasks[key] = {**base, "slice": s, "status": "pending", "output": "", "work": specs[key]["work"],
                              "log": specs[key]["log"], "error": ""}

    # 3. submit what is not finished; record and gather as results arrive
    retry_on = [torch.cuda.OutOfMemoryError] if hasattr(torch.cuda, "OutOfMemoryError") else False
    task_remote = ray.remote(run_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=retries,
                                               retry_exceptions=retry_on)
    todo = [k for k in order if k in specs and tasks[k]["status"] not in ("done", "failed")]
    pending = {}
    for k in todo:
        tasks[k]["status"] = "running"
        pending[task_remote.remote(specs[k])] = k
    save_manifest()

    def gather(gkey: str) -> None:
        keys = groups[gkey]
        info = group_info[gkey]
        if not all(tasks[k]["status"] == "done" for k in keys):
            return
        rec_out = manifest["outputs"].get(gkey)
        if rec_out and rec_out.get("status") == "done" and os.path.exists(rec_out["output"]) \
                and all(tasks[k].get("output") == rec_out["output"] for k in keys):
            return
        target = Path(info["output"])
        try:
            recon = gather_slices([load_reconstruction(tasks[k]["work"]) for k in keys])
            save_reconstruction(target, recon)
        except MridipError as exc:
            for k in keys:
                tasks[k].update(status="failed", error=f"gathering the slices failed: {exc}")
            manifest["outputs"][gkey] = {**info, "status": "failed"}
            return
        for k in keys:
            tasks[k]["output"] = str(target)
        manifest["outputs"][gkey] = {**info, "status": "done", "keys": keys}
        for k in keys:
            for f in (tasks[k]["work"], specs[k]["attempts_file"]):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(f)

    for gkey in groups:  # groups whose slices all finished in an earlier run
        gather(gkey)
    save_manifest()

    total = len(order)
    n_done = sum(tasks[k]["status"] == "done" for k in order)
    n_failed = sum(tasks[k]["status"] == "failed" for k in order)
    res = ray.cluster_resources()
    slots = int(res.get("CPU", 1) // cpus) if cpus else len(pending)
    if gpus:
        slots = min(slots, int(res.get("GPU", 0) // gpus))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=n_done + n_failed, desc="mridip batch", unit="task", dynamic_ncols=True)

    def post():
        if bar is not None:
            bar.set_postfix({"done": n_done, "running": min(len(pending), max(slots, 1)), "failed": n_failed},
                            refresh=True)

    post()
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            for ref in ready:
                k = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # an exception that is not bad input
                    cause = getattr(exc, "cause", None) or exc
                    result = {"status": "failed", "error": f"{type(cause).__name__}: {cause}"}
                except ray.exceptions.RayError as exc:  # the worker (or node) died retries + 1 times
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    result = {"status": "failed",
                              "error": f"{type(exc).__name__} after {retries + 1} attempts: {first}"}
                tasks[k].update(result)
                tasks[k]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
                if result["status"] == "done":
                    n_done += 1
                    gather(specs[k]["group"])
                else:
                    n_failed += 1
                save_manifest(force=not pending)
                if bar is not None:
                    bar.update(1)
                post()
    except KeyboardInterrupt:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        save_manifest()
        raise
    finally:
        save_manifest()
        if bar is not None:
            bar.close()

    rows = []
    for k in order:
        t = tasks[k]
        row = {c: t.get(c) for c in COLUMNS}
        row["key"] = k
        rows.append(row)
    return rows
