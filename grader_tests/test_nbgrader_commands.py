"""nbgrader's own commands, and formgrader's buttons that call them, go through the kit's rules.

`nbgrader autograde` (formgrader's per-student Autograde button) refuses this assignment and
names `collabkit grade`, touching nothing; `COLLABKIT_STOCK_AUTOGRADE=1` still runs stock
nbgrader (the kit's baseline runs rely on it). `nbgrader generate_feedback` (the Generate
Feedback button) redacts as `collabkit feedback` does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from bad_submissions import ASSIGNMENT, BAD, SECRET
from conftest import gradebook_rows, page_text

from collabkit.course import Course, tool_env
from collabkit.data import fastai_home


def nbgrader(course: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True, env=tool_env(**env)
    )


def snapshot(course: Path) -> dict:
    """Every file of the course, with its size, time and bytes (nbgrader's own log file aside)."""
    return {
        str(p.relative_to(course)): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(course.rglob("*"))
        if p.is_file() and p.name != ".nbgrader.log"
    }


def test_nbgrader_autograde_and_the_formgrader_button_refuse_and_change_nothing(graded_copy):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    course = graded_copy
    rows, files = gradebook_rows(course), snapshot(course)
    run = nbgrader(course, "autograde", ASSIGNMENT, "--student=probe_course", "--force")
    assert run.returncode != 0 and f"collabkit grade {ASSIGNMENT}" in run.stdout + run.stderr, run.stderr[-2000:]
    config = Course.open(course).config  # the course's nbgrader_config.py, as formgrader loads it
    coursedir = CourseDirectory(config=config)
    coursedir.root = str(course)
    result = NbGraderAPI(coursedir=coursedir, config=config).autograde(ASSIGNMENT, "probe_course")  # the button
    assert not result["success"] and "collabkit grade" in result["log"], result
    assert gradebook_rows(course) == rows
    assert snapshot(course) == files  # no student code ran: the probe would have written huge.bin, outputs


def test_stock_autograde_still_runs_when_asked_explicitly(graded_copy):
    course = graded_copy
    run = nbgrader(
        course,
        "autograde",
        ASSIGNMENT,
        "--student=correct",
        "--force",
        COLLABKIT_STOCK_AUTOGRADE="1",
        FASTAI_HOME=str(fastai_home()),
        COLLABKIT_REFERENCE=str(course / "solutions" / "reference.json"),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    scores = {r[1]: r[2] for r in gradebook_rows(course)["correct"] if r[2] != "comment"}
    assert scores["test_double"] == 2 and scores["test_square"] == 1


def source_secrets(course: Path) -> list[str]:
    """Every line of the source's hidden tests and mark schemes."""
    nb = nbformat.read(course / "source" / ASSIGNMENT / "toy.ipynb", as_version=4)
    blocks = re.findall(
        r"BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS|=== BEGIN MARK SCHEME ===\n(.*?)=== END",
        "\n".join(c.source for c in nb.cells),
        flags=re.S,
    )
    lines = {line.strip() for block in blocks for part in block for line in part.splitlines() if line.strip()}
    assert len(lines) >= 7
    return sorted(lines)


def test_nbgrader_generate_feedback_shows_no_hidden_test_mark_scheme_or_traceback(graded_copy):
    course = graded_copy
    shutil.rmtree(course / "feedback")
    run = nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    assert run.returncode == 0, run.stderr[-3000:]
    pages = sorted((course / "feedback").glob(f"*/{ASSIGNMENT}/toy.html"))
    assert len(pages) == len(BAD)
    for page in pages:
        text = page.read_text() + page_text(page)
        for secret in [SECRET, "BEGIN HIDDEN TESTS", "MARK SCHEME", *source_secrets(course)]:
            assert secret not in text, f"{page.parent.parent.name}'s feedback shows {secret!r}"
    failed = page_text(course / "feedback" / "fails_hidden" / ASSIGNMENT / "toy.html")
    assert "double should work for negative numbers" in failed and "Traceback" not in failed
    assert os.path.getsize(course / "feedback" / "correct" / ASSIGNMENT / "toy.html") > 0
