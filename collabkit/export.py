"""Runs in the grading parent (and `collabkit export`): the class's grades as CSV, from the gradebook.

exports/grades.csv has one row per student (`student_id, status, score, max_score,
cells_awaiting_hand_grading, notes, late_penalty`) and exports/grades_by_cell.csv one row per graded cell
(`student_id, notebook, grade_id, score, max_score, status`). Scores are the gradebook's (hand
grades included); statuses and notes come from each student's grading.json. Both are sorted,
so two runs can be diffed, and written to a temporary file then renamed; they are rebuilt whole
from the gradebook under the course's gradebook lock, so two grading runs never interleave them.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .course import Course
from .errors import KitError
from .grading.records import CellStatus, StudentRecord

NOT_GRADED = "not_graded_by_collabkit"  # in the gradebook (e.g. stock nbgrader autograde), no grading.json


def export(course: Course) -> tuple[Path, Path]:
    """Write exports/grades.csv and exports/grades_by_cell.csv; return their paths."""
    from .grading.slots import gradebook_lock

    with gradebook_lock(course.locks / "gradebook.lock"):  # one run's rows at a time, read and written whole
        return _export(course)


def _export(course: Course) -> tuple[Path, Path]:
    from nbgrader.api import Gradebook, MissingEntry

    assignment = course.assignment
    if not course.gradebook.exists():
        raise KitError(f"{course.gradebook} is missing: run `collabkit release` first")
    out = course.exports
    out.mkdir(exist_ok=True)
    students, cells = [], []
    with Gradebook(course.db_url, course.coursedir.course_id) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise KitError(f"the gradebook has no assignment {assignment}: run `collabkit release` first") from None
        for sub in sorted(gb.assignment_submissions(assignment), key=lambda s: s.student.id):
            sid = sub.student.id
            path = course.autograded(sid) / "grading.json"
            record = StudentRecord.read(path) if path.exists() else None
            by_cell = {(c.notebook, c.grade_id): c.status for c in record.cells} if record else {}
            waiting = 0
            for nb in sorted(sub.notebooks, key=lambda n: n.name):
                for g in sorted(nb.grades, key=lambda g: g.name):
                    status = by_cell.get((nb.name, g.name), CellStatus.UNKNOWN)
                    if g.manual_score is not None:
                        status = CellStatus.MANUALLY_GRADED
                    waiting += g.needs_manual_grade and g.manual_score is None
                    cells.append(
                        [
                            sid,
                            nb.name,
                            g.name,
                            _num(g.score if g.score is not None else 0),
                            _num(g.max_score),
                            str(status),
                        ]
                    )
            notes = (
                "; ".join(
                    record.notes
                    + [
                        f"{n}: {r}"
                        for n, e in sorted(record.notebooks.items())
                        for r in e.repairs + e.events + ([e.error] if e.error and e.status != "crashed" else [])
                    ]
                )
                if record
                else ""
            )
            students.append(
                [
                    sid,
                    str(record.status) if record else NOT_GRADED,
                    _num(sub.score),
                    _num(sub.max_score),
                    waiting,
                    notes,
                    _num(sub.late_submission_penalty),
                ]
            )
    grades, by_cell = out / "grades.csv", out / "grades_by_cell.csv"
    _write_csv(
        grades,
        ["student_id", "status", "score", "max_score", "cells_awaiting_hand_grading", "notes", "late_penalty"],
        students,
    )
    _write_csv(by_cell, ["student_id", "notebook", "grade_id", "score", "max_score", "status"], cells)
    return grades, by_cell


def _num(x) -> str:
    return f"{float(x):g}" if x is not None else ""


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two runs never share a temporary file
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)
