"""The evaluation set: clips rendered on demand from the synthetic world, so a report needs no dataset.

Every clip is a monologue by an identity of the ``test`` split (never in any training set) spoken by a
held-out voice where the language has one; the languages include Greek and Swahili, which no model trains
on. Clip ``i`` of a language is a pure function of (language, i, seconds, size): two reports measure the
same clips. Each clip holds one expression instruction (smile, surprise or sadness, in turn) from 1 s
on, so instruction following is measured on every clip.

Duplex models are also measured on dialogues (``dialogue_clips``): the same unseen faces and held-out voices,
two parties taking turns, no instruction (the listening behaviour is the avatar's own). Each holds at least
``MIN_TURN_SECONDS`` of the avatar speaking and of only the partner speaking, so both duplex measures have
frames to read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from avatarlm.data.clip import ClipSpec, make_clip, to_sample
from avatarlm.data.instructions import TimedInstruction
from avatarlm.data.splits import TEST_ONLY_LANGUAGES, split_identities
from avatarlm.trainer.ar_data import ARClip, clip_from_sample

EXPRESSION_INSTRUCTIONS = ("smile", "look surprised", "look sad")
QUICK_LANGUAGES = ("en", "zh", "el")
FULL_LANGUAGES = ("en", "es", "fr", "de", "ru", "ja", "zh", "ar", "el", "sw")
QUICK_DIALOGUE_LANGUAGES = ("en", "el")
DIALOGUE_LANGUAGES = ("en", "es", "ja", "zh", "el", "sw")
MIN_TURN_SECONDS = 1.5  # a dialogue clip's least time of self speech and of partner-only speech
MIN_DIALOGUE_SECONDS = 2 * MIN_TURN_SECONDS + 1.0


@dataclass
class EvalClip:
    """A rendered clip: its frames (N, H, W, 3), its conditions and truth (``clip``), its language."""

    key: str
    language: str
    frames: np.ndarray
    clip: ARClip

    @property
    def held_out_language(self) -> bool:
        return self.language in TEST_ONLY_LANGUAGES


def clip_spec(
    language: str, index: int, seconds: float, size: int, kind: str = "monologue", attempt: int = 0
) -> ClipSpec:
    """The spec of evaluation clip ``index`` of ``language``; dialogues draw another seed per ``attempt``."""
    name = (
        f"eval:{language}:{index}" if kind == "monologue" else f"eval-dialogue:{language}:{index}:{attempt}"
    )
    digest = hashlib.sha256(name.encode()).digest()
    identities = split_identities("test", 64)
    return ClipSpec(
        key=f"eval-{language}-{index}" if kind == "monologue" else f"eval-dialogue-{language}-{index}",
        seed=int.from_bytes(digest[:4], "little"),
        kind=kind,
        language=language,
        identity_seed=identities[int.from_bytes(digest[4:6], "little") % len(identities)],
        partner_identity_seed=0,
        duration=seconds,
        height=size,
        width=size,
        split="test",
        held_out_voice=True,
    )


def evaluation_clips(
    languages: tuple[str, ...] | list[str], per_language: int, seconds: float, size: int
) -> Iterator[EvalClip]:
    """``per_language`` clips of about ``seconds`` s (the clip ends after its last utterance) per language."""
    if seconds < 2.0:
        raise ValueError(f"evaluation clips need at least 2 s, got {seconds}")
    for language in languages:
        for i in range(per_language):
            text = EXPRESSION_INSTRUCTIONS[(len(language) + ord(language[0]) + i) % 3]
            span = TimedInstruction(text, 1.0, 1.0 + min(2.5, seconds - 1.5))
            clip = make_clip(clip_spec(language, i, seconds, size), [span])
            sample = to_sample(clip)
            yield EvalClip(clip.spec.key, language, clip.frames, clip_from_sample(sample))


def dialogue_clips(
    languages: tuple[str, ...] | list[str],
    per_language: int,
    seconds: float,
    size: int,
    max_attempts: int = 20,
) -> Iterator[EvalClip]:
    """``per_language`` dialogues of about ``seconds`` s per language, each with at least
    ``MIN_TURN_SECONDS`` of self speech and of partner-only speech (``truth["speaking"]`` and
    ``truth["listening"]``): the first of the clip's seeds (attempts) that has both."""
    if seconds < MIN_DIALOGUE_SECONDS:
        raise ValueError(f"dialogue clips need at least {MIN_DIALOGUE_SECONDS:g} s, got {seconds}")
    for language in languages:
        for i in range(per_language):
            for attempt in range(max_attempts):
                clip = make_clip(clip_spec(language, i, seconds, size, "dialogue", attempt), [])
                least = MIN_TURN_SECONDS * clip.spec.fps
                if clip.truth.speaking.sum() >= least and clip.truth.listening.sum() >= least:
                    break
            else:
                raise RuntimeError(
                    f"no {seconds:g} s {language} dialogue with both turns in {max_attempts} seeds"
                )
            yield EvalClip(clip.spec.key, language, clip.frames, clip_from_sample(to_sample(clip)))
