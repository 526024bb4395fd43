"""The text of ``docs/scaling.md``, second half: the counts projected onto one H100 and onto this CPU, what
training costs, and the ``paper`` preset against the MIDAS paper."""

from __future__ import annotations

import os

from scaling_hardware import GPU_HOUR_PRICE, H100, TRAIN_MFU, lip_latency_floor, waited_frames
from scaling_render import Report, g, millions, ms, rtf, table
from scaling_systems import TrainingWindow, training_memory

GB = 1e9
BATCH = 256  # windows per step of the paper-scale runs


def on_h100(rep: Report) -> list[str]:
    rows = []
    for r in rep.results:
        on = rep.gpu[r.system.name]
        rows.append(
            f"`{r.system.name}` | {ms(on.frame_s)} | {on.bound} | {r.ops:,.0f} | {ms(on.eager_s)} | "
            f"{rtf(on.rtf)} / {rtf(on.rtf_eager)} | {ms(on.lip_s)} ms | {on.sessions:,}"
        )
    paper, pg = rep["paper"], rep.gpu["paper"]
    pc = paper.system.ar
    waits = waited_frames(pc.chunk_size, pc.conditions.lookahead_frames)
    launch_bound = [
        f"`{r.system.name}`"
        for r in rep.results
        if r.ops * H100.seconds_per_op > rep.gpu[r.system.name].frame_s
    ]
    return [
        "## Projection: one NVIDIA H100\n",
        "Assumed (published figures, then utilisations that are this document's assumptions):\n",
        f"- {H100.name}: dense bf16 peak {H100.peak_flops / 1e12:.1f} TFLOP/s (1,979 only with 2:4 sparsity), "
        f"HBM3 {H100.peak_bandwidth / 1e12:.2f} TB/s, 80 GB, 50 MB L2. The PCIe card has 756 TFLOP/s and "
        "2.0 TB/s: scale the memory-bound rows by 1.7.",
        f"- Achievable: {H100.flop_utilisation:.0%} of peak FLOP/s for matmuls and convolutions "
        f"({H100.flops / 1e12:.0f} TFLOP/s), {H100.bandwidth_utilisation:.0%} of peak bandwidth "
        f"({H100.bandwidth / 1e12:.2f} TB/s).",
        "- Per kernel: time = max(FLOPs / achievable FLOP/s, bytes / achievable bandwidth), summed over the "
        "counted kernels (a roofline per kernel, not per frame). Batch-1 decoding is memory-bandwidth bound: "
        "each step reads every weight once to multiply it by a few dozen tokens.",
        f"- Eager PyTorch pays about {H100.seconds_per_op * 1e6:.0f} µs of CPU-side dispatch and launch per "
        "aten op; launches overlap the kernels, so the eager time is max(roofline, ops x 5 µs). The op counts "
        "(backbone, head, decoder; not the condition encoders) come from the meta runs, where attention runs "
        "unfused, so they overcount a little. CUDA graphs or "
        "`torch.compile(mode='reduce-overhead')` remove most of it; the roofline column assumes that.",
        "- Audio-to-lip floor (the time a frame leaves minus the arrival of the audio at its timestamp) for a "
        "chunk's first frame: a 20 ms input chunk + its own frame + the look-ahead (2 frames) + the rest of its "
        "chunk (n - 1 frames) + its compute (the step that opens the chunk, head, decode). Sessions: batched "
        "rows sharing each weight read (a batched KV cache the server does not have yet), in real time at "
        "25 fps and within 90 % of 80 GB.",
        "",
        *table(
            "system | per frame, roofline ms | bound | aten ops per frame | eager ms | "
            "real-time factor at 25 fps, roofline / eager | audio-to-lip floor | sessions per H100",
            rows,
        ),
        f"By this projection the paper-scale system runs {'inside' if pg.rtf_eager >= 1 else 'outside'} real "
        f"time on one H100: {ms(pg.frame_s)} ms of {1000 / paper.system.fps:.0f} ms per frame with graphs, "
        f"{ms(pg.eager_s)} ms eager, and its latency is set by the chunk, not the compute: {ms(pg.lip_s)} ms, "
        f"of which {waits * 1000 // paper.system.fps} ms is waiting for its own frame, the "
        f"{pc.conditions.lookahead_frames}-frame look-ahead and the rest of the chunk of {pc.chunk_size}. "
        f"Launch-bound in eager mode (ops x {H100.seconds_per_op * 1e6:.0f} µs > roofline): "
        f"{', '.join(launch_bound) or 'none'} — at batch 1 the per-op cost, not the GPU, sets the eager speed, "
        "so CUDA graphs are the first step of any GPU deployment. The session counts are roofline bounds for "
        "the model alone; for `tiny` and `small` the CPU-side work per session (audio encoding, JPEG, the "
        "socket) would cap them long before.\n",
    ]


def on_cpu(rep: Report) -> list[str]:
    cpu, tiny = rep.cpu, rep["tiny"]
    rows = []
    for r in rep.results:
        on = rep.host[r.system.name]
        lip = f"{ms(on.lip_s)} ms" if on.rtf_eager >= 1 else "not real time"
        rows.append(f"`{r.system.name}` | {ms(on.frame_s)} | {ms(on.eager_s)} | {rtf(on.rtf_eager)} | {lip}")
    ht, hp = rep.host["tiny"], rep.host["paper"]
    return [
        "## Projection: this CPU\n",
        f"Measured by the script on one thread (`torch.get_num_threads() == {rep.threads}`, "
        f"`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}`) on a machine shared with a training "
        f"job: fp32 1024x1024 matmul **{cpu.peak_flops / 1e9:.0f} GFLOP/s**, copy bandwidth "
        f"**{cpu.peak_bandwidth / 1e9:.1f} GB/s** (read + write of 64 MiB), **{cpu.seconds_per_op * 1e6:.1f} µs** "
        "per small eager op (`F.linear` on a 1x16 input). The README measured 96–170 GFLOP/s on two threads. "
        "Time per frame = the same per-kernel roofline with these figures in fp32, plus ops x the per-op cost "
        "(on a CPU dispatch and compute share the thread). Two threads would at best halve the compute-bound "
        "part (not measured here, to leave the training job its core). With that job beside it these "
        "measurements move by up to 2x between runs: rerun the script for the figures of the moment.\n",
        *table(
            "system | roofline ms | + per-op overhead, ms | real-time factor at 25 fps, 1 thread | "
            "audio-to-lip floor",
            rows,
        ),
        f"Calibration: for `tiny` the projection gives {ms(ht.eager_s)} ms per frame on one thread "
        f"(backbone {ms(tiny.backbone.seconds(cpu))}, head {ms(tiny.head.seconds(cpu))}, decode "
        f"{ms(tiny.ae.decode.seconds(cpu))} ms of roofline, {ms(tiny.ops * cpu.seconds_per_op)} ms of op "
        "overhead); the README's streaming benchmark measured 39 ms per frame (p50) on two threads — backbone + "
        "head 22.4, decode 16.0 — at 15 % of the matmul peak. The gap is what the roofline leaves out at these "
        "sizes: element-wise kernels, small-matmul inefficiency and Python. Treat the CPU rows as lower bounds; "
        f"`paper` would take {ms(hp.eager_s / 1000)} s per frame, {1 / hp.rtf_eager:,.0f}x "
        "slower than real time.\n",
    ]


def _h100_hours(windows: float, tw: TrainingWindow) -> float:
    """H100-hours for ``windows`` training windows at the assumed model FLOP utilisation."""
    return windows * tw.total / (TRAIN_MFU * H100.peak_flops) / 3600


def _epoch_windows(tw: TrainingWindow, hours: float, fps: float = 25) -> float:
    """Windows in one epoch of ``hours`` of video: every frame predicted once."""
    return hours * 3600 * fps / tw.predicted_frames


def training(rep: Report) -> list[str]:
    wf, windows, paper = rep.window_frames, rep.windows, rep["paper"]
    tt, tp = windows["tiny"], windows["paper"]
    rows = []
    for name, tw in windows.items():
        backbone, attention, head, rest, total = (
            f"{x / 1e12:.3g}"
            for x in (tw.backbone, tw.attention, tw.head, tw.conditions + tw.embed, tw.total)
        )
        rows.append(
            f"`{name}` | {tw.tokens:,} | {tw.predicted_frames} | {backbone} T | {attention} T | {head} T | "
            f"{rest} T | **{total} TFLOP**"
        )
    # README, "Where training stands": 32 windows per step at 17 ms on an H100; 8 windows in 2.1 s on 2 threads
    h100_step, cpu_step = 0.017, 2.1
    tiny_mfu = 32 * tt.total / h100_step / H100.peak_flops
    achieved = TRAIN_MFU * H100.peak_flops
    epoch = _epoch_windows(tp, 20000)
    steps = 100_000
    runs = [
        ("pre-training, 20,000 h at 25 fps, 1 epoch", epoch, tp),
        ("pre-training, 20,000 h at 12.5 fps, 1 epoch", epoch / 2, tp),
        ("duplex SFT, 400 h at 25 fps, 3 epochs", 3 * _epoch_windows(tp, 400), windows["paper duplex"]),
        (
            f"{steps:,} steps x {BATCH} windows (= {steps * BATCH / epoch:.2f} epochs at 25 fps)",
            steps * BATCH,
            tp,
        ),
    ]
    run_rows = []
    for label, n, tw in runs:
        hours = _h100_hours(n, tw)
        run_rows.append(
            f"{label} | {n / 1e6:,.1f} M | {n / BATCH:,.0f} | {n * tw.total:.2e} | {hours:,.0f} | "
            f"{hours / 64 / 24:,.1f} | ${hours * GPU_HOUR_PRICE:,.0f}"
        )
    encode = paper.ae.encode.flops
    cache_frames = 20400 * 3600 * 25
    cache_hours = cache_frames * encode / H100.flops / 3600
    mem = training_memory(paper, tp.tokens)
    per_gpu = 0.9 * H100.memory_bytes - mem["state"] / 8
    return [
        "## Training cost\n",
        f"A training window is f_0 + {wf - 1} frames (`ARTrainConfig.window_frames = {wf}`), its tokens laid out "
        "by `avatarlm.sequence.build_layout` (condition groups + latent groups; for n = 6 the last chunk's "
        "condition group is whole). FLOPs per window, forward + backward = 3 x forward:\n",
        "- backbone matmuls: **6 x parameters x tokens**; attention: 3 x 4 x layers x L² x d — every score of "
        "the L x L frame-causal mask is computed (SDPA with an additive mask skips nothing; a block-sparse "
        "kernel would skip about half);",
        "- head: per predicted frame, the condition encoded once and `loss_repeat` denoising passes (4 for the "
        "paper head preset, 1 for `tiny`), plus the time modulation of every draw; conditions: the per-frame "
        "encoder FLOPs x window frames; latent projection: 6 x C x d x latent tokens. The autoencoder is frozen "
        "(latents are cached once, costed below). `paper duplex` hears two audio streams (one more condition "
        "token per frame).",
        "",
        *table(
            "system | tokens per window | predicted frames | backbone 6NL | attention | head | "
            "conditions + projection | total per window",
            rows,
        ),
        "Calibration against the README's measured `tiny` runs: a window is "
        f"{tt.total / 1e9:.1f} GFLOP ({tt.tokens} tokens); 32 windows per step in {h100_step * 1e3:.0f} ms on an "
        f"H100 is {32 * tt.total / h100_step / 1e12:.0f} TFLOP/s, {tiny_mfu:.1%} of the bf16 peak; 8 windows per "
        f"step in {cpu_step} s on the CPU's two threads is {8 * tt.total / cpu_step / 1e9:.0f} GFLOP/s, near the "
        "96–170 GFLOP/s two-thread matmul peak the README measured. A 4x256 model cannot fill a GPU; the "
        "paper-scale figures below assume a model that can.\n",
        "Paper-scale runs, assuming:\n",
        f"- H100 SXM bf16 at **{TRAIN_MFU:.0%} model FLOP utilisation** ({achieved / 1e12:.0f} TFLOP/s per GPU), "
        "typical of tuned dense 1–10 B training with FSDP and flash attention. This code's fp32 master weights "
        f"under bf16 autocast and unfused heads would do worse; `tiny` reached {tiny_mfu:.1%}, but it is "
        "launch-bound, which a 3 B model is not.",
        f"- One epoch = every frame predicted once: hours x 3600 x fps / {tp.predicted_frames} windows; a global "
        f"batch of {BATCH} windows ({BATCH * tp.tokens / 1e6:.2f} M tokens per step, an LLM-like batch).",
        "- 20,000 h of pre-training video and 400 h of duplex SFT (as in the MIDAS paper); 25 fps as rendered "
        "here, 12.5 fps as the paper's demos.",
        f"- A rental price of ${GPU_HOUR_PRICE:.2f} per H100-hour, only to turn GPU-hours into money.",
        "",
        *table(
            f"run | windows | steps at batch {BATCH} | FLOPs | H100-hours | days on 64 H100s | cost",
            run_rows,
        ),
        f"Caching the latents of 20,400 h at 25 fps once (the paper encoder, {g(encode)} GFLOP per "
        f"frame, at the inference utilisation above): {cache_frames * encode:.2e} FLOPs, "
        f"**{cache_hours:,.0f} H100-hours**, {cache_hours / _h100_hours(epoch, tp):.0%} of an epoch of AR "
        "pre-training — before decoding the video and reading it, which at this scale may cost more than the "
        "encoder.\n",
        f"Memory, paper preset: {millions(paper.parameters['ar'])} trained parameters x 20 bytes (fp32 weights, "
        f"gradients, two AdamW moments, EMA) = **{mem['state'] / GB:.0f} GB** of state, so one 80 GB card cannot "
        f"train it; FSDP / ZeRO-3 over 8 GPUs leaves {mem['state'] / 8 / GB:.0f} GB each (`avatarlm train ar "
        "--set sharding=fsdp` under `torchrun` shards with PyTorch's FSDP2 the backbone's decoder layers, the "
        "head's blocks and its modulation layers: 2.78 + 0.20 + 0.21 = 3.18 B of the 3.20 B; the replicated "
        "rest, 0.02 B, costs 0.4 GB per GPU). Activations of one "
        f"{tp.tokens:,}-token window: {mem['activations'] / GB:.1f} GB without checkpointing, "
        f"{mem['checkpointed'] / GB:.2f} GB with per-layer checkpointing (`BackboneConfig.gradient_checkpointing`), "
        f"so a GPU of that FSDP group holds about {per_gpu / mem['activations']:.0f} windows at once without "
        f"checkpointing and {per_gpu / mem['checkpointed']:.0f} with it (head activations not included).\n",
    ]


def against_the_paper(rep: Report) -> list[str]:
    paper, pg = rep["paper"], rep.gpu["paper"]
    pc, ae = paper.system.ar, paper.system.ae
    pp, pb, hd = paper.parameters, pc.backbone, pc.head
    k, n, t = pc.cond_tokens_per_frame, pc.chunk_size, pc.tokens_per_frame
    qwen_embedding = 151_936 * pb.hidden_size
    la = pc.conditions.lookahead_frames
    slow = lip_latency_floor(n, la, 12.5, pg.first_frame_s)
    slow0 = lip_latency_floor(n, 0, 12.5, pg.first_frame_s)
    verdict = (
        ": so the paper's figure, if at 12.5 fps with chunks of 6, has no look-ahead and counts from later than "
        "a chunk's first audio (e.g. from the end of its audio) [INF]"
        if slow0 > 0.5
        else ""
    )
    epoch_hours = _h100_hours(_epoch_windows(rep.windows["paper"], 20000), rep.windows["paper"])
    rows = [
        [
            "backbone",
            "Qwen2.5-3B [T] (Qwen's model card: 3.09 B, 2.77 B without the embedding)",
            f"{millions(pp['backbone'])} without the embedding; {millions(pp['backbone'] + qwen_embedding)} with "
            "Qwen's 151,936-row table",
        ],
        [
            "diffusion head",
            "PixArt-α-like, ~0.5 B [T]; 4 steps [P]",
            f"frame transformer {hd.depth}x{hd.width}, {millions(pp['head'])} (of which "
            f"{millions(pp['head_modulation'])} in the AdaLN modulation linears), {hd.sample_steps} steps",
        ],
        [
            "tokens per chunk",
            "6 audio + 10 pose + 6 x 60 frame = 376 [P-hist]",
            f"{n} x {k} condition + {n} x {t} = {n * (k + t)}",
        ],
        [
            "autoencoder",
            "f64, 128 channels, ≤ 60 tokens per frame [P, T]",
            f"f{ae.downsample_factor}, {pc.latent_channels} channels x {ae.latent_height} x {ae.latent_width} = "
            f"{t} tokens; decode {g(paper.ae.decode.flops)} GFLOP per frame (the paper gives none)",
        ],
        [
            "latency",
            "end-to-end below 500 ms [T]; demos at 12.5 fps [P-asset], where a chunk of 6 is 480 ms [INF]",
            f"floor {ms(pg.lip_s)} ms at 25 fps on an H100 (compute {ms(pg.first_frame_s)} ms of it); at 12.5 fps "
            f"{ms(slow)} ms with the {la}-frame look-ahead, {ms(slow0)} ms without one{verdict}",
        ],
        [
            "data",
            "~20,000 h pre-training + 400 h duplex SFT [P]",
            f"one epoch: {epoch_hours:,.0f} H100-hours at 25 fps, {epoch_hours / 2:,.0f} at 12.5 fps "
            "(assumptions above)",
        ],
        ["hardware, hyper-parameters", "NOT FOUND", "—"],
    ]
    return [
        "## Against the paper\n",
        "Sources: the MIDAS paper (arXiv 2508.19320) and its project page. Each claim about the paper is tagged "
        "with where it comes from: [P] the paper or its project page; [P-hist] text the authors have since "
        "removed from the project page; [P-asset] measured from the demo videos on the project page; [T] a "
        "third-party summary; [INF] our inference.\n",
        *table("quantity | paper | here (`paper` preset)", (" | ".join(row) for row in rows)),
    ]
