"""Tiny in-memory notebooks for the unit tests of sanitize.py and scoring.py.

`release()` is what students receive, in the shape nbgrader's generate_assignment writes it
(nbgrader metadata with a checksum, `editable`/`deletable` from LockCells, a kernelspec):

    index  grade id     type      role
    0      setup        code      read-only (locked)
    1      -            markdown  an ordinary instruction cell
    2      answer       code      answer (solution), autograded by the tests below
    3      test_double  code      autograded test, 2 points, hidden tests in the gradebook only
    4      explain      markdown  hand-graded answer (solution + grade), 1 point
    5      task_plot    markdown  task (read-only), 3 points
    6      test_big     code      autograded test, 1 point

`specs()` is what `collabkit.grading.batch.load_specs` builds from the gradebook for it: the
same cells by grade id, read-only sources in full (hidden tests included).

Every call returns a fresh object, so a test may damage what it gets.
"""

from __future__ import annotations

import copy
import hashlib

import nbformat

from collabkit.grading.sanitize import CellSpec, Context

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python", "version": "3.11.0"}

SETUP = "import math"
INSTRUCTION = "Write `double(x)`."
ANSWER = "def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
SOLVED = "def double(x):\n    return 2 * x"
TEST_SHOWN = '"""double doubles numbers."""\nassert double(2) == 4, f"expected double(2) == 4, got {double(2)}"'
HIDDEN = "assert double(-3) == -6, 'double should work for negative numbers'"
TEST_FULL = f"{TEST_SHOWN}\n### BEGIN HIDDEN TESTS\n{HIDDEN}\nassert 1\n### END HIDDEN TESTS"
EXPLAIN = "YOUR ANSWER HERE"
TASK = "Plot the training losses and say what you see."
TEST_BIG = "assert double(10 ** 6) == 2 * 10 ** 6"

# index of each grade id in release()
AT = {"setup": 0, "answer": 2, "test_double": 3, "explain": 4, "task_plot": 5, "test_big": 6}


def checksum(cell) -> str:
    """nbgrader.utils.compute_checksum, without importing nbgrader (slow); test_scoring checks they agree."""
    meta = cell.metadata.nbgrader
    grade, solution = bool(meta.get("grade")), bool(meta.get("solution"))
    locked = False if solution else (True if grade else bool(meta.get("locked")))
    m = hashlib.md5()
    for part in (cell.source, cell.cell_type, str(grade), str(solution), str(locked), meta["grade_id"]):
        m.update(part.encode("utf-8"))
    if grade:
        m.update(str(float(meta["points"])).encode("utf-8"))
    return m.hexdigest()


def cell(
    kind: str,
    source: str,
    gid: str | None = None,
    *,
    grade=False,
    solution=False,
    locked=False,
    task=False,
    points=None,
    cell_id: str | None = None,
) -> nbformat.NotebookNode:
    """A cell as generate_assignment releases it (checksum and lock flags included when it has a grade id)."""
    make = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }[kind]
    c = make(source)
    if cell_id:
        c["id"] = cell_id
    if gid is None:
        return c
    c.metadata.nbgrader = nbformat.from_dict(
        {"grade": grade, "grade_id": gid, "locked": locked, "schema_version": 3, "solution": solution, "task": task}
    )
    if points is not None:
        c.metadata.nbgrader.points = points
    c.metadata.nbgrader.checksum = checksum(c)
    if locked or grade and not solution:  # nbgrader's LockCells
        c.metadata.editable, c.metadata.deletable = False, False
    elif solution:
        c.metadata.deletable = False
    return c


def release() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(
        cells=[
            cell("code", SETUP, "setup", locked=True, cell_id="c-setup"),
            cell("markdown", INSTRUCTION, cell_id="c-instruction"),
            cell("code", ANSWER, "answer", solution=True, cell_id="c-answer"),
            cell("code", TEST_SHOWN, "test_double", grade=True, locked=True, points=2, cell_id="c-test-double"),
            cell("markdown", EXPLAIN, "explain", grade=True, solution=True, points=1, cell_id="c-explain"),
            cell("markdown", TASK, "task_plot", locked=True, task=True, points=3, cell_id="c-task-plot"),
            cell("code", TEST_BIG, "test_big", grade=True, locked=True, points=1, cell_id="c-test-big"),
        ]
    )
    nb.metadata.kernelspec = copy.deepcopy(KERNELSPEC)
    nb.metadata.language_info = copy.deepcopy(LANGUAGE_INFO)
    return nb


def specs() -> dict[str, CellSpec]:
    return {
        "setup": CellSpec("setup", "code", SETUP, locked=True),
        "answer": CellSpec("answer", "code", ANSWER, locked=False, solution=True),
        "test_double": CellSpec("test_double", "code", TEST_FULL, locked=True, grade=True, points=2.0),
        "explain": CellSpec("explain", "markdown", EXPLAIN, locked=False, grade=True, solution=True, points=1.0),
        "task_plot": CellSpec("task_plot", "markdown", TASK, locked=True, task=True, points=3.0),
        "test_big": CellSpec("test_big", "code", TEST_BIG, locked=True, grade=True, points=1.0),
    }


def submission() -> nbformat.NotebookNode:
    """An untouched submission: exactly the release."""
    return release()


def context(upgraded: bool = False) -> Context:
    return Context(release(), specs(), upgraded)


def graded_copy() -> nbformat.NotebookNode:
    """The release as sanitize() leaves an untouched submission: read-only sources in full."""
    nb = release()
    nb.cells[AT["test_double"]].source = TEST_FULL
    return nb


# ---------------------------------------------------------------------------- looking at notebooks


def grade_ids(nb) -> list[str | None]:
    return [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells]


def by_id(nb, gid: str):
    found = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid]
    assert len(found) == 1, f"expected one cell {gid}, found {len(found)}"
    return found[0]


def repairs_of(repairs) -> list[tuple]:
    """(kind, grade_id, tampering) of each repair, in order: what the tests compare."""
    return [(r.kind, r.grade_id, r.tampering) for r in repairs]


# ---------------------------------------------------------------------------- outputs of executed cells


def stdout(text: str = "ok\n"):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def stderr(text: str = "warning\n"):
    return nbformat.v4.new_output("stream", name="stderr", text=text)


def error(ename: str = "AssertionError", evalue: str = "expected double(2) == 4, got 5"):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def result(text: str, count: int = 1):
    return nbformat.v4.new_output("execute_result", data={"text/plain": text}, execution_count=count)
