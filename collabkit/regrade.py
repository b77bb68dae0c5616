"""The regrade diff: which cells' scores a grading run changed, and the scores they had before.

`collabkit grade` reads each student's grading.json before it grades (`snapshot`), and after
it (`report`) prints, for every student whose cells changed, one line per changed cell,
`notebook grade_id old -> new`, and keeps the earlier scores in that student's grading.json
under `previous` (newest first). An instructor who fixes a test and regrades sees whom it
affected, and can tell it later from the record.
"""

from __future__ import annotations

import json

from .course import Course


def cell_scores(record: dict) -> dict[tuple[str, str], float | None]:
    return {(c["notebook"], c["grade_id"]): c.get("score") for c in record.get("cells", [])}


def _num(x) -> str:
    return "-" if x is None else f"{float(x):g}"


def changes(old: dict, new: dict) -> list[str]:
    """`notebook grade_id old -> new` for each cell whose score differs ('-': no score, or no such cell)."""
    before, after = cell_scores(old), cell_scores(new)
    lines = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a != b:
            lines.append(f"{key[0]} {key[1]} {_num(a)} -> {_num(b)}")
    return lines


def snapshot(course: Course, students: list[str] | None = None) -> dict[str, dict]:
    """Each graded student's grading.json as it is now (only those named, if any)."""
    out = {}
    for student in course.graded_students():
        if students and student not in students:
            continue
        try:
            out[student] = json.loads((course.autograded(student) / "grading.json").read_text())
        except (OSError, ValueError):
            continue  # a damaged record has nothing to compare against
    return out


def previous_entry(old: dict) -> dict:
    return {
        "graded_at": old.get("graded_at"),
        "score": old.get("score"),
        "status": old.get("status"),
        "cells": {f"{nb}/{gid}": score for (nb, gid), score in sorted(cell_scores(old).items())},
    }


def report(course: Course, before: dict[str, dict], records: list, say=print) -> dict[str, list[str]]:
    """Print the changed cells of every regraded student and record their previous scores."""
    changed = {}
    for record in sorted(records, key=lambda r: r.student_id):
        student = record.student_id
        old = before.get(student)
        path = course.autograded(student) / "grading.json"
        if old is None or not path.is_file():
            continue
        new = json.loads(path.read_text())
        new["previous"] = [previous_entry(old), *old.get("previous", [])]
        path.write_text(json.dumps(new, indent=1, sort_keys=True, default=str) + "\n")
        lines = changes(old, new)
        changed[student] = lines
        if lines:
            say(
                f"{student}: {len(lines)} cell{'s' if len(lines) > 1 else ''} changed "
                f"(total {_num(old.get('score'))} -> {_num(new.get('score'))})"
            )
            for line in lines:
                say(f"  {line}")
        else:
            say(f"{student}: no cell changed")
    return changed
