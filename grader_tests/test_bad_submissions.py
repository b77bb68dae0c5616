"""`collabkit grade` survives a class: bad submissions get a status and an honest score, nothing leaks.

The toy batch (conftest.py) holds one submission per kind of bad input in bad_submissions.BAD,
each with the status and cell scores its honest parts earn; the correct submission is graded
alone first and must get the same grade in the batch.
"""

from __future__ import annotations

import json
import subprocess
import sys

import bad_submissions as bad
import nbformat
import psutil
import pytest
from bad_submissions import ASSIGNMENT, BAD, LEFTOVER
from conftest import IS_ROOT, gradebook_rows, read_csv

from collabkit.course import tool_env
from collabkit.grading.records import Status
from collabkit.grading.slots import FIRST_UID

STATUSES = [s.value for s in Status]


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_submission_gets_its_status_and_the_score_its_honest_parts_earn(batch, name):
    _, status, cells = BAD[name]
    record = batch[name]
    for nb in record["notebooks"].values():  # every kernel that started was warm: forked, not executed
        assert nb["sandbox"] is None or nb["sandbox"]["kernel"] == "warm", nb["sandbox"]
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
    assert rows["stub", "test_double"]["status"] == "failed"  # an honest zero
    assert rows["invalid_json", "test_double"]["status"] == "unreadable"
    assert rows["os_exit", "test_square"]["status"] == "not_run"
    assert rows["infinite_loop", "test_double"]["status"] == "timed_out"
    notes = {r["student_id"]: r["notes"] for r in read_csv(course / "exports" / "grades.csv")}
    assert "died" in notes["os_exit"] and "not valid JSON" in notes["invalid_json"]


def test_the_correct_grade_is_the_same_alone_and_in_the_batch(course, alone, batch):
    record, rows = alone
    in_batch = [r for r in read_csv(course / "exports" / "grades_by_cell.csv") if r["student_id"] == "correct"]
    assert rows == in_batch
    assert (
        (record["status"], record["score"])
        == (batch["correct"]["status"], batch["correct"]["score"])
        == ("needs_manual_grade", 3.0)
    )


def test_the_gradebook_holds_each_cell_once_with_the_exported_score(course, batch):
    db = gradebook_rows(course)
    assert sorted(db) == sorted(BAD)
    exported = {
        (r["student_id"], r["grade_id"]): float(r["score"]) for r in read_csv(course / "exports" / "grades_by_cell.csv")
    }
    for student, rows in db.items():
        grades = [r for r in rows if r[2] != "comment"]
        assert sorted(r[1] for r in grades) == ["explain", "rubric", "test_double", "test_square"], student
        for r in grades:
            assert (r[2] or 0.0) == exported[student, r[1]], (student, r)


@pytest.mark.skipif(not IS_ROOT, reason="isolation needs root (uid switch and mount namespace)")
def test_student_code_cannot_reach_the_course_or_change_grades(course, batch):
    nb = nbformat.read(course / "autograded" / "probe_course" / ASSIGNMENT / "toy.ipynb", as_version=4)
    line = next(
        line
        for c in nb.cells
        for o in c.get("outputs", [])
        for line in o.get("text", "").splitlines()
        if line.startswith("PROBE ")
    )
    probe = json.loads(line[len("PROBE ") :])
    blocked = {k for k, (how, _) in probe.items() if how == "blocked"}
    assert blocked >= {
        "read_gradebook",
        "write_gradebook",
        "read_source",
        "read_submitted",
        "write_reference",
        "write_weights",
        "write_data",
        "replace_data",
        "write_package",
        "kill_grader",
        "reach_parent_socket",
        "read_parent_environ",
        "read_parent_memory",
        "many_processes",
        "huge_file",
    }, probe
    listed = probe["list_course"][1]
    assert "gradebook.db" not in listed and "source" not in listed and "submitted" not in listed
    sandbox = batch["probe_course"]["notebooks"]["toy"]["sandbox"]
    assert sandbox["namespace"] is True and sandbox["uid"] >= FIRST_UID
    assert (sandbox["warm"], sandbox["kernel"]) == (True, "warm")  # forked from the slot's fork server


def test_student_code_finds_no_reference_values_and_the_tests_still_get_them(course, batch):
    """The values are written into the test cells at grading time: no variable, file or ck.reference()."""
    nb = nbformat.read(course / "autograded" / "reads_reference" / ASSIGNMENT / "toy.ipynb", as_version=4)
    line = next(
        line
        for c in nb.cells
        for o in c.get("outputs", [])
        for line in o.get("text", "").splitlines()
        if line.startswith("REF ")
    )
    found = json.loads(line[len("REF ") :])
    assert found == {"env": [], "ck.reference": "FileNotFoundError", "files": []}, found
    cells = {c["grade_id"]: c["score"] for c in batch["reads_reference"]["cells"]}
    assert cells["test_double"] == 2  # its hidden test reads ck.reference() and a file reference.json names


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


def test_the_command_exits_0_on_bad_submissions_and_non_zero_when_the_run_fails(graded_copy):
    course = graded_copy
    env = tool_env()
    cmd = [sys.executable, "-m", "collabkit", "grade", ASSIGNMENT, "--root", str(course), "--timeout", "4"]
    ok = subprocess.run(cmd + ["--student", "invalid_json"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "[1/1] invalid_json: unreadable" in ok.stderr
    missing = subprocess.run(cmd + ["--student", "nobody"], capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and "no submission for nobody" in missing.stderr


def test_sanitize_repairs_without_stopping(course):
    """Unit check of the repairs the batch relies on, on the release itself."""
    from nbgrader.api import Gradebook

    from collabkit.grading.batch import load_specs
    from collabkit.grading.sanitize import Unreadable, read, sanitize

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


def test_a_notebook_that_never_finished_scores_zero_under_its_own_status():
    from collabkit.grading.records import CellResult, CellStatus, NotebookResult, NotebookRun
    from collabkit.grading.sanitize import CellSpec
    from collabkit.grading.scoring import notebook_status, score_cells

    specs = {
        "setup": CellSpec("setup", "code", "x = 1", True),
        "test_x": CellSpec("test_x", "code", "assert x", True, grade=True, points=2.0),
    }
    run = NotebookRun(status="timed_out", error="worker exited with -9", finished=False)
    rows = score_cells(None, specs, run, "toy", never_ran=CellStatus.TIMED_OUT)
    assert rows == [CellResult("toy", "test_x", max_score=2.0, score=0.0, status=CellStatus.TIMED_OUT)]
    assert notebook_status(NotebookResult(status=Status.TIMED_OUT), rows) == "timed_out"


def test_inline_reference_gives_each_test_cell_only_the_values_it_names():
    from collabkit.grading.sanitize import CellSpec, Context, inline_reference

    test = nbformat.v4.new_code_cell(
        "x = ck.reference()[\"a\"]\ny = ck.reference()['gone']\nz = ck.reference()\np = ck.reference_path().parent"
    )
    answer = nbformat.v4.new_code_cell('v = ck.reference()["a"]')
    for cell, gid in [(test, "test_x"), (answer, "x")]:
        cell.metadata.nbgrader = {"grade_id": gid}
    specs = {
        "test_x": CellSpec("test_x", "code", test.source, True, grade=True, points=1.0),
        "x": CellSpec("x", "code", answer.source, False, solution=True),
    }
    nb = nbformat.v4.new_notebook(cells=[answer, test])
    assert inline_reference(nb, Context(nb, specs, reference={"a": [0.5, "t"], "b": 2}, reference_dir="/r")) == []
    ns: dict = {}
    exec(test.source.replace("y = ", "# "), ns)  # noqa: S102  the rewritten cell runs without collabkit.nb
    assert (ns["x"], ns["z"], str(ns["p"])) == ([0.5, "t"], {"a": [0.5, "t"], "b": 2}, "/r")
    assert "{}['gone']" in test.source  # a missing key still fails as a KeyError
    assert answer.source == 'v = ck.reference()["a"]'  # student cells are never given values
