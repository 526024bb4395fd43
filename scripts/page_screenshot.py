"""Screenshot of the live page (the README's picture): starts `avatarlm serve` on a free port, opens the
page in headless Chromium, makes the avatar speak and smile, and saves a PNG.

    .venv/bin/python scripts/page_screenshot.py --model models/tiny --out docs/serve_page.png
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", default="docs/serve_page.png")
    parser.add_argument("--text", default="Hello! I am a generated avatar, and I can talk to you live.")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "avatarlm.cli", "serve", "--model", args.model, "--port", str(port)]
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1040, "height": 560})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("document.getElementById('status').textContent === 'live'", timeout=60_000)
            page.fill("#text", args.text)
            page.click("#say")
            page.click("#instructions button >> text=smile")
            page.wait_for_function("window.avatarlm.frames > 60", timeout=60_000)
            page.fill("#text", "Tell me about your day.")
            page.screenshot(path=args.out)
            browser.close()
        print(f"wrote {args.out}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
