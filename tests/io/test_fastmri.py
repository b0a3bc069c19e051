"""fastMRI reader: files laid out as fastMRI's (kspace, ismrmrd_header bytes, mask, rss)."""

import h5py
import numpy as np

from data_tools.writers import write_fastmri
from mridip.io import load_raw, read_fastmri


def _centred_ifft(k, axis):
    return np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(k, axes=axis), axis=axis, norm="ortho"), axes=axis)


def test_round_trip_with_reference_and_column_mask(tmp_path):
    rng = np.random.default_rng(0)
    S, C, H, W = 2, 3, 12, 10
    cols = np.zeros(W, bool)
    cols[[0, 3, 4, 5, 6, 8]] = True
    k = ((rng.standard_normal((S, C, H, W)) + 1j * rng.standard_normal((S, C, H, W))) * cols).astype(np.complex64)
    ref = rng.random((S, H, W)).astype(np.float32)
    p = write_fastmri(tmp_path / "f.h5", k, reference_rss=ref, mask=cols)
    with h5py.File(p) as f:  # fastMRI's layout: the header is a scalar dataset of bytes
        assert isinstance(f["ismrmrd_header"][()], bytes)
        assert f["mask"].shape == (W,)
    raw = load_raw(p)
    assert raw.format == "fastmri" and tuple(raw.kspace.shape) == (S, 1, C, H, W)
    assert np.array_equal(raw.kspace[:, 0].numpy(), k)  # no transform: bit-exact
    assert np.array_equal(raw.mask[:, 0].numpy(), np.broadcast_to(cols, (S, H, W)))
    assert np.array_equal(raw.reference[:, 0], ref)
    assert raw.header.field_strength_t == 3.0


def test_oversampled_readout_cropped_like_fastmri(tmp_path):
    """Height 2 x recon x: the reader's crop equals fastMRI's centre crop of the image."""
    rng = np.random.default_rng(1)
    S, C, H, W = 1, 2, 16, 6
    k = (rng.standard_normal((S, C, H, W)) + 1j * rng.standard_normal((S, C, H, W))).astype(np.complex64)
    img = _centred_ifft(_centred_ifft(k, -2), -1)
    crop = img[:, :, 4:12]  # fastMRI center_crop: from (16 - 8) // 2
    rss = np.sqrt((np.abs(crop) ** 2).sum(1)).astype(np.float32)
    raw = read_fastmri(write_fastmri(tmp_path / "f.h5", k, reference_rss=rss))
    assert tuple(raw.kspace.shape) == (S, 1, C, 8, W)
    assert raw.header.readout_oversampling == 2.0
    k2 = raw.kspace[:, 0].numpy()
    img2 = _centred_ifft(_centred_ifft(k2, -2), -1)
    # float32 FFT round trips of O(1) values: agreement to ~1e-6, 1e-5 leaves margin
    np.testing.assert_allclose(img2, crop, atol=1e-5)
    np.testing.assert_allclose(np.sqrt((np.abs(img2) ** 2).sum(1)), raw.reference[:, 0], atol=1e-5)
