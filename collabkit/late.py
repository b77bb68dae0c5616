"""Late work: submission timestamps, a due date, and nbgrader's late-penalty plugins.

The due date is the course's `c.CollabKit.duedate` in nbgrader_config.py (any time nbgrader
can parse, e.g. "2026-12-18 23:59:00 UTC"); each grading run copies it into the gradebook's
assignment, where formgrader shows it too. A submission's time is the one grading recorded in
the gradebook: when its files arrived in submitted/ (grading/batch.py, never the student's own
`timestamp.txt`). After grading, nbgrader's own
`AssignLatePenalties` preprocessor asks the configured plugin for each notebook's penalty
(`c.AssignLatePenalties.plugin_class`: nbgrader's `LateSubmissionPlugin`, which by default
records lateness but takes nothing, or this module's `PercentPerDay`) and stores it in the
gradebook. The penalty then shows as `late_penalty` in exports/grades.csv (the LMS files
subtract it) and as a line at the top of the notebook's feedback.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float

from .course import Course, nbgrader_tools
from .errors import KitError


class PercentPerDay(LateSubmissionPlugin):
    """Each started day late costs `percent` % of the notebook's score, up to all of it.

    Use it with `c.AssignLatePenalties.plugin_class = "collabkit.late.PercentPerDay"` and
    `c.PercentPerDay.percent = 10`."""

    percent = Float(10.0, help="percent of the notebook's score lost per started day late").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float | None:
        if total_seconds_late <= 0:
            return None
        days = math.ceil(total_seconds_late / 86400)
        return min(score, score * self.percent / 100 * days)


def due_date(course: Course) -> datetime | None:
    """The due date from nbgrader_config.py (naive UTC, as nbgrader's gradebook keeps it), or None."""
    from nbgrader.utils import parse_utc

    raw = course.config.get("CollabKit", {}).get("duedate")
    if not raw:
        return None
    try:
        return parse_utc(str(raw))
    except Exception:  # noqa: BLE001  dateutil's errors vary
        raise KitError(
            f"c.CollabKit.duedate = {raw!r} in nbgrader_config.py is not a date and time "
            "(write e.g. '2026-12-18 23:59:00 UTC')"
        ) from None


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{days} d" if days else "",
        f"{hours} h" if hours else "",
        f"{minutes} min" if minutes or not (days or hours) else "",
    ]
    return " ".join(p for p in parts if p)


def apply_late_penalties(course: Course, students: list[str], refresh: bool = True) -> dict[str, float]:
    """Penalties for `students` (all notebooks), stored in the gradebook and their grading.json;
    their feedback is rendered again with the penalty line. Returns student -> total penalty."""
    import nbformat
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.preprocessors import AssignLatePenalties

    due = due_date(course)
    cfg = course.nbgrader_config()
    penalties, late = {}, {}
    with nbgrader_tools():
        with Gradebook(course.db_url, course.coursedir.course_id) as gb:
            if due is not None:
                gb.update_or_create_assignment(course.assignment, duedate=due)
            elif gb.find_assignment(course.assignment).duedate is None:
                return {}  # no due date anywhere: nothing can be late
            names = {}
            for student in students:
                try:
                    sub = gb.find_submission(course.assignment, student)
                except MissingEntry:
                    continue
                names[student] = [nb.name for nb in sub.notebooks]
                late[student] = (sub.total_seconds_late, sub.timestamp, sub.duedate)
        for student, notebooks in names.items():
            for name in notebooks:
                resources = {
                    "nbgrader": {
                        "notebook": name,
                        "assignment": course.assignment,
                        "student": student,
                        "db_url": course.db_url,
                    }
                }
                pre = AssignLatePenalties(config=cfg)
                pre.log.setLevel("ERROR")
                pre.preprocess(nbformat.v4.new_notebook(), resources)
        with Gradebook(course.db_url, course.coursedir.course_id) as gb:
            for student in names:
                sub = gb.find_submission(course.assignment, student)
                penalties[student] = {nb.name: nb.late_submission_penalty or 0.0 for nb in sub.notebooks}
    changed = []
    for student, by_nb in penalties.items():
        seconds, stamp, due_at = late[student]
        path = course.autograded(student) / "grading.json"
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        record["late"] = {
            "due": due_at.isoformat() if due_at else None,
            "submitted": stamp.isoformat() if stamp else None,
            "seconds_late": seconds,
            "penalty": sum(by_nb.values()),
            "penalty_by_notebook": {k: v for k, v in sorted(by_nb.items()) if v},
        }
        if seconds > 0:
            for name, entry in record.get("notebooks", {}).items():
                p = by_nb.get(name, 0.0)
                line = (
                    f"Submitted {_duration(seconds)} after the due date: late penalty "
                    f"{p:g} point{'s' if p != 1 else ''}."
                )
                entry["events"] = [e for e in entry.get("events", []) if not e.startswith("Submitted ")] + [line]
            changed.append(student)
        path.write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    if changed and refresh:
        from .feedback import refresh_feedback

        refresh_feedback(course, students=changed)
    return {s: sum(v.values()) for s, v in penalties.items()}
