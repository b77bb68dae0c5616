"""`collabkit bench --quick` still runs end to end and writes its figures. Speed is never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from harness import REPO

from collabkit.course import tool_env

# Three real gradings of the fastest notebook: the benchmark's plumbing, checked with the slow set.
pytestmark = pytest.mark.slow


def test_quick_bench_runs_and_writes_every_figure(tmp_path):
    out = tmp_path / "results.json"
    env = tool_env()
    run = subprocess.run(
        [sys.executable, "-m", "collabkit", "bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )  # the course is the folder you stand in
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["quick"] and result["machine"]["cores"] >= 1 and len(result["machine"]["loadavg_at_start"]) == 3
    assert list(result["notebooks"]) == ["01_data.ipynb"] and result["notebooks"]["01_data.ipynb"]["wall_s"] > 0
    grading = result["grading"]
    assert grading["n"] == 2
    assert grading["one_submission_warm"]["wall_s"] > 0 and grading["one_submission_cold"]["wall_s"] > 0
    kit = [f"collabkit --workers={w}{flag}" for w in (1, 2) for flag in ("", " --cold-kernels")]
    for mode in ("nbgrader", *kit):
        assert grading[mode]["wall_s"] > 0 and grading[mode]["per_minute"] > 0
        assert grading[mode]["cpu_s_per_student"] > 0, "CPU seconds include the kernels (reaped grandchildren)"
        assert grading[mode]["peak_worker_pss_mb"] > 0, mode  # a kernel, two levels below the bench
    assert "speedup_vs_nbgrader" in grading["collabkit --workers=2"]
    report = result["report"]  # `collabkit report` on a written class (50 students in quick mode)
    assert report["students"] == 50 and report["wall_s"] > 0 and report["planted_found"] == report["planted_pairs"]
    assert "| one submission, warm kernels, start to grades written |" in run.stdout
    assert "| solution notebook |" in run.stdout and "vs nbgrader" in run.stdout
    assert "| 01_data.ipynb |" in run.stdout.split("cells of 0.5 s or more")[1]  # the cell-level split
    dask = result["dask_overhead"]  # the trivial notebook scored 1 both ways, or bench would have failed
    assert dask["without_dask_s"] > 0 and dask["through_dask_s"] > 0 and dask["cluster_start_s"] > 0
    assert "Dask's cost: a trivial notebook graded in" in run.stdout
