"""IPA phoneme -> viseme class -> mouth targets (open, width, round), and a coarticulated mouth track.

Targets: mouth_open in [0, 1] (0 = lips closed), mouth_width in [-1, 1] (+ spread, - narrow/pursed),
mouth_round in [0, 1]. The track blends per-phoneme targets with dominance functions (Cohen & Massaro
style): each phoneme dominates inside its span and its influence decays exponentially outside, with
per-channel strengths, so bilabials close the lips even when short while /h/ or /k/ borrow the shape
of the neighbouring vowels.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from enum import StrEnum
from functools import cache

import numpy as np

from avatarlm.data.speech.utterance import Phoneme


class Viseme(StrEnum):
    SIL = "sil"  # silence, pause
    PBM = "pbm"  # bilabial: lips closed
    FV = "fv"  # labiodental
    TH = "th"  # dental
    DNT = "dnt"  # alveolar / retroflex stops, nasals, laterals, taps, s z
    SH = "sh"  # postalveolar / alveolo-palatal / retroflex sibilants: lips protruded
    KG = "kg"  # palatal, velar, uvular
    H = "h"  # glottal, pharyngeal: takes the neighbours' shape
    R = "r"  # approximant r (English-like), slightly rounded
    W = "w"  # labial-velar / labial-palatal glides
    Y = "y"  # palatal glide, palatalisation
    AA = "aa"  # open vowels
    EH = "eh"  # open-mid front
    EE = "ee"  # close-mid front
    II = "ii"  # close front / central unrounded: spread
    AH = "ah"  # central / back unrounded mid vowels
    UI = "ui"  # close back unrounded (Japanese u): compressed
    AO = "ao"  # open-mid / open rounded back
    OW = "ow"  # close-mid rounded back
    UW = "uw"  # close rounded back
    YY = "yy"  # close front rounded
    OE = "oe"  # mid front rounded


# (open, width, round) per viseme.
VISEME_TARGETS: dict[Viseme, tuple[float, float, float]] = {
    Viseme.SIL: (0.0, 0.0, 0.0),
    Viseme.PBM: (0.0, 0.0, 0.05),
    Viseme.FV: (0.08, 0.05, 0.0),
    Viseme.TH: (0.2, 0.1, 0.0),
    Viseme.DNT: (0.22, 0.15, 0.0),
    Viseme.SH: (0.18, -0.3, 0.55),
    Viseme.KG: (0.3, 0.05, 0.0),
    Viseme.H: (0.35, 0.0, 0.0),
    Viseme.R: (0.2, -0.2, 0.4),
    Viseme.W: (0.1, -0.6, 0.9),
    Viseme.Y: (0.18, 0.45, 0.0),
    Viseme.AA: (0.85, 0.15, 0.0),
    Viseme.EH: (0.55, 0.4, 0.0),
    Viseme.EE: (0.4, 0.55, 0.0),
    Viseme.II: (0.25, 0.7, 0.0),
    Viseme.AH: (0.5, 0.0, 0.0),
    Viseme.UI: (0.22, 0.05, 0.3),
    Viseme.AO: (0.62, -0.3, 0.6),
    Viseme.OW: (0.45, -0.45, 0.75),
    Viseme.UW: (0.2, -0.6, 0.95),
    Viseme.YY: (0.22, -0.35, 0.85),
    Viseme.OE: (0.45, -0.3, 0.7),
}

_VOWEL_VISEMES = {Viseme.AA, Viseme.EH, Viseme.EE, Viseme.II, Viseme.AH, Viseme.UI}
_VOWEL_VISEMES |= {Viseme.AO, Viseme.OW, Viseme.UW, Viseme.YY, Viseme.OE}

# Per-channel dominance strength (open, width, round) and decay time (s) outside the phoneme's span.
_DOMINANCE: dict[Viseme, tuple[tuple[float, float, float], float]] = {
    Viseme.SIL: ((1.5, 1.0, 1.0), 0.03),
    Viseme.PBM: ((8.0, 0.5, 0.5), 0.01),
    Viseme.FV: ((5.0, 1.0, 1.0), 0.01),
    Viseme.TH: ((2.0, 0.5, 0.5), 0.02),
    Viseme.DNT: ((0.6, 0.3, 0.3), 0.02),
    Viseme.SH: ((1.5, 1.5, 2.0), 0.02),
    Viseme.KG: ((0.5, 0.2, 0.2), 0.02),
    Viseme.H: ((0.15, 0.1, 0.1), 0.02),
    Viseme.R: ((1.0, 1.0, 1.5), 0.02),
    Viseme.W: ((2.0, 3.0, 3.0), 0.025),
    Viseme.Y: ((0.6, 1.0, 1.0), 0.02),
}
_VOWEL_DOMINANCE = ((1.0, 1.0, 1.0), 0.035)

_LETTERS: dict[Viseme, str] = {
    Viseme.PBM: "pbmɓʙ",
    Viseme.FV: "fvɱʋβɸ",
    Viseme.TH: "θð",
    Viseme.DNT: "tdnlszɾrɬɮʈɖɳɭɫɽɺ",
    Viseme.SH: "ʃʒɕʑʂʐ",
    Viseme.KG: "kgɡŋxɣcɟçʝɲqɢχʁɴʀʎɰ",
    Viseme.H: "hɦʔħʕʜʢ",
    Viseme.R: "ɹɻ",
    Viseme.W: "wʍɥ",
    Viseme.Y: "jʲ",
    Viseme.AA: "aäɐæɑ",
    Viseme.EH: "ɛ",
    Viseme.EE: "e",
    Viseme.II: "iɪɨ",
    Viseme.AH: "əʌɜɘɚɝᵻɤɞ",
    Viseme.UI: "ɯ",
    Viseme.AO: "ɔɒɶ",
    Viseme.OW: "oɵ",
    Viseme.UW: "uʊ",
    Viseme.YY: "yʏ",
    Viseme.OE: "øœ",
}
_LETTER_VISEME = {ch: vis for vis, letters in _LETTERS.items() for ch in letters}
# Which consonant wins when several form one phoneme (affricates, aspiration, clusters).
_CONSONANT_PRIORITY = [Viseme.PBM, Viseme.FV, Viseme.W, Viseme.SH, Viseme.R, Viseme.TH, Viseme.DNT]
_CONSONANT_PRIORITY += [Viseme.KG, Viseme.Y, Viseme.H]
# espeak-ng's ASCII spellings of retroflex sounds (Mandarin): "ts." = tʂ, "s." = ʂ, ...
_DOT_RETROFLEX = {"ts.": "tʂ", "s.": "ʂ", "z.": "ʐ", "r.": "ɻ", "i.": "ɨ"}
# Ligatures, and the capital-letter diphthongs some G2P front ends (misaki) use.
_ALIASES = {"ʧ": "tʃ", "ʤ": "dʒ", "ʦ": "ts", "ʣ": "dz", "A": "eɪ", "I": "aɪ", "W": "aʊ", "Y": "ɔɪ"}
_ALIASES |= {"O": "oʊ", "Q": "əʊ"}
PAUSE_SYMBOLS = frozenset({"", "_", "sil", "sp", "spn", "pau", "SIL", "#", "|", "||", ".", ",", "…"})


def clean_symbol(symbol: str) -> str:
    """Base IPA letters of `symbol`: stress, length, tones, diacritics and punctuation removed."""
    for dotted, ipa in _DOT_RETROFLEX.items():
        symbol = symbol.replace(dotted, ipa)
    kept = []
    for ch in unicodedata.normalize("NFD", symbol):
        category = unicodedata.category(ch)
        if category[0] == "L" and (category != "Lm" or ch == "ʲ"):
            kept.append(_ALIASES.get(ch, ch))
    return "".join(kept)


@cache
def _classify(symbol: str) -> tuple[tuple[Viseme, ...], bool]:
    stripped = symbol.strip()
    if stripped in PAUSE_SYMBOLS or (stripped.startswith("(") and stripped.endswith(")")):
        return (Viseme.SIL,), False
    letters = clean_symbol(stripped)
    if not letters:
        return (Viseme.SIL,), not stripped.isspace() and bool(stripped) and not _is_punctuation(stripped)
    used_default = False
    sequence: list[Viseme] = []
    consonants: list[Viseme] = []
    for ch in letters:
        vis = _LETTER_VISEME.get(ch)
        if vis is None:
            used_default = True
            vis = Viseme.AH if ch.lower() in "aeiouy" else Viseme.DNT
        if vis in _VOWEL_VISEMES:
            if consonants:
                sequence.append(min(consonants, key=_CONSONANT_PRIORITY.index))
                consonants = []
            sequence.append(vis)
        else:
            consonants.append(vis)
    if consonants:
        sequence.append(min(consonants, key=_CONSONANT_PRIORITY.index))
    collapsed = [v for i, v in enumerate(sequence) if i == 0 or v != sequence[i - 1]]
    return tuple(collapsed), used_default


def _is_punctuation(text: str) -> bool:
    return all(unicodedata.category(ch)[0] in "PSZ" for ch in text)


def phoneme_visemes(symbol: str) -> tuple[Viseme, ...]:
    """Visemes of one phoneme in order (diphthongs and glide+vowel symbols give several)."""
    return _classify(symbol)[0]


def is_default_mapping(symbol: str) -> bool:
    """True when `symbol` contains a letter the table does not know (it then maps by a default)."""
    return _classify(symbol)[1]


def default_fraction(symbols: Iterable[str]) -> float:
    """Share of `symbols` (one per occurrence) that fall back to the default mapping."""
    flags = [is_default_mapping(s) for s in symbols]
    return sum(flags) / len(flags) if flags else 0.0


def _keyframes(phonemes: Sequence[Phoneme], min_width: float) -> tuple[np.ndarray, ...]:
    """Sub-segments (start, end, target, alpha, tau) with each phoneme split among its visemes."""
    rows: list[tuple[float, float, Viseme]] = []
    for ph in phonemes:
        if ph.end <= ph.start:
            continue
        visemes = phoneme_visemes(ph.symbol)
        step = (ph.end - ph.start) / len(visemes)
        rows.extend((ph.start + i * step, ph.start + (i + 1) * step, v) for i, v in enumerate(visemes))
    start = np.array([r[0] for r in rows], dtype=np.float64)
    end = np.array([r[1] for r in rows], dtype=np.float64)
    centre, half = (start + end) / 2, np.maximum((end - start) / 2, min_width / 2)
    targets = np.array([VISEME_TARGETS[r[2]] for r in rows], dtype=np.float64).reshape(-1, 3)
    dominance = [_DOMINANCE.get(r[2], _VOWEL_DOMINANCE) for r in rows]
    alpha = np.array([d[0] for d in dominance], dtype=np.float64).reshape(-1, 3)
    tau = np.array([d[1] for d in dominance], dtype=np.float64)
    return centre - half, centre + half, targets, alpha, tau


def mouth_track(
    phonemes: Sequence[Phoneme], n_frames: int, fps: float = 25.0, offset_s: float = 0.0
) -> np.ndarray:
    """(n_frames, 3) float32 array of (open, width, round), frame i at time i / fps.

    The utterance starts at `offset_s` in the video; frames before its first phoneme or after its last
    are closed and neutral (0, 0, 0).
    """
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    out = np.zeros((n_frames, 3), dtype=np.float32)
    spans = [p for p in phonemes if p.end > p.start]
    if n_frames == 0 or not spans:
        return out
    start, end, targets, alpha, tau = _keyframes(spans, 1.0 / fps)
    times = np.arange(n_frames) / fps - offset_s
    first, last = min(p.start for p in spans), max(p.end for p in spans)
    reach = 12 * float(tau.max())  # beyond this, a phoneme's weight is below 1e-5 of its peak
    for lo in range(0, n_frames, 256):
        t = times[lo : lo + 256]
        inside = (t >= first) & (t < last)
        if not inside.any():
            continue
        ti = t[inside]
        near = (start <= ti[-1] + reach) & (end >= ti[0] - reach)
        dist = np.maximum(0.0, np.maximum(start[near][None] - ti[:, None], ti[:, None] - end[near][None]))
        weight = alpha[near][None] * np.exp(-dist / tau[near][None])[:, :, None]  # (F, K, 3)
        blended = (weight * targets[near][None]).sum(1) / np.maximum(weight.sum(1), 1e-12)
        out[lo : lo + 256][inside] = blended
    lower = np.array([0.0, -1.0, 0.0], dtype=np.float32)
    return np.clip(out, lower, np.float32(1.0))
