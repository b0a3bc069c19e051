"""The one fitting loop: data-consistency loss, hold-out split, stopping rule, resume."""

import math

import numpy as np
import pytest
import torch

from mridip.errors import InputFileError, ProtocolError
from mridip.models import TDDIP
from mridip.operators import CartesianSense
from mridip.recon.fit import FitConfig, KSpaceLoss, fit, fit_kspace, split_holdout
from mridip.trajectories import variable_density_lines

T, N, C = 4, 16, 3


def _problem(noise=0.0, acceleration=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(N), torch.arange(N), indexing="ij")
    frames = []
    for t in range(T):  # a disk whose radius breathes over the frames
        r = 4.0 + t
        frames.append(((yy - N / 2) ** 2 + (xx - N / 2) ** 2 < r * r).float())
    x = torch.stack(frames).to(torch.complex64)
    maps = torch.exp(-((yy - N / 2 - 3 * torch.arange(C)[:, None, None]) ** 2) / 200.0).to(torch.complex64)
    maps = maps / torch.sqrt((maps.abs() ** 2).sum(0))
    mask = variable_density_lines(T, N, N, acceleration, center_lines=4, seed=seed)
    A = CartesianSense(maps, mask)
    y = A(x)
    if noise:
        y = y + noise * torch.randn(y.shape, dtype=torch.complex64, generator=g) * A.sample_mask[:, None]
    return A, y, x


def _model(seed=0, channels=8):
    torch.manual_seed(seed)
    return TDDIP(T, (N, N), channels=channels, latent_size=4, mapnet_widths=(16, 16), seed=seed)


def test_normal_path_equals_forward_path_in_value_and_gradient():
    A, y, x = _problem(noise=0.05)
    frames = torch.tensor([1, 3])
    z = (x[frames] * 0.7 + 0.1).clone().requires_grad_(True)
    ln, lf = KSpaceLoss(A, y, "normal"), KSpaceLoss(A, y, "forward")
    vn, vf = ln(z, frames), lf(z, frames)
    # the two differ by float32 round-off of ||y||^2 - 2Re<x,A^H y> + <x,A^H A x> only
    assert vn.item() == pytest.approx(vf.item(), rel=1e-4)
    gn, = torch.autograd.grad(vn, z)
    gf, = torch.autograd.grad(vf, z)
    assert torch.linalg.vector_norm(gn - gf) / torch.linalg.vector_norm(gf) < 1e-4


def test_split_holdout_is_a_stratified_partition():
    m = torch.rand(5, 40) < 0.5
    train, val = split_holdout(m, 0.1, seed=3)
    assert not (train & val).any() and torch.equal(train | val, m)
    for t in range(5):
        assert val[t].sum() == round(0.1 * int(m[t].sum()))
    train2, val2 = split_holdout(m, 0.1, seed=3)
    assert torch.equal(val, val2)  # seeded


def test_loss_decreases_and_fixed_stop_runs_all_iterations():
    A, y, _ = _problem()
    model = _model()
    cfg = FitConfig(iterations=60, lr=5e-3, stop="fixed", progress=False, log_every=10)
    res = fit_kspace(model, A, y, cfg)
    loss = res.history["loss"]
    assert res.iterations == 60 and res.stop_reason == "max_iterations"
    assert loss[-1] < 0.2 * loss[0]  # relative residual falls by > 5x in 60 Adam steps
    assert res.image.shape == (T, N, N) and res.image.dtype == torch.complex64


def test_validation_stop_triggers_on_a_planted_overfitting_case():
    # heavy noise on few samples: the held-out residual must bottom out and rise again
    A, y, _ = _problem(noise=0.6, acceleration=3.0)
    model = _model(channels=16)
    cfg = FitConfig(iterations=1500, lr=1e-2, holdout=0.15, patience=60, val_every=5,
                    min_iterations=20, progress=False)
    res = fit_kspace(model, A, y, cfg)
    assert res.stop_reason.startswith("validation")
    assert res.iterations < 1500
    assert res.best_iteration <= res.iterations - 60
    v = res.history["val_loss"]
    v = v[~torch.isnan(torch.as_tensor(v)).numpy()]
    assert v.min() < v[-1]  # it did get worse after the kept iterate


def test_resume_equals_uninterrupted(tmp_path):
    A, y, _ = _problem(noise=0.05)
    cfg = dict(lr=3e-3, holdout=0.1, patience=1000, val_every=5, progress=False, frames_per_step=2,
               checkpoint_every=10, seed=4)
    ref = fit_kspace(_model(seed=1), A, y, FitConfig(iterations=30, **cfg))
    ck = tmp_path / "fit.pt"
    first = fit_kspace(_model(seed=1), A, y, FitConfig(iterations=20, **cfg), checkpoint=ck)
    # a new process would build the model afresh; resume restores weights, optimiser and RNG
    res = fit_kspace(_model(seed=7), A, y, FitConfig(iterations=30, **cfg), checkpoint=ck, resume=True)
    assert res.iterations == 30
    assert torch.allclose(res.image, ref.image, atol=1e-6, rtol=0)
    assert res.best_iteration == ref.best_iteration
    # the time reported counts the first run's (until its last checkpoint) and the second's
    assert first.resumed_seconds == 0 and 0 < res.resumed_seconds <= first.seconds
    assert res.seconds > res.resumed_seconds


def test_resume_keeps_the_best_weights_for_restore_best(tmp_path):
    A, y, _ = _problem(noise=0.05)
    cfg = dict(lr=3e-3, holdout=0.1, patience=1000, val_every=5, progress=False, checkpoint_every=10, seed=4)
    ref_model = _model(seed=1)
    ref = fit_kspace(ref_model, A, y, FitConfig(iterations=30, **cfg), restore_best=True)
    ck = tmp_path / "fit.pt"
    fit_kspace(_model(seed=1), A, y, FitConfig(iterations=20, **cfg), checkpoint=ck, restore_best=True)
    model = _model(seed=7)
    res = fit_kspace(model, A, y, FitConfig(iterations=30, **cfg), checkpoint=ck, resume=True, restore_best=True)
    assert res.best_iteration == ref.best_iteration
    for (name, a), b in zip(model.state_dict().items(), ref_model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), name
    # a checkpoint written without the best weights cannot give them back
    plain = tmp_path / "plain.pt"
    fit_kspace(_model(seed=1), A, y, FitConfig(iterations=20, **cfg), checkpoint=plain)
    with pytest.raises(InputFileError, match="holds no weights of its best iterate"):
        fit_kspace(_model(seed=1), A, y, FitConfig(iterations=30, **cfg), checkpoint=plain, resume=True,
                   restore_best=True)


def test_resume_from_a_foreign_or_broken_checkpoint_is_one_clear_error(tmp_path):
    A, y, _ = _problem(noise=0.05)
    cfg = FitConfig(iterations=10, lr=3e-3, holdout=0.1, val_every=5, progress=False, checkpoint_every=5)
    ck = tmp_path / "fit.pt"
    fit_kspace(_model(channels=8), A, y, cfg, checkpoint=ck)
    with pytest.raises(InputFileError, match="written for another model or protocol.*without --resume"):
        fit_kspace(_model(channels=12), A, y, cfg, checkpoint=ck, resume=True)
    ck.write_bytes(ck.read_bytes()[:1000])  # truncated, as by a full disk
    with pytest.raises(InputFileError, match="cannot read checkpoint"):
        fit_kspace(_model(channels=8), A, y, cfg, checkpoint=ck, resume=True)


def test_monitor_is_recorded_and_changes_nothing():
    A, y, x = _problem(noise=0.05)
    cfg = FitConfig(iterations=40, lr=3e-3, holdout=0.1, patience=1000, val_every=5, log_every=10,
                    frames_per_step=2, progress=False, seed=2)
    seen = []

    def score(img):
        seen.append(tuple(img.shape))
        return -float(torch.linalg.vector_norm(img - x))

    plain = fit_kspace(_model(seed=3), A, y, cfg)
    watched = fit_kspace(_model(seed=3), A, y, cfg, monitor=score)
    # a diagnostic: same iterates, same stop, same returned image
    assert torch.equal(watched.image, plain.image) and watched.best_iteration == plain.best_iteration
    for key in ("iteration", "loss", "val_loss"):
        np.testing.assert_array_equal(watched.history[key], plain.history[key])
    assert "monitor" not in plain.history
    mon, val = watched.history["monitor"], watched.history["val_loss"]
    assert len(mon) == len(val) and np.array_equal(np.isfinite(mon), np.isfinite(val))
    assert seen == [(T, N, N)] * 8  # every 5 of 40 steps, on all frames
    k = int(np.nonzero(watched.history["iteration"] == watched.best_iteration)[0][0])
    assert mon[k] == pytest.approx(score(watched.image), rel=1e-6)


def test_config_errors_are_protocol_errors():
    with pytest.raises(ProtocolError, match="schedule"):
        FitConfig(schedule="exp")
    with pytest.raises(ProtocolError, match="validation function"):
        fit(_model(), lambda x, f: x.abs().sum(), FitConfig(progress=False))


def test_divergence_is_reported_not_hidden():
    A, y, _ = _problem()
    model = _model()

    def bad_loss(x, frames):
        return x.abs().sum() * math.inf

    res = fit(model, bad_loss, FitConfig(iterations=5, stop="fixed", progress=False))
    assert res.stop_reason.startswith("diverged")


def test_auto_loss_path_picks_a_path_and_records_it():
    """Cartesian: always the normal path (a masked FFT pair); radial with Toeplitz kernels:
    whichever path was timed faster, and either gives the same loss to round-off."""
    from mridip.operators import RadialSense
    from mridip.recon.fit import choose_loss_path
    from mridip.trajectories import radial_trajectory

    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 12, 12, generator=g, dtype=torch.complex64)
    mask = torch.zeros(3, 12, 12, dtype=torch.bool)
    mask[:, ::2] = True
    Ac = CartesianSense(maps, mask)
    assert choose_loss_path(Ac, Ac(torch.randn(3, 12, 12, dtype=torch.complex64)), 3) == "normal"
    Ar = RadialSense(maps, radial_trajectory(3, 5, 24))
    y = Ar(torch.randn(3, 12, 12, generator=g, dtype=torch.complex64))

    import time as _time

    class SlowNormal(RadialSense):  # a Toeplitz normal far slower than the NUFFT pair
        def _normal(self, x):
            _time.sleep(0.03)
            return super()._normal(x)

    class SlowForward(RadialSense):  # and the other way round
        def _forward(self, x):
            _time.sleep(0.03)
            return super()._forward(x)

    traj = radial_trajectory(3, 5, 24)
    assert choose_loss_path(SlowNormal(maps, traj), y, 3) == "forward"  # all frames: the operator itself
    assert choose_loss_path(SlowForward(maps, traj), y, 3) == "normal"
    model = TDDIP(3, (12, 12), channels=8, latent_size=4, mapnet_widths=(16, 9), seed=0)
    res = fit_kspace(model, Ar, y, FitConfig(iterations=2, stop="fixed", progress=False))
    assert res.loss_path in ("normal", "forward") and res.iterations == 2
