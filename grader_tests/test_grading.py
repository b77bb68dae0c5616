"""`collabkit grade` survives a class: bad submissions get a status and an honest score, nothing leaks.

One batch of the bad submissions in bad_submissions.BAD (built on a tiny one-notebook course,
so that it runs in about a minute) is graded with two workers; the correct submission is
graded alone first and must get the same grade in the batch. Then one student is regraded
and every other row must stay as it was.
"""
from __future__ import annotations

import csv
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import psutil
import pytest

import bad_submissions as bad
from bad_submissions import ASSIGNMENT, BAD, LEFTOVER, SECRET

from collabkit.course import Course
from collabkit.grading.batch import grade
from collabkit.grading.records import Limits, Status
from collabkit.grading.slots import FIRST_UID as SLOT_UID

STATUSES = [s.value for s in Status]

# Short limits keep the loops cheap: 4 s per cell, 3 s of grace after the interrupt, 1 GB of
# address space (the toy kernel uses ~300 MB; fastai kernels need the 6 GB default).
LIMITS = Limits(timeout=4, notebook_timeout=60, grace=3, memory_mb=1024, output_mb=1)
ROOT = os.geteuid() == 0


def graded(course: Path, **kw) -> list[dict]:
    """`collabkit grade` on `course`; each student's record as grading.json holds it."""
    return [r.to_json() for r in grade(Course.open(course), **kw)]


def answers_of(course: Path) -> dict[str, str]:
    src = nbformat.read(course / "source" / ASSIGNMENT / "toy.ipynb", as_version=4)
    strip = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)
    return {bad.gid(c): strip.sub("", c.source) for c in src.cells if c.metadata.get("nbgrader", {}).get("solution")}


def submit(course: Path, student: str, data: bytes) -> None:
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy.ipynb").write_bytes(data)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def gradebook_rows(course: Path) -> dict[str, list[tuple]]:
    """Every grade and comment of the gradebook, by student."""
    from nbgrader.api import Gradebook
    out: dict[str, list[tuple]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(ASSIGNMENT):
            rows = out.setdefault(sub.student.id, [])
            for nb in sub.notebooks:
                rows += [(nb.name, g.name, g.auto_score, g.manual_score, g.needs_manual_grade) for g in nb.grades]
                rows += [(nb.name, c.name, "comment", c.auto_comment, c.manual_comment) for c in nb.comments]
            rows.sort(key=repr)
    return out


def page_text(path: Path) -> str:
    """What a reader sees in an HTML page: the body's text, tags and styles removed."""
    body = path.read_text()
    body = re.sub(r"<style.*?</style>|<script.*?</script>", "", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = bad.tiny_course(tmp_path_factory.mktemp("grading") / "course")
    release = json.loads((course / "release" / ASSIGNMENT / "toy.ipynb").read_text())
    answers = answers_of(course)
    for name, (build, _, _) in BAD.items():
        submit(course, name, build(release, answers))
    return course


@pytest.fixture(scope="module")
def alone(course):
    """The correct submission graded on its own, before the batch."""
    records = graded(course, students=["correct"], workers=1, limits=LIMITS)
    rows = [r for r in read_csv(course / "exports" / "grades_by_cell.csv") if r["student_id"] == "correct"]
    return records[0], rows


@pytest.fixture(scope="module")
def batch(course, alone):
    records = graded(course, workers=2, limits=LIMITS)
    return {r["student_id"]: r for r in records}


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_submission_gets_its_status_and_the_score_its_honest_parts_earn(batch, name):
    _, status, cells = BAD[name]
    record = batch[name]
    got = {c["grade_id"]: (c["score"], c["status"]) for c in record["cells"] if c["grade_id"] in cells}
    assert (record["status"], got) == (status, cells), json.dumps(record["notebooks"], indent=1, default=str)


def test_the_batch_grades_everyone_and_exports_one_sorted_row_each(course, batch):
    rows = read_csv(course / "exports" / "grades.csv")
    assert [r["student_id"] for r in rows] == sorted(BAD)
    assert list(rows[0])[:4] == ["student_id", "status", "score", "max_score"]
    assert {r["status"] for r in rows} <= set(STATUSES)
    cells = read_csv(course / "exports" / "grades_by_cell.csv")
    assert list(cells[0]) == ["student_id", "notebook", "grade_id", "score", "max_score", "status"]
    assert cells == sorted(cells, key=lambda r: (r["student_id"], r["notebook"], r["grade_id"]))
    by_status = {r["student_id"]: r["status"] for r in rows}
    assert by_status["stub"] == "graded" and by_status["invalid_json"] == "unreadable"


def test_a_failure_never_looks_like_an_honest_zero(course, batch):
    rows = {(r["student_id"], r["grade_id"]): r for r in read_csv(course / "exports" / "grades_by_cell.csv")}
    assert rows["stub", "test_double"]["status"] == "failed"          # an honest zero
    assert rows["invalid_json", "test_double"]["status"] == "unreadable"
    assert rows["os_exit", "test_square"]["status"] == "not_run"
    assert rows["infinite_loop", "test_double"]["status"] == "timed_out"
    notes = {r["student_id"]: r["notes"] for r in read_csv(course / "exports" / "grades.csv")}
    assert "died" in notes["os_exit"] and "not valid JSON" in notes["invalid_json"]


def test_the_correct_grade_is_the_same_alone_and_in_the_batch(course, alone, batch):
    record, rows = alone
    in_batch = [r for r in read_csv(course / "exports" / "grades_by_cell.csv") if r["student_id"] == "correct"]
    assert rows == in_batch
    assert (record["status"], record["score"]) == (batch["correct"]["status"], batch["correct"]["score"]) \
        == ("needs_manual_grade", 3.0)


def test_the_gradebook_holds_each_cell_once_with_the_exported_score(course, batch):
    db = gradebook_rows(course)
    assert sorted(db) == sorted(BAD)
    exported = {(r["student_id"], r["grade_id"]): float(r["score"])
                for r in read_csv(course / "exports" / "grades_by_cell.csv")}
    for student, rows in db.items():
        grades = [r for r in rows if r[2] != "comment"]
        assert sorted(r[1] for r in grades) == ["explain", "rubric", "test_double", "test_square"], student
        for r in grades:
            assert (r[2] or 0.0) == exported[student, r[1]], (student, r)


def test_feedback_never_shows_hidden_tests_or_mark_schemes(course, batch):
    from collabkit.grading.sanitize import hidden_lines
    from nbgrader.api import Gradebook
    from collabkit.grading.batch import load_specs
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        specs = load_specs(gb, ASSIGNMENT)["toy"]
    release = nbformat.read(course / "release" / ASSIGNMENT / "toy.ipynb", as_version=4)
    hidden = hidden_lines(specs, release)
    assert len(hidden) >= 4
    pages = sorted((course / "feedback").glob(f"*/{ASSIGNMENT}/toy.html"))
    assert len(pages) == len(BAD)
    for page in pages:
        text = page.read_text() + page_text(page)
        for secret in [SECRET, "BEGIN HIDDEN TESTS", "mark-scheme-secret", "MARK SCHEME", *hidden]:
            assert secret not in text, f"{page.parent.parent.name}'s feedback shows {secret!r}"


def test_feedback_says_pass_or_fail_and_the_student_facing_message(course, batch):
    text = page_text(course / "feedback" / "fails_hidden" / ASSIGNMENT / "toy.html")
    assert "double should work for negative numbers" in text   # the hidden test's message
    assert "Traceback" not in text and "assert double(-3)" not in text
    tampered = page_text(course / "feedback" / "edited_test" / ASSIGNMENT / "toy.html")
    assert "tampered" in tampered and "was edited; the original was restored" in tampered


@pytest.mark.skipif(not ROOT, reason="isolation needs root (uid switch and mount namespace)")
def test_student_code_cannot_reach_the_course_or_change_grades(course, batch):
    nb = nbformat.read(course / "autograded" / "probe_course" / ASSIGNMENT / "toy.ipynb", as_version=4)
    line = next(l for c in nb.cells for o in c.get("outputs", []) for l in o.get("text", "").splitlines()
                if l.startswith("PROBE "))
    probe = json.loads(line[len("PROBE "):])
    blocked = {k for k, (how, _) in probe.items() if how == "blocked"}
    assert blocked >= {"read_gradebook", "write_gradebook", "read_source", "read_submitted", "write_reference",
                       "write_weights",
                       "write_data", "replace_data", "write_package", "kill_grader", "many_processes",
                       "huge_file"}, probe
    listed = probe["list_course"][1]
    assert "gradebook.db" not in listed and "source" not in listed and "submitted" not in listed
    assert batch["probe_course"]["notebooks"]["toy"]["sandbox"]["namespace"] is True
    assert batch["probe_course"]["notebooks"]["toy"]["sandbox"]["uid"] >= SLOT_UID


def test_no_student_process_is_left_running(batch):
    from collabkit.grading.slots import holder
    used = {e["sandbox"]["uid"] for r in batch.values() for e in r["notebooks"].values() if e.get("sandbox")}
    free = {uid for uid in used if holder(uid) is None}  # a uid another grading run holds now is its business
    left = []
    for p in psutil.process_iter(["uids", "cmdline"]):
        try:
            if LEFTOVER in " ".join(p.info["cmdline"] or []) or p.info["uids"].real in free:
                left.append((p.pid, p.info["cmdline"]))
        except (psutil.Error, TypeError):
            pass
    assert not left


def test_an_output_flood_is_cut_short(course, batch):
    path = course / "autograded" / "output_flood" / ASSIGNMENT / "toy.ipynb"
    assert path.stat().st_size < 2 * 2**20
    assert "the rest of its output was dropped" in path.read_text()


def test_regrading_one_student_changes_only_that_student(course, batch):
    before_db = gradebook_rows(course)
    before_csv = read_csv(course / "exports" / "grades.csv")
    before_cells = read_csv(course / "exports" / "grades_by_cell.csv")
    release = json.loads((course / "release" / ASSIGNMENT / "toy.ipynb").read_text())
    submit(course, "stub", bad.correct(release, answers_of(course)))  # the student resubmits, fixed
    backups = len(list(course.glob("gradebook.db.backup-*")))
    [record] = graded(course, students=["stub"], workers=1, limits=LIMITS)
    assert len(list(course.glob("gradebook.db.backup-*"))) == min(backups + 1, 10)
    assert record["score"] == 3.0
    after_db = gradebook_rows(course)
    assert {s: r for s, r in after_db.items() if s != "stub"} == {s: r for s, r in before_db.items() if s != "stub"}
    assert after_db["stub"] != before_db["stub"]
    others = lambda rows: [r for r in rows if r["student_id"] != "stub"]
    assert others(read_csv(course / "exports" / "grades.csv")) == others(before_csv)
    assert others(read_csv(course / "exports" / "grades_by_cell.csv")) == others(before_cells)


def test_the_command_exits_0_on_bad_submissions_and_non_zero_when_the_run_fails(course, batch):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "collabkit", "grade", ASSIGNMENT, "--root", str(course), "--timeout", "4"]
    ok = subprocess.run(cmd + ["--student", "invalid_json"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "[1/1] invalid_json: unreadable" in ok.stderr
    missing = subprocess.run(cmd + ["--student", "nobody"], capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and "no submission for nobody" in missing.stderr


def test_sanitize_repairs_without_stopping(course):
    """Unit check of the repairs the batch relies on, on the release itself."""
    from collabkit.grading.sanitize import Unreadable, read, sanitize
    from nbgrader.api import Gradebook
    from collabkit.grading.batch import load_specs
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        specs = load_specs(gb, ASSIGNMENT)["toy"]
    release = nbformat.read(course / "release" / ASSIGNMENT / "toy.ipynb", as_version=4)
    raw = json.loads(nbformat.writes(release))
    for cell in raw["cells"]:
        cell.pop("id", None)
    raw["nbformat_minor"] = 4
    nb, repairs = read(json.dumps(raw).encode())
    nb, more = sanitize(nb, release, specs)
    assert [c.source for c in nb.cells if bad.gid(c) == "test_double"] == [specs["test_double"].source]
    assert len({c.id for c in nb.cells}) == len(nb.cells)
    with pytest.raises(Unreadable):
        read(b"{not json")
    with pytest.raises(Unreadable):
        read(b'{"cells": []}')


# ---------------------------------------------------------------------------- the real notebooks

def real_course(where: Path, notebooks: list[str]) -> Path:
    """A course holding only `notebooks` of the real assignment, released, with the repo's reference."""
    import shutil
    from harness import REPO
    from collabkit.release import release
    where.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", where)
    (where / "source" / ASSIGNMENT).mkdir(parents=True)
    for name in notebooks:
        shutil.copy(REPO / "source" / ASSIGNMENT / name, where / "source" / ASSIGNMENT / name)
    release(Course.open(where))
    (where / "solutions").mkdir()
    from collabkit.grading.batch import reference_files
    ref = REPO / "solutions" / "reference.json"
    (where / "solutions" / "reference.json").write_text(ref.read_text() if ref.exists() else "{}")
    for name in reference_files(ref) if ref.exists() else []:
        shutil.copy(ref.parent / name, where / "solutions" / name)
    return where


def feedback_leaks(course: Path, student: str) -> list[str]:
    """Hidden-test lines that a student's feedback shows and the student did not write themselves."""
    from collabkit.grading.sanitize import hidden_lines
    from nbgrader.api import Gradebook
    from collabkit.grading.batch import load_specs
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        specs = load_specs(gb, ASSIGNMENT)
    leaks = []
    for name, spec in specs.items():
        page = course / "feedback" / student / ASSIGNMENT / f"{name}.html"
        submitted = course / "submitted" / student / ASSIGNMENT / f"{name}.ipynb"
        own = submitted.read_text(errors="replace") if submitted.exists() else ""
        release = nbformat.read(course / "release" / ASSIGNMENT / f"{name}.ipynb", as_version=4)
        text = page.read_text() + page_text(page)
        leaks += [f"{name}: {line}" for line in hidden_lines(spec, release)
                  if line in text and json.dumps(line)[1:-1] not in own and line not in own]
        leaks += [f"{name}: mark scheme" for marker in ("MARK SCHEME",) if marker in page_text(page)]
    return leaks


R01 = "01_data.ipynb"
LOAD_RATINGS_TESTS = ["test_load_ratings_columns", "test_load_ratings_values"]
AFTER_DENSITY = ["test_density_toy", "test_density_values", "test_make_dls_basics", "test_make_dls_split"]


@pytest.fixture(scope="module")
def real01(tmp_path_factory):
    """01_data, the fastest real notebook, as the vehicle for bad input on the real stack (fastai kernels)."""
    from collabkit.samples import solutions
    course = real_course(tmp_path_factory.mktemp("real01") / "course", [R01])
    release = json.loads((course / "release" / ASSIGNMENT / R01).read_text())
    answers = solutions(R01, course)
    put = lambda student, data: (course / "submitted" / student / ASSIGNMENT).mkdir(parents=True) or \
        (course / "submitted" / student / ASSIGNMENT / R01).write_bytes(data)
    put("correct", bad.correct(release, answers))
    nb = bad.answered(release, answers, load_ratings="def load_ratings(path):\n    return pd.DataFrame()\n")
    nb["cells"][bad.index(nb, LOAD_RATINGS_TESTS[0])]["source"] = "pass"
    nb["cells"][bad.index(nb, LOAD_RATINGS_TESTS[1])]["metadata"]["tags"] = ["skip-execution"]
    put("tampered", bad.dump(nb))
    put("crashed", bad.dump(bad.answered(release, answers, density="import os\nos._exit(3)\n")))
    put("unreadable", bad.invalid_json(release, answers))
    nb = json.loads(bad.nbformat3(release, answers))   # nbformat 3, then more damage on top
    cells = nb["worksheets"][0]["cells"]
    at = next(i for i, c in enumerate(cells) if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_density_toy")
    cells.insert(at, json.loads(json.dumps(cells[at])))                          # duplicated test cell
    del cells[next(i for i, c in enumerate(cells)
                   if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_make_dls_basics")]  # deleted
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
        "correct": "graded", "tampered": "tampered", "crashed": "crashed", "unreadable": "unreadable",
        "repaired": "repaired", "probe": "graded"}, {s: r["notebooks"] for s, r in records.items()}
    for student in ("correct", "repaired", "probe"):
        assert set(cells[student].values()) == {"passed"}, (student, cells[student])
        assert records[student]["score"] == records[student]["max_score"] == 7.0
    assert [cells["tampered"][g] for g in LOAD_RATINGS_TESTS] == ["failed", "failed"]
    assert records["tampered"]["score"] == 5.5
    assert [cells["crashed"][g] for g in AFTER_DENSITY] == ["not_run"] * 4
    assert records["crashed"]["score"] == 3.0
    assert records["unreadable"]["score"] == 0
    for student in records:
        assert not feedback_leaks(course, student), student


@pytest.mark.skipif(not ROOT, reason="isolation needs root (uid switch and mount namespace)")
def test_real_kernel_is_isolated_too(real01):
    course, records = real01
    nb = nbformat.read(course / "autograded" / "probe" / ASSIGNMENT / R01, as_version=4)
    line = next(l for c in nb.cells for o in c.get("outputs", []) for l in o.get("text", "").splitlines()
                if l.startswith("PROBE "))
    probe = json.loads(line[len("PROBE "):])
    assert all(how == "blocked" for k, (how, _) in probe.items()
               if k not in ("list_course", "read_home", "list_tmp")), probe
    assert records["probe"]["notebooks"]["01_data"]["sandbox"]["namespace"] is True


@pytest.mark.slow
def test_full_solution_in_a_batch_of_bad_submissions(tmp_path_factory):
    """All five notebooks: the solution earns every autograded point alone and in a batch with bad ones."""
    from collabkit.samples import notebook_names, place, submission
    from harness import REPO
    names = notebook_names(REPO)
    course = real_course(tmp_path_factory.mktemp("full") / "course", names)
    place(course, "solution", {n: submission(course, n) for n in names})
    [alone] = graded(course, students=["solution"], workers=1)
    alone_rows = [r for r in read_csv(course / "exports" / "grades_by_cell.csv") if r["student_id"] == "solution"]
    place(course, "blank", {n: submission(course, n, blank=True) for n in names})
    mix = {n: submission(course, n) for n in names}
    mix[names[0]] = nbformat.writes(mix[names[0]])[:500]                 # unreadable
    tests = [c for c in mix[names[1]].cells if c.metadata.get("nbgrader", {}).get("grade")
             and not c.metadata.nbgrader.get("solution")]
    tests[0].source = "pass"                                             # tampered
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


def test_a_notebook_that_never_finished_scores_zero_under_its_own_status():
    from collabkit.grading.records import CellResult, CellStatus, NotebookResult, NotebookRun
    from collabkit.grading.sanitize import CellSpec
    from collabkit.grading.scoring import notebook_status, score_cells
    specs = {"setup": CellSpec("setup", "code", "x = 1", True),
             "test_x": CellSpec("test_x", "code", "assert x", True, grade=True, points=2.0)}
    run = NotebookRun(status="timed_out", error="worker exited with -9", finished=False)
    rows = score_cells(None, specs, run, "toy", never_ran=CellStatus.TIMED_OUT)
    assert rows == [CellResult("toy", "test_x", max_score=2.0, score=0.0, status=CellStatus.TIMED_OUT)]
    assert notebook_status(NotebookResult(status=Status.TIMED_OUT), rows) == "timed_out"


def test_hand_grades_reach_feedback_and_exports_without_running_student_code(course, batch):
    """After hand-grading in formgrader, `collabkit feedback` and `collabkit export` pick the scores up."""
    from nbgrader.api import Gradebook
    from collabkit.export import export
    from collabkit.feedback import refresh_feedback
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.find_grade("explain", "toy", ASSIGNMENT, "fails_hidden").manual_score = 0.5
        gb.find_comment("explain", "toy", ASSIGNMENT, "fails_hidden").manual_comment = "hand-graded-comment-7731"
        gb.db.commit()
    page = course / "feedback" / "fails_hidden" / ASSIGNMENT / "toy.html"
    page.unlink()
    assert refresh_feedback(Course.open(course), students=["fails_hidden"]) == ["fails_hidden"]
    text = page_text(page)
    assert "hand-graded-comment-7731" in text
    assert SECRET not in text and "mark-scheme-secret" not in text
    export(Course.open(course))
    [row] = [r for r in read_csv(course / "exports" / "grades.csv") if r["student_id"] == "fails_hidden"]
    assert float(row["score"]) == 1.5  # 1 autograded point (test_square) + 0.5 by hand
    [cell] = [r for r in read_csv(course / "exports" / "grades_by_cell.csv")
              if r["student_id"] == "fails_hidden" and r["grade_id"] == "explain"]
    assert (cell["score"], cell["status"]) == ("0.5", "manually_graded")
