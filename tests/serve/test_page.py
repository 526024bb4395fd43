"""The page in a real headless Chromium (Debian's, driven by Playwright; nothing is downloaded): it
connects, shows frames, speaks typed text, sends instructions and microphone audio, switches faces."""

from __future__ import annotations

import os
import shutil

import pytest

from avatarlm.serve.app import create_app
from serve_helpers import running

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",  # grant the microphone
    "--use-fake-device-for-media-stream",  # a beeping fake microphone
    "--autoplay-policy=no-user-gesture-required",
]


def open_page(url: str, screenshot=None) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 640})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("document.getElementById('status').textContent === 'live'", timeout=30_000)
            instructions = page.locator("#instructions button").count()
            page.fill("#text", "Hello, I am a generated avatar.")
            page.click("#say")
            page.click("#instructions button >> text=smile")
            page.wait_for_function(
                "window.avatarlm.frames > 30 && window.avatarlm.voiceChunks > 30", timeout=30_000
            )
            page.click("#mic")
            page.wait_for_function("document.getElementById('mic').getAttribute('aria-pressed') === 'true'")
            page.wait_for_function(
                "window.avatarlm.stats && window.avatarlm.stats.frames > 40", timeout=30_000
            )
            ink = page.evaluate(
                """() => { const c = document.getElementById('avatar');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2];
                return s / (d.length / 4) / 3; }"""
            )
            page.click("#converse")  # conversation mode on the fake microphone's beeps
            page.wait_for_function(
                "document.getElementById('converse').getAttribute('aria-pressed') === 'true'"
            )
            before = page.evaluate("window.avatarlm.frames")
            page.fill("#identity", "5")
            page.click("#new-face")
            page.wait_for_function(f"window.avatarlm.frames > {before + 20}", timeout=30_000)
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
            log = page.locator("#log li").all_inner_texts()
            errors_shown = page.locator("#log li.error").all_inner_texts()
            return {
                "instructions": instructions,
                "ink": ink,
                "log": log,
                "errors": errors,
                "errors_shown": errors_shown,
            }
        finally:
            browser.close()


def test_the_page_in_headless_chromium(mono_pipe, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: scripts/test.sh installs it (apt-get install chromium)")
    shot = tmp_path / "page.png"
    with running(create_app(mono_pipe)) as base:
        result = open_page(base + "/", shot)
    assert result["errors"] == []
    assert result["instructions"] == 8
    assert result["ink"] > 5  # the canvas shows a frame, not black
    assert "conversation on: talk, then pause; speak over the avatar to interrupt it" in result["log"]
    assert result["errors_shown"] == []  # no error reached the page (a loaded machine may warn)
    assert shot.stat().st_size > 10_000
