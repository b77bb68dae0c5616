"""The two ends of the score range, through stock `nbgrader autograde` of all five notebooks.

The instructor's solution, submitted as a student would (the release filled in), earns every
autograded point; the untouched release earns none, and every notebook is still graded. This
runs plain nbgrader, not the kit's grader, so an instructor who grades without the kit gets
the same scores (the kit's own pipeline grades the solution in test_real_notebooks.py).
"""

from __future__ import annotations

import pytest
from harness import make_course, nbgrader_autograde, place, submission
from test_release import NOTEBOOKS

# Two students through stock nbgrader, all five notebooks (about 3 minutes): with `./kit test --all`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def grades(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("ends") / "course")
    place(course, "solution", {n: submission(course, n) for n in NOTEBOOKS})
    place(course, "blank", {n: submission(course, n, blank=True) for n in NOTEBOOKS})
    return nbgrader_autograde(course)


def test_solution_earns_every_autograded_point(grades):
    auto = grades[(grades.student == "solution") & (grades.kind == "auto")]
    assert set(auto.notebook) == set(NOTEBOOKS)
    lost = auto[auto.score < auto.max_score]
    assert lost.empty, lost.to_string()


def test_blank_release_earns_nothing_and_is_graded_everywhere(grades):
    auto = grades[(grades.student == "blank") & (grades.kind == "auto")]
    assert set(auto.notebook) == set(NOTEBOOKS)
    earned = auto[auto.score > 0]
    assert earned.empty, earned.to_string()


def test_manual_cells_wait_for_a_grader(grades):
    manual = grades[grades.kind == "manual"]
    assert not manual.empty, "free-text answers are hand-graded"
    assert manual.score.fillna(0).eq(0).all()
