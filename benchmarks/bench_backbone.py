"""Backbone step time: one incremental frame group (latent + condition tokens) on top of a KV cache.

    python benchmarks/bench_backbone.py --threads 2 --presets tiny small --contexts 0 1000 2000

Compares the library path (``Qwen2Model`` with a ``DynamicCache``, what ``generate`` would do) with
``Backbone.step`` (lean layers over the same weights, own cache). Both append the same tokens with the
same frame-causal mask (the crop that resets the cache after each step is timed too); the table shows ms
per step (median of the quietest burst, and of all steps).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from transformers import DynamicCache

from avatarlm.backbone import Backbone, BackboneConfig
from avatarlm.sequence import frame_causal_mask


def time_steps(run: Callable[[], object], bursts: int, burst: int) -> tuple[float, float]:
    """(median of the quietest burst, median of all) in ms."""
    times: list[list[float]] = []
    for _ in range(bursts):
        times.append([])
        for _ in range(burst):
            t0 = time.perf_counter()
            run()
            times[-1].append((time.perf_counter() - t0) * 1e3)
        time.sleep(0.05)
    quiet = min(statistics.median(b) for b in times)
    return quiet, statistics.median([t for b in times for t in b])


def bench(
    preset: str, context: int, new_tokens: int, bursts: int, burst: int
) -> dict[str, tuple[float, float]]:
    torch.manual_seed(0)
    backbone = Backbone(BackboneConfig.preset(preset)).eval()
    h = backbone.config.hidden_size
    prefix = torch.randn(1, context, h)
    new = torch.randn(1, new_tokens, h)
    # The context is earlier groups (all visible); the new tokens form one group.
    groups = torch.cat([torch.zeros(context, dtype=torch.long), torch.ones(new_tokens, dtype=torch.long)])
    mask = frame_causal_mask(groups[context:], groups)
    prefix_mask = frame_causal_mask(groups[:context])
    pos_prefix, pos_new = torch.arange(context), torch.arange(context, context + new_tokens)
    results = {}
    with torch.inference_mode():
        # Prefill once; after each timed step the cache is cropped back to the context.
        lean_cache = backbone.new_cache()
        library_cache = DynamicCache(config=backbone.model.config)
        if context:
            backbone.step(prefix, pos_prefix, lean_cache, prefix_mask)
            backbone.model(
                inputs_embeds=prefix,
                position_ids=pos_prefix[None],
                attention_mask=prefix_mask,
                cache=library_cache,
                use_cache=True,
            )

        def run_lean() -> None:
            backbone.step(new, pos_new, lean_cache, mask)
            lean_cache.crop(context)

        def run_library() -> None:
            backbone.model(
                inputs_embeds=new,
                position_ids=pos_new[None],
                attention_mask=mask,
                cache=library_cache,
                use_cache=True,
            )
            library_cache.crop(-new_tokens)

        for name, run in (("library", run_library), ("step", run_lean)):
            run()  # warm-up
            results[name] = time_steps(run, bursts, burst)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=["tiny"])
    parser.add_argument("--contexts", nargs="+", type=int, default=[0, 1000, 2000])
    parser.add_argument("--latent-tokens", type=int, default=16)
    parser.add_argument("--cond-tokens", type=int, default=2)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--burst", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    new_tokens = args.latent_tokens + args.cond_tokens
    print(f"threads={args.threads}, {new_tokens} new tokens per step; ms per step: quietest burst / all")
    print(f"{'preset':<8}{'context':>8}{'library':>18}{'Backbone.step':>18}{'ratio':>8}")
    for preset in args.presets:
        for context in args.contexts:
            r = bench(preset, context, new_tokens, args.bursts, args.burst)
            lib, lean = r["library"], r["step"]
            print(
                f"{preset:<8}{context:>8}{lib[0]:>9.2f} /{lib[1]:>6.2f}{lean[0]:>9.2f} /{lean[1]:>6.2f}"
                f"{lib[0] / lean[0]:>8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
