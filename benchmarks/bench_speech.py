"""Real-time factor of espeak-ng synthesis (with phoneme timings) and of the mouth track, per language.

Usage: python benchmarks/bench_speech.py [--phrases N] [--languages en,zh,...]
RTF = processing time / audio duration (lower is faster; < 1 is faster than real time).
"""

from __future__ import annotations

import argparse
import time

from avatarlm.data.speech.espeak import PAUSE, synthesize
from avatarlm.data.speech.languages import LANGUAGES
from avatarlm.data.speech.phrases import phrases
from avatarlm.data.speech.visemes import default_fraction, mouth_track

FPS = 25.0


def bench_language(code: str, n_phrases: int) -> dict[str, float]:
    audio_s = synth_s = track_s = 0.0
    n_phonemes = 0
    symbols: list[str] = []
    for text in phrases(code)[:n_phrases]:
        t0 = time.perf_counter()
        utt = synthesize(text, code)
        t1 = time.perf_counter()
        mouth_track(utt.phonemes, int(utt.duration * FPS) + 1, FPS)
        t2 = time.perf_counter()
        synth_s, track_s, audio_s = synth_s + t1 - t0, track_s + t2 - t1, audio_s + utt.duration
        spoken = [p.symbol for p in utt.phonemes if p.symbol != PAUSE]
        n_phonemes += len(spoken)
        symbols.extend(spoken)
    n_distinct = len(set(symbols))
    return {
        "audio_s": audio_s,
        "synth_rtf": synth_s / audio_s,
        "track_rtf": track_s / audio_s,
        "ms_per_phrase": 1000 * synth_s / n_phrases,
        "phonemes": n_phonemes,
        "phonemes_per_s": n_phonemes / audio_s,
        "distinct": n_distinct,
        "viseme_default": default_fraction(symbols),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phrases", type=int, default=30, help="phrases per language")
    parser.add_argument("--languages", default=",".join(LANGUAGES), help="comma-separated codes")
    args = parser.parse_args()
    synthesize("warm up", "en")
    header = f"{'lang':5} {'audio s':>8} {'synth RTF':>10} {'ms/phrase':>10} {'track RTF':>10}"
    print(header + f" {'phonemes':>9} {'ph/s':>6} {'distinct':>9} {'viseme default':>15}")
    totals = {"audio_s": 0.0, "synth": 0.0}
    for code in args.languages.split(","):
        r = bench_language(code, args.phrases)
        totals["audio_s"] += r["audio_s"]
        totals["synth"] += r["synth_rtf"] * r["audio_s"]
        print(
            f"{code:5} {r['audio_s']:8.1f} {r['synth_rtf']:10.4f} {r['ms_per_phrase']:10.1f} "
            f"{r['track_rtf']:10.5f} {r['phonemes']:9d} {r['phonemes_per_s']:6.1f} {r['distinct']:9d} "
            f"{r['viseme_default']:15.2%}"
        )
    print(f"all   {totals['audio_s']:8.1f} {totals['synth'] / totals['audio_s']:10.4f}")


if __name__ == "__main__":
    main()
