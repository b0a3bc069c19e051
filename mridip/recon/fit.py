"""The one fitting loop of every generator method (DIP, ConvDecoder, TDDIP, GIP, ...).

A method supplies a generator ``G`` (the contract of :mod:`mridip.models`: ``G(frames)``
maps a LongTensor of frame indices ``(B,)`` to complex images ``(B, Y, X)``) and a loss
``loss_fn(x_b, frames) -> scalar``; :func:`fit` owns everything else: the Adam optimiser
and its schedule, gradient clipping, the EMA of the output, the ground-truth-free
stopping rule, checkpoints and resume, progress, logging and timing.

For reconstruction from k-space, :func:`fit_kspace` builds the data-consistency loss
and the held-out validation from an operator ``A`` and data ``y``:

    minimise_theta  ||A_train G_theta - y_train||^2 / ||y_train||^2

evaluated through the normal operator (Toeplitz for radial),

    ||A x - y||^2 = <x, A^H A x> - 2 Re <x, A^H y> + ||y||^2,

so a step costs one ``A.normal`` instead of a NUFFT and its adjoint.

Stopping rule (no ground truth): a random fraction of the measured k-space samples,
stratified over frames, is held out of the loss; every ``val_every`` iterations the
relative residual on those samples is computed; the fit stops when it has not improved
by ``min_delta`` (relative) for ``patience`` iterations, and the best iterate is returned
(Yaman et al., "Self-supervised learning of physics-guided reconstruction neural
networks", MRM 2020, use the same held-out principle; here it only chooses when to stop).
"""

from __future__ import annotations

import copy
import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from mridip.errors import InputFileError, ProtocolError
from mridip.operators.base import LinearOperator, inner

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ValidateFn = Callable[[torch.Tensor], float]


@dataclass
class FitConfig:
    """Options of the fitting loop (the protocol's ``[fit]`` table).

    Attributes
    ----------
    iterations : int
        Maximum number of optimiser steps.
    lr : float
        Adam learning rate.
    betas : tuple of float
        Adam betas.
    weight_decay : float
        Adam weight decay.
    schedule : str
        ``"constant"``, ``"step"`` (multiply by ``gamma`` every ``step_size`` iterations)
        or ``"cosine"`` (to ``lr * min_lr_ratio`` at ``iterations``).
    grad_clip : float
        Clip the global gradient norm to this value; 0 disables.
    ema : float
        Decay of an exponential moving average of the rendered output, updated at each
        validation point; 0 disables. The EMA image is then validated and returned.
    stop : str
        ``"validation"`` (held-out k-space, the default) or ``"fixed"`` (run
        ``iterations`` steps, return the last iterate).
    holdout : float
        Fraction of measured samples held out for validation (``stop = "validation"``).
    patience : int
        Iterations without improvement of the validation loss before stopping.
    min_delta : float
        Relative improvement that counts as one.
    val_every : int
        Validate every this many iterations.
    min_iterations : int
        Never stop before this many iterations.
    frames_per_step : int
        Frames in one mini-batch; 0 means all frames every step.
    log_every : int
        Record (iteration, loss, val_loss, seconds) every this many iterations.
    checkpoint_every : int
        Save a checkpoint every this many iterations (0: never).
    amp : bool
        bfloat16 autocast of the generator on CUDA (the operator stays complex64).
    seed : int
        Seed of initialisation, hold-out split and frame sampling.
    progress : bool
        Show a tqdm progress bar.
    """

    iterations: int = 3000
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "constant"
    step_size: int = 1000
    gamma: float = 0.5
    min_lr_ratio: float = 0.05
    grad_clip: float = 0.0
    ema: float = 0.0
    stop: str = "validation"
    holdout: float = 0.08
    patience: int = 300
    min_delta: float = 1e-3
    val_every: int = 10
    min_iterations: int = 50
    frames_per_step: int = 0
    log_every: int = 10
    checkpoint_every: int = 0
    amp: bool = False
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        checks = [
            (self.iterations >= 1, "iterations must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.schedule in ("constant", "step", "cosine"), "schedule must be constant, step or cosine"),
            (self.stop in ("validation", "fixed"), "stop must be 'validation' or 'fixed'"),
            (0.0 <= self.holdout < 0.5, "holdout must be in [0, 0.5)"),
            (self.stop == "fixed" or self.holdout > 0, "stop = 'validation' needs holdout > 0"),
            (0.0 <= self.ema < 1.0, "ema must be in [0, 1)"),
            (self.val_every >= 1 and self.log_every >= 1, "val_every and log_every must be >= 1"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.frames_per_step >= 0, "frames_per_step must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ProtocolError(f"fit: {msg}")


@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    image : torch.Tensor
        complex64 ``(T, Y, X)``: the returned iterate (best validated, EMA, or last).
    iterations : int
        Optimiser steps run.
    best_iteration : int
        Iteration of the returned iterate.
    stop_reason : str
        ``"validation: no improvement for N iterations"``, ``"max_iterations"``, ...
    seconds : float
        Wall time of the loop, including the runs this one resumed (their
        ``resumed_seconds``; the time between runs is not counted).
    resumed_seconds : float
        The part of ``seconds`` spent by earlier runs, read from the checkpoint (0 when
        not resumed).
    seconds_per_iteration : float
        Mean wall time of one optimiser step (validation excluded).
    history : dict of str -> numpy.ndarray
        ``iteration``, ``loss``, ``val_loss`` (NaN where not validated), ``seconds``, and
        ``monitor`` (NaN where not validated) when a monitor was given.
    loss_path : str
        How :func:`fit_kspace` evaluated the data term (``"normal"`` or ``"forward"``);
        empty for other losses.
    """

    image: torch.Tensor
    iterations: int
    best_iteration: int
    stop_reason: str
    seconds: float
    seconds_per_iteration: float
    history: dict[str, np.ndarray] = field(default_factory=dict)
    resumed_seconds: float = 0.0
    loss_path: str = ""


# --------------------------------------------------------------------- hold-out split
def split_holdout(sample_mask: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split measured samples into training and validation sets, stratified over frames.

    Parameters
    ----------
    sample_mask : torch.Tensor
        bool ``(T, ...)`` (an operator's ``sample_mask``: ``(T, Ky, Kx)`` or ``(T, K)``).
    fraction : float
        Fraction of each frame's measured samples to hold out.
    seed : int
        Seed of the draw.

    Returns
    -------
    train, val : torch.Tensor
        bool, same shape, disjoint, ``train | val == sample_mask``.
    """
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    m = sample_mask.detach().to("cpu", torch.bool)
    val = torch.zeros_like(m)
    for t in range(m.shape[0]):
        idx = torch.nonzero(m[t].reshape(-1)).squeeze(1)
        n = int(round(fraction * idx.numel()))
        if n == 0 and fraction > 0 and idx.numel() > 1:
            n = 1
        pick = idx[torch.randperm(idx.numel(), generator=g)[:n]]
        val[t].view(-1)[pick] = True
    train = m & ~val
    return train.to(sample_mask.device), val.to(sample_mask.device)


# ------------------------------------------------------------ data-consistency loss
class KSpaceLoss:
    """Relative data-consistency loss ``||A_b x_b - y_b||^2 / ||y_b||^2`` for frames ``b``.

    Parameters
    ----------
    A : LinearOperator
        Forward model restricted to the samples that count (training or validation set);
        ishape ``(T, Y, X)``.
    y : torch.Tensor
        Measured k-space in ``A.oshape``; entries outside ``A.sample_mask`` are ignored.
    path : str
        ``"normal"``: through ``A.normal`` (Toeplitz for radial, one call per step);
        ``"forward"``: explicit ``||A x - y||^2`` (a NUFFT and, for the gradient, its adjoint).
    """

    def __init__(self, A: LinearOperator, y: torch.Tensor, path: str = "normal"):
        if path not in ("normal", "forward"):
            raise ProtocolError(f"fit.loss_path must be 'normal' or 'forward', got {path!r}")
        self.A = A
        self.path = path
        mask = A.sample_mask.unsqueeze(1).to(y.dtype)  # (T, 1, ...) broadcast over coils
        self.y = y * mask
        with torch.no_grad():
            self.AHy = A.adjoint(self.y)  # (T, Y, X)
            self.y2 = torch.linalg.vector_norm(self.y.reshape(y.shape[0], -1), dim=1) ** 2  # (T,)
        self._T = A.ishape[0]
        self._ops: dict[tuple[int, ...], LinearOperator] = {}

    def _op(self, frames: torch.Tensor) -> LinearOperator:
        key = tuple(frames.tolist())
        if len(key) == self._T and key == tuple(range(self._T)):
            return self.A
        if key not in self._ops:
            if len(self._ops) > 64:  # bounded cache: random mini-batches rarely repeat
                self._ops.clear()
            self._ops[key] = self.A.select_frames(frames)
        return self._ops[key]

    def __call__(self, x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Loss of images ``x`` ``(B, Y, X)`` of frames ``frames`` ``(B,)``."""
        A = self._op(frames)
        y2 = self.y2[frames].sum()
        if self.path == "normal":
            r = inner(x, A.normal(x)).real - 2.0 * inner(x, self.AHy[frames]).real + y2
        else:
            d = A(x) - self.y[frames]
            r = torch.linalg.vector_norm(d) ** 2
        return r / y2.clamp_min(torch.finfo(torch.float32).tiny)


# ----------------------------------------------------------------------- the loop
def _render(model: nn.Module, num_frames: int, chunk: int, device: torch.device) -> torch.Tensor:
    """All frames of the generator, in chunks of the training batch size, no perturbation."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = [
            model(torch.arange(s, min(s + chunk, num_frames), device=device))
            for s in range(0, num_frames, chunk)
        ]
    model.train(was_training)
    return torch.cat(out, 0).to(torch.complex64)


def _lr_lambda(cfg: FitConfig) -> Callable[[int], float]:
    if cfg.schedule == "step":
        return lambda it: cfg.gamma ** (it // max(cfg.step_size, 1))
    if cfg.schedule == "cosine":
        lo = cfg.min_lr_ratio
        return lambda it: lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * min(it, cfg.iterations) / cfg.iterations))
    return lambda it: 1.0


def _rng_state(frame_gen: torch.Generator) -> dict:
    st = {"torch": torch.get_rng_state(), "frames": frame_gen.get_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict, frame_gen: torch.Generator) -> None:
    torch.set_rng_state(st["torch"])
    frame_gen.set_state(st["frames"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def read_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict:
    """Load a checkpoint written by :func:`fit` (or a stage file of a schedule built on it).

    Raises InputFileError naming the file for a truncated or foreign file.
    """
    try:
        ck = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # a truncated or foreign file: torch raises many kinds
        raise InputFileError(f"cannot read checkpoint {path}: {exc}; delete it to start afresh") from exc
    if not isinstance(ck, dict) or "model" not in ck:
        raise InputFileError(f"{path} is not a mridip checkpoint; delete it to start afresh")
    return ck


@contextmanager
def _mismatch_is_input_error(path: str | os.PathLike):
    # load_state_dict raises RuntimeError (model) or ValueError (optimiser) on other shapes
    try:
        yield
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(
            f"checkpoint {path} was written for another model or protocol ({first}); run without "
            "--resume, or delete it, to start afresh"
        ) from exc


def restore_model(model: nn.Module, state: dict, path: str | os.PathLike) -> None:
    """``model.load_state_dict(state)``; a mismatch is an InputFileError naming ``path``."""
    with _mismatch_is_input_error(path):
        model.load_state_dict(state)


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    config: FitConfig,
    *,
    validate: ValidateFn | None = None,
    parameters: list[nn.Parameter] | None = None,
    lr: float | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    description: str = "fit",
    monitor: Callable[[torch.Tensor], float] | None = None,
    restore_best: bool = False,
) -> FitResult:
    """Fit a generator by Adam on ``loss_fn``: the one loop of every generator method.

    Parameters
    ----------
    model : nn.Module
        Generator with ``num_frames`` and ``G(frames (B,)) -> (B, Y, X)`` complex.
    loss_fn : callable
        ``loss_fn(x_b (B, Y, X), frames (B,)) -> scalar tensor`` to minimise.
    config : FitConfig
        Optimiser, schedule, stopping rule, logging and checkpoint options.
    validate : callable, optional
        ``validate(x (T, Y, X)) -> float``, lower is better, needs no ground truth
        (held-out k-space). Required for ``config.stop == "validation"``.
    parameters : list of nn.Parameter, optional
        Parameters to optimise (default: all of ``model``); others are left unchanged
        (stage-wise schedules freeze parts of a model this way).
    lr : float, optional
        Overrides ``config.lr`` (stage-wise schedules).
    checkpoint : path, optional
        File for checkpoints every ``config.checkpoint_every`` iterations (atomic writes).
    resume : bool
        Continue from ``checkpoint`` if it exists; the result equals an uninterrupted run
        with the same seed (same RNG streams, optimiser and schedule state).
    monitor : callable, optional
        ``monitor(x (T, Y, X)) -> float``: a diagnostic score of the rendered image (e.g.
        PSNR against a known truth), evaluated at every validation point and recorded in
        ``history["monitor"]``. It never influences the fit, the stop or the returned
        iterate; it exists to report how far the ground-truth-free stop is from the
        best iterate on the path (the "oracle").
    restore_best : bool
        Keep a copy of the weights of the best validated iterate and load them into
        ``model`` at the end, so that the model renders the returned image (a generator
        whose other outputs, e.g. parameter maps, must belong to the returned image).
        Needs ``stop = "validation"`` and no EMA (an EMA image has no weights).

    Returns
    -------
    FitResult
    """
    cfg = config
    if cfg.stop == "validation" and validate is None:
        raise ProtocolError("fit: stop = 'validation' needs a validation function (held-out k-space)")
    if restore_best and (cfg.stop != "validation" or cfg.ema > 0):
        raise ProtocolError("this method returns the weights of its best validated iterate: it needs "
                            "fit.stop = 'validation' and fit.ema = 0")
    T = int(model.num_frames)
    batch = T if cfg.frames_per_step in (0, None) or cfg.frames_per_step >= T else int(cfg.frames_per_step)
    device = next(model.parameters()).device
    params = list(model.parameters()) if parameters is None else list(parameters)
    if not params:
        raise ProtocolError("fit: nothing to optimise (empty parameter list)")
    opt = torch.optim.Adam(params, lr=lr or cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    frame_gen = torch.Generator(device="cpu").manual_seed(cfg.seed + 1)
    use_amp = bool(cfg.amp) and device.type == "cuda"

    it0 = 0
    best_val = math.inf
    best_it = 0
    best_img: torch.Tensor | None = None
    best_state: dict[str, torch.Tensor] | None = None
    ema_img: torch.Tensor | None = None
    since_best = 0
    hist: dict[str, list[float]] = {"iteration": [], "loss": [], "val_loss": [], "seconds": []}
    if monitor is not None:
        hist["monitor"] = []
    step_seconds = 0.0
    resumed_seconds = 0.0
    perm = torch.empty(0, dtype=torch.long)
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        ck = read_checkpoint(checkpoint, device)
        if ck.get("num_frames") != T:
            raise InputFileError(f"checkpoint {checkpoint} is for {ck.get('num_frames')} frames, not {T}")
        with _mismatch_is_input_error(checkpoint):
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
        _set_rng_state(ck["rng"], frame_gen)
        it0, best_val, best_it, since_best = ck["iteration"], ck["best_val"], ck["best_it"], ck["since_best"]
        best_img, ema_img, hist, perm = ck["best_img"], ck["ema_img"], ck["history"], ck["perm"]
        best_state = ck.get("best_state") if restore_best else None
        if restore_best and best_state is None and best_img is not None:
            raise InputFileError(f"checkpoint {checkpoint} holds no weights of its best iterate (written "
                                 "without restore_best); remove it to start this fit afresh")
        if monitor is not None and "monitor" not in hist:  # checkpoint written without a monitor
            hist["monitor"] = [math.nan] * len(hist["iteration"])
        elif monitor is None:
            hist.pop("monitor", None)
        step_seconds = ck["step_seconds"]
        # wall time of the earlier runs; checkpoints written before it was recorded give the
        # time of their optimiser steps instead (a lower bound: validation excluded)
        resumed_seconds = float(ck.get("elapsed", step_seconds))

    def save_checkpoint(it: int) -> None:
        state = {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "rng": _rng_state(frame_gen), "iteration": it, "best_val": best_val, "best_it": best_it,
            "since_best": since_best, "best_img": best_img, "ema_img": ema_img, "history": hist,
            "best_state": best_state,
            "perm": perm, "step_seconds": step_seconds, "num_frames": T, "config": asdict(cfg),
            "elapsed": resumed_seconds + time.perf_counter() - t_start,
        }
        tmp = f"{checkpoint}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, checkpoint)

    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.iterations, initial=it0, desc=description, leave=False, dynamic_ncols=True)
    t_start = time.perf_counter()
    stop_reason = "max_iterations"
    it = it0
    model.train()
    while it < cfg.iterations:
        # --- frames of this step: a fresh random permutation per epoch, consumed in batches
        if batch == T:
            frames = torch.arange(T)
        else:
            if perm.numel() < batch:
                perm = torch.cat([perm, torch.randperm(T, generator=frame_gen)])
            frames, perm = perm[:batch], perm[batch:]
        frames = frames.to(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
            x = model(frames)
        loss = loss_fn(x.to(torch.complex64), frames)
        if not torch.isfinite(loss):
            stop_reason = f"diverged: loss is {float(loss.detach())} at iteration {it + 1} (lower the learning rate)"
            break
        loss.backward()
        loss_value = float(loss.detach())
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        step_seconds += time.perf_counter() - t0
        it += 1

        val_loss = math.nan
        monitored = math.nan
        if it % cfg.val_every == 0 or it == cfg.iterations:
            img = _render(model, T, batch, device)
            if cfg.ema > 0:
                ema_img = img if ema_img is None else cfg.ema * ema_img + (1 - cfg.ema) * img
                img = ema_img
            if validate is not None:
                val_loss = float(validate(img))
                if cfg.stop == "validation":
                    if val_loss < best_val * (1 - cfg.min_delta) or best_img is None:
                        best_val, best_it, best_img, since_best = val_loss, it, img.detach().clone(), 0
                        if restore_best:
                            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        since_best += cfg.val_every
            if monitor is not None:
                with torch.no_grad():
                    monitored = float(monitor(img.detach()))
        if it % cfg.log_every == 0 or it == cfg.iterations or not (math.isnan(val_loss) and math.isnan(monitored)):
            hist["iteration"].append(it)
            hist["loss"].append(loss_value)
            hist["val_loss"].append(val_loss)
            hist["seconds"].append(step_seconds)
            if monitor is not None:
                hist["monitor"].append(monitored)
        if bar is not None:
            bar.update(1)
            if it % cfg.log_every == 0:
                post = {"loss": f"{loss_value:.3e}"}
                if not math.isnan(val_loss):
                    post["val"] = f"{val_loss:.3e}"
                bar.set_postfix(post, refresh=False)
        if checkpoint is not None and cfg.checkpoint_every and it % cfg.checkpoint_every == 0:
            save_checkpoint(it)
        if cfg.stop == "validation" and it >= cfg.min_iterations and since_best >= cfg.patience:
            stop_reason = f"validation: no improvement for {since_best} iterations"
            break
    if bar is not None:
        bar.close()

    if cfg.stop == "validation" and best_img is not None:
        image, returned_it = best_img, best_it
        if best_state is not None:
            model.load_state_dict(best_state)
    else:
        image = ema_img if (cfg.ema > 0 and ema_img is not None) else _render(model, T, batch, device)
        returned_it = it
    return FitResult(
        image=image,
        iterations=it,
        best_iteration=returned_it,
        stop_reason=stop_reason,
        seconds=resumed_seconds + time.perf_counter() - t_start,
        seconds_per_iteration=step_seconds / max(it, 1) if it else 0.0,
        history={k: np.asarray(v, dtype=np.float64) for k, v in hist.items()},
        resumed_seconds=resumed_seconds,
    )


def fit_kspace(
    model: nn.Module,
    A: LinearOperator,
    y: torch.Tensor,
    config: FitConfig,
    *,
    loss_path: str = "auto",
    extra_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    **fit_kwargs,
) -> FitResult:
    """Fit a generator to k-space ``y`` through operator ``A`` with the held-out stopping rule.

    Parameters
    ----------
    model : nn.Module
        Generator (``G(frames) -> (B, Y, X)``), already on ``A``'s device.
    A : LinearOperator
        Forward model, ishape ``(T, Y, X)``.
    y : torch.Tensor
        Measured k-space in ``A.oshape``, scaled so that images have magnitude ~1
        (:func:`data_scale`).
    config : FitConfig
    loss_path : str
        ``"normal"`` (Toeplitz / masked FFT), ``"forward"`` (explicit NUFFT and adjoint) or
        ``"auto"`` (default: :func:`choose_loss_path`, the faster of the two for this
        operator and batch, timed once before the fit; the two agree in value and
        gradient to float32 round-off).
    extra_loss : callable, optional
        ``extra_loss(model, x_b, frames) -> scalar`` added to the data term (regularisers
        of motion fields, smoothness of parameter maps, ...).
    **fit_kwargs
        Passed to :func:`fit` (``checkpoint``, ``resume``, ``parameters``, ``lr``, ...).
    """
    if config.stop == "validation":
        train_mask, val_mask = split_holdout(A.sample_mask, config.holdout, config.seed)
        A_train, A_val = A.restrict(train_mask), A.restrict(val_mask)
        val_loss = KSpaceLoss(A_val, y, path="normal")
        all_frames = torch.arange(A.ishape[0], device=y.device)

        def validate(x: torch.Tensor) -> float:
            with torch.no_grad():
                return float(val_loss(x, all_frames))
    else:
        A_train, validate = A, None
    if loss_path == "auto":
        T = A.ishape[0]
        batch = T if config.frames_per_step in (0, None) or config.frames_per_step >= T else int(config.frames_per_step)
        loss_path = choose_loss_path(A_train, y, batch)
    data_loss = KSpaceLoss(A_train, y, path=loss_path)
    if extra_loss is None:
        loss_fn = data_loss
    else:
        def loss_fn(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
            return data_loss(x, frames) + extra_loss(model, x, frames)
    res = fit(model, loss_fn, config, validate=validate, **fit_kwargs)
    res.loss_path = loss_path
    return res


#: ``"forward"`` is chosen only when it is this much faster than the normal operator (the
#: long-standing default): timing noise must not flip the choice between equal paths.
LOSS_PATH_MARGIN = 0.8


def choose_loss_path(A: LinearOperator, y: torch.Tensor, batch: int, repeats: int = 2) -> str:
    """The faster data-term path of :class:`KSpaceLoss` for ``A`` and ``batch`` frames per step.

    Cartesian (and any operator without a Toeplitz normal) -> ``"normal"`` (a masked FFT
    pair, as cheap as the forward path). Radial with Toeplitz kernels: one loss + backward
    of each path on a random batch is timed (the best of ``repeats``, after one warm-up),
    and ``"forward"`` is taken when it costs under :data:`LOSS_PATH_MARGIN` of
    ``"normal"``: with finufft on few spokes per frame a NUFFT pair on a 1.25x grid can be
    cheaper than the Toeplitz FFT pair on the 2x grid, with many spokes or on a GPU the
    Toeplitz normal wins.
    """
    if getattr(A, "kernels", None) is None:
        return "normal"
    T, Y, X = A.ishape
    frames = torch.arange(min(batch, T), device=y.device)
    g = torch.Generator(device="cpu").manual_seed(0)
    x0 = torch.randn(len(frames), Y, X, generator=g, dtype=torch.complex64).to(y.device)
    times = {}
    for path in ("normal", "forward"):
        loss = KSpaceLoss(A, y, path=path)
        best = math.inf
        for r in range(repeats + 1):
            x = x0.clone().requires_grad_(True)
            if y.device.type == "cuda":
                torch.cuda.synchronize(y.device)
            t0 = time.perf_counter()
            loss(x, frames).backward()
            if y.device.type == "cuda":
                torch.cuda.synchronize(y.device)
            if r:  # the first call warms plans and caches
                best = min(best, time.perf_counter() - t0)
        times[path] = best
    return "forward" if times["forward"] < LOSS_PATH_MARGIN * times["normal"] else "normal"


def data_scale(image: torch.Tensor, percentile: float = 99.0) -> float:
    """Scale of a quick image ``(T, Y, X)``: its ``percentile``-th magnitude percentile.

    Dividing k-space by this scale gives images of magnitude ~1, so one learning rate
    works across files; results are multiplied back.
    """
    mag = image.detach().abs().reshape(-1).float()
    if mag.numel() > 2_000_000:  # quantile has a size limit; a strided subsample suffices
        mag = mag[:: mag.numel() // 2_000_000 + 1]
    s = float(torch.quantile(mag, percentile / 100.0))
    if not math.isfinite(s) or s <= 0:
        s = float(mag.max())
    if s <= 0:
        raise InputFileError("the data give an all-zero image: the k-space holds no signal")
    return s


def clone_config(cfg: FitConfig, **changes) -> FitConfig:
    """A copy of ``cfg`` with ``changes`` applied (validated)."""
    c = copy.deepcopy(asdict(cfg))
    c.update(changes)
    return FitConfig(**c)
