import numpy as np
import pytest
import torch

from avatarlm.conditions.mel import HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, LogMel, _hz_to_mel, mel_filterbank


def test_filterbank_shape_and_no_empty_filter():
    fb = mel_filterbank(N_MELS, N_FFT, SAMPLE_RATE)
    assert fb.shape == (N_MELS, N_FFT // 2 + 1)
    assert fb.min() >= 0 and fb.max(axis=1).min() > 0.4
    assert np.all(np.diff(np.argmax(fb, axis=1)) >= 0)


def test_bad_filterbank_arguments_raise():
    with pytest.raises(ValueError, match="f_max"):
        mel_filterbank(80, 512, 16000, f_max=9000.0)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 4000.0])
def test_a_tone_peaks_in_the_mel_band_centred_on_it(freq):
    t = torch.arange(SAMPLE_RATE) / SAMPLE_RATE
    mel = LogMel()(0.5 * torch.sin(2 * np.pi * freq * t))
    peak = int(mel[20:].mean(0).argmax())
    centres = np.linspace(_hz_to_mel(20.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2)[1:-1]
    expected = int(np.argmin(np.abs(centres - _hz_to_mel(freq))))
    assert abs(peak - expected) <= 1


def test_framing_is_causal_and_counts_whole_hops():
    torch.manual_seed(0)
    audio = torch.randn(1, 16_000 + 77) * 0.2
    log_mel = LogMel()
    base = log_mel(audio)
    assert base.shape == (1, audio.shape[1] // HOP_LENGTH, N_MELS)
    m = 40
    end = (m + 1) * HOP_LENGTH  # frame m reads samples [end - 400, end)
    later = audio.clone()
    later[:, end:] += 1.0
    assert torch.equal(log_mel(later)[:, : m + 1], base[:, : m + 1])
    inside = audio.clone()
    inside[:, end - 1] += 1.0
    assert not torch.equal(log_mel(inside)[:, m], base[:, m])
    earliest = audio.clone()
    earliest[:, end - 401] += 1.0  # just before the 25 ms window
    assert torch.equal(log_mel(earliest)[:, m], base[:, m])
