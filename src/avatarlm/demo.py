"""`avatarlm demo`: what the project makes today, on its defaults: the synthetic avatar world (a contact sheet
of identities and a two-party dialogue video with sound) and, with a pipeline (the bundled ``models/tiny``
or ``--model``), the avatar speaking a sentence of the language, streamed through a live session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from avatarlm.data.clip import ClipSpec, plan_speech, role_behaviour
from avatarlm.data.face import FaceState
from avatarlm.data.identity import Identity
from avatarlm.data.instructions import sample_instructions
from avatarlm.data.render import Renderer
from avatarlm.data.render_sheet import contact_sheet
from avatarlm.media import write_mp4, write_png


def identity_sheet(seed: int, count: int = 16, size: int = 128) -> np.ndarray:
    """`count` random identities, each in a random pose and expression, tiled into one image."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        state = FaceState(
            yaw=float(rng.uniform(-20, 20)),
            pitch=float(rng.uniform(-8, 8)),
            roll=float(rng.uniform(-6, 6)),
            mouth_open=float(rng.choice([0.0, 0.0, 0.5, 0.9])),
            expression=int(rng.integers(5)),
            expression_strength=float(rng.uniform(0.3, 0.9)),
            gaze_x=float(rng.uniform(-0.4, 0.4)),
        )
        images.append(Renderer(Identity.from_seed(seed * 1000 + i), size, size).render(state))
    return contact_sheet(images, columns=int(np.ceil(np.sqrt(count))))


def dialogue_video(
    seed: int, language: str, size: int, seconds: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Two avatars side by side in conversation. Returns frames, stereo audio (left = left avatar), fps."""
    rng = np.random.default_rng(seed)
    spec = ClipSpec("demo", seed, "dialogue", language, seed * 7 + 1, seed * 7 + 2, seconds, size, size)
    conv, _ = plan_speech(spec, rng)
    n = int(round(conv.duration * spec.fps))
    halves = []
    for who, gaze in ((0, 0.5), (1, -0.5)):
        face, _, _ = role_behaviour(
            conv, who, n, spec.fps, sample_instructions(rng, conv.duration), rng, gaze
        )
        identity = Identity.from_seed(spec.identity_seed if who == 0 else spec.partner_identity_seed)
        renderer = Renderer(identity, size, size)
        halves.append(
            [renderer.render(FaceState.from_vector(v)) for v in tqdm(face, desc=f"render avatar {who + 1}")]
        )
    frames = np.stack([np.concatenate(pair, axis=1) for pair in zip(*halves, strict=True)])
    return frames, np.stack([conv.audio(0), conv.audio(1)]), spec.fps


def talking_video(
    out: Path, language: str, seed: int, model: str | None = None, text: str | None = None
) -> tuple[Path, str]:
    """The pipeline's avatar (identity ``seed``) speaking ``text`` (default: three everyday phrases of the
    language, espeak-ng voice): writes ``talking_<language>.mp4``; returns it and the latency summary."""
    from avatarlm.cli_options import VIDEO_LIP_STRENGTH
    from avatarlm.data.speech.phrases import phrases
    from avatarlm.pipeline.folder import load_pipeline
    from avatarlm.pipeline.generate import generate_video, speak_text
    from avatarlm.pipeline.session import SessionConfig

    pipe = load_pipeline(model)
    audio = speak_text(text or " ".join(phrases(language)[:3]), language)
    path = out / f"talking_{language}.mp4"
    config = SessionConfig(seed=seed, lip_strength=VIDEO_LIP_STRENGTH)
    report = generate_video(pipe, audio, path, identity_seed=seed, config=config)
    return path, report.summary()


def run_demo(
    out: str | Path, seed: int = 0, language: str = "en", size: int = 256, seconds: float = 12.0
) -> list[Path]:
    out = Path(out)
    sheet = write_png(out / "identities.png", identity_sheet(seed))
    frames, audio, fps = dialogue_video(seed, language, size, seconds)
    video = write_mp4(out / f"dialogue_{language}.mp4", frames, fps, audio)
    return [sheet, video]
