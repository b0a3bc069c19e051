"""Figures: frame grids, cine GIFs, x-t profiles and error maps (PNG / GIF).

Everything displays magnitudes. Figures are drawn on matplotlib ``Figure`` objects with
the Agg renderer (no pyplot state, no windows), so this module works on headless
machines and inside worker processes. Inputs may be numpy arrays or torch tensors
(complex or real); image series are ``(T, Y, X)`` and a single image ``(Y, X)`` is taken
as ``T = 1``.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from mridip.errors import ShapeError

__all__ = ["save_frame_grid", "save_cine_gif", "save_xt_profile", "save_error_maps", "save_parameter_maps"]

#: Robust display maximum: this percentile of the magnitude, so one hot pixel does not
#: darken the whole figure.
_VMAX_PERCENTILE = 99.5


def _magnitude(images, name: str = "images") -> np.ndarray:
    """``(T, Y, X)`` float32 magnitude of an array or tensor (``(Y, X)`` -> ``T = 1``)."""
    try:
        import torch

        if torch.is_tensor(images):
            images = images.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    a = np.abs(np.asarray(images)).astype(np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ShapeError(f"{name} must be (T, Y, X) or (Y, X), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ShapeError(f"{name} contain NaN or Inf values; nothing sensible can be displayed")
    return a


def _as_series_dict(images, name: str = "images") -> dict[str, np.ndarray]:
    if isinstance(images, Mapping):
        if not images:
            raise ShapeError(f"{name}: the dict of image series is empty")
        out = {str(k): _magnitude(v, f"{name}[{k!r}]") for k, v in images.items()}
    else:
        out = {"": _magnitude(images, name)}
    shapes = {v.shape[1:] for v in out.values()}
    if len(shapes) != 1:
        raise ShapeError(f"{name}: all series must have the same (Y, X), got {sorted(shapes)}")
    return out


def _robust_max(a: np.ndarray) -> float:
    v = float(np.percentile(a, _VMAX_PERCENTILE))
    if v <= 0:
        v = float(a.max())
    return v if v > 0 else 1.0


def _figure(width_in: float, height_in: float):
    # Figure without pyplot: no global state, no GUI backend; savefig renders with Agg
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in))


def _prepare_path(path) -> str:
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    return path


def _frame_subset(frames: int, columns: int | None) -> np.ndarray:
    """At most ``columns`` (default 8) frames, evenly spaced: 0, k, 2k, ... with one step
    ``k = ceil(frames / columns)`` (rounded ``linspace`` values would step unevenly: 0, 2, 3, 5)."""
    n = min(frames, 8) if columns is None else max(1, min(int(columns), frames))
    step = -(-frames // n)
    return np.arange(0, frames, step)


def save_frame_grid(
    images,
    path,
    *,
    titles: Sequence[str] | None = None,
    columns: int | None = None,
    vmax: float | None = None,
    cmap: str = "gray",
) -> str:
    """Save a grid of frames as PNG: one row per method, frames as columns.

    Parameters
    ----------
    images : array, tensor or dict of str -> array
        ``(T, Y, X)`` complex or real, or a dict name -> ``(T, Y, X)`` (all the same
        ``(Y, X)``; they may differ in T). Magnitudes are shown.
    path : str or path-like
        Output PNG path (folders are created).
    titles : sequence of str or None
        Row labels (default: the dict keys; none for a single series).
    columns : int or None
        At most this many frame columns (default 8): frames ``0, k, 2k, ...`` with one
        step ``k = ceil(T / columns)``, each column titled with its frame number.
    vmax : float or None
        Display maximum for every row; default per row, the 99.5th percentile of that
        row's magnitude (reconstructions may differ in global scale).
    cmap : str
        Matplotlib colour map.

    Returns
    -------
    str
        The path written.
    """
    series = _as_series_dict(images)
    names = list(series)
    if titles is not None:
        if len(titles) != len(names):
            raise ShapeError(f"titles has {len(titles)} entries for {len(names)} image series")
        labels = [str(t) for t in titles]
    else:
        labels = names
    t_max = max(v.shape[0] for v in series.values())
    idx = _frame_subset(t_max, columns)
    ny, nx = next(iter(series.values())).shape[1:]
    cell = 1.6
    fig = _figure(cell * len(idx) * nx / max(ny, nx) + 0.4, cell * len(names) * ny / max(ny, nx) + 0.3)
    axes = fig.subplots(len(names), len(idx), squeeze=False)
    for r, name in enumerate(names):
        a = series[name]
        top = vmax if vmax is not None else _robust_max(a)
        for c, t in enumerate(idx):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if t < a.shape[0]:
                ax.imshow(a[t], cmap=cmap, vmin=0.0, vmax=top, interpolation="nearest")
            if r == 0:
                ax.set_title(f"frame {t}", fontsize=8)
            if c == 0 and labels[r]:
                ax.set_ylabel(labels[r], fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.9, bottom=0.02, wspace=0.03, hspace=0.05)
    out = _prepare_path(path)
    fig.savefig(out, dpi=110, format="png")
    return out


def save_cine_gif(images, path, *, fps: float = 10, vmax: float | None = None) -> str:
    """Save an image series as an animated, looping GIF (one GIF frame per image frame).

    Parameters
    ----------
    images : array or tensor
        ``(T, Y, X)`` complex or real; magnitudes are shown in grey.
    path : str or path-like
        Output ``.gif`` path.
    fps : float
        Frames per second (GIF delays are whole 1/100 s, at least 20 ms: fps <= 50).
    vmax : float or None
        Display maximum (default: 99.5th percentile of the whole series, so brightness is
        constant over the loop).

    Returns
    -------
    str
        The path written.
    """
    from PIL import Image

    if fps <= 0:
        raise ShapeError(f"fps must be > 0, got {fps}")
    a = _magnitude(images)
    top = vmax if vmax is not None else _robust_max(a)
    grey = (np.clip(a / top, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    # enlarge small images by an integer factor so a 64 x 64 cine is watchable
    zoom = max(1, 256 // max(a.shape[1:]))
    if zoom > 1:
        grey = grey.repeat(zoom, axis=1).repeat(zoom, axis=2)
    frames = [Image.fromarray(g, mode="L") for g in grey]
    out = _prepare_path(path)
    frames[0].save(
        out,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        # GIF stores delays in 1/100 s, and browsers slow delays under 20 ms to 100 ms
        duration=max(20, int(round(100.0 / fps)) * 10),
        loop=0,
        optimize=False,
        disposal=1,
    )
    return out


def save_xt_profile(
    images_by_name,
    path,
    *,
    row: int | None = None,
    column: int | None = None,
    mark: str | bool | None = True,
) -> str:
    """Save x-t (or y-t) profiles through a line of each series, side by side (PNG).

    Parameters
    ----------
    images_by_name : dict of str -> array, or one array
        ``(T, Y, X)`` series.
    path : str or path-like
        Output PNG path.
    row : int or None
        Image row whose profile along X is shown against time (default ``Y // 2``, the
        image centre, which crosses the phantom's left ventricle).
    column : int or None
        If given (and ``row`` is not), the profile along Y of this column instead.
    mark : str, True or None
        A first panel shows frame 0 of this series (True: the first series, e.g. the
        reference) with the profile's line drawn on it, so the reader sees where the
        profile runs. None: profiles only.

    Returns
    -------
    str
        The path written. Each panel shows position vertically, time horizontally.
    """
    fig = xt_profile_figure(images_by_name, row=row, column=column, mark=mark)
    out = _prepare_path(path)
    fig.savefig(out, dpi=110, format="png")
    return out


def xt_profile_figure(images_by_name, *, row: int | None = None, column: int | None = None,
                      mark: str | bool | None = True):
    """The figure of :func:`save_xt_profile` (a matplotlib ``Figure``; same parameters)."""
    series = _as_series_dict(images_by_name, "images_by_name")
    ny, nx = next(iter(series.values())).shape[1:]
    if row is not None and column is not None:
        raise ShapeError("give either row or column for the x-t profile, not both")
    if column is not None:
        if not 0 <= column < nx:
            raise ShapeError(f"column {column} is outside the image width {nx}")
        profiles = {k: v[:, :, column].T for k, v in series.items()}  # (Y, T)
        what = f"column {column}"
    else:
        row = ny // 2 if row is None else row
        if not 0 <= row < ny:
            raise ShapeError(f"row {row} is outside the image height {ny}")
        profiles = {k: v[:, row, :].T for k, v in series.items()}  # (X, T)
        what = f"row {row}"
    if mark is True:
        mark = next(iter(series))
    if mark is not None and mark not in series:
        raise ShapeError(f"mark {mark!r} is not one of the series {list(series)}")
    n = len(profiles)
    t_max = max(p.shape[1] for p in profiles.values())
    length = next(iter(profiles.values())).shape[0]
    aspect = max(length / max(t_max, 1) / 2.0, 0.25)  # wide enough to see a beat
    extra = 0 if mark is None else 1
    fig = _figure(1.0 + 2.4 * (n + extra), 0.8 + 2.4 * min(aspect, 2.0))
    axes = fig.subplots(1, n + extra, squeeze=False)[0]
    if mark is not None:
        ax0, axes = axes[0], axes[1:]
        img = series[mark][0]
        ax0.imshow(img, cmap="gray", vmin=0.0, vmax=_robust_max(img), interpolation="nearest")
        if column is not None:
            ax0.axvline(column, color="tab:orange", linestyle="--", linewidth=1.2)
        else:
            ax0.axhline(row, color="tab:orange", linestyle="--", linewidth=1.2)
        ax0.set_title(f"{mark or 'image'}, frame 0: {what} (dashed)", fontsize=8)
        ax0.set_xticks([])
        ax0.set_yticks([])
    for ax, (name, p) in zip(axes, profiles.items()):
        ax.imshow(p, cmap="gray", vmin=0.0, vmax=_robust_max(p), aspect="auto", interpolation="nearest")
        ax.set_title(name or "profile", fontsize=9)
        ax.set_xlabel("frame", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel(f"position along {what}", fontsize=8)
    fig.tight_layout()
    return fig


def _scaled(recon, reference, mask=None):
    """Recon and reference after the metric definition's scaling (``mridip.metrics.prepare``)."""
    from mridip.metrics import prepare

    return prepare(recon, reference, mask)


def _reference_and_error_grid(n: int):
    """Figure with 2 x (n + 1) bare panels: reference column first, images on top, errors below."""
    fig = _figure(1.0 + 2.0 * (n + 1), 4.4)
    axes = fig.subplots(2, n + 1, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def save_error_maps(
    images_by_name,
    reference,
    path,
    *,
    frame: int = 0,
    scale: float = 5.0,
    mask=None,
) -> str:
    """Save error maps ``|a x - ref|`` of each reconstruction at one frame (PNG).

    The scaling is the metric definition's (DESIGN.md, :func:`mridip.metrics.prepare`):
    the reference magnitude is divided by its maximum over the series and each
    reconstruction's magnitude is multiplied by the least-squares scalar ``a`` that best
    matches it. Top row: reference and scaled reconstructions (display 0..1); bottom row:
    the error maps magnified ``scale`` times (display 0..1/scale), titled with the
    frame's NRMSE.

    Parameters
    ----------
    images_by_name : dict of str -> array, or one array
        ``(T, Y, X)`` reconstructions.
    reference : array
        ``(T, Y, X)`` reference.
    path : str or path-like
        Output PNG path.
    frame : int
        Frame shown.
    scale : float
        Error magnification (5 shows a 20 % error as white).
    mask : array or None
        Optional region ``(T, Y, X)`` or ``(Y, X)`` for the least-squares scalar (as in
        the metrics).

    Returns
    -------
    str
        The path written.
    """
    fig = error_maps_figure(images_by_name, reference, frame=frame, scale=scale, mask=mask)
    out = _prepare_path(path)
    fig.savefig(out, dpi=110, format="png")
    return out


def error_maps_figure(images_by_name, reference, *, frame: int = 0, scale: float = 5.0, mask=None):
    """The figure of :func:`save_error_maps` (a matplotlib ``Figure``; same parameters).

    Every panel names the frame it shows; the NRMSE in the error panels is that frame's."""
    if scale <= 0:
        raise ShapeError(f"scale must be > 0, got {scale}")
    series = _as_series_dict(images_by_name, "images_by_name")
    ref_mag = _magnitude(reference, "reference")
    if not 0 <= frame < ref_mag.shape[0]:
        raise ShapeError(f"frame {frame} is outside the reference's {ref_mag.shape[0]} frames")
    fig, axes = _reference_and_error_grid(len(series))
    ref_scaled = None
    for i, (name, rec) in enumerate(series.items(), start=1):
        x, ref, _ = _scaled(rec, ref_mag, mask)
        ref_scaled = ref
        err = np.abs(x[frame] - ref[frame])
        nrm = float(np.linalg.norm(x[frame] - ref[frame]) / max(np.linalg.norm(ref[frame]), 1e-12))
        axes[0, i].imshow(x[frame], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        axes[0, i].set_title(f"{name or 'reconstruction'}, frame {frame}", fontsize=9)
        im = axes[1, i].imshow(err, cmap="inferno", vmin=0.0, vmax=1.0 / scale, interpolation="nearest")
        axes[1, i].set_title(f"|error| x{scale:g}, frame {frame} NRMSE {nrm:.3f}", fontsize=8)
    axes[0, 0].imshow(ref_scaled[frame], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    axes[0, 0].set_title(f"reference, frame {frame}", fontsize=9)
    axes[1, 0].axis("off")
    fig.subplots_adjust(left=0.02, right=0.9, top=0.92, bottom=0.03, wspace=0.05, hspace=0.15)
    # a colour bar on its own axes, so the error panels keep the size of the image panels
    cax = fig.add_axes([0.92, 0.05, 0.015, 0.38])
    fig.colorbar(im, cax=cax)
    cax.tick_params(labelsize=7)
    return fig


def save_parameter_maps(maps_by_name, reference, path, *, name: str = "T2", unit: str = "ms",
                        vmax: float | None = None, mask=None) -> str:
    """Save a quantitative map of each method beside the reference, with error maps (PNG).

    Maps are shown in their physical unit on one colour scale (no scaling: a T2 map in ms
    is compared as it is); the bottom row shows ``|est - ref|`` on a scale of 25 % of
    ``vmax``, titled with the mean absolute error inside ``mask`` (default: where the
    reference is > 0).

    Parameters
    ----------
    maps_by_name : dict of str -> array
        real ``(Y, X)`` maps.
    reference : array
        real ``(Y, X)`` reference map.
    path : str or path-like
        Output PNG path.
    name, unit : str
        Parameter name and unit for the titles.
    vmax : float, optional
        Top of the colour scale (default: the reference's 99th percentile inside the mask).
    mask : array, optional
        bool ``(Y, X)``: pixels to score and to scale by.

    Returns
    -------
    str
        The path written.
    """
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 2:
        raise ShapeError(f"reference map must be (Y, X), got {ref.shape}")
    sel = ref > 0 if mask is None else (np.asarray(mask, dtype=bool) & (ref > 0))
    if vmax is None:
        vmax = float(np.percentile(ref[sel], 99)) if sel.any() else float(ref.max() or 1.0)
    fig, axes = _reference_and_error_grid(len(maps_by_name))
    im = axes[0, 0].imshow(ref, cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
    axes[0, 0].set_title(f"reference {name}", fontsize=9)
    axes[1, 0].axis("off")
    err_im = None
    for i, (label, m) in enumerate(maps_by_name.items(), start=1):
        m = np.asarray(m, dtype=np.float64)
        if m.shape != ref.shape:
            raise ShapeError(f"map {label!r} has shape {m.shape}, the reference {ref.shape}")
        err = np.abs(m - ref) * sel
        mae = float(err[sel].mean()) if sel.any() else float("nan")
        axes[0, i].imshow(m, cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
        axes[0, i].set_title(label, fontsize=9)
        err_im = axes[1, i].imshow(err, cmap="inferno", vmin=0.0, vmax=0.25 * vmax, interpolation="nearest")
        axes[1, i].set_title(f"|error|, MAE {mae:.1f} {unit}", fontsize=8)
    fig.subplots_adjust(left=0.02, right=0.9, top=0.92, bottom=0.03, wspace=0.05, hspace=0.15)
    for bar_im, box in ((im, [0.92, 0.52, 0.015, 0.38]), (err_im, [0.92, 0.05, 0.015, 0.38])):
        if bar_im is not None:
            cax = fig.add_axes(box)
            fig.colorbar(bar_im, cax=cax).set_label(unit, fontsize=7)
            cax.tick_params(labelsize=7)
    out = _prepare_path(path)
    fig.savefig(out, dpi=110, format="png")
    return out
