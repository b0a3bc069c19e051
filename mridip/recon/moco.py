"""Motion-corrected DIP (``method = "moco-dip"``) on the one fitting loop.

Model (M-DIP: Vornehm et al., MRM 2025; :class:`mridip.models.motion.MoCoDIP`)::

    x_t = W(u_t) s_t,     y_t = A_t x_t + n_t

    min_theta  ||A_train G_theta - y_train||^2 / ||y_train||^2
               + lambda_s mean|grad u|^2 + lambda_t mean|u_{t+1} - u_t|^2 + lambda_f mean relu(-det J)^2

fitted by :func:`mridip.recon.fit.fit_kspace` (its ``extra_loss`` carries the
regularisers of :class:`~mridip.models.motion.MotionRegulariser`), with the held-out
k-space stop and mini-batches of frames of ``[fit]``. Schedule (``[stages]``,
:func:`moco_stage_options`): ``warmup`` steps with the identity warp (template only, a
fixed number of steps: a template that already explains the mean anatomy gives the
displacement a meaningful gradient), then the joint fit.

Surrogates (``stages.surrogate``): ``"navigator"`` computes respiratory and cardiac
curves from the data alone (:func:`mridip.recon.navigator.physiological_surrogates`),
``"physiology"`` reads the ECG / respiratory stamps of the ISMRMRD acquisitions
(:func:`mridip.io.physiology.frame_physiology`) and falls back to the navigator where the
file has none; the curves are fed to the displacement MLP (``model.motion_input``
``"both"`` unless set) and saved with the output. ``"none"``: the frame codes alone.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from mridip.errors import ProtocolError

SURROGATES = ("none", "navigator", "physiology")


def moco_stage_options(
    *,
    warmup: int = 200,
    spatial: float = 0.1,
    temporal: float = 0.05,
    folding: float = 0.0,
    surrogate: str = "none",
    frame_ms: float = 0.0,
    respiratory_band_hz: tuple = (0.1, 0.5),
    cardiac_band_hz: tuple = (0.6, 3.0),
    deform: bool = True,
) -> dict[str, Any]:
    """Validate the options of the moco-dip schedule (a protocol's ``[stages]`` table).

    Parameters
    ----------
    warmup : int
        Steps with the identity warp before the joint fit (0: none).
    spatial, temporal, folding : float
        Weights of the displacement regularisers (M-DIP: 0.1, 0.05; folding off).
    surrogate : {"none", "navigator", "physiology"}
        Where the displacement MLP's physiological inputs come from (module docstring).
    frame_ms : float
        Frame duration in ms for the surrogates' band-pass; 0: TR x readouts per frame
        from the file header.
    respiratory_band_hz, cardiac_band_hz : (float, float)
        Pass bands of the self-navigator.
    deform : bool
        False: the identity warp throughout (the template-only ablation: dictionary x
        coefficients, no motion; the regularisers are then zero).
    """
    if surrogate not in SURROGATES:
        raise ProtocolError(f"stages.surrogate must be one of {SURROGATES}, got {surrogate!r}")
    if warmup < 0 or frame_ms < 0:
        raise ProtocolError("stages.warmup and stages.frame_ms must be >= 0")
    for name, band in (("respiratory_band_hz", respiratory_band_hz), ("cardiac_band_hz", cardiac_band_hz)):
        if len(band) != 2 or not 0 <= float(band[0]) < float(band[1]):
            raise ProtocolError(f"stages.{name} must be [low, high] Hz with 0 <= low < high, got {list(band)}")
    return dict(warmup=int(warmup), spatial=float(spatial), temporal=float(temporal), folding=float(folding),
                surrogate=surrogate, frame_ms=float(frame_ms),
                respiratory_band_hz=(float(respiratory_band_hz[0]), float(respiratory_band_hz[1])),
                cardiac_band_hz=(float(cardiac_band_hz[0]), float(cardiac_band_hz[1])), deform=bool(deform))


def frame_seconds(problem, stages: dict) -> float:
    """Frame duration (s): ``stages.frame_ms`` or TR x readouts per frame (header)."""
    if stages["frame_ms"] > 0:
        return stages["frame_ms"] / 1000.0
    tr = problem.raw.header.tr_ms
    if not tr:
        raise ProtocolError("the file header gives no TR: set stages.frame_ms (frame duration in ms) "
                            "for the navigator's band-pass")
    m = problem.A.sample_mask
    if m.ndim == 3:  # Cartesian (T, Ky, Kx): lines per frame
        readouts = float(m.any(-1).sum(-1).float().max())
    else:  # radial (T, K): spokes = K / samples per spoke
        ns = int(problem.raw.header.encoded_matrix[0]) if problem.raw.header.encoded_matrix else 0
        readouts = m.shape[1] / ns if ns else 0.0
    if readouts <= 0:
        raise ProtocolError("cannot count the readouts per frame: set stages.frame_ms")
    return float(tr[0]) * readouts / 1000.0


def surrogates_for(problem, stages: dict) -> dict:
    """The surrogate curves of one slice as ``stages.surrogate`` says (float32 ``(T,)`` each)."""
    from mridip.recon.navigator import physiological_surrogates

    out: dict = {}
    if stages["surrogate"] == "none":
        return out
    if stages["surrogate"] == "physiology" and problem.raw.source:
        from mridip.io.physiology import frame_physiology

        phys = frame_physiology(problem.raw.source, int(problem.A.ishape[0]))
        for name in ("cardiac", "respiratory"):
            if name in phys:
                out[f"{name}_phase"] = phys[name]  # (T,) in [0, 1)
    fs = frame_seconds(problem, stages)
    nav = physiological_surrogates(problem.A, problem.y, fs, stages["respiratory_band_hz"], stages["cardiac_band_hz"])
    for name in ("respiratory", "cardiac"):
        if name in nav and f"{name}_phase" not in out:
            out[name] = nav[name].numpy()
    out["frame_seconds"] = fs
    return out


def _curves(sur: dict) -> torch.Tensor | None:
    """Inputs of the displacement MLP ``(T, D)``: phases as (cos, sin), curves as they are."""
    cols = []
    for key in ("respiratory_phase", "respiratory", "cardiac_phase", "cardiac"):
        if key not in sur:
            continue
        v = torch.as_tensor(np.asarray(sur[key]), dtype=torch.float32)
        if key.endswith("_phase"):
            cols += [torch.cos(2 * np.pi * v), torch.sin(2 * np.pi * v)]
        else:
            cols.append(v)
    return torch.stack(cols, 1) if cols else None


def run_moco(problem, proto, *, seed: int, checkpoint: str | None = None, resume: bool = False,
             progress: bool = True, description: str = "",
             monitor: Callable[[torch.Tensor], float] | None = None, **_: Any) -> tuple[torch.Tensor, dict]:
    """Fit moco-dip to one slice: ``(image (T, Y, X), info)``; ``info["motion"]`` holds
    ``displacement`` float32 ``(T, 2, Y, X)`` pixels, ``template`` complex64 ``(T, Y, X)``
    (the unwarped ``s_t``, data units) and the surrogate curves."""
    import os

    from mridip.models.motion import MoCoDIP, MotionRegulariser
    from mridip.recon.baselines import cg_sense
    from mridip.recon.fit import clone_config, data_scale, fit_kspace, split_holdout

    stages = moco_stage_options(**proto.stages)
    A, y = problem.A, problem.y
    quick, _ = cg_sense(A, y, iterations=10)
    scale = data_scale(quick)
    T, ny, nx = A.ishape
    sur = surrogates_for(problem, stages)
    curves = _curves(sur)
    options = {**proto.model, "seed": seed}
    if curves is not None:
        options["surrogate_dim"] = int(curves.shape[1])
        options.setdefault("motion_input", "both")
    torch.manual_seed(seed)
    model = MoCoDIP(T, (ny, nx), **options).to(y.device)
    if curves is not None:
        model.set_surrogates(curves)
    cfg = proto.fit_config(seed=seed, progress=progress)
    yn = y / scale
    resuming = bool(resume and checkpoint and os.path.exists(checkpoint))
    warm_iters = 0
    if stages["warmup"] > 0 and not resuming:
        model.deform = False
        wcfg = clone_config(cfg, iterations=stages["warmup"], stop="fixed", checkpoint_every=0, ema=0.0)
        # the warm-up sees only the training samples: the same split as the joint fit's
        # (same seed and fraction), so the held-out stop stays unbiased
        A_w = A
        if cfg.stop == "validation":
            train, _ = split_holdout(A.sample_mask, cfg.holdout, cfg.seed)
            A_w = A.restrict(train)
        fit_kspace(model, A_w, yn, wcfg, parameters=model.template_parameters(),
                   description=f"{description} warm-up".strip())
        warm_iters = stages["warmup"]
    model.deform = stages["deform"]
    reg = MotionRegulariser(stages["spatial"], stages["temporal"], stages["folding"])
    restore = cfg.stop == "validation" and cfg.ema == 0
    mon = None if monitor is None else (lambda x: monitor(x * scale))
    res = fit_kspace(model, A, yn, cfg, extra_loss=reg, checkpoint=checkpoint, resume=resume,
                     description=description, monitor=mon, restore_best=restore)
    model.eval()
    with torch.no_grad():
        frames = torch.arange(T, device=y.device)
        disp = model.displacement(frames).float().cpu().numpy()
        template = (model.template(frames) * scale).to(torch.complex64).cpu().numpy()
    motion = {"displacement": disp, "template": template}
    for k, v in sur.items():
        if k != "frame_seconds":
            motion[k] = np.asarray(v, dtype=np.float32)
    from mridip.recon.pipeline import fit_info

    info = fit_info(res, model, scale)
    info["iterations"] = res.iterations + warm_iters
    info["stop_reason"] = res.stop_reason + (f" (after {warm_iters} warm-up steps)" if warm_iters else "")
    info["motion"] = motion
    if "frame_seconds" in sur:
        info["frame_seconds"] = float(sur["frame_seconds"])
    return res.image * scale, info
