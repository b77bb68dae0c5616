"""What the kit's grading tests share: the graded toy course, how to read what grading wrote, a browser.

The toy course (bad_submissions.tiny_course: one small notebook, no fastai) holds one submission
per kind of bad input in bad_submissions.BAD. It is graded once per session: the correct
submission alone first (`alone`), then the whole batch with two workers (`batch`). Tests that
only read it share it; a test that changes it (a regrade, a hand grade) takes `graded_copy`, a
copy of its own, so no test depends on another's order.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
from pathlib import Path

import bad_submissions as bad
import nbformat
import pytest
from bad_submissions import ASSIGNMENT, BAD
from chromium import launched

from collabkit.course import Course
from collabkit.grading.batch import grade
from collabkit.grading.records import Limits

# Short limits keep the loops cheap: 4 s per cell, 3 s of grace after the interrupt, 1 GB of
# address space (the toy kernel uses ~300 MB; fastai kernels need the 6 GB default).
LIMITS = Limits(timeout=4, notebook_timeout=60, grace=3, memory_mb=1024, output_mb=1)
IS_ROOT = os.geteuid() == 0


def graded(course: Path, **kw) -> list[dict]:
    """`collabkit grade` on `course`; each student's record as grading.json holds it."""
    return [r.to_json() for r in grade(Course.open(course), **kw)]


def answers_of(course: Path) -> dict[str, str]:
    src = nbformat.read(course / "source" / ASSIGNMENT / "toy.ipynb", as_version=4)
    strip = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)
    return {bad.gid(c): strip.sub("", c.source) for c in src.cells if c.metadata.get("nbgrader", {}).get("solution")}


def submit(course: Path, student: str, data: bytes) -> None:
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy.ipynb").write_bytes(data)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def gradebook_rows(course: Path) -> dict[str, list[tuple]]:
    """Every grade and comment of the gradebook, by student."""
    from nbgrader.api import Gradebook

    out: dict[str, list[tuple]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(ASSIGNMENT):
            rows = out.setdefault(sub.student.id, [])
            for nb in sub.notebooks:
                rows += [(nb.name, g.name, g.auto_score, g.manual_score, g.needs_manual_grade) for g in nb.grades]
                rows += [(nb.name, c.name, "comment", c.auto_comment, c.manual_comment) for c in nb.comments]
            rows.sort(key=repr)
    return out


def page_text(path: Path) -> str:
    """What a reader sees in an HTML page: the body's text, tags and styles removed."""
    body = path.read_text()
    body = re.sub(r"<style.*?</style>|<script.*?</script>", "", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


@pytest.fixture(scope="session")
def course(tmp_path_factory) -> Path:
    course = bad.tiny_course(tmp_path_factory.mktemp("toy") / "course")
    release = json.loads((course / "release" / ASSIGNMENT / "toy.ipynb").read_text())
    answers = answers_of(course)
    for name, (build, _, _) in BAD.items():
        submit(course, name, build(release, answers))
    return course


@pytest.fixture(scope="session")
def alone(course):
    """The correct submission graded on its own, before the batch."""
    records = graded(course, students=["correct"], workers=1, limits=LIMITS)
    rows = [r for r in read_csv(course / "exports" / "grades_by_cell.csv") if r["student_id"] == "correct"]
    return records[0], rows


@pytest.fixture(scope="session")
def batch(course, alone):
    records = graded(course, workers=2, limits=LIMITS)
    return {r["student_id"]: r for r in records}


@pytest.fixture
def graded_copy(course, batch, tmp_path) -> Path:
    """A copy of the graded toy course, for a test that changes it (its gradebook sits inside it)."""
    return Path(shutil.copytree(course, tmp_path / "course", symlinks=True))


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (chromium.py: Debian's, never a download)."""
    with launched() as chromium:
        yield chromium
