"""Every figure a notebook states agrees with the run it comes from (grader_tests/prose_claims.py).

The default tests read the committed reference run (solutions/reference.json and the executed
solutions) and the committed benchmark (bench/results.json). The slow test executes the source
notebooks again (the release with the solutions filled in: their prose is the release's) and
checks the same claims against that fresh run.
"""

from __future__ import annotations

import json
import re
import shutil

import nbformat
import pytest
from harness import ASSIGNMENT, REPO
from prose_claims import CLAIMS, MSE_LIKE, NOT_FIGURES, RUN_TIMES, TIME_SHARE, Claim, Sources
from test_release import NOTEBOOKS


def prose(path) -> str:
    """What students and graders read: markdown cells, and the visible part of code cells (the
    hidden tests' comments are instructors' notes on measurements, not prose)."""
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        src = cell.source
        if cell.cell_type == "code":
            src = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", src, flags=re.S)
            src = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "", src, flags=re.S)
        parts.append(src)
    return re.sub(r"\s+", " ", "\n\n".join(parts))  # one space for any run of blanks: a claim ignores line breaks


def outputs(path) -> str:
    nb = nbformat.read(path, as_version=4)
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") or out.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def committed_sources() -> Sources:
    solutions = REPO / "solutions"
    return Sources(
        ref=json.loads((solutions / "reference.json").read_text()),
        bench=json.loads((REPO / "bench" / "results.json").read_text()),
        out={nb: outputs(solutions / ASSIGNMENT / nb) for nb in NOTEBOOKS},
    )


def texts() -> dict[str, str]:
    return {nb: prose(REPO / "source" / ASSIGNMENT / nb) for nb in NOTEBOOKS}


def problem(claim: Claim, text: str, sources: Sources, extra_tol: float = 0.0) -> str | None:
    """None if the claim holds, else a sentence saying what the prose states and what the run says."""
    m = re.search(claim.pattern, text)
    if not m:
        return f"{claim}: no such sentence in the notebook (reworded? update prose_claims.py)"
    if claim.check is not None:
        why = claim.check(sources)
        return None if why is None else f"{claim}: the prose says {m.group(0)!r}, but {why}"
    stated = m.group(1).replace(",", "").rstrip(".")
    want = float(claim.value(sources))
    decimals = len(stated.split(".")[1]) if "." in stated and "e" not in stated else 0
    if "e" in stated:
        rounding = 0.0
    else:
        rounding = 0.5 * 10**-decimals
    tol = claim.tol + extra_tol + (TIME_SHARE * want if claim.time else 0.0)
    if abs(float(stated) - want) > rounding + tol + 1e-9:
        return f"{claim}: the prose states {stated}, the run gives {want:.4g} (allowed: ±{rounding + tol:.4g})"
    return None


@pytest.fixture(scope="module")
def sources():
    return committed_sources()


@pytest.mark.parametrize("claim", CLAIMS, ids=str)
def test_each_figure_in_the_prose_matches_the_reference_run(claim, sources):
    why = problem(claim, texts()[claim.notebook], sources)
    assert why is None, why


def _uncovered(nb: str, text: str) -> list[str]:
    spans = [m.span() for c in CLAIMS if c.notebook == nb for m in re.finditer(c.pattern, text)]
    spans += [m.span() for p in NOT_FIGURES for m in re.finditer(p, text)]
    found = []
    for rx in (MSE_LIKE, RUN_TIMES):
        for m in rx.finditer(text):
            if not any(a <= m.start() and m.end() <= b for a, b in spans):
                found.append(text[max(0, m.start() - 50) : m.end() + 20].replace("\n", " "))
    return found


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_every_mse_and_run_time_in_the_prose_has_a_source(nb):
    """An MSE-like number or a run time with no claim is one nobody checks: it drifts."""
    missing = _uncovered(nb, texts()[nb])
    assert not missing, "figures in the prose with no entry in prose_claims.py:\n" + "\n".join(missing)


def test_a_figure_that_drifts_from_its_run_fails(sources):
    """The check can fail: a reference run that measured something else, and a reworded sentence."""
    claim = next(c for c in CLAIMS if "gives a validation MSE" in c.pattern)
    moved = Sources(dict(sources.ref, lecture_mse=sources.ref["lecture_mse"] + 0.003), sources.bench, sources.out)
    assert problem(claim, texts()[claim.notebook], moved) is not None
    assert problem(claim, "the lecture's recipe gives a validation MSE of about 0.9", sources) is not None
    fact = next(c for c in CLAIMS if "falls from `wd=0`" in c.pattern)
    flat = dict(sources.ref, wd_results={"0.0": 0.85, "0.1": 0.85, "0.5": 0.85, "1.0": 0.85})
    assert problem(fact, texts()[fact.notebook], Sources(flat, sources.bench, sources.out)) is not None


def test_an_unlisted_figure_is_found():
    assert _uncovered("02_dot_product.ipynb", "The model reaches 0.8123 in about 9 s.") == [
        "The model reaches 0.8123 in about 9 s.",
        "The model reaches 0.8123 in about 9 s.",
    ]


@pytest.mark.slow  # executes all five notebooks again (about 2 minutes)
def test_a_fresh_run_of_the_solutions_states_the_same_numbers(tmp_path):
    """The reference executed anew, into a scratch course: every claim holds against that run too
    (the neural model within the spread measured between CPUs; run times come from the benchmark)."""
    from collabkit.course import Course
    from collabkit.reference import build_reference

    for part in ("source", "nbgrader_config.py"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / part)
    course = Course.open(tmp_path)
    build_reference(course)
    fresh = Sources(
        ref=json.loads(course.reference.read_text()),
        bench=json.loads((REPO / "bench" / "results.json").read_text()),
        out={nb: outputs(course.solutions / nb) for nb in NOTEBOOKS},
    )
    wrong = [why for c in CLAIMS if (why := problem(c, texts()[c.notebook], fresh)) is not None]
    assert not wrong, "\n".join(wrong)
