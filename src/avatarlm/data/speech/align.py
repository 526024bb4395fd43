"""Forced alignment of any TTS audio to phonemes by DTW against an espeak-ng rendering of the same text.

espeak-ng reports exact phoneme timings for its own audio. Both signals become log-mel frames (own STFT and
mel filterbank, 10 ms hop), leading/trailing silence is cut by an energy VAD, a band-constrained DTW maps
reference frames onto target frames, and every espeak phoneme boundary is carried through that path.
"""

from __future__ import annotations

import numpy as np

from avatarlm.conditions.mel import mel_filterbank as shared_mel_filterbank
from avatarlm.data.speech.utterance import SAMPLE_RATE, Phoneme, Utterance

HOP = 160  # 10 ms at 16 kHz
WIN = 400  # 25 ms
N_FFT = 512
N_MELS = 40
FRAME_S = HOP / SAMPLE_RATE


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular mel filters, shape (n_mels, n_fft // 2 + 1), 20 Hz to Nyquist (alignment defaults)."""
    return shared_mel_filterbank(n_mels, n_fft, sample_rate)


def power_spectrogram(audio: np.ndarray) -> np.ndarray:
    """Hann-windowed |STFT|^2, frames centred every HOP samples, shape (frames, N_FFT // 2 + 1)."""
    x = np.asarray(audio, dtype=np.float64).ravel()
    n_frames = max(1, int(np.ceil(len(x) / HOP)))
    padded = np.pad(x, (WIN // 2, WIN // 2 + n_frames * HOP))
    frames = np.lib.stride_tricks.sliding_window_view(padded, WIN)[::HOP][:n_frames]
    spec = np.fft.rfft(frames * np.hanning(WIN), n=N_FFT, axis=1)
    return spec.real**2 + spec.imag**2


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Log mel energies, shape (frames, N_MELS)."""
    return np.log(power_spectrogram(audio) @ mel_filterbank().T + 1e-10)


def frame_energy_db(audio: np.ndarray) -> np.ndarray:
    """Per-frame energy in dB (same framing as the spectrogram)."""
    return np.asarray(10.0 * np.log10(power_spectrogram(audio).sum(axis=1) / WIN + 1e-12))


def speech_bounds(audio: np.ndarray, floor_db: float = 35.0) -> tuple[int, int]:
    """First and one-past-last frame whose energy is within floor_db of the loudest frame (energy VAD)."""
    energy = frame_energy_db(audio)
    voiced = np.flatnonzero(energy > energy.max() - floor_db)
    if len(voiced) == 0:
        return 0, len(energy)
    return int(voiced[0]), int(voiced[-1]) + 1


def alignment_features(audio: np.ndarray) -> np.ndarray:
    """Frames for DTW: log mel energies z-scored per band over the utterance (removes voice colouring).

    On Piper-vs-espeak this matched or beat MFCCs (with/without deltas, 13 or 20 coefficients).
    """
    feats = log_mel(audio)
    return (feats - feats.mean(0)) / (feats.std(0) + 1e-8)


def dtw_path(
    cost: np.ndarray, band: int | None = None, step_penalty: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost monotonic path from (0, 0) to (N-1, M-1) through cost (N, M).

    Steps are (1, 0), (0, 1), (1, 1); the first two pay step_penalty extra. Cells further than `band`
    frames from the straight diagonal are excluded (Sakoe-Chiba). Each row is solved in one vectorised
    pass: D[i, j] = min_k (A[k] + sum C[i, k..j] + (j-k)p) is a cumulative sum plus a running minimum.
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        raise ValueError(f"cost matrix must be non-empty, got shape {cost.shape}")
    band = max(n, m) if band is None else max(int(band), 1)
    centre = np.arange(n) * ((m - 1) / max(n - 1, 1))
    lo = np.clip(np.floor(centre - band), 0, m - 1).astype(int)
    hi = np.clip(np.ceil(centre + band) + 1, 1, m).astype(int)
    hi[-1] = m
    lo[0] = 0
    acc = np.full((n, m), np.inf)
    prev = np.full(m + 1, np.inf)  # prev[j + 1] = acc[i - 1, j]; prev[0] is the virtual left border
    for i in range(n):
        a, b = lo[i], hi[i]
        row_cost = cost[i, a:b] + step_penalty
        if i == 0:
            from_above = np.full(b - a, np.inf)
            from_above[0] = 0.0  # the path starts here: D[0, 0] = cost[0, 0]
        else:
            from_above = np.minimum(prev[a:b], prev[a + 1 : b + 1] + step_penalty)
        cum = np.cumsum(row_cost)
        shifted = np.concatenate(([0.0], cum[:-1]))
        acc[i, a:b] = cum - step_penalty + np.minimum.accumulate(from_above - shifted)
        prev = np.concatenate(([np.inf], acc[i]))
    return _backtrack(acc, step_penalty)


def _backtrack(acc: np.ndarray, step_penalty: float) -> tuple[np.ndarray, np.ndarray]:
    i, j = acc.shape[0] - 1, acc.shape[1] - 1
    if not np.isfinite(acc[i, j]):
        raise RuntimeError("DTW found no path inside the band; widen the band")
    rows, cols = [i], [j]
    while i > 0 or j > 0:
        diag = acc[i - 1, j - 1] if i > 0 and j > 0 else np.inf
        up = acc[i - 1, j] + step_penalty if i > 0 else np.inf
        left = acc[i, j - 1] + step_penalty if j > 0 else np.inf
        if diag <= up and diag <= left:
            i, j = i - 1, j - 1
        elif up <= left:
            i -= 1
        else:
            j -= 1
        rows.append(i)
        cols.append(j)
    return np.array(rows[::-1]), np.array(cols[::-1])


def _frame_map(path_ref: np.ndarray, path_tgt: np.ndarray, n_ref: int) -> np.ndarray:
    """For each reference frame, the mean target frame it was matched to (monotonic)."""
    sums = np.bincount(path_ref, weights=path_tgt, minlength=n_ref)
    counts = np.bincount(path_ref, minlength=n_ref)
    return np.maximum.accumulate(sums / np.maximum(counts, 1))


def _warp_times(
    times: np.ndarray,
    ref_span: tuple[float, float],
    tgt_span: tuple[float, float],
    ref_dur: float,
    tgt_dur: float,
    frame_map: np.ndarray,
) -> np.ndarray:
    """Carry reference times to the target: through the DTW map inside speech, linearly in the silences."""
    r0, r1 = ref_span
    t0, t1 = tgt_span
    out = np.empty_like(times)
    head, tail = times < r0, times > r1
    out[head] = times[head] * (t0 / r0) if r0 > 0 else t0
    out[tail] = t1 + (times[tail] - r1) * ((tgt_dur - t1) / max(ref_dur - r1, 1e-9))
    mid = ~(head | tail)
    ref_frames = np.arange(len(frame_map))
    # Frame k is centred at r0 + k * FRAME_S; interpolate the frame map at the boundary's fractional frame.
    pos = (times[mid] - r0) / FRAME_S
    out[mid] = t0 + np.interp(pos, ref_frames, frame_map) * FRAME_S
    return np.clip(out, 0.0, tgt_dur)


def align_by_reference(
    target_audio: np.ndarray, reference: Utterance, band_fraction: float = 0.2
) -> list[Phoneme]:
    """Phonemes of `reference` (espeak audio with known timings) retimed onto `target_audio` (16 kHz).

    The first phoneme starts at 0 and the last ends at the target's end, so the result covers it fully.
    """
    target = np.asarray(target_audio, dtype=np.float32).ravel()
    if reference.sample_rate != SAMPLE_RATE:
        raise ValueError(f"reference sample_rate must be {SAMPLE_RATE}, got {reference.sample_rate}")
    if len(target) < WIN or len(reference.audio) < WIN:
        raise ValueError(
            f"audio too short to align: {len(target)} target / {len(reference.audio)} ref samples"
        )
    if not reference.phonemes:
        raise ValueError("reference has no phonemes")
    if not 0.0 < band_fraction <= 1.0:
        raise ValueError(f"band_fraction must be in (0, 1], got {band_fraction}")

    ref_a, ref_b = speech_bounds(reference.audio)
    tgt_a, tgt_b = speech_bounds(target)
    ref_feat = alignment_features(reference.audio[ref_a * HOP : ref_b * HOP])
    tgt_feat = alignment_features(target[tgt_a * HOP : tgt_b * HOP])
    cost = _cosine_distance(ref_feat, tgt_feat)
    band = max(int(band_fraction * max(cost.shape)), abs(cost.shape[0] - cost.shape[1]) + 5, 10)
    path_ref, path_tgt = dtw_path(cost, band=band, step_penalty=0.2)
    frame_map = _frame_map(path_ref, path_tgt, cost.shape[0])

    starts = np.array([p.start for p in reference.phonemes])
    ends = np.array([p.end for p in reference.phonemes])
    ref_dur, tgt_dur = reference.duration, len(target) / SAMPLE_RATE
    ref_span = (ref_a * FRAME_S, min(ref_b * FRAME_S, ref_dur))
    tgt_span = (tgt_a * FRAME_S, min(tgt_b * FRAME_S, tgt_dur))
    new_starts = _warp_times(starts, ref_span, tgt_span, ref_dur, tgt_dur, frame_map)
    new_ends = _warp_times(ends, ref_span, tgt_span, ref_dur, tgt_dur, frame_map)
    new_starts[0], new_ends[-1] = 0.0, tgt_dur
    new_starts = np.maximum.accumulate(new_starts)
    new_ends = np.maximum(np.maximum.accumulate(new_ends), new_starts)
    return [
        Phoneme(p.symbol, float(s), float(e))
        for p, s, e in zip(reference.phonemes, new_starts, new_ends, strict=True)
    ]


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    an = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-8)
    bn = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-8)
    return np.asarray(1.0 - an @ bn.T)


def phonemes_for(audio: np.ndarray, text: str, language: str, match_rate: bool = True) -> list[Phoneme]:
    """Timed phonemes for 16 kHz `audio` of `text` spoken in `language`, via an espeak-ng reference.

    With match_rate the reference is re-synthesised once at a speaking rate matching the target's speech
    length, which keeps the DTW path near the diagonal.
    """
    from avatarlm.data.speech.espeak import synthesize

    if not text.strip():
        raise ValueError(f"text must contain something to speak, got {text!r}")
    reference = synthesize(text, language)
    if match_rate:
        ref_a, ref_b = speech_bounds(reference.audio)
        tgt_a, tgt_b = speech_bounds(np.asarray(audio, dtype=np.float32))
        ratio = (ref_b - ref_a) / max(tgt_b - tgt_a, 1)
        rate = int(np.clip(round(160 * ratio), 80, 450))
        if abs(ratio - 1.0) > 0.1:
            reference = synthesize(text, language, rate_wpm=rate)
    return align_by_reference(audio, reference)
