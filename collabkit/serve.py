"""`collabkit serve`: Jupyter (notebook 7) with nbgrader's formgrader for the course, on loopback.

The server runs in the course folder (so formgrader reads its nbgrader_config.py and
gradebook), listens on 127.0.0.1 only, and is protected by a fresh random token. The first
line on stdout is the formgrader URL with that token; the server runs until interrupted.
"""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .course import Course, tool_env
from .errors import KitError

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def command(course: Course, port: int, token: str) -> list[str]:
    import os

    return [
        sys.executable,
        "-m",
        "jupyter",
        "notebook",
        "--no-browser",
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={course.root}",
        # jupyter refuses root unless told; grading containers often run as root
        *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
    ]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the server answers on `url` (raises KitError if it exits or stays silent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise KitError(
                f"jupyter notebook exited with status {proc.returncode} before it served {url.split('?')[0]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise KitError(f"jupyter notebook did not answer on {url.split('?')[0]} within {timeout:.0f} s")


def start(
    course: Course, port: int | None = None, token: str | None = None, log: Path | None = None
) -> tuple[subprocess.Popen, str]:
    """Start the server; return it and the formgrader URL (with the token) once it answers."""
    if not course.gradebook.exists():
        raise KitError(f"{course.gradebook} is missing: run `collabkit release` (and `collabkit grade`) first")
    port = port or free_port()
    token = token or secrets.token_hex(24)
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        command(course, port, token),
        cwd=course.root,
        env=tool_env(),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://{HOST}:{port}/formgrader?token={token}"
    try:
        wait_ready(url, proc)
    except BaseException:
        stop(proc)
        raise
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    """Stop the server and everything it started (its kernels), by its process group."""
    import os

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


def serve(course: Course, port: int | None = None) -> int:
    """`collabkit serve`: print the URL, then serve until Ctrl-C."""

    def terminate(signum, frame):  # `kill` stops the server too, not only Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    proc, url = start(course, port, log=course.root / ".serve.log")
    print(url, flush=True)
    print(
        f"collabkit serve: formgrader for {course.root} on {HOST} (log: {course.root / '.serve.log'}); Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop(proc)
