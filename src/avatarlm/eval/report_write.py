"""Write a :class:`~avatarlm.eval.report.Report` as report.md (tables), report.json (every number) and PNG
plots: mouth traces, a frame strip, drift over time and the latency histogram."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from avatarlm.eval.duplex_report import duplex_headline, duplex_markdown
from avatarlm.eval.lipsync import best_lag
from avatarlm.eval.report import Report, mean_curve

COLUMNS = ("generated", "ceiling", "floor", "truth")
HEADERS = ("generated", "ceiling: AE of the truth", "floor: still reference", "probe on true frames")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _row(name: str, values: list[str]) -> str:
    return "| " + " | ".join([name, *values]) + " |"


def headline(report: Report) -> dict[str, dict[str, str]]:
    """measure -> source -> formatted figure (the report's first table; also printed by the CLI)."""
    clips = report.clips
    out: dict[str, dict[str, str]] = {}

    def sync(attr: str) -> dict[str, str]:
        cells = {}
        for s in COLUMNS:
            curve = mean_curve([getattr(c, attr)[s] for c in clips])
            lag, r = best_lag(curve)
            cells[s] = f"{curve[0]:+.2f} / {r:+.2f} ({lag:+d})"
        return cells

    out["lip-sync r with the true mouth: offset 0 / best (offset)"] = sync("mouth")
    out["mouth vs audio envelope r: offset 0 / best (offset)"] = sync("envelope")
    out["head pose MAE yaw / pitch / roll, deg"] = {
        s: " / ".join(f"{v:.1f}" for v in np.mean([c.pose_mae[s] for c in clips], axis=0)) for s in COLUMNS
    }
    hits = {s: np.sum([c.instruction_hits[s] for c in clips], axis=0) for s in COLUMNS}
    out["expression accuracy inside instruction spans"] = {
        s: f"{h[0] / h[1]:.2f} ({h[1]} frames)" if h[1] else "no spans" for s, h in hits.items()
    }
    out["static-region distance to the reference, grey levels"] = {
        s: f"{np.mean([c.static[s] for c in clips]):.1f}" for s in COLUMNS
    }
    tf = report.teacher_forced
    out["teacher-forced next frame: PSNR dB / SSIM"] = {
        s: f"{tf[s][0]:.2f} / {tf[s][1]:.3f}" if s in tf else "—" for s in COLUMNS
    }
    out["Fréchet distance to the true frames (probe features)"] = {
        s: f"{report.frechet[s]:.2f}" if s in report.frechet else "0" for s in COLUMNS
    }
    out.update(duplex_headline(report.duplex))
    return out


def markdown(report: Report, plots: dict[str, str]) -> str:
    cfg = report.config
    lines = [
        f"# Evaluation report: `{report.model}`",
        "",
        f"{len(report.clips)} clips ({', '.join(cfg.languages)}; {cfg.clips_per_language} per language, "
        f"~{cfg.seconds:g} s each) of unseen test-split faces with held-out voices, rendered by the synthetic "
        "world; every figure read from pixels by the pixel probe. `generated`: the model's frames from a "
        f"streaming session (window roll: {cfg.roll}; anchor {cfg.anchor:g}; lip strength {cfg.lip_strength:g}) "
        "started on the clip's first true frame and driven by "
        "its audio, pose and "
        "instructions. `ceiling`: the autoencoder's reconstruction of the true frames (the best a model in "
        "this latent space can do). `floor`: the first true frame held still.",
        "",
        _row("measure", list(HEADERS)),
        _row("---", ["---"] * len(HEADERS)),
    ]
    for name, cells in headline(report).items():
        lines.append(_row(name, [cells[s] for s in COLUMNS]))
    lines += ["", "## Lip-sync per language", "", _row("language", ["held out of training", "clips"] +
              [f"{h}: r (offset)" for h in HEADERS[:2]] + ["probe on true frames"]),  # fmt: skip
              _row("---", ["---"] * 5)]  # fmt: skip
    for lang in cfg.languages:
        group = [c for c in report.clips if c.language == lang]
        figures = []
        for s in ("generated", "ceiling", "truth"):
            lag, r = best_lag(mean_curve([c.mouth[s] for c in group]))
            figures.append(f"{r:+.2f} ({lag:+d})")
        lines.append(_row(lang, ["yes" if group[0].held_out_language else "no", str(len(group)), *figures]))
    lines += ["", "## Fréchet distance (an FVD stand-in that needs no download)", "",
              "Between Gaussians fitted to per-frame features of the true frames and of each set: the pixel "
              "probe's 256-d features (what the face shows) and a 4x4 grid of sharpness (log mean |Laplacian|), "
              "each standardised by the true frames' statistics. The degraded true frames show that blur and "
              "noise raise it.", "", "| frames | distance |", "|---|---|"]  # fmt: skip
    lines += [f"| {name} | {value:.2f} |" for name, value in report.frechet.items()]
    lines += duplex_markdown(report.duplex, HEADERS)
    if report.drift:
        lines += ["", "## Long sessions: drift and compute", "",
                  "Free-running sessions whose inputs loop the first clip's. Static-region distance: mean absolute "
                  "difference to the reference over pixels the true clip never changes (background, clothes).", "",
                  "First and last segment: a fifth of the session each, at most a minute (the drift bound compares "
                  "the last minute of a 10-minute session with its first).", "",
                  "| session | segment | static distance, first / last segment | lip-sync r, first / last segment | "
                  "compute ms p50 / p95 / p99 |", "|---|---|---|---|---|"]  # fmt: skip
        for d in report.drift:
            p = np.percentile(d.compute_ms, [50, 95, 99])
            lines.append(
                f"| {d.seconds:g} s | {d.segment_seconds:g} s | {d.static_first:.1f} / {d.static_last:.1f} | "
                f"{d.mouth_first:+.2f} / {d.mouth_last:+.2f} | {p[0]:.1f} / {p[1]:.1f} / {p[2]:.1f} |"
            )
        longest = max(report.drift, key=lambda d: d.seconds)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in longest.stage_ms.items())
        lines += ["", f"Mean per stage (ms) in the longest session: {stages}. Unpaced (as fast as it goes); "
                  "`benchmarks/bench_streaming.py` measures audio-to-lip latency at wall-clock pace."]  # fmt: skip
    lines.append("")
    for title, name in plots.items():
        lines += [f"![{title}]({name})", ""]
    return "\n".join(lines)


def plot_traces(report: Report, path: Path) -> None:
    plt = _plt()

    def z(x: list[float]) -> np.ndarray:
        a = np.asarray(x)
        return (a - a.mean()) / (a.std() + 1e-9)

    fig, axes = plt.subplots(
        len(report.traces), 1, figsize=(9, 2.3 * len(report.traces)), dpi=100, squeeze=False
    )
    for ax, tr in zip(axes[:, 0], report.traces, strict=True):
        t = np.arange(1, len(tr["truth"]) + 1) / 25.0
        ax.plot(t, z(tr["truth"]), color="black", lw=1.3, label="true mouth opening")
        ax.plot(t, z(tr["ceiling"]), color="tab:green", lw=0.9, alpha=0.8, label="probe: AE of truth")
        ax.plot(t, z(tr["generated"]), color="tab:red", lw=1.0, label="probe: generated")
        ax.set_title(tr["key"], fontsize=9)
    axes[-1, 0].set_xlabel("seconds")
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_strip(report: Report, path: Path) -> None:
    plt = _plt()
    rows = list(report.strip)
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 1.8 * len(rows)), dpi=100, squeeze=False)
    for ax, name in zip(axes[:, 0], rows, strict=True):
        ax.imshow(np.concatenate(list(report.strip[name]), axis=1))
        ax.set_ylabel(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_drift(report: Report, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    for i, d in enumerate(sorted(report.drift, key=lambda d: -d.seconds)):  # shorter sessions drawn on top
        x = np.arange(1, len(d.static_per_second) + 1)
        ax.plot(x, d.static_per_second, ls=("-", "--", ":")[i % 3], label=f"{d.seconds:g} s session")
    ax.set_xlabel("seconds into the session")
    ax.set_ylabel("static-region distance")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(report: Report, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    values = np.concatenate([d.compute_ms for d in report.drift])
    ax.hist(values, bins=60, color="tab:blue")
    ax.axvline(40.0, color="black", ls="--", lw=1, label="40 ms: one frame at 25 fps")
    ax.set_xlabel("compute per frame, ms")
    ax.set_ylabel("frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: Report, out: str | os.PathLike[str]) -> Path:
    """Write ``out``/report.md, report.json and the plots; returns the report.md path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = {"mouth traces": "lipsync.png", "frames at eight times of the first clip": "frames.png"}
    plot_traces(report, out / plots["mouth traces"])
    plot_strip(report, out / plots["frames at eight times of the first clip"])
    if report.drift:
        plots["drift over the sessions"] = "drift.png"
        plots["compute per frame"] = "latency.png"
        plot_drift(report, out / "drift.png")
        plot_latency(report, out / "latency.png")
    numbers = asdict(report)
    numbers.pop("strip")
    numbers["headline"] = headline(report)
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(numbers, indent=1, default=float))
    tmp.replace(out / "report.json")
    path = out / "report.md"
    path.with_suffix(".md.tmp").write_text(markdown(report, plots))
    path.with_suffix(".md.tmp").replace(path)
    return path


def load_report(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """A report folder's report.json, with one clear error where it is missing or has no headline table."""
    path = Path(folder) / "report.json"
    if not path.is_file():
        raise ValueError(f"{folder}: no report.json (write one with `avatarlm eval --model DIR --out DIR`)")
    data = json.loads(path.read_text())
    if "headline" not in data:
        raise ValueError(f"{path} has no headline table; rerun `avatarlm eval` to rewrite it")
    return data


SESSION_SETTINGS = ("seed", "roll", "anchor", "lip_strength")  # of ReportConfig: how the sessions run


def compare_reports(folders: list[str | os.PathLike[str]]) -> str:
    """A markdown table of the headline figures of several reports (their report.json) side by side: each
    model's generated column, then the first report's ceiling and floor (the same clips give the same ones)."""
    loaded = []
    for folder in folders:
        data = load_report(folder)
        loaded.append((str(data.get("model") or Path(folder).name), data))
    configs = {  # these settings change the sessions, not the clips
        json.dumps({k: v for k, v in d["config"].items() if k not in SESSION_SETTINGS}, sort_keys=True)
        for _, d in loaded
    }
    repeated = len({name for name, _ in loaded}) < len(loaded)
    differ = [k for k in SESSION_SETTINGS if len({str(d["config"].get(k)) for _, d in loaded}) > 1]
    names = [
        f"`{name}`" + "".join(f" {k.replace('_', ' ')} {d['config'].get(k)}" for k in differ if repeated)
        for name, d in loaded
    ]
    lines = [_row("measure", [*names, HEADERS[1], HEADERS[2]]), _row("---", ["---"] * (len(names) + 2))]
    first = loaded[0][1]["headline"]
    for measure, cells in first.items():
        row = [d["headline"].get(measure, {}).get("generated", "—") for _, d in loaded]
        lines.append(_row(measure, [*row, cells["ceiling"], cells["floor"]]))
    if len(configs) > 1:
        lines += ["", "Note: these reports measured different clip sets (their configs differ)."]
    return "\n".join(lines)
