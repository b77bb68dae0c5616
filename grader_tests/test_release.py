"""The release is generated, current, and holds nothing instructor-only."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from harness import ASSIGNMENT, REPO, make_course

NOTEBOOKS = [
    "01_data.ipynb",
    "02_dot_product.ipynb",
    "03_interpretation.ipynb",
    "04_neural_cf.ipynb",
    "05_cold_start_and_ethics.ipynb",
]
INSTRUCTOR_ONLY = re.compile(
    r"BEGIN SOLUTION|END SOLUTION|BEGIN HIDDEN TESTS|END HIDDEN TESTS|"
    r"BEGIN MARK SCHEME|END MARK SCHEME|ck\.reference\(|reference\.json|"
    r"COLLABKIT_REFERENCE"
)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return make_course(tmp_path_factory.mktemp("release") / "course")


def test_source_and_release_hold_the_five_notebooks():
    """The release holds the notebooks and nothing else (never fastai's models/ from a run in place)."""
    source = sorted(p.name for p in (REPO / "source" / ASSIGNMENT).glob("*.ipynb"))
    assert source == NOTEBOOKS, f"source/{ASSIGNMENT} holds {source}"
    names = sorted(p.name for p in (REPO / "release" / ASSIGNMENT).iterdir())
    assert names == NOTEBOOKS, f"release/{ASSIGNMENT} holds {names}"


def test_committed_release_is_current(course):
    """release/ is generated: regenerating it from source/ must give the committed files exactly."""
    for name in NOTEBOOKS:
        fresh = (course / "release" / ASSIGNMENT / name).read_text()
        committed = (REPO / "release" / ASSIGNMENT / name).read_text()
        assert fresh == committed, f"release/{ASSIGNMENT}/{name} is stale: run `./kit release` and commit it"


def test_release_holds_nothing_instructor_only():
    reference = json.loads((REPO / "solutions" / "reference.json").read_text())
    numbers = [f"{v:.4f}" for v in reference.values() if isinstance(v, float)]
    for name in NOTEBOOKS:
        text = (REPO / "release" / ASSIGNMENT / name).read_text()
        assert not INSTRUCTOR_ONLY.findall(text), f"{name} leaks {set(INSTRUCTOR_ONLY.findall(text))}"
        assert not [n for n in numbers if n in text], f"{name} shows a reference value"
        nb = nbformat.read(REPO / "release" / ASSIGNMENT / name, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} has outputs"


def test_every_test_cell_has_a_visible_part_and_a_hidden_part():
    for name in NOTEBOOKS:
        source = nbformat.read(REPO / "source" / ASSIGNMENT / name, as_version=4)
        release = {
            c.metadata.nbgrader["grade_id"]: c
            for c in nbformat.read(REPO / "release" / ASSIGNMENT / name, as_version=4).cells
            if c.metadata.get("nbgrader", {}).get("grade_id")
        }
        for cell in source.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
                continue
            gid = meta["grade_id"]
            if "BEGIN HIDDEN TESTS" not in cell.source:
                continue  # e.g. a multiple-choice check has nothing worth hiding
            visible = release[gid].source.strip()
            assert visible.startswith('"""'), f"{name}:{gid} should open with a docstring saying what it checks"
            assert "assert" in visible, f"{name}:{gid} shows students no check at all"


# The two validate runs execute every notebook again; the default suite already proves the
# same with stock `nbgrader autograde` of the solution (full marks) and of the untouched
# release (zero everywhere) in test_solution.py, so they run with the slow tests.
@pytest.mark.slow
def test_validate_passes_on_source():
    run = subprocess.run(
        [sys.executable, "-m", "nbgrader", "validate", *[str(REPO / "source" / ASSIGNMENT / n) for n in NOTEBOOKS]],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert run.returncode == 0 and "VALIDATION FAILED" not in run.stdout, run.stdout[-4000:] + run.stderr[-2000:]


@pytest.mark.slow
def test_validate_invert_fails_every_test_on_release():
    """`validate --invert` passes only when every autograded test fails on the untouched release."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbgrader",
            "validate",
            "--invert",
            *[str(REPO / "release" / ASSIGNMENT / n) for n in NOTEBOOKS],
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert run.returncode == 0 and "VALIDATION FAILED" not in run.stdout, run.stdout[-4000:] + run.stderr[-2000:]
