"""A graded class for `collabkit report`, written in the layout real grading writes, from the fixture tables.

Every fixture (grader_tests/fixtures: correct, partial and broken students) goes to exactly one
student, at most one per notebook: planted mistakes to the weaker students, other correct styles to
the stronger ones; the rest of their answers are the instructor's. Plus the untouched solution, and
student `source_student`, whose answers are three fixtures' other correct styles (given to nobody
else) and own words, with planted copies of it: variables renamed, independent statements swapped,
comments edited, words changed (`plant_copy`, `disguise_text`). Every student also fails a planted
broken test (`test_planted_broken`) that nobody can pass, and a third of the class had their
`test_wd_results` score changed by the last regrade. Scores come from the fixture tables; each failed
test cell carries an error output whose numbers vary by student, as real failures do.

Nothing here runs student code: grading.json, the autograded notebooks and hand grades in the
gradebook are written as `collabkit grade` and formgrader write them.
"""

from __future__ import annotations

import ast
import json
import random
import shutil
import warnings
from pathlib import Path

from harness import FIXTURES, REPO, expected_losses, fixture_module

from collabkit import ASSIGNMENT
from collabkit.course import nbgrader_tools
from collabkit.grading.records import CellResult, NotebookResult, Status, StudentRecord
from collabkit.samples import grade_id, is_answer, solutions

STEMS = sorted(p.stem for p in FIXTURES.glob("[0-9][0-9]_*.py"))
SOURCE_STYLES = {  # the copied student's own answers: other correct styles, given to no other student
    "02_dot_product": "alt_other_correct_styles",
    "03_interpretation": "alt_loops",
    "05_cold_start_and_ethics": "alt_recommend_from_tables",
}
SOURCE_TEXT = {  # the copied student's own words for one hand-graded answer
    ("02_dot_product.ipynb", "explain_wd"): (
        "Weight decay adds the squared size of every factor to the loss, so the optimiser keeps the "
        "embeddings small unless a rating really needs them. Without it the model memorises the training "
        "ratings: its training loss keeps falling while the validation loss turns up after the second epoch."
    )
}
OTHER_TEXTS = [  # independently written answers to the same question
    "With wd the weights are pulled towards zero at every step. That stops overfitting, which is what we saw "
    "when the validation error rose while the train error dropped.",
    "Regularisation: a penalty proportional to the parameters' magnitude. Smaller embeddings generalise better "
    "to unseen user and movie pairs, and the gap between train and valid loss shrinks.",
    "It makes the model simpler by penalising large weights; in our run wd=0.1 gave a lower validation MSE than "
    "wd=0 because the model could not fit noise in the ratings as easily.",
]
BROKEN = "test_planted_broken"
REGRADED = "test_wd_results"  # its scores changed for a third of the class in the last regrade
SOURCE = "source_student"
COPIES = ["copy_renamed", "copy_reordered", "copy_all_three"]


def plant_copy(code: str, rename: bool, reorder: bool, comments: bool) -> str:
    """A copy of `code` as a copier disguises it: local names renamed, adjacent independent statements swapped,
    the comments replaced by others."""
    tree = ast.parse(code)
    if rename:
        top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        stored |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in n.args}
        new = {name: f"my_{name}_x" for name in stored - top - {"self"}}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in new:
                node.id = new[node.id]
            elif isinstance(node, ast.arg) and node.arg in new:
                node.arg = new[node.arg]
    if reorder:
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and _swap_first_independent(body):
                break
    out = ast.unparse(tree)
    if comments:
        lines = out.splitlines()
        out = "\n".join(
            line + ("  # checked this twice" if i % 3 == 0 and line.strip() else "") for i, line in enumerate(lines)
        )
        out = "# my own solution, written from scratch\n" + out
    return out + "\n"


def _names(stmt) -> tuple[set, set]:
    stored = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    loaded = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return stored, loaded


def _swap_first_independent(body: list) -> bool:
    for i in range(len(body) - 1):
        a, b = body[i], body[i + 1]
        if not all(isinstance(s, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr)) for s in (a, b)):
            continue
        (sa, la), (sb, lb) = _names(a), _names(b)
        if not (sa & lb or sb & la or sa & sb):
            body[i], body[i + 1] = b, a
            return True
    return False


def disguise_text(text: str) -> str:
    """A copied free-text answer with a few words swapped for synonyms and the punctuation changed."""
    for old, new in (("adds", "puts"), ("really", "truly"), ("keeps falling", "keeps going down"), (":", ";")):
        text = text.replace(old, new)
    return text.replace(". ", "! ", 1)


def build_class(course: Path, seed: int = 42) -> dict:
    """Write the class into `course` (a copy of this checkout's config, source and release). Returns what was
    planted: {"plans": {student: {stem: (fixture, replaced cells)}}, "copied_pairs",
    "hand": {(student, notebook, grade_id): (score, points)}}."""
    rng = random.Random(seed)
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    for step in ("source", "release"):
        shutil.copytree(REPO / step / ASSIGNMENT, course / step / ASSIGNMENT)
    release = {s: json.loads((course / "release" / ASSIGNMENT / f"{s}.ipynb").read_text()) for s in STEMS}
    answers = {s: solutions(f"{s}.ipynb", course) for s in STEMS}
    # Each fixture goes to exactly one student; mistakes to the weaker end of the class, other correct styles
    # to the stronger end, so a cell's score goes with the rest of the total, as in a real class.
    fixtures = {s: [n for n in fixture_module(s).FIXTURES if SOURCE_STYLES.get(s) != n] for s in STEMS}
    size = max(len(f) for f in fixtures.values())
    plans = [{s: (None, {}) for s in STEMS} for _ in range(size)]
    for stem, names in fixtures.items():
        losses = expected_losses(stem)
        mistakes = [n for n in names if n in losses]
        styles = [n for n in names if n not in losses]
        rng.shuffle(mistakes)
        for k, name in enumerate(styles):
            plans[k][stem] = (name, {})
        for k, name in enumerate(mistakes):
            plans[size - 1 - k][stem] = (name, {})
    students = {f"student_{k:02d}": plan for k, plan in enumerate(plans)}
    students["solution"] = {s: (None, {}) for s in STEMS}
    source = {s: (SOURCE_STYLES.get(s), {}) for s in STEMS}
    students[SOURCE] = source
    own = {stem: fixture_module(stem).FIXTURES[name]["cells"] for stem, name in SOURCE_STYLES.items()}
    for copy, how in zip(COPIES, [(True, False, False), (False, True, True), (True, True, True)], strict=True):
        cells = {
            stem: {gid: plant_copy(code, *how) if _is_code(code) else code for gid, code in by_gid.items()}
            for stem, by_gid in own.items()
        }
        students[copy] = {s: (SOURCE_STYLES.get(s), cells.get(s, {})) for s in STEMS}
    hand = {}
    for i, (student, plan) in enumerate(sorted(students.items())):
        text = {}
        if student == SOURCE:
            text = dict(SOURCE_TEXT)
        elif student in COPIES:
            text = {k: disguise_text(v) for k, v in SOURCE_TEXT.items()}
        elif i % 9 == 0 and i // 9 < len(OTHER_TEXTS):  # each independent answer written by one student
            text = {next(iter(SOURCE_TEXT)): OTHER_TEXTS[i // 9]}
        hand.update(_write_student(course, student, plan, release, answers, text, rng))
    pairs = {
        tuple(sorted(p)) for p in [(SOURCE, c) for c in COPIES] + [(a, b) for a in COPIES for b in COPIES if a < b]
    }
    return {"plans": students, "copied_pairs": pairs, "hand": hand}


def _is_code(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except SyntaxError:
        return False


def _message(gid: str, rng: random.Random) -> str:
    if gid == BROKEN:
        return f"AssertionError: validation MSE {rng.uniform(0.8, 0.9):.4f} is not below 0.1"
    return f"AssertionError: {gid} failed: expected {rng.uniform(0, 5):.3f}, got {rng.uniform(0, 5):.3f}"


def _write_student(course, student, plan, release, answers, text, rng) -> dict:
    out = course / "autograded" / student / ASSIGNMENT
    out.mkdir(parents=True, exist_ok=True)
    record = StudentRecord(student, graded_at="2026-12-07T12:00:00+00:00", seconds=0.0)
    hand = {}
    weak = sum(bool(f) and f in expected_losses(s) for s, (f, _) in plan.items()) >= 3
    for stem, (fixture, replaced) in plan.items():
        name = f"{stem}.ipynb"
        cells = dict(answers[stem])
        if fixture:
            cells.update(fixture_module(stem).FIXTURES[fixture]["cells"])
        cells.update(replaced)
        cells.update({gid: t for (nb, gid), t in text.items() if nb == name})
        losses = expected_losses(stem).get(fixture, {}) if fixture else {}
        nb = json.loads(json.dumps(release[stem]))
        graded = []
        for cell in nb["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            gid = grade_id(cell)
            if is_answer(cell) and gid in cells:
                cell["source"] = cells[gid]
            if meta.get("grade"):
                graded.append((cell, gid, float(meta.get("points", 0)), bool(meta.get("solution"))))
        if stem == "02_dot_product":  # the planted broken test, after the notebook's first test
            broken = {
                "cell_type": "code",
                "execution_count": None,
                "id": "planted-broken",
                "metadata": {"nbgrader": {"grade": True, "grade_id": BROKEN, "locked": True, "points": 1}},
                "outputs": [],
                "source": "assert ck.valid_mse(learn) < 0.1",
            }
            nb["cells"].insert(nb["cells"].index(graded[0][0]) + 1, broken)
            graded.insert(1, (broken, BROKEN, 1.0, False))
        for cell, gid, points, manual in graded:
            if manual:
                hand[(student, name, gid)] = (_hand_score(cells.get(gid, ""), points, weak), points)
                record.cells.append(CellResult(stem, gid, points, None, "needs_manual_grade"))
                continue
            score = 0.0 if gid == BROKEN else losses.get(gid, points)
            status = "passed" if score >= points else ("failed" if score == 0 else "partial")
            if status != "passed":
                cell["outputs"] = [
                    {"output_type": "error", "ename": "AssertionError", "evalue": _message(gid, rng)[16:],
                     "traceback": []}
                ]  # fmt: skip
            record.cells.append(CellResult(stem, gid, points, score, status))
        (out / name).write_text(json.dumps(nb))
        seconds = round(rng.uniform(5, 60), 1)
        # grading.json names notebooks by their stem
        record.notebooks[stem] = NotebookResult(status=Status.NEEDS_MANUAL_GRADE, run_status="ok", seconds=seconds)
        record.seconds += seconds
    record.status = Status.NEEDS_MANUAL_GRADE
    before = {f"{c.notebook}/{c.grade_id}": c.score for c in record.cells}
    if sum(map(ord, student)) % 3 == 0:  # the regrade that fixed REGRADED changed a third of the class
        before[f"02_dot_product/{REGRADED}"] = 0.0 if before[f"02_dot_product/{REGRADED}"] else 1.0
    record.previous = [{"graded_at": "2026-12-06T12:00:00+00:00", "score": None, "status": "graded", "cells": before}]
    record.score = sum(c.score or 0 for c in record.cells)
    record.max_score = sum(c.max_score or 0 for c in record.cells)
    record.write(out / "grading.json")
    return hand


def _hand_score(answer: str, points: float, weak: bool) -> float:
    """What a grader gave: nothing for an unanswered cell, half to a student with mistakes in three notebooks or
    more (or a short answer), full otherwise."""
    if not answer.strip() or "YOUR ANSWER HERE" in answer:
        return 0.0
    return points / 2 if weak or len(answer) < 80 else points


def write_gradebook(course: Path, hand: dict) -> None:
    """The hand grades, entered in the gradebook as formgrader enters them."""
    from nbgrader.api import Gradebook

    with (
        nbgrader_tools(),
        warnings.catch_warnings(),
        Gradebook(f"sqlite:///{course / 'gradebook.db'}", "collab-kit") as gb,
    ):
        warnings.simplefilter("ignore")  # nbgrader's own add_submission trips SQLAlchemy's autoflush warnings
        gb.update_or_create_assignment(ASSIGNMENT)
        cells = {(nb, gid): points for (_, nb, gid), (_, points) in hand.items()}
        for (nb, gid), points in cells.items():
            gb.update_or_create_notebook(nb[: -len(".ipynb")], ASSIGNMENT)
            gb.update_or_create_grade_cell(
                gid, nb[: -len(".ipynb")], ASSIGNMENT, max_score=points, cell_type="markdown"
            )
        for student in sorted({s for s, _, _ in hand}):
            gb.update_or_create_student(student)
            gb.add_submission(ASSIGNMENT, student)
        for (student, nb, gid), (score, _) in hand.items():
            grade = gb.find_grade(gid, nb[: -len(".ipynb")], ASSIGNMENT, student)
            grade.manual_score = score
        gb.db.commit()
