"""Bad input on the real stack: the assignment's own notebooks, fastai kernels, the repo's reference.

01_data (the fastest real notebook) carries the bad submissions in the default suite; the
slow set grades all five notebooks, the solution alone and in a batch with damaged ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import bad_submissions as bad
import nbformat
import pytest
from bad_submissions import ASSIGNMENT
from conftest import IS_ROOT, graded, page_text, read_csv
from harness import REPO

from collabkit.samples import make_course

REFERENCE = REPO / "solutions" / "reference.json"
R01 = "01_data.ipynb"
LOAD_RATINGS_TESTS = ["test_load_ratings_columns", "test_load_ratings_values"]
AFTER_DENSITY = ["test_density_toy", "test_density_values", "test_make_dls_basics", "test_make_dls_split"]


def feedback_leaks(course: Path, student: str) -> list[str]:
    """Hidden-test lines that a student's feedback shows and the student did not write themselves."""
    from nbgrader.api import Gradebook

    from collabkit.grading.batch import load_specs
    from collabkit.grading.sanitize import hidden_lines

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        specs = load_specs(gb, ASSIGNMENT)
    leaks = []
    for name, spec in specs.items():
        page = course / "feedback" / student / ASSIGNMENT / f"{name}.html"
        submitted = course / "submitted" / student / ASSIGNMENT / f"{name}.ipynb"
        own = submitted.read_text(errors="replace") if submitted.exists() else ""
        release = nbformat.read(course / "release" / ASSIGNMENT / f"{name}.ipynb", as_version=4)
        text = page.read_text() + page_text(page)
        leaks += [
            f"{name}: {line}"
            for line in hidden_lines(spec, release)
            if line in text and json.dumps(line)[1:-1] not in own and line not in own
        ]
        leaks += [f"{name}: mark scheme" for marker in ("MARK SCHEME",) if marker in page_text(page)]
    return leaks


# The toy batch (test_bad_submissions.py) and the unit tests prove each rule by default; these
# prove them again on fastai kernels, and run with the slow set.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real01(tmp_path_factory):
    """01_data, the fastest real notebook, as the vehicle for bad input on the real stack (fastai kernels)."""
    from collabkit.samples import solutions

    course = make_course(tmp_path_factory.mktemp("real01") / "course", REPO, [R01], reference=REFERENCE)
    release = json.loads((course / "release" / ASSIGNMENT / R01).read_text())
    answers = solutions(R01, course)
    put = lambda student, data: (
        (course / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
        or (course / "submitted" / student / ASSIGNMENT / R01).write_bytes(data)
    )
    put("correct", bad.correct(release, answers))
    nb = bad.answered(release, answers, load_ratings="def load_ratings(path):\n    return pd.DataFrame()\n")
    nb["cells"][bad.index(nb, LOAD_RATINGS_TESTS[0])]["source"] = "pass"
    nb["cells"][bad.index(nb, LOAD_RATINGS_TESTS[1])]["metadata"]["tags"] = ["skip-execution"]
    put("tampered", bad.dump(nb))
    put("crashed", bad.dump(bad.answered(release, answers, density="import os\nos._exit(3)\n")))
    put("unreadable", bad.invalid_json(release, answers))
    nb = json.loads(bad.nbformat3(release, answers))  # nbformat 3, then more damage on top
    cells = nb["worksheets"][0]["cells"]
    at = next(i for i, c in enumerate(cells) if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_density_toy")
    cells.insert(at, json.loads(json.dumps(cells[at])))  # duplicated test cell
    del cells[
        next(
            i
            for i, c in enumerate(cells)
            if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_make_dls_basics"
        )
    ]  # deleted
    nb["metadata"]["kernelspec"] = {"name": "python2", "display_name": "Python 2", "language": "python"}
    put("repaired", json.dumps(nb).encode())
    nb = bad.extra_cell(bad.answered(release, answers), "setup", bad.PROBE)
    put("probe", bad.dump(nb))
    records = {r["student_id"]: r for r in graded(course, workers=2)}
    return course, records


def test_real_notebook_bad_input_gets_statuses_and_honest_scores(real01):
    course, records = real01
    cells = {s: {c["grade_id"]: c["status"] for c in r["cells"]} for s, r in records.items()}
    assert {s: r["status"] for s, r in records.items()} == {
        "correct": "graded",
        "tampered": "tampered",
        "crashed": "crashed",
        "unreadable": "unreadable",
        "repaired": "repaired",
        "probe": "graded",
    }, {s: r["notebooks"] for s, r in records.items()}
    points = {c["grade_id"]: c["max_score"] for c in records["correct"]["cells"]}
    total = sum(points.values())
    for student in ("correct", "repaired", "probe"):
        assert set(cells[student].values()) == {"passed"}, (student, cells[student])
        assert records[student]["score"] == records[student]["max_score"] == total
    assert [cells["tampered"][g] for g in LOAD_RATINGS_TESTS] == ["failed", "failed"]
    assert records["tampered"]["score"] == total - sum(points[g] for g in LOAD_RATINGS_TESTS)
    assert [cells["crashed"][g] for g in AFTER_DENSITY] == ["not_run"] * 4
    assert records["crashed"]["score"] == total - sum(points[g] for g in AFTER_DENSITY) > 0
    assert records["unreadable"]["score"] == 0
    for student in records:
        assert not feedback_leaks(course, student), student


@pytest.mark.skipif(not IS_ROOT, reason="isolation needs root (uid switch and mount namespace)")
def test_real_kernel_is_isolated_too(real01):
    course, records = real01
    nb = nbformat.read(course / "autograded" / "probe" / ASSIGNMENT / R01, as_version=4)
    line = next(
        line
        for c in nb.cells
        for o in c.get("outputs", [])
        for line in o.get("text", "").splitlines()
        if line.startswith("PROBE ")
    )
    probe = json.loads(line[len("PROBE ") :])
    assert all(
        how == "blocked" for k, (how, _) in probe.items() if k not in ("list_course", "read_home", "list_tmp")
    ), probe
    assert records["probe"]["notebooks"]["01_data"]["sandbox"]["namespace"] is True


@pytest.mark.slow
def test_full_solution_in_a_batch_of_bad_submissions(tmp_path_factory):
    """All five notebooks: the solution earns every autograded point alone and in a batch with bad ones."""
    from harness import REPO

    from collabkit.samples import notebook_names, place, submission

    names = notebook_names(REPO)
    course = make_course(tmp_path_factory.mktemp("full") / "course", REPO, names, reference=REFERENCE)
    place(course, "solution", {n: submission(course, n) for n in names})
    [alone] = graded(course, students=["solution"], workers=1)
    alone_rows = [r for r in read_csv(course / "exports" / "grades_by_cell.csv") if r["student_id"] == "solution"]
    place(course, "blank", {n: submission(course, n, blank=True) for n in names})
    mix = {n: submission(course, n) for n in names}
    mix[names[0]] = nbformat.writes(mix[names[0]])[:500]  # unreadable
    tests = [
        c
        for c in mix[names[1]].cells
        if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata.nbgrader.get("solution")
    ]
    tests[0].source = "pass"  # tampered
    tests[1].metadata["tags"] = ["skip-execution"]
    mix[names[2]] = nbformat.writes(nbformat.convert(mix[names[2]], 3))  # old format
    place(course, "mixed", mix)
    records = {r["student_id"]: r for r in graded(course, workers=2)}
    rows = [r for r in read_csv(course / "exports" / "grades_by_cell.csv") if r["student_id"] == "solution"]
    assert rows == alone_rows
    lost = [c for c in records["solution"]["cells"] if c["status"] not in ("passed", "needs_manual_grade", "no_points")]
    assert not lost, lost
    assert records["mixed"]["notebooks"][names[0][:-6]]["status"] == "unreadable"
    assert records["mixed"]["notebooks"][names[1][:-6]]["status"] == "tampered"
    assert records["mixed"]["notebooks"][names[2][:-6]]["status"] == "repaired"
    assert records["blank"]["status"] in ("graded", "needs_manual_grade")
    for student in records:
        assert not feedback_leaks(course, student), student
