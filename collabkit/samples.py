"""Sample submissions, made the way students make them, for the demo, the tests and the benchmark.

A submission starts from the *release* notebook (what students receive). Its answer cells are
filled with the instructor's solution (a correct student), left as released (a blank student),
or replaced cell by cell (one planted mistake, or another correct style).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat

from . import ASSIGNMENT
from .course import Course
from .release import release

SOLUTION_MARKERS = re.compile(r"^\s*(### BEGIN SOLUTION|### END SOLUTION)\s*$", re.M)


def make_course(
    where: Path, root: Path, notebooks: list[str] | dict | None = None, reference: Path | dict | None = None
) -> Path:
    """A throwaway course at `where`, released into its own gradebook: the course at `root`'s
    nbgrader_config.py, and as this assignment's source either all of root's notebooks, those
    named in a list, or the notebooks of a {name: notebook} dict. `reference` is a reference.json
    to copy into solutions/ (with the files beside it that it names), or a dict to write there."""
    from .grading.batch import reference_files

    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "nbgrader_config.py", where / "nbgrader_config.py")
    source = where / "source" / ASSIGNMENT
    source.mkdir(parents=True, exist_ok=True)
    if isinstance(notebooks, dict):
        for name, nb in notebooks.items():
            nbformat.write(nbformat.from_dict(nb), source / name)
    else:
        for name in notebooks or notebook_names(root):
            shutil.copy(root / "source" / ASSIGNMENT / name, source / name)
    release(Course.open(where))
    if reference is not None:
        (where / "solutions").mkdir(exist_ok=True)
        if isinstance(reference, dict):
            (where / "solutions" / "reference.json").write_text(json.dumps(reference))
        else:
            shutil.copy(reference, where / "solutions" / "reference.json")
            for name in reference_files(reference):
                shutil.copy(reference.parent / name, where / "solutions" / name)
    return where


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_answer(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def solutions(notebook: str, course: Path) -> dict[str, str]:
    """The instructor's answer for every answer cell of `notebook`, markers removed, by grade id."""
    nb = nbformat.read(course / "source" / ASSIGNMENT / notebook, as_version=4)
    return {grade_id(c): SOLUTION_MARKERS.sub("", c.source).strip("\n") + "\n" for c in nb.cells if is_answer(c)}


def submission(course: Path, notebook: str, cells: dict[str, str] | None = None, blank: bool = False):
    """The release notebook, answered by the solution (unless blank), with `cells` replaced by grade id."""
    nb = nbformat.read(course / "release" / ASSIGNMENT / notebook, as_version=4)
    answers = {} if blank else solutions(notebook, course)
    answers.update(cells or {})
    unknown = set(cells or {}) - {grade_id(c) for c in nb.cells if is_answer(c)}
    if unknown:
        raise KeyError(f"{notebook} has no answer cells {sorted(unknown)}")
    for cell in nb.cells:
        if is_answer(cell) and grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return nb


def place(course: Path, student: str, notebooks: dict[str, object]) -> Path:
    """Write a student's notebooks under submitted/. Values are NotebookNodes, or raw text for bad input."""
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        if isinstance(nb, (str, bytes)):
            (folder / name).write_bytes(nb.encode() if isinstance(nb, str) else nb)
        else:
            nbformat.write(nb, folder / name)
    return folder


def notebook_names(course: Path) -> list[str]:
    return sorted(p.name for p in (course / "source" / ASSIGNMENT).glob("[0-9][0-9]_*.ipynb"))
