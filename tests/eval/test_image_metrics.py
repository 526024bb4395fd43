import numpy as np
import pytest

from avatarlm.eval.image_metrics import dark_area, flicker, psnr, spearman


def test_psnr_known_values():
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 1) == pytest.approx(20 * np.log10(255), abs=1e-9)
    with pytest.raises(ValueError):
        psnr(a, a[:2])


def test_flicker_counts_only_change_beyond_the_truth():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 200, (5, 8, 8, 3)).astype(np.uint8)
    assert flicker(truth, truth) == 0
    assert flicker(truth + 10, truth) == 0  # a constant offset does not flicker
    noisy = (truth + rng.integers(0, 20, truth.shape)).astype(np.uint8)
    assert flicker(noisy, truth) > 5


def test_dark_area_and_spearman():
    frame = np.full((10, 10, 3), 200, np.uint8)
    frame[2:4, 2:5] = 10
    assert dark_area(frame, (0, 0, 10, 10)) == 6 and dark_area(frame, (5, 5, 10, 10)) == 0
    assert spearman(np.arange(5), np.arange(5) ** 2) == pytest.approx(1.0)
    assert spearman(np.arange(5), -np.arange(5)) == pytest.approx(-1.0)
