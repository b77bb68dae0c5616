"""Warm kernels grade the real assignment exactly as cold ones do.

The solution of all five notebooks is graded twice through `collabkit grade`: with warm kernels
(the default: forked from a fork server that imported the stack) and with `--cold-kernels`
(executed, importing it themselves). Every graded cell gets the same score and status, every cell
shows the same kinds of output (the plots are still images), and only the warm run's kernels say
they were forked.
"""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from bad_submissions import ASSIGNMENT
from conftest import read_csv
from harness import REPO

from collabkit.course import tool_env
from collabkit.samples import make_course, notebook_names, place, submission

pytestmark = pytest.mark.slow
NOTEBOOKS = notebook_names(REPO)


def output_kinds(nb) -> list[tuple]:
    """For each code cell: its grade id and the kinds of output it shows (stream name or mime types)."""
    kinds = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            shown = sorted(
                {o.get("name") or ",".join(sorted(o.get("data", {}))) or o.output_type for o in cell.outputs}
            )
            kinds.append((cell.metadata.get("nbgrader", {}).get("grade_id"), shown))
    return kinds


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    graded = {}
    for mode, flags in (("warm", []), ("cold", ["--cold-kernels"])):
        course = make_course(
            tmp_path_factory.mktemp(mode) / "course", REPO, reference=REPO / "solutions" / "reference.json"
        )
        place(course, "solution", {n: submission(course, n) for n in NOTEBOOKS})
        run = subprocess.run(
            [sys.executable, "-m", "collabkit", "grade", ASSIGNMENT, "--workers", "1", *flags],
            cwd=course,
            capture_output=True,
            text=True,
            env=tool_env(),
        )
        assert run.returncode == 0, run.stderr[-3000:]
        graded[mode] = course
    return graded


def test_warm_and_cold_kernels_give_every_cell_the_same_score(both):
    cells = {m: read_csv(c / "exports" / "grades_by_cell.csv") for m, c in both.items()}
    assert cells["warm"] == cells["cold"]
    assert len(cells["warm"]) > 30 and all(
        r["status"] in ("passed", "needs_manual_grade", "no_points") for r in cells["warm"]
    ), cells["warm"]


def test_warm_and_cold_kernels_show_the_same_kinds_of_output(both):
    images = 0
    for name in NOTEBOOKS:
        stem = name.removesuffix(".ipynb")
        warm, cold = (
            nbformat.read(both[m] / "autograded" / "solution" / ASSIGNMENT / name, as_version=4)
            for m in ("warm", "cold")
        )
        assert output_kinds(warm) == output_kinds(cold), stem
        images += sum("image/png" in ",".join(k) for _, k in output_kinds(warm))
    assert images >= 3  # 03's plots are images in both (fastai's tables are HTML in both)


def test_only_the_warm_runs_kernels_were_forked(both):
    for mode, course in both.items():
        record = json.loads((course / "autograded" / "solution" / ASSIGNMENT / "grading.json").read_text())
        kernels = {nb["sandbox"]["kernel"] for nb in record["notebooks"].values()}
        assert kernels == {mode}, (mode, kernels)
