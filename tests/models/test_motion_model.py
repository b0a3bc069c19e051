"""The motion-corrected generator and its regularisers (mridip/models/motion.py)."""

from __future__ import annotations

import pytest
import torch

from mridip.errors import ProtocolError, ShapeError
from mridip.models import build_generator
from mridip.models.motion import (MoCoDIP, MotionRegulariser, folding_penalty, jacobian_determinant,
                                  spatial_smoothness)


def test_starts_at_the_identity_warp():
    m = build_generator("moco-dip", 5, (16, 12), channels=8, bases=2)
    fr = torch.arange(5)
    assert float(m.displacement(fr).abs().max()) == 0.0
    assert torch.equal(m(fr), m.template(fr))
    assert m(fr).shape == (5, 16, 12) and m(fr).dtype == torch.complex64
    # the identity start must still let the motion MLP learn: its last layer gets a gradient
    loss = m(fr).abs().pow(2).sum() + m.displacement(fr).sum()
    loss.backward()
    assert float(m.motion[-1].weight.grad.abs().sum()) > 0


def test_regularisers_vanish_for_rigid_shift_and_catch_folding():
    u = torch.zeros(2, 2, 8, 8)
    u[:, 0] = 1.5  # a rigid shift: no gradient, det J = 1
    assert float(spatial_smoothness(u)) == 0.0
    assert torch.allclose(jacobian_determinant(u), torch.ones(2, 7, 7))
    assert float(folding_penalty(u)) == 0.0
    fold = torch.zeros(1, 2, 8, 8)
    fold[0, 1] = -2.0 * torch.arange(8.0)  # x -> x - 2x: det J = -1 everywhere
    assert torch.allclose(jacobian_determinant(fold), -torch.ones(1, 7, 7))
    assert float(folding_penalty(fold)) == pytest.approx(1.0)


def test_regulariser_temporal_term_and_deform_off():
    m = MoCoDIP(4, (8, 8), channels=4, bases=1, latent_size=4)
    with torch.no_grad():
        m.motion[-1].bias.fill_(0.3)  # constant field: spatially flat, equal in every frame
    reg = MotionRegulariser(spatial=1.0, temporal=1.0, folding=1.0)
    x = m(torch.arange(4))
    assert float(reg(m, x, torch.tensor([3, 0]))) == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        m.code[2] += 1.0  # frame 2's field now differs from its neighbours'
        m.motion[-1].weight.normal_()
    assert float(reg(m, x, torch.tensor([1]))) > 0
    m.deform = False
    assert float(reg(m, x, torch.tensor([1]))) == 0.0


def test_surrogate_options_are_checked():
    with pytest.raises(ProtocolError, match="stages.surrogate"):
        MoCoDIP(4, (8, 8), motion_input="both")
    m = MoCoDIP(4, (8, 8), channels=4, motion_input="surrogate", surrogate_dim=2)
    with pytest.raises(ShapeError, match="surrogates"):
        m.set_surrogates(torch.zeros(4, 3))
    m.set_surrogates(torch.randn(4, 2))
    assert m.displacement(torch.arange(4)).shape == (4, 2, 8, 8)
