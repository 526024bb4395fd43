import time

import numpy as np
import pytest

from avatarlm.data.speech import align
from avatarlm.data.speech.espeak import synthesize
from avatarlm.data.speech.utterance import SAMPLE_RATE

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs back into the forest to sleep."


@pytest.fixture(scope="module")
def slow_and_fast():
    return synthesize(TEXT, "en", rate_wpm=130), synthesize(TEXT, "en", rate_wpm=190)


def _start_errors_ms(estimated, truth):
    assert [p.symbol for p in estimated] == [p.symbol for p in truth]
    return 1000 * np.abs(np.array([p.start for p in estimated]) - np.array([p.start for p in truth]))


def test_mel_filterbank_is_triangular_and_ordered():
    fb = align.mel_filterbank()
    assert fb.shape == (align.N_MELS, align.N_FFT // 2 + 1)
    assert fb.min() >= 0 and np.all(fb.max(axis=1) > 0.5)  # no empty filter, peaks near 1
    assert np.all(np.diff(np.argmax(fb, axis=1)) >= 0)


def test_dtw_recovers_a_known_warp():
    ref = np.sin(np.linspace(0, 6 * np.pi, 80))[:, None]
    warp = np.linspace(0, 1, 120) ** 1.3  # target runs slow, then fast
    tgt = np.sin(6 * np.pi * warp)[:, None]
    cost = np.abs(ref - tgt.T)
    rows, cols = align.dtw_path(cost, band=40)
    assert (rows[0], cols[0]) == (0, 0) and (rows[-1], cols[-1]) == (79, 119)
    assert np.all(np.diff(rows) >= 0) and np.all(np.diff(cols) >= 0)
    assert np.all(np.diff(rows) + np.diff(cols) >= 1)
    truth_col = np.interp(np.linspace(0, 1, 80), warp, np.arange(120))
    matched = np.array([cols[rows == i].mean() for i in range(80)])
    assert np.median(np.abs(matched - truth_col)) < 2.0


def _naive_dtw_cost(cost: np.ndarray, penalty: float) -> float:
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            step = min(acc[i - 1, j - 1], acc[i - 1, j] + penalty, acc[i, j - 1] + penalty)
            acc[i, j] = cost[i - 1, j - 1] + (0.0 if (i, j) == (1, 1) else step)
    return float(acc[n, m])


@pytest.mark.parametrize("penalty", [0.0, 0.3])
def test_dtw_path_is_optimal(penalty):
    cost = np.random.default_rng(2).random((17, 23))
    rows, cols = align.dtw_path(cost, step_penalty=penalty)
    n_straight = int(np.sum((np.diff(rows) == 0) | (np.diff(cols) == 0)))
    path_cost = cost[rows, cols].sum() + penalty * n_straight
    assert path_cost == pytest.approx(_naive_dtw_cost(cost, penalty))


def test_dtw_stays_inside_the_band():
    cost = np.random.default_rng(0).random((60, 90))
    rows, cols = align.dtw_path(cost, band=8)
    centre = rows * (89 / 59)
    assert np.all(np.abs(cols - centre) <= 9)


def test_speech_bounds_finds_the_tone_inside_silence():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    audio = np.where((t > 0.3) & (t < 0.7), 0.5 * np.sin(2 * np.pi * 220 * t), 0.0)
    audio = audio + 1e-4 * np.random.default_rng(0).standard_normal(len(t))
    start, end = align.speech_bounds(audio)
    assert abs(start * align.FRAME_S - 0.3) < 0.03 and abs(end * align.FRAME_S - 0.7) < 0.03


@pytest.mark.parametrize("direction", ["slow_to_fast", "fast_to_slow"])
def test_alignment_to_a_rate_changed_copy_is_accurate(slow_and_fast, direction):
    slow, fast = slow_and_fast
    ref, tgt = (slow, fast) if direction == "slow_to_fast" else (fast, slow)
    errors = _start_errors_ms(align.align_by_reference(tgt.audio, ref), tgt.phonemes)
    assert np.median(errors) < 20.0
    assert np.percentile(errors, 90) < 40.0


def test_alignment_survives_extra_silence_and_noise(slow_and_fast):
    slow, fast = slow_and_fast
    rng = np.random.default_rng(1)
    lead, tail = int(0.6 * SAMPLE_RATE), int(0.4 * SAMPLE_RATE)
    padded = np.concatenate([np.zeros(lead), slow.audio, np.zeros(tail)]).astype(np.float32)
    padded += (3e-4 * rng.standard_normal(len(padded))).astype(np.float32)
    phonemes = align.align_by_reference(padded, fast)
    truth_starts = np.array([p.start for p in slow.phonemes[1:]]) + lead / SAMPLE_RATE
    errors = 1000 * np.abs(np.array([p.start for p in phonemes[1:]]) - truth_starts)
    assert np.median(errors) < 25.0
    assert phonemes[0].start == 0.0 and phonemes[-1].end == pytest.approx(len(padded) / SAMPLE_RATE)


def test_five_seconds_align_well_under_a_second(slow_and_fast):
    slow, fast = slow_and_fast
    assert slow.duration > 5.0
    align.align_by_reference(slow.audio, fast)  # warm-up
    start = time.perf_counter()
    align.align_by_reference(slow.audio, fast)
    assert time.perf_counter() - start < 0.5


def test_phonemes_for_covers_the_audio_in_order(slow_and_fast):
    slow, _ = slow_and_fast
    phonemes = align.phonemes_for(slow.audio, TEXT, "en")
    starts, ends = np.array([p.start for p in phonemes]), np.array([p.end for p in phonemes])
    assert starts[0] == 0.0 and ends[-1] == pytest.approx(slow.duration)
    assert np.all(np.diff(starts) >= 0) and np.all(ends >= starts)
    assert np.allclose(starts[1:], ends[:-1])
    assert np.median(_start_errors_ms(phonemes, slow.phonemes)) < 20.0


def test_bad_input_is_rejected(slow_and_fast):
    slow, _ = slow_and_fast
    with pytest.raises(ValueError, match="too short"):
        align.align_by_reference(np.zeros(10, np.float32), slow)
    with pytest.raises(ValueError, match="band_fraction"):
        align.align_by_reference(slow.audio, slow, band_fraction=0.0)
    with pytest.raises(ValueError, match="text"):
        align.phonemes_for(slow.audio, "   ", "en")
