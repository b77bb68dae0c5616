"""Grade fixture submissions, and read the expected score tables.

Submissions are built by collabkit.samples, the way students make them. `autograde` grades
them with the kit's pipeline (nbgrader's preprocessors and gradebook, isolated and parallel);
`nbgrader_autograde` with stock `nbgrader autograde`, to prove the assignment works there too.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd

from collabkit import ASSIGNMENT, samples
from collabkit.course import Course, tool_env
from collabkit.samples import place, solutions, submission  # noqa: F401  (the tests' API)

REPO = Path(__file__).resolve().parent.parent  # this checkout: the kit's own course
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def make_course(where: Path) -> Path:
    """A throwaway course at `where` with this checkout's config and source, released."""
    return samples.make_course(where, REPO)


def autograde(course: Path, students: list[str] | None = None) -> pd.DataFrame:
    """Autograde submitted/ with `collabkit grade` (nbgrader underneath, isolated, 2 workers);
    one row per graded cell: student, notebook, grade_id, kind, score, max_score."""
    from collabkit.grading.batch import grade

    reference = REPO / "solutions" / "reference.json"
    if not reference.exists():  # tests that need it fail on their own; the others still run
        reference = course / "solutions" / "reference.json"
        reference.parent.mkdir(exist_ok=True)
        reference.write_text("{}")
    records = grade(Course.open(course), students=students, workers=2, reference=reference)
    failed = {r.student_id: r.error or r.to_json()["notebooks"] for r in records if r.status == "grader_error"}
    assert not failed, failed
    return read_grades(course)


def nbgrader_autograde(course: Path) -> pd.DataFrame:
    """Stock `nbgrader autograde`, sequential and unisolated, as an instructor without the kit would run it
    (COLLABKIT_STOCK_AUTOGRADE=1: the kit's settings otherwise make it refuse and name `collabkit grade`)."""
    env = tool_env(
        COLLABKIT_REFERENCE=str(REPO / "solutions" / "reference.json"),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        COLLABKIT_STOCK_AUTOGRADE="1",
    )
    run = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force", "--log-level=WARN"],
        cwd=course,
        capture_output=True,
        text=True,
        env=env,
    )
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
                    rows.append(
                        dict(
                            student=sub.student.id,
                            notebook=f"{nb.name}.ipynb",
                            grade_id=g.name,
                            kind="auto" if auto else "manual",
                            score=g.score,
                            max_score=g.max_score,
                        )
                    )
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
