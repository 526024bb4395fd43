"""Fixtures for the conversation-loop tests; the audio helpers live in apps_speech.py."""

from __future__ import annotations

import numpy as np
import pytest
from apps_speech import Conversation, alsa_clips, espeak_clips, lay_out


@pytest.fixture(scope="session")
def speech_clips() -> tuple[list[np.ndarray], str]:
    """(clips at 16 kHz, where they came from)."""
    clips = alsa_clips()
    return (clips, "alsa") if clips is not None else (espeak_clips(), "espeak")


@pytest.fixture(scope="session")
def conversation(speech_clips) -> Conversation:
    """Four clips of speech, 1 s of silence first, 1.2 s between them and after the last."""
    clips, source = speech_clips
    talk = lay_out(clips, lead_s=1.0, gap_s=1.2, tail_s=1.2)
    talk.source = source
    return talk
