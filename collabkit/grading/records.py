"""The data that crosses a process or stage boundary while grading, as types.

- `StudentTask`: what the grading parent (batch.py) sends a Dask worker (task.py) for one
  student: the sanitized notebooks as text and the reference artefacts as bytes, nothing else.
- `TaskResult`: what the Dask worker sends back: the executed notebooks as text and one
  `NotebookRun` each. Both are plain dicts on the wire (`to_json`/`from_json`).
- `Job`: what the Dask task hands the worker process it starts (worker.py), as JSON.
- `NotebookRun`: what the worker reports back for one notebook it executed.
- `NotebookResult`, `CellResult`, `StudentRecord`: what grading decided, written to
  `autograded/<student>/<assignment>/grading.json` (the schema below) and read by feedback
  and export.

Statuses are enums ordered by severity (most serious first), so "the worst of" is `min`.

grading.json (one per student), the `StudentRecord` schema:
    student_id: str
    status: Status            the worst of its notebooks'
    score, max_score: float   autograded points so far (hand grades live in the gradebook)
    seconds: float            wall time of the student's worker
    graded_at: str            ISO 8601, UTC
    notes: [str]              e.g. extra files that were ignored, a forged timestamp.txt
    submission_hash: str      sha256 over the submitted folder's files (names and contents) as graded;
                              `collabkit grade --resume` regrades a student only when it differs
    submitted_at: str | null  ISO 8601, UTC: the time recorded in the gradebook, when the submission's
                              files arrived in submitted/ (never the student's timestamp.txt)
    error: str | null         the kit's own traceback when status is grader_error
    notebooks: {name: NotebookResult}
        status: Status, run_status: str | null ("ok", "crashed", "timed_out", "grader_error"),
        repairs: [str], tampering: bool, events: [str], error: str | null, seconds: float | null,
        output_truncated: bool, memory_error: bool, timed_out_cells: [int], sandbox: {...} | null
    cells: [CellResult]
        notebook, grade_id, score (null: waits for a hand grade), max_score, status: CellStatus
    previous: [{graded_at, score, status, cells: {"notebook/grade_id": score}}]
                              earlier gradings' scores, newest first (regrade.py)
    late: {due, submitted, seconds_late, penalty, penalty_by_notebook} | null   (late.py)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path


class _Ordered(str, Enum):
    """A status whose declaration order is its severity: the first is the most serious."""

    @property
    def severity(self) -> int:
        return list(type(self)).index(self)

    @classmethod
    def worst(cls, statuses, default=None):
        statuses = [cls(s) for s in statuses]
        return min(statuses, key=lambda s: s.severity) if statuses else default

    def __str__(self) -> str:
        return self.value


class Status(_Ordered):
    """A notebook's status; a student's is the worst of their notebooks'."""

    GRADER_ERROR = "grader_error"
    UNREADABLE = "unreadable"
    MISSING = "missing"
    CRASHED = "crashed"
    TIMED_OUT = "timed_out"
    MEMORY_LIMIT = "memory_limit"
    TAMPERED = "tampered"
    REPAIRED = "repaired"
    NEEDS_MANUAL_GRADE = "needs_manual_grade"
    GRADED = "graded"


STATUS_MEANING = {
    Status.GRADER_ERROR: "the kit failed while grading (not the student's fault): rerun this student",
    Status.UNREADABLE: "a notebook is not valid JSON or not a notebook; it scores 0",
    Status.MISSING: "a notebook was not submitted; it scores 0",
    Status.CRASHED: "a kernel died (os._exit, segfault, killed); cells after it score 0",
    Status.TIMED_OUT: "a cell ran past the per-cell timeout or a notebook past its wall clock",
    Status.MEMORY_LIMIT: "a cell hit the memory limit (MemoryError)",
    Status.TAMPERED: "a read-only cell was edited, a test tagged to skip, or points/flags changed; restored and graded",
    Status.REPAIRED: "the notebook was damaged (format, duplicate, deleted or retyped cells, kernelspec); restored and graded",
    Status.NEEDS_MANUAL_GRADE: "graded; hand-graded answers are waiting in formgrader",
    Status.GRADED: "graded, nothing left to do",
}


class CellStatus(_Ordered):
    """What happened to one graded cell."""

    GRADER_ERROR = "grader_error"  # the kit failed on this student
    UNREADABLE = "unreadable"  # the notebook could not be read
    MISSING = "missing"  # the notebook was not submitted
    CRASHED = "crashed"  # the kernel died in this cell
    TIMED_OUT = "timed_out"  # the cell ran past its timeout
    MEMORY_LIMIT = "memory_limit"  # MemoryError in this cell
    NOT_RUN = "not_run"  # never ran: the kernel died or was killed before it
    FAILED = "failed"  # the test raised or wrote to stderr
    PARTIAL = "partial"  # part of the points
    NO_RESPONSE = "no_response"  # a hand-graded answer left as released (0)
    NEEDS_MANUAL_GRADE = "needs_manual_grade"  # a hand-graded answer
    MANUALLY_GRADED = "manually_graded"  # a grader entered a score
    NO_POINTS = "no_points"  # a task cell worth 0 points (a rubric's home)
    PASSED = "passed"  # full points
    UNKNOWN = "unknown"  # in the gradebook, but no grading record says what happened


class _Record:
    """to_json/from_json for the dataclasses below (enums as their values, nested records rebuilt)."""

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=str))

    @classmethod
    def from_json(cls, data: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Limits(_Record):
    timeout: float | None = None  # per cell, seconds (None: Execute.timeout of the course, else 300)
    notebook_timeout: float = 900  # per notebook wall clock, seconds
    grace: float = 10  # after the per-cell timeout's interrupt, before the kernel is killed
    memory_mb: int = 6144  # address space of a kernel (fastai+torch map ~4.7 GB, use ~1 GB)
    nproc: int = 256  # processes and threads of one grading slot's uid
    fsize_mb: int = 256  # largest file a kernel may write
    output_mb: float = 2  # output kept per cell; the rest is dropped with a note
    warm_kernels: bool = True  # kernels forked by the slot's fork server (forkserver.py), not executed
    kernel_guard: bool = True  # tests run on the machinery captured at kernel start (kernel_guard.py); False
    # only for the kit's own tests, to show what a planted trick does without it


@dataclass
class StudentTask(_Record):
    """One student, as sent to a Dask worker: plain data only; the task never reads the course folder."""

    student: str
    notebooks: dict[str, str]  # name -> sanitized notebook (nbformat JSON text), reference values inlined
    artefacts: dict[str, bytes]  # files reference.json names (model weights), by file name
    limits: Limits
    root: str  # the course, hidden from kernels when it is on the worker's host

    @classmethod
    def from_json(cls, data: dict) -> "StudentTask":
        task = super().from_json(data)
        task.limits = Limits.from_json(task.limits) if isinstance(task.limits, dict) else task.limits
        return task

    def to_json(self) -> dict:  # bytes stay bytes (Dask carries them; JSON would not)
        return dict(super().to_json(), artefacts=dict(self.artefacts))


@dataclass
class TaskResult(_Record):
    """What grading one student on a Dask worker produced, for the parent to score and write."""

    student: str
    runs: dict[str, "NotebookRun"]  # one per notebook the task executed
    executed: dict[str, str]  # name -> executed notebook (nbformat JSON text), where the worker wrote one
    seconds: float  # wall time of the task's worker process
    where: str  # the Dask worker (address) and host that ran it

    @classmethod
    def from_json(cls, data: dict) -> "TaskResult":
        res = super().from_json(data)
        res.runs = {n: NotebookRun.from_json(r) if isinstance(r, dict) else r for n, r in res.runs.items()}
        return res


@dataclass
class Job(_Record):
    """One student's notebooks for one worker process: where they are, as whom, within which limits."""

    root: str  # the course (hidden from kernels)
    scratch: str  # this student's scratch folder: in/, out/, run/, results.json
    uid: int  # the leased slot uid kernels run as
    notebooks: list[str]
    limits: Limits
    fastai_home: str  # the grader's FASTAI_HOME (hidden from kernels; they get a copy)
    forkserver: str | None = None  # the slot's fork server's socket (forkserver.py); None: cold kernels
    cold_because: str | None = None  # why there is no fork server when warm kernels were asked for

    @property
    def run(self) -> Path:
        """The kernels' own folder: home/, runtime/, fastai/, reference.json."""
        return Path(self.scratch) / "run"

    @classmethod
    def from_json(cls, data: dict) -> "Job":
        job = super().from_json(data)
        job.limits = Limits.from_json(job.limits) if isinstance(job.limits, dict) else job.limits
        return job


@dataclass
class NotebookRun(_Record):
    """What the worker saw while it executed one notebook."""

    status: str = "ok"  # ok, crashed, timed_out, grader_error
    error: str | None = None
    killed: str | None = None  # why the watchdog killed the kernel, if it did
    seconds: float | None = None
    replies: dict[int, str] = field(default_factory=dict)  # cell index -> execute_reply status
    timed_out: list[int] = field(default_factory=list)
    truncated: list[int] = field(default_factory=list)
    current: int | None = None  # the cell running when it ended
    sandbox: dict | None = None  # sandbox.py's report
    log: str | None = None  # the worker's log tail, when it died
    finished: bool = True  # False: the worker never reported this notebook
    kernel: str = "cold"  # "warm": forked by the fork server; "cold" (and why, if it was meant to be warm): executed

    @classmethod
    def from_json(cls, data: dict) -> "NotebookRun":
        run = super().from_json(data)
        run.replies = {int(k): v for k, v in run.replies.items()}  # JSON keys are strings
        return run


@dataclass
class CellResult(_Record):
    notebook: str
    grade_id: str
    max_score: float | None
    score: float | None = 0.0
    status: CellStatus | str = ""


@dataclass
class NotebookResult(_Record):
    status: Status | None = None  # None until decided
    repairs: list[str] = field(default_factory=list)
    tampering: bool = False
    run_status: str | None = None
    events: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float | None = None
    output_truncated: bool = False
    memory_error: bool = False
    timed_out_cells: list[int] = field(default_factory=list)
    sandbox: dict | None = None


@dataclass
class StudentRecord(_Record):
    student_id: str
    status: Status = Status.GRADED
    score: float = 0.0
    max_score: float | None = None
    seconds: float = 0.0
    graded_at: str | None = None
    notes: list[str] = field(default_factory=list)
    submission_hash: str | None = None
    submitted_at: str | None = None
    error: str | None = None
    notebooks: dict[str, NotebookResult] = field(default_factory=dict)
    cells: list[CellResult] = field(default_factory=list)
    previous: list[dict] = field(default_factory=list)
    late: dict | None = None

    @classmethod
    def from_json(cls, data: dict) -> "StudentRecord":
        rec = super().from_json(data)
        rec.status = Status(rec.status)
        rec.notebooks = {n: NotebookResult.from_json(e) for n, e in rec.notebooks.items()}
        rec.cells = [CellResult.from_json(c) for c in rec.cells]
        return rec

    @classmethod
    def read(cls, path: Path) -> "StudentRecord":
        return cls.from_json(json.loads(Path(path).read_text()))

    def write(self, path: Path) -> None:
        tmp = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")
        tmp.replace(path)
