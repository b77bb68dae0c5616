"""Bench, the report's part: `collabkit report` on a graded class of 1,000 students, timed.

No grading runs: the class is written in the layout `collabkit grade` writes (grading.json and the
executed notebooks per student, from this course's release and solutions). Every student's every
answer is distinct text, so nothing is fingerprinted once for many: each code answer is the solution
(or the released stub, for weaker students) plus a few lines of the student's own, random
expressions; each written answer is the student's own words. Failed tests carry error outputs whose
numbers vary. Ten students are planted copies of ten others (names renamed, comments added), so the
figure also says whether they were found.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import time
from pathlib import Path

from . import ASSIGNMENT
from .course import Course
from .grading.records import CellResult, NotebookResult, Status, StudentRecord
from .samples import grade_id, is_answer, solutions

WORDS = (
    "model factor bias user movie rating embedding weight decay loss valid train epoch overfit small large "
    "penalty learn rate score predict error mean square latent dimension similar cosine popular cold start "
    "fairness privacy data split seed batch gradient step layer network dot product sigmoid range clip "
    "because therefore however while since although which that this those these where when then so"
).split()
OPS = ["+", "-", "*", "/", "//", "%"]
CALLS = ["len", "abs", "round", "max", "min", "sum", "int", "float"]


def _expr(rng: random.Random, depth: int = 0) -> str:
    if depth > 2 or rng.random() < 0.3:
        return rng.choice([f"v{rng.randrange(9)}", str(rng.randrange(100)), f"w[{rng.randrange(5)}]"])
    if rng.random() < 0.4:
        return f"{rng.choice(CALLS)}({_expr(rng, depth + 1)})"
    return f"({_expr(rng, depth + 1)} {rng.choice(OPS)} {_expr(rng, depth + 1)})"


def _own_lines(rng: random.Random) -> str:
    """A few lines only this student wrote: checks and scratch values, random in shape."""
    lines = [f"v{i} = {_expr(rng)}" for i in range(rng.randint(2, 4))]
    if rng.random() < 0.5:
        lines.append(f"if {_expr(rng)} > {_expr(rng)}:\n    print({_expr(rng)})")
    return "\nw = [1, 2, 3, 4, 5]\n" + "\n".join(lines) + "\n"


def _disguise(code: str) -> str:
    """A planted copy: the student's own names renamed, a comment on every other line."""
    code = re.sub(r"\bv(\d)\b", r"tmp_\1", code)
    return "\n".join(line + ("  # ok" if i % 2 else "") for i, line in enumerate(code.splitlines())) + "\n"


def write_class(course: Course, where: Path, n: int, seed: int = 42, copies: int = 10) -> dict:
    """A course at `where` with the release of `course` and `n` graded students; returns the planted pairs."""
    rng = random.Random(seed)
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(course.root / "nbgrader_config.py", where / "nbgrader_config.py")
    for step in (course.source, course.release):
        shutil.copytree(step, where / step.relative_to(course.root), dirs_exist_ok=True)
    names = course.notebooks()
    release = {nb: json.loads((course.release / nb).read_text()) for nb in names}
    answers = {nb: solutions(nb, course.root) for nb in names}
    students = [f"s{k:04d}" for k in range(n)]
    planted = {students[2 * i + 1]: students[2 * i] for i in range(min(copies, n // 2))}
    own = {}
    for student in students:
        ability = rng.random()
        record = StudentRecord(student, graded_at="2026-12-07T12:00:00+00:00")
        folder = where / "autograded" / student / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            nb = json.loads(json.dumps(release[name]))
            for cell in nb["cells"]:
                gid, meta = grade_id(cell), cell.get("metadata", {}).get("nbgrader", {})
                if is_answer(cell) and gid in answers[name]:
                    if student in planted:
                        text = own[(planted[student], name, gid)]
                        text = _disguise(text) if cell["cell_type"] == "code" else text.replace(" the ", " a ")
                    elif cell["cell_type"] == "code":
                        base = answers[name][gid] if rng.random() < 0.5 + ability / 2 else "".join(cell["source"])
                        text = base + _own_lines(rng)
                    else:
                        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 60)))
                    own[(student, name, gid)] = text
                    cell["source"] = text
                if meta.get("grade"):
                    points = float(meta.get("points", 0))
                    if meta.get("solution"):
                        record.cells.append(CellResult(name[:-6], gid, points, None, "needs_manual_grade"))
                        continue
                    passed = rng.random() < 0.4 + 0.6 * ability
                    score = points if passed else 0.0
                    if not passed:
                        cell["outputs"] = [
                            {"output_type": "error", "ename": "AssertionError", "traceback": [],
                             "evalue": f"expected {rng.uniform(0, 5):.3f}, got {rng.uniform(0, 5):.3f}"}
                        ]  # fmt: skip
                    status = "passed" if passed else "failed"
                    record.cells.append(CellResult(name[:-6], gid, points, score, status))
            (folder / name).write_text(json.dumps(nb))
            record.notebooks[name[:-6]] = NotebookResult(  # grading.json names notebooks by their stem
                status=Status.NEEDS_MANUAL_GRADE, run_status="ok", seconds=round(rng.uniform(5, 60), 1)
            )
        record.status = Status.NEEDS_MANUAL_GRADE
        record.score = sum(c.score or 0 for c in record.cells)
        record.write(folder / "grading.json")
    return {tuple(sorted(p)) for p in planted.items()}


def _cpu() -> float:
    """User + system seconds of this process and its reaped children (the report's worker processes)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def time_report(course: Course, n: int = 1000, workers: int = 2) -> dict:
    """Write a class of `n` students and time `collabkit report` on it (the class's writing is not timed)."""
    import tempfile

    from .report import write_report

    with tempfile.TemporaryDirectory(prefix="collabkit-bench-report-") as tmp:
        where = Path(tmp) / "course"
        t0 = time.perf_counter()
        planted = write_class(course, where, n)
        written = time.perf_counter() - t0
        t0, cpu0 = time.perf_counter(), _cpu()
        json_path, _ = write_report(Course.open(where, course.assignment), workers=workers)
        wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
        report = json.loads(json_path.read_text())
    found = {(p["a"], p["b"]) for p in report["similarity"]["pairs"]}
    compared = report["similarity"]["cells"].values()
    result = dict(
        students=n,
        workers=workers,
        wall_s=round(wall, 1),
        cpu_s=round(cpu, 1),
        loadavg_after=[round(x, 2) for x in os.getloadavg()],
        class_written_s=round(written, 1),
        answer_cells=len(report["similarity"]["cells"]),
        candidate_pairs=sum(c["candidates"] for c in compared),
        all_pairs=sum(c["compared"] * (c["compared"] - 1) // 2 for c in compared),
        planted_pairs=len(planted),
        planted_found=len(planted & found),
        other_pairs_listed=len(found - planted),
    )
    print(
        f"  collabkit report, {n} students, {workers} workers: {result['wall_s']} s, {result['cpu_s']} s of CPU "
        f"({result['candidate_pairs']} candidate pairs compared of {result['all_pairs']}; "
        f"planted copies found {result['planted_found']}/{result['planted_pairs']}, "
        f"other pairs listed {result['other_pairs_listed']})",
        flush=True,
    )
    return result
