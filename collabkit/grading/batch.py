"""Runs in the grading parent (`collabkit grade`): grade a class, one worker process per student.

nbgrader's autograde is built for a trusted, tidy batch. This is the same grading (its
gradebook, OverwriteCells' rules, `determine_grade`, its feedback preprocessors) arranged so
that one bad submission cannot stop, slow down or falsify the rest:

- Each submission is first repaired against the release and the gradebook (sanitize.py),
  each repair recorded, into the student's scratch folder.
- Each submission is then executed by its own worker process (worker.py), one kernel per
  notebook, each kernel started through sandbox.py as a slot uid leased for this run
  (slots.py).
- Only this process writes the gradebook, from the executed notebooks, one student at a
  time (scoring.py); workers and kernels never open it. It is backed up before each run.
- Each student gets a status, scores per cell, a grading.json record (records.py), and
  feedback without hidden tests; the exports are rebuilt at the end.
- Runs share a machine and a course safely: slot uids are leased (slots.py), a run grades a
  student only while it holds that student's lock (another run holding them is named and
  skipped), and gradebook writes and exports happen under the course's gradebook lock.
- SIGINT or SIGTERM stops the run within seconds: its workers' process groups are killed
  (their kernels die with them, and everything left of the run's slot uids is killed), the
  students already finished keep their grades, those cut short get nothing written, the
  exports are rebuilt, and the run ends with a KitError whose exit code is 128 + the signal's
  number. `resume=True` then grades only the
  students never finished or whose submission changed (`submission_hash` in grading.json).
- The submission time written to the gradebook is when the files arrived in submitted/, never
  the student's own `timestamp.txt`; one dated before the release or after the arrival marks the
  student `tampered`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..course import Course
from ..errors import KitError
from .records import CellStatus, Job, Limits, NotebookResult, NotebookRun, Status, StudentRecord
from .slots import SlotLease, StudentLease, gradebook_lock
from .worker import kill_uid

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
    course: Course, student: str, specs: dict, releases: dict, scratch: Path, reference: Path, fastai_data: Path
) -> StudentRecord:
    """Sanitize a submission into scratch/in/ and lay out the kernels' folder scratch/run/; return its record so far."""
    import nbformat

    from .sanitize import Unreadable, read, sanitize

    sub = course.submitted(student)
    (scratch / "in").mkdir(parents=True)
    (scratch / "out").mkdir()
    record = StudentRecord(student_id=student, submission_hash=submission_hash(sub))
    values = json.loads(reference.read_text())  # written into the test cells (sanitize.inline_reference)
    for extra in sorted(p.name for p in sub.glob("*.ipynb") if p.stem not in specs):
        record.notes.append(f"{extra} is not part of the assignment and was ignored")
    for name in specs:
        entry = record.notebooks[name] = NotebookResult()
        path = sub / f"{name}.ipynb"
        if not path.exists():
            entry.status = Status.MISSING
            continue
        try:
            nb, repairs = read(path.read_bytes())
            nb, more = sanitize(
                nb,
                releases[name],
                specs[name],
                upgraded=any(r.kind == "format" for r in repairs),
                reference=values,
                reference_dir=str(scratch / "run"),
            )
        except Unreadable as err:
            entry.status, entry.error = Status.UNREADABLE, str(err)
            continue
        except Exception as err:  # noqa: BLE001  a notebook damaged in a way nobody foresaw
            entry.status, entry.error = Status.UNREADABLE, f"could not be repaired ({type(err).__name__}: {err})"
            continue
        repairs += more
        entry.repairs = [str(r) for r in repairs]
        entry.tampering = any(r.tampering for r in repairs)
        nbformat.write(nb, scratch / "in" / f"{name}.ipynb")
    # the kernel's folder: its home (its own), the data and the files reference.json names (copies,
    # read-only); no reference.json: its values are in the test cells only
    run = scratch / "run"
    (run / "home" / "tmp").mkdir(parents=True)
    (run / "runtime").mkdir()
    fastai = run / "fastai"
    (fastai / "archive").mkdir(parents=True)
    shutil.copytree(fastai_data, fastai / "data" / "ml-100k")
    (fastai / "config.ini").write_text("[DEFAULT]\ndata = data\narchive = archive\nstorage = tmp\nmodel = models\n")
    artefacts = [run / name for name in reference_files(reference)]
    for dest in artefacts:  # files reference.json names, found beside it
        shutil.copy(reference.parent / dest.name, dest)
    for path in [*artefacts, fastai / "config.ini", *(fastai / "data" / "ml-100k").iterdir()]:
        path.chmod(0o444)
    for path in [fastai / "data" / "ml-100k", fastai / "data"]:
        path.chmod(0o555)
    for path in [run, fastai, run / "runtime"]:
        path.chmod(0o755)
    scratch.chmod(0o700)
    return record


class Stop:
    """The run's stop switch: the signal that stopped it, and the workers to kill when one comes."""

    def __init__(self):
        self.signum: int | None = None
        self.workers: set[subprocess.Popen] = set()
        self.lock = threading.RLock()  # the handler may run in the thread that holds it

    def __call__(self, signum, frame=None) -> None:
        """The SIGINT/SIGTERM handler: stop starting workers, kill the running ones' process groups."""
        with self.lock:
            self.signum = self.signum or signum
            for proc in self.workers:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # its kernels follow it (they die with their parent)
                except OSError:
                    pass


def run_worker(job: Job, stop: Stop | None = None) -> dict[str, NotebookRun] | None:
    """Start the worker process for one student and wait for it (within a budget); what it reported,
    or None when the run was stopped before it or while it ran."""
    stop = stop or Stop()
    scratch = Path(job.scratch)
    (scratch / "job.json").write_text(json.dumps(job.to_json()))
    if os.geteuid() == 0:
        for path in [job.run / "home", job.run / "fastai" / "archive"]:
            for p in [path, *path.rglob("*")]:
                os.chown(p, job.uid, job.uid)
        (job.run / "home").chmod(0o700)
        (job.run / "runtime").chmod(0o755)
    budget = len(job.notebooks) * (job.limits.notebook_timeout + 60) + 60
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
        JUPYTER_RUNTIME_DIR=str(job.run / "runtime"),
    )
    with open(scratch / "worker.log", "wb") as out:
        with stop.lock:
            if stop.signum:
                return None
            proc = subprocess.Popen(
                [sys.executable, "-m", "collabkit.grading.worker", str(scratch / "job.json")],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=scratch,
            )
            stop.workers.add(proc)
        try:
            proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            kill_uid(job.uid)
            with stop.lock:
                stop.workers.discard(proc)
    if stop.signum:
        return None
    path = scratch / "results.json"
    results = {n: NotebookRun.from_json(r) for n, r in json.loads(path.read_text()).items()} if path.exists() else {}
    for name in job.notebooks:
        if name not in results:
            results[name] = NotebookRun(
                status="grader_error" if proc.returncode not in (0, -9) else "timed_out",
                error=f"worker exited with {proc.returncode}; see its log",
                finished=False,
                log=(scratch / "worker.log").read_text(errors="replace")[-2000:],
            )
    return results


# ---------------------------------------------------------------------------- one student, after


def finish(
    course: Course,
    record: StudentRecord,
    scratch: Path,
    results: dict[str, NotebookRun],
    specs: dict,
    releases: dict,
    hidden: dict,
) -> StudentRecord:
    """Write the autograded notebooks, the gradebook rows, the feedback and grading.json for one student."""
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
        out = scratch / "out" / f"{name}.ipynb"
        if entry.status is None and out.exists():
            nb = nbformat.read(out, as_version=4)
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
) -> list[StudentRecord]:
    """Grade submitted/<student>/<assignment>/ (every student, or those named) and write the exports.

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
        records, stopped = (
            _grade(course, mine, workers, limits, reference, specs, releases, hidden) if mine else ([], None)
        )
        from ..late import apply_late_penalties  # penalties need the grades just written; no due date: nothing
        from .slots import gradebook_lock

        with gradebook_lock(course.locks / "gradebook.lock"):
            apply_late_penalties(course, [r.student_id for r in records if r.status != Status.GRADER_ERROR])
        export(course)
    finally:
        held.release()
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
) -> tuple[list[StudentRecord], int | None]:
    """Grade `found` (whose locks this run holds); the records of those finished, and the signal that stopped it."""
    from ..data import ensure_movielens

    data = ensure_movielens(quiet=True)
    with gradebook_lock(course.locks / "gradebook.lock"):
        backup = backup_gradebook(course.gradebook)
    if backup:
        log.info("collabkit grade: gradebook backed up to %s", backup.name)
    if os.geteuid() != 0:
        log.warning(
            "collabkit grade: not running as root, so student code runs as this user with no private "
            "mount namespace and with the network; it could read the course folder and reach other machines. "
            "Grade as root (or in a container) for isolation."
        )

    top = Path(tempfile.mkdtemp(prefix="collabkit-grade-"))
    os.chmod(top, 0o711)
    lease = SlotLease(max(1, workers))  # uids no other grading run on this machine holds
    slots: queue.Queue = queue.Queue()
    for uid in lease.uids:
        slots.put(uid)
    stop = Stop()
    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}

    def one(student: str) -> tuple[StudentRecord, Path, dict] | None:
        if stop.signum:
            return None
        uid = slots.get()
        try:
            scratch = top / student
            record = prepare(course, student, specs, releases, scratch, reference, data)
            todo = [n for n, e in record.notebooks.items() if e.status is None]
            job = Job(
                root=str(course.root),
                scratch=str(scratch),
                uid=uid,
                notebooks=todo,
                limits=limits,
                fastai_home=str(data.parent.parent),
            )
            start = time.monotonic()
            results = run_worker(job, stop) if todo else {}
            record.seconds = round(time.monotonic() - start, 1)
            return None if results is None or stop.signum else (record, scratch, results)
        finally:
            slots.put(uid)

    records, futures = [], {}
    t0 = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = {pool.submit(one, s): s for s in found}
        for fut in concurrent.futures.as_completed(futures):
            student = futures[fut]
            try:
                done = fut.result()
                if done is None:  # stopped before or while its worker ran: nothing is written for it
                    break
                record = finish(course, *done, specs, releases, hidden)
            except Exception as err:  # noqa: BLE001  the kit's own failure for this student
                record = failed_record(course, student, traceback.format_exc(limit=8))
                log.error("collabkit grade: %s: the kit failed: %s: %s", student, type(err).__name__, err)
            records.append(record)
            k, elapsed = len(records), time.monotonic() - t0
            log.info(
                "[%d/%d] %s: %s %g/%g (%.0f s); ETA %s",
                k,
                len(found),
                student,
                record.status,
                record.score,
                record.max_score or 0,
                record.seconds,
                _duration(elapsed / k * (len(found) - k)),
            )
            if stop.signum:
                break
    finally:
        if stop.signum is None and any(not f.done() for f in futures):
            stop(signal.SIGTERM)  # an exception of the kit's own in this loop: stop the workers too
        pool.shutdown(wait=True, cancel_futures=True)
        if stop.signum:
            for uid in lease.uids:  # whatever the run's kernels left behind
                kill_uid(uid)
        lease.release()
        for s, handler in old.items():
            signal.signal(s, handler)
        if not os.environ.get("COLLABKIT_KEEP_SCRATCH"):
            shutil.rmtree(top, ignore_errors=True)
    return sorted(records, key=lambda r: r.student_id), stop.signum


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
