"""Regrading one student (`collabkit grade --student ID`) changes that student's rows and nobody else's."""

from __future__ import annotations

import json

import bad_submissions as bad
from bad_submissions import ASSIGNMENT
from conftest import LIMITS, answers_of, gradebook_rows, graded, read_csv, submit


def test_regrading_one_student_changes_only_that_student(graded_copy):
    course = graded_copy
    before_db = gradebook_rows(course)
    before_csv = read_csv(course / "exports" / "grades.csv")
    before_cells = read_csv(course / "exports" / "grades_by_cell.csv")
    release = json.loads((course / "release" / ASSIGNMENT / "toy.ipynb").read_text())
    submit(course, "stub", bad.correct(release, answers_of(course)))  # the student resubmits, fixed
    backups = len(list(course.glob("gradebook.db.backup-*")))
    [record] = graded(course, students=["stub"], workers=1, limits=LIMITS)
    assert len(list(course.glob("gradebook.db.backup-*"))) == min(backups + 1, 10)
    assert record["score"] == 3.0
    after_db = gradebook_rows(course)
    assert {s: r for s, r in after_db.items() if s != "stub"} == {s: r for s, r in before_db.items() if s != "stub"}
    assert after_db["stub"] != before_db["stub"]
    others = lambda rows: [r for r in rows if r["student_id"] != "stub"]
    assert others(read_csv(course / "exports" / "grades.csv")) == others(before_csv)
    assert others(read_csv(course / "exports" / "grades_by_cell.csv")) == others(before_cells)
