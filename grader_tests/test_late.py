"""Late work: a due date in nbgrader_config.py, nbgrader's timestamps and its late-penalty plugins.

Fast tests run nbgrader's AssignLatePenalties with the kit's PercentPerDay plugin on a small
gradebook (no notebook runs); the slow one grades a real submission handed in three hours
late and finds the penalty in grades.csv, grading.json and the student's feedback.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from harness import ASSIGNMENT, REPO, place, submission

from collabkit.course import Course, nbgrader_tools
from collabkit.errors import KitError
from collabkit.late import PercentPerDay, apply_late_penalties, due_date

# nbgrader's own SQLAlchemy noise when a test adds submissions through its API
pytestmark = pytest.mark.filterwarnings("ignore:.*not in session.*")

NB = "05_cold_start_and_ethics"
CONFIG = (
    'c = get_config()\nc.CollabKit.duedate = "2026-12-01 12:00:00 UTC"\n'
    'c.AssignLatePenalties.plugin_class = "collabkit.late.PercentPerDay"\nc.PercentPerDay.percent = 10\n'
)


def test_percent_per_day_takes_a_tenth_per_started_day_up_to_everything():
    plugin = PercentPerDay()
    assert plugin.late_submission_penalty("a", 6.0, 0) is None
    assert plugin.late_submission_penalty("a", 6.0, 1) == pytest.approx(0.6)
    assert plugin.late_submission_penalty("a", 6.0, 86_401) == pytest.approx(1.2)
    assert plugin.late_submission_penalty("a", 6.0, 30 * 86_400) == 6.0


@pytest.fixture(scope="module")
def gradebook(tmp_path_factory) -> Path:
    """ada hands in on time, bo 25 hours late; each scored 6 of 6 on two cells (made once, copied per test)."""
    from datetime import datetime

    from nbgrader.api import Gradebook

    db = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    with nbgrader_tools(), Gradebook(f"sqlite:///{db}") as gb:
        gb.add_assignment(ASSIGNMENT)
        gb.add_notebook(NB, ASSIGNMENT)
        gb.add_grade_cell("q1", NB, ASSIGNMENT, max_score=2, cell_type="code")
        gb.add_grade_cell("q2", NB, ASSIGNMENT, max_score=4, cell_type="code")
        for sid, stamp in {"ada": datetime(2026, 12, 1, 11, 0), "bo": datetime(2026, 12, 2, 13, 0)}.items():
            gb.add_student(sid)
            gb.add_submission(ASSIGNMENT, sid, timestamp=stamp)
            for gid, score in (("q1", 2), ("q2", 4)):
                grade = gb.find_grade(gid, NB, ASSIGNMENT, sid)
                grade.auto_score, grade.needs_manual_grade = score, False
            gb.db.commit()
    return db


def small_course(root: Path, gradebook: Path, config: str = CONFIG) -> Course:
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(config)
    shutil.copy(gradebook, root / "gradebook.db")
    course = Course.open(root)
    for sid in ("ada", "bo"):
        course.autograded(sid).mkdir(parents=True)
        (course.autograded(sid) / "grading.json").write_text(
            json.dumps(
                {
                    "student_id": sid,
                    "status": "graded",
                    "notebooks": {NB: {"status": "graded", "events": []}},
                    "cells": [],
                }
            )
        )
    return course


def test_penalties_reach_the_gradebook_grading_json_and_the_export(tmp_path, gradebook):
    from collabkit.export import export

    course = small_course(tmp_path / "course", gradebook)
    assert apply_late_penalties(course, ["ada", "bo"], refresh=False) == {"ada": 0.0, "bo": pytest.approx(1.2)}
    bo = json.loads((course.autograded("bo") / "grading.json").read_text())
    assert bo["late"]["seconds_late"] == 25 * 3600 and bo["late"]["due"] == "2026-12-01T12:00:00"
    assert bo["notebooks"][NB]["events"] == ["Submitted 1 d 1 h after the due date: late penalty 1.2 points."]
    ada = json.loads((course.autograded("ada") / "grading.json").read_text())
    assert ada["late"]["seconds_late"] == 0 and ada["notebooks"][NB]["events"] == []
    export(course)
    with open(course.exports / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert (rows["ada"]["score"], rows["ada"]["late_penalty"]) == ("6", "0")
    assert (rows["bo"]["score"], rows["bo"]["late_penalty"]) == ("6", "1.2")


def test_without_a_plugin_lateness_is_recorded_and_costs_nothing(tmp_path, gradebook):
    course = small_course(
        tmp_path / "course", gradebook, 'c = get_config()\nc.CollabKit.duedate = "2026-12-01 12:00:00 UTC"\n'
    )
    assert apply_late_penalties(course, ["bo"], refresh=False) == {"bo": 0.0}
    bo = json.loads((course.autograded("bo") / "grading.json").read_text())
    assert bo["late"]["seconds_late"] == 25 * 3600 and bo["late"]["penalty"] == 0


def test_a_due_date_that_is_not_a_date_is_refused_in_one_sentence(tmp_path):
    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "nbgrader_config.py").write_text('c = get_config()\nc.CollabKit.duedate = "next friday-ish"\n')
    with pytest.raises(KitError, match=r"c.CollabKit.duedate = 'next friday-ish' in nbgrader_config.py is not a date"):
        due_date(Course.open(tmp_path))


@pytest.mark.slow
def test_a_late_submission_is_graded_with_its_penalty_in_the_feedback(tmp_path):
    """Due three hours ago; the files arrive now (the time grading records, not a timestamp.txt)."""
    from datetime import datetime, timedelta, timezone

    from collabkit.grading.batch import grade
    from collabkit.release import release

    root = tmp_path / "course"
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(REPO / "source" / ASSIGNMENT / f"{NB}.ipynb", root / "source" / ASSIGNMENT)
    due = (datetime.now(timezone.utc) - timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S UTC")
    config = CONFIG.split("\n", 1)[1].replace("2026-12-01 12:00:00 UTC", due)
    (root / "nbgrader_config.py").write_text((REPO / "nbgrader_config.py").read_text() + "\n" + config)
    release(Course.open(root))
    place(root, "alice", {f"{NB}.ipynb": submission(root, f"{NB}.ipynb")})
    [record] = grade(Course.open(root), workers=1, reference=REPO / "solutions" / "reference.json")
    with open(root / "exports" / "grades.csv", newline="") as f:
        [row] = list(csv.DictReader(f))
    assert float(row["late_penalty"]) == pytest.approx(0.1 * float(row["score"])) and float(row["score"]) > 0, row
    saved = json.loads((root / "autograded" / "alice" / ASSIGNMENT / "grading.json").read_text())
    assert 3 * 3600 <= saved["late"]["seconds_late"] < 3 * 3600 + 600, saved["late"]
    html = (root / "feedback" / "alice" / ASSIGNMENT / f"{NB}.html").read_text()
    assert (
        "Submitted 3 h" in html and f"after the due date: late penalty {float(row['late_penalty']):g} points." in html
    )
