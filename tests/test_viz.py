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
