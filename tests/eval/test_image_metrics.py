import numpy as np
import pytest

from avatarlm.eval.image_metrics import box_psnr, dark_area, flicker, psnr, spearman


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


def test_box_psnr_scores_the_padded_box_clipped_to_the_image():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    b = a.copy()
    b[10:12, 10:12] = 0  # a change inside the box
    b[30:, 30:] = 255  # and one far outside it
    inside = box_psnr(a, b, (10, 10, 12, 12), pad=4)
    assert inside == psnr(a[6:16, 6:16], b[6:16, 6:16])
    assert box_psnr(a, b, (0, 0, 2, 2), pad=4) == psnr(a[:6, :6], b[:6, :6]) == float("inf")  # clipped at 0
