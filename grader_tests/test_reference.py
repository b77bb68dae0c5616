"""solutions/ is the executed instructor solution, and it is reproducible.

nbval re-executes every notebook under solutions/ in a fresh kernel and compares each
cell's outputs with the stored ones (metrics, lists, shapes), after masking only what
legitimately varies (solutions/nbval_sanitize.cfg). A difference means the reference is not
deterministic, or solutions/ is stale.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from harness import ASSIGNMENT, REPO
from test_release import NOTEBOOKS


def test_solutions_hold_every_executed_notebook_and_the_reference():
    assert sorted(p.name for p in (REPO / "solutions" / ASSIGNMENT).glob("*.ipynb")) == NOTEBOOKS
    reference = json.loads((REPO / "solutions" / "reference.json").read_text())
    for key in ("lecture_mse", "fast_mse", "tuned_mse", "neural_mse", "wd_results"):
        assert key in reference, f"reference.json lacks {key}: run `./kit reference`"
    assert reference["tuned_mse"] < reference["lecture_mse"], "the tuned reference must beat the lecture recipe"


def test_executed_solutions_reproduce_under_nbval():
    env = dict(os.environ, COLLABKIT_REFERENCE=str(REPO / "solutions" / "reference.json"),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                          "--nbval-current-env", "--nbval-sanitize-with", str(REPO / "solutions" / "nbval_sanitize.cfg"),
                          str(REPO / "solutions" / ASSIGNMENT)], capture_output=True, text=True, cwd=REPO, env=env)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
