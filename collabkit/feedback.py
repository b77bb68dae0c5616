"""Runs in the grading parent (and `collabkit feedback`): feedback students can read, never hidden tests or mark schemes.

nbgrader's own feedback renders the autograded notebook, which holds the restored hidden
tests and, in error outputs, tracebacks that quote them line by line. Here the notebook
goes through nbgrader's GetGrades (scores from the gradebook), ClearHiddenTests and
ClearMarkScheme; test cells' errors are cut down to the one line a student should read
(`AssertionError: expected ..., got ...`); any hidden-test line that still shows up in an
output (a student's function could print its caller) is redacted; and a note at the top
says how the submission was graded and what had to be repaired.

`kit_config()` puts the same steps in nbgrader's own GenerateFeedback chain, so
`nbgrader generate_feedback` and formgrader's "Generate Feedback" button are leak-free too.
There the two redaction steps get no test ids or hidden lines: they read them themselves from
the gradebook and the release named by `resources['nbgrader']`.
"""

from __future__ import annotations

import os

import nbformat
from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, GetGrades
from traitlets import Bool, List, Set
from traitlets.config import Config

from .course import Course
from .grading.records import STATUS_MEANING, NotebookResult, Status, StudentRecord

REDACTED = "[hidden test]"


def _templates() -> Config:
    import nbgrader

    base = os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader")
    c = Config()
    c.HTMLExporter.template_name = "feedback"
    c.HTMLExporter.extra_template_basedirs = [os.path.join(base, "templates")]
    c.HTMLExporter.extra_template_paths = [os.path.join(base, "static", "node_modules", "bootstrap", "dist", "css")]
    return c


def _redact(text: str, hidden: list[str]) -> str:
    for line in hidden:
        if line in text:
            text = text.replace(line, REDACTED)
    return text


def assignment_facts(preprocessor: Preprocessor, resources: dict) -> tuple[list[str], set[str]]:
    """The hidden-test lines and test-cell ids of the notebook `resources['nbgrader']` names
    (db_url, assignment, notebook): from the gradebook's source cells and the release notebook,
    found through the nbgrader converter running this preprocessor (or the course folder)."""
    from nbgrader.api import Gradebook

    from .grading.batch import load_specs
    from .grading.sanitize import hidden_lines

    info = resources.get("nbgrader") or {}
    if not all(info.get(k) for k in ("db_url", "assignment", "notebook")):
        return [], set()
    with Gradebook(info["db_url"]) as gb:
        specs = load_specs(gb, info["assignment"]).get(info["notebook"], {})
    coursedir = getattr(getattr(preprocessor.parent, "parent", None), "coursedir", None)
    if coursedir is not None:
        folder = coursedir.format_path(coursedir.release_directory, ".", info["assignment"])
    else:
        folder = str(Course.open(os.getcwd(), info["assignment"]).release)
    path = os.path.join(folder, f"{info['notebook']}.ipynb")
    release = nbformat.read(path, as_version=4) if os.path.exists(path) else nbformat.v4.new_notebook()
    tests = {gid for gid, spec in specs.items() if spec.grade and not spec.solution}
    return hidden_lines(specs, release), tests


class StripTestTracebacks(Preprocessor):
    """A test cell's error shows only its last line (`AssertionError: expected ..., got ...`):
    its traceback would quote the hidden test line by line. With no `test_ids` (in nbgrader's
    own feedback chain) it finds them from `resources['nbgrader']`."""

    test_ids = Set(help="grade ids of the autograded test cells").tag(config=True)
    enabled = Bool(True, help="on in nbgrader's chains, as nbgrader's own preprocessors are").tag(config=True)

    def preprocess(self, nb, resources):  # one exporter serves many notebooks: found afresh for each
        self._ids = self.test_ids or assignment_facts(self, resources)[1]
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.metadata.get("nbgrader", {}).get("grade_id") in self._ids:
            for out in cell.get("outputs", []):
                if out.output_type == "error":
                    out.traceback = [f"{out.ename}: {out.evalue}"]
        return cell, resources


class RedactHiddenLines(Preprocessor):
    """Any hidden-test line that still shows in an output (a student's function could print its
    caller's source) becomes `[hidden test]`. With no `hidden` lines (in nbgrader's own feedback
    chain) it finds them from `resources['nbgrader']`."""

    hidden = List(help="lines of hidden-test source, longest first").tag(config=True)
    enabled = Bool(True, help="on in nbgrader's chains, as nbgrader's own preprocessors are").tag(config=True)

    def preprocess(self, nb, resources):  # one exporter serves many notebooks: found afresh for each
        self._lines = self.hidden or assignment_facts(self, resources)[0]
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        hidden = self._lines
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                out.evalue = _redact(out.evalue, hidden)
                out.traceback = [_redact(t, hidden) for t in out.traceback]
            elif out.output_type == "stream":
                out.text = _redact(out.text, hidden)
            elif "data" in out:
                for key, value in list(out.data.items()):
                    if isinstance(value, str):
                        out.data[key] = _redact(value, hidden)
        return cell, resources


def student_view(nb, hidden: list[str], test_ids: set[str]):
    """Strip hidden tests, mark schemes and tracebacks through tests from an autograded notebook."""
    for step in (
        ClearHiddenTests(enforce_metadata=False),
        ClearMarkScheme(enforce_metadata=False),
        StripTestTracebacks(test_ids=set(test_ids)),
        RedactHiddenLines(hidden=list(hidden)),
    ):
        nb, _ = step.preprocess(nb, {})
    return nb


def own_hidden_lines(nb) -> list[str]:
    """The hidden-test lines of an autograded notebook's own test cells, as they ran there (with the
    reference values grading wrote into them), for redaction."""
    import copy
    from types import SimpleNamespace

    from .grading.sanitize import hidden_lines

    meta = lambda c: c.metadata.get("nbgrader", {})
    tests = {meta(c).get("grade_id") for c in nb.cells if meta(c).get("grade") and not meta(c).get("solution")}
    specs = {i: SimpleNamespace(source=c.source) for i, c in enumerate(nb.cells) if meta(c).get("grade_id") in tests}
    shown, _ = ClearHiddenTests(enforce_metadata=False).preprocess(copy.deepcopy(nb), {})
    return hidden_lines(specs, shown)


def render(nb, resources: dict, hidden: list[str], test_ids: set[str], note: str | None) -> str:
    """HTML feedback for one notebook; `resources['nbgrader']` names notebook, assignment, student, db_url."""
    nb = nbformat.from_dict(nb)
    hidden = sorted(set(hidden) | set(own_hidden_lines(nb)), key=len, reverse=True)
    nb, resources = GetGrades().preprocess(nb, resources)
    nb = student_view(nb, hidden, test_ids)
    if note:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
    html, _ = HTMLExporter(config=_templates()).from_notebook_node(nb, resources=resources)
    return _redact(html, hidden)


def feedback_note(entry: NotebookResult | None) -> str | None:
    """The note at the top of a notebook's feedback: how it was graded and what had to be repaired."""
    if not entry:
        return None
    lines = []
    if entry.status not in (Status.GRADED, Status.NEEDS_MANUAL_GRADE):
        status = Status(entry.status)
        lines.append(f"**How this notebook was graded: {status.value.replace('_', ' ')}.** {STATUS_MEANING[status]}.")
    lines += [f"- {r}" for r in entry.repairs + entry.events]
    return "\n".join(lines) if lines else None


def write_feedback(
    course: Course, student: str, notebooks: dict, entries: dict[str, NotebookResult], specs: dict, hidden: dict
) -> None:
    """feedback/<student>/<assignment>/<notebook>.html, with the gradebook's current scores."""
    fb_dir = course.feedback(student)
    fb_dir.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        tests = {gid for gid, s in specs[name].items() if s.grade and not s.solution}
        resources = {
            "nbgrader": {"notebook": name, "assignment": course.assignment, "student": student, "db_url": course.db_url}
        }
        html = render(nb, resources, hidden[name], tests, feedback_note(entries.get(name)))
        (fb_dir / f"{name}.html").write_text(html)


def refresh_feedback(course: Course, students: list[str] | None = None) -> list[str]:
    """Render feedback again from the autograded notebooks and the gradebook (after hand-grading).

    Returns the students whose feedback was written; runs no student code."""
    from .grading.batch import load_assignment

    specs, _, hidden = load_assignment(course)
    done = []
    for student in course.graded_students():
        if students and student not in students:
            continue
        folder = course.autograded(student)
        record = StudentRecord.read(folder / "grading.json")
        notebooks = {
            name: nbformat.read(folder / f"{name}.ipynb", as_version=4)
            for name in specs
            if (folder / f"{name}.ipynb").exists()
        }
        write_feedback(course, student, notebooks, record.notebooks, specs, hidden)
        done.append(student)
    return done
