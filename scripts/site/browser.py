"""Headless Chromium for the tests of the class report and the course site (Debian's chromium package).

    chromium() -> path                         the browser, or AssertionError saying how to install it
    dump_dom(url, timeout=90) -> str           the page's DOM after it loaded (and its scripts ran)
    screenshot(url, png, size=(1280, 2400))    a picture of the page

The flags are those this machine needs (no sandbox as root; no background networking, which the closed
network refuses), with a fresh profile each time. A missing browser is a failure, not a skip: `make install`
installs it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
INSTALL = "make install (as root it runs: apt-get install -y chromium chromium-driver)"


def chromium() -> str:
    for name in (os.environ.get("KIT_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) if name else None
        if path:
            return path
    raise AssertionError(f"headless Chromium is not installed, and this test needs a real browser: {INSTALL}")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="kit-chromium-") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def dump_dom(url: str, timeout: float = 90, budget_ms: int = 5000) -> str:
    """The DOM Chromium built for `url` (file:// or http://127.0.0.1), scripts run for up to `budget_ms`."""
    run = _run([f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout)
    if run.returncode != 0 or "<html" not in run.stdout.lower():
        raise AssertionError(f"chromium could not render {url} (exit {run.returncode}): {run.stderr[-800:]}")
    return run.stdout


def screenshot(url: str, png: Path, size=(1280, 2400), timeout: float = 90) -> Path:
    run = _run([f"--window-size={size[0]},{size[1]}", f"--screenshot={png}", url], timeout)
    if not Path(png).is_file():
        raise AssertionError(f"chromium took no screenshot of {url} (exit {run.returncode}): {run.stderr[-800:]}")
    return Path(png)
