"""Sessions on their own threads sharing a StepBatcher (as a server's connections do) get the frames they
would get alone, in fewer model passes; one session's bad step fails only that session."""

import threading

import numpy as np
import pytest
import torch

from avatarlm.pipeline.session import SessionConfig, StreamingSession
from avatarlm.pipeline.step_batcher import StepBatcher


def speech(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    tone = 0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t) * (t % 0.3 < 0.15)
    return (tone + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def stream(pipe, seed: int, audio: np.ndarray, batcher=None, lip_strength=1.0) -> np.ndarray:
    cfg = SessionConfig(window_frames=8, evict_frames=2, lip_strength=lip_strength, seed=seed)
    session = StreamingSession(pipe, identity_seed=seed, config=cfg, batcher=batcher)
    frames = []
    for piece in np.array_split(audio, 7):
        session.push_audio(piece)
        frames += [f for _, f in session.frames()]
    session.flush()
    frames += [f for _, f in session.frames()]
    return np.stack(frames)


@pytest.mark.parametrize("max_wait", [0.05, 0.0])  # waiting for the others; continuous batching
def test_threads_sharing_a_batcher_get_the_frames_they_get_alone(pipe, max_wait):
    # three sessions of different lengths (so their caches and window rolls differ), one of them guided
    runs = [(0, 1.2, 1.0), (1, 0.8, 2.0), (2, 1.0, 1.0)]
    alone = [stream(pipe, seed, speech(sec, seed), lip_strength=g) for seed, sec, g in runs]
    batcher = StepBatcher(pipe.model, max_wait=max_wait)
    together: dict[int, np.ndarray] = {}

    def worker(seed: int, seconds: float, g: float) -> None:
        batcher.join()
        try:
            together[seed] = stream(pipe, seed, speech(seconds, seed), batcher, g)
        finally:
            batcher.leave()

    threads = [threading.Thread(target=worker, args=run) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for (seed, _, _), frames in zip(runs, alone, strict=True):
        diff = np.abs(together[seed].astype(int) - frames.astype(int))
        assert together[seed].shape == frames.shape and diff.max() <= 2 and diff.mean() < 0.01
    assert batcher.steps == sum(len(f) - 1 for f in alone)  # every generated frame went through it
    assert batcher.batches < batcher.steps  # and some of them together


def test_a_bad_step_fails_only_its_own_session(pipe):
    model = pipe.model
    batcher = StepBatcher(model, max_wait=1.0)
    cfg = model.config
    good = model.start(torch.zeros(1, cfg.tokens_per_frame, cfg.latent_channels), seed=1)
    bad = model.start(torch.zeros(1, cfg.tokens_per_frame, cfg.latent_channels), seed=2)
    cond = torch.zeros(1, cfg.cond_tokens_per_frame, cfg.hidden_size)
    expected = model.step(
        model.start(torch.zeros(1, cfg.tokens_per_frame, cfg.latent_channels), seed=1), cond
    )
    results: dict[str, object] = {}

    def run(name, state, c):
        try:
            results[name] = batcher.step(state, c)
        except ValueError as error:
            results[name] = error

    for _ in range(2):
        batcher.join()
    threads = [
        threading.Thread(target=run, args=("good", good, cond)),
        threading.Thread(target=run, args=("bad", bad, cond[:, :, :1])),  # too few condition tokens
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert isinstance(results["bad"], ValueError) and "cond_tokens" in str(results["bad"])
    assert isinstance(results["good"], torch.Tensor)
    torch.testing.assert_close(results["good"], expected, atol=1e-5, rtol=1e-5)
    assert (good.frame, bad.frame) == (1, 0)


def test_a_batcher_serves_one_model(pipe, random_pipeline):
    from avatarlm.pipeline.folder import load_pipeline

    other = load_pipeline(random_pipeline)
    with pytest.raises(ValueError, match="another model"):
        StreamingSession(pipe, identity_seed=0, batcher=StepBatcher(other.model))
    with pytest.raises(ValueError, match="max_wait must be >= 0"):
        StepBatcher(pipe.model, max_wait=-1)
