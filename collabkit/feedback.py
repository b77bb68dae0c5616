"""Feedback students can read: scores and messages, never hidden tests or mark schemes.

nbgrader's own feedback renders the autograded notebook, which holds the restored hidden
tests and, in error outputs, tracebacks that quote them line by line. Here the notebook
goes through nbgrader's GetGrades (scores from the gradebook), ClearHiddenTests and
ClearMarkScheme; test cells' errors are cut down to the one line a student should read
(`AssertionError: expected ..., got ...`); any hidden-test line that still shows up in an
output (a student's function could print its caller) is redacted; and a note at the top
says how the submission was graded and what had to be repaired.
"""
from __future__ import annotations

import os

import nbformat
from nbconvert.exporters import HTMLExporter
from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, GetGrades
from traitlets.config import Config

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


def student_view(nb, hidden: list[str], test_ids: set[str]):
    """Strip hidden tests, mark schemes and tracebacks through tests from an autograded notebook (in place)."""
    nb, _ = ClearHiddenTests(enforce_metadata=False).preprocess(nb, {})
    nb, _ = ClearMarkScheme(enforce_metadata=False).preprocess(nb, {})
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                if gid in test_ids:
                    out.traceback = [f"{out.ename}: {out.evalue}"]
                out.evalue = _redact(out.evalue, hidden)
                out.traceback = [_redact(t, hidden) for t in out.traceback]
            elif out.output_type == "stream":
                out.text = _redact(out.text, hidden)
            elif "data" in out:
                for key, value in list(out.data.items()):
                    if isinstance(value, str):
                        out.data[key] = _redact(value, hidden)
    return nb


def render(nb, resources: dict, hidden: list[str], test_ids: set[str], note: str | None) -> str:
    """HTML feedback for one notebook; `resources['nbgrader']` names notebook, assignment, student, db_url."""
    nb = nbformat.from_dict(nb)
    nb, resources = GetGrades().preprocess(nb, resources)
    nb = student_view(nb, hidden, test_ids)
    if note:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
    html, _ = HTMLExporter(config=_templates()).from_notebook_node(nb, resources=resources)
    return _redact(html, hidden)
