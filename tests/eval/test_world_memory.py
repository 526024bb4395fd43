"""The world model's memory probe: turn away and back in the game and in the model, scored on constructed
cases (the game's own frames come back, a held frame never left, a model lost at the far view never
returns) and on recorded ViZDoom episodes replayed from their seeds."""

from dataclasses import replace

import numpy as np
import pytest

from avatarlm.data.shards import iter_samples
from avatarlm.data.world_envs import make_env
from avatarlm.eval.world_memory import (
    PROBES,
    Revisit,
    collect_revisits,
    far_frame,
    is_revisit,
    probe_actions,
    replay_to,
    score_revisits,
)
from avatarlm.pipeline.folder import load_pipeline

STEPS = 3


def _doom_player(angles, xy=(0.0, 0.0)):
    return np.array([[xy[0], xy[1], 0.0, a] for a in angles], np.float32)


def test_a_revisit_needs_the_player_to_leave_and_come_back():
    assert is_revisit("vizdoom", _doom_player([90, 120, 150, 120, 90]))
    assert is_revisit("vizdoom", _doom_player([350, 20, 50, 20, 350.5]))  # across 0 degrees
    assert not is_revisit("vizdoom", _doom_player([90, 100, 110, 100, 90]))  # never really left
    assert not is_revisit("vizdoom", _doom_player([90, 120, 150, 130, 110]))  # did not come back
    moved = _doom_player([90, 150, 90])
    moved[-1, :2] = 40.0
    assert not is_revisit("vizdoom", moved)  # came back to the angle, not to the place
    crafter = np.array([[5, 5, 1, 0], [4, 5, -1, 0], [3, 5, -1, 0], [4, 5, 1, 0], [5, 5, 1, 0]], np.float32)
    assert is_revisit("crafter", crafter)
    assert not is_revisit("crafter", crafter[[0, 1, 1, 1, 0]])  # one tile away: not far enough
    blocked = crafter.copy()
    blocked[:, 0] = 5
    assert not is_revisit("crafter", blocked)  # walked into a wall: never left


def test_probe_actions_go_away_then_back_and_bad_probes_are_named():
    names = ("noop", "forward", "backward", "turn_left", "turn_right")
    assert probe_actions("vizdoom", names, 2) == [0, 3, 3, 0, 4, 4]
    with pytest.raises(ValueError, match="at least 1 step"):
        probe_actions("vizdoom", names, 0)
    with pytest.raises(ValueError, match="no revisit probe for environment 'pong'"):
        probe_actions("pong", names, 2)


def _constructed(n=4, size=16):
    """Probes whose game frames differ at every step (a scene sliding away) and return to the start."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        scene = rng.integers(0, 256, (size, size * 3, 3), dtype=np.uint8)
        offsets = [0, 0, *range(1, STEPS + 1), STEPS, *range(STEPS - 1, -1, -1)]  # rest, away, rest, back
        real = np.stack([scene[:, 4 * o : 4 * o + size] for o in offsets])
        player = _doom_player([90 + 20 * o for o in offsets])
        out.append(Revisit(f"e{i}", 0, real, real, real, player))
    return out


def test_the_game_comes_back_a_held_frame_never_left_and_a_lost_model_never_returns():
    probes = _constructed()
    truth = score_revisits("vizdoom", STEPS, probes, window_frames=30)
    assert truth.revisits == truth.probes == 4 and truth.came_back == {
        "model": 1.0,
        "copy": 0.0,
        "ceiling": 1.0,
    }
    assert truth.psnr_return["model"] == np.inf and truth.psnr_far["model"] == truth.psnr_far["real"] < 20
    held = [replace(p, generated=np.repeat(p.real[:1], len(p.real), 0)) for p in probes]
    still = score_revisits("vizdoom", STEPS, held, window_frames=30)
    assert still.came_back["model"] == 0.0 and still.psnr_return["model"] == still.psnr_return["copy"]
    far = far_frame(STEPS)  # lost there: the far frame held to the end
    lost = [
        replace(p, generated=np.concatenate([p.real[: far + 1], *[p.real[far : far + 1]] * (STEPS + 1)]))
        for p in probes
    ]
    assert score_revisits("vizdoom", STEPS, lost, window_frames=30).came_back["model"] == 0.0
    table = truth.table()
    assert "3 steps away and 3 back (4 revisits of 4 probes; 9 frames, window 30)" in table
    never_left = [replace(p, player=_doom_player([90] * len(p.real))) for p in probes]
    with pytest.raises(ValueError, match="none of the 4 probes came back"):
        score_revisits("vizdoom", STEPS, never_left, window_frames=30)


def test_recorded_episodes_replay_from_their_seeds_and_the_turn_probe_comes_back(doom):
    data, model = doom
    sample = next(iter_samples(data, split="test"))
    game = make_env("vizdoom", 64, 15.0)
    try:
        start = replay_to(game, sample, 20)
        assert start is not None and np.array_equal(start[0], sample.frames[20])  # ViZDoom replays exactly
        assert np.array_equal(start[1], sample.truth["player"][20])
    finally:
        game.close()
    pipe = load_pipeline(model)
    env, steps, probes = collect_revisits(pipe, str(data), episodes=1, every=30, steps=6, progress=False)
    assert (env, steps) == ("vizdoom", 6) and probes
    for p in probes:
        assert p.real.shape == p.generated.shape == p.recon.shape == (15, 64, 64, 3)
        assert np.array_equal(p.real[0], sample.frames[p.start]) and p.start % 30 == 0
        turn = (p.player[:, 3] - p.player[0, 3] + 180) % 360 - 180
        assert abs(turn).max() > 30 and abs(turn[-1]) < 1  # six turns of 7 degrees away, six back
    report = score_revisits(env, steps, probes, window_frames=30)
    assert report.revisits >= 1 and report.came_back["copy"] == 0.0  # (the player may drift on: not all)
    truth = score_revisits(env, steps, [replace(p, generated=p.real) for p in probes], window_frames=30)
    assert truth.came_back["model"] == 1.0 and truth.psnr_far["real"] < 30
    with pytest.raises(ValueError, match="the probe's 23 frames do not fit the 16-frame window"):
        collect_revisits(pipe, str(data), episodes=1, progress=False, window_frames=16)
    assert all(steps * 2 + 3 <= 30 for *_, steps in PROBES.values())  # the default probes fit the window
