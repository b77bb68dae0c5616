"""Build submissions the way students make them, and grade them with real nbgrader.

A submission starts from the *release* notebook (what students receive). Its answer cells
are filled with the instructor's solution (a correct student), left as released (a blank
student), or replaced cell by cell with a fixture's code (one planted mistake, or another
correct style).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENT = "collab_filtering"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SOLUTION_MARKERS = re.compile(r"^\s*(### BEGIN SOLUTION|### END SOLUTION)\s*$", re.M)


def make_course(where: Path) -> Path:
    """A throwaway course at `where`: this repo's config and sources, released into its own gradebook."""
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", where / "nbgrader_config.py")
    shutil.copytree(REPO / "source", where / "source")
    run = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", ASSIGNMENT, "--force",
                          "--log-level=WARN"], cwd=where, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return where


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_answer(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def solutions(notebook: str, course: Path = REPO) -> dict[str, str]:
    """The instructor's answer for every answer cell of `notebook`, markers removed, by grade id."""
    nb = nbformat.read(course / "source" / ASSIGNMENT / notebook, as_version=4)
    return {grade_id(c): SOLUTION_MARKERS.sub("", c.source).strip("\n") + "\n" for c in nb.cells if is_answer(c)}


def submission(course: Path, notebook: str, cells: dict[str, str] | None = None, blank: bool = False):
    """The release notebook, answered by the solution (unless blank), with `cells` replaced by grade id."""
    nb = nbformat.read(course / "release" / ASSIGNMENT / notebook, as_version=4)
    answers = {} if blank else solutions(notebook, course)
    answers.update(cells or {})
    unknown = set(cells or {}) - {grade_id(c) for c in nb.cells if is_answer(c)}
    assert not unknown, f"{notebook} has no answer cells {sorted(unknown)}"
    for cell in nb.cells:
        if is_answer(cell) and grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return nb


def place(course: Path, student: str, notebooks: dict[str, object]) -> None:
    """Write a student's notebooks under submitted/. Values are NotebookNodes or raw text (bad input)."""
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        if isinstance(nb, (str, bytes)):
            (folder / name).write_bytes(nb.encode() if isinstance(nb, str) else nb)
        else:
            nbformat.write(nb, folder / name)


def autograde(course: Path, students: list[str] | None = None) -> pd.DataFrame:
    """Autograde submitted/ with nbgrader; one row per graded cell: student, notebook, grade_id, kind, score, max_score."""
    env = dict(os.environ, COLLABKIT_REFERENCE=str(REPO / "solutions" / "reference.json"),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force", "--log-level=WARN"]
    for s in students or []:
        cmd += ["--student", s]
    run = subprocess.run(cmd, cwd=course, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return read_grades(course)


def read_grades(course: Path) -> pd.DataFrame:
    from nbgrader.api import Gradebook
    rows = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(ASSIGNMENT):
            for nb in sub.notebooks:
                for g in nb.grades:
                    auto = g.auto_score is not None or g.cell_type == "code"
                    rows.append(dict(student=sub.student.id, notebook=f"{nb.name}.ipynb", grade_id=g.name,
                                     kind="auto" if auto else "manual", score=g.score, max_score=g.max_score))
    return pd.DataFrame(rows, columns=["student", "notebook", "grade_id", "kind", "score", "max_score"])


def fixture_module(stem: str):
    """grader_tests/fixtures/<stem>.py: NOTEBOOK and FIXTURES."""
    spec = importlib.util.spec_from_file_location(f"fixtures_{stem}", FIXTURES / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_losses(stem: str) -> dict[str, dict[str, float]]:
    """grader_tests/fixtures/<stem>.csv: fixture -> {grade_id: expected score} for cells below max."""
    path = FIXTURES / f"{stem}.csv"
    if not path.exists():
        return {}
    table = pd.read_csv(path, comment="#")
    out: dict[str, dict[str, float]] = {}
    for row in table.itertuples(index=False):
        out.setdefault(row.fixture, {})[row.grade_id] = float(row.score)
    return out
