"""The course is the folder you stand in: the kit works in any nbgrader course, installed as a package.

Unit tests check how a folder is read as a course (and refused, in one line naming it). The
integration test installs the kit from a wheel (not editable) into a fresh virtual environment
that reuses the pinned stack, adds the assignment to an instructor's existing course that already
holds another assignment, and runs release, grade and export there, from the course folder. The
other assignment and this checkout stay as they were.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from harness import ASSIGNMENT, REPO, place, submission

from collabkit.course import Course, CourseError, kit_config

# ---------------------------------------------------------------------------- reading a course


def test_a_folder_without_nbgrader_config_is_not_a_course(tmp_path):
    with pytest.raises(CourseError, match=f"{tmp_path} is not an nbgrader course: it has no nbgrader_config.py"):
        Course.open(tmp_path)


def test_a_course_without_the_assignment_says_what_to_copy(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    with pytest.raises(CourseError, match=rf"{tmp_path} has no source/{ASSIGNMENT}/"):
        Course.open(tmp_path)


def test_the_working_directory_is_the_course(tmp_path, monkeypatch):
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.submitted_directory = 'turned_in'\n"
    )
    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    course = Course.open()
    assert course.root == tmp_path.resolve()
    assert course.release == tmp_path.resolve() / "release" / ASSIGNMENT
    assert course.submitted("ada") == tmp_path.resolve() / "turned_in" / "ada" / ASSIGNMENT, (
        "the course's config is read"
    )
    assert course.gradebook == tmp_path.resolve() / "gradebook.db"
    assert course.reference == tmp_path.resolve() / "solutions" / "reference.json"


def test_the_kit_settings_sit_on_top_of_the_course_and_keep_its_timeout(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.Execute.timeout = 1200\nc.ClearSolutions.text_stub = 'theirs'\n"
    )
    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    cfg = Course.open(tmp_path).nbgrader_config()
    assert cfg.Execute.timeout == 1200, "a course's own cell timeout wins"
    assert cfg.ClearSolutions.text_stub == kit_config().ClearSolutions.text_stub


def test_commands_outside_a_course_end_in_one_line(tmp_path):
    for command in (
        ["release"],
        ["reference"],
        ["grade"],
        ["feedback"],
        ["export"],
        ["report"],
        ["demo"],
        ["bench", "--quick"],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "collabkit", *command], cwd=tmp_path, capture_output=True, text=True
        )
        assert run.returncode == 2, (command, run.stdout, run.stderr)
        assert run.stderr.strip() == (
            f"collabkit {command[0]}: {tmp_path} is not an nbgrader course: it has no "
            "nbgrader_config.py (run collabkit in the course folder, or pass --root)"
        ), run.stderr


def test_grading_a_course_never_released_says_so(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    shutil.copytree(REPO / "source" / ASSIGNMENT, tmp_path / "source" / ASSIGNMENT)
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "reference.json").write_text("{}")
    for command in (["grade"], ["export"], ["feedback"]):
        run = subprocess.run(
            [sys.executable, "-m", "collabkit", *command, "--root", str(tmp_path)], capture_output=True, text=True
        )
        assert run.returncode == 2 and "run `collabkit release` first" in run.stderr, (command, run.stderr)
        assert "Traceback" not in run.stderr


# ---------------------------------------------------------------------------- installed, in another course

# Everything in this checkout that a kit command run against a course could write or add.
KIT_WRITABLE = [
    "source",
    "release",
    "solutions",
    "submitted",
    "autograded",
    "feedback",
    "exports",
    "bench",
    ".demo",
    "dist",
    "build",
    "collabkit.egg-info",
]


def checkout_state() -> dict[str, float]:
    """The files of this checkout that a kit command could write, with their modification times,
    plus every top-level name (a new file or folder anywhere at the top shows up too)."""
    out = {name: 0.0 for name in os.listdir(REPO)}
    out |= {str(p.relative_to(REPO)): p.stat().st_mtime for p in REPO.glob("gradebook.db*")}
    for top in KIT_WRITABLE:
        for dirpath, _, filenames in os.walk(REPO / top):
            for name in filenames:
                path = Path(dirpath) / name
                out[str(path.relative_to(REPO))] = path.stat().st_mtime
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtual environment with the kit installed from its wheel, reusing this one's pinned stack."""
    where = tmp_path_factory.mktemp("installed")
    wheels, project = where / "wheels", where / "project"  # built from a copy: setuptools writes beside the sources
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "collabkit", project / "collabkit", ignore=shutil.ignore_patterns("__pycache__"))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(project),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    (site / "pinned_stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # .pth files there are not run
    [wheel] = wheels.glob("collabkit-*.whl")
    run = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
    )  # pip itself comes from the reused stack
    assert run.returncode == 0, run.stderr[-3000:]
    where_from = subprocess.run(
        [venv / "bin" / "python", "-c", "import collabkit; print(collabkit.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=where,
    ).stdout.strip()
    assert where_from.startswith(str(venv)), f"collabkit came from {where_from}, not the wheel"
    return venv


HELLO = {
    "cells": [
        {
            "cell_type": "code",
            "id": "answer",
            "execution_count": None,
            "outputs": [],
            "source": "### BEGIN SOLUTION\nx = 1\n### END SOLUTION",
            "metadata": {
                "nbgrader": {
                    "grade": False,
                    "solution": True,
                    "locked": False,
                    "grade_id": "answer",
                    "schema_version": 3,
                }
            },
        },
        {
            "cell_type": "code",
            "id": "check",
            "execution_count": None,
            "outputs": [],
            "source": "assert x == 1",
            "metadata": {
                "nbgrader": {
                    "grade": True,
                    "solution": False,
                    "locked": True,
                    "grade_id": "check",
                    "points": 1,
                    "schema_version": 3,
                }
            },
        },
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def test_installed_kit_releases_grades_and_exports_in_an_existing_course(installed, tmp_path):
    before = checkout_state()
    course = tmp_path / "intro-ml"
    course.mkdir()
    # The instructor's own course: their config (none of the kit's settings), another assignment.
    (course / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "intro-ml"\n')
    (course / "source" / "hello").mkdir(parents=True)
    nbformat.write(nbformat.from_dict(HELLO), course / "source" / "hello" / "hello.ipynb")
    # The reused stack's data files (nbconvert's templates) live under its own prefix.
    env = dict(
        os.environ,
        PATH=f"{installed / 'bin'}{os.pathsep}{os.environ['PATH']}",
        JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"),
    )
    run = subprocess.run(
        [installed / "bin" / "python", "-m", "nbgrader", "generate_assignment", "hello"],
        cwd=course,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    hello_release = (course / "release" / "hello" / "hello.ipynb").read_bytes()
    # Adding the assignment: copy its source/ and solutions/ in, as the README says.
    shutil.copytree(REPO / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT)
    shutil.copytree(REPO / "solutions", course / "solutions")

    def collabkit(*args):
        return subprocess.run(
            [installed / "bin" / "collabkit", *args], cwd=course, capture_output=True, text=True, env=env
        )

    run = collabkit("release")
    assert run.returncode == 0, run.stderr[-3000:]
    for name in sorted(p.name for p in (REPO / "release" / ASSIGNMENT).glob("*.ipynb")):
        assert (course / "release" / ASSIGNMENT / name).read_text() == (
            REPO / "release" / ASSIGNMENT / name
        ).read_text(), f"{name}: the release made in another course differs from the committed one"
    # ada hands in 01 only (answered with the solution); the other four are missing.
    place(course, "ada", {"01_data.ipynb": submission(course, "01_data.ipynb")})
    run = collabkit("grade", "--workers", "1")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    run = collabkit("export")
    assert run.returncode == 0, run.stderr[-3000:]
    with open(course / "exports" / "grades.csv", newline="") as f:
        [row] = list(csv.DictReader(f))
    record = json.loads((course / "autograded" / "ada" / ASSIGNMENT / "grading.json").read_text())
    assert row["student_id"] == "ada" and row["status"] == "missing", row
    assert record["notebooks"]["01_data"]["status"] == "graded", record["notebooks"]["01_data"]
    earned = {c["grade_id"]: c["score"] for c in record["cells"] if c["notebook"] == "01_data"}
    possible = {c["grade_id"]: c["max_score"] for c in record["cells"] if c["notebook"] == "01_data"}
    assert earned == possible and float(row["score"]) == sum(possible.values()), (earned, row)
    # The course's other assignment is untouched, in its folder and in the gradebook.
    assert (course / "release" / "hello" / "hello.ipynb").read_bytes() == hello_release
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "intro-ml") as gb:
        assert sorted(a.name for a in gb.assignments) == [ASSIGNMENT, "hello"]
        assert [c.name for c in gb.find_assignment("hello").notebooks[0].grade_cells] == ["check"]
    assert checkout_state() == before, "the checkout was touched"
