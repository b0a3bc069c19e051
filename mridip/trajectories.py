"""Sampling patterns: radial golden-angle trajectories, Cartesian masks, unit conversion.

Units inside the package: radians/voxel in [-pi, pi) (torchkbnufft's). Files use
cycles/pixel in [-0.5, 0.5) (ISMRMRD convention): convert with :func:`cycles_to_radians`
and :func:`radians_to_cycles`, only in :mod:`mridip.io` and :mod:`data_tools`.
Angles are converted from degrees with :func:`degrees_to_radians`, never by hand.

Trajectory layout: ``(T, 2, K)``, component 0 = ky (image rows, Y), component 1 = kx
(image columns, X); ``K = spokes_per_frame * samples``, spoke-major (all samples of
spoke 0, then spoke 1, ...).
"""

from __future__ import annotations

import math

import numpy as np
import torch

GOLDEN_RATIO = (1.0 + math.sqrt(5.0)) / 2.0
#: Golden angle for full spokes (Winkelmann et al., IEEE TMI 2007): 180 deg / golden ratio.
GOLDEN_ANGLE_DEG = 180.0 / GOLDEN_RATIO  # 111.2461...


def degrees_to_radians(deg: float | np.ndarray | torch.Tensor):
    """Angle in degrees -> radians (the one conversion helper for angles)."""
    return deg * (math.pi / 180.0)


def cycles_to_radians(traj):
    """k-space positions in cycles/pixel ([-0.5, 0.5)) -> radians/voxel ([-pi, pi))."""
    return traj * (2.0 * math.pi)


def radians_to_cycles(traj):
    """k-space positions in radians/voxel ([-pi, pi)) -> cycles/pixel ([-0.5, 0.5))."""
    return traj / (2.0 * math.pi)


#: How far past the Nyquist edge (0.5 cycles/pixel) a file's trajectory may reach and still
#: be taken as cycles/pixel. Gradient-delay corrections shift a spoke by a few readout
#: samples (delays of 1-3 us at dwell times of 2-5 us), i.e. by at most ~0.02 cycles/pixel
#: for a 64-pixel matrix with 2x readout oversampling (1 / (2 N) per sample) and less for
#: larger ones; rounding adds ~1e-7. 0.05 (10 % of the half-width, ~6 samples at N = 64)
#: keeps every such trajectory while the unit errors seen in practice land far beyond it:
#: positions normalised to [-1, 1) reach ~1, radians/voxel ~3.14, BART / sigpy units
#: (1/FOV, [-N/2, N/2)) reach N/2 >= 8.
NYQUIST_EDGE_TOLERANCE = 0.05


def cycles_to_radians_checked(traj_cycles: np.ndarray, where: str = "trajectory") -> np.ndarray:
    """A file's trajectory in cycles/pixel -> radians/voxel in [-pi, pi), checked for its unit.

    Samples past the Nyquist edge by up to :data:`NYQUIST_EDGE_TOLERANCE` are wrapped by
    one period (``k -> k - sign(k)``), which is exact: the model's phase
    ``exp(-i 2 pi k . n)`` at integer pixel positions ``n`` has period 1 in ``k`` (the
    NUFFT's periodicity). A warning gives the maximum. Larger values are refused with the
    unit they most likely are.

    Parameters
    ----------
    traj_cycles : numpy.ndarray
        float, any shape, cycles/pixel.
    where : str
        Names the source in messages (a file path).

    Returns
    -------
    numpy.ndarray
        float32, same shape, radians/voxel in [-pi, pi).

    Raises
    ------
    InputFileError
        Values beyond ``0.5 + NYQUIST_EDGE_TOLERANCE``, with the likely unit.
    """
    import warnings

    from mridip.errors import InputFileError

    t = np.asarray(traj_cycles, dtype=np.float32)
    kmax = float(np.abs(t).max()) if t.size else 0.0
    limit = 0.5 + NYQUIST_EDGE_TOLERANCE
    if kmax > limit:
        if kmax <= 1.0 + 2 * NYQUIST_EDGE_TOLERANCE:
            unit = "positions normalised to [-1, 1): divide them by 2"
        elif kmax <= math.pi * (1.0 + NYQUIST_EDGE_TOLERANCE):
            unit = "radians/voxel ([-pi, pi)): divide them by 2 pi"
        else:
            unit = ("1/FOV units ([-N/2, N/2), BART's and sigpy's): divide them by the matrix "
                    "size N")
        raise InputFileError(
            f"{where}: trajectory values reach {kmax:.4g}, beyond the {limit:g} cycles/pixel that "
            "a gradient-delay correction can explain. Trajectories must be in cycles/pixel in "
            f"[-0.5, 0.5) (ISMRMRD: column 0 = kx, column 1 = ky); these look like {unit}"
        )
    if kmax > 0.5 + 1e-6:
        warnings.warn(
            f"{where}: trajectory reaches {kmax:.5g} cycles/pixel, past the Nyquist edge 0.5 "
            "(gradient-delay correction or rounding); those samples are wrapped by one period, "
            "which the discrete Fourier model makes exact",
            stacklevel=3,
        )
    out = t * np.float32(2.0 * math.pi)
    out = np.where(out >= math.pi, out - np.float32(2.0 * math.pi), out)
    out = np.where(out < -math.pi, out + np.float32(2.0 * math.pi), out)
    return out.astype(np.float32)


def tiny_golden_angle_deg(n: int) -> float:
    """The n-th tiny golden angle in degrees, 180 / (golden ratio + n - 1).

    n = 1 is the golden angle 111.246 deg; n = 2, 3, 5, 7 give 68.75, 49.75, 32.04,
    23.63 deg (Wundrak et al., MRM 2016).
    """
    if n < 1:
        raise ValueError(f"tiny golden angle index must be >= 1, got {n}")
    return 180.0 / (GOLDEN_RATIO + n - 1)


def radial_spoke_angles(num_spokes: int, angle_deg: float = GOLDEN_ANGLE_DEG, first: int = 0) -> np.ndarray:
    """Angles (radians) of ``num_spokes`` consecutive spokes ``first, first+1, ...``.

    Spoke j has angle ``j * angle_deg`` (mod 360 deg): continuous over frames, so frame t
    of a golden-angle acquisition holds spokes ``t*spf ... (t+1)*spf - 1``.
    """
    j = np.arange(first, first + num_spokes, dtype=np.float64)
    return np.mod(degrees_to_radians(j * angle_deg), 2.0 * math.pi)


def readout_positions(samples: int) -> np.ndarray:
    """Radial positions (radians/voxel) of ``samples`` readout points of a full spoke.

    ``r_i = (i - samples/2) * 2 pi / samples`` for i = 0 .. samples-1, in [-pi, pi). With
    ``samples = 2 N`` for an N-pixel image this is the usual twofold readout oversampling.
    """
    return (np.arange(samples, dtype=np.float64) - samples / 2.0) * (2.0 * math.pi / samples)


def radial_trajectory(
    frames: int,
    spokes_per_frame: int,
    samples: int,
    angle_deg: float = GOLDEN_ANGLE_DEG,
    first_spoke: int = 0,
) -> torch.Tensor:
    """Radial trajectory of full spokes, continuous over frames.

    Parameters
    ----------
    frames, spokes_per_frame, samples : int
        T, spokes per frame, readout samples per spoke.
    angle_deg : float
        Angle increment between consecutive spokes in degrees (golden angle by default;
        see :func:`tiny_golden_angle_deg`).
    first_spoke : int
        Index of the first spoke (to continue a sequence).

    Returns
    -------
    torch.Tensor
        float32 ``(T, 2, K)`` in radians/voxel, K = spokes_per_frame * samples,
        component 0 = ky, component 1 = kx.
    """
    theta = radial_spoke_angles(frames * spokes_per_frame, angle_deg, first_spoke)
    r = readout_positions(samples)
    theta = theta.reshape(frames, spokes_per_frame, 1)
    ky = r[None, None, :] * np.sin(theta)
    kx = r[None, None, :] * np.cos(theta)
    traj = np.stack([ky.reshape(frames, -1), kx.reshape(frames, -1)], axis=1)
    # r in [-pi, pi) but rotation can land a point at +pi exactly; wrap into [-pi, pi)
    traj = np.where(traj >= math.pi, traj - 2.0 * math.pi, traj)
    return torch.from_numpy(traj.astype(np.float32))


def variable_density_lines(
    frames: int,
    lines: int,
    readout: int,
    acceleration: float,
    center_lines: int = 8,
    seed: int = 0,
    density_power: float = 2.0,
) -> torch.Tensor:
    """Per-frame random variable-density phase-encode lines with a fully sampled centre.

    Each frame samples ``round(lines / acceleration)`` lines: the ``center_lines`` central
    ones and the rest drawn without replacement with probability proportional to
    ``(1 - |ky|/ky_max) ** density_power``, independently per frame (so frames
    complement each other, as cine undersampling schemes do).

    Parameters
    ----------
    frames, lines, readout : int
        T, Ky, Kx.
    acceleration : float
        R = (all lines) / (sampled lines) per frame, >= 1.
    center_lines : int
        Number of fully sampled central lines (the ky = 0 line is at index lines // 2).
    seed : int
        Seed of the random draw.

    Returns
    -------
    torch.Tensor
        bool ``(T, Ky, Kx)``; the exact acceleration is ``mask_acceleration(mask)``.
    """
    if acceleration < 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    n_lines = max(1, int(round(lines / acceleration)))
    center_lines = min(center_lines, n_lines)
    rng = np.random.default_rng(seed)
    c0 = lines // 2 - center_lines // 2
    center = np.arange(c0, c0 + center_lines)
    ky = np.abs(np.arange(lines) - lines // 2) / max(lines // 2, 1)
    prob = np.clip(1.0 - ky, 1e-3, None) ** density_power
    prob[center] = 0.0
    mask = np.zeros((frames, lines, readout), dtype=bool)
    n_rand = n_lines - center_lines
    for t in range(frames):
        mask[t, center, :] = True
        if n_rand > 0:
            pick = rng.choice(lines, size=n_rand, replace=False, p=prob / prob.sum())
            mask[t, pick, :] = True
    return torch.from_numpy(mask)


def mask_acceleration(mask: torch.Tensor) -> float:
    """Exact acceleration of a Cartesian mask ``(..., Ky, Kx)``: all samples / sampled samples."""
    m = torch.as_tensor(mask).bool()
    sampled = int(m.sum())
    if sampled == 0:
        return math.inf
    return float(m.numel()) / sampled


# --------------------------------------------------------------------------------------
# Density compensation
# --------------------------------------------------------------------------------------

DCF_NORMALIZATIONS = ("area", "psf")


def _check_traj(trajectory: torch.Tensor, where: str) -> torch.Tensor:
    from mridip.errors import ShapeError

    if not torch.is_tensor(trajectory) or trajectory.ndim != 3 or trajectory.shape[1] != 2:
        raise ShapeError(
            f"{where}: trajectory must be a real tensor (T, 2, K) in radians/voxel, got "
            f"{tuple(getattr(trajectory, 'shape', ()))}"
        )
    if trajectory.numel() and float(trajectory.abs().max()) > math.pi + 1e-4:
        raise ShapeError(
            f"{where}: trajectory exceeds pi: it must be in radians/voxel in [-pi, pi) "
            "(convert cycles/pixel with cycles_to_radians)"
        )
    return trajectory.to(torch.float32)


def _normalize_dcf(w: torch.Tensor, trajectory: torch.Tensor, image_shape, normalization: str) -> torch.Tensor:
    """Scale each frame's weights ``w (T, K)`` (see :func:`ramp_dcf` for the two rules)."""
    from mridip.errors import ShapeError

    ny, nx = (int(s) for s in image_shape)
    if normalization == "psf":
        total = w.sum(dim=1, keepdim=True)
        return w * (ny * nx) / total.clamp_min(torch.finfo(w.dtype).tiny)
    if normalization != "area":
        raise ShapeError(f"DCF normalization must be one of {DCF_NORMALIZATIONS}, got {normalization!r}")
    # Quadrature of a Gaussian h(k) = exp(-|k|^2 / (2 s^2)) with the weights must equal its
    # sum over the Cartesian grid of the image, 2 pi s^2 / ((2 pi / Y)(2 pi / X)).
    # s = 4 grid cells: wide enough to average over many samples, small enough to lie in
    # the centre of k-space that even an undersampled radial frame samples densely.
    s = min(4.0 * 2.0 * math.pi / min(ny, nx), math.pi / 4.0)
    h = torch.exp(-(trajectory**2).sum(dim=1) / (2.0 * s * s))  # (T, K)
    target = 2.0 * math.pi * s * s * ny * nx / (2.0 * math.pi) ** 2
    quad = (w * h).sum(dim=1, keepdim=True)
    return w * target / quad.clamp_min(torch.finfo(w.dtype).tiny)


def ramp_dcf(
    trajectory: torch.Tensor, image_shape: tuple[int, int], *, normalization: str = "area"
) -> torch.Tensor:
    """Analytic ramp density compensation of full-diameter radial spokes.

    ``w_k = |k|`` (radians/voxel), the area of the annular sector a sample of a radial
    spoke represents; a sample at exactly ``k = 0`` gets ``dr / 4`` (``dr`` the smallest
    non-zero radius, i.e. the readout spacing), its share of the central disc of radius
    ``dr / 2`` (Hoge et al., MRM 1997).

    Parameters
    ----------
    trajectory : torch.Tensor
        float ``(T, 2, K)`` in radians/voxel, (ky, kx).
    image_shape : tuple of int
        ``(Y, X)`` of the reconstructed image (sets the k-space cell area).
    normalization : {"area", "psf"}
        ``"area"`` (default): the weights are areas in units of Cartesian k-space cells
        ``(2 pi / Y)(2 pi / X)``, so the DC-compensated adjoint ``F^H (w * F x)`` returns an
        extended object ``x`` with its own intensity (a fully sampled Cartesian grid would
        get ``w = 1``); calibrated per frame on a Gaussian of 4 grid cells width
        centred at ``k = 0``. ``"psf"``: ``sum_k w_k = Y X``, i.e. the DC-compensated adjoint
        of the k-space of a unit impulse at the image centre (constant ``1 / sqrt(Y X)``
        under the orthonormal NUFFT) has unit height at the centre. Radial spokes cover a
        disc, not the square grid, so ``"psf"`` weights are ``4 / pi`` times the ``"area"``
        ones for fully sampled spokes (and larger for undersampled ones).

    Returns
    -------
    torch.Tensor
        float32 ``(T, K)``, >= 0, on the trajectory's device.
    """
    traj = _check_traj(trajectory, "ramp_dcf")
    r = torch.linalg.vector_norm(traj, dim=1)  # (T, K) radians/voxel
    pos = r[r > 1e-6]
    dr = float(pos.min()) if pos.numel() else 1.0
    w = torch.where(r > 1e-6, r, torch.full_like(r, dr / 4.0))
    return _normalize_dcf(w, traj, image_shape, normalization)


def full_spoke_samples(trajectory: torch.Tensor, *, tol: float = 1e-3) -> int | None:
    """Samples per spoke if the trajectory is made of full-diameter radial spokes, else None.

    A trajectory ``(T, 2, K)`` (radians/voxel) counts as full-spoke radial, the case for
    which the analytic :func:`ramp_dcf` is the density compensation, when for some spoke
    length ``S`` dividing ``K`` every run of ``S`` consecutive samples of every frame lies
    on one line through ``k = 0`` (distance to it < ``tol`` times the largest ``|k|``),
    at equally spaced positions along it (to ``tol`` relative), with at least 40 % of
    the spoke on each side of the centre. The smallest such ``S`` is returned (half
    spokes, spirals, random or Cartesian points give None).
    """
    traj = _check_traj(trajectory, "full_spoke_samples").detach().to("cpu", torch.float64)
    t, _, k = traj.shape
    if k < 8:
        return None
    kmax = float(traj.abs().max())
    if kmax == 0:
        return None
    for s in (d for d in range(8, k + 1) if k % d == 0):
        p = traj.permute(0, 2, 1).reshape(t, k // s, s, 2)  # (T, spokes, S, 2)
        r = torch.linalg.vector_norm(p, dim=-1)  # (T, spokes, S)
        u = torch.gather(p, 2, r.argmax(dim=2)[..., None, None].expand(-1, -1, 1, 2))
        u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)  # (T, spokes, 1, 2) direction
        perp = p[..., 0] * u[..., 1] - p[..., 1] * u[..., 0]
        if float(perp.abs().max()) > tol * kmax:
            continue
        proj = (p * u).sum(-1)  # (T, spokes, S) signed position along the spoke
        step = proj.diff(dim=2)
        mean = step.mean(dim=2, keepdim=True)
        if float((step - mean).abs().max()) > tol * float(mean.abs().min()) + 1e-12:
            continue
        lo, hi = proj.amin(dim=2), proj.amax(dim=2)
        span = hi - lo
        if bool((hi < 0.4 * span).any()) or bool((-lo < 0.4 * span).any()):
            continue
        return s
    return None


@torch.no_grad()
def pipe_dcf(
    trajectory: torch.Tensor,
    image_shape: tuple[int, int],
    iterations: int = 20,
    *,
    normalization: str = "area",
    grid_oversampling: float = 2.0,
    numpoints: int = 6,
    backend: str | None = "auto",
) -> torch.Tensor:
    """Iterative density compensation of Pipe & Menon (MRM 41:179, 1999).

    Fixed point of ``w <- w / (C w)``, where ``(C w)_j = sum_i w_i phi(k_j - k_i)`` is the
    weighted sample density convolved with a gridding kernel ``phi`` (spread onto the
    ``grid_oversampling`` x grid, read back at the samples), starting from ``w = 1``.
    Each frame has its own trajectory and its own weights; all frames are processed together.

    Kernels: finufft's exponential-of-semicircle kernel (``spreadinterponly``, ~6 points
    of the 2x grid; ~10 ms per iteration for 26 k samples on one CPU thread) or
    torchkbnufft's Kaiser-Bessel table interpolation (``numpoints``; ~1.5 s per
    iteration at that size on CPU). Any positive, compact kernel of about this width gives
    a valid Pipe DCF; the two differ by ~1 % (tests/test_trajectories.py).

    Parameters
    ----------
    trajectory : torch.Tensor
        float ``(T, 2, K)`` in radians/voxel, (ky, kx).
    image_shape : tuple of int
        ``(Y, X)`` of the image (sets the gridding grid and the k-space cell area).
    iterations : int
        Fixed-point iterations (10-30 are usual).
    normalization : {"area", "psf"}
        As in :func:`ramp_dcf`.
    grid_oversampling, numpoints : float, int
        Gridding grid size / image size and kernel width (in grid points; torchkbnufft only).
    backend : {"auto", "finufft", "torchkbnufft"}
        ``"auto"``: finufft for CPU tensors where installed, torchkbnufft otherwise and on
        CUDA (where its table interpolation is fast).

    Returns
    -------
    torch.Tensor
        float32 ``(T, K)``, > 0, on the trajectory's device.
    """
    from mridip.operators.nufft import SpreadDensity, available_backends, resolve_backend

    traj = _check_traj(trajectory, "pipe_dcf")
    ny, nx = (int(s) for s in image_shape)
    grid = tuple(int(math.ceil(grid_oversampling * s)) for s in (ny, nx))
    if backend is None or str(backend).lower() == "auto":
        cpu_fast = traj.device.type == "cpu" and "finufft" in available_backends("cpu")
        name = "finufft" if cpu_fast else "torchkbnufft"
    else:
        name = resolve_backend(backend, traj.device)
    t, _, k = traj.shape
    if name == "finufft":
        density = SpreadDensity(traj, grid)
        w = torch.ones(t, k, dtype=torch.float32, device=traj.device)
        for _ in range(int(iterations)):
            w = w / density(w).clamp_min(1e-12)
        return _normalize_dcf(w, traj, image_shape, normalization)

    from mridip.operators.nufft import _tkbn

    tkbn = _tkbn()
    kw = dict(im_size=(ny, nx), grid_size=grid, numpoints=numpoints, device=traj.device)
    to_grid = tkbn.KbInterpAdjoint(**kw)
    to_samples = tkbn.KbInterp(**kw)
    w = torch.ones(t, 1, k, dtype=torch.complex64, device=traj.device)
    for _ in range(int(iterations)):
        density = to_samples(to_grid(w, traj), traj).real  # (T, 1, K)
        w = w / density.clamp_min(1e-12)
    return _normalize_dcf(w.real[:, 0].to(torch.float32), traj, image_shape, normalization)


# --------------------------------------------------------------------------------------
# More Cartesian masks
# --------------------------------------------------------------------------------------


def _poisson_disc_2d(shape, radius_fn, center, rng) -> np.ndarray:
    """One variable-density Poisson-disc pattern by dart throwing over the grid points."""
    ny, nx = shape
    ky, kx = np.meshgrid(np.arange(ny) - ny // 2, np.arange(nx) - nx // 2, indexing="ij")
    rad = radius_fn(np.sqrt((ky / max(ny / 2, 1)) ** 2 + (kx / max(nx / 2, 1)) ** 2))  # grid points
    mask = np.zeros(shape, dtype=bool)
    taken_r = np.zeros(shape)  # the exclusion radius of each accepted point
    rmax = int(math.ceil(rad.max()))
    for flat in rng.permutation(ny * nx):
        y, x = divmod(int(flat), nx)
        r = rad[y, x]
        y0, y1, x0, x1 = max(0, y - rmax), min(ny, y + rmax + 1), max(0, x - rmax), min(nx, x + rmax + 1)
        win = mask[y0:y1, x0:x1]
        if win.any():
            dy, dx = np.nonzero(win)
            d = np.hypot(dy + y0 - y, dx + x0 - x)
            # two points conflict when closer than the larger of their radii
            if np.any(d < np.maximum(r, taken_r[y0:y1, x0:x1][dy, dx])):
                continue
        mask[y, x] = True
        taken_r[y, x] = r
    cy, cx = center
    if cy > 0 and cx > 0:
        y0, x0 = ny // 2 - cy // 2, nx // 2 - cx // 2
        mask[y0 : y0 + cy, x0 : x0 + cx] = True
    return mask


def poisson_disc_mask(
    frames: int,
    lines: int,
    readout: int,
    acceleration: float,
    center: int = 8,
    density_power: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """Variable-density Poisson-disc masks over the whole ``(Ky, Kx)`` plane, one per frame.

    Samples keep a minimum distance ``r(k) = r0 (1 + density_power * |k| / k_max)`` grid
    points (denser at the centre; Lustig et al., MRM 2007 use such patterns for 2-D
    phase-encoding planes), and a ``center x center`` block is fully sampled. ``r0`` is
    tuned by bisection on frame 0 to reach ``acceleration``; the other frames use the same
    ``r0`` with their own random order, so their accelerations differ slightly. Report the
    achieved value with :func:`mask_acceleration` (exact, all frames together).

    Returns
    -------
    torch.Tensor
        bool ``(T, Ky, Kx)``.
    """
    from mridip.errors import ShapeError

    if acceleration < 1:
        raise ShapeError(f"poisson_disc_mask: acceleration must be >= 1, got {acceleration}")
    shape = (int(lines), int(readout))
    cen = (min(center, lines), min(center, readout))
    want = lines * readout / float(acceleration)

    def make(r0, rng):
        return _poisson_disc_2d(shape, lambda kr: r0 * (1.0 + density_power * kr), cen, rng)

    lo, hi = 0.5, float(max(lines, readout))
    if acceleration <= 1.0:
        r0 = 0.5
    else:
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            count = make(mid, np.random.default_rng(seed)).sum()
            lo, hi = (mid, hi) if count > want else (lo, mid)
        r0 = 0.5 * (lo + hi)
    masks = [make(r0, np.random.default_rng(seed + t)) for t in range(int(frames))]
    return torch.from_numpy(np.stack(masks))


def vista_mask(
    frames: int,
    lines: int,
    readout: int,
    acceleration: float,
    center_lines: int = 8,
    density_power: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """VISTA-like ky-t lines: exactly ``round(lines / acceleration)`` lines every frame.

    Ahmad et al. (MRM 74:1266, 2015) spread ky-t samples by an energy minimisation; this
    deterministic approximation places frame ``t``'s non-central lines at the quantiles
    ``(i + frac(o + t / golden_ratio)) / n`` of the variable density
    ``(1 - |ky| / ky_max) ** density_power``, so each frame covers the density evenly and
    consecutive frames interleave (golden-ratio offsets, as in GRO sampling; Joshi et al.,
    2016). Collisions move to the nearest free line. ``seed`` sets the offset ``o``.

    Returns
    -------
    torch.Tensor
        bool ``(T, Ky, Kx)``, each frame with the same number of lines; the exact
        acceleration is :func:`mask_acceleration`.
    """
    from mridip.errors import ShapeError

    if acceleration < 1:
        raise ShapeError(f"vista_mask: acceleration must be >= 1, got {acceleration}")
    n_lines = max(1, min(lines, int(round(lines / acceleration))))
    center_lines = min(center_lines, n_lines)
    c0 = lines // 2 - center_lines // 2
    center = np.arange(c0, c0 + center_lines)
    ky = np.abs(np.arange(lines) - lines // 2) / max(lines // 2, 1)
    dens = np.clip(1.0 - ky, 1e-3, None) ** density_power
    dens[center] = 0.0
    cdf = np.cumsum(dens) / dens.sum()
    n_rand = n_lines - center_lines
    offset = np.random.default_rng(seed).uniform()
    mask = np.zeros((frames, lines, readout), dtype=bool)
    for t in range(frames):
        taken = np.zeros(lines, dtype=bool)
        taken[center] = True
        if n_rand > 0:
            q = (np.arange(n_rand) + np.mod(offset + t / GOLDEN_RATIO, 1.0)) / n_rand
            for line in np.searchsorted(cdf, q).clip(0, lines - 1):
                free = np.nonzero(~taken)[0]
                line = free[np.argmin(np.abs(free - line))]
                taken[line] = True
        mask[t, taken, :] = True
    return torch.from_numpy(mask)
