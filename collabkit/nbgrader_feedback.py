"""The kit's feedback redaction as an nbgrader preprocessor, for nbgrader's own GenerateFeedback.

Formgrader's "Generate Feedback" button (and `nbgrader generate_feedback`) renders the
autograded notebook, whose test cells hold the restored hidden tests; error outputs quote
them in tracebacks. `kit_config()` puts `StudentView` after `GetGrades` in
`GenerateFeedback.preprocessors`, so that path goes through the same `feedback.student_view`
as `collabkit feedback`: hidden tests and mark schemes cleared, test cells' errors cut to one
line, any hidden-test line left in an output redacted.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

from .feedback import student_view
from .grading.sanitize import hidden_lines


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


class StudentView(NbGraderPreprocessor):
    """Strip what students must not see from an autograded notebook before it becomes feedback."""

    def preprocess(self, nb, resources):
        tests = {_meta(c).get("grade_id") for c in nb.cells if _meta(c).get("grade") and not _meta(c).get("solution")}
        specs = {i: SimpleNamespace(source=c.source) for i, c in enumerate(nb.cells) if _meta(c).get("grade_id") in tests}
        shown, _ = ClearHiddenTests(enforce_metadata=False).preprocess(copy.deepcopy(nb), {})
        nb = student_view(nb, hidden_lines(specs, shown), tests)
        return nb, resources
