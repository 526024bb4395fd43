"""FLOPs, bytes and memory per generated frame for each preset, projected onto an NVIDIA H100 and onto this
machine's CPU, and what a paper-scale training run costs. Writes the whole of ``docs/scaling.md``.

    OMP_NUM_THREADS=1 python benchmarks/scaling.py --out docs/scaling.md

Every model but the condition encoders is built on the meta device (shapes only: the paper backbone alone is
2.77 B parameters) and run there once. Forward hooks on every ``Linear`` / ``Conv2d`` and on the attention
modules count FLOPs (1 multiply-add = 2 FLOPs), weights read and activations from the shapes they see, and
``FlopCounterMode`` counts the same run as a check. The backbone's KV-cached step is counted in closed form
from its config (``tests/test_scaling.py`` checks it against ``FlopCounterMode`` on a real step). The
condition encoders (14 M parameters at paper scale) run with real weights on one second of input. The CPU
figures (fp32 matmul throughput, copy bandwidth, per-op overhead) are measured here on one thread.

The parts, one idea a file, import each other by name from this folder (``benchmarks/`` is not a package):
``scaling_count.py`` (counting), ``scaling_systems.py`` (the presets as systems, training windows),
``scaling_hardware.py`` (H100, this CPU, projections), ``scaling_render.py`` and
``scaling_render_projections.py`` (the text).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # run as a script it is there already; loaded by path it is not
    sys.path.insert(0, _HERE)

from scaling_hardware import Hardware, measure_cpu  # noqa: E402
from scaling_measured import measured_on_gpu  # noqa: E402
from scaling_render import Report, flops, intro, memory, presets, roofline  # noqa: E402
from scaling_render_projections import against_the_paper, on_cpu, on_h100, training  # noqa: E402
from scaling_systems import SystemCosts, count_system, systems  # noqa: E402


def render(results: list[SystemCosts], cpu: Hardware, threads: int) -> str:
    """The whole document; ``__RUNTIME__`` stands for the script's run time."""
    rep = Report.build(results, cpu, threads)
    sections = [intro(), presets(rep), flops(rep), memory(rep), roofline(rep)]
    sections += [on_h100(rep), on_cpu(rep), training(rep), measured_on_gpu(rep), against_the_paper(rep)]
    return "\n".join(line for section in sections for line in section)


def _process_seconds(fallback: float) -> float:
    """Wall seconds since this process started (Linux), imports included; ``fallback`` elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return fallback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the markdown here (default: print it)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    cpu = measure_cpu()
    results = [count_system(s) for s in systems()]
    text = render(results, cpu, torch.get_num_threads())
    text = text.replace("__RUNTIME__", f"{_process_seconds(time.perf_counter() - start):.0f}")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        print(f"wrote {args.out}; {_process_seconds(time.perf_counter() - start):.1f} s since start")
    else:
        print(text)


if __name__ == "__main__":
    main()
