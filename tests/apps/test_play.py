"""`avatarlm play` (file mode): the same actions step Crafter and a world model; actions read from text."""

import json

import numpy as np
import pytest

from ar_helpers import random_pipeline_folder
from avatarlm.apps.play import parse_actions, play
from avatarlm.cli import main
from avatarlm.data.world_envs import CRAFTER_ACTIONS, make_env
from avatarlm.media import read_mp4
from avatarlm.pipeline.folder import load_pipeline


@pytest.fixture(scope="module")
def crafter_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    return random_pipeline_folder(root, modalities=("action",), num_actions=len(CRAFTER_ACTIONS))


def test_action_lists_read_names_ids_repeats_and_comments():
    names = ("noop", "left", "right")
    assert parse_actions("left*3 2, noop  # then wait\n\nright*2\n", names) == [1, 1, 1, 2, 0, 2, 2]
    for text, message in [
        ("jump", "unknown action 'jump'"),
        ("7", "out of range: the game has 3 actions"),
        ("left*0", "at least 1"),
        ("left*x", "cannot read action"),
        ("# nothing\n", "the action list is empty"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_actions(text, names)


def test_the_game_and_the_model_take_the_same_actions(crafter_model):
    pipe = load_pipeline(crafter_model)
    env = make_env("crafter", 64, 15)
    actions = [CRAFTER_ACTIONS.index(a) for a in ["move_right"] * 5 + ["move_down"] * 4 + ["noop"]]
    result = play(pipe, env, seed=3, actions=actions)
    assert result.real.shape == result.generated.shape == (11, 64, 64, 3) and result.actions == actions
    first, _ = env.reset(3)
    np.testing.assert_array_equal(result.real[0], first)
    replay = [env.step(a).frame for a in actions]  # the game replays exactly from its seed
    np.testing.assert_array_equal(result.real[1:], np.stack(replay))
    assert sorted(result.psnr) == sorted(result.copy_psnr) == [1, 8]
    assert result.side_by_side().shape == (11, 64, 128, 3)
    explored = play(pipe, env, seed=3, steps=6)  # no list: the exploration policy plays
    assert len(explored.actions) == 6 and len(explored.generated) == 7


def test_play_command_writes_the_side_by_side_and_scores(crafter_model, tmp_path, capsys):
    actions = tmp_path / "actions.txt"
    actions.write_text("move_left*4\ndo noop*3\n")
    out = tmp_path / "play.mp4"
    code = main(["play", "--model", str(crafter_model), "--env", "crafter", "--actions", str(actions),
                 "--out", str(out), "--seed", "1"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    frames, _ = read_mp4(out)
    assert frames.shape == (9, 64, 128, 3)
    scores = json.loads(out.with_suffix(".json").read_text())
    assert scores["actions"] == [1] * 4 + [5, 0, 0, 0] and set(scores["psnr"]) == {"1", "8"}
    assert "| 8 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "crafter", "--out", "x.gif"], "--out must name an .mp4 file"),
        (["--env", "pong", "--out", "x.mp4"], "unknown environment 'pong'"),
        (["--env", "vizdoom", "--out", "x.mp4"], "the model takes 17 actions, vizdoom has 11"),
        (["--env", "crafter", "--actions", "missing.txt", "--out", "x.mp4"], "cannot read the action list"),
        (
            ["--env", "crafter", "--action-strength", "11", "--out", "x.mp4"],
            "--action-strength must be in [0, 10]",
        ),
    ],
)
def test_play_refuses_bad_input_with_one_message(crafter_model, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["play", "--model", str(crafter_model), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.mp4").exists()


def test_play_needs_a_world_model(tmp_path):
    talking = load_pipeline(random_pipeline_folder(tmp_path))
    with pytest.raises(ValueError, match="play needs a world model"):
        play(talking, make_env("crafter", 64, 15), actions=[0])


def test_play_without_out_serves_only_a_world_model(tmp_path, capsys):
    talking_head = random_pipeline_folder(tmp_path)  # refused before any server binds
    assert main(["play", "--model", str(talking_head), "--env", "crafter", "--port", "1"]) == 2
    assert "--env is for world models" in capsys.readouterr().err
