"""`collabkit check` (collabkit/check.py): the students' self-check tells what the grader will do.

- Agreement: every submission of the bad-submission table (bad_submissions.BAD) goes through the
  grader's own preparation (batch.prepare: read and sanitize against the gradebook) and through
  the check (against the release manifest `collabkit handout` puts in the wheel, no gradebook,
  no hidden test); both must report the same repairs, the same tampering and the same unreadable
  files. Nothing is executed: it costs one toy release.
- Running: a small in-memory release and a damaged copy, run once under Restart & Run All by the
  check (one kernel, no fastai): failing visible tests with their messages, a test that writes to
  stderr, a cell that raises, the time, and a `ck.check()` cell that does not recurse.
"""

from __future__ import annotations

import io
import json
import os
import tempfile

import nbformat
import notebooks as N
import pytest
from bad_submissions import ASSIGNMENT, BAD, SECRET
from conftest import LIMITS

from collabkit import check as C
from collabkit.course import Course
from collabkit.rules import CellSpec, specs_from_release

# What each repairing submission of the table must be reported for (so agreement on nothing cannot pass).
EXPECTED_KINDS = {
    "nbformat3": {"format"},
    "duplicated_test": {"duplicate"},
    "deleted_test": {"reinserted"},
    "edited_test": {"edited"},
    "markdown_test": {"retyped"},
    "skip_tags": {"tag"},
    "changed_metadata": {"kernelspec", "points", "metadata", "unknown_cell"},
}


@pytest.fixture(scope="module")
def grader_side(course):
    """Each submission of the table as the grader prepares it (batch.prepare, the grading parent's code)."""
    from collabkit.grading.batch import load_assignment, prepare

    c = Course.open(course)
    specs, releases, _ = load_assignment(c)
    out = {}
    for name in BAD:
        record, _ = prepare(c, name, specs, releases, c.reference, LIMITS)
        out[name] = record.notebooks["toy"]
    return out


@pytest.fixture(scope="module")
def manifest_release(course):
    """The release as the students' wheel carries it (handout.release_manifest), read back by the check."""
    from collabkit.handout import release_manifest

    data = json.loads(json.dumps(release_manifest(Course.open(course))))  # through JSON, as in the wheel
    return C.from_manifest(data)


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_check_reports_what_the_grader_repairs_for_every_bad_submission(
    course, grader_side, manifest_release, name
):
    entry = grader_side[name]
    data = (course / "submitted" / name / ASSIGNMENT / "toy.ipynb").read_bytes()
    report = C.NotebookReport("toy.ipynb")
    C.inspect(data, manifest_release.notebooks["toy.ipynb"], report)
    assert (report.unreadable is not None) == (entry.status == "unreadable"), (report.unreadable, entry.status)
    if report.unreadable is not None:
        assert report.unreadable == entry.error
        assert any("cannot read" in f.text for f in report.findings if f.level == "fix")
        return
    assert [str(r) for r in report.repairs] == entry.repairs
    assert any(r.tampering for r in report.repairs) == entry.tampering
    kinds = {r.kind for r in report.repairs}
    assert kinds == EXPECTED_KINDS.get(name, set()), kinds
    for r in report.repairs:  # each repair is said with what to do about it
        said = next(f for f in report.findings if f.text.startswith(str(r)))
        assert said.text != f"{r}." and C.ADVICE[r.kind] in said.text
        assert ("tampering" in said.text) == r.tampering


def test_the_manifest_is_the_release_less_its_plain_cells_and_outputs(course, manifest_release):
    release = nbformat.read(course / "release" / ASSIGNMENT / "toy.ipynb", as_version=4)
    graded = [c for c in release.cells if "nbgrader" in c.metadata]
    got = manifest_release.notebooks["toy.ipynb"]
    assert [(c.cell_type, c.source, c.metadata) for c in got.cells] == [
        (c.cell_type, c.source, c.metadata) for c in graded
    ]
    assert got.metadata.kernelspec == release.metadata.kernelspec
    assert manifest_release.assignment == ASSIGNMENT
    assert manifest_release.cell_timeout == 300 and manifest_release.notebook_timeout == 900
    from collabkit.handout import release_manifest

    text = json.dumps(release_manifest(Course.open(course)))
    assert "HIDDEN TESTS" not in text and SECRET not in text and "mark-scheme-secret" not in text
    assert "return 2 * x" not in text  # the solution's line


def test_unanswered_cells_are_named(course, manifest_release):
    report = C.NotebookReport("toy.ipynb")
    C.inspect(
        (course / "submitted" / "stub" / ASSIGNMENT / "toy.ipynb").read_bytes(),
        manifest_release.notebooks["toy.ipynb"],
        report,
    )
    todo = [f.text.split(":")[0] for f in report.findings if "still" in f.text]
    assert todo == ["double", "square", "explain"]
    report = C.NotebookReport("toy.ipynb")
    C.inspect(
        (course / "submitted" / "correct" / ASSIGNMENT / "toy.ipynb").read_bytes(),
        manifest_release.notebooks["toy.ipynb"],
        report,
    )
    assert report.findings == []


def test_specs_from_the_release_are_the_gradebooks_but_for_hidden_tests():
    got, want = specs_from_release(N.release()), N.specs()
    assert sorted(got) == sorted(want)
    for gid, spec in want.items():
        shown = N.TEST_SHOWN if gid == "test_double" else spec.source
        assert got[gid] == CellSpec(**{**spec.__dict__, "source": shown}), gid


# ---------------------------------------------------------------------------- running, one small kernel

WRONG = (
    "def double(x):\n"
    "    if x > 1000:\n"
    "        import sys\n"
    "        print('big number', file=sys.stderr)\n"
    "        return 2 * x\n"
    "    return x + x + 1"
)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A release folder and a damaged student copy (wrong answer, stderr, a raising cell, ck.check()), checked once."""
    root = tmp_path_factory.mktemp("check")
    (root / "release").mkdir()
    (root / "work").mkdir()
    nbformat.write(N.release(), root / "release" / "tiny.ipynb")
    nb = N.release()
    nb.cells[N.AT["answer"]].source = WRONG
    nb.cells[N.AT["test_big"]].metadata.tags = ["skip-execution"]
    nb.cells.insert(1, nbformat.v4.new_code_cell("import collabkit.nb as ck\nck.check()"))
    nb.cells.append(nbformat.v4.new_code_cell("1 / 0"))
    nbformat.write(nb, root / "work" / "tiny.ipynb")
    release = C.load_release(root / "release")
    release.cell_timeout, release.notebook_timeout = 60, 900
    report = C.NotebookReport("tiny.ipynb")
    executable = C.inspect((root / "work" / "tiny.ipynb").read_bytes(), release.notebooks["tiny.ipynb"], report)
    with tempfile.TemporaryFile() as err:  # what the run writes to this process's stderr (fd 2), kernel included
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            executed, seconds, stopped = C.run(executable, root / "work", "python3", release.cell_timeout)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        assert err.read() == b"", "a check run from a notebook cell must not write to its stderr"
    C.judge_run(executed, release, seconds, stopped, report)
    return root, release, report, executed, seconds


def test_a_run_reports_failing_tests_with_their_messages_stderr_and_errors(ran):
    _, _, report, executed, _ = ran
    fixes = [f.text for f in report.findings if f.level == "fix"]
    assert any(t.startswith("test_big: tags ['skip-execution']") for t in fixes), fixes  # removed, so it runs
    assert any(
        t.startswith("test_double (visible test) fails: AssertionError: expected double(2) == 4, got 5.") for t in fixes
    ), fixes
    assert any(t.startswith("test_big (visible test) wrote to stderr") for t in fixes), fixes
    assert any(t.startswith("cell 9 (`1 / 0`) raises ZeroDivisionError: division by zero.") for t in fixes), fixes
    assert "explain: still `YOUR ANSWER HERE`" in " ".join(fixes)
    assert [f.text for f in report.findings if f.text.endswith("visible tests pass.")] == ["0 of 2 visible tests pass."]
    nested = executed.cells[1].outputs  # the student's own ck.check() cell did not start a check of its own
    assert [o.get("text") for o in nested] == ["ck.check() skipped: this notebook is being checked.\n"]


def test_a_run_says_how_long_it_took_against_the_graders_limits(ran):
    _, release, report, executed, seconds = ran
    [timing] = [f for f in report.findings if f.text.startswith("Restart & Run All took")]
    assert timing.level == "note" and f"{seconds:.1f} s here" in timing.text
    assert "the grader allows 60 s per cell and 900 s per notebook" in timing.text
    assert "slowest cell:" in timing.text
    late = C.NotebookReport("tiny.ipynb")
    release_short = C.Release(release.assignment, release.notebooks, release.where, 60, seconds / 2)
    C.judge_run(executed, release_short, seconds, None, late)
    [timing] = [f for f in late.findings if f.text.startswith("Restart & Run All took")]
    assert timing.level == "fix" and "or the grader stops it" in timing.text


def test_the_command_prints_a_report_on_stdout_and_exits_1_when_there_is_something_to_fix(ran, capsys):
    root, *_ = ran
    assert C.main([str(root / "work"), "--release", str(root / "release"), "--no-run"]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"collabkit check: release, against {root / 'release'}\n")
    assert "  FIX   test_big: tags ['skip-execution']" in out and "thing(s) to fix before you submit." in out
    (root / "empty").mkdir()
    assert C.main([str(root / "empty"), "--release", str(root / "release"), "--no-run"]) == 1
    out, _ = capsys.readouterr()
    assert "tiny.ipynb\n  FIX   not found. The grader scores a missing notebook 0" in out
    one = root / "one"
    one.mkdir()
    nbformat.write(N.release(), one / "tiny.ipynb")
    nbformat.write(N.release(), one / "other.ipynb")
    assert C.main([str(one / "tiny.ipynb"), "--release", str(root / "release"), "--no-run"]) == 1
    out, _ = capsys.readouterr()
    assert "not found" not in out and "answer: still `raise NotImplementedError`" in out
    assert C.main([str(one / "other.ipynb"), "--release", str(root / "release"), "--no-run"]) == 2
    assert "other.ipynb: not a notebook of release (tiny.ipynb)" in capsys.readouterr().err
    assert C.main(["--release", str(root / "nowhere")]) == 2
    assert "expected the assignment's zip or its released folder" in capsys.readouterr().err


def test_a_clean_copy_is_ready_and_the_students_command_routes_to_the_check(ran, capsys):
    from collabkit.student import main

    root, *_ = ran
    clean = N.release()
    clean.cells[N.AT["answer"]].source = N.SOLVED
    clean.cells[N.AT["explain"]].source = "It doubles."
    (root / "clean").mkdir()
    nbformat.write(clean, root / "clean" / "tiny.ipynb")
    out = io.StringIO()
    assert C.check([str(root / "clean")], root / "release", execute=False, out=out) == 0
    assert "  OK    nothing to repair, every answer filled in." in out.getvalue()
    assert out.getvalue().rstrip().endswith("Nothing to fix: ready to submit.")
    assert main(["check", str(root / "clean"), "--release", str(root / "release"), "--no-run"]) == 0
    assert "ready to submit" in capsys.readouterr().out


def test_without_a_packaged_release_the_check_says_what_to_pass(capsys):
    import collabkit.nb as ck

    with pytest.raises(C.KitError, match="Pass --release with the assignment's zip"):
        C.load_release()
    ck.check()  # in a notebook cell: one line on stdout, nothing on stderr
    out, err = capsys.readouterr()
    assert out.startswith("ck.check(): no release to compare with") and err == ""


def test_instructors_check_a_submission_against_the_courses_release(course, capsys):
    from collabkit.cli import main

    folder = course / "submitted" / "edited_test" / ASSIGNMENT
    assert main(["check", str(folder), "--root", str(course), "--no-run"]) == 1
    out = capsys.readouterr().out
    assert f"against {course / 'release' / ASSIGNMENT}" in out
    assert "  FIX   test_double: this read-only cell was edited; the original was restored." in out


def test_ck_check_in_a_notebook_cell_prints_the_report_and_nothing_on_stderr(ran, tmp_path):
    """The one line students paste into a cell: a real kernel runs it, which runs the check's own kernel."""
    from nbclient import NotebookClient

    root, *_ = ran
    work = tmp_path / "work"
    work.mkdir()
    student = N.release()
    student.cells[N.AT["answer"]].source = N.SOLVED
    student.cells[N.AT["explain"]].source = "It doubles."
    student.cells.append(
        nbformat.v4.new_code_cell(f"import collabkit.nb as ck\nck.check(release={str(root / 'release')!r})")
    )
    nbformat.write(student, work / "tiny.ipynb")
    nb = nbformat.read(work / "tiny.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    outputs = nb.cells[-1].outputs
    assert [o.get("name") for o in outputs] == ["stdout"] * len(outputs), outputs
    text = "".join(o["text"] for o in outputs)
    assert "tiny.ipynb\n  OK    2 of 2 visible tests pass.\n" in text and "Restart & Run All took" in text
    assert "Nothing to fix: ready to submit." in text  # its own ck.check() cell, run by the check, did nothing
    assert text.rstrip().endswith("Hidden tests are not run here.)")
