"""Audio augmentation for synthetic speech: gain, pitch, speed, noise, reverberation, band-limiting.

Every op is a plain numpy function with explicit parameters; `augment` draws a random chain of them.
Only `change_speed` alters duration, and it rescales phoneme timings to match.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfiltfilt

from avatarlm.data.speech.utterance import SAMPLE_RATE, Phoneme, Utterance

NOISE_KINDS = ("white", "pink", "babble")


def _as_audio(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"audio must be a non-empty 1-D array, got shape {x.shape}")
    return x


def peak_limit(audio: np.ndarray, ceiling: float = 0.99) -> np.ndarray:
    """Scale down (never up) so that |audio| <= ceiling; float32 out."""
    x = np.nan_to_num(np.asarray(audio, dtype=np.float64))
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > ceiling:
        x = x * (ceiling / peak)
    return x.astype(np.float32)


def change_gain(audio: np.ndarray, db: float) -> np.ndarray:
    """Multiply by 10^(db/20), then peak-limit."""
    return peak_limit(_as_audio(audio) * 10.0 ** (db / 20.0))


def _resample_by(x: np.ndarray, factor: float) -> tuple[np.ndarray, float]:
    """Play x `factor` times faster by resampling; returns (audio, exact factor used)."""
    ratio = Fraction(factor).limit_denominator(200)  # new_length = old_length / ratio
    y = resample_poly(x, ratio.denominator, ratio.numerator)
    return y, float(ratio)


def time_stretch(audio: np.ndarray, factor: float, frame: int = 640, search: int = 160) -> np.ndarray:
    """WSOLA: change duration by 1/factor while keeping pitch (factor > 1 is shorter).

    Output frames are taken from the input near position t * factor, shifted by up to `search` samples
    to the offset that best continues the previous frame, and overlap-added with a Hann window.
    """
    x = _as_audio(audio)
    if factor <= 0:
        raise ValueError(f"time-stretch factor must be > 0, got {factor}")
    hop = frame // 2
    out_len = int(round(len(x) / factor))
    n_frames = out_len // hop + 2
    padded = np.pad(x, (search + frame, search + 2 * frame + int(n_frames * hop * factor)))
    window = np.hanning(frame)
    out = np.zeros(n_frames * hop + frame)
    norm = np.zeros_like(out)
    natural = search + frame  # where the previously copied frame would naturally continue
    for k in range(n_frames):
        target = int(round(k * hop * factor)) + search + frame
        if k == 0:
            best = target
        else:
            template = padded[natural : natural + hop]
            region = padded[target - search : target + search + hop]
            corr = np.correlate(region, template, mode="valid")
            energy = np.sqrt(np.convolve(region**2, np.ones(hop), mode="valid") + 1e-12)
            best = target - search + int(np.argmax(corr / energy))
        out[k * hop : k * hop + frame] += padded[best : best + frame] * window
        norm[k * hop : k * hop + frame] += window
        natural = best + hop
    return out[:out_len] / np.maximum(norm[:out_len], 1e-3)


def shift_pitch(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Raise pitch by `semitones` (negative lowers) keeping duration: resample, then WSOLA back."""
    x = _as_audio(audio)
    if abs(semitones) > 24:
        raise ValueError(f"semitones must be within +-24, got {semitones}")
    if semitones == 0:
        return peak_limit(x)
    faster, ratio = _resample_by(x, 2.0 ** (semitones / 12.0))
    y = time_stretch(faster, 1.0 / ratio)
    y = np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]
    return peak_limit(y)


def change_speed(utt: Utterance, factor: float, keep_pitch: bool = False) -> Utterance:
    """Speak `factor` times faster: duration / factor, every phoneme time / factor.

    Like tape speed (pitch moves with it) unless keep_pitch, which time-stretches instead.
    """
    if not 0.5 <= factor <= 2.0:
        raise ValueError(f"speed factor must be in [0.5, 2.0], got {factor}")
    x = _as_audio(utt.audio)
    if keep_pitch:
        y, used = time_stretch(x, factor), factor
    else:
        y, used = _resample_by(x, factor)
    scale = len(y) / len(x)  # exactly the duration ratio, so the phonemes still cover the audio
    phonemes = [Phoneme(p.symbol, p.start * scale, p.end * scale) for p in utt.phonemes]
    meta = {**utt.meta, "aug_speed": used, "aug_speed_keep_pitch": "yes" if keep_pitch else "no"}
    return replace(utt, audio=peak_limit(y), phonemes=phonemes, meta=meta)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    freqs = np.fft.rfftfreq(n)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n)


def _babble(x: np.ndarray, rng: np.random.Generator, talkers: int = 6) -> np.ndarray:
    """Crowd-like noise from the speech itself: reversed, circularly shifted copies summed."""
    rev = x[::-1]
    return np.sum([np.roll(rev, int(rng.integers(len(x)))) for _ in range(talkers)], axis=0)


def make_noise(audio: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise of `kind` (white, pink, babble) with the length of `audio`."""
    x = _as_audio(audio)
    if kind == "white":
        noise = rng.standard_normal(len(x))
    elif kind == "pink":
        noise = _pink(len(x), rng)
    elif kind == "babble":
        noise = _babble(x, rng)
    else:
        raise ValueError(f"unknown noise kind {kind!r}; known: {', '.join(NOISE_KINDS)}")
    power = float(np.mean(noise**2))
    return noise / np.sqrt(power) if power > 0 else noise


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator, kind: str = "white") -> np.ndarray:
    """Add noise so that power(audio) / power(noise) = snr_db (over the whole clip); peak-limited."""
    x = _as_audio(audio)
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    signal_power = float(np.mean(x**2))
    if signal_power == 0:
        return peak_limit(x)
    noise = make_noise(x, kind, rng) * np.sqrt(signal_power / 10.0 ** (snr_db / 10.0))
    return peak_limit(x + noise)


def room_impulse_response(
    rt60: float, rng: np.random.Generator, direct_to_reverb_db: float = 3.0, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Synthetic room response: a unit direct path, then noise decaying by 60 dB over rt60 seconds."""
    if not 0.05 <= rt60 <= 3.0:
        raise ValueError(f"rt60 must be in [0.05, 3.0] s, got {rt60}")
    n = int(rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB at rt60
    tail[: int(0.002 * sample_rate)] = 0.0  # first reflections arrive after ~2 ms
    tail *= np.sqrt(10.0 ** (-direct_to_reverb_db / 10.0) / (np.sum(tail**2) + 1e-12))
    tail[0] = 1.0
    return tail


def add_reverb(
    audio: np.ndarray, rt60: float, rng: np.random.Generator, direct_to_reverb_db: float = 3.0
) -> np.ndarray:
    """Convolve with a synthetic room response; same length (the tail past the end is cut)."""
    x = _as_audio(audio)
    wet = fftconvolve(x, room_impulse_response(rt60, rng, direct_to_reverb_db))[: len(x)]
    rms_in, rms_out = np.sqrt(np.mean(x**2)), np.sqrt(np.mean(wet**2))
    if rms_out > 0:
        wet *= rms_in / rms_out
    return peak_limit(wet)


def band_limit(
    audio: np.ndarray, low_hz: float, high_hz: float, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Zero-phase Butterworth band-pass (low_hz=0: low-pass only). Telephone: (300, 3400)."""
    x = _as_audio(audio)
    nyquist = sample_rate / 2
    if not 0 <= low_hz < high_hz <= nyquist:
        raise ValueError(f"need 0 <= low_hz < high_hz <= {nyquist}, got low_hz={low_hz}, high_hz={high_hz}")
    if low_hz > 0 and high_hz < nyquist:
        sos = butter(6, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    elif low_hz > 0:
        sos = butter(6, low_hz, btype="highpass", fs=sample_rate, output="sos")
    elif high_hz < nyquist:
        sos = butter(6, high_hz, btype="lowpass", fs=sample_rate, output="sos")
    else:
        return peak_limit(x)
    return peak_limit(sosfiltfilt(sos, x))


def augment(utt: Utterance, rng: np.random.Generator, strength: float = 1.0) -> Utterance:
    """A random chain of the ops above; each fires with probability 0.5 * strength (capped at 1).

    strength in [0, 2] also scales how far each op goes; 0 returns the input unchanged (re-limited).
    Applied ops and their parameters are recorded in meta under "aug_*" keys, the order in "aug_chain".
    """
    if not 0.0 <= strength <= 2.0:
        raise ValueError(f"strength must be in [0, 2], got {strength}")
    if utt.sample_rate != SAMPLE_RATE:
        raise ValueError(f"augment expects {SAMPLE_RATE} Hz audio, got {utt.sample_rate}")
    p = min(1.0, 0.5 * strength)
    s = strength
    out = replace(utt, meta=dict(utt.meta))
    chain: list[str] = []
    if rng.random() < p:
        factor = float(np.exp(rng.uniform(-0.15, 0.15) * s))
        out = change_speed(out, factor, keep_pitch=bool(rng.random() < 0.5))
        chain.append("speed")
    audio: np.ndarray = out.audio
    meta = out.meta
    if rng.random() < p:
        meta["aug_pitch_semitones"] = semitones = float(rng.uniform(-3.0, 3.0) * s)
        audio = shift_pitch(audio, semitones)
        chain.append("pitch")
    if rng.random() < p:
        meta["aug_gain_db"] = db = float(rng.uniform(-12.0, 6.0) * s)
        audio = change_gain(audio, db)
        chain.append("gain")
    if rng.random() < p:
        meta["aug_reverb_rt60"] = rt60 = float(np.clip(rng.uniform(0.1, 0.6) * s, 0.05, 3.0))
        audio = add_reverb(audio, rt60, rng)
        chain.append("reverb")
    if rng.random() < p:
        low, high = (300.0, 3400.0) if rng.random() < 0.5 else (0.0, float(rng.uniform(2500.0, 6000.0)))
        meta["aug_band"] = f"{low:.0f}-{high:.0f}"
        audio = band_limit(audio, low, high)
        chain.append("band")
    if rng.random() < p:
        kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
        meta["aug_noise_snr_db"] = snr = float(rng.uniform(35.0, 45.0) - 15.0 * s)
        meta["aug_noise_kind"] = kind
        audio = add_noise(audio, snr, rng, kind)
        chain.append("noise")
    meta["aug_chain"] = ",".join(chain)
    meta["aug_strength"] = float(strength)
    return replace(out, audio=peak_limit(audio), meta=meta)
