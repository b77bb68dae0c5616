"""Grades into the LMS: Canvas's and Moodle's import layouts, byte for byte.

The golden files in grader_tests/golden/ were written by hand from the formats' rules (see
collabkit/lms.py): header order, quoting of names with commas and quotes, CRLF, a decimal
point with at most two decimals, a blank grade for a missing submission unless
--missing-as-zero, an honest 0 kept as 0. The last test runs `collabkit export --roster` on a
small gradebook and checks what it says on stderr about students it could not place.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from collabkit import ASSIGNMENT
from collabkit.lms import RosterError, canvas_csv, join, moodle_csv, points, read_roster

# nbgrader's own SQLAlchemy noise when a test adds submissions through its API
pytestmark = pytest.mark.filterwarnings("ignore:.*not in session.*")

GOLDEN = Path(__file__).resolve().parent / "golden"

ROSTER = (
    "student_id,name,lms_id,sis_user_id,sis_login_id,section,email,idnumber\n"
    "dee,Dée Ray,104,S-004,dee@uni.example,B,dee@uni.example,S-004\n"
    '"ada","Ng, Ada",101,S-001,ada@uni.example,A,ada@uni.example,S-001\n'
    "bo,Bo Li,102,S-002,bo@uni.example,A,bo@uni.example,S-002\n"
    'cy,"Cy ""Sky"" Oz",103,S-003,cy@uni.example,B,cy@uni.example,S-003\n'
)
# As exports/grades.csv holds them: strings. bo scored an honest 0; dee handed nothing in;
# eve has a grade but is not on the roster.
GRADES = [
    {"student_id": "ada", "status": "graded", "score": "47.5", "max_score": "47.5", "cells_awaiting_hand_grading": "0"},
    {"student_id": "bo", "status": "graded", "score": "0", "max_score": "47.5", "cells_awaiting_hand_grading": "0"},
    {
        "student_id": "cy",
        "status": "graded",
        "score": "0.333333",
        "max_score": "47.5",
        "cells_awaiting_hand_grading": "0",
    },
    {"student_id": "eve", "status": "graded", "score": "12", "max_score": "47.5", "cells_awaiting_hand_grading": "0"},
]


@pytest.fixture
def roster(tmp_path) -> list[dict]:
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")
    return read_roster(path)


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def test_points_use_a_decimal_point_and_at_most_two_decimals():
    assert [points(x) for x in (47.5, "47.50", 0, "0.0", 1 / 3, 2 / 3, 12, 1234.5, None, "")] == [
        "47.5",
        "47.5",
        "0",
        "0",
        "0.33",
        "0.67",
        "12",
        "1234.5",
        "",
        "",
    ]


def test_join_lists_students_missing_from_either_side(roster):
    pairs, not_in_roster, no_submission = join(GRADES, roster)
    assert [r["student_id"] for r, _ in pairs] == ["ada", "bo", "cy", "dee"]
    assert not_in_roster == ["eve"] and no_submission == ["dee"]


def test_canvas_layout(roster):
    pairs, _, _ = join(GRADES, roster)
    got = canvas_csv(pairs, "Collaborative filtering", 47.5, assignment_id="4471").encode("utf-8")
    assert got == golden("canvas.csv")


def test_canvas_without_sis_columns_and_missing_as_zero(roster):
    for r in roster:
        del r["sis_user_id"], r["sis_login_id"]
    pairs, _, _ = join(GRADES, roster)
    got = canvas_csv(pairs, "Collaborative filtering", 47.5, assignment_id="4471", missing_as_zero=True)
    assert got.encode("utf-8") == golden("canvas_no_sis_missing_as_zero.csv")


def test_the_lms_gets_the_score_less_the_late_penalty(roster):
    grades = [dict(g, late_penalty="4.75" if g["student_id"] == "ada" else "") for g in GRADES]
    text, _ = moodle_csv(join(grades, roster)[0], "t", "idnumber")
    assert text.splitlines()[1:3] == ["S-001,42.75", "S-002,0"]


def test_a_grader_error_is_blank_never_a_zero(roster):
    grades = [dict(g, status="grader_error") if g["student_id"] == "bo" else g for g in GRADES]
    text, _ = moodle_csv(join(grades, roster)[0], "t", "idnumber", missing_as_zero=True)
    assert text.splitlines()[1:3] == ["S-001,47.5", "S-002,"]


def test_canvas_needs_names_and_canvas_ids(roster):
    for r in roster:
        del r["lms_id"]
    with pytest.raises(RosterError, match="Canvas needs a lms_id column"):
        canvas_csv(join(GRADES, roster)[0], "t", 1)


def test_moodle_by_email(roster):
    text, left_out = moodle_csv(join(GRADES, roster)[0], "Collaborative filtering", "email")
    assert text.encode("utf-8") == golden("moodle_email.csv") and left_out == []


def test_moodle_by_idnumber_missing_as_zero(roster):
    text, _ = moodle_csv(join(GRADES, roster)[0], ASSIGNMENT, "idnumber", missing_as_zero=True)
    assert text.encode("utf-8") == golden("moodle_idnumber_missing_as_zero.csv")


def test_moodle_leaves_out_and_names_a_student_without_the_identifier(roster):
    roster[0]["email"] = ""  # dee
    text, left_out = moodle_csv(join(GRADES, roster)[0], "t", "email")
    assert left_out == ["dee"] and "dee" not in text and text.count("\r\n") == 4


@pytest.mark.parametrize(
    "content, message",
    [
        ("name,email\nAda,a@x\n", r"has no student_id column \(its header is: name, email\)"),
        ("student_id,name\nada,Ada\nada,Ada again\n", "line 3: student_id ada appears twice"),
        ("student_id,name\n,Ada\n", "line 2: student_id is empty"),
    ],
)
def test_bad_rosters_are_refused_in_one_sentence(tmp_path, content, message):
    path = tmp_path / "roster.csv"
    path.write_text(content)
    with pytest.raises(RosterError, match=message):
        read_roster(path)


def test_a_roster_saved_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes("\ufeffstudent_id,name\nada,Ada\n".encode("utf-8"))
    assert read_roster(path) == [{"student_id": "ada", "name": "Ada"}]


# ---------------------------------------------------------------------------- the command


def small_course(root: Path) -> Path:
    """A course whose gradebook holds ada (2 of 3 points), bo (0 of 3) and eve (3 of 3), no notebooks run."""
    from nbgrader.api import Gradebook

    from collabkit.course import nbgrader_tools

    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    (root / "nbgrader_config.py").write_text("c = get_config()\n")
    with nbgrader_tools(), Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.add_assignment(ASSIGNMENT)
        gb.add_notebook("05_cold_start_and_ethics", ASSIGNMENT)
        gb.add_grade_cell("q1", "05_cold_start_and_ethics", ASSIGNMENT, max_score=1, cell_type="code")
        gb.add_grade_cell("q2", "05_cold_start_and_ethics", ASSIGNMENT, max_score=2, cell_type="code")
        for sid, scores in {"ada": (0, 2), "bo": (0, 0), "eve": (1, 2)}.items():
            gb.add_student(sid)
            gb.add_submission(ASSIGNMENT, sid)
            for gid, score in zip(("q1", "q2"), scores, strict=True):
                grade = gb.find_grade(gid, "05_cold_start_and_ethics", ASSIGNMENT, sid)
                grade.auto_score, grade.needs_manual_grade = score, False
            gb.db.commit()
    return root


def test_export_with_a_roster_writes_canvas_and_names_whom_it_could_not_place(tmp_path, monkeypatch, capsys):
    from collabkit.cli import main

    course = small_course(tmp_path / "course")
    monkeypatch.chdir(course)
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name,lms_id,section\nada,Ada,1,A\nbo,Bo,2,A\ndee,Dee,4,B\n")
    capsys.readouterr()
    assert (
        main(
            [
                "export",
                "--roster",
                str(roster),
                "--format",
                "canvas",
                "--canvas-assignment-id",
                "9",
                "--assignment-title",
                "CF",
            ]
        )
        == 0
    )
    assert (course / "exports" / "canvas.csv").read_bytes() == (
        b"Student,ID,Section,CF (9)\r\nPoints Possible,,,3\r\nAda,1,A,2\r\nBo,2,A,0\r\nDee,4,B,\r\n"
    )
    assert capsys.readouterr().err.splitlines() == [
        f"collabkit export: eve has a grade but is not in the roster {roster}: not written to canvas.csv",
        "collabkit export: dee is in the roster but has no submission: written as a blank grade",
    ]
    assert main(["export", "--roster", str(roster), "--format", "moodle"]) == 2
    assert capsys.readouterr().err == (
        "collabkit export: Moodle's import maps students by email, and the roster has no email column\n"
    )
    assert main(["export", "--format", "moodle"]) == 2
    assert "--roster and --format go together" in capsys.readouterr().err
    with open(course / "exports" / "grades.csv", newline="") as f:
        assert [r["student_id"] for r in csv.DictReader(f)] == ["ada", "bo", "eve"], "grades.csv still lists everyone"
