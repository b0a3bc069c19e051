"""Tests of mridip/recon/gip.py: stage options, the staged schedule, ADMM, end to end."""

import math

import numpy as np
import pytest
import torch

from mridip.errors import InputFileError, ProtocolError
from mridip.metrics import psnr
from mridip.operators import CartesianSense
from mridip.operators.radial import RadialSense
from mridip.protocols import Protocol
from mridip.recon.baselines import gridding
from mridip.models.gip import knn_graph, temporal_graph
from mridip.recon.gip import admm_x_step, gip_stage_options, run_gip
from mridip.recon.navigator import navigator_descriptors, navigator_images
from mridip.recon.pipeline import SliceProblem
from mridip.trajectories import radial_trajectory, variable_density_lines

from measure import noisy

T, N, C = 6, 24, 3
SMALL_MODEL = dict(channels=8, k=3)
# tiny networks learn fast: larger rates than the reference's (tuned for 128 x 128, CH 24)
FAST = dict(lr1=2e-3, lr2=2e-3, lr3=5e-4, graph_update_every=5, graph_update_iterations=60)



def _cine(n=N):
    """A static disk with a smaller disk that moves and breathes over one cardiac cycle."""
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32),
                            indexing="ij")
    frames = []
    for t in range(T):
        ph = 2 * math.pi * t / T
        body = ((yy - n / 2) ** 2 + (xx - n / 2) ** 2 < (0.35 * n) ** 2).float() * 0.5
        r = 0.12 * n + 0.05 * n * math.sin(ph)
        heart = ((yy - n / 2 - 0.1 * n * math.cos(ph)) ** 2 + (xx - n / 2) ** 2 < r * r).float()
        frames.append(body + 0.5 * heart)
    x = torch.stack(frames).to(torch.complex64)
    maps = torch.stack([torch.exp(-((yy - n * c / (C - 1)) ** 2 + (xx - n / 2) ** 2) / n**2)
                        * torch.exp(1j * 0.1 * c * xx) for c in range(C)]).to(torch.complex64)
    maps = maps / torch.sqrt((maps.abs() ** 2).sum(0))  # smooth, sum_c |S_c|^2 = 1
    return x, maps


def _problem(kind="cartesian", noise=0.01, order=None):
    x, maps = _cine()
    if order is not None:  # frames acquired out of cardiac order
        x = x[torch.as_tensor(order)]
    if kind == "cartesian":
        A = CartesianSense(maps, variable_density_lines(T, N, N, 4.0, center_lines=4, seed=0))
    else:
        A = RadialSense(maps, radial_trajectory(T, 6, 2 * N))
    y = noisy(A, x, noise, seed=1)
    return SliceProblem(A=A, y=y, coil_maps=maps, valid=torch.ones(N, N, dtype=torch.bool), raw=None), x


def _proto(stages, fit=None):
    proto = Protocol(name="test-gip", method="gip", model=dict(SMALL_MODEL),
                     fit=fit or dict(holdout=0.1, val_every=10, patience=100, min_iterations=50, progress=False))
    proto.stages = dict(stages)
    return proto


# ---------------------------------------------------------------------- options
def test_stage_options_defaults_and_validation():
    opts = gip_stage_options()
    assert opts["lr1"] == 5e-4 and opts["lr3"] == 5e-5 and opts["admm_iterations"] == 0
    assert gip_stage_options(lr1=1)["lr1"] == 1.0 and isinstance(gip_stage_options(lr1=1)["lr1"], float)
    for bad in (dict(stage1_iterations=-1), dict(lr2=0.0), dict(graph_update_every=0),
                dict(admm_rho=float("nan")), dict(stage3_iterations=2.5)):
        with pytest.raises(ProtocolError, match=f"stages.{next(iter(bad))}"):
            gip_stage_options(**bad)
    with pytest.raises(TypeError):  # unknown keys are the protocol loader's job; here a plain error
        gip_stage_options(stage4_iterations=1)
    assert gip_stage_options()["graph"] == "features"  # the reference's rule unless a protocol says
    with pytest.raises(ProtocolError, match="stages.graph must be one of 'features', 'navigator'"):
        gip_stage_options(graph="knn")


@pytest.mark.parametrize("source", ["navigator", "temporal"])
def test_fixed_graph_sources_survive_every_stage(source):
    # frames out of cardiac order: the navigator graph then differs from the temporal one
    problem, _ = _problem(order=[0, 3, 1, 4, 2, 5])
    stages = dict(stage1_iterations=20, stage2_iterations=10, stage3_iterations=20, graph=source, **FAST)
    _, info = run_gip(problem, _proto(stages, fit=dict(stop="fixed", progress=False)), seed=0, progress=False)
    if source == "temporal":
        expected = temporal_graph(T, 3)
    else:  # no hold-out (stop = "fixed"): built from all samples; the data scale cancels in the cosine
        expected = knn_graph(navigator_descriptors(navigator_images(problem.A, problem.y)), 3)
        # cardiac neighbours of frame 0 (phase 0) are the frames of phases 1 and 5: 2 and 5
        assert set(expected[0].tolist()) == {0, 2, 5}
    # stage 3 would recompute a features graph every 5 steps (FAST): a fixed one stays as built
    # (as sets per row: this phantom's t - 1 and t + 1 are near-ties, their order is round-off)
    assert np.array_equal(info["graph"][:, 0], np.arange(T))
    assert [set(r) for r in info["graph"].tolist()] == [set(r) for r in expected.tolist()]


# ----------------------------------------------------------------------- stages
def test_each_stage_lowers_its_loss_and_history_is_concatenated():
    problem, _ = _problem()
    stages = dict(stage1_iterations=80, stage2_iterations=80, stage3_iterations=80, **FAST)
    proto = _proto(stages, fit=dict(stop="fixed", log_every=5, progress=False))
    x, info = run_gip(problem, proto, seed=0, progress=False)
    h = info["history"]
    assert set(h) == {"iteration", "loss", "val_loss", "seconds", "stage"}
    assert np.all(np.diff(h["iteration"]) > 0) and info["iterations"] == 240
    for s in (1, 2, 3):
        loss = h["loss"][h["stage"] == s]
        assert len(loss) == 16
        # Adam on a smooth loss: the last logged losses lie well below the first ones
        # (stage 3 starts from the converged stage 2 and its rate is 4x lower: ask less)
        assert loss[-3:].mean() < (0.5 if s < 3 else 0.95) * loss[:3].mean(), (s, loss)
    assert x.shape == (T, N, N) and x.dtype == torch.complex64 and torch.isfinite(x).all()
    assert info["graph"].shape == (T, 3) and np.array_equal(info["graph"][:, 0], np.arange(T))


def test_resume_skips_finished_stages(tmp_path):
    problem, _ = _problem()
    stages = dict(stage1_iterations=30, stage2_iterations=20, stage3_iterations=20, **FAST)
    proto = _proto(stages, fit=dict(holdout=0.1, val_every=10, patience=100, min_iterations=10, progress=False))
    stem = str(tmp_path / "ck")
    x1, info1 = run_gip(problem, proto, seed=0, checkpoint=stem, progress=False)
    for s in (1, 2, 3):
        assert (tmp_path / f"ck.stage{s}.done.pt").exists()
    x2, info2 = run_gip(problem, proto, seed=0, checkpoint=stem, resume=True, progress=False)
    torch.testing.assert_close(x2, x1, rtol=0, atol=0)  # the stored stage results, no refit
    assert info2["iterations"] == info1["iterations"] and info2["stop_reason"] == info1["stop_reason"]
    # the stages' time is the first run's, counted again in the run that reused them
    assert info1["resumed_seconds"] == 0 and 0 < info2["resumed_seconds"] <= info1["fit_seconds"]
    assert info2["fit_seconds"] >= info2["resumed_seconds"]


def test_resume_continues_admm_after_its_last_iteration(tmp_path, monkeypatch):
    import mridip.recon.gip as gip_module

    problem, _ = _problem()
    stages = dict(stage1_iterations=20, stage2_iterations=10, stage3_iterations=10, admm_iterations=3,
                  admm_net_iterations=5, admm_lr=1e-4, **FAST)
    fit = dict(holdout=0.1, val_every=5, patience=100, min_iterations=5, progress=False)
    x_ref, info_ref = run_gip(problem, _proto(stages, fit), seed=0, progress=False)
    # a run stopped after ADMM iteration 2 (its stages and ADMM state saved), then resumed
    stem = str(tmp_path / "ck")
    run_gip(problem, _proto({**stages, "admm_iterations": 2}, fit), seed=0, checkpoint=stem, progress=False)
    assert torch.load(f"{stem}.admm.pt", weights_only=False)["k"] == 2
    x_steps = []
    monkeypatch.setattr(gip_module, "admm_x_step", lambda *a, **k: x_steps.append(1) or admm_x_step(*a, **k))
    x, info = run_gip(problem, _proto(stages, fit), seed=0, checkpoint=stem, resume=True, progress=False)
    assert len(x_steps) == 1  # only ADMM iteration 3 was run
    torch.testing.assert_close(x, x_ref, rtol=0, atol=1e-5 * float(x_ref.abs().max()))
    assert info["iterations"] == info_ref["iterations"] and info["returned"] == info_ref["returned"]
    h, h_ref = info["history"], info_ref["history"]
    assert (h["stage"] == 4).sum() == 3
    np.testing.assert_allclose(h["val_loss"][h["stage"] == 4], h_ref["val_loss"][h_ref["stage"] == 4], rtol=1e-4)
    assert info["resumed_seconds"] > 0
    with pytest.raises(InputFileError, match="holds 3 ADMM iterations, more than"):
        run_gip(problem, _proto({**stages, "admm_iterations": 2}, fit), seed=0, checkpoint=stem, resume=True,
                progress=False)


def test_ema_is_refused():
    problem, _ = _problem()
    proto = _proto(dict(stage1_iterations=1), fit=dict(ema=0.9, progress=False))
    with pytest.raises(ProtocolError, match="ema"):
        run_gip(problem, proto, seed=0, progress=False)


# ------------------------------------------------------------------------- ADMM
def test_admm_x_step_solves_its_linear_system():
    problem, _ = _problem(noise=0.0)
    A = problem.A
    g = torch.Generator().manual_seed(2)
    rnd = lambda: torch.randn(A.ishape, dtype=torch.complex64, generator=g)  # noqa: E731
    ahy, gz, gam = A.adjoint(problem.y), rnd(), 0.01 * rnd()
    rho = 0.1  # ||A||^2 <= 1 (sum_c |S_c|^2 = 1, orthonormal FFT): eigenvalues in [0.1, 1.1]
    x = admm_x_step(A, ahy, gz, gam, rho, torch.zeros_like(gz), iterations=30, tol=1e-12)
    rhs = ahy + rho * gz - gam
    res = torch.linalg.vector_norm(A.normal(x) + rho * x - rhs) / torch.linalg.vector_norm(rhs)
    # condition number <= 11: CG's error shrinks by 2 ((sqrt 11 - 1)/(sqrt 11 + 1))^30 ~ 1e-8,
    # the residual by at most sqrt(11) times that; float32 round-off (~1e-6) dominates
    assert float(res) < 1e-4
    # a warm start at the solution stays there
    x2 = admm_x_step(A, ahy, gz, gam, rho, x, iterations=3, tol=1e-12)
    assert float(torch.linalg.vector_norm(x2 - x) / torch.linalg.vector_norm(x)) < 1e-4


# --------------------------------------------------------------------- end to end
def test_gip_beats_gridding_cartesian_with_admm():
    problem, truth = _problem()
    stages = dict(stage1_iterations=250, stage2_iterations=250, stage3_iterations=200,
                  admm_iterations=2, admm_net_iterations=20, admm_lr=1e-4, **FAST)
    x, info = run_gip(problem, _proto(stages), seed=0, progress=False,
                      monitor=lambda im: psnr(im.detach().cpu().numpy(), truth.numpy()))
    base = psnr(gridding(problem.A, problem.y).numpy(), truth.numpy())
    got = psnr(x.numpy(), truth.numpy())
    # measured: gridding ~20.7 dB, GIP ~23 dB on this phantom (R = 4, 1% noise); 1 dB margin
    assert got > base + 1.0, (got, base)
    h = info["history"]
    assert "admm: 2 iterations" in info["stop_reason"]
    assert (h["stage"] == 4).sum() == 2
    assert info["iterations"] == int(sum(h["iteration"][-1:]))
    # the diagnostic monitor saw every validated iterate of every stage and each ADMM X, and
    # the returned image is one of them: its score there is the returned image's PSNR
    assert len(h["monitor"]) == len(h["iteration"])
    assert np.array_equal(np.isfinite(h["monitor"]), np.isfinite(h["val_loss"]))
    at = np.nonzero(h["iteration"] == info["best_iteration"])[0]
    assert len(at) == 1 and abs(h["monitor"][at[0]] - got) < 1e-3, (h["monitor"][at], got)
    assert np.nanmax(h["monitor"]) >= got - 1e-3


def test_gip_radial_smoke_beats_gridding():
    problem, truth = _problem("radial")
    stages = dict(stage1_iterations=200, stage2_iterations=150, stage3_iterations=100, **FAST)
    x, info = run_gip(problem, _proto(stages), seed=0, progress=False)
    assert torch.isfinite(x).all() and x.shape == (T, N, N)
    base = psnr(gridding(problem.A, problem.y).numpy(), truth.numpy())
    got = psnr(x.numpy(), truth.numpy())
    assert got > base, (got, base)


@pytest.mark.cuda
def test_gip_on_cuda_matches_cpu_and_beats_gridding():
    """The same weights give the same images on CUDA as on the CPU (float32 convolutions: the
    residual is rounding, < 1e-4 of the peak), and the staged fit with ADMM runs there."""
    from mridip.models.gip import GraphImagePrior

    torch.manual_seed(0)
    model = GraphImagePrior(T, (N, N), **SMALL_MODEL)
    model.update_graph()
    frames = torch.arange(T)
    with torch.no_grad():
        ref = model(frames)
        got = model.to("cuda")(frames.cuda()).cpu()
    assert (got - ref).abs().max() < 1e-4 * ref.abs().max()
    problem, truth = _problem()
    dev = torch.device("cuda")
    problem = SliceProblem(A=problem.A.to(dev), y=problem.y.to(dev), coil_maps=problem.coil_maps.to(dev),
                           valid=problem.valid.to(dev), raw=None)
    stages = dict(stage1_iterations=250, stage2_iterations=250, stage3_iterations=200,
                  admm_iterations=2, admm_net_iterations=20, admm_lr=1e-4, **FAST)
    x, _ = run_gip(problem, _proto(stages), seed=0, progress=False)
    assert x.device.type == "cuda" and x.shape == (T, N, N)
    base = psnr(gridding(problem.A, problem.y).cpu().numpy(), truth.numpy())
    assert psnr(x.cpu().numpy(), truth.numpy()) > base + 1.0
