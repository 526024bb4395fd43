"""A world model played live on a hand-made clock: the game's first frame, one frame per tick of the
model's rate carrying the held action, new games, refusals; and the page in headless Chromium."""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_live_session import run
from test_page import CHROMIUM, FLAGS

from avatarlm.data.world_envs import DOOM_ACTIONS, make_env
from avatarlm.pipeline.offline import encode_reference
from avatarlm.serve import protocol as P
from avatarlm.serve.app import ServeConfig, create_app
from avatarlm.serve.live_world import LiveWorld, check_world
from serve_helpers import running

pytest.importorskip("vizdoom")

NAMES = tuple(DOOM_ACTIONS)
TURN_LEFT = NAMES.index("turn_left")


def test_frames_come_on_the_clock_from_the_games_first_frame(doom_pipe):
    live = LiveWorld(doom_pipe, "vizdoom", seed=2)
    fps = doom_pipe.fps
    frames, voices, _ = run(live, 2.0)
    assert sorted(frames) == list(range(2 * fps + 1))  # the reference, then one frame per 1/fps
    assert all(not v.any() for v in voices.values())  # a world model is silent
    game = make_env("vizdoom", 64, fps)
    first, _ = game.reset(2)
    game.close()
    np.testing.assert_array_equal(live.session.reference, encode_reference(doom_pipe.autoencoder, first))
    assert live.ready_message()["actions"] == list(NAMES) and live.ready_message()["env"] == "vizdoom"


def test_the_held_action_drives_the_frames(doom_pipe):
    def play(held_from_half_a_second):
        live = LiveWorld(doom_pipe, "vizdoom", seed=2)
        first, _, _ = run(live, 0.5)
        if held_from_half_a_second is not None:
            live.handle(P.Action(held_from_half_a_second))
        later, _, _ = run(live, 1.5, start=0.5)
        return first, later

    idle_a, idle_b = play(None), play(None)
    turning = play(TURN_LEFT)
    assert all(np.array_equal(idle_a[1][k], idle_b[1][k]) for k in idle_a[1])  # same keys, same frames
    assert all(np.array_equal(idle_a[0][k], turning[0][k]) for k in idle_a[0])  # the same until the key
    assert any(not np.array_equal(idle_a[1][k], turning[1][k]) for k in idle_a[1])


def test_a_new_game_and_refused_commands(doom_pipe):
    live = LiveWorld(doom_pipe, "vizdoom", seed=2)
    before = live.session.reference.clone()
    live.handle(P.Action(TURN_LEFT))
    live.handle(P.Reset(identity=5))
    assert live.held == NAMES.index("noop") and not np.array_equal(live.session.reference, before)
    for command, message in [
        (P.Action(11), "action.id must be in 0..10"),
        (P.Say("hello", "en"), "played with actions"),
        (P.Stop(), "played with actions"),
    ]:
        with pytest.raises(P.ProtocolError, match=message):
            live.handle(command)
    with pytest.raises(P.ProtocolError, match="hears nothing"):
        live.hear(b"\0\0" * 160)
    frames, _, _ = run(live, 0.5)  # the session goes on
    assert 0 in frames


def test_a_world_model_needs_its_game_and_a_talking_head_none(doom_pipe, mono_pipe):
    check_world(mono_pipe, None)
    check_world(doom_pipe, "vizdoom")
    for pipe, env, message in [
        (mono_pipe, "vizdoom", "--env is for world models"),
        (doom_pipe, None, "name its game with --env"),
        (doom_pipe, "crafter", "the model takes 11 actions, crafter has 17"),
        (doom_pipe, "pong", "unknown environment"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_world(pipe, env)
        with pytest.raises(ValueError, match=message):
            create_app(pipe, ServeConfig(env=env))


def test_the_game_page_in_headless_chromium(doom_pipe, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: scripts/test.sh installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with running(create_app(doom_pipe, ServeConfig(env="vizdoom"))) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 640})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.wait_for_function("document.getElementById('status').textContent === 'live'", timeout=30_000)
            keys = page.locator("#keys li").all_inner_texts()
            talk_visible = page.locator("#say-form").is_visible()
            page.keyboard.down("ArrowLeft")
            page.wait_for_function("window.avatarlm.frames > 20", timeout=30_000)
            held = page.locator("#held").inner_text()
            page.keyboard.up("ArrowLeft")
            page.wait_for_function("window.avatarlm.sentActions.length === 2")
            sent = page.evaluate("window.avatarlm.sentActions")
            page.fill("#game-seed", "4")
            page.click("#new-game")
            before = page.evaluate("window.avatarlm.frames")
            page.wait_for_function(f"window.avatarlm.frames > {before + 10}", timeout=30_000)
            shown_errors = page.locator("#log li.error").all_inner_texts()
            page.screenshot(path=str(tmp_path / "game.png"))
        finally:
            browser.close()
    assert errors == [] and shown_errors == []
    assert "← turn_left" in keys and "Space attack" in keys and len(keys) == 12
    assert not talk_visible and held == "turn_left"
    assert sent == [TURN_LEFT, NAMES.index("noop")]  # held while down, noop once released
