"""The kit's feedback redaction as an nbgrader preprocessor, for nbgrader's own GenerateFeedback.

Formgrader's "Generate Feedback" button (and `nbgrader generate_feedback`) renders the
autograded notebook, whose test cells hold the restored hidden tests; error outputs quote
them in tracebacks. `kit_config()` puts `StudentView` after `GetGrades` in
`GenerateFeedback.preprocessors`, so that path goes through the same `feedback.student_view`
as `collabkit feedback`: hidden tests and mark schemes cleared, test cells' errors cut to one
line, any hidden-test line left in an output redacted.
"""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor

from .feedback import own_hidden_lines, student_view


class StudentView(NbGraderPreprocessor):
    """Strip what students must not see from an autograded notebook before it becomes feedback."""

    def preprocess(self, nb, resources):
        meta = lambda c: c.metadata.get("nbgrader", {})
        tests = {meta(c).get("grade_id") for c in nb.cells if meta(c).get("grade") and not meta(c).get("solution")}
        nb = student_view(nb, own_hidden_lines(nb), tests)
        return nb, resources
