"""Unit tests of collabkit/grading/scoring.py and records.py: one section per branch of
`score_cells`, then `events`, `notebook_status`, the status enums, the records' JSON round
trip and `write_grades`.

Executed notebooks are built in memory from notebooks.py: the sanitized release with the
outputs a kernel would have left, plus the `NotebookRun` the worker would have reported. The
score of an executed cell is nbgrader's own `utils.determine_grade`, so the cells carry the
nbgrader metadata it reads (grade, points, solution, locked, checksum). No kernel runs; the
gradebook is nbgrader's, in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import notebooks as N
import pytest
from notebooks import AT

from collabkit.grading.records import (
    STATUS_MEANING,
    CellResult,
    CellStatus,
    Job,
    Limits,
    NotebookResult,
    NotebookRun,
    Status,
    StudentRecord,
)
from collabkit.grading.scoring import events, notebook_status, score_cells, write_grades

NAME = "toy"
CODE = [i for i, c in enumerate(N.release().cells) if c.cell_type == "code"]  # 0, 2, 3, 6


def executed(**outputs):
    """The sanitized release after a run; `outputs` by grade id (every other code cell printed nothing)."""
    nb = N.graded_copy()
    for gid, outs in outputs.items():
        nb.cells[AT[gid]].outputs = outs
    return nb


def ran(**kw) -> NotebookRun:
    """A run in which every code cell replied `ok`, unless `replies` says otherwise."""
    kw.setdefault("replies", {i: "ok" for i in CODE})
    return NotebookRun(**kw)


def score(nb=None, run=None, specs=None, never_ran=None) -> dict[str, tuple]:
    """grade id -> (score, max_score, status) for each row score_cells gives."""
    nb = executed() if nb is None and never_ran is None else nb
    run = ran() if run is None and never_ran is None else run
    rows = score_cells(nb, specs or N.specs(), run, NAME, never_ran=never_ran)
    assert {r.notebook for r in rows} == {NAME}
    return {r.grade_id: (r.score, r.max_score, r.status) for r in rows}


def test_the_factories_checksums_are_nbgraders():
    from nbgrader.utils import compute_checksum

    cells = [c for c in N.release().cells if "nbgrader" in c.metadata]
    assert [N.checksum(c) for c in cells] == [compute_checksum(c) for c in cells]
    assert all(c.metadata.nbgrader.checksum == compute_checksum(c) for c in cells)


# ---------------------------------------------------------------------------- score_cells


def test_only_graded_and_task_cells_get_a_row_in_gradebook_order():
    rows = score_cells(executed(), N.specs(), ran(), NAME)
    assert [r.grade_id for r in rows] == ["test_double", "explain", "task_plot", "test_big"]


@pytest.mark.parametrize(
    "never_ran",
    [CellStatus.MISSING, CellStatus.UNREADABLE, CellStatus.GRADER_ERROR, CellStatus.CRASHED, CellStatus.TIMED_OUT],
)
def test_a_notebook_that_never_ran_gives_every_graded_cell_its_status_and_0(never_ran):
    assert score(nb=None, run=None, never_ran=never_ran) == {
        "test_double": (0.0, 2.0, never_ran),
        "explain": (0.0, 1.0, never_ran),
        "task_plot": (0.0, 3.0, never_ran),
        "test_big": (0.0, 1.0, never_ran),
    }


def test_never_ran_wins_over_the_outputs_of_a_placeholder_notebook():
    nb = executed(test_double=[N.stdout()])
    assert set(score(nb=nb, run=ran(), never_ran=CellStatus.MISSING).values()) == {
        (0.0, 2.0, CellStatus.MISSING),
        (0.0, 1.0, CellStatus.MISSING),
        (0.0, 3.0, CellStatus.MISSING),
    }


def test_a_task_worth_0_points_has_nothing_to_grade():
    specs = N.specs()
    specs["task_plot"].points = 0.0
    assert score(specs=specs)["task_plot"] == (0.0, 0.0, CellStatus.NO_POINTS)


def test_a_task_with_points_waits_for_a_hand_grade():
    assert score()["task_plot"] == (None, 3.0, CellStatus.NEEDS_MANUAL_GRADE)


def test_a_written_answer_left_as_released_scores_0_with_no_response():
    assert score()["explain"] == (0, 1.0, CellStatus.NO_RESPONSE)


def test_a_written_answer_waits_for_a_hand_grade():
    nb = executed()
    nb.cells[AT["explain"]].source = "Because the loss stops falling."
    assert score(nb=nb)["explain"] == (None, 1.0, CellStatus.NEEDS_MANUAL_GRADE)


def test_a_test_that_printed_nothing_but_stdout_passes_with_full_points():
    assert score(executed(test_double=[N.stdout("checked\n")]))["test_double"] == (2.0, 2.0, CellStatus.PASSED)


def test_a_test_whose_last_value_is_not_a_number_passes_with_full_points():
    assert score(executed(test_double=[N.result("True")]))["test_double"] == (2.0, 2.0, CellStatus.PASSED)


@pytest.mark.parametrize(
    "shown, expected",
    [
        ("0.5", (0.5, 2.0, CellStatus.PARTIAL)),
        ("1.5", (1.5, 2.0, CellStatus.PARTIAL)),
        ("2", (2.0, 2.0, CellStatus.PASSED)),
        ("0", (0.0, 2.0, CellStatus.FAILED)),
    ],
)
def test_a_bare_number_on_the_last_line_is_nbgraders_partial_credit(shown, expected):
    assert score(executed(test_double=[N.result(shown)]))["test_double"] == expected


@pytest.mark.parametrize(
    "outputs",
    [[N.error()], [N.stdout(), N.error()], [N.stderr("DeprecationWarning\n")]],
    ids=["error", "stdout-then-error", "stderr"],
)
def test_a_test_that_raised_or_wrote_to_stderr_fails_with_0(outputs):
    replies = {i: "ok" for i in CODE}
    replies[AT["test_double"]] = "ok" if outputs[-1].output_type == "stream" else "error"
    assert score(executed(test_double=outputs), ran(replies=replies))["test_double"] == (0, 2.0, CellStatus.FAILED)


@pytest.mark.parametrize("outputs", [[], [N.stdout()], [N.result("2")]], ids=["nothing", "stdout", "full-marks"])
def test_a_reply_of_error_zeroes_a_cell_whose_outputs_claim_points(outputs):
    replies = {i: "ok" for i in CODE}
    replies[AT["test_double"]] = "error"
    assert score(executed(test_double=outputs), ran(replies=replies))["test_double"] == (0.0, 2.0, CellStatus.FAILED)


def test_a_test_that_timed_out_scores_0_and_later_tests_still_count():
    replies = {i: "ok" for i in CODE}
    replies[AT["test_double"]] = "error"
    got = score(
        executed(test_double=[N.error("KeyboardInterrupt", "")]), ran(replies=replies, timed_out=[AT["test_double"]])
    )
    assert got["test_double"] == (0.0, 2.0, CellStatus.TIMED_OUT)
    assert got["test_big"] == (1.0, 1.0, CellStatus.PASSED)


def test_a_timed_out_cell_stays_timed_out_even_with_a_reply_and_clean_outputs():
    assert score(executed(), ran(timed_out=[AT["test_big"]]))["test_big"] == (0.0, 1.0, CellStatus.TIMED_OUT)


def test_the_cell_the_kernel_died_in_crashed_and_later_cells_did_not_run():
    got = score(executed(), ran(status="crashed", current=AT["test_double"], replies={0: "ok", 2: "ok"}))
    assert got == {
        "test_double": (0.0, 2.0, CellStatus.CRASHED),
        "explain": (0, 1.0, CellStatus.NO_RESPONSE),  # hand-graded: no kernel needed
        "task_plot": (None, 3.0, CellStatus.NEEDS_MANUAL_GRADE),
        "test_big": (0.0, 1.0, CellStatus.NOT_RUN),
    }


def test_a_kernel_that_died_in_an_answer_leaves_every_later_test_not_run():
    got = score(executed(), ran(status="crashed", current=AT["answer"], replies={0: "ok"}))
    assert (got["test_double"], got["test_big"]) == ((0.0, 2.0, CellStatus.NOT_RUN), (0.0, 1.0, CellStatus.NOT_RUN))


def test_the_cell_running_when_the_notebook_ran_out_of_time_timed_out_and_later_cells_did_not_run():
    got = score(executed(), ran(status="timed_out", current=AT["test_double"], replies={0: "ok", 2: "ok"}))
    assert (got["test_double"], got["test_big"]) == ((0.0, 2.0, CellStatus.TIMED_OUT), (0.0, 1.0, CellStatus.NOT_RUN))


def test_a_cell_without_a_reply_in_a_run_that_ended_well_did_not_run():
    got = score(executed(), ran(status="ok", current=None, replies={0: "ok", 2: "ok", 3: "ok"}))
    assert (got["test_double"], got["test_big"]) == ((2.0, 2.0, CellStatus.PASSED), (0.0, 1.0, CellStatus.NOT_RUN))


def test_a_memory_error_scores_0_with_memory_limit():
    replies = {i: "ok" for i in CODE}
    replies[AT["test_big"]] = "error"
    got = score(executed(test_big=[N.error("MemoryError", "")]), ran(replies=replies))
    assert got["test_big"] == (0.0, 1.0, CellStatus.MEMORY_LIMIT)


# ---------------------------------------------------------------------------- events


def test_a_run_where_nothing_happened_has_no_events():
    assert events(executed(), ran()) == []


def test_events_name_cells_by_grade_id_or_position_in_a_fixed_order():
    nb = executed(test_big=[N.error("MemoryError", "")])
    nb.cells.append(N.cell("code", "print('x' * 10**9)"))
    run = ran(status="crashed", current=AT["test_big"], timed_out=[AT["test_double"]], truncated=[7, AT["answer"]])
    assert events(nb, run) == [
        "cell test_double ran past its time limit and was interrupted",
        "the kernel died in cell test_big; later cells did not run",
        "cell test_big ran out of memory (MemoryError)",
        "cell 8 (unnamed) printed too much; its output was cut short",
        "cell answer printed too much; its output was cut short",
    ]


def test_a_killed_kernel_says_why_instead_of_that_it_died():
    run = ran(status="crashed", current=AT["test_double"], killed="it used more than 6144 MB")
    assert events(executed(), run) == ["the kernel was killed in cell test_double: it used more than 6144 MB"]


def test_a_death_in_no_known_cell_is_named_by_a_question_mark():
    assert events(executed(), ran(status="crashed", current=None)) == [
        "the kernel died in cell ? (unnamed); later cells did not run"
    ]


def test_a_cell_past_the_end_of_the_notebook_is_named_by_its_position():
    assert events(executed(), ran(timed_out=[9])) == ["cell 10 (unnamed) ran past its time limit and was interrupted"]


# ---------------------------------------------------------------------------- notebook_status


def rows(*statuses) -> list[CellResult]:
    return [CellResult(NAME, f"cell{i}", 1.0, 0.0, s) for i, s in enumerate(statuses)]


C = CellStatus
# (entry, cell statuses, expected): each branch, then each precedence pair
STATUS_CASES = {
    "preset status wins": (NotebookResult(status=Status.MISSING, tampering=True), [C.CRASHED], Status.MISSING),
    "preset status as text": (NotebookResult(status="unreadable"), [], Status.UNREADABLE),
    "crashed cell": (NotebookResult(), [C.PASSED, C.CRASHED], Status.CRASHED),
    "crashed run": (NotebookResult(run_status="crashed"), [C.NOT_RUN], Status.CRASHED),
    "crashed > timed_out": (NotebookResult(timed_out_cells=[3]), [C.TIMED_OUT, C.CRASHED], Status.CRASHED),
    "timed_out cell": (NotebookResult(run_status="ok"), [C.TIMED_OUT], Status.TIMED_OUT),
    "timed_out run": (NotebookResult(run_status="timed_out"), [C.PASSED], Status.TIMED_OUT),
    "timed_out cells listed": (NotebookResult(timed_out_cells=[2]), [C.PASSED], Status.TIMED_OUT),
    "timed_out > memory_limit": (NotebookResult(memory_error=True), [C.TIMED_OUT, C.MEMORY_LIMIT], Status.TIMED_OUT),
    "memory_limit cell": (NotebookResult(), [C.MEMORY_LIMIT], Status.MEMORY_LIMIT),
    "memory_error flag": (NotebookResult(memory_error=True), [C.PASSED], Status.MEMORY_LIMIT),
    "memory_limit > tampered": (NotebookResult(tampering=True, repairs=["x"]), [C.MEMORY_LIMIT], Status.MEMORY_LIMIT),
    "tampered > repaired": (NotebookResult(tampering=True, repairs=["test: edited"]), [C.PASSED], Status.TAMPERED),
    "repaired > needs_manual_grade": (
        NotebookResult(repairs=["explain: retyped"]),
        [C.NEEDS_MANUAL_GRADE],
        Status.REPAIRED,
    ),
    "needs_manual_grade > graded": (NotebookResult(), [C.PASSED, C.NEEDS_MANUAL_GRADE], Status.NEEDS_MANUAL_GRADE),
    "graded": (
        NotebookResult(run_status="ok"),
        [C.PASSED, C.PARTIAL, C.FAILED, C.NO_RESPONSE, C.NO_POINTS],
        Status.GRADED,
    ),
    "graded without cells": (NotebookResult(), [], Status.GRADED),
}


@pytest.mark.parametrize("entry, cells, expected", STATUS_CASES.values(), ids=STATUS_CASES.keys())
def test_notebook_status_is_the_most_serious_thing_that_happened(entry, cells, expected):
    got = notebook_status(entry, rows(*cells))
    assert got is expected


# ---------------------------------------------------------------------------- the status enums


def test_statuses_are_declared_most_serious_first():
    assert [s.value for s in Status] == [
        "grader_error",
        "unreadable",
        "missing",
        "crashed",
        "timed_out",
        "memory_limit",
        "tampered",
        "repaired",
        "needs_manual_grade",
        "graded",
    ]
    assert [s.value for s in CellStatus] == [
        "grader_error",
        "unreadable",
        "missing",
        "crashed",
        "timed_out",
        "memory_limit",
        "not_run",
        "failed",
        "partial",
        "no_response",
        "needs_manual_grade",
        "manually_graded",
        "no_points",
        "passed",
        "unknown",
    ]
    assert Status.GRADER_ERROR.severity == 0 and Status.GRADED.severity == 9


def test_worst_is_the_most_serious_and_accepts_values():
    assert Status.worst(["graded", Status.TAMPERED, "crashed", "repaired"]) is Status.CRASHED
    assert CellStatus.worst([C.PASSED, "failed", C.NOT_RUN, C.PARTIAL]) is CellStatus.NOT_RUN
    assert Status.worst([]) is None
    assert Status.worst([], default=Status.GRADED) is Status.GRADED
    with pytest.raises(ValueError):
        Status.worst(["fine"])


def test_a_status_prints_as_its_value_and_equals_it():
    assert (str(Status.NEEDS_MANUAL_GRADE), f"{CellStatus.NO_POINTS}") == ("needs_manual_grade", "no_points")
    assert Status.GRADED == "graded" and {Status.GRADED: 1}["graded"] == 1


def test_every_notebook_status_has_a_meaning_and_every_pre_run_status_a_cell_status():
    assert set(STATUS_MEANING) == set(Status)
    for s in (Status.GRADER_ERROR, Status.UNREADABLE, Status.MISSING, Status.CRASHED, Status.TIMED_OUT):
        assert CellStatus(s.value).value == s.value  # batch.finish gives cells CellStatus(entry.status)


# ---------------------------------------------------------------------------- records: JSON round trip


def student_record() -> StudentRecord:
    return StudentRecord(
        student_id="ada",
        status=Status.TAMPERED,
        score=2.5,
        max_score=7.0,
        seconds=12.5,
        graded_at="2026-01-01T00:00:00+00:00",
        notes=["extra.ipynb is not part of the assignment and was ignored"],
        notebooks={
            NAME: NotebookResult(
                status=Status.TAMPERED,
                repairs=["test_double: edited"],
                tampering=True,
                run_status="ok",
                events=["cell test_big ran out of memory (MemoryError)"],
                seconds=11.0,
                output_truncated=True,
                memory_error=True,
                timed_out_cells=[3],
                sandbox={"uid": 2001},
            )
        },
        cells=[
            CellResult(NAME, "test_double", 2.0, 0.5, CellStatus.PARTIAL),
            CellResult(NAME, "explain", 1.0, None, CellStatus.NEEDS_MANUAL_GRADE),
        ],
    )


def test_a_student_record_survives_json_with_its_types():
    rec = student_record()
    data = json.loads(json.dumps(rec.to_json()))
    assert data["status"] == "tampered" and data["notebooks"][NAME]["status"] == "tampered"
    assert data["cells"][1] == {
        "notebook": NAME,
        "grade_id": "explain",
        "max_score": 1.0,
        "score": None,
        "status": "needs_manual_grade",
    }
    back = StudentRecord.from_json(data)
    assert back == rec
    assert type(back.status) is Status
    assert type(back.notebooks[NAME]) is NotebookResult and back.notebooks[NAME].timed_out_cells == [3]
    assert [type(c) for c in back.cells] == [CellResult, CellResult]
    assert back.cells[0].status == CellStatus.PARTIAL


def test_a_record_from_a_newer_kit_ignores_fields_it_does_not_know():
    data = student_record().to_json()
    data["future_field"] = 1
    data["notebooks"][NAME]["future_field"] = 2
    data["cells"][0]["future_field"] = 3
    assert StudentRecord.from_json(data) == student_record()


def test_a_student_record_writes_sorted_json_and_reads_back(tmp_path):
    path = tmp_path / "grading.json"
    student_record().write(path)
    assert StudentRecord.read(path) == student_record()
    text = path.read_text()
    assert text == json.dumps(student_record().to_json(), indent=1, sort_keys=True) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["grading.json"]


def test_a_notebook_run_gets_its_reply_keys_back_as_cell_indexes():
    run = NotebookRun(
        status="crashed",
        killed="memory",
        seconds=3.0,
        replies={0: "ok", 3: "error"},
        timed_out=[3],
        truncated=[2],
        current=6,
        sandbox={"uid": 2001},
        log="tail",
        finished=False,
    )
    data = json.loads(json.dumps(run.to_json()))
    assert data["replies"] == {"0": "ok", "3": "error"}
    back = NotebookRun.from_json(data)
    assert back.replies == {0: "ok", 3: "error"}
    assert back == run


def test_a_job_gets_its_limits_back_as_limits():
    job = Job(
        root="/course",
        scratch="/scratch/ada",
        uid=2001,
        notebooks=[NAME],
        limits=Limits(timeout=30.0, memory_mb=2048),
        fastai_home="/fastai",
    )
    back = Job.from_json(json.loads(json.dumps(job.to_json())))
    assert type(back.limits) is Limits
    assert back.limits == Limits(
        timeout=30.0, notebook_timeout=900, grace=10, memory_mb=2048, nproc=256, fsize_mb=256, output_mb=2
    )
    assert back == job
    assert back.run == Path("/scratch/ada/run")


# ---------------------------------------------------------------------------- write_grades (nbgrader's gradebook, in memory)


@pytest.fixture(scope="module")
def gradebook():
    """nbgrader's Gradebook on an in-memory sqlite db holding the tiny assignment.

    A new Gradebook asks `alembic heads` (a subprocess) for the schema version to stamp; the stamp
    does not matter here, so the subprocess is skipped."""
    import nbgrader.api as api

    mp = pytest.MonkeyPatch()
    mp.setattr(api, "get_alembic_version", lambda: "test")
    gb = api.Gradebook("sqlite:///:memory:", "course")
    gb.update_or_create_assignment("a1")
    gb.update_or_create_notebook(NAME, "a1")
    for gid, spec in N.specs().items():
        if spec.grade:
            gb.update_or_create_grade_cell(gid, NAME, "a1", max_score=spec.points, cell_type=spec.cell_type)
        if spec.solution:
            gb.update_or_create_solution_cell(gid, NAME, "a1")
        if spec.task:
            gb.update_or_create_task_cell(gid, NAME, "a1", max_score=spec.points, cell_type=spec.cell_type)
    yield gb
    gb.close()
    mp.undo()


def graded_student(gb, student, nb, run=None):
    rows_ = score_cells(nb, N.specs(), run or ran(), NAME)
    write_grades(gb, "a1", student, {NAME: (nb, rows_)}, {NAME: N.specs()})
    gb.db.commit()
    grades = {g: gb.find_grade(g, NAME, "a1", student) for g in ("test_double", "explain", "task_plot", "test_big")}
    comments = {g: gb.find_comment(g, NAME, "a1", student).auto_comment for g in ("answer", "explain", "task_plot")}
    return rows_, {g: (x.auto_score, x.needs_manual_grade) for g, x in grades.items()}, comments


def test_write_grades_stores_auto_scores_and_what_waits_for_a_grader(gradebook):
    nb = executed(test_big=[N.error()])
    nb.cells[AT["answer"]].source = N.SOLVED
    nb.cells[AT["explain"]].source = "Because."
    _, grades, comments = graded_student(gradebook, "s-answered", nb)
    assert grades == {
        "test_double": (2.0, False),
        "explain": (None, True),
        "task_plot": (None, True),
        "test_big": (0.0, False),
    }
    assert comments == {"answer": None, "explain": None, "task_plot": None}


def test_write_grades_says_no_response_on_answers_left_as_released(gradebook):
    _, grades, comments = graded_student(gradebook, "s-blank", executed())
    assert grades["explain"] == (0.0, False)
    assert comments == {"answer": "No response.", "explain": "No response.", "task_plot": None}


def test_a_failure_is_written_as_0_for_the_cells_it_hit(gradebook):
    run = ran(status="crashed", current=AT["test_double"], replies={0: "ok", 2: "ok"})
    _, grades, _ = graded_student(gradebook, "s-crashed", executed(), run)
    assert (grades["test_double"], grades["test_big"]) == ((0.0, False), (0.0, False))


def test_a_hand_score_is_kept_and_the_cell_reads_manually_graded(gradebook):
    graded_student(gradebook, "s-hand", executed())
    grade = gradebook.find_grade("test_double", NAME, "a1", "s-hand")
    grade.manual_score = 1.5
    gradebook.db.commit()
    rows_, grades, _ = graded_student(gradebook, "s-hand", executed())
    assert {r.grade_id: r.status for r in rows_}["test_double"] == CellStatus.MANUALLY_GRADED
    assert grades["test_double"] == (2.0, True)  # as nbgrader's SaveAutoGrades: a regrade flags it for review
    assert gradebook.find_grade("test_double", NAME, "a1", "s-hand").score == 1.5


def test_a_regrade_rewrites_every_no_response_comment(gradebook):
    _, _, comments = graded_student(gradebook, "s-regraded", executed())
    assert comments["explain"] == "No response."
    gradebook.find_comment("task_plot", NAME, "a1", "s-regraded").auto_comment = "No response."  # a stale one
    gradebook.db.commit()
    nb = executed()
    nb.cells[AT["answer"]].source, nb.cells[AT["explain"]].source = N.SOLVED, "Because."
    _, _, comments = graded_student(gradebook, "s-regraded", nb)
    assert comments == {"answer": None, "explain": None, "task_plot": None}
