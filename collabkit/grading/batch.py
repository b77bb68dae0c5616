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
"""
from __future__ import annotations

import concurrent.futures
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
import time
import traceback
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from ..course import Course
from ..errors import KitError
from .records import CellStatus, Job, Limits, NotebookResult, NotebookRun, Status, StudentRecord
from .slots import SlotLease
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
            raise KitError(f"the gradebook has no assignment {course.assignment}: run `collabkit release` first") from None
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
    return sorted({n for n in names if "/" not in n and not n.endswith(".ipynb") and n not in ("", ".", "..")
                   and (reference.parent / n).is_file()})


# ---------------------------------------------------------------------------- one student, before

def prepare(course: Course, student: str, specs: dict, releases: dict, scratch: Path,
            reference: Path, fastai_data: Path) -> StudentRecord:
    """Sanitize a submission into scratch/in/ and lay out the kernels' folder scratch/run/; return its record so far."""
    import nbformat

    from .sanitize import Unreadable, read, sanitize
    sub = course.submitted(student)
    (scratch / "in").mkdir(parents=True)
    (scratch / "out").mkdir()
    record = StudentRecord(student_id=student)
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
            nb, more = sanitize(nb, releases[name], specs[name], upgraded=any(r.kind == "format" for r in repairs),
                                reference=values, reference_dir=str(scratch / "run"))
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


def run_worker(job: Job) -> dict[str, NotebookRun]:
    """Start the worker process for one student and wait for it (within a budget); what it reported."""
    scratch = Path(job.scratch)
    (scratch / "job.json").write_text(json.dumps(job.to_json()))
    if os.geteuid() == 0:
        for path in [job.run / "home", job.run / "fastai" / "archive"]:
            for p in [path, *path.rglob("*")]:
                os.chown(p, job.uid, job.uid)
        (job.run / "home").chmod(0o700)
        (job.run / "runtime").chmod(0o755)
    budget = len(job.notebooks) * (job.limits.notebook_timeout + 60) + 60
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               JUPYTER_RUNTIME_DIR=str(job.run / "runtime"))
    with open(scratch / "worker.log", "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "collabkit.grading.worker", str(scratch / "job.json")],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=scratch)
        try:
            proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            kill_uid(job.uid)
    path = scratch / "results.json"
    results = {n: NotebookRun.from_json(r) for n, r in json.loads(path.read_text()).items()} if path.exists() else {}
    for name in job.notebooks:
        if name not in results:
            results[name] = NotebookRun(status="grader_error" if proc.returncode not in (0, -9) else "timed_out",
                                        error=f"worker exited with {proc.returncode}; see its log", finished=False,
                                        log=(scratch / "worker.log").read_text(errors="replace")[-2000:])
    return results


# ---------------------------------------------------------------------------- one student, after

def finish(course: Course, record: StudentRecord, scratch: Path, results: dict[str, NotebookRun],
           specs: dict, releases: dict, hidden: dict) -> StudentRecord:
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
    stamp = course.coursedir.get_existing_timestamp(str(sub)) if (sub / "timestamp.txt").exists() else None
    for d in (auto_dir, fb_dir):
        if (sub / "timestamp.txt").exists():
            shutil.copy(sub / "timestamp.txt", d / "timestamp.txt")
    notebooks = {}
    for name, entry in record.notebooks.items():
        run = results.get(name)
        if run is not None:
            entry.run_status, entry.seconds, entry.error = run.status, run.seconds, run.error or entry.error
            entry.output_truncated, entry.sandbox, entry.timed_out_cells = bool(run.truncated), run.sandbox, run.timed_out
            if not run.finished:  # the worker never finished this notebook (killed, or the kit failed)
                entry.status = Status(run.status) if run.status in Status._value2member_map_ else Status.GRADER_ERROR
        out = scratch / "out" / f"{name}.ipynb"
        if entry.status is None and out.exists():
            nb = nbformat.read(out, as_version=4)
        else:
            nb = nbformat.from_dict(json.loads(json.dumps(releases[name])))  # the release, unrun, as a placeholder
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(
                f"**collabkit**: this notebook was not graded: {entry.status} ({entry.error or ''})."))
        rows = score_cells(nb, specs[name], run, name, never_ran=CellStatus(entry.status) if entry.status else None)
        entry.memory_error = any(o.get("ename") == "MemoryError" for c in nb.cells for o in c.get("outputs", []))
        entry.events = events(nb, run) if run is not None and entry.status is None else []
        entry.status = notebook_status(entry, rows)
        nbformat.write(nb, auto_dir / f"{name}.ipynb")
        notebooks[name] = (nb, rows)

    with Gradebook(course.db_url, course.coursedir.course_id) as gb:  # this process is the only writer
        write_grades(gb, assignment, student, notebooks, specs, timestamp=stamp)
        gb.db.commit()

    record.cells = [r for _, rows in notebooks.values() for r in rows]
    record.status = Status.worst([e.status for e in record.notebooks.values()], default=Status.GRADED)
    record.score = sum(r.score or 0 for r in record.cells)
    record.max_score = sum(r.max_score or 0 for r in record.cells)
    record.graded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_feedback(course, student, {n: nb for n, (nb, _) in notebooks.items()}, record.notebooks, specs, hidden)
    record.write(auto_dir / "grading.json")
    return record


def failed_record(course: Course, student: str, error: str) -> StudentRecord:
    """The record of a student the kit itself failed on (written, so export and a rerun see it)."""
    record = StudentRecord(student_id=student, status=Status.GRADER_ERROR, error=error)
    auto = course.autograded(student)
    auto.mkdir(parents=True, exist_ok=True)
    record.write(auto / "grading.json")
    return record


# ---------------------------------------------------------------------------- the batch

def grade(course: Course, students: list[str] | None = None, workers: int = 2,
          limits: Limits | None = None, reference: Path | None = None) -> list[StudentRecord]:
    """Grade submitted/<student>/<assignment>/ (every student, or those named) and write the exports.

    Returns one record per student. Raises KitError only when the run itself cannot go on (no
    release, no gradebook, no reference, no free slot).
    """
    from ..data import ensure_movielens
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
    data = ensure_movielens(quiet=True)
    backup = backup_gradebook(course.gradebook)
    if backup:
        log.info("collabkit grade: gradebook backed up to %s", backup.name)
    if os.geteuid() != 0:
        log.warning("collabkit grade: not running as root, so student code runs as this user with no private "
                    "mount namespace and with the network; it could read the course folder and reach other machines. "
                    "Grade as root (or in a container) for isolation.")

    top = Path(tempfile.mkdtemp(prefix="collabkit-grade-"))
    os.chmod(top, 0o711)
    lease = SlotLease(max(1, workers))  # uids no other grading run on this machine holds
    slots: queue.Queue = queue.Queue()
    for uid in lease.uids:
        slots.put(uid)

    def one(student: str) -> tuple[StudentRecord, Path, dict]:
        uid = slots.get()
        try:
            scratch = top / student
            record = prepare(course, student, specs, releases, scratch, reference, data)
            todo = [n for n, e in record.notebooks.items() if e.status is None]
            job = Job(root=str(course.root), scratch=str(scratch), uid=uid, notebooks=todo, limits=limits,
                      fastai_home=str(data.parent.parent))
            start = time.monotonic()
            results = run_worker(job) if todo else {}
            record.seconds = round(time.monotonic() - start, 1)
            return record, scratch, results
        finally:
            slots.put(uid)

    records = []
    t0 = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(one, s): s for s in found}
            for k, fut in enumerate(concurrent.futures.as_completed(futures), 1):
                student = futures[fut]
                try:
                    record, scratch, results = fut.result()
                    record = finish(course, record, scratch, results, specs, releases, hidden)
                except Exception as err:  # noqa: BLE001  the kit's own failure for this student
                    record = failed_record(course, student, traceback.format_exc(limit=8))
                    log.error("collabkit grade: %s: the kit failed: %s: %s", student, type(err).__name__, err)
                records.append(record)
                elapsed = time.monotonic() - t0
                log.info("[%d/%d] %s: %s %g/%g (%.0f s); ETA %s", k, len(found), student, record.status,
                         record.score, record.max_score or 0, record.seconds, _duration(elapsed / k * (len(found) - k)))
    finally:
        lease.release()
        if not os.environ.get("COLLABKIT_KEEP_SCRATCH"):
            shutil.rmtree(top, ignore_errors=True)
    export(course)
    return sorted(records, key=lambda r: r.student_id)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
