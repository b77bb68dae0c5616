"""nbgrader's own GenerateFeedback (formgrader's button) redacts as the kit does: a tiny autograded notebook.

The notebook is built here: a test cell with a hidden part whose failure quoted a hidden line
in its traceback and in printed output, and a task cell with a mark scheme. StudentView must
leave the visible test, drop the hidden part and the rubric, cut the traceback to one line and
redact the hidden line wherever an output repeats it. The slow browser test
(test_formgrader.py) checks the same through formgrader itself.
"""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from collabkit.course import kit_config
from collabkit.nbgrader_feedback import StudentView

HIDDEN = "assert _secret_reference(x) == 42, 'hidden check'"


def autograded_notebook():
    test = new_code_cell(
        "assert isinstance(x, int), 'x should be an int'\n### BEGIN HIDDEN TESTS\n" + HIDDEN + "\n### END HIDDEN TESTS",
        metadata={"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": "test_x", "points": 1}},
    )
    test.outputs = [
        new_output("stream", name="stdout", text=f"debug: {HIDDEN}\n"),
        new_output(
            "error",
            ename="AssertionError",
            evalue="hidden check",
            traceback=["Traceback (most recent call last):", f"----> 3 {HIDDEN}", "AssertionError: hidden check"],
        ),
    ]
    task = new_markdown_cell(
        "Explain x.\n\n=== BEGIN MARK SCHEME ===\nOne point for naming the proxy.\n=== END MARK SCHEME ===",
        metadata={
            "nbgrader": {"grade": False, "solution": False, "task": True, "locked": True, "grade_id": "q", "points": 0}
        },
    )
    answer = new_code_cell(
        "x = 41", metadata={"nbgrader": {"grade": False, "solution": True, "locked": False, "grade_id": "x"}}
    )
    return new_notebook(cells=[answer, test, task])


def test_student_view_drops_hidden_tests_rubrics_and_tracebacks():
    nb, _ = StudentView().preprocess(autograded_notebook(), {})
    text = nbformat.writes(nb)
    assert "x should be an int" in nb.cells[1].source, "the visible test stays"
    assert HIDDEN not in text and "BEGIN HIDDEN TESTS" not in text
    assert "MARK SCHEME" not in text and "naming the proxy" not in text and "Explain x." in nb.cells[2].source
    error = nb.cells[1].outputs[1]
    assert error.traceback == ["AssertionError: hidden check"]
    assert nb.cells[1].outputs[0].text == "debug: [hidden test]\n"
    assert nb.cells[0].source == "x = 41", "the student's own answer is untouched"


def test_kit_config_puts_student_view_into_generate_feedback():
    from nbgrader.preprocessors import GetGrades

    pps = kit_config().GenerateFeedback.preprocessors
    assert GetGrades in pps and StudentView in pps and pps.index(GetGrades) < pps.index(StudentView), pps
