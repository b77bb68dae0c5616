"""`collabkit report`: after grading (and again after hand-grading), what the class found hard, which tests
misbehave, and which submissions look alike. Runs in the instructor's process; runs no student code.

Reads every student's autograded/<student>/<assignment>/grading.json (scores, statuses, times, the
regrade history), the executed notebooks beside it (failure messages, the answers), the release
(which cells are answers, the code everyone was given) and the gradebook's hand grades. Writes
exports/report.json (the figures) and exports/report.html (the same, one file: report_page.py).

- Item analysis, per graded cell: difficulty (mean score / points), the shares at full marks, zero
  and partial credit, statuses, discrimination (Pearson's r between the cell's score and the
  student's total without that cell: the corrected item-total correlation), and the most frequent
  failure messages, grouped with every number replaced by '#'.
- Warnings that point at a test: nobody passed; discrimination at or below 0; one message for most
  of the class; scores changed by the last regrade for many students.
- Similarity: report_similarity.py.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .course import Course
from .errors import KitError
from .grading.records import StudentRecord

MOST = 0.5  # "most of the class": more than half
SPREAD = 0.05  # discrimination is judged only with this share (and 3) of students both at and below full marks
REGRADE_MANY = 0.2  # a regrade changed a cell's score for at least this share of the class (and 2 students)
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")
PENDING = {"needs_manual_grade"}


@dataclass
class ClassData:
    students: list[str] = field(default_factory=list)
    cells: list[tuple[str, str]] = field(default_factory=list)  # (notebook, grade_id), in notebook order
    points: dict = field(default_factory=dict)  # cell -> max score
    manual: set = field(default_factory=set)  # hand-graded cells
    scores: dict = field(default_factory=lambda: defaultdict(dict))  # cell -> student -> score (None: waiting)
    recorded: dict = field(default_factory=lambda: defaultdict(dict))  # the same, grading.json's (no hand grades)
    statuses: dict = field(default_factory=lambda: defaultdict(dict))  # cell -> student -> status
    messages: dict = field(default_factory=lambda: defaultdict(dict))  # cell -> student -> failure message
    before: dict = field(default_factory=dict)  # student -> {cell: score} before the last regrade
    runs: dict = field(default_factory=lambda: defaultdict(list))  # notebook -> [(seconds, status)]
    answers: dict = field(default_factory=lambda: defaultdict(dict))  # (notebook, grade_id, kind) -> student -> text
    release_text: dict = field(default_factory=dict)  # (notebook, kind) -> released cells of that kind
    unreadable: list[str] = field(default_factory=list)


def _ipynb(name: str) -> str:
    """A notebook's file name: grading.json and the gradebook name notebooks by their stem."""
    return name if name.endswith(".ipynb") else f"{name}.ipynb"


def _cells_of(nb: dict) -> list[dict]:
    return [c for c in nb.get("cells", []) if isinstance(c, dict)]


def _meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _message(cell: dict) -> str | None:
    """A failed test cell's message: its error (`Name: value`), else the last line it wrote to stderr."""
    outputs = cell.get("outputs", []) or []
    for out in outputs:
        if out.get("output_type") == "error":
            value = str(out.get("evalue", "")).strip().splitlines()
            return f"{out.get('ename', 'Error')}: {value[0] if value else ''}".strip()[:200]
    for out in outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            lines = [line for line in _source({"source": out.get("text", "")}).splitlines() if line.strip()]
            if lines:
                return lines[-1].strip()[:200]
    return None


def load(course: Course) -> ClassData:
    data = ClassData()
    order = {}
    for name in sorted(p.name for p in course.release.glob("*.ipynb")):
        nb = json.loads((course.release / name).read_text())
        for i, cell in enumerate(_cells_of(nb)):
            meta, gid = _meta(cell), _meta(cell).get("grade_id")
            if gid:
                order[(name, gid)] = (name, i)
            if meta.get("grade") and meta.get("solution"):
                data.manual.add((name, gid))
        for kind, cell_type in (("code", "code"), ("text", "markdown")):
            data.release_text[(name, kind)] = [_source(c) for c in _cells_of(nb) if c.get("cell_type") == cell_type]
    for student in course.graded_students():
        folder = course.autograded(student)
        try:
            record = StudentRecord.read(folder / "grading.json")
        except (OSError, ValueError, TypeError, KeyError) as err:
            data.unreadable.append(f"{student}: {type(err).__name__}: {err}")
            continue
        data.students.append(student)
        for c in record.cells:
            cell = (_ipynb(c.notebook), c.grade_id)
            if cell not in data.points:
                data.points[cell] = c.max_score or 0.0
                data.cells.append(cell)
            data.scores[cell][student] = None if c.score is None else float(c.score)
            data.recorded[cell][student] = data.scores[cell][student]
            data.statuses[cell][student] = str(c.status)
        if record.previous:
            data.before[student] = {
                (_ipynb(k.split("/", 1)[0]), k.split("/", 1)[-1]): v
                for k, v in (record.previous[0].get("cells") or {}).items()
            }
        for name, nbr in record.notebooks.items():  # grading.json names notebooks without .ipynb
            data.runs[_ipynb(name)].append((nbr.seconds, str(nbr.status)))
            name = _ipynb(name)
            _read_executed(data, student, name, folder / name, course.submitted(student) / name)
    data.cells.sort(key=lambda c: order.get(c, (c[0], math.inf)))
    _hand_grades(course, data)
    return data


def _read_executed(data: ClassData, student: str, name: str, path: Path, fallback: Path) -> None:
    for p in (path, fallback):
        try:
            nb = json.loads(p.read_text())
            break
        except (OSError, ValueError):
            continue
    else:
        return
    for cell in _cells_of(nb):
        meta, gid = _meta(cell), _meta(cell).get("grade_id")
        if not gid:
            continue
        if meta.get("solution"):
            kind = "code" if cell.get("cell_type") == "code" else "text"
            data.answers[(name, gid, kind)][student] = _source(cell)
        elif meta.get("grade"):
            message = _message(cell)
            if message:
                data.messages[(name, gid)][student] = message


def _hand_grades(course: Course, data: ClassData) -> None:
    """Scores a grader entered in formgrader (the gradebook's manual scores) replace grading.json's."""
    if course.db_url.startswith("sqlite:///") and not course.gradebook.exists():
        return  # nothing hand-graded yet (a course on another database is read as it is)
    from nbgrader.api import Gradebook, MissingEntry

    from .course import nbgrader_tools

    known = set(data.students)
    with nbgrader_tools(), Gradebook(course.db_url, course.coursedir.course_id) as gb:
        try:
            submissions = gb.assignment_submissions(course.assignment)
        except MissingEntry:
            return
        for sub in submissions:
            if sub.student.id not in known:
                continue
            for nb in sub.notebooks:
                for g in nb.grades:
                    if g.manual_score is None:
                        continue
                    cell = (f"{nb.name}.ipynb", g.name)
                    if cell not in data.points:
                        data.points[cell] = float(g.max_score or 0)
                        data.cells.append(cell)
                    data.scores[cell][sub.student.id] = float(g.manual_score)
                    data.statuses[cell][sub.student.id] = "manually_graded"


def _pearson(x: list[float], y: list[float]) -> float | None:
    n = len(x)
    if n < 3:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx <= 1e-12 or syy <= 1e-12:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / math.sqrt(sxx * syy)


def group(message: str) -> str:
    """A failure message with every number as '#': messages that differ only in numbers are one."""
    return _NUMBER.sub("#", message)


def totals(data: ClassData) -> dict[str, float]:
    """Each student's total over every graded cell (an answer still waiting for a hand grade counts 0)."""
    return {s: sum(data.scores[c].get(s) or 0.0 for c in data.cells) for s in data.students}


def item_analysis(data: ClassData) -> list[dict]:
    total = totals(data)
    items = []
    for cell in data.cells:
        points = data.points[cell]
        graded = {s: v for s, v in data.scores[cell].items() if v is not None}
        n = len(graded)
        values = list(graded.values())
        mean = sum(values) / n if n else None
        full = sum(v >= points - 1e-9 for v in values) if points > 0 else n
        zero = sum(v <= 1e-9 for v in values) if points > 0 else 0
        r = _pearson(values, [total[s] - v for s, v in graded.items()]) if points > 0 else None
        grouped = Counter(group(m) for m in data.messages[cell].values())
        example = {}
        for m in data.messages[cell].values():
            example.setdefault(group(m), m)
        items.append(
            dict(
                notebook=cell[0],
                grade_id=cell[1],
                kind="hand-graded" if cell in data.manual else "autograded",
                points=points,
                graded=n,
                waiting=len(data.scores[cell]) - n,
                mean=_round(mean),
                difficulty=_round(mean / points) if mean is not None and points > 0 else None,
                full=_round(full / n) if n else None,
                zero=_round(zero / n) if n else None,
                partial=_round((n - full - zero) / n) if n else None,
                discrimination=_round(r),
                statuses=dict(sorted(Counter(data.statuses[cell].values()).items())),
                messages=[dict(message=g, example=example[g], students=k) for g, k in grouped.most_common(3)],
            )
        )
    return items


def _round(x):
    return None if x is None else round(float(x), 4)


def find_warnings(data: ClassData, items: list[dict]) -> list[dict]:
    """Warnings that point at a test, most telling first; each names the cell and the evidence."""
    out = []
    for it in items:
        cell, n = f"{it['notebook']} {it['grade_id']}", it["graded"]
        if n and it["points"] > 0 and it["full"] == 0:
            statuses = ", ".join(f"{k} {v}" for k, v in it["statuses"].items())
            out.append(
                dict(
                    kind="nobody_passed",
                    cell=cell,
                    evidence=f"0 of {n} students reached full marks (mean {it['mean']:g} of {it['points']:g}; {statuses})",
                )
            )
        if it["messages"] and it["messages"][0]["students"] > MOST * len(data.students):
            m = it["messages"][0]
            out.append(
                dict(
                    kind="one_message_for_most",
                    cell=cell,
                    evidence=f"{m['students']} of {len(data.students)} students failed with the same message: "
                    f"{m['example']!r} (numbers vary: {m['message']!r})",
                )
            )
        spread = min(round(it["full"] * n), n - round(it["full"] * n)) if n else 0
        if it["discrimination"] is not None and it["discrimination"] <= 0 and spread >= max(3, SPREAD * n):
            out.append(
                dict(
                    kind="discrimination_at_or_below_zero",
                    cell=cell,
                    evidence=f"r = {it['discrimination']:.2f} between this cell's score and the rest of the total "
                    f"over {n} students: strong students lose it as often as weak ones",
                )
            )
    changed = defaultdict(list)
    for student, before in data.before.items():  # autograded scores only: a hand grade is not a regrade
        for cell in data.cells:
            old, new = before.get(cell), data.recorded[cell].get(student)
            if old is not None and new is not None and old != new:
                changed[cell].append(f"{student} {_num(old)} -> {_num(new)}")
    for cell, lines in changed.items():
        if len(lines) >= max(2, REGRADE_MANY * len(data.students)):
            shown = "; ".join(lines[:5]) + ("; ..." if len(lines) > 5 else "")
            out.append(
                dict(
                    kind="changed_by_last_regrade",
                    cell=f"{cell[0]} {cell[1]}",
                    evidence=f"the last regrade changed this cell's score for {len(lines)} of "
                    f"{len(data.students)} students: {shown}",
                )
            )
    rank = ["nobody_passed", "one_message_for_most", "discrimination_at_or_below_zero", "changed_by_last_regrade"]
    return sorted(out, key=lambda w: rank.index(w["kind"]))


def _num(x) -> str:
    return "-" if x is None else f"{float(x):g}"


def similarity(data: ClassData, workers: int = 2) -> dict:
    """Similar pairs, cell by cell (report_similarity.py); cells are shared among `workers` processes."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from .report_similarity import MIN_CELL, MIN_PAIR, THRESHOLD, THRESHOLD_BASIS, cell_pairs

    tasks = [
        (key, answers, data.release_text.get((key[0], key[2]), []))
        for key, answers in sorted(data.answers.items(), key=lambda kv: -sum(map(len, kv[1].values())))
    ]
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=get_context("fork")) as pool:
            results = list(pool.map(cell_pairs, tasks))
    else:
        results = [cell_pairs(t) for t in tasks]
    by_pair, compared = defaultdict(list), {}
    for (name, gid, kind), found, counts in sorted(results):
        compared[f"{name} {gid}"] = counts
        for p in found:
            by_pair[(p["a"], p["b"])].append(dict(p, notebook=name, grade_id=gid, kind=kind))
    pairs = [
        dict(
            a=a,
            b=b,
            similarity=max(c["similarity"] for c in cells),
            cells=sorted(cells, key=lambda c: -c["similarity"]),
        )
        for (a, b), cells in by_pair.items()
        if sum(c["shared_chars"] for c in cells) >= MIN_PAIR
    ]
    pairs.sort(key=lambda p: (-p["similarity"], -len(p["cells"]), p["a"], p["b"]))
    return dict(
        threshold=THRESHOLD, min_cell=MIN_CELL, min_pair=MIN_PAIR, basis=THRESHOLD_BASIS, pairs=pairs, cells=compared
    )


def build(course: Course, workers: int = 2) -> tuple[dict, ClassData]:
    data = load(course)
    if not data.students:
        raise KitError(f"no graded students in {course.autograded('*').parent.parent}: run `collabkit grade` first")
    items = item_analysis(data)
    total = totals(data)
    notebooks = {
        name: dict(
            students=len(runs),
            seconds_median=_round(_median([s for s, _ in runs if s is not None])),
            seconds_max=_round(max((s for s, _ in runs if s is not None), default=None)),
            statuses=dict(sorted(Counter(st for _, st in runs).items())),
        )
        for name, runs in sorted(data.runs.items())
    }
    report = dict(
        assignment=course.assignment,
        students=len(data.students),
        unreadable_records=data.unreadable,
        max_total=sum(data.points[c] for c in data.cells),
        totals={s: _round(v) for s, v in sorted(total.items())},
        warnings=find_warnings(data, items),
        cells=items,
        notebooks=notebooks,
        similarity=similarity(data, workers),
    )
    return report, data


def _median(xs: list[float]) -> float | None:
    xs = sorted(xs)
    return None if not xs else (xs[len(xs) // 2] + xs[(len(xs) - 1) // 2]) / 2


def write_report(course: Course, workers: int = 2) -> tuple[Path, Path]:
    """Write exports/report.json and exports/report.html; return their paths."""
    from .report_page import page as render

    report, data = build(course, workers)
    out = course.exports
    out.mkdir(exist_ok=True)
    page = render(report, data.runs)
    for p in report["similarity"]["pairs"]:  # the marked cells live in the page; the figures stay plain
        p["cells"] = [{k: v for k, v in c.items() if not k.endswith("_html")} for c in p["cells"]]
    paths = out / "report.json", out / "report.html"
    for path, text in zip(paths, (json.dumps(report, indent=1) + "\n", page), strict=True):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths
