import numpy as np
import pytest

from avatarlm.data.speech import augment as aug
from avatarlm.data.speech.utterance import SAMPLE_RATE, Phoneme, Utterance

SR = SAMPLE_RATE


def _tone(f0: float = 200.0, seconds: float = 1.5, harmonics: int = 5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    wave = np.sum([np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, harmonics + 1)], axis=0)
    return (0.15 * wave).astype(np.float32)


def _dominant_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / SR)[np.argmax(spectrum)])


def _band_energy(audio: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SR)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


@pytest.fixture
def utt() -> Utterance:
    rng = np.random.default_rng(0)
    audio = (_tone(seconds=2.0) + 0.02 * rng.standard_normal(2 * SR)).astype(np.float32)
    phonemes = [
        Phoneme("_", 0.0, 0.3),
        Phoneme("a", 0.3, 1.1),
        Phoneme("m", 1.1, 1.6),
        Phoneme("_", 1.6, 2.0),
    ]
    return Utterance(audio, phonemes, "am", "en", "espeak", "test")


def test_gain_scales_by_decibels():
    x = _tone()
    y = aug.change_gain(x, -6.0)
    assert np.abs(y).max() / np.abs(x).max() == pytest.approx(10 ** (-6 / 20), rel=1e-4)
    loud = aug.change_gain(x, 30.0)
    assert loud.dtype == np.float32 and np.abs(loud).max() <= 1.0


@pytest.mark.parametrize("factor", [1.25, 0.8])
def test_speed_change_scales_audio_and_phoneme_times_alike(utt, factor):
    out = aug.change_speed(utt, factor)
    assert len(out.audio) == pytest.approx(len(utt.audio) / factor, abs=2)
    for before, after in zip(utt.phonemes, out.phonemes, strict=True):
        assert after.symbol == before.symbol
        assert after.start == pytest.approx(before.start / factor, abs=1e-3)
        assert after.end == pytest.approx(before.end / factor, abs=1e-3)
    assert out.phonemes[-1].end == pytest.approx(out.duration, abs=1e-4)
    assert out.meta["aug_speed"] == pytest.approx(factor)
    assert _dominant_hz(out.audio) == pytest.approx(200.0 * factor, rel=0.02)  # tape-style: pitch follows


def test_speed_change_can_keep_pitch(utt):
    out = aug.change_speed(utt, 1.25, keep_pitch=True)
    assert len(out.audio) == pytest.approx(len(utt.audio) / 1.25, abs=2)
    assert _dominant_hz(out.audio) == pytest.approx(200.0, rel=0.02)
    assert out.phonemes[2].start == pytest.approx(1.1 / 1.25, abs=1e-3)


@pytest.mark.parametrize("semitones", [-4.0, 3.0, 7.0])
def test_pitch_shift_keeps_duration_and_moves_f0(semitones):
    x = _tone()
    y = aug.shift_pitch(x, semitones)
    assert len(y) == len(x)
    assert _dominant_hz(y) == pytest.approx(200.0 * 2 ** (semitones / 12), rel=0.015)
    # The shifted tone keeps its level over the whole clip (no dropouts from the overlap-add).
    rms = np.sqrt(np.convolve(y[800:-800] ** 2, np.ones(800) / 800, mode="valid"))
    assert rms.min() > 0.5 * rms.max()


@pytest.mark.parametrize("kind", aug.NOISE_KINDS)
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_noise_is_added_at_the_requested_snr(utt, kind, snr_db):
    x = utt.audio.astype(np.float64) * 0.5
    y = aug.add_noise(x, snr_db, np.random.default_rng(3), kind=kind).astype(np.float64)
    scale = 1.0
    if np.abs(y).max() >= 0.98:  # the limiter scaled the mix down: undo it before measuring
        scale = float(np.dot(y, x) / np.dot(x, x))
    noise = y / scale - x
    measured = 10 * np.log10(np.mean(x**2) / np.mean(noise**2))
    assert measured == pytest.approx(snr_db, abs=0.5)


def test_pink_noise_has_more_low_than_high_energy():
    noise = aug.make_noise(np.zeros(SR), "pink", np.random.default_rng(0))
    assert _band_energy(noise, 50, 500) > 5 * _band_energy(noise, 4000, 4450)


@pytest.mark.parametrize(("low", "high"), [(300.0, 3400.0), (0.0, 2000.0)])
def test_band_limit_removes_energy_outside_the_band(low, high):
    x = np.random.default_rng(1).standard_normal(SR).astype(np.float32) * 0.1
    y = aug.band_limit(x, low, high)
    assert len(y) == len(x)
    assert _band_energy(y, high * 1.3, SR / 2) < 1e-3 * _band_energy(x, high * 1.3, SR / 2)
    assert _band_energy(y, low * 1.2 + 100, high * 0.8) > 0.8 * _band_energy(x, low * 1.2 + 100, high * 0.8)
    if low > 0:
        assert _band_energy(y, 0, low / 1.5) < 1e-2 * _band_energy(x, 0, low / 1.5)


def test_reverb_decays_at_rt60_and_keeps_length():
    rng = np.random.default_rng(0)
    ir = aug.room_impulse_response(0.5, rng, direct_to_reverb_db=0.0)
    early = np.mean(ir[int(0.01 * SR) : int(0.05 * SR)] ** 2)
    late = np.mean(ir[int(0.46 * SR) : int(0.5 * SR)] ** 2)
    assert 10 * np.log10(early / late) == pytest.approx(60 * 0.45 / 0.5, abs=4.0)
    click = np.zeros(SR, np.float32)
    click[100] = 0.5
    wet = aug.add_reverb(click, 0.4, rng)
    assert len(wet) == len(click) and np.abs(wet[200 : int(0.3 * SR)]).max() > 0.01


def test_augment_is_deterministic_per_seed_and_records_its_chain(utt):
    a = aug.augment(utt, np.random.default_rng(7), strength=2.0)
    b = aug.augment(utt, np.random.default_rng(7), strength=2.0)
    c = aug.augment(utt, np.random.default_rng(8), strength=2.0)
    assert np.array_equal(a.audio, b.audio) and a.meta == b.meta
    assert not (len(a.audio) == len(c.audio) and np.array_equal(a.audio, c.audio))
    assert a.meta["aug_chain"] == "speed,pitch,gain,reverb,band,noise"  # strength 2: every op fires
    assert utt.meta == {}  # the input is untouched


def test_augment_output_is_valid_audio_with_consistent_phonemes(utt):
    for seed in range(6):
        out = aug.augment(utt, np.random.default_rng(seed), strength=1.0)
        assert out.audio.dtype == np.float32 and np.abs(out.audio).max() <= 1.0
        assert out.sample_rate == SR and np.isfinite(out.audio).all()
        assert out.phonemes[-1].end == pytest.approx(out.duration, abs=1e-3)
        chain = str(out.meta["aug_chain"])
        assert ("speed" in chain) == ("aug_speed" in out.meta)
        assert ("noise" in chain) == ("aug_noise_snr_db" in out.meta)


def test_zero_strength_changes_nothing(utt):
    out = aug.augment(utt, np.random.default_rng(0), strength=0.0)
    assert np.array_equal(out.audio, utt.audio) and out.meta["aug_chain"] == ""


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda u: aug.change_speed(u, 3.0), "speed factor"),
        (lambda u: aug.add_noise(u.audio, 10.0, np.random.default_rng(0), kind="brown"), "noise kind"),
        (lambda u: aug.add_reverb(u.audio, 0.0, np.random.default_rng(0)), "rt60"),
        (lambda u: aug.band_limit(u.audio, 3400.0, 300.0), "low_hz"),
        (lambda u: aug.shift_pitch(u.audio, 40.0), "semitones"),
        (lambda u: aug.augment(u, np.random.default_rng(0), strength=-1.0), "strength"),
        (lambda u: aug.change_gain(np.zeros((2, 2)), 1.0), "1-D"),
    ],
)
def test_bad_arguments_are_rejected(utt, call, match):
    with pytest.raises(ValueError, match=match):
        call(utt)
