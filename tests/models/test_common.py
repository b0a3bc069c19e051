"""Tests of mridip/models/common.py: real <-> complex conversion, cropping, norms, checks."""

import pytest
import torch

from mridip.errors import ProtocolError, ShapeError
from mridip.models.common import (
    center_crop,
    channels_to_complex,
    check_frames,
    check_image_shape,
    complex_to_channels,
    make_norm,
)



def test_round_trip_single_image_is_exact():
    x = torch.randn(3, 5, 4, dtype=torch.complex64)  # (B, Y, X)
    t = complex_to_channels(x)
    assert t.shape == (3, 2, 5, 4) and t.dtype == torch.float32
    # pure copies of real and imaginary parts: bit-exact
    assert torch.equal(t[:, 0], x.real) and torch.equal(t[:, 1], x.imag)
    back = channels_to_complex(t)
    assert back.shape == (3, 5, 4) and back.dtype == torch.complex64
    assert torch.equal(back, x)


def test_round_trip_coil_images_interleaved():
    x = torch.randn(2, 3, 4, 6, dtype=torch.complex64)  # (B, C, Y, X)
    t = complex_to_channels(x)
    assert t.shape == (2, 6, 4, 6)
    # layout: image k at channels (2k, 2k+1) = (re, im)
    assert torch.equal(t[:, 4], x[:, 2].real) and torch.equal(t[:, 5], x[:, 2].imag)
    assert torch.equal(channels_to_complex(t), x)


def test_keep_image_axis_for_a_single_coil():
    t = torch.randn(2, 2, 3, 3)
    assert channels_to_complex(t).shape == (2, 3, 3)
    assert channels_to_complex(t, keep_image_axis=True).shape == (2, 1, 3, 3)


def test_channels_to_complex_rejects_odd_channels_and_complex_input():
    with pytest.raises(ShapeError):
        channels_to_complex(torch.randn(1, 3, 4, 4))
    with pytest.raises(ShapeError):
        channels_to_complex(torch.randn(1, 2, 4, 4, dtype=torch.complex64))
    with pytest.raises(ShapeError):
        complex_to_channels(torch.randn(1, 2, 4, 4))


def test_center_crop_keeps_the_centre_pixel():
    # the pixel at (Yg//2, Xg//2) must land on (Y//2, X//2) for odd and even sizes
    for yg, xg, y, x in [(8, 8, 5, 4), (9, 7, 4, 7), (16, 16, 16, 3)]:
        t = torch.zeros(1, 1, yg, xg)
        t[..., yg // 2, xg // 2] = 1.0
        c = center_crop(t, (y, x))
        assert c.shape == (1, 1, y, x)
        assert c[0, 0, y // 2, x // 2] == 1.0 and c.sum() == 1.0
    with pytest.raises(ShapeError):
        center_crop(torch.zeros(1, 1, 4, 4), (5, 4))


def test_batch_norm_equals_instance_norm_for_one_image():
    # The references run BatchNorm in training mode with batch size 1, i.e. per-image
    # statistics; "instance" must reproduce that (same eps, biased variance) up to
    # float32 rounding of two different reduction orders.
    x = torch.randn(1, 5, 6, 7)
    bn, inn = make_norm("batch", 5), make_norm("instance", 5)
    torch.testing.assert_close(bn(x), inn(x), rtol=1e-5, atol=1e-5)
    bn.eval()  # no running statistics: eval mode gives the same output
    torch.testing.assert_close(bn(x), inn(x), rtol=1e-5, atol=1e-5)
    # with two images the statistics differ: batch mixes them, instance does not
    x2 = torch.cat([x, 3.0 * torch.randn(1, 5, 6, 7) + 2.0])
    assert not torch.allclose(bn(x2)[:1], inn(x2)[:1], atol=1e-3)
    torch.testing.assert_close(inn(x2)[:1], inn(x), rtol=1e-5, atol=1e-5)
    assert isinstance(make_norm("none", 5), torch.nn.Identity)
    with pytest.raises(ProtocolError):
        make_norm("group", 5)


def test_check_frames_and_image_shape_errors():
    assert check_frames(torch.tensor([0, 2]), 3, torch.device("cpu")).dtype == torch.long
    for bad in [torch.tensor([3]), torch.tensor([-1]), torch.tensor([[0]]),
                torch.tensor([0.0]), torch.tensor([], dtype=torch.long)]:
        with pytest.raises(ShapeError):
            check_frames(bad, 3, torch.device("cpu"))
    assert check_image_shape([16, 8]) == (16, 8)
    for bad in [(16,), (0, 4), "ab", None]:
        with pytest.raises(ShapeError):
            check_image_shape(bad)
