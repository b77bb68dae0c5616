"""Runs in the grading parent (`collabkit grade`): grade a class through Dask, one task per student.

nbgrader's autograde is built for a trusted, tidy batch. This is the same grading (its
gradebook, OverwriteCells' rules, `determine_grade`, its feedback preprocessors) arranged so
that one bad submission cannot stop, slow down or falsify the rest, on one machine or a cluster:

- Each submission is first repaired against the release and the gradebook (sanitize.py),
  each repair recorded, here, into a `StudentTask`: plain data (the notebooks as text, the
  reference artefacts as bytes), with the reference values written into the test cells.
- Each task runs on a Dask worker (task.py): a local cluster of `workers` processes with one
  thread each, or the cluster at `scheduler`. There its own worker process (worker.py) runs
  one kernel per notebook, each started through sandbox.py as a slot uid that Dask worker
  leased (slots.py). The task returns the executed notebooks and what happened (`TaskResult`)
  and never reads or writes the course folder. A task whose Dask worker dies is retried on
  another (at most twice); one that fails every time gives its student `grader_error`.
- Only this process writes the gradebook, autograded/, feedback/ and the exports, one student
  at a time as results arrive (scoring.py), so a student's grades are written once. The
  gradebook is backed up before each run.
- Each student gets a status, scores per cell, a grading.json record (records.py), and
  feedback without hidden tests; the exports are rebuilt at the end.
- Runs share a machine and a course safely: slot uids are leased per Dask worker (slots.py), a
  run grades a student only while it holds that student's lock (another run holding them is
  named and skipped), and gradebook writes and exports happen under the course's gradebook lock.
- SIGINT or SIGTERM stops the run within seconds: the tasks are cancelled and their worker
  processes killed (their kernels die with them; a local cluster's Dask workers are closed,
  and kill everything left under their slot uids), the students already finished keep their
  grades, those cut short get nothing written, the exports are rebuilt, and the run ends with
  a KitError whose exit code is 128 + the signal's number. Losing the Dask scheduler ends it
  the same way with exit code 1. `resume=True` then grades only the students never finished
  or whose submission changed (`submission_hash` in grading.json).
- The submission time written to the gradebook is when the files arrived in submitted/, never
  the student's own `timestamp.txt`; one dated before the release or after the arrival marks the
  student `tampered`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import sqlite3
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..course import Course
from ..errors import KitError
from .records import CellStatus, Limits, NotebookResult, Status, StudentRecord, StudentTask, TaskResult
from .slots import StudentLease, gradebook_lock
from .task import RUN_FOLDER

log = logging.getLogger("collabkit.grade")


# ---------------------------------------------------------------------------- the assignment


def load_specs(gb, assignment: str) -> dict:
    """notebook name -> {grade_id: CellSpec} from the gradebook's source cells."""
    from .sanitize import CellSpec

    out = {}
    for notebook in gb.find_assignment(assignment).notebooks:
        specs = {c.name: CellSpec(c.name, c.cell_type, c.source, bool(c.locked)) for c in notebook.source_cells}
        for c in notebook.grade_cells:
            specs[c.name].grade, specs[c.name].points = True, float(c.max_score)
        for c in notebook.solution_cells:
            specs[c.name].solution = True
        for c in notebook.task_cells:
            specs[c.name].task, specs[c.name].points = True, float(c.max_score)
        out[notebook.name] = specs
    return out


def load_assignment(course: Course) -> tuple[dict, dict, dict]:
    """The graded cells (from the gradebook), the release notebooks, and each notebook's hidden-test lines."""
    import nbformat
    from nbgrader.api import Gradebook, MissingEntry

    from .sanitize import hidden_lines

    if not course.gradebook.exists():
        raise KitError(f"{course.gradebook} is missing: run `collabkit release` first")
    with Gradebook(course.db_url, course.coursedir.course_id) as gb:
        try:
            specs = load_specs(gb, course.assignment)
        except MissingEntry:
            raise KitError(
                f"the gradebook has no assignment {course.assignment}: run `collabkit release` first"
            ) from None
    releases = {}
    for name in specs:
        path = course.release / f"{name}.ipynb"
        if not path.exists():
            raise KitError(f"{path} is missing: run `collabkit release` first")
        releases[name] = nbformat.read(path, as_version=4)
    hidden = {name: hidden_lines(specs[name], releases[name]) for name in specs}
    return specs, releases, hidden


def backup_gradebook(db: Path, keep: int = 10) -> Path | None:
    """Copy gradebook.db to gradebook.db.backup-<UTC time> (sqlite's backup API); keep the newest `keep`."""
    if not db.exists():
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    dest = db.with_name(f"{db.name}.backup-{stamp}")
    src, out = sqlite3.connect(db), sqlite3.connect(dest)
    with out:
        src.backup(out)
    src.close(), out.close()
    for old in sorted(db.parent.glob(f"{db.name}.backup-*"))[:-keep]:
        old.unlink()
    return dest


def reference_files(reference: Path) -> list[str]:
    """Files beside reference.json that it names (model weights), never notebooks: hidden tests may load them."""
    values = json.loads(reference.read_text())
    names = [v for v in values.values() if isinstance(v, str)] if isinstance(values, dict) else []
    return sorted(
        {
            n
            for n in names
            if "/" not in n
            and not n.endswith(".ipynb")
            and n not in ("", ".", "..")
            and (reference.parent / n).is_file()
        }
    )


def submission_hash(folder: Path) -> str:
    """sha256 over a submitted folder: every file's path and contents, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def needs_grading(course: Course, student: str) -> bool:
    """For --resume: never finished (no grading.json, or grader_error), or submitted again since."""
    path = course.autograded(student) / "grading.json"
    if not path.exists():
        return True
    try:
        record = StudentRecord.read(path)
    except (ValueError, TypeError, KeyError):
        return True
    return record.status == Status.GRADER_ERROR or record.submission_hash != submission_hash(course.submitted(student))


def arrival_time(folder: Path) -> datetime:
    """When a submission's files arrived in submitted/ (naive UTC, as nbgrader stores times): the newest
    inode change time among them. The kernel sets it when a file is written or copied there (by
    `nbgrader collect`, an LMS export, by hand); a student cannot set it, unlike timestamp.txt or mtimes."""
    newest = max(p.stat().st_ctime for p in [folder, *folder.rglob("*")])
    return datetime.fromtimestamp(newest, timezone.utc).replace(tzinfo=None)


def release_time(course: Course) -> datetime | None:
    """The earliest trace of the assignment's release in the course: the release notebooks' or the
    exchange's outbound copy's modification time (naive UTC)."""
    outbound = course.exchange / course.coursedir.course_id / "outbound" / course.assignment
    paths = [*course.release.glob("*.ipynb"), *outbound.glob("*.ipynb")]
    times = [p.stat().st_mtime for p in paths]
    return datetime.fromtimestamp(min(times), timezone.utc).replace(tzinfo=None) if times else None


def check_timestamp(sub: Path, arrived: datetime, released: datetime | None) -> str | None:
    """Why the student's own timestamp.txt cannot be true (dated before the release, or after the files
    arrived), or None when it is absent or plausible. It is never recorded either way."""
    from nbgrader.utils import parse_utc

    path = sub / "timestamp.txt"
    if not path.exists():
        return None
    text = path.read_text(errors="replace").strip()
    try:
        claimed = parse_utc(text)
    except (ValueError, OverflowError, TypeError):
        return f"timestamp.txt ({text[:40]!r}) is not a time; it was ignored"
    if released is not None and claimed < released:
        return (
            f"timestamp.txt says {claimed:%Y-%m-%d %H:%M:%S} UTC, before the assignment was released "
            f"({released:%Y-%m-%d %H:%M:%S} UTC); it was ignored"
        )
    if claimed > arrived + CLOCK_SKEW:
        return (
            f"timestamp.txt says {claimed:%Y-%m-%d %H:%M:%S} UTC, after the submission arrived "
            f"({arrived:%Y-%m-%d %H:%M:%S} UTC); it was ignored"
        )
    return None


CLOCK_SKEW = timedelta(minutes=5)  # a submitting machine's clock may run a little ahead of this one's


# ---------------------------------------------------------------------------- one student, before


def prepare(
    course: Course, student: str, specs: dict, releases: dict, reference: Path, limits: Limits
) -> tuple[StudentRecord, StudentTask]:
    """Sanitize a submission; its record so far, and the task that grades what could be read (plain data)."""
    import nbformat

    from .sanitize import Unreadable, repair

    sub = course.submitted(student)
    record = StudentRecord(student_id=student, submission_hash=submission_hash(sub))
    values = json.loads(reference.read_text())  # written into the test cells (sanitize.inline_reference)
    notebooks = {}
    for extra in sorted(p.name for p in sub.glob("*.ipynb") if p.stem not in specs):
        record.notes.append(f"{extra} is not part of the assignment and was ignored")
    for name in specs:
        entry = record.notebooks[name] = NotebookResult()
        path = sub / f"{name}.ipynb"
        if not path.exists():
            entry.status = Status.MISSING
            continue
        try:
            nb, repairs = repair(  # the rules the students' `collabkit check` applies too (collabkit/rules.py)
                path.read_bytes(),
                releases[name],
                specs[name],
                reference=values,
                reference_dir=RUN_FOLDER,  # the task puts its own run folder there (task.lay_out)
            )
        except Unreadable as err:
            entry.status, entry.error = Status.UNREADABLE, str(err)
            continue
        except Exception as err:  # noqa: BLE001  a notebook damaged in a way nobody foresaw
            entry.status, entry.error = Status.UNREADABLE, f"could not be repaired ({type(err).__name__}: {err})"
            continue
        entry.repairs = [str(r) for r in repairs]
        entry.tampering = any(r.tampering for r in repairs)
        notebooks[name] = nbformat.writes(nb)
    artefacts = {name: (reference.parent / name).read_bytes() for name in reference_files(reference)}
    task = StudentTask(student=student, notebooks=notebooks, artefacts=artefacts, limits=limits, root=str(course.root))
    return record, task


# ---------------------------------------------------------------------------- one student, after


def finish(
    course: Course,
    record: StudentRecord,
    result: TaskResult | None,
    specs: dict,
    releases: dict,
    hidden: dict,
) -> StudentRecord:
    """Write the autograded notebooks, the gradebook rows, the feedback and grading.json for one student
    (`result`: what their task sent back; None when no notebook could be run)."""
    import nbformat
    from nbgrader.api import Gradebook

    from ..feedback import write_feedback
    from .scoring import events, notebook_status, score_cells, write_grades

    student, assignment = record.student_id, course.assignment
    auto_dir, fb_dir = course.autograded(student), course.feedback(student)
    for d in (auto_dir, fb_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    sub = course.submitted(student)
    stamp = arrival_time(sub)  # the kit's time, never the student's timestamp.txt
    forged = check_timestamp(sub, stamp, release_time(course))
    if forged:
        record.notes.append(forged)
    record.submitted_at = stamp.replace(tzinfo=timezone.utc).isoformat(timespec="seconds")
    for d in (auto_dir, fb_dir):
        (d / "timestamp.txt").write_text(f"{stamp:%Y-%m-%d %H:%M:%S.%f} UTC\n")
        if (sub / "submission_secret.txt").exists():  # nbgrader release_feedback names feedback by it
            shutil.copy(sub / "submission_secret.txt", d / "submission_secret.txt")
    results = result.runs if result else {}
    executed = result.executed if result else {}
    record.seconds = result.seconds if result else 0.0
    notebooks = {}
    for name, entry in record.notebooks.items():
        run = results.get(name)
        if run is not None:
            entry.run_status, entry.seconds, entry.error = run.status, run.seconds, run.error or entry.error
            entry.output_truncated, entry.sandbox, entry.timed_out_cells = (
                bool(run.truncated),
                run.sandbox,
                run.timed_out,
            )
            if not run.finished:  # the worker never finished this notebook (killed, or the kit failed)
                entry.status = Status(run.status) if run.status in Status._value2member_map_ else Status.GRADER_ERROR
        if entry.status is None and name in executed:
            nb = nbformat.reads(executed[name], as_version=4)
        else:
            nb = nbformat.from_dict(json.loads(json.dumps(releases[name])))  # the release, unrun, as a placeholder
            nb.cells.insert(
                0,
                nbformat.v4.new_markdown_cell(
                    f"**collabkit**: this notebook was not graded: {entry.status} ({entry.error or ''})."
                ),
            )
        rows = score_cells(nb, specs[name], run, name, never_ran=CellStatus(entry.status) if entry.status else None)
        entry.memory_error = any(o.get("ename") == "MemoryError" for c in nb.cells for o in c.get("outputs", []))
        entry.events = events(nb, run) if run is not None and entry.status is None else []
        entry.status = notebook_status(entry, rows)
        nbformat.write(nb, auto_dir / f"{name}.ipynb")
        notebooks[name] = (nb, rows)

    record.cells = [r for _, rows in notebooks.values() for r in rows]
    record.status = Status.worst(
        [e.status for e in record.notebooks.values()] + [Status.TAMPERED] * bool(forged), default=Status.GRADED
    )
    record.score = sum(r.score or 0 for r in record.cells)
    record.max_score = sum(r.max_score or 0 for r in record.cells)
    record.graded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    # This process is the only writer of this student's rows (it holds the student's lock); the
    # gradebook lock keeps runs on one course from writing at once, and an export from reading the
    # gradebook and grading.json between the two.
    with gradebook_lock(course.locks / "gradebook.lock"), Gradebook(course.db_url, course.coursedir.course_id) as gb:
        write_grades(gb, assignment, student, notebooks, specs, timestamp=stamp)  # marks hand-graded cells
        gb.db.commit()
        record.write(auto_dir / "grading.json")
    write_feedback(course, student, {n: nb for n, (nb, _) in notebooks.items()}, record.notebooks, specs, hidden)
    return record


def failed_record(course: Course, student: str, error: str) -> StudentRecord:
    """The record of a student the kit itself failed on (written, so export and a rerun see it)."""
    record = StudentRecord(student_id=student, status=Status.GRADER_ERROR, error=error)
    auto = course.autograded(student)
    auto.mkdir(parents=True, exist_ok=True)
    record.write(auto / "grading.json")
    return record


# ---------------------------------------------------------------------------- the batch


def grade(
    course: Course,
    students: list[str] | None = None,
    workers: int = 2,
    limits: Limits | None = None,
    reference: Path | None = None,
    resume: bool = False,
    scheduler: str | None = None,
) -> list[StudentRecord]:
    """Grade submitted/<student>/<assignment>/ (every student, or those named) and write the exports,
    on a local Dask cluster of `workers` processes, or on the Dask scheduler at `scheduler`.

    With `resume`, only students never finished (no grading.json, or grader_error) or whose
    submission changed since it was graded. Returns one record per student graded. Raises KitError
    when the run cannot start (no release, gradebook, reference or free slot; every student
    asked for held by another run), and after writing the exports when it left students
    ungraded: another run held them (exit code 1), or a signal stopped it (128 + its number).
    """
    from ..export import export

    limits = replace(limits) if limits else Limits()
    if limits.timeout is None:
        limits.timeout = float(course.nbgrader_config().Execute.timeout)
    reference = Path(reference or course.reference)
    if not reference.is_file():
        raise KitError(f"{reference} is missing: run `collabkit reference` first")
    specs, releases, hidden = load_assignment(course)
    found = course.submitted_students()
    if students:
        missing = sorted(set(students) - set(found))
        if missing:
            raise KitError(f"no submission for {', '.join(missing)} under {course.submitted('*').parent.parent}")
        found = [s for s in found if s in set(students)]
    if resume:
        todo = [s for s in found if needs_grading(course, s)]
        log.info(
            "collabkit grade --resume: %d of %d students unchanged since they were graded; grading %d",
            len(found) - len(todo),
            len(found),
            len(todo),
        )
        found = todo
    held = StudentLease(course.locks / course.assignment, found)  # students no other run is grading
    if held.refused and not held.held:
        raise KitError(
            ", ".join(f"{s} is being graded by another run (pid {pid})" for s, pid in sorted(held.refused.items()))
            + ": nothing left for this run to grade"
        )
    for student, pid in sorted(held.refused.items()):
        log.error("collabkit grade: %s is being graded by another run (pid %s); not graded by this one", student, pid)
    mine = list(held.held)
    try:
        records, stopped, lost = (
            _grade(course, mine, workers, limits, reference, specs, releases, hidden, scheduler)
            if mine
            else ([], None, None)
        )
        from ..late import apply_late_penalties  # penalties need the grades just written; no due date: nothing
        from .slots import gradebook_lock

        with gradebook_lock(course.locks / "gradebook.lock"):
            apply_late_penalties(course, [r.student_id for r in records if r.status != Status.GRADER_ERROR])
        export(course)
    finally:
        held.release()
        course.hand_back()  # a course another user owns stays theirs (grading runs as root)
    if lost:
        left = sorted(set(mine) - {r.student_id for r in records})
        raise KitError(
            f"{lost}: {len(records)} of {len(mine)} students graded and written, {len(left)} not graded "
            f"({_names(left)}; `collabkit grade --resume` grades them); exports in {course.exports}",
            exit_code=1,
        )
    if stopped:
        left = sorted(set(mine) - {r.student_id for r in records})
        raise KitError(
            f"interrupted by {signal.Signals(stopped).name}: {len(records)} of {len(mine)} students graded, "
            f"{len(left)} not graded ({_names(left)}; `collabkit grade --resume` grades them); "
            f"exports in {course.exports}",
            exit_code=128 + stopped,
        )
    if held.refused:
        raise KitError(
            f"{len(records)} students graded; {len(held.refused)} not graded, another run holds them "
            f"({_holders(held.refused)}): grade them when it ends",
            exit_code=1,
        )
    return records


def _names(students: list[str], n: int = 10) -> str:
    return ", ".join(students[:n]) + (f" and {len(students) - n} more" if len(students) > n else "")


def _holders(refused: dict) -> str:
    return ", ".join(f"{s}: pid {pid}" for s, pid in sorted(refused.items()))


def _grade(
    course: Course,
    found: list[str],
    workers: int,
    limits: Limits,
    reference: Path,
    specs: dict,
    releases: dict,
    hidden: dict,
    scheduler: str | None = None,
) -> tuple[list[StudentRecord], int | None, str | None]:
    """Grade `found` (whose locks this run holds) through Dask, one task per student, writing each
    student as their result arrives; the records of those finished, the signal that stopped it, and
    why the Dask scheduler was lost, if it was."""
    from concurrent.futures import CancelledError

    from distributed import wait
    from distributed.scheduler import KilledWorker

    from .task import GradingSlots, grade_student

    with gradebook_lock(course.locks / "gradebook.lock"):
        backup = backup_gradebook(course.gradebook)
    if backup:
        log.info("collabkit grade: gradebook backed up to %s", backup.name)
    stop = Signalled()
    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    records: list[StudentRecord] = []
    t0, lost = time.monotonic(), None
    try:
        with dask_client(workers, scheduler) as client:
            client.register_plugin(GradingSlots(limits.warm_kernels), name=GradingSlots.name)
            slots = sum(client.nthreads().values())
            log.info(
                "collabkit grade: %d students on %d Dask worker threads (%s); dashboard %s",
                len(found),
                slots,
                scheduler or "a local cluster",
                client.dashboard_link,
            )
            todo, pending, warned = iter(found), {}, set()
            while not stop.signum:
                for student in todo:  # keep every worker thread busy, with one more each waiting
                    record, task = _prepare_or_fail(course, student, specs, releases, reference, limits)
                    if task is None or not task.notebooks:
                        records.append(_finish_or_fail(course, record, None, specs, releases, hidden))
                        _progress(records, len(found), t0)
                    else:
                        key = f"collabkit-grade-{student}-{os.urandom(4).hex()}"
                        fut = client.submit(grade_student, task.to_json(), key=key, pure=False, retries=2)
                        pending[fut] = record
                    if len(pending) >= 2 * max(1, slots):
                        break
                if not pending:
                    break
                try:
                    done, _ = wait(list(pending), timeout=1, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    continue
                except CancelledError:  # distributed cancels every future when it loses the scheduler
                    raise LostScheduler(scheduler) from None
                for fut in done:
                    record = pending.pop(fut)
                    try:
                        result = TaskResult.from_json(fut.result())
                    except KilledWorker as err:
                        result = f"its Dask worker died each time it was graded ({err})"
                    except Exception as err:  # noqa: BLE001  the task failed: the kit's fault, not the student's
                        if client.status != "running" or fut.cancelled():
                            raise LostScheduler(scheduler) from None
                        result = f"the grading task failed: {type(err).__name__}: {err}"
                    if isinstance(result, str):
                        log.error("collabkit grade: %s: %s", record.student_id, result)
                        records.append(failed_record(course, record.student_id, result))
                    else:
                        if scheduler:
                            _warn_sandbox(result, warned)
                        records.append(_finish_or_fail(course, record, result, specs, releases, hidden))
                    _progress(records, len(found), t0)
            if pending:
                client.cancel(list(pending))
                client.run(_stop_tasks, [r.student_id for r in pending.values()])
    except LostScheduler as err:
        lost = str(err)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return sorted(records, key=lambda r: r.student_id), stop.signum, lost


class LostScheduler(Exception):
    """The Dask scheduler went away mid-run (the students already written stay written)."""

    def __init__(self, scheduler: str | None):
        super().__init__(f"lost the Dask scheduler ({scheduler or 'the local cluster'})")


class Signalled:
    """The SIGINT/SIGTERM handler of a run: it only remembers the first signal; the run's loop stops on it."""

    def __init__(self):
        self.signum: int | None = None

    def __call__(self, signum, frame=None) -> None:
        self.signum = self.signum or signum


@contextmanager
def dask_client(workers: int, scheduler: str | None):
    """A Dask client on `scheduler`, or on a local cluster of `workers` processes with one thread each
    (loopback only). A task whose worker dies is retried at most twice (the local scheduler's
    allowed-failures; a cluster's own scheduler keeps its setting, default 3)."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 2, "distributed.admin.tick.limit": "60s"}):
        if scheduler:
            try:
                client = Client(scheduler, timeout="20s")
            except OSError as err:
                raise KitError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None
            with client:
                yield client
            return
        if os.geteuid() != 0:
            log.warning(
                "collabkit grade: not running as root, so student code runs as this user with no private "
                "mount namespace and with the network; it could read the course folder and reach other machines. "
                "Grade as root (or in a container) for isolation."
            )
        with (
            LocalCluster(
                n_workers=max(1, workers),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                memory_limit=0,  # kernels have their own limits; a Dask worker itself stays small
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client


def _warn_sandbox(result: TaskResult, warned: set) -> None:
    """Once per Dask worker: say that its kernels ran without the whole sandbox (it is not root)."""
    notes = sorted({w for run in result.runs.values() if run.sandbox for w in run.sandbox.get("warnings", [])})
    if notes and result.where not in warned:
        warned.add(result.where)
        log.warning("collabkit grade: on %s, kernels run without the full sandbox: %s", result.where, "; ".join(notes))
    cold = sorted({run.kernel for run in result.runs.values() if run.kernel.startswith("cold:")})
    if cold and ("cold", result.where) not in warned:  # warm kernels were asked for (a fork server failed)
        warned.add(("cold", result.where))
        log.warning("collabkit grade: on %s, kernels are executed, not forked: %s", result.where, "; ".join(cold))


def _stop_tasks(students: list[str]) -> int:  # runs on each Dask worker (client.run)
    from . import task

    return task.HOST.stop.kill(students) if task.HOST else 0


def _prepare_or_fail(course, student, specs, releases, reference, limits):
    try:
        return prepare(course, student, specs, releases, reference, limits)
    except Exception as err:  # noqa: BLE001  the kit's own failure for this student
        log.error("collabkit grade: %s: the kit failed: %s: %s", student, type(err).__name__, err)
        return failed_record(course, student, traceback.format_exc(limit=8)), None


def _finish_or_fail(course, record, result, specs, releases, hidden) -> StudentRecord:
    if record.status == Status.GRADER_ERROR:
        return record
    try:
        return finish(course, record, result, specs, releases, hidden)
    except Exception as err:  # noqa: BLE001  the kit's own failure for this student
        log.error("collabkit grade: %s: the kit failed: %s: %s", record.student_id, type(err).__name__, err)
        return failed_record(course, record.student_id, traceback.format_exc(limit=8))


def _progress(records: list[StudentRecord], n: int, t0: float) -> None:
    record, k, elapsed = records[-1], len(records), time.monotonic() - t0
    log.info(
        "[%d/%d] %s: %s %g/%g (%.0f s); ETA %s",
        k,
        n,
        record.student_id,
        record.status,
        record.score,
        record.max_score or 0,
        record.seconds,
        _duration(elapsed / k * (n - k)),
    )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
