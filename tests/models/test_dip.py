"""Tests of mridip/models/dip.py: SkipNet, ConvDecoder, DIPGenerator and the factories."""

import pytest
import torch

from mridip.errors import ProtocolError, ShapeError
from mridip.models import GENERATORS, build_generator, count_parameters
from mridip.models.dip import ConvDecoder, DIPGenerator, SkipNet, make_convdecoder, make_dip

# small configurations keep every test well under a second on one CPU core
SMALL = {
    "dip": dict(scales=3, channels=16, skip_channels=4),
    "convdecoder": dict(channels=32, num_layers=4),
}
F0 = torch.tensor([0])



def smooth_target(y: int = 16, x: int = 16) -> torch.Tensor:
    """Complex test image (1, Y, X): Gaussian magnitude with a linear phase ramp."""
    yy = torch.arange(y)[:, None] - y / 2
    xx = torch.arange(x)[None, :] - x / 2
    mag = torch.exp(-(yy**2 / (2 * (y / 5) ** 2) + xx**2 / (2 * (x / 4) ** 2)))
    return (mag * torch.exp(1j * (0.3 * xx + 0.1 * yy))).to(torch.complex64)[None]


@pytest.mark.parametrize("name", ["dip", "convdecoder"])
@pytest.mark.parametrize("shape", [(16, 8), (15, 9), (7, 12), (33, 32)])
def test_output_shape_and_dtype(name, shape):
    g = build_generator(name, 1, shape, **SMALL[name])
    out = g(F0)
    assert out.shape == (1, *shape) and out.dtype == torch.complex64
    assert torch.isfinite(out.real).all() and out.abs().max() > 0
    assert g.num_frames == 1 and g.image_shape == shape


def test_default_dip_runs_on_a_small_odd_image():
    g = make_dip(1, (17, 9))
    assert g.z.shape == (1, 32, 64, 64)  # multiples of 2**5, >= 2 px at the coarsest scale
    assert g(F0).shape == (1, 17, 9)


def test_skipnet_input_size_rule():
    net = SkipNet(channels_down=(4,) * 3, channels_up=(4,) * 3, channels_skip=(2,) * 3)
    assert net.input_size((16, 8)) == (16, 16)  # 8 would leave a 1-pixel coarsest map
    assert net.input_size((17, 40)) == (24, 40)
    with pytest.raises(ShapeError):
        net(torch.zeros(1, 32, 12, 16))  # 12 is not a multiple of 8


def test_convdecoder_sizes_grow_geometrically_to_the_image():
    net = ConvDecoder((320, 160), channels=8, num_layers=8)
    assert net.input_shape == (8, 4)  # short side 4, aspect ratio 2:1 (reference: 8 x 4)
    sizes = net.sizes
    assert len(sizes) == 7 and sizes[-1] == (320, 160)
    for a, b in zip(sizes, sizes[1:]):
        assert b[0] >= a[0] and b[1] >= a[1]
    # geometric: the size ratio between layers is ~ (320/8)**(1/7) = 1.69
    assert 1.5 < sizes[3][0] / sizes[2][0] < 1.9
    with pytest.raises(ProtocolError):
        ConvDecoder((8, 8), input_size=(16, 4))


@pytest.mark.parametrize("name", ["dip", "convdecoder"])
def test_eval_deterministic_and_train_perturbed(name):
    g = build_generator(name, 1, (16, 8), reg_noise_std=0.05, **SMALL[name])
    g.eval()
    with torch.no_grad():
        a, b = g(F0), g(F0)
    assert torch.equal(a, b)
    g.train()
    with torch.no_grad():
        c, d = g(F0), g(F0)
    # the input perturbation must reach the output (differences far above rounding)
    assert (c - d).abs().max() > 1e-4 and (c - a).abs().max() > 1e-4
    # without perturbation, training mode equals eval mode (no running statistics)
    g0 = build_generator(name, 1, (16, 8), **SMALL[name])
    with torch.no_grad():
        t = g0.train()(F0)
        e = g0.eval()(F0)
    torch.testing.assert_close(t, e, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["dip", "convdecoder"])
def test_seeding(name):
    def build(seed, torch_seed):
        torch.manual_seed(torch_seed)
        return build_generator(name, 1, (16, 8), seed=seed, **SMALL[name]).eval()

    with torch.no_grad():
        a, b = build(3, 0)(F0), build(3, 0)(F0)
        c = build(4, 0)(F0)  # other input z, same weights
        d = build(3, 1)(F0)  # same z, other weights
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3 and (a - d).abs().max() > 1e-3
    assert not torch.equal(build(3, 0).z, build(4, 0).z)


def test_buffers_are_in_state_dict_and_move_with_to():
    g = make_dip(2, (16, 8), **SMALL["dip"])
    assert "z" in dict(g.named_buffers()) and "z" in g.state_dict()
    assert not any(p is g.z for p in g.parameters())  # fixed input, not fitted
    g2 = make_dip(2, (16, 8), seed=9, **SMALL["dip"])
    g2.load_state_dict(g.state_dict())  # a checkpoint restores the input too
    assert torch.equal(g2.z, g.z)
    g.to("meta")  # device-agnostic check of buffer movement without a GPU
    assert g.z.device.type == "meta"


@pytest.mark.cuda
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    g = make_convdecoder(1, (16, 8), **SMALL["convdecoder"]).eval()
    with torch.no_grad():
        cpu = g(F0)
        gpu = g.to("cuda")(F0.cuda())
    assert gpu.device.type == "cuda"
    # float32 conv arithmetic differs between cuDNN and CPU kernels by rounding only
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4)


def test_dynamic_dip_frames_are_independent():
    g = make_dip(3, (16, 8), **SMALL["dip"]).eval()
    with torch.no_grad():
        both = g(torch.tensor([0, 2]))
        one = g(torch.tensor([2]))
        first = g(torch.tensor([0]))
    assert both.shape == (2, 16, 8)
    # per-image normalisation: frame 2's image does not depend on its batch mates
    torch.testing.assert_close(both[1:], one, rtol=1e-4, atol=1e-5)
    assert (first - one).abs().max() > 1e-3  # frames have their own inputs
    gb = make_dip(3, (16, 8), norm="batch", **SMALL["dip"]).eval()
    with torch.no_grad():
        assert (gb(torch.tensor([0, 2]))[1:] - gb(torch.tensor([2]))).abs().max() > 1e-4


def test_coil_images_variant():
    g = make_convdecoder(1, (16, 8), coil_images=3, **SMALL["convdecoder"])
    assert g.net.out_channels == 6
    out = g(F0)
    assert out.shape == (1, 3, 16, 8) and out.dtype == torch.complex64
    assert make_convdecoder(1, (16, 8), coil_images=1, **SMALL["convdecoder"])(F0).shape == (
        1, 1, 16, 8)


def test_meshgrid_input():
    g = make_dip(1, (16, 8), input_kind="meshgrid", input_channels=2, **SMALL["dip"])
    assert g.z.shape == (1, 2, 16, 16)
    assert g.z[0, 0, 0, -1] == 1.0 and g.z[0, 1, -1, 0] == 1.0  # column, row coordinates
    assert g(F0).shape == (1, 16, 8)
    with pytest.raises(ProtocolError):
        make_dip(1, (16, 8), input_kind="meshgrid", **SMALL["dip"])  # 32 channels


@pytest.mark.parametrize("name", ["dip", "convdecoder"])
def test_fits_a_small_complex_image(name):
    torch.manual_seed(0)
    target = smooth_target()
    g = build_generator(name, 1, (16, 16), **SMALL[name])
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = (g(F0) - target).abs().pow(2).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # measured: a factor of ~1000-3000 in 100 steps; 100 leaves a 10x margin while a
    # broken network (no gradient to the output, wrong crop, real-only output) stalls
    # far above it
    assert losses[-1] < losses[0] / 100
    with torch.no_grad():
        final = (g.eval()(F0) - target).abs().pow(2).sum().item()
    assert final < losses[0] / 100


def _skipnet_count(cin=32, d=128, s=4, scales=5, out=2):
    """Parameters of the default SkipNet from its layer list (biases on, affine norms)."""
    n = 0
    for i in range(scales):
        c = cin if i == 0 else d
        n += c * s + s + 2 * s  # 1x1 skip conv + norm
        n += c * d * 9 + d + 2 * d + d * d * 9 + d + 2 * d  # strided conv, conv, norms
        cat = s + d
        n += 2 * cat + cat * d * 9 + d + 2 * d + d * d + d + 2 * d  # merge
    return n + d * out + out  # final 1x1 conv


def test_default_parameter_counts():
    assert count_parameters(make_dip(1, (16, 8))) == _skipnet_count() == 2_217_702
    # ConvDecoder: 8 bias-free 3x3 convs of 160 channels, 8 affine norms, 1x1 head
    cd = make_convdecoder(1, (16, 8))
    assert count_parameters(cd) == 8 * 160 * 160 * 9 + 8 * 2 * 160 + 160 * 2
    assert cd.z.shape == (1, 160, 8, 4)


def test_bad_arguments_raise_mridip_errors():
    g = make_dip(2, (16, 8), **SMALL["dip"])
    with pytest.raises(ShapeError):
        g(torch.tensor([2]))
    with pytest.raises(ProtocolError):
        build_generator("dip", 1, (16, 8), chanels=8)
    with pytest.raises(ProtocolError):
        build_generator("unet", 1, (16, 8))
    with pytest.raises(ProtocolError):
        make_dip(1, (16, 8), norm="layer")
    with pytest.raises(ProtocolError):
        make_dip(image_shape=None)
    with pytest.raises(ProtocolError):
        DIPGenerator(SkipNet(), image_shape=(16, 8), input_channels=8)
    assert set(GENERATORS) == {"dip", "convdecoder", "tddip", "gip", "dip-mapping", "moco-dip"}
