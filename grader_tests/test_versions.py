"""`collabkit.versions`: the one line a notebook's first cell prints when the stack is not the course's.

The rule is checked on made-up versions; the line itself in a real kernel importing `collabkit.nb`,
where it must be one stdout stream (nbgrader scores a cell 0 if it writes to stderr).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from collabkit import versions

REPO = Path(__file__).resolve().parent.parent
PINS = {"fastai": "2.8.12", "torch": "2.14.1", "pandas": "3.1.1", "numpy": "2.4.6", "matplotlib": "3.11.2"}


def installed(**got):
    return lambda name: got.get(name, PINS.get(name))


def test_the_pinned_stack_and_harmless_differences_say_nothing():
    assert versions.notice(PINS, installed()) is None
    # Patch releases, Colab's CUDA builds of torch, newer minors where only the major counts, matplotlib.
    harmless = installed(fastai="2.8.13", torch="2.9.0+cu126", pandas="3.4.0", numpy="2.0.2", matplotlib="3.5.0")
    assert versions.notice(PINS, harmless) is None


def test_what_matters_is_named_in_one_line():
    line = versions.notice(PINS, installed(fastai="2.7.19", torch="1.13.1+cu117", pandas="2.2.2", numpy="1.26.4"))
    assert line is not None and "\n" not in line
    assert line.startswith("collabkit: this Python differs from the course's pins where grading can tell: ")
    for part in (
        "fastai 2.7.19 (course: 2.8.12)",
        "torch 1.13.1+cu117 (course: 2.14.1)",
        "pandas 2.2.2 (course: 3.1.1)",
        "numpy 1.26.4 (course: 2.4.6)",
    ):
        assert part in line, part
    assert "matplotlib" not in line
    assert "fastai 2.9.0" in versions.notice(PINS, installed(fastai="2.9.0"))  # a newer minor counts too
    assert versions.notice(PINS, installed(fastai=None)).endswith(
        "fastai not installed (course: 2.8.12). Code that works here may behave differently when graded; see STUDENTS.md."
    )


def test_the_pins_are_the_courses():
    # In this checkout, the course's requirements.txt (in the students' wheel, pins.txt: test_handout).
    assert versions.pins_file() == REPO / "requirements.txt"
    pins = versions.read_pins(versions.pins_file().read_text())
    assert {k: pins[k] for k in versions.MATTERS} == {k: PINS[k] for k in versions.MATTERS}
    assert versions.read_pins("# c\njupyter_client==8.10.0 ; python_version>='3.11'\nx>=1\n") == {
        "jupyter-client": "8.10.0"
    }


def test_importing_collabkit_nb_in_a_kernel_prints_the_line_on_stdout(tmp_path):
    pins = tmp_path / "pins.txt"
    pins.write_text("fastai==1.0.61\ntorch==2.14.1\n")  # fastai 1: what this kernel has differs
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
            f"import collabkit.versions as v; from pathlib import Path; v.pins_file = lambda: Path({str(pins)!r})"
        ),
        nbformat.v4.new_code_cell("import collabkit.nb as ck"),
        nbformat.v4.new_code_cell("import collabkit.nb"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    [out] = nb.cells[1].outputs
    assert out.output_type == "stream" and out.name == "stdout", out
    assert out.text.count("\n") == 1 and out.text.startswith("collabkit: this Python differs"), out.text
    assert "fastai 2.8.12 (course: 1.0.61)" in out.text and "torch" not in out.text
    assert nb.cells[2].outputs == []  # once per kernel


def test_an_unreadable_pins_folder_stays_silent(monkeypatch):
    """In the grader's sandbox the course's folder may be hidden: is_file() then raises, and the import must not."""

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_file", denied)
    assert versions.pins_file() is None
    assert versions.notice(installed=lambda name: None) is None
