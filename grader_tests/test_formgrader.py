"""Hand-grading in formgrader, proven in a real browser.

A small course (05_cold_start_and_ethics only, the notebook with the rubrics and free text)
is released and one student, alice, autograded. `collabkit serve` starts Jupyter with
formgrader on 127.0.0.1, and headless Chromium (Debian's `chromium`, driven by Playwright;
no browser is downloaded) grades her by hand the way an instructor does: open her 05
notebook, find the rubric next to her free-text answer, type a score and a comment, press
"Generate Feedback". The feedback must show the hand score and the comment and no hidden
test, and `collabkit export` must add the hand score to her total. A screenshot of each step
is kept in the test's tmp folder (its path is printed; `-s` shows it).
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from html import unescape
from pathlib import Path

import pytest
from harness import ASSIGNMENT, REPO, place, submission

from collabkit.course import Course

pytestmark = pytest.mark.slow

NB = "05_cold_start_and_ethics"
SCORE, COMMENT = "1.5", "Names the proxy objective well; the feedback loop needs its mechanism."


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course with 05 only, released, alice (the solution) autograded."""
    from collabkit.grading.batch import grade
    from collabkit.release import release

    root = tmp_path_factory.mktemp("fg") / "course"
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copy(REPO / "source" / ASSIGNMENT / f"{NB}.ipynb", root / "source" / ASSIGNMENT)
    release(Course.open(root))
    place(root, "alice", {f"{NB}.ipynb": submission(root, f"{NB}.ipynb")})
    [record] = grade(Course.open(root), workers=1, reference=REPO / "solutions" / "reference.json")
    assert record.status == "needs_manual_grade", record
    return root


@pytest.fixture(scope="module")
def server(course):
    from collabkit.serve import start, stop

    proc, url = start(Course.open(course), log=course.parent / "serve.log")
    yield url
    stop(proc)


def grades_row(course: Path) -> dict:
    with open(course / "exports" / "grades.csv", newline="") as f:
        [row] = list(csv.DictReader(f))
    return row


def manual_grade(course: Path, grade_id: str):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grade = gb.find_grade(grade_id, NB, ASSIGNMENT, "alice")
        comment = gb.find_comment(grade_id, NB, ASSIGNMENT, "alice")
        return grade.manual_score, comment.manual_comment


def test_hand_grading_in_formgrader_reaches_feedback_and_export(course, server, browser, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    before = grades_row(course)
    waiting = int(before["cells_awaiting_hand_grading"])  # 05's free-text answers (the card's autograded)
    assert waiting >= 2, before
    base = server.split("/formgrader")[0]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)

    # 1. formgrader opens, with the course's assignment.
    page.goto(server)
    page.wait_for_selector("td.name:has-text('collab_filtering')")
    page.screenshot(path=shots / "1_formgrader.png")

    # 2. alice's 05: the rubric is visible to the grader, in the cell right above her free-text answer.
    page.goto(f"{base}/formgrader/gradebook/{ASSIGNMENT}/{NB}")
    page.click("a:has-text('alice'), a:has-text('Submission #1')")
    answer = page.locator("div.nbgrader_cell", has=page.locator("input#ethics_objective"))
    rubric = page.locator("div.nbgrader_cell", has=page.locator("input#ethics_objective_question"))
    answer.wait_for()
    rubric.scroll_into_view_if_needed()
    assert rubric.is_visible() and answer.is_visible()
    assert "=== BEGIN MARK SCHEME ===" in rubric.inner_text() and "1 point: the objective" in rubric.inner_text()
    assert "Student's answer" in answer.inner_text() and "popularity bias" in answer.inner_text()
    adjacent = page.evaluate("""() => {
        const a = document.querySelector('input#ethics_objective_question').closest('div.cell');
        const b = document.querySelector('input#ethics_objective').closest('div.cell');
        return a.nextElementSibling === b; }""")
    assert adjacent, "the rubric's cell is not directly above the free-text answer"
    page.screenshot(path=shots / "2_rubric_next_to_answer.png")

    # 3. a hand score and a comment, saved into the gradebook as a grader types them.
    page.fill("input#ethics_objective", SCORE)
    page.press("input#ethics_objective", "Tab")
    page.fill("textarea#ethics_objective-comment", COMMENT)
    page.press("textarea#ethics_objective-comment", "Tab")
    deadline = time.monotonic() + 30
    while manual_grade(course, "ethics_objective") != (float(SCORE), COMMENT) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert manual_grade(course, "ethics_objective") == (float(SCORE), COMMENT)
    answer.scroll_into_view_if_needed()
    page.screenshot(path=shots / "3_scored.png")

    # 4. "Generate Feedback": the student's feedback shows the score and the comment, no hidden test.
    feedback = course / "feedback" / "alice" / ASSIGNMENT / f"{NB}.html"
    shutil.rmtree(course / "feedback")  # the file checked below must come from the button
    page.goto(f"{base}/formgrader/manage_assignments")
    page.click("td.generate-feedback a")
    page.wait_for_selector("#success-modal, #error-modal")
    page.screenshot(path=shots / "4_generate_feedback.png")
    assert page.locator("#success-modal").count() == 1, page.locator("#error-modal").inner_text()
    html = feedback.read_text()
    fb = browser.new_page(viewport={"width": 1280, "height": 900})
    fb.goto(feedback.as_uri())
    text = fb.inner_text("body")
    assert COMMENT in text, "the grader's comment is not in the feedback"
    assert f"{float(SCORE)} / 2.0" in text or f"{SCORE} / 2" in text, "the hand score is not in the feedback"
    assert "BEGIN HIDDEN TESTS" not in html, "feedback shows a hidden test"
    # alice's own answers may repeat a hidden test's line (her fold_in_user is the reference's): those may show.
    own = (course / "submitted" / "alice" / ASSIGNMENT / f"{NB}.ipynb").read_text()
    secret = {line for line in hidden_test_lines(course) if line not in own and line.replace('"', '\\"') not in own}
    assert len(secret) > 20
    plain = unescape(html)
    leaked = {line for line in secret if line in html or line in plain or line in text}
    assert not leaked, f"feedback shows hidden tests: {sorted(leaked)[:3]}"
    assert "MARK SCHEME" not in html, "feedback shows a rubric"
    fb.get_by_text(COMMENT).scroll_into_view_if_needed()
    fb.screenshot(path=shots / "5_feedback.png")

    # 5. the export has the new total.
    from collabkit.cli import main

    assert main(["export", "--root", str(course)]) == 0
    after = grades_row(course)
    assert float(after["score"]) == float(before["score"]) + float(SCORE), (before, after)
    assert int(after["cells_awaiting_hand_grading"]) == waiting - 1, after
    if os.environ.get("COLLABKIT_SCREENSHOTS"):  # refresh the README's pictures: COLLABKIT_SCREENSHOTS=docs
        for name in ("2_rubric_next_to_answer.png", "5_feedback.png"):
            shutil.copy(shots / name, Path(os.environ["COLLABKIT_SCREENSHOTS"]) / f"formgrader_{name}")


def hidden_test_lines(course: Path) -> set[str]:
    """The hidden-test lines of 05 (at least 12 characters, not shown in the release)."""
    from collabkit.grading.batch import load_assignment

    _, _, hidden = load_assignment(Course.open(course))
    assert len(hidden[NB]) > 20
    return set(hidden[NB])
