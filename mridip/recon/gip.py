"""Graph image prior (GIP) reconstruction: the staged schedule and the ADMM refinement.

Li et al., "Graph Image Prior for Unsupervised Dynamic Cardiac Cine MRI Reconstruction",
arXiv:2403.15770 (2024). With ``G_theta = C_phi o g_psi`` (per-frame CNNs ``g_psi``, graph
network ``C_phi``, :class:`~mridip.models.gip.GraphImagePrior`) and the relative data term
``D(x) = ||A_train x - y_train||^2 / ||y_train||^2``:

0. the frame graph: with ``stages.graph = "navigator"`` built here from self-navigator
   frames (:mod:`mridip.recon.navigator`, training samples only) and fixed; with
   ``"temporal"`` the temporal neighbourhood, fixed; with ``"features"`` (the reference's
   rule) as in steps 1 and 3;
1. stage 1: ``min_psi D(h(g_psi(z)))`` with per-frame ``1 x 1`` heads ``h`` (no graph);
   then (``"features"``) the kNN graph is computed from the fitted features;
2. stage 2: ``min_phi D(C_phi(g_psi(z)))``, per-frame CNNs frozen (their features are
   computed once);
3. stage 3: ``min_{psi, phi} D(C_phi(g_psi(z)))``; with ``"features"`` the graph is
   recomputed every ``graph_update_every`` steps during the first
   ``graph_update_iterations`` steps, then frozen;
4. optional ADMM on ``min_{X, theta} 0.5 ||A X - y||^2  s.t.  X = G_theta(z)``
   (scaled by ``rho``, multiplier ``Gamma``)::

       X      <- argmin_X 0.5 ||A X - y||^2 + rho/2 ||X - G(z) + Gamma/rho||^2
                 i.e. (A^H A + rho I) X = A^H y + rho G(z) - Gamma   (a few CG steps, warm)
       theta  <- argmin_theta ||G_theta(z) - (X + Gamma/rho)||^2     (a few Adam steps)
       Gamma  <- Gamma + rho (X - G_theta(z))

Every network fit -- each stage and each ADMM network step -- is one call of the one
fitting loop :func:`mridip.recon.fit.fit` with a parameter subset and a learning rate.
Stages 1-3 stop by the held-out k-space rule of the loop (the same held-out samples for
every stage) and continue from the *weights* of their best validated iterate. ADMM runs
on the training samples too; the held-out residual of each ``X`` (and of the stage-3
image) chooses which one is returned. No ground truth is used anywhere.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import torch

from mridip.errors import InputFileError, ProtocolError
from mridip.operators.base import inner, max_eigenvalue

#: Adam betas of the reference code (every stage and ADMM), used unless [fit] sets betas
GIP_BETAS = (0.5, 0.98)
#: values of ``stages.graph`` (see :func:`gip_stage_options`)
GRAPH_SOURCES = ("features", "navigator", "temporal")


def gip_stage_options(
    *,
    stage1_iterations: int = 3000,
    stage2_iterations: int = 1500,
    stage3_iterations: int = 3000,
    lr1: float = 5e-4,
    lr2: float = 5e-4,
    lr3: float = 5e-5,
    graph_update_every: int = 10,
    graph_update_iterations: int = 2000,
    admm_iterations: int = 0,
    admm_rho: float = 1e-3,
    admm_cg_iterations: int = 10,
    admm_net_iterations: int = 100,
    admm_lr: float = 1e-5,
    graph: str = "features",
) -> dict[str, Any]:
    """Validate the options of the GIP schedule (a protocol's ``[stages]`` table).

    Parameters
    ----------
    stage1_iterations, stage2_iterations, stage3_iterations : int
        Maximum optimiser steps of stage 1 (per-frame CNNs), 2 (graph network) and
        3 (joint); each stage may stop earlier by the held-out rule of ``[fit]``. 0 skips
        a stage. Reference: 10000, 5000, 15000.
    lr1, lr2, lr3 : float
        Adam learning rates of the stages (reference: 5e-4, 5e-4, 5e-5).
    graph_update_every : int
        Stage 3 recomputes the kNN graph every this many steps (reference: 1) ...
    graph_update_iterations : int
        ... during its first this many steps, then freezes it (reference: 10000 of 15000).
    admm_iterations : int
        Outer ADMM iterations after stage 3 (0: none; reference: 20).
    admm_rho : float
        ADMM penalty relative to the largest eigenvalue of ``A^H A``:
        ``rho = admm_rho * ||A||^2`` (reference: 1e-3 with ``||A|| = 1``).
    admm_cg_iterations : int
        CG steps of each X-update (reference: 10).
    admm_net_iterations : int
        Adam steps of each network update (reference: 500).
    admm_lr : float
        Learning rate of the network updates (reference: 1e-5).
    graph : str
        Where the frame graph comes from. ``"features"`` (the reference): kNN of the
        stage-1 features, recomputed during stage 3 as above. ``"navigator"``: kNN of
        low-resolution frames from the k-space centre every frame samples
        (:mod:`mridip.recon.navigator`), built from the training samples before stage 1
        and then fixed. ``"temporal"``: the circular temporal neighbourhood, fixed.

    Returns
    -------
    dict
        The options, as given or defaulted.

    Raises
    ------
    ProtocolError
        A value out of range (the message names the ``stages.`` key).
    """
    opts = dict(locals())
    for key in ("stage1_iterations", "stage2_iterations", "stage3_iterations", "graph_update_iterations",
                "admm_iterations"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ProtocolError(f"stages.{key} must be an int >= 0; got {v!r}")
    for key in ("graph_update_every", "admm_cg_iterations", "admm_net_iterations"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ProtocolError(f"stages.{key} must be an int >= 1; got {v!r}")
    if graph not in GRAPH_SOURCES:
        raise ProtocolError(f"stages.graph must be one of {', '.join(map(repr, GRAPH_SOURCES))}; got {graph!r}")
    for key in ("lr1", "lr2", "lr3", "admm_rho", "admm_lr"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
            raise ProtocolError(f"stages.{key} must be a number > 0; got {v!r}")
        opts[key] = float(v)
    return opts


class _BestWeights:
    """Validation hook for :func:`fit` that also keeps the weights of the best iterate.

    It applies the loop's own improvement rule (``val < best * (1 - min_delta)``, the
    first validation always counts), so the snapshot belongs to the image the loop returns;
    the next stage then starts from those weights rather than from the last ones.
    """

    def __init__(self, model: torch.nn.Module, val_loss, frames: torch.Tensor, min_delta: float):
        self.model, self.val_loss, self.frames, self.min_delta = model, val_loss, frames, min_delta
        self.best = math.inf
        self.state: dict[str, torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor) -> float:
        with torch.no_grad():
            v = float(self.val_loss(x, self.frames))
        if self.state is None or v < self.best * (1 - self.min_delta):
            self.best = v
            self.state = {k: t.detach().clone() for k, t in self.model.state_dict().items()}
        return v

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)


def _stage_done_path(checkpoint: str | None, name: str) -> str | None:
    return None if checkpoint is None else f"{checkpoint}.{name}.done.pt"


def _checkpoint_iteration(path: str | None, resume: bool) -> int:
    if not (resume and path and os.path.exists(path)):
        return 0
    from mridip.recon.fit import read_checkpoint

    return int(read_checkpoint(path).get("iteration", 0))


def run_gip(problem, proto, *, seed: int, checkpoint: str | None = None, resume: bool = False,
            progress: bool = True, description: str = "", monitor: Any = None,
            **unused: Any) -> tuple[torch.Tensor, dict]:
    """Reconstruct one slice with the graph image prior (the runner of ``method = "gip"``).

    Objective and schedule: see the module docstring. The k-space is divided by the 99th
    magnitude percentile of a 10-iteration CG-SENSE image (as :func:`run_generator`), so
    the learning rates transfer between files; the result is multiplied back.

    Parameters
    ----------
    problem : SliceProblem
        ``A`` (ishape ``(T, Y, X)``) and ``y`` (``A.oshape``) on the compute device.
    proto : Protocol
        ``model`` -> :class:`~mridip.models.gip.GraphImagePrior` options; ``fit`` -> the loop's
        generic options (``holdout``, ``patience``, ``val_every``, ``min_iterations``,
        ``frames_per_step``, ``amp``, ``betas`` (default (0.5, 0.98)), ...); its ``iterations``
        and ``lr`` are replaced per stage by ``stages`` (:func:`gip_stage_options`).
    seed : int
        Seed of ``z``, weights, hold-out split and frame sampling.
    checkpoint : str, optional
        Stem of the stage checkpoints (``STEM.stageN.pt`` during a stage, every
        ``fit.checkpoint_every`` steps, ``STEM.stageN.done.pt`` once it is finished, and
        ``STEM.admm.pt`` after each ADMM iteration).
    resume : bool
        Skip finished stages, continue the interrupted one, and continue ADMM after its
        last saved iteration.
    monitor : callable, optional
        ``monitor(x (T, Y, X)) -> float`` in the data's units: a diagnostic score of each
        stage's validated iterates and of each ADMM ``X``, recorded in ``history["monitor"]``;
        never used to stop or to choose (see :func:`mridip.recon.fit.fit`).

    Returns
    -------
    x : torch.Tensor
        complex64 ``(T, Y, X)`` in the units of ``problem.y``.
    info : dict
        ``iterations`` (all optimiser steps), ``best_iteration`` (cumulative step of the
        returned image), ``stop_reason`` (per stage), ``seconds_per_iteration`` (all stages)
        and ``stage_seconds_per_iteration``, ``history`` (arrays ``iteration``, ``loss``,
        ``val_loss``, ``seconds``, ``stage`` (1, 2, 3; 4 = one row per ADMM iteration with
        the held-out residual of its ``X``)), ``fit_seconds`` (wall, including
        ``resumed_seconds``: the part spent by earlier runs this one resumed), ``data_scale``,
        ``parameters``, ``returned``.
    """
    from mridip.models.gip import GraphImagePrior, knn_graph
    from mridip.recon.baselines import cg_sense
    from mridip.recon.fit import KSpaceLoss, clone_config, data_scale, fit, read_checkpoint, restore_model, split_holdout
    from mridip.recon.navigator import navigator_descriptors, navigator_images, navigator_mask

    opts = gip_stage_options(**(getattr(proto, "stages", None) or {}))
    A, y = problem.A, problem.y
    quick, _ = cg_sense(A, y, iterations=10)
    scale = data_scale(quick)
    ys = y / scale
    mon = None if monitor is None else (lambda x: float(monitor(x * scale)))
    T, ny, nx = A.ishape
    torch.manual_seed(seed)
    model = GraphImagePrior(T, (ny, nx), **{**proto.model, "seed": seed}).to(y.device)
    changes: dict[str, Any] = {"seed": seed, "progress": progress}
    if "betas" not in proto.fit:
        changes["betas"] = GIP_BETAS
    cfg = proto.fit_config(**changes)
    if cfg.ema > 0:
        raise ProtocolError("gip: fit.ema must be 0 (the stages continue from the weights of the best "
                            "validated iterate, which an averaged image has none of); set fit.ema = 0")

    # one hold-out split for every stage and for ADMM (fit_kspace draws the same one)
    frames_all = torch.arange(T, device=y.device)
    validating = cfg.stop == "validation"
    if validating:
        train_mask, val_mask = split_holdout(A.sample_mask, cfg.holdout, cfg.seed)
        A_train = A.restrict(train_mask)
        val_loss = KSpaceLoss(A.restrict(val_mask), ys, path="normal")
    else:
        A_train, val_loss = A, None
    data_loss = KSpaceLoss(A_train, ys, path="normal")

    histories: list[dict[str, np.ndarray]] = []
    reasons: list[str] = []
    per_stage_spi: list[float] = []
    total_it = 0
    step_seconds = 0.0
    resumed_seconds = 0.0  # wall time spent by earlier runs this one resumed
    best_image: torch.Tensor | None = None
    best_it = 0

    def run_stage(number: int, params, lr: float, iterations: int, loss_fn, output: str, frozen: bool = False):
        nonlocal total_it, step_seconds, resumed_seconds, best_image, best_it
        name = f"stage{number}"
        done = _stage_done_path(checkpoint, name)
        if resume and done and os.path.exists(done):
            saved = read_checkpoint(done, y.device)
            restore_model(model, saved["model"], done)
            res = saved["result"]
            # stage files written before "seconds" was stored: the time of their steps
            resumed_seconds += float(res.get("seconds", res["seconds_per_iteration"] * res["iterations"]))
        else:
            model.set_output(output)
            scfg = clone_config(cfg, iterations=iterations)
            hook = _BestWeights(model, val_loss, frames_all, cfg.min_delta) if validating else None
            ck = None if checkpoint is None else f"{checkpoint}.{name}.pt"
            if frozen:
                with model.generators_frozen():
                    r = fit(model, loss_fn, scfg, validate=hook, parameters=params, lr=lr, checkpoint=ck,
                            resume=resume, description=f"{description} stage {number}".strip(), monitor=mon)
            else:
                r = fit(model, loss_fn, scfg, validate=hook, parameters=params, lr=lr, checkpoint=ck,
                        resume=resume, description=f"{description} stage {number}".strip(), monitor=mon)
            if hook is not None:
                hook.restore()
            resumed_seconds += r.resumed_seconds
            res = {"image": r.image, "iterations": r.iterations, "best_iteration": r.best_iteration,
                   "stop_reason": r.stop_reason, "seconds_per_iteration": r.seconds_per_iteration,
                   "seconds": r.seconds, "history": r.history}
            if done:
                tmp = f"{done}.tmp"
                torch.save({"model": model.state_dict(), "result": res}, tmp)
                os.replace(tmp, done)
        h = dict(res["history"])
        h["iteration"] = h["iteration"] + total_it
        h["seconds"] = h["seconds"] + step_seconds
        h["stage"] = np.full(len(h["iteration"]), float(number))
        if mon is not None and "monitor" not in h:  # a stage finished before, without a monitor
            h["monitor"] = np.full(len(h["iteration"]), np.nan)
        histories.append(h)
        reasons.append(f"stage {number}: {res['stop_reason']} (best at {res['best_iteration']})")
        per_stage_spi.append(float(res["seconds_per_iteration"]))
        best_image, best_it = res["image"], total_it + int(res["best_iteration"])
        total_it += int(res["iterations"])
        step_seconds += float(res["seconds_per_iteration"]) * int(res["iterations"])

    t_start = time.perf_counter()
    if opts["graph"] == "navigator":
        # from the training samples only: the held-out ones stay unseen by every choice
        nav = navigator_images(A_train, ys, region=navigator_mask(A))
        model.set_graph(knn_graph(navigator_descriptors(nav), model.k))
    elif opts["graph"] == "temporal":
        model.freeze_graph()
    # ---- stage 1: per-frame CNNs with their own heads, no graph
    if opts["stage1_iterations"]:
        run_stage(1, model.generator_parameters(), opts["lr1"], opts["stage1_iterations"], data_loss, "heads")
    model.update_graph()  # from the fitted features (all frames; one forward); no-op when fixed
    # ---- stage 2: graph network on frozen features
    if opts["stage2_iterations"]:
        run_stage(2, model.graph_parameters(), opts["lr2"], opts["stage2_iterations"], data_loss, "graph",
                  frozen=True)
    # ---- stage 3: joint, the graph recomputed now and then, then frozen
    if opts["stage3_iterations"]:
        every, until = opts["graph_update_every"], opts["graph_update_iterations"]
        ck3 = None if checkpoint is None else f"{checkpoint}.stage3.pt"
        calls = [_checkpoint_iteration(ck3, resume)]

        def loss3(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
            # called once per step by the loop, after the forward pass: the new graph
            # serves from the next step on (update_graph swaps the buffer, so this step's
            # backward keeps the indices its forward used)
            calls[0] += 1
            if calls[0] <= until and calls[0] % every == 0:
                model.update_graph()
            if calls[0] == until:
                model.freeze_graph()
            return data_loss(x, frames)

        run_stage(3, model.joint_parameters(), opts["lr3"], opts["stage3_iterations"], loss3, "graph")
    model.freeze_graph()
    model.set_output("graph")
    if best_image is None:  # every stage skipped: the untrained network
        with torch.no_grad():
            best_image = model.eval()(frames_all)
    returned = f"stage {len(histories)} image" if histories else "untrained network"

    # ---- ADMM refinement
    if opts["admm_iterations"]:
        rho = opts["admm_rho"] * max_eigenvalue(A_train)
        with torch.no_grad():
            ahy = A_train.adjoint(ys)
        gz = best_image.detach().clone()
        x = gz.clone()
        gam = torch.zeros_like(x)
        best_val = float(val_loss(gz, frames_all)) if validating else math.inf
        net_cfg = clone_config(cfg, stop="fixed", iterations=opts["admm_net_iterations"], checkpoint_every=0)
        rows: dict[str, list[float]] = {"iteration": [], "loss": [], "val_loss": [], "seconds": [], "stage": []}
        if mon is not None:
            rows["monitor"] = []
        # ADMM state after each iteration: a resumed run continues after the last one saved
        admm_ck = None if checkpoint is None else f"{checkpoint}.admm.pt"
        k0, admm_before, t_admm = 0, 0.0, time.perf_counter()
        if resume and admm_ck and os.path.exists(admm_ck):
            st = read_checkpoint(admm_ck, y.device)
            if st["k"] > opts["admm_iterations"]:
                raise InputFileError(f"checkpoint {admm_ck} holds {st['k']} ADMM iterations, more than "
                                     f"stages.admm_iterations = {opts['admm_iterations']}; run without --resume, "
                                     "or delete it, to start afresh")
            restore_model(model, st["model"], admm_ck)
            k0, x, gz, gam = st["k"], st["x"], st["gz"], st["gam"]
            best_val, best_image, best_it, returned = st["best_val"], st["best_image"], st["best_it"], st["returned"]
            total_it, step_seconds, admm_before = st["total_it"], st["step_seconds"], st["elapsed"]
            rows = {key: list(v) for key, v in st["rows"].items()}
            if mon is not None and "monitor" not in rows:  # saved without a monitor
                rows["monitor"] = [math.nan] * len(rows["iteration"])
            elif mon is None:
                rows.pop("monitor", None)
            resumed_seconds += admm_before
        for k in range(k0 + 1, opts["admm_iterations"] + 1):
            x = admm_x_step(A_train, ahy, gz, gam, rho, x, opts["admm_cg_iterations"])
            target = x + gam / rho

            def net_loss(g: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
                d = g - target[frames]
                return inner(d, d).real / inner(target[frames], target[frames]).real.clamp_min(1e-30)

            r = fit(model, net_loss, net_cfg, parameters=model.joint_parameters(), lr=opts["admm_lr"],
                    description=f"{description} admm {k}".strip())
            gz = r.image
            gam = gam + rho * (x - gz)
            total_it += r.iterations
            step_seconds += r.seconds_per_iteration * r.iterations
            v = float(val_loss(x, frames_all)) if validating else math.nan
            rows["iteration"].append(total_it)
            rows["loss"].append(float(r.history["loss"][-1]) if len(r.history["loss"]) else math.nan)
            rows["val_loss"].append(v)
            rows["seconds"].append(step_seconds)
            rows["stage"].append(4.0)
            if mon is not None:
                rows["monitor"].append(mon(x))
            if not validating or v < best_val:
                best_val, best_image, best_it, returned = v, x.clone(), total_it, f"ADMM X of iteration {k}"
            if admm_ck:
                state = {"k": k, "model": model.state_dict(), "x": x, "gz": gz, "gam": gam, "best_val": best_val,
                         "best_image": best_image, "best_it": best_it, "returned": returned, "total_it": total_it,
                         "step_seconds": step_seconds, "rows": rows,
                         "elapsed": admm_before + time.perf_counter() - t_admm}
                torch.save(state, f"{admm_ck}.tmp")
                os.replace(f"{admm_ck}.tmp", admm_ck)
        histories.append({key: np.asarray(val, dtype=np.float64) for key, val in rows.items()})
        reasons.append(f"admm: {opts['admm_iterations']} iterations, returned {returned}")

    keys = ("iteration", "loss", "val_loss", "seconds", "stage") + (("monitor",) if mon is not None else ())
    history = {key: np.concatenate([h[key] for h in histories]) if histories else np.zeros(0) for key in keys}
    info = {
        "iterations": total_it,
        "best_iteration": best_it,
        "stop_reason": "; ".join(reasons) if reasons else "no stage run",
        "seconds_per_iteration": step_seconds / total_it if total_it else 0.0,
        "stage_seconds_per_iteration": per_stage_spi,
        "fit_seconds": resumed_seconds + time.perf_counter() - t_start,
        "resumed_seconds": resumed_seconds,
        "data_scale": scale,
        "history": history,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "returned": returned,
        "graph": model.graph.detach().cpu().numpy(),
    }
    return best_image.detach().to(torch.complex64) * scale, info


@torch.no_grad()
def admm_x_step(A, ahy: torch.Tensor, gz: torch.Tensor, gam: torch.Tensor, rho: float, x0: torch.Tensor,
                iterations: int, tol: float = 1e-6) -> torch.Tensor:
    """ADMM X-update: CG on ``(A^H A + rho I) X = A^H y + rho G(z) - Gamma``, warm-started.

    Parameters
    ----------
    A : LinearOperator
        ishape ``(T, Y, X)``; ``A.normal`` is used (Toeplitz for radial).
    ahy, gz, gam, x0 : torch.Tensor
        complex64 ``(T, Y, X)``: ``A^H y``, ``G(z)``, ``Gamma`` and the start.
    rho : float
        Penalty, > 0.
    iterations : int
        CG steps.

    Returns
    -------
    torch.Tensor
        complex64 ``(T, Y, X)``.
    """
    from mridip.recon.solvers import conjugate_gradient

    rhs = ahy + rho * gz - gam
    x, _ = conjugate_gradient(lambda v: A.normal(v) + rho * v, rhs, x0=x0, iterations=iterations, tol=tol)
    return x
