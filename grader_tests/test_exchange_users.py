"""nbgrader's exchange round trip across real Unix users: an instructor and two students.

Run as root (it creates the users with useradd and removes them with userdel -r). The course
holds 01_data only (the round trip, not the assignment, is under test). In order:

1. the instructor (in a course in their own home, whose nbgrader_config.py points
   `Exchange.root` at a shared folder made as nbgrader's docs make it, plus the sticky bit, so a
   student cannot rename the course's folder and plant a release) runs `collabkit release` and
   `nbgrader release_assignment`;
2. each student (with their own `~/.jupyter/nbgrader_config.py`: the course id and the
   exchange) lists and fetches the assignment, fills it in (alice with the instructor's
   solution, bob with a density bug from the fixture table), runs `nbgrader validate` and
   `nbgrader submit`, all as themselves;
3. the instructor runs `nbgrader collect`; root runs `collabkit grade` (root, for the sandbox);
4. the instructor runs `nbgrader generate_feedback` (the kit's redaction) and
   `nbgrader release_feedback`; each student runs `nbgrader fetch_feedback`.

Then each student's grades are the expected ones, neither student can list the exchange's
inbound or feedback folders, and nothing either student can read (their home, the other's home,
the exchange, the shared data, the course) holds the other's answers or a hidden test's line.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from harness import ASSIGNMENT, REPO, expected_losses, fixture_module, read_grades
from unix_users import SharedPython, home, make_user, reachable, remove_user, run_as, shared_base, shared_python

from collabkit.course import Course
from collabkit.samples import grade_id, is_answer, solutions

pytestmark = pytest.mark.slow

NB = "01_data.ipynb"
BUG = "density_uses_largest_id"  # fails a visible and a hidden density test
COURSE_ID = "collab-kit"  # nbgrader_config.py's CourseDirectory.course_id


@pytest.fixture(scope="module")
def world():
    """Three users (an instructor, alice, bob) and a shared folder; all removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root: it creates Unix users (useradd) and runs nbgrader as each of them")
    if not (shutil.which("useradd") and shutil.which("userdel") and shutil.which("runuser")):
        pytest.skip("needs useradd, userdel and runuser")
    tag = secrets.token_hex(3)
    names = dict(teacher=f"ckteach{tag}", alice=f"ckalice{tag}", bob=f"ckbob{tag}")
    base = shared_base()
    made = []
    try:
        for name in names.values():
            make_user(name)
            made.append(name)
        yield SimpleNamespace(base=base, **names)
    finally:
        for name in made:
            remove_user(name)
        shutil.rmtree(base, ignore_errors=True)
    assert not any((Path("/home") / n).exists() for n in made)


def nbgrader(user: str, py: SharedPython, *args: str, cwd, env: dict | None = None) -> str:
    run = run_as(user, [str(py.python), "-m", "nbgrader", *args], cwd=cwd, env=env, py=py)
    assert run.returncode == 0, f"nbgrader {args[0]} as {user}: {run.stdout[-2000:]}{run.stderr[-3000:]}"
    return run.stdout + run.stderr


def answered(fetched: Path, cells: dict[str, str], marker: str) -> nbformat.NotebookNode:
    """The fetched notebook with every answer cell filled in (and a marker naming its author)."""
    nb = nbformat.read(fetched, as_version=4)
    for cell in nb.cells:
        if is_answer(cell) and grade_id(cell) in cells:
            cell.source = cells[grade_id(cell)]
            if grade_id(cell) == "load_ratings":
                cell.source += f"\n# {marker}\n"
    return nb


def test_release_fetch_submit_collect_grade_feedback_across_users(world):
    w = world
    python = shared_python(w.base, w.alice)
    env = {"FASTAI_HOME": str(w.base / "fastai")}  # the README's shared FASTAI_HOME for a JupyterHub
    data = subprocess.run(
        [sys.executable, "-m", "collabkit", "data"], capture_output=True, text=True, env=dict(os.environ, **env)
    )
    assert data.returncode == 0, data.stderr
    exchange = w.base / "exchange"  # nbgrader's docs: mkdir, then chmod ugo+rw; plus the sticky bit (README)
    exchange.mkdir()
    exchange.chmod(0o1777)

    # 1. The instructor's course, in their own home, released to the exchange.
    course = home(w.teacher) / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(REPO / "source" / ASSIGNMENT / NB, course / "source" / ASSIGNMENT / NB)
    config = (REPO / "nbgrader_config.py").read_text() + f"\nc.Exchange.root = {str(exchange)!r}\n"
    (course / "nbgrader_config.py").write_text(config)
    (course / "solutions").mkdir()
    shutil.copy(REPO / "solutions" / "reference.json", course / "solutions" / "reference.json")
    subprocess.run(["chown", "-R", f"{w.teacher}:{w.teacher}", str(course)], check=True)
    run = run_as(w.teacher, [str(python.python), "-m", "collabkit", "release"], cwd=course, env=env, py=python)
    assert run.returncode == 0, run.stderr[-3000:]
    nbgrader(w.teacher, python, "release_assignment", ASSIGNMENT, cwd=course, env=env)
    assert exchange.stat().st_mode & 0o7777 == 0o1777, "nbgrader kept the exchange's mode"
    # Without the sticky bit a student could rename the course's folder and plant a release of their own.
    moved = run_as(w.bob, ["/bin/mv", str(exchange / COURSE_ID), str(exchange / "planted")], cwd="/")
    assert moved.returncode != 0 and (exchange / COURSE_ID).is_dir(), moved.stderr

    # 2. Each student lists, fetches, answers, validates and submits, as themselves.
    fixture = fixture_module("01_data").FIXTURES[BUG]["cells"]
    answers = {w.alice: solutions(NB, REPO), w.bob: {**solutions(NB, REPO), **fixture}}
    markers = {s: f"answered by {s}, {secrets.token_hex(8)}" for s in answers}
    validated = {}
    for student, cells in answers.items():
        h = home(student)
        (h / ".jupyter").mkdir()
        (h / ".jupyter" / "nbgrader_config.py").write_text(
            f"c = get_config()\nc.CourseDirectory.course_id = {COURSE_ID!r}\nc.Exchange.root = {str(exchange)!r}\n"
        )
        subprocess.run(["chown", "-R", f"{student}:{student}", str(h / ".jupyter")], check=True)
        listed = nbgrader(student, python, "list", cwd=h, env=env)
        assert f"{COURSE_ID} {ASSIGNMENT}" in listed, listed
        nbgrader(student, python, "fetch_assignment", ASSIGNMENT, cwd=h, env=env)
        fetched = h / ASSIGNMENT / NB
        assert fetched.stat().st_uid == int(run_as(student, ["/usr/bin/id", "-u"], cwd=h).stdout)
        nbformat.write(answered(fetched, cells, markers[student]), fetched)
        validated[student] = nbgrader(student, python, "validate", f"{ASSIGNMENT}/{NB}", cwd=h, env=env)
        nbgrader(student, python, "submit", ASSIGNMENT, cwd=h, env=env)
    assert "Success! Your notebook passes all the tests." in validated[w.alice], validated[w.alice][-2000:]
    assert "VALIDATION FAILED" in validated[w.bob] and "density" in validated[w.bob], validated[w.bob][-2000:]

    # 3. The instructor collects; `collabkit grade` (as root, for the sandbox) grades.
    nbgrader(w.teacher, python, "collect", ASSIGNMENT, cwd=course, env=env)
    assert Course.open(course).submitted_students() == sorted(answers)
    graded = subprocess.run(
        [sys.executable, "-m", "collabkit", "grade", ASSIGNMENT, "--root", str(course), "--workers", "2"],
        capture_output=True,
        text=True,
        env=dict(os.environ, **env),
    )
    assert graded.returncode == 0, graded.stdout[-2000:] + graded.stderr[-3000:]
    grades = read_grades(course)
    total = grades.groupby("student")["score"].sum().to_dict()
    max_score = grades[grades.student == w.alice]["max_score"].sum()
    losses = expected_losses("01_data")[BUG]
    by_cell = grades[grades.student == w.bob].set_index("grade_id")
    assert {gid: by_cell.loc[gid, "score"] for gid in losses} == losses
    assert total == {w.alice: max_score, w.bob: max_score - sum(by_cell.loc[g, "max_score"] for g in losses)}

    # 4. Feedback: generated (redacted) and released by the instructor, fetched by each student.
    nbgrader(w.teacher, python, "generate_feedback", ASSIGNMENT, "--force", cwd=course, env=env)
    nbgrader(w.teacher, python, "release_feedback", ASSIGNMENT, cwd=course, env=env)
    for student in answers:
        nbgrader(student, python, "fetch_feedback", ASSIGNMENT, cwd=home(student), env=env)
        [page] = (home(student) / ASSIGNMENT / "feedback").glob(f"*/{Path(NB).stem}.html")
        assert markers[student] in page.read_text(), f"{page} is not {student}'s feedback"

    # Nobody sees another's work, and no student sees a hidden test.
    from collabkit.grading.batch import load_assignment

    hidden = load_assignment(Course.open(course))[2][Path(NB).stem]
    assert len(hidden) >= 10
    roots = [exchange, w.base / "fastai", Path("/home"), course]
    for student, other in [(w.alice, w.bob), (w.bob, w.alice)]:
        for folder in ("inbound", "feedback"):
            ls = run_as(student, ["/bin/ls", str(exchange / COURSE_ID / folder)], cwd="/")
            assert ls.returncode != 0 and "Permission denied" in ls.stderr, (student, folder, ls.stdout)
        own = (home(student) / ASSIGNMENT / NB).read_text()
        secret = [line for line in hidden if line not in own and line.replace('"', '\\"') not in own]
        seen = reachable(student, python, roots, [markers[student], markers[other], "BEGIN HIDDEN TESTS", *secret])
        found = {needle for _, needle in seen["found"]}
        assert markers[student] in found, "the search must find the student's own answers (in their home)"
        assert markers[other] not in found, [p for p, n in seen["found"] if n == markers[other]]
        assert not found - {markers[student]}, sorted(found - {markers[student]})[:3]
        assert not [p for p in seen["listed"] if other in p], f"{student} can list {other}'s files"
        assert not [p for p in seen["listed"] if str(course) in p], f"{student} can list the course"
    print(json.dumps({"grades": total, "max": float(max_score)}))
