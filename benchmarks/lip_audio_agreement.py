"""Do the generated lips follow the sound, for any speech? Read by the face mesh, as ingestion reads real
footage: the lip-audio agreement (best correlation of the inner-lip gap with the loudness, within ±1 frame)
of sessions of a pipeline on unseen faces, for real recorded speech (alsa-utils) and the held-out espeak
voices of several languages. No ground truth is needed, so real speech can be scored.

The same measure on the renderer's own talking clips (the truth) is printed as the ceiling.

    python benchmarks/lip_audio_agreement.py --model models/tiny --faces 4
"""

from __future__ import annotations

import argparse

import numpy as np

from avatarlm.data.clip import ClipSpec, make_clip
from avatarlm.data.face_tracker import FaceTracker
from avatarlm.data.speech.phrases import sample_text
from avatarlm.data.speech.voices import sample_voice, speak
from avatarlm.data.splits import split_identities
from avatarlm.eval.character import generated_lip_sync
from avatarlm.pipeline.folder import load_pipeline
from avatarlm.pipeline.session import StreamingSession
from photo_footage import speech as alsa_speech

CHUNK = 320  # 20 ms pushes, as a microphone


def espeak_speech(language: str, seconds: float, seed: int) -> np.ndarray:
    """Sentences of ``language`` by its held-out evaluation voice, with short pauses, to ``seconds``."""
    rng = np.random.default_rng(seed)
    voice = sample_voice(language, rng, held_out=True)
    parts: list[np.ndarray] = []
    while sum(len(p) for p in parts) < seconds * 16_000:
        parts += [
            speak(voice, sample_text(language, rng, approx_seconds=2.5)).audio,
            np.zeros(4000, np.float32),
        ]
    return np.concatenate(parts)[: int(seconds * 16_000)].astype(np.float32)


def session_frames(pipe, audio: np.ndarray, identity: int) -> np.ndarray:
    session = StreamingSession(pipe, identity_seed=identity)
    frames = []
    for i in range(0, len(audio), CHUNK):
        session.push_audio(audio[i : i + CHUNK])
        frames += [f for _, f in session.frames()]
    session.flush()
    frames += [f for _, f in session.frames()]
    return np.stack(frames)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="pipeline folder (default: the bundled models/tiny)")
    p.add_argument("--faces", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--languages", default="en,de,zh")
    args = p.parse_args()
    pipe = load_pipeline(args.model)
    fps = float(pipe.fps)
    speeches = {"real recordings (alsa-utils)": alsa_speech(args.seconds)[0]}
    for i, lang in enumerate(args.languages.split(",")):
        speeches[f"held-out espeak voice, {lang}"] = espeak_speech(lang, args.seconds, seed=i)
    faces = split_identities("test", args.faces)
    rows = []
    with FaceTracker() as tracker:
        for name, audio in speeches.items():
            scores = [
                generated_lip_sync(session_frames(pipe, audio, face), audio, fps, tracker, lags=1)
                for face in faces
            ]
            rows.append((name, scores))
        truth = []
        for i, face in enumerate(faces):  # the renderer's own clips: frames whose lips do follow the sound
            spec = ClipSpec(key="t", seed=900 + i, kind="monologue", language="en", identity_seed=face,
                            partner_identity_seed=face + 1, duration=args.seconds, height=128, width=128)  # fmt: skip
            clip = make_clip(spec)
            truth.append(generated_lip_sync(clip.frames, clip.audio[0], fps, tracker, lags=1))
    print(
        f"lip-audio agreement (±1 frame), {len(faces)} unseen faces x {args.seconds:g} s, face mesh on 256² frames"
    )
    print("| speech | mean | per face |")
    print("|---|---|---|")
    for name, scores in rows + [("ceiling: the renderer's own talking clips (espeak, en)", truth)]:
        print(f"| {name} | {np.nanmean(scores):.3f} | {' '.join(f'{s:.2f}' for s in scores)} |")


if __name__ == "__main__":
    main()
