"""`avatarlm eval world`: rollouts of a world model against recorded ViZDoom episodes, scored on
constructed cases (the truth follows every move, a frame held still none) and through the command."""

import json
from dataclasses import replace

import numpy as np
import pytest

from avatarlm.cli import main
from avatarlm.eval import world_quality
from avatarlm.eval.world_quality import HORIZON, HORIZONS, collect_rollouts, score
from avatarlm.media import read_mp4
from avatarlm.pipeline.folder import load_pipeline

pytest.importorskip("vizdoom")  # the `doom` fixture (conftest.py) records ViZDoom episodes


def test_rollouts_replay_the_recorded_actions_from_held_out_frames(doom):
    data, model = doom
    pipe = load_pipeline(model)
    env, rollouts = collect_rollouts(pipe, str(data), episodes=2, every=20, progress=False)
    assert env == "vizdoom" and rollouts
    for r in rollouts:
        assert r.real.shape == r.generated.shape == r.recon.shape == (HORIZON + 1, 64, 64, 3)
        assert r.player.shape == (HORIZON + 1, 4) and r.start % 20 == 0
    again = world_quality.roll_out(pipe, rollouts[0].real, np.zeros(HORIZON + 1, int), seed=0)
    assert not np.array_equal(again, rollouts[0].generated)  # other actions, other frames

    report = score(env, rollouts)
    assert set(report.psnr) == {"model", "copy", "ceiling"} and sorted(report.psnr["model"]) == list(HORIZONS)
    assert report.moves > 0 and 0.6 <= report.follow["real"] <= 1.0  # the measure agrees with the state
    truth = score(env, [replace(r, generated=r.real) for r in rollouts])
    assert truth.follow["model"] == truth.follow["real"] and truth.psnr["model"][8] == np.inf
    assert truth.follow["model_above_copy"] == truth.follow["model"]  # the truth is never worse than the copy
    # frames that slide the right way but are no picture of the game: followed, but never above the copy
    garbage = score(env, [replace(r, generated=255 - r.real) for r in rollouts])
    assert garbage.follow["model"] == truth.follow["model"] and garbage.follow["model_above_copy"] == 0.0
    still = score(env, [replace(r, generated=np.repeat(r.real[:1], len(r.real), 0)) for r in rollouts])
    assert still.follow["model"] == 0.0 and still.psnr["model"] == still.psnr["copy"]


def test_eval_world_command_writes_the_table_json_and_video(doom, tmp_path, capsys):
    data, model = doom
    out = tmp_path / "report"
    args = ["eval", "world", "--model", str(model), "--data", str(data), "--episodes", "1", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    scores = json.loads((out / "world.json").read_text())
    assert scores["env"] == "vizdoom" and set(scores["psnr"]["copy"]) == {str(h) for h in HORIZONS}
    assert "action following" in (out / "world.md").read_text()
    frames, _ = read_mp4(out / "world_vs_game.mp4")
    assert frames.shape[1:] == (3 * 64, 3 * 128, 3)
    memory = json.loads((out / "memory.json").read_text())  # the revisit probe: 10 turns away and back
    assert memory["away_steps"] == 10 and memory["window_frames"] == 30 and memory["revisits"] >= 1
    assert "steps away and 10 back" in (out / "world.md").read_text()
    frames, _ = read_mp4(out / "revisits_vs_game.mp4")
    assert len(frames) == 23 * min(8, memory["revisits"])
    skipped = tmp_path / "skipped"
    assert main([*args[:-1], str(skipped), "--revisit-steps", "0"]) == 0
    assert not (skipped / "memory.json").exists() and (skipped / "world.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--episodes", "0"], "--episodes and --every must be at least 1"),
        (["--data", "MISSING"], "MISSING"),
        (["--action-strength", "-1"], "--action-strength must be in [0, 10], got -1.0"),
    ],
)
def test_eval_world_bad_arguments_exit_2_with_one_message(doom, tmp_path, capsys, args, message):
    data, model = doom
    base = ["eval", "world", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "r")]
    assert main(base + args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
