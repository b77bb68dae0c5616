"""`collabkit serve`: formgrader on loopback, behind a token, stopped with everything it started.

The browser test (test_formgrader.py, slow) grades through it; this one checks the server
itself on a course with an empty gradebook: the URL it gives is 127.0.0.1 with a token, a
request without the token is sent to the login page, the port is not open on other
addresses, and stopping it leaves no process behind.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from collabkit import ASSIGNMENT
from collabkit.course import Course, nbgrader_tools
from collabkit.errors import KitError
from collabkit.serve import start, stop


def other_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


@pytest.fixture
def course(tmp_path):
    from nbgrader.api import Gradebook

    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    with nbgrader_tools(), Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}"):
        pass
    return Course.open(tmp_path)


def test_serve_is_loopback_only_behind_a_token_and_stops_cleanly(course, tmp_path):
    proc, url = start(course, log=tmp_path / "serve.log")
    try:
        assert url.startswith("http://127.0.0.1:") and "/formgrader?token=" in url
        token = url.split("token=")[1]
        assert len(token) >= 32
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())  # keeps the login cookie
        with browser.open(url, timeout=30) as r:
            assert r.status == 200 and "Manage Assignments" in r.read().decode()
        bare = url.split("?")[0]
        with urllib.request.urlopen(bare, timeout=30) as r:  # no token: the login page
            assert "/login" in r.url and "Manage Assignments" not in r.read().decode()
        port = int(url.split(":")[2].split("/")[0])
        addr = other_address()
        if addr:
            with pytest.raises(OSError):
                socket.create_connection((addr, port), timeout=5).close()
    finally:
        stop(proc)
    assert proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # the server's whole process group is gone


def test_serve_without_a_gradebook_says_what_to_run(tmp_path):
    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    with pytest.raises(KitError, match="gradebook.db is missing: run `collabkit release`"):
        start(Course.open(tmp_path))


def test_new_commands_outside_a_course_end_in_one_line(tmp_path):
    for command in (["serve"], ["handout"]):
        run = subprocess.run(
            [sys.executable, "-m", "collabkit", *command], cwd=tmp_path, capture_output=True, text=True
        )
        assert run.returncode == 2, (command, run.stderr)
        assert run.stderr.strip() == (
            f"collabkit {command[0]}: {tmp_path} is not an nbgrader course: it has no "
            "nbgrader_config.py (run collabkit in the course folder, or pass --root)"
        )
