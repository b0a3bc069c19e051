"""GRAPPA (mridip/recon/grappa.py) against the truth, an explicit least-squares fit and sigpy SENSE.

The phantom: sigpy's Shepp-Logan (48 x 40) seen by 8 Biot-Savart loop coils normalised to
``sum_c |S_c|^2 = 1`` (data_tools), fully sampled k-space by the package's centred
orthonormal FFT, undersampled along ky with a regular R plus a central ACS block that is
also the calibration data (as on the scanner: embedded ACS lines, ISMRMRD flag 21).
"""

import numpy as np
import pytest
import torch

from data_tools.phantom import coil_sensitivities
from mridip.data import RawData
from mridip.errors import ProtocolError, ShapeError
from mridip.fft import fft2c
from mridip.operators.cartesian import CartesianSense
from mridip.recon.grappa import (
    _line_patterns, calibrate_kernel, combine_coils, grappa, grappa_kspace, time_averaged_calibration,
)

NY, NX, C = 48, 40, 8


@pytest.fixture(scope="module")
def phantom():
    import sigpy

    img = torch.from_numpy(sigpy.shepp_logan((NY, NX)).astype(np.complex64))
    maps = torch.from_numpy(coil_sensitivities(C, (NY, NX), normalize=True))
    full = fft2c(maps * img)[None]  # (1, C, Ky, Kx)
    return img, maps, full


def _sampling(R, acs, extra=(), ny=NY, nx=NX):
    """Mask (1, Ky, Kx) of every R-th line, a centred ACS block and ``extra`` lines; ACS mask (Ky, Kx)."""
    lines = torch.zeros(ny, dtype=torch.bool)
    lines[::R] = True
    c0 = ny // 2 - acs // 2
    cal = torch.zeros(ny, dtype=torch.bool)
    cal[c0 : c0 + acs] = True
    lines |= cal
    lines[list(extra)] = True
    return lines[None, :, None].expand(1, ny, nx).clone(), cal[:, None].expand(ny, nx).clone()


def _missing_nrmse(k, full, mask):
    miss = ~mask[:, None].expand_as(full)
    return float((k - full)[miss].norm() / full[miss].norm())


def _nrmse(x, ref):
    return float((x - ref).norm() / ref.norm())


@pytest.mark.parametrize("R, acs, bound", [(2, 16, 0.15), (3, 16, 0.25), (3, 24, 0.35)])
def test_noiseless_missing_lines_match_the_truth(phantom, R, acs, bound):
    """Noiseless: the only error is the kernel's model error (a 4 x 5 kernel cannot represent
    the exact k-space interpolation of the coils) and the regularisation's bias. Measured on
    this phantom with the default lam = 0.01: 0.096 (R = 2), 0.16 (R = 3, 16 ACS), 0.23 (R = 3,
    24 ACS: the missing lines are then all further out, where the signal is weaker and the
    relative error larger); the bounds leave 50 % room. Measured samples are returned bit
    for bit."""
    img, maps, full = phantom
    mask, cm = _sampling(R, acs)
    y = full * mask[:, None]
    k, info = grappa_kspace(y, mask, full[0] * cm, cm)
    err = _missing_nrmse(k, full, mask)
    assert err < bound, err
    m = mask[:, None].expand_as(full)
    assert torch.equal(k[m], y[m])
    assert info["unfilled_lines"] == 0 and info["reduced_patterns"] == 0
    # a regular R has R - 1 interior patterns, plus a few at the ACS block and the edges
    assert R - 1 <= info["patterns"] <= 20
    # zero-filling's error at the missing lines is 1 (they are zero): GRAPPA must do far better
    assert err < 0.4


def test_image_beats_zero_filling_and_agrees_with_sigpy_sense(phantom):
    """Noiseless R = 2 and R = 3: sigpy's SENSE with the exact maps reproduces the object
    (to its CG tolerance). For maps with sum |S|^2 = 1 the SENSE combination is a contraction
    per pixel (Cauchy-Schwarz), so by Parseval ||x_grappa - x_true|| <= ||k_grappa - k_true||
    (all coils), and ||x_grappa - x_sense|| <= that + ||x_sense - x_true||: the bound the test
    checks, with GRAPPA a factor > 4 better than the zero-filled image."""
    import sigpy.mri.app

    img, maps, full = phantom
    for R in (2, 3):
        mask, cm = _sampling(R, 16)
        y = full * mask[:, None]
        A = CartesianSense(maps, mask)
        x, info = grappa(A, y, calibration=full[0] * cm, calibration_mask=cm)
        assert x.shape == (1, NY, NX) and x.dtype == torch.complex64
        assert info["stop_reason"] == "closed form" and info["combine"] == "sense"
        k, _ = grappa_kspace(y, mask, full[0] * cm, cm)
        xs = sigpy.mri.app.SenseRecon(y[0].numpy(), maps.numpy(), weights=mask[0].numpy().astype(np.float32),
                                      max_iter=200, show_pbar=False).run()
        xs = torch.from_numpy(np.asarray(xs, dtype=np.complex64))[None]
        e_sense = _nrmse(xs, img[None])
        bound = float((k - full).norm() / img.norm()) + e_sense
        e_gs = _nrmse(x, xs)
        assert e_gs <= bound, (e_gs, bound)
        assert _nrmse(x, img[None]) <= float((k - full).norm() / img.norm()) + 1e-5
        zf = A.adjoint(y)
        assert _nrmse(x, img[None]) < 0.25 * _nrmse(zf, img[None]), (R, _nrmse(x, img[None]), _nrmse(zf, img[None]))
        assert e_gs < 0.1


def test_kernel_fit_is_the_explicit_regularised_least_squares(phantom):
    """calibrate_kernel against the fit built by explicit loops in numpy: the calibration
    matrix S (one row per ACS position whose whole window is measured, columns ordered
    offset, readout point, coil), solved as the augmented least-squares problem
    [S; lam sigma_max I] W = [T; 0] by numpy's lstsq (SVD)."""
    _, _, full = phantom
    cal = full[0, :3, 14:34, 4:16].clone()  # 3 coils, 20 x 12 ACS
    c, ny, nx = cal.shape
    cm = torch.ones(ny, nx, dtype=torch.bool)
    cm[:, 0] = False  # an unmeasured readout column: windows touching it are not equations
    offsets, nkx, lam = (-3, -1, 2), 3, 0.05
    W, info = calibrate_kernel(cal, cm, offsets, kernel_kx=nkx, lam=lam)
    a = cal.numpy().astype(np.complex128)
    rows, targets = [], []
    for r in range(ny):
        for x in range(nx):
            pts = [(r + o, x + d) for o in offsets for d in (-1, 0, 1)]
            if not all(0 <= p < ny and 0 <= q < nx and cm[p, q] for p, q in pts + [(r, x)]):
                continue
            rows.append([a[cc, p, q] for p, q in pts for cc in range(c)])
            targets.append(a[:, r, x])
    S, T = np.array(rows), np.array(targets)
    assert info["equations"] == S.shape[0] and info["unknowns"] == S.shape[1] == 3 * 3 * 3
    smax = np.linalg.svd(S, compute_uv=False)[0]
    aug = np.vstack([S, lam * smax * np.eye(S.shape[1])])
    ref = np.linalg.lstsq(aug, np.vstack([T, np.zeros((S.shape[1], c))]), rcond=None)[0]
    np.testing.assert_allclose(W.numpy(), ref, rtol=0, atol=1e-8 * np.abs(ref).max())
    assert info["lam_effective"] == pytest.approx(lam * smax, rel=1e-9)
    # too few positions for the unknowns: no kernel
    W2, info2 = calibrate_kernel(cal[:, :8], cm[:8], (-3, -1, 2, 4), kernel_kx=5)
    assert W2 is None and info2["equations"] < info2["unknowns"]


def test_noise_error_is_what_the_kernels_amplify(phantom):
    """White noise of variance sigma^2 per sample in data and ACS. Each filled point is a
    linear combination of measured points, so its noise variance is sigma^2 ||w_c||^2 and the
    noise energy at the missing points is E_n = sigma^2 sum_patterns lines x Kx x ||W||_F^2
    (the k-space form of the g-factor). The error energy is then ~ the noiseless model error
    plus E_n; the kernels' noise gain ||W||_F^2 / C grows with R (the g-factor does)."""
    img, maps, full = phantom
    gains = {}
    for R in (2, 3):
        mask, cm = _sampling(R, 16)
        gen = torch.Generator().manual_seed(R)
        sigma = 0.02 * float(full.abs().max())
        noise = sigma / np.sqrt(2) * torch.complex(torch.randn(full.shape, generator=gen),
                                                   torch.randn(full.shape, generator=gen))
        yn = (full + noise) * mask[:, None]
        k, info = grappa_kspace(yn, mask, (full[0] + noise[0]) * cm, cm)
        miss = ~mask[:, None].expand_as(full)
        err2 = float(((k - full)[miss].abs() ** 2).sum())
        # the same kernels on noiseless data give the model error of these kernels
        k0, info0 = grappa_kspace(full * mask[:, None], mask, (full[0] + noise[0]) * cm, cm)
        model2 = float(((k0 - full)[miss].abs() ** 2).sum())
        e_n = sigma**2 * sum(info["targets"][p] * NX * float((W.abs() ** 2).sum()) for p, W in info["kernels"].items())
        # zero-padding at the kx edges drops a few source points (less noise): <= the prediction;
        # the noise's random draw (~5000 samples) keeps the ratio within a few percent (measured 0.98)
        assert 0.9 * (model2 + e_n) < err2 < 1.08 * (model2 + e_n), (R, err2, model2, e_n)
        main = max(info["targets"], key=info["targets"].get)
        gains[R] = float((info["kernels"][main].abs() ** 2).sum()) / C
    assert gains[3] > gains[2], gains


def test_irregular_mask_and_column_undersampling(phantom):
    """Regular R = 3 plus extra lines (a pattern-keyed kernel set): every line filled, no worse
    than regular R = 3. The same data transposed (whole columns measured, fastMRI-like) give
    the transposed k-space."""
    img, maps, full = phantom
    mask3, cm = _sampling(3, 16)
    y3 = full * mask3[:, None]
    k3, _ = grappa_kspace(y3, mask3, full[0] * cm, cm)
    mask, _ = _sampling(3, 16, extra=(4, 7, 38, 41, 43))
    y = full * mask[:, None]
    k, info = grappa_kspace(y, mask, full[0] * cm, cm)
    assert info["unfilled_lines"] == 0
    assert info["patterns"] > 13  # the extra lines create patterns a regular R has not
    m = mask[:, None].expand_as(full)
    assert torch.equal(k[m], y[m])
    assert _missing_nrmse(k, full, mask) < 0.25
    # over the lines missing in both, the extra measured lines can only help (nearer sources)
    both = ~(mask | mask3)[:, None].expand_as(full)
    assert float((k - full)[both].norm()) < 1.05 * float((k3 - full)[both].norm())
    kt, info_t = grappa_kspace(y.transpose(-2, -1), mask.transpose(-2, -1), full[0].transpose(-2, -1) * cm.T, cm.T)
    assert info_t["undersampled_axis"] == "kx"
    torch.testing.assert_close(kt, k.transpose(-2, -1), rtol=0, atol=1e-5 * float(full.abs().max()))
    # 2-D random sampling is not GRAPPA's
    rnd = torch.rand(1, NY, NX) < 0.5
    with pytest.raises(ShapeError, match="whole lines"):
        grappa_kspace(full * rnd[:, None], rnd, full[0] * cm, cm)


def test_multiframe_and_calibration_from_the_data(phantom):
    """T = 2 (frames measure complementary lines): each frame is filled with the kernels of
    the one calibration, as a single-frame run gives it. Without calibration data the
    time-averaged k-space's fully sampled centre is the ACS block (here: the same 16 lines for
    one frame); too few ACS lines is a clear error."""
    img, maps, full = phantom
    m0, cm = _sampling(2, 16)
    m1 = torch.roll(m0, 1, dims=1) | cm[None]
    mask = torch.cat([m0, m1])
    full2 = full.expand(2, -1, -1, -1)
    y = full2 * mask[:, None]
    cal = full[0] * cm
    k, info = grappa_kspace(y, mask, cal, cm)
    for t in range(2):
        kt, _ = grappa_kspace(y[t : t + 1], mask[t : t + 1], cal, cm)
        torch.testing.assert_close(k[t : t + 1], kt, rtol=0, atol=1e-6 * float(full.abs().max()))
    # one frame: the data's own fully sampled centre is the ACS block (the 16 lines and the
    # sampled line 32 that continues them)
    k1, info1 = grappa_kspace(y[:1], mask[:1])
    assert info1["calibration_source"] == "time-averaged k-space" and info1["acs_lines"] == 17
    cm17 = cm.clone()
    cm17[NY // 2 + 8] = True
    k17, _ = grappa_kspace(y[:1], mask[:1], full[0] * cm17, cm17)
    torch.testing.assert_close(k1, k17, rtol=0, atol=1e-6 * float(full.abs().max()))
    cal_t, cm_t = time_averaged_calibration(y, mask)
    assert int(cm_t.any(-1).sum()) == NY  # two complementary frames cover every line
    torch.testing.assert_close(cal_t, full[0], rtol=0, atol=1e-6 * float(full.abs().max()))
    m_small, cm_small = _sampling(3, 6)
    with pytest.raises(ProtocolError, match="data.calibration") as exc:
        grappa_kspace(full * m_small[:, None], m_small, full[0] * cm_small, cm_small)
    assert ">= 10" in str(exc.value) and "6 consecutive" in str(exc.value)


def test_line_patterns_and_combinations(phantom):
    lines = np.zeros((1, 12), dtype=bool)
    lines[0, ::3] = True  # 0 3 6 9
    groups = _line_patterns(lines, 4)
    assert groups[(-4, -1, 2, 5)] == [(0, 4)]
    assert groups[(-5, -2, 1, 4)] == [(0, 5)]
    assert groups[(-7, -4, -1, 2)] == [(0, 7)]  # one line above: the fourth source from below
    assert groups[(-10, -7, -4, -1)] == [(0, 10)]  # no line above: four from below
    img, maps, full = phantom
    from mridip.fft import ifft2c

    coil = ifft2c(full)
    torch.testing.assert_close(combine_coils(coil, maps, "sense"), img[None], rtol=0, atol=1e-5)
    torch.testing.assert_close(combine_coils(coil, None, "rss"), img.abs()[None].to(torch.complex64),
                               rtol=0, atol=1e-5)
    with pytest.raises(ProtocolError, match="combine"):
        combine_coils(coil, maps, "adaptive")
    # fully sampled: nothing to fill, the image is the object
    everything = torch.ones(1, NY, NX, dtype=torch.bool)
    x, info = grappa(CartesianSense(maps, everything), full, calibration=full[0],
                     calibration_mask=everything[0])
    assert info["patterns"] == 0
    torch.testing.assert_close(x, img[None], rtol=0, atol=1e-5)


def test_pipeline_protocol_and_radial_refusal(phantom):
    """reconstruct(): the runner hands RawData.calibration to grappa (same image as calling it),
    every image zero outside the maps' valid region; protocol options are validated; radial
    data are refused with a pointer to cg-sense."""
    from mridip.protocols import load_protocol
    from mridip.recon.baselines import METHODS
    from mridip.recon.pipeline import reconstruct

    img, maps, full = phantom
    mask, cm = _sampling(3, 16)
    raw = RawData(kspace=(full * mask[:, None])[None], kind="cartesian", mask=mask[None],
                  calibration=(full[0] * cm)[None], calibration_mask=cm[None])
    assert METHODS["grappa"] is grappa
    rec = reconstruct(raw, "grappa", coil_maps=maps, progress=False)
    x, _ = grappa(CartesianSense(maps, mask), full * mask[:, None], calibration=full[0] * cm, calibration_mask=cm,
                  kernel_size=(4, 5), lam=0.01)
    np.testing.assert_allclose(rec.image[0], x.numpy(), atol=1e-6)
    assert rec.method == "grappa" and rec.attrs["stop_reason"] == "closed form"
    rss = reconstruct(raw, "grappa", coil_maps=maps, progress=False,
                      overrides=["baseline.combine=\"rss\"", "baseline.kernel_size=[2, 3]"])
    assert np.all(np.isreal(rss.image)) and np.all(rss.image.real >= 0)
    with pytest.raises(ProtocolError, match="kernel_size"):
        reconstruct(raw, "grappa", coil_maps=maps, progress=False, overrides=["baseline.kernel_size=[4, 0]"])
    with pytest.raises(ProtocolError, match="baseline.kernel_size"):
        load_protocol("grappa", ["baseline.kernel_size=4"])
    with pytest.raises(ProtocolError, match="not a protocol option"):
        reconstruct(raw, "grappa", coil_maps=maps, progress=False, overrides=["baseline.calibration=1"])
    from mridip.data import Header

    traj = torch.zeros(1, 1, 2, 16)
    radial = RawData(kspace=torch.zeros(1, 1, C, 16, dtype=torch.complex64), kind="radial", trajectory=traj,
                     header=Header(recon_matrix=(16, 16, 1), trajectory="radial"))
    with pytest.raises(ProtocolError, match="Cartesian data; use cg-sense"):
        reconstruct(radial, "grappa", coil_maps=maps[:, :16, :16], progress=False)


@pytest.mark.slow
def test_compare_lists_grappa_from_an_ismrmrd_file(phantom, tmp_path):
    """A real ISMRMRD file (embedded ACS lines flagged calibration-and-imaging) through
    ``mridip compare``: grappa gets its row like every protocol and beats zero-filling."""
    from data_tools.writers import write_ismrmrd_cartesian
    from mridip.compare import compare

    img, maps, full = phantom
    mask, _ = _sampling(2, 16)
    path = write_ismrmrd_cartesian(tmp_path / "grappa.h5", full * mask[:, None], mask, calibration_lines=16)
    ref = tmp_path / "truth.npy"
    np.save(ref, img.numpy()[None, None])
    rows = compare(path, ["grappa", "gridding"], tmp_path / "out", reference=ref, progress=False, echo=False,
                   overrides=["coils.method=\"walsh\""])
    by = {r["protocol"]: r for r in rows}
    assert set(by) == {"grappa", "gridding"}
    assert by["grappa"]["nrmse"] < 0.5 * by["gridding"]["nrmse"], by
    assert "grappa" in (tmp_path / "out" / "results.md").read_text()


@pytest.mark.cuda
def test_cuda_matches_cpu(phantom):
    img, maps, full = phantom
    mask, cm = _sampling(3, 16, extra=(5, 40))
    y = full * mask[:, None]
    A = CartesianSense(maps, mask)
    x_cpu, _ = grappa(A, y, calibration=full[0] * cm, calibration_mask=cm)
    x_gpu, _ = grappa(A.to("cuda"), y.cuda(), calibration=(full[0] * cm).cuda(), calibration_mask=cm.cuda())
    assert x_gpu.is_cuda and x_gpu.dtype == torch.complex64
    # same complex128 fits and complex64 products on both: rounding differences only
    torch.testing.assert_close(x_gpu.cpu(), x_cpu, rtol=0, atol=1e-5 * float(x_cpu.abs().max()))
