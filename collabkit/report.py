"""`collabkit report`: after grading (and again after hand-grading), what the class found hard, which tests
misbehave, and which submissions look alike. Runs in the instructor's process; runs no student code.

Reads every student's autograded/<student>/<assignment>/grading.json (scores, statuses, times, the
regrade history), the executed notebooks beside it (failure messages, the answers), the release
(which cells are answers, the code everyone was given) and the gradebook's hand grades. Writes
exports/report.json (the figures) and exports/report.html (the same, one file: plots inline as
PNG, no script, no network).

- Item analysis, per graded cell: difficulty (mean score / points), the shares at full marks, zero
  and partial credit, statuses, discrimination (Pearson's r between the cell's score and the
  student's total without that cell: the corrected item-total correlation), and the most frequent
  failure messages, grouped with every number replaced by '#'.
- Warnings that point at a test: nobody passed; discrimination at or below 0; one message for most
  of the class; scores changed by the last regrade for many students.
- Similarity: report_similarity.py.
"""

from __future__ import annotations

import base64
import html
import io
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
            cell = (c.notebook, c.grade_id)
            if cell not in data.points:
                data.points[cell] = c.max_score or 0.0
                data.cells.append(cell)
            data.scores[cell][student] = None if c.score is None else float(c.score)
            data.recorded[cell][student] = data.scores[cell][student]
            data.statuses[cell][student] = str(c.status)
        if record.previous:
            data.before[student] = {
                tuple(k.split("/", 1)): v for k, v in (record.previous[0].get("cells") or {}).items()
            }
        for name, nbr in record.notebooks.items():
            data.runs[name].append((nbr.seconds, str(nbr.status)))
        for name in record.notebooks:
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


def plots(report: dict, data: ClassData) -> dict[str, str]:
    """The report's figures as base64 PNG: score distribution, difficulty x discrimination, time and statuses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}

    def keep(name, fig):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        figs[name] = base64.b64encode(buf.getvalue()).decode()

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(list(report["totals"].values()), bins=min(30, max(5, len(report["totals"]) // 4)), color="#4477aa")
    ax.set(xlabel=f"total score (of {report['max_total']:g})", ylabel="students", title="Score distribution")
    keep("distribution", fig)

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for it in report["cells"]:
        if it["difficulty"] is None:
            continue
        r = it["discrimination"] if it["discrimination"] is not None else 0.0
        colour = "#cc3311" if (it["full"] == 0 or r <= 0) else "#4477aa"
        ax.scatter(it["difficulty"], r, color=colour, s=25)
        ax.annotate(it["grade_id"], (it["difficulty"], r), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(
        xlabel="difficulty (mean score / points; 1 = everyone full marks)",
        ylabel="discrimination (r with the rest of the total)",
        title="Every graded cell (red: nobody passed, or r <= 0; no variance plotted at r = 0)",
        xlim=(-0.05, 1.1),
        ylim=(-1.05, 1.05),
    )
    keep("difficulty_discrimination", fig)

    names = sorted(data.runs)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.4), gridspec_kw={"wspace": 0.55})
    a1.boxplot([[s for s, _ in data.runs[n] if s is not None] or [0] for n in names], orientation="horizontal")
    a1.set_yticks(range(1, len(names) + 1), names, fontsize=7)
    a1.set(xlabel="seconds per student", title="Grading time per notebook")
    statuses = sorted({st for n in names for _, st in data.runs[n]})
    left = [0] * len(names)
    for st in statuses:
        counts = [sum(1 for _, x in data.runs[n] if x == st) for n in names]
        a2.barh(names, counts, left=left, label=st)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    a2.set_yticks(range(len(names)), names, fontsize=7)
    a2.set(xlabel="students", title="Notebook statuses")
    a2.legend(fontsize=7)
    keep("notebooks", fig)
    return figs


def render_html(report: dict, figs: dict[str, str]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>collabkit report: {e(report['assignment'])}</title><style>",
        "body{font-family:sans-serif;margin:1.5em;max-width:1300px}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}.warn{background:#fff3e0;padding:.4em;"
        "border-left:4px solid #e65100;margin:.3em 0}.pair td{vertical-align:top;width:50%}"
        "pre{white-space:pre-wrap;font-size:11px;margin:0}mark{background:#ffd54f}img{max-width:100%}",
        "</style></head><body>",
        f"<h1>After the grades: {e(report['assignment'])}, {report['students']} students</h1>",
        f"<h2 id='warnings'>Warnings that point at the test ({len(report['warnings'])})</h2>",
    ]
    for w in report["warnings"]:
        parts.append(
            f"<div class='warn'><b>{e(w['cell'])}</b>: {e(w['kind'].replace('_', ' '))}. {e(w['evidence'])}</div>"
        )
    if not report["warnings"]:
        parts.append("<p>None.</p>")
    for bad in report["unreadable_records"]:
        parts.append(f"<div class='warn'>unreadable grading record, left out: {e(bad)}</div>")
    parts.append("<h2>The class</h2>")
    for name, alt in (
        ("distribution", "score distribution"),
        ("difficulty_discrimination", "difficulty by discrimination"),
        ("notebooks", "per-notebook time and statuses"),
    ):
        parts.append(f"<p><img class='plot' alt='{alt}' src='data:image/png;base64,{figs[name]}'></p>")
    parts.append(
        "<h2>Item analysis</h2><table><tr><th>notebook</th><th>cell</th><th>kind</th><th>points</th><th>graded</th>"
        "<th>mean</th><th>difficulty</th><th>full</th><th>zero</th><th>partial</th><th>discrimination</th>"
        "<th>statuses</th><th>most frequent failure messages (students)</th></tr>"
    )
    for it in report["cells"]:
        msgs = "<br>".join(f"{e(m['example'])} ({m['students']})" for m in it["messages"])
        cols = [it["notebook"], it["grade_id"], it["kind"], f"{it['points']:g}", f"{it['graded']}"]
        cols += [_fmt(it[k]) for k in ("mean", "difficulty", "full", "zero", "partial", "discrimination")]
        cols.append(", ".join(f"{k} {v}" for k, v in it["statuses"].items()))
        parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cols) + f"<td>{msgs}</td></tr>")
    parts.append("</table>")
    parts.append(
        "<h2>Time per notebook</h2><table><tr><th>notebook</th><th>students</th><th>median s</th><th>max s</th>"
        "<th>statuses</th></tr>"
    )
    for name, nb in report["notebooks"].items():
        statuses = ", ".join(f"{k} {v}" for k, v in nb["statuses"].items())
        parts.append(
            f"<tr><td>{e(name)}</td><td>{nb['students']}</td><td>{_fmt(nb['seconds_median'])}</td>"
            f"<td>{_fmt(nb['seconds_max'])}</td><td>{e(statuses)}</td></tr>"
        )
    parts.append("</table>")
    sim = report["similarity"]
    parts.append(
        f"<h2 id='similarity'>Similar submissions ({len(sim['pairs'])} pairs)</h2><p>Listed when, after removing the "
        f"release's code and what most of the class wrote alike, the shared part covers at least {sim['threshold']:g} "
        f"of one answer ({e(sim['basis'])}). Shared parts are marked. This is evidence for a person to read, never a "
        "verdict: a short answer, a hint given in class or a common idiom can match by itself.</p>"
    )
    for p in sim["pairs"]:
        parts.append(f"<h3>{e(p['a'])} and {e(p['b'])}: {p['similarity']:.2f}, {len(p['cells'])} cell(s)</h3>")
        for c in p["cells"]:
            parts.append(
                f"<p>{e(c['notebook'])} <b>{e(c['grade_id'])}</b> ({c['kind']}): {c['similarity']:.2f}, "
                f"{c['shared_chars']} shared characters of filtered {'code' if c['kind'] == 'code' else 'text'}</p>"
                f"<table class='pair'><tr><th>{e(p['a'])}</th><th>{e(p['b'])}</th></tr><tr>"
                f"<td><pre>{c['a_html']}</pre></td><td><pre>{c['b_html']}</pre></td></tr></table>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(x) -> str:
    return "" if x is None else f"{x:.2f}"


def write_report(course: Course, workers: int = 2) -> tuple[Path, Path]:
    """Write exports/report.json and exports/report.html; return their paths."""
    report, data = build(course, workers)
    figs = plots(report, data)
    out = course.exports
    out.mkdir(exist_ok=True)
    page = render_html(report, figs)
    for p in report["similarity"]["pairs"]:  # the marked cells live in the page; the figures stay plain
        p["cells"] = [{k: v for k, v in c.items() if not k.endswith("_html")} for c in p["cells"]]
    paths = out / "report.json", out / "report.html"
    for path, text in zip(paths, (json.dumps(report, indent=1) + "\n", page), strict=True):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths
