"""Loss curve of a training run: a CSV that survives resume exactly, and a PNG plot of it."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from avatarlm.io import atomic_write_bytes

COLUMNS = ("step", "loss", "val_loss", "lr", "grad_norm", "seconds")


class LossLog:
    """Rows keyed by step in ``path`` (CSV); opening it with ``resume_step`` drops rows after that step, so
    a run resumed from a checkpoint rewrites the steps it repeats instead of duplicating them."""

    def __init__(self, path: str | os.PathLike[str], resume_step: int = 0) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, str]] = []
        if self.path.is_file() and resume_step > 0:
            with self.path.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self._flush()

    def add(self, step: int, **values: float | None) -> None:
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown loss-log columns {sorted(unknown)}; known: {COLUMNS}")
        row = {c: "" for c in COLUMNS}
        row["step"] = str(step)
        for k, v in values.items():
            row[k] = "" if v is None else f"{v:.6g}"
        self.rows.append(row)

    def _flush(self) -> None:
        lines = [",".join(COLUMNS)] + [",".join(r.get(c, "") for c in COLUMNS) for r in self.rows]
        atomic_write_bytes(self.path, ("\n".join(lines) + "\n").encode())

    def save(self) -> None:
        self._flush()

    def series(self, column: str) -> tuple[list[int], list[float]]:
        pts = [(int(r["step"]), float(r[column])) for r in self.rows if r.get(column, "") != ""]
        return [p[0] for p in pts], [p[1] for p in pts]

    def plot(
        self,
        path: str | os.PathLike[str],
        title: str = "training loss",
        ylabel: str = "flow-matching loss",
    ) -> Path:
        """Write a PNG of training loss (and validation loss where logged) against step."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        steps, loss = self.series("loss")
        if steps:
            ax.plot(steps, loss, lw=0.8, alpha=0.5, label="train (per log step)")
            k = max(1, len(loss) // 50)
            if k > 1:
                smooth = [sum(loss[max(0, i - k + 1) : i + 1]) / len(loss[max(0, i - k + 1) : i + 1])
                          for i in range(len(loss))]  # fmt: skip
                ax.plot(steps, smooth, lw=1.5, label=f"train (mean of {k})")
        vsteps, vloss = self.series("val_loss")
        if vsteps:
            ax.plot(vsteps, vloss, "o-", lw=1.5, ms=3, label="validation")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if steps or vsteps:
            ax.legend()
        fig.tight_layout()
        out = Path(path)
        tmp = out.with_name(out.name + ".tmp.png")
        fig.savefig(tmp)
        plt.close(fig)
        os.replace(tmp, out)
        return out
