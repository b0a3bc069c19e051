"""Tests of mridip/viz.py: every figure is written, readable and of the expected layout."""

import numpy as np
import pytest
import torch
from PIL import Image

from data_tools.phantom import cardiac_cine_phantom
from mridip.errors import ShapeError
from mridip.viz import save_cine_gif, save_error_maps, save_frame_grid, save_xt_profile


@pytest.fixture(scope="module")
def cine():
    images, _ = cardiac_cine_phantom(32, 6)
    return images


def _png_size(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        return im.size


def test_frame_grid_single_and_dict(tmp_path, cine):
    one = save_frame_grid(cine, tmp_path / "one.png")
    w1, h1 = _png_size(one)
    noisy = cine + 0.02 * np.random.default_rng(0).standard_normal(cine.shape)
    two = save_frame_grid({"truth": cine, "noisy": torch.from_numpy(noisy)}, tmp_path / "sub" / "two.png")
    w2, h2 = _png_size(two)
    # one row per method: the two-row grid is as wide and about twice as tall
    assert w2 == w1 and 1.6 < h2 / h1 < 2.4


def test_frame_grid_subsets_long_series(tmp_path):
    images, _ = cardiac_cine_phantom(16, 30)
    narrow = _png_size(save_frame_grid(images, tmp_path / "a.png", columns=4))
    wide = _png_size(save_frame_grid(images, tmp_path / "b.png"))  # default 8 columns
    assert wide[0] > 1.6 * narrow[0]


def test_cine_gif_has_one_frame_per_image(tmp_path, cine):
    path = save_cine_gif(cine, tmp_path / "cine.gif", fps=12)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == cine.shape[0]
        assert gif.info["duration"] == 80  # 83 ms rounded to the GIF's 1/100 s
        # small images are enlarged by an integer factor to >= 128 pixels
        assert gif.size == (256, 256)
        gif.seek(0)
        first = np.asarray(gif.convert("L"), dtype=float)
        gif.seek(cine.shape[0] // 3)
        systole = np.asarray(gif.convert("L"), dtype=float)
    assert first.max() > 200  # bright blood, not a blank frame
    assert np.abs(first - systole).mean() > 1.0  # the heart moves between frames


def test_xt_profile_and_error_maps(tmp_path, cine):
    rng = np.random.default_rng(1)
    recon = 3.0 * cine + 0.05 * rng.standard_normal(cine.shape)
    w_row, _ = _png_size(save_xt_profile({"a": cine, "b": recon}, tmp_path / "xt.png"))
    w_col, _ = _png_size(save_xt_profile({"a": cine}, tmp_path / "yt.png", column=10))
    assert w_row > w_col  # two panels versus one
    path = save_error_maps({"noisy": recon, "exact": 0.5 * cine}, cine, tmp_path / "err.png", frame=2)
    assert _png_size(path)[0] > 300


def test_bad_input_raises_shape_error(tmp_path, cine):
    with pytest.raises(ShapeError, match="T, Y, X"):
        save_frame_grid(np.zeros((2, 3, 4, 5)), tmp_path / "x.png")
    with pytest.raises(ShapeError, match="same"):
        save_frame_grid({"a": cine, "b": cine[:, :16]}, tmp_path / "x.png")
    with pytest.raises(ShapeError, match="row"):
        save_xt_profile({"a": cine}, tmp_path / "x.png", row=99)
    with pytest.raises(ShapeError, match="frame"):
        save_error_maps({"a": cine}, cine, tmp_path / "x.png", frame=10)


def test_frames_are_evenly_spaced():
    from mridip.viz import _frame_subset

    # 12 frames in 8 columns used to give 0, 2, 3, 5, 6, 8, 9, 11 (rounded linspace)
    for frames, columns in ((12, None), (20, None), (30, 4), (7, None), (9, 8), (3, 8)):
        idx = _frame_subset(frames, columns)
        assert idx[0] == 0 and idx[-1] < frames and len(idx) <= (columns or 8)
        assert len(set(np.diff(idx))) <= 1, (frames, columns, idx)  # one step
    assert list(_frame_subset(12, None)) == [0, 2, 4, 6, 8, 10]
    assert list(_frame_subset(7, None)) == list(range(7))


def test_error_maps_name_the_frame_in_every_panel(cine):
    from mridip.viz import error_maps_figure

    noisy = cine + 0.05 * np.random.default_rng(1).standard_normal(cine.shape)
    fig = error_maps_figure({"noisy": noisy, "same": cine}, cine, frame=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 5  # reference, two images, two error maps
    assert all("frame 2" in t for t in titles), titles
    # the NRMSE printed is that frame's
    ref = np.abs(cine[2]) / np.abs(cine).max()
    x = np.abs(noisy)
    a = float((x * np.abs(cine) / np.abs(cine).max()).sum() / (x * x).sum())
    want = np.linalg.norm(a * x[2] - ref) / np.linalg.norm(ref)
    got = float([t for t in titles if t.startswith("|error|")][0].split("NRMSE ")[1])
    assert got == pytest.approx(want, abs=2e-3)


def test_xt_profile_marks_its_line_on_the_first_image(cine):
    from mridip.viz import xt_profile_figure

    fig = xt_profile_figure({"reference": cine, "other": cine}, row=11)
    first = fig.axes[0]
    assert "reference" in first.get_title() and "row 11" in first.get_title()
    lines = [ln for ln in first.get_lines() if np.allclose(ln.get_ydata(), 11)]
    assert len(lines) == 1  # one horizontal line at the profile's row
    assert len(fig.axes) == 3  # the marked image and two profiles
    fig = xt_profile_figure({"reference": cine}, column=5)
    assert any(np.allclose(ln.get_xdata(), 5) for ln in fig.axes[0].get_lines())
    assert len(xt_profile_figure({"reference": cine}, row=3, mark=None).axes) == 1
