"""Debian's Chromium, driven by Playwright: the one way the browser tests start a browser.

Playwright's own browser download does not work here, so the tests launch /usr/bin/chromium
(`apt-get install -y chromium`; .ci/run installs it) and never download one. conftest.py's
`browser` fixture hands each test module one browser from `launched()`.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def launched():
    """A headless Chromium (Playwright's Browser), closed with Playwright on the way out."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
            "the test never downloads a browser"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
