import threading

import numpy as np
import pytest

from avatarlm.data.speech.espeak import EDGE_SILENCE_S, PAUSE, VOICE_VARIANTS, synthesize
from avatarlm.data.speech.languages import LANGUAGES, get_language
from avatarlm.data.speech.phrases import phrases
from avatarlm.data.speech.utterance import SAMPLE_RATE, Utterance
from avatarlm.data.speech.visemes import Viseme, phoneme_visemes

CODES = sorted(LANGUAGES)
VOWELS = {Viseme.AA, Viseme.EH, Viseme.EE, Viseme.II, Viseme.AH, Viseme.UI}
VOWELS |= {Viseme.AO, Viseme.OW, Viseme.UW, Viseme.YY, Viseme.OE}
HOP = SAMPLE_RATE // 100  # 10 ms frames


def two_sentences(code: str) -> str:
    joiner = " " if get_language(code).spaced else ""
    return joiner.join(phrases(code)[2:4])


@pytest.fixture(scope="module")
def utterances() -> dict[str, Utterance]:
    return {code: synthesize(two_sentences(code), code) for code in CODES}


def frame_rms(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(audio) // HOP
    rms = np.sqrt((audio[: n * HOP].reshape(n, HOP).astype(np.float64) ** 2).mean(1) + 1e-12)
    return rms, (np.arange(n) + 0.5) * HOP / SAMPLE_RATE


@pytest.mark.parametrize("code", CODES)
def test_audio_is_16k_float_speech(utterances, code):
    utt = utterances[code]
    assert utt.engine == "espeak" and utt.language == code and utt.sample_rate == SAMPLE_RATE
    assert utt.audio.dtype == np.float32 and utt.audio.ndim == 1
    assert np.isfinite(utt.audio).all() and np.abs(utt.audio).max() <= 1.0
    assert 1.0 < utt.duration < 20.0
    assert np.sqrt(np.mean(utt.audio**2)) > 0.02


@pytest.mark.parametrize("code", CODES)
def test_phonemes_tile_the_audio(utterances, code):
    utt = utterances[code]
    spoken = [p for p in utt.phonemes if p.symbol != PAUSE]
    assert len(spoken) >= 10
    assert utt.phonemes[0].start == 0.0
    assert abs(utt.phonemes[-1].end - utt.duration) < 0.15
    for prev, nxt in zip(utt.phonemes, utt.phonemes[1:], strict=False):
        assert prev.end > prev.start and abs(prev.end - nxt.start) < 1e-9
    # edge silence is trimmed: speech starts and ends close to the audio edges
    assert spoken[0].start <= EDGE_SILENCE_S + 0.01
    assert utt.duration - spoken[-1].end <= EDGE_SILENCE_S + 0.01


@pytest.mark.parametrize("code", CODES)
def test_phoneme_timing_agrees_with_audio_energy(utterances, code):
    utt = utterances[code]
    rms, centres = frame_rms(utt.audio)
    vowel, pause = np.zeros(len(rms), bool), np.zeros(len(rms), bool)
    for p in utt.phonemes:
        core = (centres >= p.start + 0.01) & (centres < p.end - 0.01)
        if p.symbol == PAUSE:
            pause |= core
        elif set(phoneme_visemes(p.symbol)) <= VOWELS:
            vowel |= core
    assert vowel.sum() > 20 and pause.sum() > 5  # a sentence break gives a pause
    assert np.median(rms[vowel]) > 20 * np.median(rms[pause])
    assert np.corrcoef(vowel.astype(float), 20 * np.log10(rms))[0, 1] > 0.1


def test_same_arguments_give_identical_audio():
    first = synthesize(phrases("en")[0], "en", "f2", rate_wpm=170, pitch=60)
    synthesize(phrases("de")[1], "de", "m3")  # library state from other calls must not leak
    second = synthesize(phrases("en")[0], "en", "f2", rate_wpm=170, pitch=60)
    assert np.array_equal(first.audio, second.audio)
    assert [(p.symbol, p.start, p.end) for p in first.phonemes] == [
        (p.symbol, p.start, p.end) for p in second.phonemes
    ]


def test_concurrent_calls_match_serial_calls():
    texts = [(phrases(c)[5], c) for c in ("en", "ru", "zh", "ar")]
    serial = [synthesize(t, c).audio for t, c in texts]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = synthesize(*texts[i]).audio

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(results[i], serial[i]) for i in range(len(texts)))


def test_rate_changes_duration():
    text = phrases("es")[7]
    slow, normal, fast = (synthesize(text, "es", rate_wpm=r).duration for r in (100, 160, 300))
    assert slow > normal * 1.3 and normal > fast * 1.3


def test_voice_variants_all_speak_and_differ():
    text = "Nice to meet you."
    audios = {v: synthesize(text, "en", v).audio for v in VOICE_VARIANTS}
    assert all(np.sqrt(np.mean(a**2)) > 0.01 for a in audios.values())
    male, female = audios["m1"], audios["f2"]
    assert len(male) != len(female) or not np.allclose(male, female)
    assert synthesize(text, "en", "f2").voice == "en-us+f2"


def test_pitch_raises_fundamental():
    def zero_crossings(audio: np.ndarray) -> int:
        return int(np.sum(np.diff(np.signbit(audio)) != 0))

    low = synthesize("aaa", "en", pitch=10).audio
    high = synthesize("aaa", "en", pitch=90).audio
    assert zero_crossings(high) / len(high) > zero_crossings(low) / len(low)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"language": "xx"}, "unknown language 'xx'"),
        ({"voice_variant": "robot9"}, "unknown voice variant 'robot9'"),
        ({"rate_wpm": 20}, "rate_wpm"),
        ({"pitch": 101}, "pitch"),
        ({"pitch_range": -1}, "pitch_range"),
        ({"text": "   "}, "text"),
        ({"text": "..."}, "no speech"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    args = {"text": "hello", "language": "en"} | kwargs
    with pytest.raises(ValueError, match=message):
        synthesize(**args)


def test_the_engine_process_is_restarted_after_a_crash_and_after_a_fork():
    """The library runs in its own process (``espeak_engine.py``): killed, it is started again for the next
    call; a forked child starts its own instead of sharing the parent's pipes."""
    import multiprocessing

    from avatarlm.data.speech import espeak

    first = synthesize("The engine survives.", "en")
    proc = espeak._ENGINE._proc
    assert proc is not None and proc.poll() is None
    proc.kill()
    proc.wait()
    again = synthesize("The engine survives.", "en")
    assert np.array_equal(first.audio, again.audio) and espeak._ENGINE._proc is not proc
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply(synthesize, ("The engine survives.", "en"))
    assert np.array_equal(child.audio, first.audio)
    with pytest.raises(ValueError, match="espeak-ng has no voice"):
        espeak._run_espeak("hi", "xx-nonexistent", 175, 50, 50)
