"""How the evaluation makes a model's frames: free-running through a streaming session (the product's own
path: rolling window, streaming decode) and one step at a time under teacher forcing (image quality).

``stream_clip`` feeds a session frame by frame exactly as a live client would — before frame j: its
instruction, its pose (when the model takes pose), then the audio up to frame j's look-ahead — and loops the
clip's inputs when asked for more frames than it has, for drift over long sessions. A duplex model (two
audio streams) gets the partner's voice beside the avatar's (silence in a monologue); for dialogues the
report pushes no pose, so the head's listening motion is the model's own.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from avatarlm.autoencoder.latent_cache import encode_frames
from avatarlm.autoencoder.tokens import grid_to_tokens
from avatarlm.conditions.audio import AudioEncoder
from avatarlm.eval.audio_use import predicted_changes, teacher_forced_hidden
from avatarlm.pipeline.folder import Pipeline
from avatarlm.pipeline.offline import decode_tokens
from avatarlm.pipeline.session import FrameTiming, SessionConfig, StreamingSession
from avatarlm.trainer.ar_data import ARClip, stack_conditions, window_conditions


def looped(values: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` entries of ``values`` repeated end to end (along axis 0)."""
    reps = -(-n // len(values))
    return np.concatenate([values] * reps)[:n]


def stream_clip(
    pipe: Pipeline,
    clip: ARClip,
    reference: np.ndarray,
    n_frames: int,
    config: SessionConfig | None = None,
    progress: bool = False,
    *,
    push_pose: bool = True,
) -> tuple[np.ndarray, list[FrameTiming]]:
    """Frames (n_frames, H, W, 3) of a session started from ``reference``: frame 0 is the decoded reference,
    frame j is driven by clip frame j (mod the clip's length): the avatar's voice, the partner's too where
    the model has two audio streams, and (``push_pose``, where the model takes pose) the true pose. Returns
    the frames and the session's timings."""
    cfg, chunk = pipe.model.config.conditions, pipe.model.config.chunk_size
    spf, lookahead = cfg.samples_per_frame, cfg.lookahead_frames
    n_src = clip.n_frames
    # the clip's audio per frame (its duration rounds to whole frames, so it may lack part of the last one)
    tracks = np.pad(clip.audio, ((0, 0), (0, max(0, n_src * spf - clip.audio.shape[1]))))
    voices = [
        looped(tracks[s, : n_src * spf].reshape(n_src, spf), n_frames + lookahead + chunk).reshape(-1)
        for s in range(cfg.audio_streams)
    ]
    session = StreamingSession(pipe, reference=reference, config=config)
    pushes = [session.push_audio, session.push_partner_audio][: len(voices)]
    frames = [f for _, f in session.frames()]
    for push, audio in zip(pushes, voices, strict=True):
        push(audio[: lookahead * spf])
    # a chunked model makes frames a chunk at a time: the input runs on (looped) until the chunk holding the
    # last frame is complete, and the frames past n_frames are dropped
    for j in tqdm(range(1, n_frames + chunk - 1), desc="session", disable=not progress, leave=False):
        if len(frames) >= n_frames:
            break
        src = j % n_src
        session.push_text(clip.texts[src])
        if push_pose and "pose" in cfg.modalities:
            session.push_pose(clip.pose[src], clip.keypoints[src])
        for push, audio in zip(pushes, voices, strict=True):
            push(audio[(j + lookahead - 1) * spf : (j + lookahead) * spf])
        frames += [f for _, f in session.frames()]
    if len(frames) < n_frames:
        raise RuntimeError(f"the session made {len(frames)} frames for {n_frames} frames of input")
    return np.stack(frames[:n_frames]), session.timings


@torch.no_grad()
def window_hidden(
    pipe: Pipeline, latents: torch.Tensor, clip: ARClip, start: int, seed: int = 0, push_pose: bool = True
) -> torch.Tensor:
    """Teacher-forced hidden states (W-1, T, D) that predict clip frames start+1 .. start+W-1 from the window's
    latents (W, T, C), frame ``start`` its f_0 (as in training), with the clip's conditions (without
    ``push_pose`` the model gets its null pose tokens) and the audio of up to the audio encoder's receptive
    field before the window."""
    model = pipe.model.eval()
    cfg = model.config.conditions
    audio = model.conditions.encoders["audio"] if "audio" in cfg.modalities else None
    history = min(start, audio.receptive_field_frames) if isinstance(audio, AudioEncoder) else 0
    parts = window_conditions(
        clip,
        start + 1,
        len(latents) - 1,
        history,
        cfg.audio_streams,
        cfg.samples_per_frame,
        cfg.lookahead_frames,
    )
    modalities = [m for m in cfg.modalities if push_pose or m != "pose"]
    cond = model.encode_conditions(stack_conditions([parts], modalities, history))
    return teacher_forced_hidden(pipe, latents, cond, seed)


@torch.no_grad()
def teacher_forced_frames(
    pipe: Pipeline, frames: np.ndarray, clip: ARClip, window: int = 31, seed: int = 0, push_pose: bool = True
) -> np.ndarray:
    """Frames 1..N-1 (N-1, H, W, 3), each predicted one step ahead from the true history (encoded by the
    pipeline's AE, at the inference noise level) in windows of ``window`` frames with the window's first
    frame as f_0 (as in training); every window's predictions are decoded as one stream. Without
    ``push_pose`` the model gets its null pose tokens."""
    ae = pipe.autoencoder.eval()
    out = []
    for s in range(0, len(frames) - 1, window - 1):
        stop = min(s + window, len(frames))
        latents = torch.from_numpy(grid_to_tokens(encode_frames(ae, frames[s:stop].copy())))
        hidden = window_hidden(pipe, latents, clip, s, seed, push_pose)
        change = predicted_changes(pipe, latents, hidden, draws=1, seed=seed + s)
        out.append(decode_tokens(ae, latents[:-1] + change, frames[0]))
    return np.concatenate(out)
