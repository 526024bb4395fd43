"""`avatarlm eval pose`: do free-running heads follow a pose that turns on its own?"""

import json

import numpy as np
import pytest

from ar_helpers import random_pipeline_folder
from avatarlm.cli import main
from avatarlm.data.splits import identity_split
from avatarlm.eval.eval_clips import evaluation_clips
from avatarlm.eval.pixel_probe import PixelProbe
from avatarlm.eval.pose_following import SOURCES, STEP_SOURCES, head_turn_clips, measure_pose_following
from avatarlm.pipeline.folder import load_pipeline


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return random_pipeline_folder(tmp_path_factory.mktemp("pipe"))


def test_head_turn_clips_are_fixed_unseen_and_turn():
    (a,), (b,) = list(head_turn_clips(["es"], 4.0, 64)), list(head_turn_clips(["es"], 4.0, 64))
    np.testing.assert_array_equal(a.frames, b.frames)
    assert (
        a.clip.meta["spec"]["head_turns"] and identity_split(a.clip.meta["spec"]["identity_seed"]) == "test"
    )
    (report_clip,) = list(evaluation_clips(["es"], 1, 4.0, 64))
    assert report_clip.key != a.key and not report_clip.clip.meta["spec"]["head_turns"]
    assert np.ptp(a.clip.pose[:, 0]) > np.ptp(report_clip.clip.pose[:, 0])  # the head really turns
    assert all(t is None for t in a.clip.texts)  # no instruction moves the head


def test_measure_reads_the_ceiling_close_and_the_still_floor_far():
    pipe = load_pipeline("models/tiny")  # a trained autoencoder: its reconstructions keep the pose
    result = measure_pose_following(
        pipe, PixelProbe.from_pretrained("models/probe"), ["en"], 6.0, progress=False
    )
    assert set(result.mae) == set(result.r) == set(SOURCES)
    assert result.frames == len(result.traces["truth"]) == len(result.traces["with pose"])
    assert result.r["ceiling"][0] > 0.8 and result.r["ceiling"][1] > 0.5 and result.r["floor"] == [0.0] * 3
    assert result.mae["ceiling"][0] < result.mae["floor"][0]
    # one step ahead the reconstruction's change follows the true change; a model's is measured alike
    assert set(result.step_r) == set(STEP_SOURCES) and result.step_r["ceiling"][1] > 0.3
    assert all(len(v) == 3 and all(-1 <= x <= 1 for x in v) for v in result.step_r.values())
    assert 0.6 < result.turn["ceiling"][0] < 1.3 and np.allclose(result.turn["floor"], 0.0, atol=1e-6)


def test_cli_writes_the_table_and_the_plot_and_refuses_bad_input(folder, tmp_path, capsys):
    out = tmp_path / "pose"
    assert (
        main(
            ["eval", "pose", "--model", str(folder), "--out", str(out), "--languages", "el", "--seconds", "3"]
        )
        == 0
    )
    numbers = json.loads((out / "pose.json").read_text())
    assert numbers["clips"] == ["eval-turns-el"] and numbers["anchor"] is not None
    assert (
        "| with pose |" in (out / "pose.md").read_text() and (out / "pose_traces.png").stat().st_size > 1000
    )
    bad = tmp_path / "bad"
    assert main(["eval", "pose", "--model", str(folder), "--out", str(bad), "--languages", "xx"]) == 2
    assert "unknown language 'xx'" in capsys.readouterr().err and not bad.exists()


def test_turn_size_is_the_slope_of_the_probed_on_the_true_angle():
    from avatarlm.eval.pose_following import _slopes

    true = np.stack([np.sin(np.arange(50) / 5) * 20, np.cos(np.arange(50) / 7) * 5, np.zeros(50)], axis=1)
    got = 0.25 * true + 3.0 + np.stack([np.zeros(50), np.zeros(50), np.ones(50)], axis=1)
    np.testing.assert_allclose(_slopes(got, true), [0.25, 0.25, 0.0], atol=1e-9)  # a still truth reads 0
