"""A grader you can share: runs at once, a run stopped midway and resumed, submission times the
student cannot set, and nbgrader's exchange in the course. Real `collabkit grade` processes on
toy courses (bad_submissions.tiny_course), no mocks.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import bad_submissions as bad
import psutil
import pytest
from bad_submissions import ASSIGNMENT, BAD
from conftest import IS_ROOT, LIMITS, answers_of, graded, read_csv, submit

from collabkit.course import tool_env
from collabkit.grading.slots import LOCK_DIR, lock_holder

# `collabkit grade` with the conftest's LIMITS (what its flags can set)
GRADE = [
    sys.executable,
    "-m",
    "collabkit",
    "grade",
    "--timeout",
    str(LIMITS.timeout),
    "--notebook-timeout",
    str(LIMITS.notebook_timeout),
    "--memory-mb",
    str(LIMITS.memory_mb),
]
TESTS = ("test_double", "test_square")


def toy(where: Path, students: dict) -> Path:
    """A toy course with one submission per student: {student: builder from bad_submissions}."""
    course = bad.tiny_course(where)
    release = json.loads((course / "release" / ASSIGNMENT / "toy.ipynb").read_text())
    for student, build in students.items():
        submit(course, student, build(release, answers_of(course)))
    return course


def slow(build, seconds: float = 2):
    """`build`, with a cell of the student's own that sleeps `seconds` (a slow student)."""

    def built(release, answers):
        nb = bad.extra_cell(json.loads(build(release, answers)), "square", f"import time\ntime.sleep({seconds})")
        return bad.dump(nb)

    return built


def cells(course: Path) -> dict[str, dict[str, tuple]]:
    """The test cells' (score, status) per student, from exports/grades_by_cell.csv."""
    out: dict[str, dict[str, tuple]] = {}
    for r in read_csv(course / "exports" / "grades_by_cell.csv"):
        if r["grade_id"] in TESTS:
            out.setdefault(r["student_id"], {})[r["grade_id"]] = (float(r["score"]), r["status"])
    return out


def expected(students: dict[str, str]) -> dict[str, dict[str, tuple]]:
    """What grading each student's submission alone gives: {student: BAD name} -> its per-cell table."""
    return {
        s: {g: (float(score), status) for g, (score, status) in BAD[name][2].items()} for s, name in students.items()
    }


def start(course: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*GRADE, "--root", str(course), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=tool_env(),
    )


def holds(proc: subprocess.Popen, course: Path, student: str, timeout: float = 60) -> None:
    """Wait until `proc` holds `student`'s lock in `course`."""
    lock = course / ".collabkit" / "locks" / ASSIGNMENT / f"{student}.lock"
    deadline = time.monotonic() + timeout
    while lock_holder(lock) != proc.pid:
        assert proc.poll() is None and time.monotonic() < deadline, f"{proc.args} never took {student}'s lock"
        time.sleep(0.1)


def test_concurrent_runs_grade_as_each_would_alone_and_never_share_a_student(tmp_path):
    a_students = {"correct": "correct", "stub": "stub", "os_exit": "os_exit"}
    b_students = {"correct": "correct", "edited_test": "edited_test", "stub": "stub"}
    # one slow student in each course (20 s, within a 60 s cell timeout) keeps its run, and the
    # locks it holds, alive while the other runs start
    a = toy(tmp_path / "a", {s: slow(BAD[n][0], 20) if s == "stub" else BAD[n][0] for s, n in a_students.items()})
    b = toy(
        tmp_path / "b", {s: slow(BAD[n][0], 20) if s == "edited_test" else BAD[n][0] for s, n in b_students.items()}
    )
    run_a = start(a, "--timeout", "60")  # a whole course
    run_b = start(b, "--timeout", "60", "--student", "correct", "--student", "edited_test")  # two of another
    holds(run_a, a, "correct")
    clash = start(a, "--student", "correct", "--workers", "1")  # a student run_a holds: refused
    holds(run_b, b, "edited_test")
    regrade = start(b, "--student", "stub", "--student", "correct", "--workers", "1")  # one of them run_b holds
    out = {
        name: (p.wait(timeout=300), *p.communicate())
        for name, p in dict(clash=clash, regrade=regrade, a=run_a, b=run_b).items()
    }
    rc, _, err = out["clash"]
    assert (rc, err) == (
        2,
        f"collabkit grade: correct is being graded by another run (pid {run_a.pid}): "
        "nothing left for this run to grade\n",
    )
    rc, _, err = out["regrade"]  # grades stub, leaves correct to run_b
    assert rc == 1 and f"correct is being graded by another run (pid {run_b.pid}); not graded by this one" in err, err
    assert [line.split()[1] for line in err.splitlines() if line.startswith("[")] == ["stub:"], err
    for name in ("a", "b"):
        assert out[name][0] == 0, out[name]
    assert cells(a) == expected(a_students)
    assert cells(b) == expected(b_students)
    assert {r["student_id"]: r["status"] for r in read_csv(b / "exports" / "grades.csv")} == {
        s: BAD[n][1] for s, n in b_students.items()
    }, "both runs' students in the course's exports"


def _lines(stream, into: list) -> None:
    for line in stream:
        into.append(line)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _leased_uids(pids: set[int]) -> set[int]:
    """The slot uids the processes `pids` hold (a run's Dask workers lease them)."""
    return {int(lock.stem) for lock in LOCK_DIR.glob("*.lock") if lock_holder(lock) in pids}


def _uid_processes(uids: set[int]) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real in uids and _alive(p)]


@pytest.mark.skipif(not IS_ROOT, reason="kernels run as slot uids only as root")
def test_sigterm_stops_the_batch_cleanly_and_resume_grades_the_rest(tmp_path):
    students = {"s1_correct": "correct", "s2_stub": "stub", "s3_fails_hidden": "fails_hidden"}
    course = toy(tmp_path / "course", {s: slow(BAD[n][0]) for s, n in students.items()})
    run = start(course, "--workers", "1")
    err: list[str] = []
    reader = threading.Thread(target=_lines, args=(run.stderr, err), daemon=True)
    reader.start()
    parent, seen, uids = psutil.Process(run.pid), set(), set()
    deadline = time.monotonic() + 180
    # wait until one student is finished and the next one's kernel is running
    while not (any(line.startswith("[1/3]") for line in err) and _uid_processes(uids)):
        assert run.poll() is None and time.monotonic() < deadline, "".join(err)
        seen |= set(parent.children(recursive=True))
        uids = uids or _leased_uids({run.pid} | {p.pid for p in seen})
        time.sleep(0.1)
    seen |= set(parent.children(recursive=True))
    assert uids and seen
    run.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    rc = run.wait(timeout=30)
    assert time.monotonic() - t0 < 10, "the run took too long to stop"
    reader.join(timeout=10)  # everything it wrote, to the end
    assert rc == 128 + signal.SIGTERM, "".join(err)
    deadline = time.monotonic() + 5
    while (left := [p for p in seen if _alive(p)] + _uid_processes(uids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"left running: {[(p.pid, p.info if hasattr(p, 'info') else p.cmdline()) for p in left]}"
    finished = {line.split()[1].rstrip(":") for line in err if line.startswith("[")}
    assert finished and finished != set(students)
    summary = err[-1]
    assert f"interrupted by SIGTERM: {len(finished)} of 3 students graded, {3 - len(finished)} not graded" in summary
    assert sorted(r["student_id"] for r in read_csv(course / "exports" / "grades.csv")) == sorted(finished)
    assert set(cells(course)) == finished
    for s in set(students) - finished:  # cut short: nothing written for them
        assert not (course / "autograded" / s / ASSIGNMENT / "grading.json").exists()

    resumed = subprocess.run(
        [*GRADE, "--root", str(course), "--resume"], capture_output=True, text=True, env=tool_env()
    )
    assert resumed.returncode == 0, resumed.stderr
    regraded = {line.split()[1].rstrip(":") for line in resumed.stderr.splitlines() if line.startswith("[")}
    assert regraded == set(students) - finished, resumed.stderr
    assert cells(course) == expected(students), "the same grades as an uninterrupted run"

    # a changed submission is graded again by --resume; the unchanged ones are not
    release = json.loads((course / "release" / ASSIGNMENT / "toy.ipynb").read_text())
    submit(course, "s2_stub", BAD["correct"][0](release, answers_of(course)))
    records = graded(course, workers=1, limits=LIMITS, resume=True)
    assert [r["student_id"] for r in records] == ["s2_stub"] and records[0]["score"] == 3


def _stamp(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S.%f} UTC"


def test_the_submission_time_is_the_kits_and_a_forged_timestamp_is_tampering(tmp_path):
    from nbgrader.api import Gradebook

    correct = BAD["correct"][0]
    course = toy(tmp_path / "course", {"honest": correct, "backdated": correct, "future": correct})
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for student, when in dict(honest=now, backdated=datetime(2001, 1, 1), future=now + timedelta(days=365)).items():
        (course / "submitted" / student / ASSIGNMENT / "timestamp.txt").write_text(_stamp(when))
    arrived = {
        s: datetime.fromtimestamp(
            (course / "submitted" / s / ASSIGNMENT / "timestamp.txt").stat().st_ctime, timezone.utc
        ).replace(tzinfo=None)
        for s in ("honest", "backdated", "future")
    }
    records = {r["student_id"]: r for r in graded(course, workers=2, limits=LIMITS)}
    assert records["honest"]["status"] == "needs_manual_grade" and not records["honest"]["notes"]
    assert records["backdated"]["status"] == "tampered"
    assert "before the assignment was released" in records["backdated"]["notes"][0]
    assert records["future"]["status"] == "tampered"
    assert "after the submission arrived" in records["future"]["notes"][0]
    assert all(r["score"] == 3 for r in records.values()), "the notebooks are graded as usual"
    notes = {r["student_id"]: r["notes"] for r in read_csv(course / "exports" / "grades.csv")}
    assert "timestamp.txt says 2001-01-01" in notes["backdated"]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        recorded = {s.student.id: s.timestamp for s in gb.assignment_submissions(ASSIGNMENT)}
    for student, when in arrived.items():  # the time the files arrived, whatever timestamp.txt says
        assert abs(recorded[student] - when) < timedelta(seconds=1), (student, recorded[student], when)
        assert records[student]["submitted_at"].startswith(f"{when:%Y-%m-%dT%H:%M}")
    assert (
        (course / "autograded" / "backdated" / ASSIGNMENT / "timestamp.txt")
        .read_text()
        .startswith(f"{arrived['backdated']:%Y-%m-%d %H:%M}")
    )


def nbgrader(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=cwd, capture_output=True, text=True, env=tool_env()
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Unwritable directory" not in run.stdout + run.stderr
    return run


def test_nbgrader_release_fetch_submit_collect_round_trip_through_the_course_exchange(tmp_path):
    course = toy(tmp_path / "course", {})
    exchange = course / "exchange"
    assert exchange.is_dir(), "collabkit release creates the course's exchange"
    nbgrader(course, "list", "--inbound")  # what formgrader asks the exchange for: no "Unwritable directory"
    nbgrader(course, "release_assignment", ASSIGNMENT)
    home = tmp_path / "student"
    home.mkdir()
    student = [f"--Exchange.root={exchange}", "--CourseDirectory.course_id=collab-kit"]
    nbgrader(home, "fetch_assignment", ASSIGNMENT, *student)
    fetched = home / ASSIGNMENT / "toy.ipynb"
    fetched.write_bytes(BAD["correct"][0](json.loads(fetched.read_text()), answers_of(course)))
    nbgrader(home, "submit", ASSIGNMENT, *student)
    nbgrader(course, "collect", ASSIGNMENT)
    [user] = [p.name for p in (course / "submitted").iterdir()]
    assert (course / "submitted" / user / ASSIGNMENT / "toy.ipynb").exists()
    [record] = graded(course, students=[user], workers=1, limits=LIMITS)
    assert record["status"] == "needs_manual_grade" and record["score"] == 3, record
    assert not record["notes"], "nbgrader's own timestamp.txt is plausible"
    nbgrader(course, "release_feedback", ASSIGNMENT)
    nbgrader(home, "fetch_feedback", ASSIGNMENT, *student)
    [page] = (home / ASSIGNMENT / "feedback").glob("*/toy.html")
    assert bad.SECRET not in page.read_text(), "the kit's feedback, without hidden tests"
