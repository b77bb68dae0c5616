"""Feedback students can read: scores and one-line messages, never hidden tests, mark schemes or
tracebacks through them; hand grades made in formgrader reach it and the exports without
running any student code."""

from __future__ import annotations

import bad_submissions as bad  # noqa: F401
import nbformat
from bad_submissions import ASSIGNMENT, BAD, SECRET
from conftest import page_text, read_csv

from collabkit.course import Course


def test_feedback_never_shows_hidden_tests_or_mark_schemes(course, batch):
    from nbgrader.api import Gradebook

    from collabkit.grading.batch import load_specs
    from collabkit.grading.sanitize import hidden_lines

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        specs = load_specs(gb, ASSIGNMENT)["toy"]
    release = nbformat.read(course / "release" / ASSIGNMENT / "toy.ipynb", as_version=4)
    hidden = hidden_lines(specs, release)
    assert len(hidden) >= 4
    pages = sorted((course / "feedback").glob(f"*/{ASSIGNMENT}/toy.html"))
    assert len(pages) == len(BAD)
    for page in pages:
        text = page.read_text() + page_text(page)
        for secret in [SECRET, "BEGIN HIDDEN TESTS", "mark-scheme-secret", "MARK SCHEME", *hidden]:
            assert secret not in text, f"{page.parent.parent.name}'s feedback shows {secret!r}"


def test_feedback_says_pass_or_fail_and_the_student_facing_message(course, batch):
    text = page_text(course / "feedback" / "fails_hidden" / ASSIGNMENT / "toy.html")
    assert "double should work for negative numbers" in text  # the hidden test's message
    assert "Traceback" not in text and "assert float(double(-3))" not in text
    tampered = page_text(course / "feedback" / "edited_test" / ASSIGNMENT / "toy.html")
    assert "tampered" in tampered and "was edited; the original was restored" in tampered


def test_hand_grades_reach_feedback_and_exports_without_running_student_code(graded_copy):
    """After hand-grading in formgrader, `collabkit feedback` and `collabkit export` pick the scores up."""
    from nbgrader.api import Gradebook

    from collabkit.export import export
    from collabkit.feedback import refresh_feedback

    course = graded_copy
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.find_grade("explain", "toy", ASSIGNMENT, "fails_hidden").manual_score = 0.5
        gb.find_comment("explain", "toy", ASSIGNMENT, "fails_hidden").manual_comment = "hand-graded-comment-7731"
        gb.db.commit()
    page = course / "feedback" / "fails_hidden" / ASSIGNMENT / "toy.html"
    page.unlink()
    assert refresh_feedback(Course.open(course), students=["fails_hidden"]) == ["fails_hidden"]
    text = page_text(page)
    assert "hand-graded-comment-7731" in text
    assert SECRET not in text and "mark-scheme-secret" not in text
    export(Course.open(course))
    [row] = [r for r in read_csv(course / "exports" / "grades.csv") if r["student_id"] == "fails_hidden"]
    assert float(row["score"]) == 1.5  # 1 autograded point (test_square) + 0.5 by hand
    [cell] = [
        r
        for r in read_csv(course / "exports" / "grades_by_cell.csv")
        if r["student_id"] == "fails_hidden" and r["grade_id"] == "explain"
    ]
    assert (cell["score"], cell["status"]) == ("0.5", "manually_graded")
