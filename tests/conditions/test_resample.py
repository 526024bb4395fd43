"""The stateful resampler: chunking never changes the output, it matches an offline polyphase resampler
after its delay, keeps a tone's pitch and level, and rejects bad rates."""

import numpy as np
import pytest
from scipy.signal import resample_poly

from avatarlm.conditions.resample import StreamResampler


def tone(rate: int, seconds: float = 0.5, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def stream(rate: int, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    r = StreamResampler(rate)
    pieces = [r.process(c) for c in np.split(x, np.cumsum(sizes)[:-1])] if sizes else [r.process(x)]
    return np.concatenate([*pieces, r.flush()])


@pytest.mark.parametrize("rate", [44_100, 48_000, 22_050, 8_000])
def test_any_chunking_gives_identical_output(rate):
    x = tone(rate) + 0.05 * np.random.default_rng(0).standard_normal(int(rate * 0.5)).astype(np.float32)
    whole = stream(rate, x, [])
    rng = np.random.default_rng(1)
    sizes = list(rng.integers(1, 900, size=len(x)))
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), len(x)))]
    sizes.append(len(x) - sum(sizes))
    np.testing.assert_array_equal(stream(rate, x, sizes), whole)
    assert len(whole) == len(x) * 16_000 // rate


@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_matches_an_offline_resampler_after_its_delay(rate):
    x = tone(rate, 1.0, hz=300.0)
    r = StreamResampler(rate)
    y = np.concatenate([r.process(x), r.flush()])
    shift = int(round(r.delay_seconds * 16_000))
    ref = resample_poly(x, 16_000, rate)
    a, b = y[shift + 800 : 14_000], ref[800 : 14_000 - shift]  # away from both ends
    assert np.abs(a - b).max() < 2e-3
    assert np.sqrt(np.mean(a**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_bad_rates_and_shapes_are_refused():
    with pytest.raises(ValueError, match="sample rate"):
        StreamResampler(100)
    with pytest.raises(ValueError, match="1-D"):
        StreamResampler(44_100).process(np.zeros((2, 10)))
