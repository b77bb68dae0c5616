"""Runs in the grading parent: decide each cell's score and status, each notebook's status, and
write them to the gradebook.

A cell's score comes from nbgrader's own `determine_grade` (the outputs of the executed cell),
with the kit's stricter rules on top: a cell whose execute reply said `error` scores 0 whatever
its outputs claim; a cell that never ran, timed out, crashed or hit the memory limit scores 0
with that status, so a zero from a failure never looks like an honest zero. nbgrader's
`SaveAutoGrades` cannot apply those rules (it reads only the outputs), so the gradebook rows are
written here, with the same fields it writes (`auto_score`, `needs_manual_grade`, the
"No response." comment).
"""

from __future__ import annotations

import warnings

from .records import CellResult, CellStatus, NotebookResult, NotebookRun, Status


def score_cells(
    nb, specs: dict, run: NotebookRun | None, notebook: str, never_ran: CellStatus | None = None
) -> list[CellResult]:
    """One CellResult per graded cell of `notebook`, from the executed notebook and what happened to it.

    `never_ran` is the status every cell gets when the notebook never ran (missing, unreadable,
    killed with its worker, the kit's own failure)."""
    from nbgrader import utils

    rows = []
    index = {c.metadata.get("nbgrader", {}).get("grade_id"): i for i, c in enumerate(nb.cells)} if nb else {}
    for gid, spec in specs.items():
        if not (spec.grade or spec.task):
            continue
        row = CellResult(notebook=notebook, grade_id=gid, max_score=spec.points, score=0.0, status=never_ran or "")
        rows.append(row)
        if never_ran:
            continue
        i = index[gid]
        cell = nb.cells[i]
        if spec.task and not spec.points:
            row.status = CellStatus.NO_POINTS  # a rubric holder worth nothing: nothing to grade
            continue
        if spec.task or spec.solution or cell.cell_type != "code":
            row.score = None if spec.task else utils.determine_grade(cell)[0]
            row.status = CellStatus.NEEDS_MANUAL_GRADE if row.score is None else CellStatus.NO_RESPONSE
            continue
        reply = run.replies.get(i)
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if i in run.timed_out:
            row.status = CellStatus.TIMED_OUT
        elif reply is None:
            ended_here = run.current == i
            row.status = (
                CellStatus.CRASHED
                if run.status == "crashed" and ended_here
                else CellStatus.TIMED_OUT
                if run.status == "timed_out" and ended_here
                else CellStatus.NOT_RUN
            )
        elif errors and errors[0].ename == "MemoryError":
            row.status = CellStatus.MEMORY_LIMIT
        else:
            score = utils.determine_grade(cell)[0] or 0.0
            if reply == "error" and score > 0:  # the kernel said it failed, whatever the outputs say
                score = 0.0
            row.score = score
            row.status = (
                CellStatus.PASSED if score >= spec.points else CellStatus.PARTIAL if score > 0 else CellStatus.FAILED
            )
    return rows


def events(nb, run: NotebookRun) -> list[str]:
    """What happened while the notebook ran, in sentences, naming cells by grade id or position."""

    def where(i):
        gid = nb.cells[i].metadata.get("nbgrader", {}).get("grade_id") if i is not None and i < len(nb.cells) else None
        return f"cell {gid}" if gid else f"cell {i + 1 if i is not None else '?'} (unnamed)"

    out = [f"{where(i)} ran past its time limit and was interrupted" for i in run.timed_out]
    if run.killed:
        out.append(f"the kernel was killed in {where(run.current)}: {run.killed}")
    elif run.status == "crashed":
        out.append(f"the kernel died in {where(run.current)}; later cells did not run")
    for i, c in enumerate(nb.cells):
        if any(o.get("ename") == "MemoryError" for o in c.get("outputs", [])):
            out.append(f"{where(i)} ran out of memory (MemoryError)")
    out += [f"{where(i)} printed too much; its output was cut short" for i in run.truncated]
    return out


def notebook_status(entry: NotebookResult, rows: list[CellResult]) -> Status:
    """The most serious thing that happened to the notebook, from its run, its repairs and its cells."""
    if entry.status:
        return Status(entry.status)
    cell = {r.status for r in rows}
    if CellStatus.CRASHED in cell or entry.run_status == "crashed":
        return Status.CRASHED
    if CellStatus.TIMED_OUT in cell or entry.run_status == "timed_out" or entry.timed_out_cells:
        return Status.TIMED_OUT
    if CellStatus.MEMORY_LIMIT in cell or entry.memory_error:
        return Status.MEMORY_LIMIT
    if entry.tampering:
        return Status.TAMPERED
    if entry.repairs:
        return Status.REPAIRED
    return Status.NEEDS_MANUAL_GRADE if CellStatus.NEEDS_MANUAL_GRADE in cell else Status.GRADED


def write_grades(gb, assignment: str, student: str, notebooks: dict, specs: dict, timestamp=None) -> None:
    """One student's rows in the gradebook (the caller commits): auto scores, which cells wait for a
    grader, and nbgrader's "No response." comment on answers left as released. A cell a grader
    already scored keeps its hand score and reads `manually_graded`."""
    from nbgrader import utils

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's own SQLAlchemy noise
        gb.update_or_create_student(student)
        gb.update_or_create_submission(assignment, student, **({"timestamp": timestamp} if timestamp else {}))
        for name, (nb, rows) in notebooks.items():
            by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
            for r in rows:
                grade = gb.find_grade(r.grade_id, name, assignment, student)
                grade.auto_score = r.score
                grade.needs_manual_grade = grade.manual_score is not None or r.score is None
                if grade.manual_score is not None:
                    r.status = CellStatus.MANUALLY_GRADED
            for gid, spec in specs[name].items():
                if spec.solution or spec.task:
                    comment = gb.find_comment(gid, name, assignment, student)
                    cell = by_id.get(gid)
                    unanswered = cell is None or (
                        not spec.task
                        and cell.metadata.get("nbgrader", {}).get("checksum") == utils.compute_checksum(cell)
                    )
                    comment.auto_comment = "No response." if unanswered else None
