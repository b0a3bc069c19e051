"""T1 signal models (mridip/operators/signal.py): the signal equations, their pixel-wise fits
(noiseless recovery, the MOLLI correction, polarity restoration, VFA with and without B1),
the mapping generator on them, acquisition parameters from headers and the [mapping] table."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares

from mridip.errors import InputFileError, ProtocolError, ShapeError
from mridip.models import MappingDIP
from mridip.operators.signal import (
    SIGNAL_MODELS,
    InversionRecovery,
    LookLocker,
    SaturationRecovery,
    VariableFlipAngle,
    acquisition_parameters,
    signal_model,
)
from mridip.protocols import load_protocol

TI = [35.0, 70.0, 140.0, 280.0, 560.0, 1120.0, 2240.0, 4480.0]
MOLLI_TI = [100.0, 180.0, 1100.0, 1180.0, 2100.0, 2180.0, 3100.0, 4100.0]
FA = [2.0, 4.0, 7.0, 11.0, 16.0, 22.0]


def _maps(n=20, lo=60.0, hi=4500.0):
    t1 = torch.logspace(math.log10(lo), math.log10(hi), n * n).reshape(n, n)
    m0 = torch.polar(torch.linspace(0.2, 3.0, n * n), torch.linspace(-3, 3, n * n)).reshape(n, n)
    return m0, t1


def test_models_render_their_signal_equations():
    m0, t1 = _maps(4)
    ti = torch.tensor(TI)[:, None, None]
    ir = InversionRecovery(TI)
    torch.testing.assert_close(ir(m0, t1, 0.9), m0[None] * (1 - 1.8 * torch.exp(-ti / t1[None])))
    sr = SaturationRecovery(TI)
    torch.testing.assert_close(sr(m0, t1), m0[None] * (1 - torch.exp(-ti / t1[None])))
    ll = LookLocker(TI)
    torch.testing.assert_close(ll(m0, t1, 2.5), m0[None] * (1 - 2.5 * torch.exp(-ti / t1[None])))
    vfa = VariableFlipAngle(FA, 15.0)
    a = torch.deg2rad(torch.tensor(FA))[:, None, None]
    e1 = torch.exp(-15.0 / t1)[None]
    torch.testing.assert_close(vfa(m0, t1), m0[None] * torch.sin(a) * (1 - e1) / (1 - torch.cos(a) * e1))
    # a subset of contrasts, in any order
    torch.testing.assert_close(ir(m0, t1, 1.0, torch.tensor([5, 0])), ir(m0, t1, 1.0)[[5, 0]])
    assert set(SIGNAL_MODELS) == {"t2", "ir", "molli", "sr", "vfa"}


@pytest.mark.parametrize("model", ["ir", "ir-magnitude", "sr", "vfa", "vfa-linear"])
def test_noiseless_recovery(model):
    m0, t1 = _maps()
    if model.startswith("ir"):
        sm = InversionRecovery(TI)
        x = sm(m0, t1, 0.96)
        maps = sm.fit_maps(x.abs() if model == "ir-magnitude" else x)
        torch.testing.assert_close(maps["efficiency"], torch.full_like(t1, 0.96), rtol=1e-4, atol=0.0)
    elif model == "sr":
        sm = SaturationRecovery([50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0])
        maps = sm.fit_maps(sm(m0, t1))
    else:
        sm = VariableFlipAngle(FA, 15.0)
        maps = sm.fit_maps(sm(m0, t1), method="linear" if model == "vfa-linear" else "nonlinear")
    # float32 images: relative round-off ~1e-7, amplified by the conditioning of T1 (worst for
    # VFA at T1 = 4500 ms >> TR, where the curve changes by ~1 % per 10 % of T1)
    rtol = 1e-4 if model.startswith(("ir", "sr")) else 2e-3
    torch.testing.assert_close(maps["T1"], t1, rtol=rtol, atol=0.0)
    torch.testing.assert_close(maps["M0"], m0.abs(), rtol=rtol, atol=0.0)


def test_molli_correction_on_a_planted_look_locker_curve():
    # Look-Locker: A = M0 T1* / T1, B = M0 + A, so B / A - 1 = T1 / T1* (Deichmann and Haase 1992)
    t1 = torch.tensor([[600.0, 1000.0], [1550.0, 2500.0]])
    t1s = 1.0 / (1.0 / t1 + 1.0 / 1500.0)
    m0 = torch.tensor([[1.0, 0.8], [0.95j, 0.5 - 0.5j]], dtype=torch.complex64)
    a = m0 * (t1s / t1)
    ti = torch.tensor(MOLLI_TI)[:, None, None]
    x = a[None] - (a + m0)[None] * torch.exp(-ti / t1s[None])  # A - B exp(-TI / T1*)
    sm = LookLocker(MOLLI_TI)
    for data in (x, x.abs()):  # phase-sensitive and magnitude (polarity restored)
        maps = sm.fit_maps(data)
        torch.testing.assert_close(maps["T1star"], t1s, rtol=1e-4, atol=0.0)
        torch.testing.assert_close(maps["T1"], t1, rtol=1e-4, atol=0.0)
        torch.testing.assert_close(maps["A"], a.abs(), rtol=1e-4, atol=0.0)
        torch.testing.assert_close(maps["B"], (a + m0).abs(), rtol=1e-4, atol=0.0)
        torch.testing.assert_close(maps["M0"], m0.abs(), rtol=1e-4, atol=1e-6)
    # T1* itself is far from T1: the correction matters (T1* = 0.71 ... 0.38 T1 here)
    assert bool((maps["T1star"] < 0.75 * t1).all())


def _scipy_ir_fit(s, ti, t1_start):
    """Independent reference: real 3-parameter IR fit a + b exp(-TI / T1) with scipy."""
    res = least_squares(lambda p: p[0] + p[1] * np.exp(-ti / p[2]) - s, [s[-1], -2 * s[-1], t1_start],
                        bounds=([-np.inf, -np.inf, 1.0], [np.inf, np.inf, 1e5]), xtol=1e-14, ftol=1e-14)
    return res.x


def test_polarity_restoration_on_magnitude_ir_matches_the_signed_fit():
    rng = np.random.default_rng(3)
    t1 = torch.tensor([[150.0, 700.0, 1300.0, 2000.0]])
    sm = InversionRecovery(TI)
    x = sm(torch.ones(1, 4, dtype=torch.complex64), t1, 0.95).real.numpy()  # (E, 1, 4), real signed
    x = x + 0.01 * rng.standard_normal(x.shape)
    mag = torch.from_numpy(np.abs(x)).float()
    est = sm.fit_maps(mag)["T1"][0].numpy()
    ti = np.asarray(TI)
    for j in range(4):
        # the signed data fitted by scipy: what the magnitude fit must find without the signs
        a, b, t1_ref = _scipy_ir_fit(x[:, 0, j], ti, 1000.0)
        assert est[j] == pytest.approx(t1_ref, rel=1e-3), (j, est[j], t1_ref)
    # without restoration (all points positive) the fit of the magnitudes is far off
    sign_free = InversionRecovery(TI)._varpro(mag.reshape(len(TI), -1).T.double(), None, 200, 10)[0]
    assert np.max(np.abs(1.0 / sign_free.numpy() - t1[0].numpy()) / t1[0].numpy()) > 0.2


def test_vfa_with_and_without_b1():
    m0, t1 = _maps(12, 200.0, 3000.0)
    b1 = torch.linspace(0.75, 1.25, t1.numel()).reshape(t1.shape)
    with_b1 = VariableFlipAngle(FA, 15.0, b1=b1)
    x = with_b1(m0, t1)
    for method in ("nonlinear", "linear"):
        torch.testing.assert_close(with_b1.fit_maps(x, method=method)["T1"], t1, rtol=2e-3, atol=0.0)
    # ignoring B1 scales T1 by about B1^2 (small angles, TR << T1: DESPOT1's known B1 sensitivity)
    wrong = VariableFlipAngle(FA, 15.0).fit_maps(x)["T1"]
    torch.testing.assert_close(wrong / t1, b1 ** 2, rtol=0.05, atol=0.0)
    with pytest.raises(ShapeError, match="B1 map"):
        with_b1.fit_maps(x[:, :6, :6])
    with pytest.raises(ProtocolError, match="linear"):
        with_b1.fit_maps(x, method="despot")


def test_fits_keep_the_range_and_zero_empty_pixels():
    sm = InversionRecovery(TI, t1_min_ms=100.0, t1_max_ms=3000.0)
    m0 = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.complex64)
    maps = sm.fit_maps(sm(m0, torch.tensor([[20.0, 9000.0, 500.0]])))
    assert float(maps["T1"][0, 0]) == pytest.approx(100.0) and float(maps["T1"][0, 1]) == pytest.approx(3000.0)
    assert float(maps["T1"][0, 2]) == 0.0 and float(maps["M0"][0, 2]) == 0.0
    with pytest.raises(ShapeError, match="one per contrast"):
        sm.fit_maps(torch.zeros(3, 4, 4))


def test_bad_acquisition_parameters_are_refused():
    with pytest.raises(ProtocolError, match="at least 3"):
        InversionRecovery([100.0, 200.0])
    with pytest.raises(ProtocolError, match="differ"):
        SaturationRecovery([100.0, 100.0])
    with pytest.raises(ProtocolError, match="TR"):
        VariableFlipAngle(FA, 0.0)
    with pytest.raises(ProtocolError, match="180"):
        VariableFlipAngle([5.0, 190.0], 10.0)
    with pytest.raises(ProtocolError, match="t1_min_ms"):
        InversionRecovery(TI, t1_min_ms=600.0, t1_max_ms=500.0)
    with pytest.raises(ProtocolError, match="unknown mapping.model"):
        signal_model("t1rho", [1.0, 2.0])


class _Header:
    def __init__(self, **kw):
        self.te_ms, self.ti_ms, self.tr_ms, self.flip_angle_deg = [], [], [], []
        self.__dict__.update(kw)


def test_acquisition_parameters_from_header_or_protocol():
    h = _Header(ti_ms=TI, tr_ms=[15.0], flip_angle_deg=FA)
    assert acquisition_parameters("ir", h, 8, {}) == {"ti_ms": TI}
    assert acquisition_parameters("molli", h, 3, {"ti_ms": [1, 2, 3]}) == {"ti_ms": [1.0, 2.0, 3.0]}
    assert acquisition_parameters("vfa", h, 6, {"tr_ms": 0.0}) == {"flip_angles_deg": FA, "tr_ms": 15.0}
    assert acquisition_parameters("vfa", h, 6, {"tr_ms": 9.0})["tr_ms"] == 9.0
    with pytest.raises(InputFileError, match="mapping.ti_ms"):
        acquisition_parameters("ir", _Header(), 8, {})
    with pytest.raises(InputFileError, match=r"8 frames .*sequenceParameters/TI\) gives 1"):
        acquisition_parameters("sr", _Header(ti_ms=[100.0]), 8, {})
    with pytest.raises(InputFileError, match="mapping.flip_angles_deg"):
        acquisition_parameters("vfa", _Header(tr_ms=[15.0], flip_angle_deg=[10.0]), 6, {})
    with pytest.raises(InputFileError, match="mapping.tr_ms"):
        acquisition_parameters("vfa", _Header(flip_angle_deg=FA), 6, {})


@pytest.mark.parametrize("model", ["ir", "molli", "sr", "vfa"])
def test_mapping_dip_renders_t1_models(model):
    sm = {"ir": InversionRecovery(TI), "molli": LookLocker(MOLLI_TI), "sr": SaturationRecovery(TI),
          "vfa": VariableFlipAngle(FA, 15.0)}[model]
    n = sm.num_contrasts
    g = MappingDIP(n, (12, 16), sm, scales=2, channels=8, input_channels=4, t1_init_ms=900.0).eval()
    x = g(torch.arange(n))
    assert x.shape == (n, 12, 16) and x.dtype == torch.complex64
    m0, *reals = g.maps()
    torch.testing.assert_close(x, sm.render(m0, reals))
    for p, spec in zip(reals, g.parameters_spec):
        assert bool((p > spec.lo).all() and (p < spec.hi).all()), spec
    maps = g.parameter_maps()
    expected = {"ir": {"M0", "T1"}, "sr": {"M0", "T1"}, "vfa": {"M0", "T1"},
                "molli": {"M0", "T1", "T1star", "A", "B"}}[model]
    assert set(maps) == expected
    if model == "molli":
        torch.testing.assert_close(maps["T1"], (reals[0] * (reals[1] - 1)).clamp(50.0, 5000.0))
    x.abs().sum().backward()
    assert all(p.grad is not None for p in g.parameters())
    with pytest.raises(ProtocolError, match="contrasts"):
        MappingDIP(n + 1, (12, 16), sm, scales=2, channels=4)


def test_mapping_protocol_t1_keys():
    p = load_protocol("dip-t1-mapping")
    assert p.method == "dip-mapping" and p.option("mapping", "model") == "ir"
    assert load_protocol("dip-t1-mapping-radial").option("mapping", "t1_max_ms") == 5000.0
    q = load_protocol("cg-sense", ["mapping.model=vfa", "mapping.flip_angles_deg=[2, 10]", "mapping.tr_ms=15.0"])
    assert q.option("mapping", "flip_angles_deg") == [2, 10] and q.option("mapping", "tr_ms") == 15.0
    with pytest.raises(ProtocolError, match="t1_min_ms"):
        load_protocol("dip-t1-mapping", ["mapping.t1_min_ms=0.0"])
    with pytest.raises(ProtocolError, match="list of numbers"):
        load_protocol("cg-sense", ['mapping.ti_ms=["a"]'])
    with pytest.raises(ProtocolError, match="vfa_fit"):
        load_protocol("cg-sense", ['mapping.vfa_fit="despot2"'])
    with pytest.raises(ProtocolError, match="t1_init_ms"):
        MappingDIP(8, (8, 8), InversionRecovery(TI), scales=2, channels=4, t1_init_ms=10.0)
