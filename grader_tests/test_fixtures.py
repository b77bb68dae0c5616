"""Planted mistakes lose points exactly where expected, and nowhere else; other correct styles lose nothing.

For each notebook, grader_tests/fixtures/<stem>.py names one submission per mistake (or per
alternative correct answer), and <stem>.csv gives the expected score of every test cell that
should fall below its maximum. All of them, plus the untouched solution, go through one real
autograde run, and every autograded cell's score is compared with the table.
"""

from __future__ import annotations

import pytest
from harness import FIXTURES, autograde, expected_losses, fixture_module, make_course, place, submission

STEMS = ["01_data", "02_dot_product", "03_interpretation", "04_neural_cf", "05_cold_start_and_ethics"]
# Each table is a real autograde of tens of submissions (02's each train the lecture recipe, ~25 s):
# they are the assignment's proof of validity and run with `./kit test --all`, which CI runs.
SLOW = set(STEMS)


def params():
    for stem in STEMS:
        if (FIXTURES / f"{stem}.py").exists():
            yield pytest.param(stem, marks=[pytest.mark.slow] if stem in SLOW else [], id=stem)


@pytest.mark.parametrize("stem", list(params()))
def test_fixture_scores_match_the_table(stem, tmp_path):
    module = fixture_module(stem)
    expected = expected_losses(stem)
    assert set(expected) <= set(module.FIXTURES), (
        f"{stem}.csv names unknown fixtures {set(expected) - set(module.FIXTURES)}"
    )
    course = make_course(tmp_path / "course")
    notebook = module.NOTEBOOK
    place(course, "solution", {notebook: submission(course, notebook)})
    for name, fixture in module.FIXTURES.items():
        place(course, name, {notebook: submission(course, notebook, fixture["cells"])})
    grades = autograde(course)
    auto = grades[(grades.kind == "auto") & (grades.notebook == notebook)]
    assert set(auto.student) == {"solution", *module.FIXTURES}, "every submission was graded"
    wrong = []
    for row in auto.itertuples():
        want = expected.get(row.student, {}).get(row.grade_id, row.max_score)
        if abs(row.score - want) > 1e-9:
            wrong.append(f"{row.student}: {row.grade_id} scored {row.score:g}, expected {want:g} of {row.max_score:g}")
    assert not wrong, "\n".join(wrong)
    for name, cells in expected.items():
        graded = set(auto[auto.student == name].grade_id)
        assert set(cells) <= graded, f"{name}: the table names cells {set(cells) - graded} that were not graded"
