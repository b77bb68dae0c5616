"""Grading on a Dask cluster: a real `dask scheduler` and two `dask worker` processes, started here
on 127.0.0.1, and real `collabkit grade --scheduler` runs on toy courses (bad_submissions.tiny_course).

- a batch of correct and bad submissions gets the same per-cell scores as a local run;
- a Dask worker killed with SIGKILL while it grades: its student is retried on the other worker,
  every student is graded once, and the grades equal the local run's;
- the scheduler killed mid-batch: `collabkit grade` exits non-zero with a clear message, the
  students already written stay written, and `--resume` grades the rest.

Every process started here is stopped here (the `cluster` fixture kills each process group).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from bad_submissions import BAD
from conftest import IS_ROOT
from test_shared_grader import GRADE, _alive, _lines, cells, expected, slow, start, toy

from collabkit.course import tool_env

BIN = Path(sys.executable).parent


class Cluster:
    """A `dask scheduler` and `dask worker` processes on loopback, each in its own process group."""

    def __init__(self, where: Path):
        self.where, self.procs, self.workers = where, [], []
        where.mkdir()
        self.file = where / "scheduler.json"
        self.scheduler = self._start(
            "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(self.file)
        )
        deadline = time.monotonic() + 60
        try:
            while not (self.file.exists() and self.file.read_text().strip()):
                assert self.scheduler.poll() is None and time.monotonic() < deadline, self.log("scheduler")
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise
        self.address = json.loads(self.file.read_text())["address"]

    def _start(self, *args: str) -> subprocess.Popen:
        log = open(self.where / f"{args[0]}-{len(self.procs)}.log", "w")
        proc = subprocess.Popen(
            [str(BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=tool_env()
        )
        self.procs.append(proc)
        return proc

    def add_workers(self, n: int) -> None:
        for _ in range(n):
            self.workers.append(
                self._start(
                    "worker",
                    self.address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--memory-limit",
                    "0",
                )
            )
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(len(self.workers), timeout=90)

    def log(self, name: str) -> str:
        return "".join(p.read_text() for p in sorted(self.where.glob(f"{name}-*.log")))

    def stop(self) -> None:
        for proc in self.procs:
            try:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.kill()
                os.killpg(proc.pid, signal.SIGKILL)
            except (OSError, psutil.Error):
                pass
            proc.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path / "dask")
    try:
        yield c
    finally:
        c.stop()


def grading_workers(worker: subprocess.Popen) -> list[psutil.Process]:
    """The kit's worker processes (collabkit.grading.worker) a Dask worker is running now."""
    try:
        kids = psutil.Process(worker.pid).children(recursive=True)
    except psutil.Error:
        return []
    return [p for p in kids if "collabkit.grading.worker" in " ".join(_cmd(p))]


def _cmd(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def watched(course: Path, *args: str) -> tuple[subprocess.Popen, list[str], threading.Thread]:
    """`collabkit grade` started on `course`, with a thread collecting its stderr lines."""
    run, err = start(course, *args), []
    reader = threading.Thread(target=_lines, args=(run.stderr, err), daemon=True)
    reader.start()
    return run, err, reader


def until(condition, run: subprocess.Popen, err: list[str], timeout: float = 120, why=lambda: ""):
    """Wait for `condition()` (its value) while `run` is still running, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert run.poll() is None and time.monotonic() < deadline, "".join(err) + why()
        time.sleep(0.1)
    return value


def graded_lines(err: str) -> list[str]:
    return [line.split()[1].rstrip(":") for line in err.splitlines() if line.startswith("[")]


MIXED = {"correct": "correct", "stub": "stub", "fails_hidden": "fails_hidden", "os_exit": "os_exit"}


@pytest.mark.slow
def test_a_batch_on_a_dask_cluster_scores_as_a_local_run(tmp_path, cluster):
    cluster.add_workers(2)
    remote = toy(tmp_path / "remote", {s: BAD[n][0] for s, n in MIXED.items()})
    local = tmp_path / "local"
    shutil.copytree(remote, local)
    run = subprocess.run(
        [*GRADE, "--root", str(remote), "--scheduler", cluster.address], capture_output=True, text=True, env=tool_env()
    )
    assert run.returncode == 0, run.stderr + cluster.log("worker")
    assert f"on 2 Dask worker threads ({cluster.address})" in run.stderr
    alone = subprocess.run(
        [*GRADE, "--root", str(local), "--workers", "2"], capture_output=True, text=True, env=tool_env()
    )
    assert alone.returncode == 0, alone.stderr
    assert "dashboard http://127.0.0.1:" in alone.stderr, "the local cluster's dashboard address is printed"
    assert cells(remote) == cells(local) == expected(MIXED)
    records = {
        s: json.loads((remote / "autograded" / s / "collab_filtering" / "grading.json").read_text()) for s in MIXED
    }
    assert {s: r["status"] for s, r in records.items()} == {s: BAD[n][1] for s, n in MIXED.items()}
    if IS_ROOT:  # the Dask workers run as root here: kernels get the whole sandbox
        for r in records.values():
            for nb in r["notebooks"].values():
                assert nb["sandbox"] and nb["sandbox"]["namespace"] and not nb["sandbox"]["warnings"], nb["sandbox"]


@pytest.mark.slow
def test_a_dask_worker_killed_mid_grade_has_its_student_retried_on_the_other(tmp_path, cluster):
    cluster.add_workers(2)
    students = {"correct": "correct", "stub": "stub", "fails_hidden": "fails_hidden"}
    # slow students (8 s, within a 30 s cell timeout) keep the workers busy long enough to kill one
    course = toy(tmp_path / "course", {s: slow(BAD[n][0], 8) for s, n in students.items()})
    run, err, _ = watched(course, "--scheduler", cluster.address, "--timeout", "30")
    victim = until(
        lambda: next((w for w in cluster.workers if grading_workers(w)), None),
        run,
        err,
        why=lambda: cluster.log("worker"),
    )
    orphans = grading_workers(victim)
    victim.send_signal(signal.SIGKILL)
    assert run.wait(timeout=300) == 0, "".join(err) + cluster.log("worker")
    text = "".join(err)
    assert sorted(graded_lines(text)) == sorted(students), text  # each student written once
    assert cells(course) == expected(students), text
    psutil.wait_procs(orphans, timeout=10)
    assert not [p for p in orphans if _alive(p)], "a killed Dask worker's grading processes die with it"


@pytest.mark.slow
def test_losing_the_scheduler_stops_the_run_and_resume_finishes(tmp_path, cluster):
    cluster.add_workers(1)
    students = {"s1_correct": "correct", "s2_stub": "stub", "s3_fails_hidden": "fails_hidden"}
    course = toy(tmp_path / "course", {s: slow(BAD[n][0], 4) for s, n in students.items()})
    run, err, reader = watched(course, "--scheduler", cluster.address, "--timeout", "30")
    until(lambda: any(line.startswith("[1/3]") for line in err), run, err)
    os.killpg(cluster.scheduler.pid, signal.SIGKILL)
    rc = run.wait(timeout=120)
    reader.join(timeout=10)
    text = "".join(err)
    assert rc not in (0, None), text
    assert "lost the Dask scheduler" in err[-1] and "`collabkit grade --resume` grades them" in err[-1], text
    done = set(graded_lines(text))
    assert done and done != set(students), text
    for s in done:  # written, and still there
        assert (course / "autograded" / s / "collab_filtering" / "grading.json").exists()
    resumed = subprocess.run(
        [*GRADE, "--root", str(course), "--resume", "--timeout", "30"], capture_output=True, text=True, env=tool_env()
    )
    assert resumed.returncode == 0, resumed.stderr
    assert set(graded_lines(resumed.stderr)) == set(students) - done, resumed.stderr
    assert cells(course) == expected(students)
