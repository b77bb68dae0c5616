"""Grades into the LMS: the kit's grades joined to an instructor's roster, as Canvas or Moodle import them.

Everything here is a pure function over plain rows (dicts of strings), so each format's rules
are tested byte for byte without a gradebook. `export_lms` is the one function that touches
the course: it reads `exports/grades.csv` (which `collabkit export` has just written) and the
roster, and writes `exports/canvas.csv` or `exports/moodle.csv`.

The roster is a CSV with a `student_id` column (the kit's ids, as in submitted/<student_id>/)
and whatever the LMS needs:

| column | used by |
| --- | --- |
| `name` | Canvas `Student` (required for Canvas) |
| `lms_id` | Canvas `ID`, the Canvas user id (required for Canvas) |
| `sis_user_id`, `sis_login_id` | Canvas `SIS User ID`, `SIS Login ID` (written when the roster has them) |
| `section` | Canvas `Section` |
| `email`, `idnumber` | Moodle's identifier column, as `--moodle-id` chooses |

Rules both formats follow: comma-separated, fields quoted only when they hold a comma, a quote
or a line break (quotes doubled), CRLF line ends (RFC 4180), UTF-8 without a byte-order mark,
points with a decimal point and at most two decimals (`34.5`, `47`, `0.33`; never `34,5`).
The grade is grades.csv's `score` less its `late_penalty` (see late.py).
A roster row with no submission gets a blank grade, which both LMSs leave ungraded, unless
`missing_as_zero`. Rows are in `student_id` order.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .errors import KitError

FORMATS = ("canvas", "moodle")
MOODLE_IDS = {"email": "Email address", "idnumber": "ID number"}  # the headers Moodle's own export writes


class RosterError(KitError):
    """The roster cannot be joined to the grades; one sentence says why."""


def points(x: float | str | None) -> str:
    """A score as both LMSs read it: decimal point, at most two decimals, no trailing zeros; None is blank."""
    if x is None or x == "":
        return ""
    text = f"{float(x):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def read_roster(path: Path) -> list[dict]:
    """The roster's rows (dicts of stripped strings); a missing column or a duplicate id is a RosterError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # spreadsheets often save a byte-order mark
    except FileNotFoundError:
        raise RosterError(f"the roster {path} does not exist") from None
    except UnicodeDecodeError:
        raise RosterError(f"the roster {path} is not UTF-8 text: save it from the spreadsheet as CSV UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "student_id" not in columns:
        raise RosterError(
            f"the roster {path} has no student_id column (its header is: {', '.join(columns) or 'empty'})"
        )
    rows, seen = [], set()
    for n, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        sid = row["student_id"]
        if not sid:
            raise RosterError(f"the roster {path}, line {n}: student_id is empty")
        if sid in seen:
            raise RosterError(f"the roster {path}, line {n}: student_id {sid} appears twice")
        seen.add(sid)
        rows.append(row)
    return rows


def join(grades: list[dict], roster: list[dict]) -> tuple[list[tuple[dict, dict | None]], list[str], list[str]]:
    """Pair each roster row with its grade row (None: no submission).

    Returns (pairs in student_id order, gradebook students not in the roster, roster students
    with no submission)."""
    by_id = {g["student_id"]: g for g in grades}
    on_roster = {r["student_id"] for r in roster}
    pairs = [(r, by_id.get(r["student_id"])) for r in sorted(roster, key=lambda r: r["student_id"])]
    not_in_roster = sorted(set(by_id) - on_roster)
    no_submission = [r["student_id"] for r, g in pairs if g is None]
    return pairs, not_in_roster, no_submission


def _grade(grade: dict | None, missing_as_zero: bool) -> str:
    if grade is None:
        return "0" if missing_as_zero else ""
    if grade.get("status") == "grader_error":  # the kit failed, not the student: never an honest-looking 0
        return ""
    return points(float(grade["score"]) - float(grade.get("late_penalty") or 0))  # the LMS gets the final grade


def _csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerows(rows)
    return out.getvalue()


def canvas_csv(
    pairs: list[tuple[dict, dict | None]],
    title: str,
    max_score: float,
    assignment_id: str | None = None,
    missing_as_zero: bool = False,
) -> str:
    """Canvas's gradebook-import layout.

    Header `Student, ID`, then `SIS User ID, SIS Login ID` when the roster has those columns,
    then `Section` (the last student column), then `<title> (<assignment_id>)`; without an id
    the column is just `<title>` and Canvas makes a new assignment of it. A `Points Possible`
    row comes first, blank in the student columns."""
    roster_cols = set().union(*(r.keys() for r, _ in pairs)) if pairs else set()
    for col in ("name", "lms_id"):
        if pairs and col not in roster_cols:
            raise RosterError(
                f"Canvas needs a {col} column in the roster (Canvas's {'Student' if col == 'name' else 'ID'} column)"
            )
    sis = [(h, c) for h, c in (("SIS User ID", "sis_user_id"), ("SIS Login ID", "sis_login_id")) if c in roster_cols]
    column = f"{title} ({assignment_id})" if assignment_id else title
    header = ["Student", "ID", *[h for h, _ in sis], "Section", column]
    rows = [header, ["Points Possible", "", *["" for _ in sis], "", points(max_score)]]
    for r, g in pairs:
        rows.append(
            [
                r.get("name", ""),
                r.get("lms_id", ""),
                *[r.get(c, "") for _, c in sis],
                r.get("section", ""),
                _grade(g, missing_as_zero),
            ]
        )
    return _csv(rows)


def moodle_csv(
    pairs: list[tuple[dict, dict | None]], title: str, identifier: str = "email", missing_as_zero: bool = False
) -> tuple[str, list[str]]:
    """Moodle's CSV grade import: one identifier column (mapped to the user field `identifier`)
    and one grade column (mapped to the grade item). Returns the text and the students left
    out because their roster row has no value for the identifier."""
    if identifier not in MOODLE_IDS:
        raise RosterError(f"the Moodle identifier must be one of {', '.join(MOODLE_IDS)}, not {identifier}")
    if pairs and not any(identifier in r for r, _ in pairs):
        raise RosterError(f"Moodle's import maps students by {identifier}, and the roster has no {identifier} column")
    rows, left_out = [[MOODLE_IDS[identifier], title]], []
    for r, g in pairs:
        if not r.get(identifier):
            left_out.append(r["student_id"])
            continue
        rows.append([r[identifier], _grade(g, missing_as_zero)])
    return _csv(rows), left_out


def read_grades(path: Path) -> list[dict]:
    """exports/grades.csv as rows (student_id, status, score, max_score, cells_awaiting_hand_grading, notes)."""
    if not Path(path).is_file():
        raise KitError(f"{path} is missing: run `collabkit export` first")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def export_lms(
    exports: Path,
    roster_path: Path,
    fmt: str,
    title: str,
    max_score: float | None = None,
    assignment_id: str | None = None,
    identifier: str = "email",
    missing_as_zero: bool = False,
    warn=print,
) -> Path:
    """Write exports/<fmt>.csv from exports/grades.csv and the roster; say on `warn` whom it could not place."""
    if fmt not in FORMATS:
        raise KitError(f"unknown LMS format {fmt}: use one of {', '.join(FORMATS)}")
    grades = read_grades(Path(exports) / "grades.csv")
    roster = read_roster(roster_path)
    if max_score is None:
        maxima = {float(g["max_score"]) for g in grades if g.get("max_score")}
        if len(maxima) != 1:
            raise KitError(
                "cannot tell the assignment's points possible from exports/grades.csv "
                f"({'no graded submissions' if not maxima else 'it holds several'})"
            )
        max_score = maxima.pop()
    pairs, not_in_roster, no_submission = join(grades, roster)
    left_out = []
    if fmt == "canvas":
        text = canvas_csv(pairs, title, max_score, assignment_id, missing_as_zero)
    else:
        text, left_out = moodle_csv(pairs, title, identifier, missing_as_zero)
    for sid in not_in_roster:
        warn(f"{sid} has a grade but is not in the roster {roster_path}: not written to {fmt}.csv")
    for sid in no_submission:
        warn(f"{sid} is in the roster but has no submission: written as {'0' if missing_as_zero else 'a blank grade'}")
    for sid in sorted(g["student_id"] for g in grades if g.get("cells_awaiting_hand_grading", "0") not in ("", "0")):
        if sid not in not_in_roster:
            warn(f"{sid} still has free-text answers to hand-grade: the exported score leaves them out")
    for sid in sorted(g["student_id"] for g in grades if g.get("status") == "grader_error"):
        if sid not in not_in_roster:
            warn(
                f"the kit failed on {sid} (grader_error): written as a blank grade; "
                f"rerun `collabkit grade --student {sid}`"
            )
    for sid in left_out:
        warn(f"{sid} has no {identifier} in the roster: not written to moodle.csv")
    out = Path(exports) / f"{fmt}.csv"
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    tmp.replace(out)
    return out
