"""`avatarlm eval --model DIR --out DIR`: a report of every measurement, with its ceiling and floor."""

import json

import pytest

from ar_helpers import random_pipeline_folder
from avatarlm.cli import main
from avatarlm.eval.lipsync import best_lag
from avatarlm.eval.pixel_probe import PixelProbe
from avatarlm.eval.report import ReportConfig, build_report, mean_curve
from avatarlm.eval.report_write import headline, write_report
from avatarlm.pipeline.folder import load_pipeline

SMALL = ReportConfig(languages=("en", "el"), seconds=3.0, drift_seconds=(3.0,))
DUPLEX = ReportConfig(languages=("en",), seconds=3.0, drift_seconds=(), dialogue_languages=("es",),
                      dialogue_seconds=6.0)  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return random_pipeline_folder(tmp_path_factory.mktemp("pipe"))


@pytest.fixture(scope="module")
def report(folder):
    return build_report(load_pipeline(folder), PixelProbe.from_pretrained("models/probe"), SMALL, "test")


def test_report_scores_every_source_against_its_ceiling_and_floor(report):
    assert [c.language for c in report.clips] == ["en", "el"]
    assert [c.held_out_language for c in report.clips] == [False, True]
    truth = best_lag(mean_curve([c.mouth["truth"] for c in report.clips]))
    floor = best_lag(mean_curve([c.mouth["floor"] for c in report.clips]))
    assert truth[1] > 0.6 and floor == (0, 0.0)  # the probe reads true mouths; a still face scores 0
    assert all(c.static["floor"] == 0.0 and c.static["generated"] > 0.0 for c in report.clips)
    assert all(c.instruction_hits["truth"][1] > 10 for c in report.clips)  # every clip holds an instruction
    f = report.frechet
    assert f["true frames, blur 2"] > f["true frames, blur 1"] > 0
    assert f["true frames, noise 16"] > f["true frames, noise 8"] > 0
    assert set(report.teacher_forced) == {"generated", "ceiling", "floor"}
    (drift,) = report.drift
    assert len(drift.static_per_second) == 3 and len(drift.compute_ms) == 74
    assert set(drift.stage_ms) == {"conditions", "backbone+head", "window roll", "decode"}


def test_report_files(report, tmp_path):
    path = write_report(report, tmp_path / "report")
    text = path.read_text()
    for name in headline(report):
        assert name in text
    assert "## Lip-sync per language" in text and "| el | yes |" in text
    for png in ("lipsync.png", "frames.png", "drift.png", "latency.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000 and f"({png})" in text
    numbers = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(numbers["clips"]) == 2 and numbers["config"]["seconds"] == 3.0
    assert not list((tmp_path / "report").glob("*.tmp"))
    assert numbers["headline"] == json.loads(json.dumps(headline(report)))


def test_compare_puts_reports_side_by_side(report, tmp_path, capsys):
    write_report(report, tmp_path / "a")
    write_report(report, tmp_path / "b")
    assert (
        main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c.md")])
        == 0
    )
    table = (tmp_path / "c.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| lip-sync r"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 5 and cells[1] == cells[2]  # measure, two models, ceiling, floor
    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
    assert "no report.json" in capsys.readouterr().err


def test_compare_tells_seeds_apart_and_only_warns_about_other_clips(report, tmp_path):
    from dataclasses import replace

    from avatarlm.eval.report_write import compare_reports

    write_report(report, tmp_path / "a")
    write_report(replace(report, config=replace(report.config, seed=3)), tmp_path / "seed3")
    write_report(replace(report, config=replace(report.config, seconds=4.0)), tmp_path / "longer")
    seeds = compare_reports([tmp_path / "a", tmp_path / "seed3"])
    assert "seed 0 |" in seeds.splitlines()[0] and "seed 3 |" in seeds.splitlines()[0]
    assert "different clip sets" not in seeds  # the noise seed changes the sessions, not the clips
    write_report(replace(report, config=replace(report.config, anchor=0.1, lip_strength=2.0)), tmp_path / "g")
    guided = compare_reports([tmp_path / "a", tmp_path / "g"]).splitlines()[0]
    assert "anchor 0.0 lip strength 1.0 |" in guided and "anchor 0.1 lip strength 2.0 |" in guided
    assert "seed" not in guided  # only the settings that differ
    assert "different clip sets" in compare_reports([tmp_path / "a", tmp_path / "longer"])


def test_eval_command(folder, tmp_path, capsys, monkeypatch):
    assert main(["eval", "--model", str(folder)]) == 2
    assert "needs --model DIR and --out DIR" in capsys.readouterr().err
    assert main(["eval", "--model", str(folder), "--out", str(tmp_path / "x"), "--sessions", "ten"]) == 2
    assert "--sessions takes seconds" in capsys.readouterr().err
    assert main(["eval", "--model", str(folder), "--out", str(tmp_path / "x"), "--sessions", "1"]) == 2
    assert "at least 2 s" in capsys.readouterr().err and not (tmp_path / "x").exists()
    monkeypatch.setattr(ReportConfig, "quick", classmethod(lambda cls: ReportConfig(languages=("en",),
                        seconds=2.5, drift_seconds=())))  # fmt: skip
    args = ["eval", "--model", str(folder), "--out", str(tmp_path / "r"), "--quick", "--roll", "reencode"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "lip-sync r with the true mouth" in out and (tmp_path / "r" / "report.md").exists()
    assert not (tmp_path / "r" / "drift.png").exists()  # no sessions asked for
    assert "window roll: reencode" in (tmp_path / "r" / "report.md").read_text()
    seeds = ["eval", "--model", str(folder), "--out", str(tmp_path / "s"), "--quick", "--seeds"]
    assert main([*seeds, "0,x"]) == 2 and "--seeds takes integers" in capsys.readouterr().err
    assert main([*seeds, "1,1"]) == 2 and "distinct seeds" in capsys.readouterr().err
    assert main([*seeds, "0,4"]) == 0
    table = (tmp_path / "s" / "seeds.md").read_text()
    assert "| seed 0 | seed 4 | mean ± sd |" in table and (tmp_path / "s" / "seed-4" / "report.json").exists()
    row = next(line for line in table.splitlines() if line.startswith("| lip-sync r"))
    assert len(row.strip("|").split("|")) == 4 and " ± " in row.split("|")[-2]


def test_spread_cell_averages_each_figure_of_a_cell():
    from avatarlm.eval.report_seeds import spread_cell

    assert spread_cell(["+0.59 / +0.59 (+0)", "+0.47 / +0.47 (+0)", "+0.53 / +0.53 (+1)"]) == (
        "+0.53 ± 0.06 / +0.53 ± 0.06"
    )
    assert spread_cell(["1,351.10", "952.72"]) == "1151.91 ± 281.70"
    assert spread_cell(["—", "—"]) == "—" and spread_cell(["0.9", "0.9 / 0.1"]) == "—"


def test_mono_model_skips_the_duplex_section(report, tmp_path):
    assert not report.duplex.clips and "cannot hear the partner" in report.duplex.skipped
    assert not any(name.startswith("duplex") for name in headline(report))
    text = write_report(report, tmp_path / "mono").read_text()
    assert "## Duplex" in text and "cannot hear the partner" in text


def test_duplex_model_is_measured_on_dialogues_with_both_voices(tmp_path):
    folder = random_pipeline_folder(tmp_path, audio_streams=2)
    report = build_report(load_pipeline(folder), PixelProbe.from_pretrained("models/probe"), DUPLEX, "duplex")
    (clip,) = report.duplex.clips
    assert (
        clip.key == "eval-dialogue-es-0" and clip.partner_only_frames >= 37 and clip.self_speech_frames >= 37
    )
    for measure in ("closed", "self_speech_mouth", "yaw_toward_partner", "listening_pitch"):
        assert set(getattr(clip, measure)) == {"generated", "ceiling", "floor", "truth"}
    assert (
        report.duplex.closed_fraction("truth") >= 0.9 and report.duplex.self_speech_curve("truth")[0] >= 0.6
    )
    assert report.duplex.self_speech_curve("floor")[0] == 0.0 and clip.listening_pitch["floor"] == 0.0
    rows = [name for name in headline(report) if name.startswith("duplex:")]
    assert len(rows) == 2 and "bound ≥ 0.90" in rows[0] and "bound ≥ 0.6" in rows[1]
    path = write_report(report, tmp_path / "report")
    text = path.read_text()
    assert "## Duplex" in text and "| head yaw towards the partner while listening, deg |" in text
    assert "Bounds met by the generated frames" in text and "| eval-dialogue-es-0 | no |" in text
    numbers = json.loads((tmp_path / "report" / "report.json").read_text())
    closed = numbers["duplex"]["clips"][0]["closed"]["truth"]
    assert (
        closed[1] == clip.partner_only_frames
        and numbers["headline"][rows[0]]["truth"] == f"{closed[0] / closed[1]:.2f}"
    )


def test_a_chunked_model_streams_every_frame_of_a_clip(tmp_path):
    """n = 3: the session makes frames a chunk at a time, yet a clip of any length gets all its frames, the
    same as the frames that a longer run makes first."""
    from avatarlm.eval.eval_clips import evaluation_clips
    from avatarlm.eval.eval_generate import stream_clip

    pipe = load_pipeline(random_pipeline_folder(tmp_path, chunk_size=3))
    clip = next(evaluation_clips(("en",), 1, 2.0, 64))
    short, _ = stream_clip(pipe, clip.clip, clip.frames[0], 31)
    longer, _ = stream_clip(pipe, clip.clip, clip.frames[0], 40)
    assert short.shape == (31, 64, 64, 3)
    assert (abs(short.astype(int) - longer[:31].astype(int)).max()) <= 2
