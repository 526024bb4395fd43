import numpy as np
import pytest

from avatarlm.data.speech.espeak import synthesize
from avatarlm.data.speech.languages import LANGUAGES, get_language
from avatarlm.data.speech.phrases import phrases
from avatarlm.data.speech.utterance import Phoneme
from avatarlm.data.speech.visemes import (
    VISEME_TARGETS,
    Viseme,
    clean_symbol,
    default_fraction,
    mouth_track,
    phoneme_visemes,
)

FPS = 25.0
OPEN, WIDTH, ROUND = 0, 1, 2


def seq(*items: tuple[str, float]) -> list[Phoneme]:
    """Phonemes back to back from (symbol, duration) pairs."""
    out, t = [], 0.0
    for symbol, duration in items:
        out.append(Phoneme(symbol, t, t + duration))
        t += duration
    return out


def frame_of(t: float) -> int:
    return int(round(t * FPS))


def test_clean_symbol_strips_marks():
    assert clean_symbol("ˈaː") == "a"
    assert clean_symbol("ɛ̃") == "ɛ"
    assert clean_symbol("tʰ") == "t"
    assert clean_symbol("ˌo̞") == "o"
    assert clean_symbol("ma5") == "ma"
    assert clean_symbol("ts.h") == "tʂh"


def test_mapping_of_key_phonemes():
    for s in ("p", "b", "m", "mʲ", "bʰ"):
        assert phoneme_visemes(s) == (Viseme.PBM,)
    for s in ("_", "", "(en)"):
        assert phoneme_visemes(s) == (Viseme.SIL,)
    assert phoneme_visemes("ˈaɪ") == (Viseme.AA, Viseme.II)
    assert phoneme_visemes("tʃ") == (Viseme.SH,)
    assert phoneme_visemes("ˈja") == (Viseme.Y, Viseme.AA)
    assert VISEME_TARGETS[Viseme.AA][OPEN] > VISEME_TARGETS[Viseme.II][OPEN]
    assert VISEME_TARGETS[Viseme.UW][ROUND] > VISEME_TARGETS[Viseme.II][ROUND]
    assert VISEME_TARGETS[Viseme.II][WIDTH] > VISEME_TARGETS[Viseme.UW][WIDTH]


def test_unknown_symbols_use_sensible_defaults():
    assert default_fraction(["ꭥ", "a", "p"]) == pytest.approx(1 / 3)
    assert phoneme_visemes("ꭥ") == (Viseme.DNT,)  # unknown consonant-like letter: closed-ish


def test_bilabials_close_the_mouth_between_open_vowels():
    phonemes = seq(("_", 0.2), ("p", 0.06), ("a", 0.16), ("p", 0.05), ("a", 0.2), ("m", 0.07), ("a", 0.2))
    track = mouth_track(phonemes, n_frames=frame_of(1.2), fps=FPS)
    for ph in phonemes:
        centre = frame_of((ph.start + ph.end) / 2)
        if ph.symbol in "pm":
            assert track[centre, OPEN] < 0.15
        elif ph.symbol == "a":
            assert track[centre, OPEN] > 0.6


def test_open_vowels_open_and_rounded_vowels_round():
    def centre_value(vowel: str) -> np.ndarray:
        track = mouth_track(seq(("_", 0.2), ("t", 0.06), (vowel, 0.2), ("_", 0.2)), frame_of(0.66), FPS)
        return track[frame_of(0.36)]

    a, i, u = centre_value("a"), centre_value("i"), centre_value("u")
    assert a[OPEN] > i[OPEN] + 0.3
    assert u[ROUND] > i[ROUND] + 0.5 and u[WIDTH] < i[WIDTH] - 0.5


def test_track_is_closed_in_silence_and_outside_the_utterance():
    phonemes = seq(("_", 0.1), ("a", 0.2), ("_", 0.5), ("o", 0.2), ("_", 0.1))
    track = mouth_track(phonemes, n_frames=60, fps=FPS, offset_s=0.4)
    assert np.all(track[:10] == 0) and np.all(track[frame_of(0.4 + 1.1) + 1 :] == 0)
    assert np.abs(track[frame_of(0.4 + 0.55)]).max() < 0.05  # middle of the long pause
    assert track[frame_of(0.4 + 0.2), OPEN] > 0.6


def test_offset_shifts_the_track():
    phonemes = seq(("_", 0.1), ("m", 0.08), ("a", 0.2), ("u", 0.2), ("_", 0.1))
    base = mouth_track(phonemes, 40, FPS)
    shifted = mouth_track(phonemes, 40, FPS, offset_s=0.4)
    assert np.allclose(shifted[10:], base[:30], atol=1e-6)


def test_random_sequences_stay_in_range():
    rng = np.random.default_rng(0)
    symbols = ["p", "a", "i", "u", "ʃ", "w", "_", "ˈaɪ", "ŋ", "ɔ̃", "tɕh", "ʲ", "h", "f"]
    for _ in range(20):
        items = [(symbols[rng.integers(len(symbols))], float(rng.uniform(0.005, 0.3))) for _ in range(30)]
        track = mouth_track(seq(*items), 120, fps=30.0)
        assert np.isfinite(track).all()
        assert track[:, OPEN].min() >= 0 and track[:, OPEN].max() <= 1
        assert track[:, WIDTH].min() >= -1 and track[:, WIDTH].max() <= 1
        assert track[:, ROUND].min() >= 0 and track[:, ROUND].max() <= 1


def test_track_arguments():
    assert mouth_track([], 5).shape == (5, 3)
    assert mouth_track(seq(("a", 0.1)), 0).shape == (0, 3)
    with pytest.raises(ValueError, match="fps"):
        mouth_track(seq(("a", 0.1)), 5, fps=0)


def test_espeak_bilabials_close_and_vowels_open():
    utt = synthesize("Bob bought a map from my mum.", "en")
    track = mouth_track(utt.phonemes, frame_of(utt.duration) + 1, FPS)
    closures = [track[frame_of((p.start + p.end) / 2), OPEN] for p in utt.phonemes if p.symbol in "bpm"]
    vowels = [
        track[frame_of((p.start + p.end) / 2), OPEN]
        for p in utt.phonemes
        if phoneme_visemes(p.symbol)[0] in (Viseme.AA, Viseme.AO)
    ]
    assert len(closures) >= 6 and max(closures) < 0.2
    assert np.mean(vowels) > 0.45


@pytest.mark.parametrize("code", sorted(LANGUAGES))
def test_each_language_is_covered_by_the_table(code):
    joiner = " " if get_language(code).spaced else ""
    utt = synthesize(joiner.join(phrases(code)[:12]), code)
    symbols = [p.symbol for p in utt.phonemes]
    assert default_fraction(symbols) < 0.02
    track = mouth_track(utt.phonemes, frame_of(utt.duration), FPS)
    assert track[:, OPEN].std() > 0.1  # the mouth moves
