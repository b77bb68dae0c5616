"""The regrade diff: `collabkit grade` prints each changed cell as `notebook grade_id old -> new`
and keeps the previous scores in grading.json.

The diff itself is checked on records built here; the command's wiring with a stand-in grader
that writes new records (fast); and, in the slow set, a real regrade: bob hands in 05 blank,
is graded, fixes one answer (two cells: its core and its ties), and `collabkit grade --student bob` names exactly the cells that
changed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from harness import ASSIGNMENT, REPO, place, solutions, submission

from collabkit.regrade import changes


def record(scores: dict[str, float | None], total=None, when="2026-12-01T10:00:00+00:00") -> dict:
    return {
        "student_id": "bob",
        "graded_at": when,
        "status": "graded",
        "score": total if total is not None else sum(v or 0 for v in scores.values()),
        "cells": [
            {"notebook": k.split("/")[0], "grade_id": k.split("/")[1], "score": v, "max_score": 1}
            for k, v in scores.items()
        ],
    }


def test_changes_lists_only_changed_cells_in_order():
    old = record({"05/test_b": 1, "05/test_a": 0, "01/test_c": 0.5, "05/ethics": None})
    new = record({"05/test_b": 1, "05/test_a": 1, "01/test_c": 0, "05/ethics": None, "05/test_new": 1})
    assert changes(old, new) == ["01 test_c 0.5 -> 0", "05 test_a 0 -> 1", "05 test_new - -> 1"]
    assert changes(old, old) == []


def fake_course(root: Path) -> Path:
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    (root / "nbgrader_config.py").write_text("c = get_config()\n")
    return root


def test_grade_prints_the_diff_and_records_previous_scores(tmp_path, monkeypatch, capsys):
    """The command around the grader: a stand-in grader rewrites ada's and bo's records."""
    import collabkit.grading.batch
    from collabkit.cli import main
    from collabkit.course import Course

    course = Course.open(fake_course(tmp_path / "course"))
    old = {"ada": record({"01/test_a": 1, "01/test_b": 0}), "bo": record({"01/test_a": 1, "01/test_b": 1})}
    new = {
        "ada": record({"01/test_a": 1, "01/test_b": 1}, when="2026-12-02T10:00:00+00:00"),
        "bo": record({"01/test_a": 1, "01/test_b": 1}, when="2026-12-02T10:00:00+00:00"),
    }
    for sid, rec in old.items():
        course.autograded(sid).mkdir(parents=True)
        (course.autograded(sid) / "grading.json").write_text(json.dumps(dict(rec, student_id=sid)))

    def regrade(course, students=None, workers=2, limits=None, resume=False, scheduler=None):
        from collabkit.grading.records import StudentRecord

        out = []
        for sid in students or sorted(new):
            rec = dict(new[sid], student_id=sid)
            (course.autograded(sid) / "grading.json").write_text(json.dumps(rec))
            out.append(StudentRecord.from_json(rec))
        return out

    monkeypatch.setattr(collabkit.grading.batch, "grade", regrade)
    assert main(["grade", "--root", str(course.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["ada: 1 cell changed (total 1 -> 2)", "  01 test_b 0 -> 1", "bo: no cell changed"], out
    ada = json.loads((course.autograded("ada") / "grading.json").read_text())
    assert ada["previous"] == [
        {
            "graded_at": "2026-12-01T10:00:00+00:00",
            "score": 1,
            "status": "graded",
            "cells": {"01/test_a": 1, "01/test_b": 0},
        }
    ]
    # A second regrade keeps the history, newest first.
    new["ada"] = record({"01/test_a": 0, "01/test_b": 1}, when="2026-12-03T10:00:00+00:00")
    assert main(["grade", "--root", str(course.root), "--student", "ada"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["ada: 1 cell changed (total 2 -> 1)", "  01 test_a 1 -> 0"]
    ada = json.loads((course.autograded("ada") / "grading.json").read_text())
    assert [p["graded_at"] for p in ada["previous"]] == ["2026-12-02T10:00:00+00:00", "2026-12-01T10:00:00+00:00"]


@pytest.mark.slow
def test_a_real_regrade_names_the_cells_a_fix_changed(tmp_path, capsys):
    from collabkit.cli import main
    from collabkit.course import Course
    from collabkit.release import release

    nb = "05_cold_start_and_ethics.ipynb"
    root = fake_course(tmp_path / "course")
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copy(REPO / "source" / ASSIGNMENT / nb, root / "source" / ASSIGNMENT)
    (root / "solutions").mkdir()
    shutil.copy(REPO / "solutions" / "reference.json", root / "solutions" / "reference.json")
    release(Course.open(root))
    place(root, "bob", {nb: submission(root, nb, blank=True)})
    assert main(["grade", "--root", str(root), "--workers", "1"]) == 0
    first = json.loads((root / "autograded" / "bob" / ASSIGNMENT / "grading.json").read_text())
    capsys.readouterr()
    # bob fixes popular_movies only.
    place(
        root, "bob", {nb: submission(root, nb, {"popular_movies": solutions(nb, root)["popular_movies"]}, blank=True)}
    )
    assert main(["grade", "--root", str(root), "--workers", "1", "--student", "bob"]) == 0
    out = capsys.readouterr().out.splitlines()
    # v2 splits popular_movies into its core (1 point) and its ties (0.5): a full fix changes both.
    assert out[:3] == [
        "bob: 2 cells changed (total 0 -> 1.5)",
        "  05_cold_start_and_ethics test_popular_movies 0 -> 1",
        "  05_cold_start_and_ethics test_popular_movies_ties 0 -> 0.5",
    ], out
    second = json.loads((root / "autograded" / "bob" / ASSIGNMENT / "grading.json").read_text())
    assert second["previous"][0]["cells"]["05_cold_start_and_ethics/test_popular_movies"] == 0
    assert second["previous"][0]["cells"]["05_cold_start_and_ethics/test_popular_movies_ties"] == 0
    assert second["previous"][0]["graded_at"] == first["graded_at"]
