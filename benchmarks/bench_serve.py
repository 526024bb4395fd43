"""How many live sessions `avatarlm serve` keeps in real time on this machine, and how much batching the
sessions' frames into one forward pass raises that number. Side by side in one run:

1. K = 1, 2, 4, 8 concurrent WebSocket sessions against a real uvicorn server (the package's client, each
   session speaking a long text), with the sessions' steps one by one (the default), batched continuously
   (``--batching``: a step runs as soon as the model is free, with the steps that arrived meanwhile) and
   batched with waits (``--batch-wait-ms 5``):
   delivered fps per session (mean and worst), audio-to-lip latency p50/p95 and compute p95 as the server
   reports them after ``--seconds`` of streaming.
2. Per-frame cost of the model (backbone + head + decode) for K independent sessions (caches of different
   lengths) one after another (the server's default) vs batched by ``ARModel.step_many`` (one
   backbone and one head pass for all; the frames decoded as one batch): what batching buys.
3. Encoding one frame for the wire: JPEG (what the WebSocket sends) vs VP8 and H.264 real-time encoders
   (what WebRTC would send), on rendered avatar frames at the pipeline's size.

    python benchmarks/bench_serve.py                              # random-weight tiny AR + bundled tiny AE
    python benchmarks/bench_serve.py --model runs/ar_tiny/pipeline --sessions 1,2,4 --seconds 10

Speed does not depend on the weights, so the default needs nothing but the repo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from avatarlm.pipeline.folder import Pipeline, load_pipeline
from avatarlm.serve.app import ServeConfig, create_app
from avatarlm.serve.client import AvatarClient, Frame

TEXT = (
    "Good morning, and thank you for joining. Today I will tell you a long story about streaming video, "
    "latency, and the many small things that make a conversation feel natural. "
) * 4


def serve(pipe: Pipeline, max_sessions: int, batch_wait_ms: float | None):
    """A uvicorn server on a free port; ``batch_wait_ms`` None: no batching, 0: continuous batching."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = ServeConfig(
        max_sessions=max_sessions, batching=batch_wait_ms is not None, batch_wait_ms=batch_wait_ms or 0.0
    )
    server = uvicorn.Server(uvicorn.Config(create_app(pipe, config), port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"ws://127.0.0.1:{port}/ws"


async def one_session(url: str, seconds: float, warmup: float, identity: int) -> dict:
    async with AvatarClient(url, identity=identity) as avatar:
        await avatar.say(TEXT)
        start = time.monotonic()
        counted, stats = 0, {}

        async def read():
            nonlocal counted, stats
            async for event in avatar.events():
                if isinstance(event, Frame) and time.monotonic() - start > warmup:
                    counted += 1
                elif isinstance(event, dict) and event.get("type") == "stats":
                    stats = event

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), seconds)
    return {"fps": counted / (seconds - warmup), **stats}


async def concurrent(url: str, k: int, seconds: float) -> list[dict]:
    return list(await asyncio.gather(*(one_session(url, seconds, 2.0, i) for i in range(k))))


@torch.no_grad()
def frame_cost(pipe: Pipeline, sessions: int, batched: bool, steps: int = 30) -> float:
    """Seconds per round of backbone + head + decode that gives each of ``sessions`` independent sessions
    (started 7 frames apart, so their caches differ in length) its next frame: one after another, or
    batched (``ARModel.step_many``: one backbone and one head pass; one decode of all their frames)."""
    from avatarlm.autoencoder.tokens import tokens_to_grid

    model, ae = pipe.model.eval(), pipe.autoencoder.eval()
    cfg = model.config
    cond = torch.zeros(1, cfg.cond_tokens_per_frame, cfg.backbone.hidden_size)
    states = [
        model.start(torch.randn(1, cfg.tokens_per_frame, cfg.latent_channels), seed=i)
        for i in range(sessions)
    ]
    for i, state in enumerate(states):
        for _ in range(7 * i):
            model.step(state, cond)
    _, h, w = ae.latent_shape
    caches = [ae.new_cache() for _ in states]
    batch_cache = ae.new_cache()
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        if batched:
            latents = torch.cat(model.step_many(states, [cond] * sessions))
            ae.decode_step(tokens_to_grid(latents, h, w), batch_cache)
        else:
            for state, cache in zip(states, caches, strict=True):
                ae.decode_step(tokens_to_grid(model.step(state, cond), h, w), cache)
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def encode_costs(size: int, frames: int = 100) -> dict[str, tuple[float, float]]:
    """Milliseconds and bytes per frame to encode a moving rendered avatar: JPEG q80, VP8, H.264."""
    import av
    import cv2

    from avatarlm.data.face import FaceState
    from avatarlm.data.identity import Identity
    from avatarlm.data.render import Renderer

    renderer = Renderer(Identity.from_seed(0), size, size)
    video = [
        renderer.render(FaceState(mouth_open=0.5 + 0.5 * np.sin(i / 3), yaw=10 * np.sin(i / 20)))
        for i in range(frames)
    ]
    out = {}
    t0 = time.perf_counter()
    sizes = [len(cv2.imencode(".jpg", f[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])[1]) for f in video]
    out["JPEG q80 (WebSocket)"] = ((time.perf_counter() - t0) / frames * 1000, float(np.mean(sizes)))
    for label, codec, options in (
        ("VP8 realtime (WebRTC)", "libvpx", {"deadline": "realtime", "cpu-used": "8"}),
        ("H.264 ultrafast (WebRTC)", "libx264", {"preset": "ultrafast", "tune": "zerolatency"}),
    ):
        ctx = av.CodecContext.create(codec, "w")
        ctx.width = ctx.height = size
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.bit_rate = 500_000
        ctx.options = options
        total, t0 = 0, time.perf_counter()
        for i, f in enumerate(video):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            total += sum(len(bytes(p)) for p in ctx.encode(frame))
        out[label] = ((time.perf_counter() - t0) / frames * 1000, total / frames)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="pipeline folder (default: random tiny AR)")
    parser.add_argument("--sessions", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=10.0, help="streaming time per K")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.model:
        pipe = load_pipeline(args.model)
    else:
        from bench_streaming import default_pipeline

        pipe = default_pipeline(Path(tempfile.mkdtemp()))
    ks = [int(k) for k in args.sessions.split(",")]
    print(
        f"{torch.get_num_threads()} threads; {pipe.fps} fps video; {args.seconds:.0f} s per K (first 2 s not counted)"
    )
    print(
        "\n1. concurrent sessions through the server: steps one by one, batched continuously (--batching), "
        "batched with waits (--batch-wait-ms 5)"
    )
    print(
        f"{'K':>3} {'batching':>10} {'fps mean':>9} {'fps worst':>9} {'lip p50 ms':>11} {'lip p95 ms':>11} "
        f"{'compute p95':>12}  real time?"
    )
    servers = {wait: serve(pipe, max(ks), wait) for wait in (None, 0.0, 5.0)}
    try:
        for k in ks:
            for wait, (_, url) in servers.items():
                runs = asyncio.run(concurrent(url, k, args.seconds))
                fps = [r["fps"] for r in runs]
                p50 = max(r.get("latency_ms_p50") or 0 for r in runs)
                p95 = max(r.get("latency_ms_p95") or 0 for r in runs)
                comp = max(r.get("compute_ms_p95") or 0 for r in runs)
                ok = "yes" if min(fps) >= 0.95 * pipe.fps and p95 < 1000 else "no"
                mode = "off" if wait is None else f"{wait:.0f} ms" if wait else "continuous"
                print(
                    f"{k:>3} {mode:>10} {np.mean(fps):9.1f} {min(fps):9.1f} {p50:11.0f} {p95:11.0f} {comp:12.1f}  {ok}"
                )
                time.sleep(1.0)
    finally:
        for server, _ in servers.values():
            server.should_exit = True
    print("\n2. model cost of one frame for each of K sessions: one by one vs batched (step_many)")
    print(
        f"{'K':>3} {'one by one ms':>14} {'batched ms':>11} {'speed-up':>9} {'batched sessions in real time':>30}"
    )
    for k in ks:
        alone, together = frame_cost(pipe, k, batched=False), frame_cost(pipe, k, batched=True)
        fits = int(1 / pipe.fps / (together / k)) if together > 0 else 0
        print(f"{k:>3} {alone * 1000:14.1f} {together * 1000:11.1f} {alone / together:8.2f}x {fits:>30}")
    size = pipe.autoencoder.config.image_height
    print(f"\n3. encoding one {size}x{size} frame for the wire")
    for label, (ms, nbytes) in encode_costs(size).items():
        print(f"{label:>26} {ms:6.2f} ms {nbytes / 1024:6.1f} KiB/frame")


if __name__ == "__main__":
    main()
