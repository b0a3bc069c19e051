"""Tests of mridip/models/tddip.py: manifolds, MapNet and the TD-DIP generator."""

import math

import pytest
import torch

from mridip.errors import ProtocolError, ShapeError
from mridip.models import GENERATORS, count_parameters
from mridip.models.tddip import TDDIP, MapNet, circle_manifold, helix_manifold, line_manifold

SMALL = dict(channels=16, mapnet_widths=(64, 32))  # 32 = latent 1 x 8 x 4 for 16 x 8



def test_helix_geometry():
    m = helix_manifold(12, cycles=3, radius=2.0, length=1.5)
    assert m.shape == (12, 3) and m.dtype == torch.float32
    # every point at distance `radius` from the time axis
    torch.testing.assert_close(m[:, :2].norm(dim=1), torch.full((12,), 2.0), rtol=1e-6, atol=0)
    # integer cycles: periodic with period T / cycles = 4 frames in the phase plane
    torch.testing.assert_close(m[4:, :2], m[:-4, :2], rtol=0, atol=1e-5)
    # consecutive frames advance the phase by 2 pi cycles / T
    ang = torch.atan2(m[:, 1], m[:, 0])
    step = torch.remainder(ang[1:] - ang[:-1], 2 * math.pi)
    torch.testing.assert_close(step, torch.full((11,), 2 * math.pi * 3 / 12), rtol=1e-5, atol=1e-5)
    # linear time axis from 0 to `length`
    torch.testing.assert_close(m[:, 2], torch.linspace(0, 1.5, 12), rtol=1e-6, atol=1e-6)


def test_circle_and_line():
    c = circle_manifold(8, cycles=1)
    assert c.shape == (8, 2)
    torch.testing.assert_close(c.norm(dim=1), torch.ones(8), rtol=1e-6, atol=0)
    # half a turn after frame 0 (T/2 frames later) lies opposite
    torch.testing.assert_close(c[4], -c[0], rtol=0, atol=1e-6)
    line = line_manifold(5)
    assert line.shape == (5, 1)
    torch.testing.assert_close(line[:, 0], torch.tensor([0, 0.25, 0.5, 0.75, 1.0]))
    assert helix_manifold(1).shape == (1, 3) and line_manifold(1)[0, 0] == 0


def test_mapnet_layers():
    net = MapNet(3, (512, 64))
    assert net(torch.zeros(5, 3)).shape == (5, 64)
    # reference MappingNet: Linear(3, 512) -> ReLU -> Linear(512, 64)
    assert count_parameters(net) == 3 * 512 + 512 + 512 * 64 + 64
    assert [type(l).__name__ for l in net.net] == ["Linear", "ReLU", "Linear"]


@pytest.mark.parametrize("shape,latent", [((128, 128), (1, 8, 8)), ((16, 8), (1, 8, 4)),
                                          ((15, 9), (1, 8, 5)), ((208, 160), (1, 7, 5))])
def test_latent_shape_follows_image_shape(shape, latent):
    g = TDDIP(4, shape, channels=4, mapnet_widths=None)
    assert g.latent_shape == latent
    n = g.net.num_upsamplings
    assert latent[1] * 2**n >= shape[0] and latent[2] * 2**n >= shape[1]
    assert max(latent[1:]) <= 8


@pytest.mark.parametrize("shape", [(16, 8), (15, 9), (7, 12)])
@pytest.mark.parametrize("manifold", ["helix", "circle", "line"])
def test_output_shape_and_dtype(shape, manifold):
    g = TDDIP(6, shape, manifold=manifold, channels=8)
    out = g(torch.tensor([0, 3, 5]))
    assert out.shape == (3, *shape) and out.dtype == torch.complex64
    assert torch.isfinite(out.real).all()
    assert g.num_frames == 6 and g.image_shape == shape


def test_registry_builds_tddip():
    g = GENERATORS["tddip"](10, (16, 8), **SMALL)
    assert isinstance(g, TDDIP) and g(torch.tensor([9])).shape == (1, 16, 8)


def test_eval_deterministic_and_train_perturbed():
    g = TDDIP(8, (16, 8), reg_noise_std=0.1, **SMALL).eval()
    f = torch.tensor([1, 6])
    with torch.no_grad():
        a, b = g(f), g(f)
        assert torch.equal(a, b)
        g.train()
        c, d = g(f), g(f)
    assert (c - d).abs().max() > 1e-4 and (c - a).abs().max() > 1e-4


def test_seeded_weights_and_frame_independence():
    torch.manual_seed(5)
    g1 = TDDIP(8, (16, 8), **SMALL).eval()
    torch.manual_seed(5)
    g2 = TDDIP(8, (16, 8), **SMALL).eval()
    f = torch.arange(8)
    with torch.no_grad():
        assert torch.equal(g1(f), g2(f))
        # instance norm: frame 3 alone equals frame 3 inside a batch of all frames
        torch.testing.assert_close(g1(torch.tensor([3])), g1(f)[3:4], rtol=1e-4, atol=1e-5)


def test_batch_norm_matches_instance_norm_for_single_frames():
    # the reference fits one frame per step with BatchNorm: at batch size 1 both
    # options compute the same per-image statistics (same weights via the same seed)
    torch.manual_seed(0)
    gi = TDDIP(8, (16, 8), norm="instance", **SMALL)
    torch.manual_seed(0)
    gb = TDDIP(8, (16, 8), norm="batch", **SMALL)
    with torch.no_grad():
        torch.testing.assert_close(gb(torch.tensor([5])), gi(torch.tensor([5])),
                                   rtol=1e-4, atol=1e-5)


def test_neighbouring_frames_are_more_alike_than_distant_ones():
    # A continuous MapNet + CNN maps nearby helix points to nearby images at init.
    # Measured over 30 seeds: max ratio 0.56 (mean 0.41); three fixed seeds suffice.
    for seed in range(3):
        torch.manual_seed(seed)
        g = TDDIP(16, (16, 8), cycles=1, **SMALL).eval()
        with torch.no_grad():
            x = g(torch.arange(16))

        def dist(a, b):
            return (x[a] - x[b]).norm().item()

        assert max(dist(0, 1), dist(7, 8)) < 0.8 * min(dist(0, 8), dist(4, 12))


def test_buffer_in_state_dict_and_moves():
    g = TDDIP(5, (16, 8), **SMALL)
    assert "manifold" in g.state_dict()
    assert not any(p is g.manifold for p in g.parameters())
    g.to("meta")
    assert g.manifold.device.type == "meta"


def test_fits_two_frames():
    torch.manual_seed(0)
    yy = torch.arange(16)[:, None] - 8.0
    xx = torch.arange(16)[None, :] - 8.0
    r2 = yy**2 + xx**2
    # two frames of a "beating" disc: different radii and phases
    target = torch.stack([torch.exp(-r2 / 20) * torch.exp(1j * 0.2 * xx),
                          torch.exp(-r2 / 8) * torch.exp(-1j * 0.1 * yy)]).to(torch.complex64)
    g = TDDIP(2, (16, 16), channels=32, mapnet_widths=(64, 64))
    opt = torch.optim.Adam(g.parameters(), lr=3e-3)
    frames = torch.tensor([0, 1])
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = (g(frames) - target).abs().pow(2).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # measured (3 seeds): a factor of ~10^4 in 100 steps; 100 leaves a wide margin
    assert losses[-1] < losses[0] / 100
    with torch.no_grad():
        out = g.eval()(frames)
    # both frames are reproduced, not their average: the average would miss each frame
    # by ||t0 - t1|| / 2; measured errors are ~0.03 ||t0 - t1||
    err = (out - target).flatten(1).norm(dim=1)
    assert (err < 0.2 * (target[0] - target[1]).norm()).all()


def test_default_parameter_count():
    g = TDDIP(20, (128, 128))
    mapnet = 3 * 512 + 512 + 512 * 64 + 64
    # 10 bias-free 3x3 convs (1 -> 128 once, 128 -> 128 nine times), 10 affine norms,
    # final 3x3 conv 128 -> 2
    net = 1 * 128 * 9 + 9 * 128 * 128 * 9 + 10 * 2 * 128 + 128 * 2 * 9
    assert count_parameters(g) == mapnet + net == 1_368_000


def test_bad_arguments():
    with pytest.raises(ProtocolError):
        TDDIP(4, (16, 8), manifold="torus")
    with pytest.raises(ProtocolError):
        TDDIP(4, (16, 8), mapnet_widths=(512, 64))  # latent here is 1 x 8 x 4 = 32
    with pytest.raises(ProtocolError):
        TDDIP(0, (16, 8))
    with pytest.raises(ShapeError):
        TDDIP(4, (16, 8), **SMALL)(torch.tensor([4]))
