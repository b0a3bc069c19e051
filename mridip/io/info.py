"""``mridip info``: what a raw file holds, in a few lines of text.

ISMRMRD files are described from the XML header and the acquisition headers only (no
k-space samples are read, so this is fast on large files); fastMRI files from the array
shapes, the mask (or the first slice's nonzero pattern) and the XML header; Siemens twix
files from their protocol and block headers; BART arrays from their dimensions.
"""

from __future__ import annotations

import math
import os

import numpy as np

from mridip.errors import InputFileError


def _fmt_list(vals, unit: str) -> str:
    return ", ".join(f"{v:g}" for v in vals) + f" {unit}"


def _common_lines(h) -> list[str]:
    out = []
    if h.field_strength_t:
        out.append(f"field strength:   {h.field_strength_t:g} T")
    for name, vals in (("TE", h.te_ms), ("TR", h.tr_ms), ("TI", h.ti_ms)):
        if vals:
            out.append(f"{name}:{' ' * (16 - len(name))}{_fmt_list(vals, 'ms')}")
    if h.flip_angle_deg:
        out.append(f"flip angle:       {_fmt_list(h.flip_angle_deg, 'deg')}")
    if h.recon_fov_mm:
        out.append("FOV (recon):      " + " x ".join(f"{v:g}" for v in h.recon_fov_mm) + " mm")
    if h.system:
        out.append(f"system:           {h.system}")
    return out


def _matrix(m) -> str:
    return f"{m[0]} x {m[1]}" + (f" x {m[2]}" if m[2] > 1 else "") + " (x readout, y phase)"


def _describe_ismrmrd(path: str) -> str:
    import h5py

    from mridip.io import _ismrmrd_group
    from mridip.io.ismrmrd import _cartesian_geometry, _check_channels, _frame_index, _scan, _slice_index

    with h5py.File(path, "r") as f:
        group = _ismrmrd_group(f)
    scan = _scan(path, group)
    h = scan.header
    heads = scan.heads
    which = np.flatnonzero(scan.image)
    lines = [f"file:             {path}", "format:           ISMRMRD"]
    lines.append(f"trajectory:       {h.trajectory}")
    lines.append(f"encoded matrix:   {_matrix(h.encoded_matrix)}")
    lines.append(f"recon matrix:     {_matrix(h.recon_matrix)}")
    lines.append(f"acquisitions:     {len(heads)} ({len(which)} image data)")
    if len(which) == 0:
        lines.append("image data:       none (nothing to reconstruct)")
        return "\n".join(lines)
    C = _check_channels(scan, which)
    lines.append(f"coils:            {C}")
    frame, axes = _frame_index(heads[which])
    sl, slice_values = _slice_index(heads[which])
    S = len(slice_values)
    if scan.kind == "cartesian":
        g = _cartesian_geometry(scan)
        T = g["T"]
        lines.append(f"frames:           {T}" + (f" (from idx.{' x '.join(n for n, _ in axes)})" if axes else ""))
        lines.append(f"slices:           {S}")
        sampled = np.zeros((S, T, g["ey"]), dtype=bool)
        sampled[g["sl"], g["frame"], g["rows"]] = True
        per = sampled.sum(axis=2)  # (S, T) distinct lines per frame
        lpf = f"{per.min()}" if per.min() == per.max() else f"{per.min()} to {per.max()} (mean {per.mean():.1f})"
        lines.append(f"lines per frame:  {lpf} of {g['ey']}")
        acc = g["ey"] * per.size / max(int(per.sum()), 1)
        lines.append(f"acceleration:     R = {acc:.2f} (encoded lines / measured lines)")
        lines.append(f"k-space centre:   line {g['center']} (kspace_encode_step_1)")
    else:
        n_sp = len(which)
        ns = int(heads["number_of_samples"][which[0]])
        lines.append(f"slices:           {S}")
        lines.append(f"spokes:           {n_sp} in total, {ns} samples each")
        if axes:
            T = int(frame.max()) + 1
            counts = np.bincount(frame * S + sl, minlength=T * S)
            lines.append(f"frames:           {T} (from idx.{' x '.join(n for n, _ in axes)})")
            spf = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()} to {counts.max()}"
            lines.append(f"spokes per frame: {spf}")
            spf_n = int(counts.min())
        else:
            lines.append("frames:           not in the file (idx.phase constant): static methods "
                         f"(cg-sense, dip, ...) take all {n_sp // max(S, 1)} spokes as one frame; "
                         "dynamic ones bin consecutive spokes by data.spokes_per_frame")
            spf_n = None
        N = max(h.recon_matrix[0], h.recon_matrix[1])
        if N > 0:
            nyq = math.pi / 2.0 * N
            extra = f"; R = {nyq / spf_n:.1f} at {spf_n} spokes per frame" if spf_n else ""
            lines.append(f"Nyquist spokes:   {nyq:.0f} (pi/2 x {N}){extra}")
        has_traj = int(heads["trajectory_dimensions"][which].min()) >= 2
        lines.append("trajectory data:  " + ("traj field, cycles/pixel" if has_traj else "MISSING (cannot reconstruct)"))
    noise = np.flatnonzero(scan.noise)
    if len(noise):
        n_samp = int(heads["number_of_samples"][noise].astype(np.int64).sum())
        lines.append(f"noise scans:      {len(noise)} ({n_samp} samples per coil)")
    else:
        lines.append("noise scans:      0 (no prewhitening possible)")
    lines.append(_physiology_line(path))
    lines.append(f"calibration lines: {h.calibration_lines}")
    if scan.kind == "cartesian" and scan.calib_any.any():
        lines += _calibration_lines(scan)
    lines.append(f"readout oversampling: {h.readout_oversampling:g}"
                 + (" (cropped on reading)" if scan.kind == "cartesian" and h.readout_oversampling > 1 else ""))
    if scan.skipped:
        lines.append("skipped:          " + ", ".join(f"{v} {k}" for k, v in scan.skipped.items()))
    lines += _common_lines(h)
    return "\n".join(lines)


def _physiology_line(path: str) -> str:
    """Which physiology stamps (ECG, respiratory) the image acquisitions carry."""
    from mridip.io.physiology import read_physiology

    found = read_physiology(path)["found"]
    names = {"cardiac": "ECG (cardiac, stamp 0)", "respiratory": "respiratory (stamp 1)"}
    if not found:
        return "physiology:       none in the file (moco-dip self-navigates: stages.surrogate = \"navigator\")"
    return "physiology:       " + ", ".join(names[n] for n in found)


def _calibration_lines(scan) -> list[str]:
    """The ACS region (lines, readout extent) and what a reconstruction does with it."""
    from mridip.io.ismrmrd import _cartesian_geometry, _samples_kept

    cal = np.flatnonzero(scan.calib_any)
    g = _cartesian_geometry(scan, cal)
    rows = np.unique(g["rows"])
    runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1)
    longest = max(runs, key=len)
    kept = sorted({_samples_kept(scan.heads[a])[1] for a in cal[:2000]})
    only = int(scan.calib_only.sum())
    out = [
        f"ACS region:       rows {int(rows.min())}..{int(rows.max())} of {g['ey']} "
        f"({len(rows)} lines, {len(longest)} consecutive around rows {int(longest[0])}..{int(longest[-1])}), "
        f"readout {kept[-1]} of {g['ex']} encoded samples"
        + (" (asymmetric echo)" if kept[-1] < g["ex"] else ""),
        f"ACS lines:        {len(cal) - only} calibration-and-imaging (flag 21), "
        f"{only} calibration only (flag 20)",
        "ACS use:          coil maps (ESPIRiT / Walsh) from the ACS block"
        + (f"; the {only} calibration-only lines are also image data with data.calibration = "
           '"data+maps" (the default), coil maps only with "maps"' if only else ""),
    ]
    return out


def _describe_fastmri(path: str) -> str:
    import h5py

    from mridip.io.fastmri import _header_from_file, _mask_from_file

    with h5py.File(path, "r") as f:
        d = f["kspace"]
        shape = tuple(d.shape)
        h = _header_from_file(f, path, shape)
        S, H, W = shape[0], shape[-2], shape[-1]
        C = shape[1] if len(shape) == 4 else 1
        m = _mask_from_file(f, S, H, W)
        if m is None:
            k0 = np.asarray(d[0])
            m0 = (k0 != 0).any(axis=0) if k0.ndim == 3 else (k0 != 0)
            mask_note = "(from the first slice's nonzero samples)"
        else:
            m0 = m[0]
            mask_note = "(from 'mask')"
        ref = [n for n in ("reconstruction_rss", "reconstruction_esc") if n in f]
        ref_shape = tuple(f[ref[0]].shape) if ref else None
        attrs = dict(f.attrs.items())
    cols = m0.any(axis=0)
    lines = [f"file:             {path}", "format:           fastMRI"]
    lines.append(f"trajectory:       {h.trajectory}")
    lines.append(f"kspace array:     {shape} (slices, coils, height = readout, width = phase)")
    lines.append(f"encoded matrix:   {_matrix(h.encoded_matrix)}")
    lines.append(f"recon matrix:     {_matrix(h.recon_matrix)}")
    lines.append(f"coils:            {C}")
    lines.append("frames:           1")
    lines.append(f"slices:           {S}")
    lines.append(f"lines per frame:  {int(cols.sum())} of {W} phase-encode columns {mask_note}")
    lines.append(f"acceleration:     R = {m0.size / max(int(m0.sum()), 1):.2f}")
    lines.append("noise scans:      0 (fastMRI files carry none)")
    lines.append(f"readout oversampling: {h.readout_oversampling:g}"
                 + (" (cropped on reading)" if h.readout_oversampling > 1 else ""))
    lines.append(f"reference:        {ref[0]} {ref_shape}" if ref else "reference:        none")
    if "acquisition" in attrs:
        a = attrs["acquisition"]
        lines.append(f"acquisition:      {a.decode() if isinstance(a, bytes) else a}")
    lines += _common_lines(h)
    return "\n".join(lines)


def _describe_output(path: str) -> str:
    from mridip.io.output import load_reconstruction

    r = load_reconstruction(path)
    a = r.attrs
    lines = [f"file:             {path}", "format:           mridip reconstruction (output, not raw data)",
             f"method:           {r.method}"]
    if "protocol_name" in a:
        lines.append(f"protocol:         {a['protocol_name']}")
    lines.append(f"image:            {tuple(r.image.shape)} (S, T, Y, X)")
    if r.parameter_maps:
        lines.append("parameter maps:   " + ", ".join(
            f"{k} {tuple(np.shape(v))}" for k, v in r.parameter_maps.items()))
    if r.coil_maps is not None:
        lines.append(f"coil maps:        {tuple(r.coil_maps.shape)} (S, C, Y, X), {a.get('coil_method', '?')} "
                     "(reuse: --coil-maps FILE)")
    if r.motion:
        lines.append("motion:           " + ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in r.motion.items())
                     + " (displacement in pixels, 0 = y, 1 = x)")
    lines.append("reference:        " + ("yes" if r.reference is not None else "none"))
    if "iterations" in a:
        lines.append(f"stop:             {a.get('stop_reason', '?')} after {a['iterations']} iterations")
    if "tuned_lam" in a:
        from mridip.compare import lambda_summary

        lam = lambda_summary(a)
        lines.append(f"lambda:           {lam['lam']:g} (tuned on held-out k-space)")
        if "lam_candidates" in lam:
            lines.append(f"lambda candidates: {lam['lam_candidates']} (lambda:held-out residual)")
    for k in ("device", "seed", "wall_seconds", "input", "input_sha256", "mridip_version"):
        if k in a:
            v = a[k]
            lines.append(f"{k + ':':<18}{v:.1f} s" if k == "wall_seconds" else f"{k + ':':<18}{v}")
    return "\n".join(lines)


def is_truth_file(path: str | os.PathLike) -> bool:
    """True for a data_tools ground-truth ``.h5`` (``image`` + ``coil_maps``, no k-space)."""
    import h5py

    try:
        with h5py.File(os.fspath(path), "r") as f:
            return "image" in f and "kspace" not in f and "reconstruction" not in f
    except OSError:
        return False


def _describe_truth(path: str) -> str:
    """A data_tools ground-truth file (``_write_truth``): shapes, regions and maps."""
    import h5py

    with h5py.File(path, "r") as f:
        lines = [f"file:             {path}",
                 "format:           ground truth (data_tools phantom; a --reference for compare, not raw data)",
                 f"image:            {f['image'].shape} (S, T, Y, X) {f['image'].dtype}"]
        if "coil_maps" in f:
            lines.append(f"coil maps:        {f['coil_maps'].shape} (S, C, Y, X) (the simulation's)")
        if "roi" in f:
            lines.append("regions:          " + (", ".join(f"{k} {f['roi'][k].shape}" for k in f["roi"]) or "none"))
        if "parameter_maps" in f:
            lines.append("parameter maps:   " + ", ".join(
                f"{k} {f['parameter_maps'][k].shape}" for k in f["parameter_maps"]) + " (times in ms)")
        if "noise_cov" in f:
            lines.append(f"noise covariance: {f['noise_cov'].shape}")
        for k, v in f.attrs.items():
            v = v.decode() if isinstance(v, bytes) else v
            if isinstance(v, np.ndarray) and v.size > 8:
                v = f"array {v.shape}"
            lines.append(f"{k + ':':<18}{v}")
    return "\n".join(lines)


def _describe_bart(path: str) -> str:
    """A BART array: its dimensions by name, and what mridip would read it as."""
    from mridip.io.cfl import _DIM_NAMES, _read_pair

    arr, dims, base = _read_pair(path, "BART array")
    used = [f"{_DIM_NAMES[d]} {n}" for d, n in enumerate(dims) if n > 1]
    lines = [f"file:             {base}.cfl (+ .hdr)", "format:           BART cfl",
             "dimensions:       " + " x ".join(str(n) for n in dims[: max(i + 1 for i, n in enumerate(dims) if n > 1 or i < 4)]),
             "named:            " + (", ".join(used) or "scalar")]
    if dims[0] == 3 and dims[3] == 1 and float(np.abs(arr.imag).max()) == 0.0:
        kmax = float(np.abs(arr.real[:2]).max())
        lines.append(f"looks like:       a trajectory, {dims[1]} samples x {dims[2]} spokes, max |k| = {kmax:.4g} "
                     "(BART units: k-space pixels)")
    elif dims[0] == 1:
        lines.append(f"looks like:       non-Cartesian k-space, {dims[1]} samples x {dims[2]} spokes, {dims[3]} coils "
                     "(needs its trajectory: --trajectory traj.cfl)")
    else:
        m = (arr != 0).any(axis=3)  # sampled (any coil), over the other dims
        frac = float(m.mean())
        lines.append(f"looks like:       Cartesian k-space, {dims[0]} readout x {dims[1]} phase, {dims[3]} coils")
        lines.append(f"sampled:          {100 * frac:.1f} % of the grid (R = {1 / max(frac, 1e-12):.2f})")
        lines.append(f"frames:           {dims[5] * dims[10]} (TE {dims[5]} x TIME {dims[10]})")
        lines.append(f"slices:           {dims[13]}")
    return "\n".join(lines)


def describe(path: str | os.PathLike) -> str:
    """The text ``mridip info PATH`` prints: what a raw file holds.

    Format, trajectory, encoded and recon matrix, coils, frames, slices, lines or spokes
    per frame, acceleration (Cartesian) or Nyquist ratio (radial), noise scans,
    calibration lines, readout oversampling, field strength, TE/TR/TI where the header
    has them. A mridip output file is described as such (method, protocol, image and
    maps, stop, tuned lambda and its candidates), and a data_tools ground-truth file by
    its shapes, regions and parameter maps.

    Raises
    ------
    InputFileError
        Missing, truncated or unknown file.
    """
    from mridip.io import detect_format

    path = os.fspath(path)
    try:
        fmt = detect_format(path)
    except InputFileError:
        if os.path.isfile(path) and is_truth_file(path):
            return _align(_describe_truth(path))
        raise
    try:
        if fmt == "ismrmrd":
            text = _describe_ismrmrd(path)
        elif fmt == "twix":
            from mridip.io.twix import describe_twix

            text = describe_twix(path)
        elif fmt == "bart":
            text = _describe_bart(path)
        elif fmt == "fastmri":
            text = _describe_fastmri(path)
        else:
            text = _describe_output(path)
    except InputFileError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        from mridip.io.ismrmrd import _corrupt

        raise _corrupt(path, exc) from exc
    return _align(text)


def _align(text: str) -> str:
    """Pad every ``label: value`` line to one column."""
    out = []
    for line in text.splitlines():
        label, _, rest = line.partition(":")
        out.append(f"{label + ':':<22}{rest.strip()}")
    return "\n".join(out)
