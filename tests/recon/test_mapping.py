"""Parameter mapping: the T2 signal model, its pixel-wise fit, the mapping generator, the
fitting loop's restore_best, the T2 map metric and the [mapping] protocol table."""

import math

import numpy as np
import pytest
import torch

from mridip.errors import InputFileError, ProtocolError, ShapeError
from mridip.metrics import map_errors
from mridip.models import MappingDIP, build_generator, make_dip
from mridip.operators.signal import T2Decay, echo_times_of
from mridip.protocols import load_protocol
from mridip.recon.fit import FitConfig, fit

TE = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]


def test_t2_decay_renders_the_signal_equation():
    sm = T2Decay(TE)
    m0 = torch.tensor([[1.0, 0.5j], [0.7 - 0.2j, 2.0]], dtype=torch.complex64)
    t2 = torch.tensor([[20.0, 70.0], [99.0, 300.0]])
    x = sm(m0, t2)
    assert x.shape == (8, 2, 2) and x.dtype == torch.complex64
    te = torch.tensor(TE)[:, None, None]
    torch.testing.assert_close(x, m0[None] * torch.exp(-te / t2[None]))
    # a subset of echoes, in any order
    torch.testing.assert_close(sm(m0, t2, torch.tensor([7, 0])), x[[7, 0]])


def test_fit_maps_recovers_noiseless_maps():
    sm = T2Decay(TE)
    t2 = torch.linspace(8.0, 1500.0, 400).reshape(20, 20)
    m0 = torch.polar(torch.linspace(0.2, 3.0, 400), torch.linspace(-3, 3, 400)).reshape(20, 20)
    maps = sm.fit_maps(sm(m0, t2))
    # float32 images: relative error of a magnitude ~1e-7, amplified by T2 / (TE span) < 25
    torch.testing.assert_close(maps["T2"], t2, rtol=1e-4, atol=0.0)
    torch.testing.assert_close(maps["M0"], m0.abs(), rtol=1e-4, atol=0.0)


def test_fit_maps_noise_is_unbiased_at_high_snr():
    # T2 = 70 ms, M0 = 1, sigma = 0.01 per echo: the Cramer-Rao bound of the T2 std is about
    # 1-2 ms (d s / d T2 summed over TE 10..80 ms), so the mean over 4096 pixels has a standard
    # error near 0.03 ms; 0.3 ms is ten of them, and the spread must be of the bound's order
    sm = T2Decay(TE)
    g = torch.Generator().manual_seed(1)
    t2 = torch.full((64, 64), 70.0)
    x = sm(torch.ones(64, 64, dtype=torch.complex64), t2)
    x = x + 0.01 * torch.randn(x.shape, generator=g, dtype=torch.complex64)
    est = sm.fit_maps(x)["T2"]
    assert abs(float(est.mean()) - 70.0) < 0.3
    assert 0.5 < float(est.std()) < 4.0


def test_fit_maps_keeps_the_range_and_zeroes_empty_pixels():
    sm = T2Decay(TE, t2_min_ms=10.0, t2_max_ms=500.0)
    m0 = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.complex64)
    t2 = torch.tensor([[2.0, 5000.0, 50.0]])
    maps = sm.fit_maps(sm(m0, t2))
    assert maps["T2"][0, 0] == pytest.approx(10.0) and maps["T2"][0, 1] == pytest.approx(500.0)
    assert maps["T2"][0, 2] == 0 and maps["M0"][0, 2] == 0
    with pytest.raises(ShapeError, match="one per echo"):
        sm.fit_maps(torch.zeros(7, 4, 4))


@pytest.mark.parametrize("te", [[10.0], [10.0, 10.0], [-1.0, 10.0]])
def test_bad_echo_times_are_refused(te):
    with pytest.raises(ProtocolError):
        T2Decay(te)


def test_echo_times_from_header_or_override():
    assert echo_times_of([10, 20], 2) == [10.0, 20.0]
    assert echo_times_of([5], 2, override=[10, 20]) == [10.0, 20.0]
    with pytest.raises(InputFileError, match="mapping.echo_times_ms"):
        echo_times_of([5.0], 2)


def test_mapping_dip_renders_its_maps():
    sm = T2Decay(TE)
    g = MappingDIP(8, (20, 24), sm, scales=2, channels=8, input_channels=4)
    g.eval()
    x = g(torch.arange(8))
    assert x.shape == (8, 20, 24) and x.dtype == torch.complex64
    m0, t2 = g.maps()
    torch.testing.assert_close(x, sm(m0, t2))
    assert bool((t2 > sm.t2_min).all() and (t2 < sm.t2_max).all())
    maps = g.parameter_maps()
    torch.testing.assert_close(maps["T2"], t2)
    torch.testing.assert_close(maps["M0"], m0.abs())
    # gradients reach the network through the signal model
    x.abs().sum().backward()
    assert all(p.grad is not None for p in g.parameters())


def test_mapping_dip_checks_its_echoes_and_init():
    with pytest.raises(ProtocolError, match="echo times"):
        MappingDIP(6, (16, 16), T2Decay(TE), scales=2, channels=4)
    with pytest.raises(ProtocolError, match="t2_init_ms"):
        MappingDIP(8, (16, 16), T2Decay(TE, t2_max_ms=50.0), scales=2, channels=4, t2_init_ms=100.0)
    with pytest.raises(ProtocolError, match="signal model"):
        build_generator("dip-mapping", 8, (16, 16), scales=2)


def test_restore_best_leaves_the_model_at_the_returned_iterate():
    model = make_dip(1, (8, 8), scales=2, channels=4, input_channels=2)
    target = torch.randn(1, 8, 8, dtype=torch.complex64)
    # validation scores that improve for 5 checks and then get worse: the best iterate is 50
    scores = iter([5.0, 4.0, 3.0, 2.0, 1.0] + [2.0] * 100)
    cfg = FitConfig(iterations=120, lr=1e-2, val_every=10, patience=40, min_iterations=10, progress=False)
    res = fit(model, lambda x, f: (x - target[f]).abs().pow(2).mean(), cfg,
              validate=lambda x: next(scores), restore_best=True)
    assert res.best_iteration == 50 and res.iterations == 90
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(torch.tensor([0])), res.image)
    with pytest.raises(ProtocolError, match="ema"):
        fit(model, lambda x, f: x.abs().mean(), FitConfig(ema=0.9, progress=False), validate=lambda x: 1.0,
            restore_best=True)


def test_map_errors_in_physical_units():
    ref = np.array([[50.0, 100.0], [0.0, 200.0]])
    est = np.array([[55.0, 90.0], [30.0, 200.0]])
    e = map_errors(est, ref)  # the 0 pixel (no reference) is not scored
    assert e["mae"] == pytest.approx(5.0)
    assert e["mape"] == pytest.approx(100 * (0.1 + 0.1 + 0.0) / 3)
    assert e["bias"] == pytest.approx(-5.0 / 3)
    assert map_errors(est, ref, np.array([[True, False], [False, False]]))["mae"] == pytest.approx(5.0)
    with pytest.raises(ShapeError):
        map_errors(est[:1], ref)


def test_mapping_protocol_table():
    p = load_protocol("dip-t2-mapping")
    assert p.method == "dip-mapping" and p.is_generator and p.option("mapping", "model") == "t2"
    assert load_protocol("cg-sense", ["mapping.model=t2", "mapping.echo_times_ms=[10, 20]"]).mapping == {
        "model": "t2", "echo_times_ms": [10, 20]}
    assert load_protocol("cg-sense").option("mapping", "model") == ""
    with pytest.raises(ProtocolError, match="mapping.model"):
        load_protocol("cg-sense", ["mapping.model=t1rho"])
    with pytest.raises(ProtocolError, match="unknown key 'mapping.te'"):
        load_protocol("cg-sense", ["mapping.te=[1]"])
    with pytest.raises(ProtocolError, match="set mapping.model"):
        load_protocol("dip-t2-mapping", ['mapping.model=""'])
    with pytest.raises(ProtocolError, match="t2_min_ms"):
        load_protocol("dip-t2-mapping", ["mapping.t2_min_ms=0"])
    with pytest.raises(ProtocolError, match="list of numbers"):
        load_protocol("cg-sense", ['mapping.echo_times_ms=["a"]'])


@pytest.mark.cuda
def test_mapping_on_cuda_matches_cpu():
    sm = T2Decay(TE)
    torch.manual_seed(0)
    g = MappingDIP(8, (16, 16), sm, scales=2, channels=8, input_channels=4).eval()
    x_cpu = g(torch.arange(8))
    x_gpu = g.to("cuda")(torch.arange(8, device="cuda"))
    assert x_gpu.is_cuda
    # float32 convolutions on both devices: rounding-level differences
    torch.testing.assert_close(x_gpu.cpu(), x_cpu, rtol=1e-3, atol=1e-4 * float(x_cpu.abs().max()))
    maps_gpu = sm.to("cuda").fit_maps(x_gpu)
    torch.testing.assert_close(maps_gpu["T2"].cpu(), g.parameter_maps()["T2"].cpu(), rtol=1e-3, atol=0.0)
