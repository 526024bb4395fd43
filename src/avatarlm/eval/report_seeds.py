"""How much a report's figures move with the session's noise seed: ``avatarlm eval --seeds 0,1,2`` writes
one report per seed (``OUT/seed-N``; the clips are the same, only the sessions' noise differs) and a table
of each headline figure per seed with its mean ± standard deviation (``OUT/seeds.md``)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np

from avatarlm.eval.report_write import load_report

_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def _numbers(cell: str) -> list[tuple[float, int]]:
    """The figures of a headline cell with their decimals, leaving out parenthesised parts (offsets, counts)."""
    plain = re.sub(r"\([^)]*\)", "", cell)
    out = []
    for text in _NUMBER.findall(plain):
        digits = text.replace(",", "")
        out.append((float(digits), len(digits.split(".")[1]) if "." in digits else 0))
    return out


def spread_cell(cells: list[str]) -> str:
    """Mean ± standard deviation (over the cells) of each figure of cells of one shape, e.g. three seeds'
    "+0.59 / +0.59 (+0)" -> "+0.53 ± 0.05 / +0.53 ± 0.05"; "—" where they hold no figures or differ in shape."""
    parsed = [_numbers(c) for c in cells]
    if not parsed[0] or any(len(p) != len(parsed[0]) for p in parsed):
        return "—"
    parts = []
    for i, (_, decimals) in enumerate(parsed[0]):
        values = np.array([p[i][0] for p in parsed])
        sign = "+" if cells[0].lstrip().startswith("+") else ""
        sd = values.std(ddof=1) if len(values) > 1 else 0.0
        parts.append(f"{values.mean():{sign}.{decimals}f} ± {sd:.{decimals}f}")
    return " / ".join(parts)


def seed_table(folders: Sequence[str | os.PathLike[str]]) -> str:
    """Markdown: each headline measure's generated figure per report (one per seed) and their spread."""
    loaded = []
    for folder in folders:
        data = load_report(folder)
        loaded.append((data["config"].get("seed", 0), data["headline"]))
    head = ["measure", *(f"seed {seed}" for seed, _ in loaded), "mean ± sd"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for measure in loaded[0][1]:
        cells = [h.get(measure, {}).get("generated", "—") for _, h in loaded]
        lines.append("| " + " | ".join([measure, *cells, spread_cell(cells)]) + " |")
    return "\n".join(lines)
