"""Runs in a Dask worker process: grade one student from plain data, never touching the course folder.

`grade_student(task)` receives a `StudentTask` (as a dict: the sanitized notebooks as text, the
reference artefacts as bytes, the limits), lays out a scratch folder on this host, starts the
worker process (worker.py) that executes the notebooks in sandboxed kernels, and returns a
`TaskResult` (as a dict: the executed notebooks as text and one `NotebookRun` each). The grading
parent (batch.py) scores it and writes everything; this side writes nothing but its scratch.

`GradingSlots` is the worker plugin every Dask worker gets when `collabkit grade` connects:
- at start-up it makes MovieLens ready on this host (what `collabkit data` does), and leases one
  slot uid per worker thread (slots.py), so two Dask workers on one host, or a Dask worker and
  another grading run, never share a uid; for warm kernels (the default) it starts one fork server
  per slot (forkserver.py), whose socket each of that slot's tasks hands to its worker process;
- at shutdown it kills the worker processes still running (their kernels die with them), the fork
  servers, and every process of its slot uids, and releases them.

A Dask worker running as root gives kernels the full sandbox; one that is not root gives what
the sandbox can apply, and each notebook's `sandbox` report (in grading.json) says which.
"""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .records import Job, NotebookRun, StudentTask, TaskResult
from .worker import kill_uid

try:  # the plugin's base class; the kit imports without Dask (students' wheel)
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover
    WorkerPlugin = object


class Stop:
    """A stop switch: the signal that stopped grading here, and the worker processes to kill when one comes."""

    def __init__(self):
        self.signum: int | None = None
        self.workers: dict[subprocess.Popen, str] = {}  # each running worker process, and its student
        self.lock = threading.RLock()  # a signal handler may run in the thread that holds it

    def __call__(self, signum, frame=None) -> None:
        """Stop starting worker processes and kill the running ones' process groups."""
        with self.lock:
            self.signum = self.signum or signum
            self.kill(list(self.workers.values()))

    def kill(self, students: list[str]) -> int:
        """Kill the worker processes grading `students` (a run that stopped); how many there were."""
        with self.lock:
            procs = [p for p, s in self.workers.items() if s in set(students)]
            for proc in procs:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # its kernels follow it (they die with their parent)
                except OSError:
                    pass
            return len(procs)


class Host:
    """What one Dask worker process holds for its tasks: the data, its slot uids, its scratch top, its stop switch."""

    def __init__(self, nthreads: int, warm: bool = False):
        from ..data import ensure_movielens
        from .slots import SlotLease

        self.data = ensure_movielens(quiet=True)  # this host's $FASTAI_HOME/data/ml-100k
        self.lease = SlotLease(max(1, nthreads))
        self.slots: queue.Queue = queue.Queue()
        for uid in self.lease.uids:
            self.slots.put(uid)
        self.top = Path(tempfile.mkdtemp(prefix="collabkit-grade-"))
        os.chmod(self.top, 0o711)  # slot uids pass through to their own folders, and list nothing
        self.stop = Stop()
        self.forkservers = ForkServers(self.top, self.lease.uids) if warm else None

    def forkserver(self, uid: int) -> tuple[str | None, str | None]:
        """The socket of the fork server of slot `uid`, or None and why there is none."""
        if self.forkservers is None:
            return None, "this Dask worker was set up for cold kernels"
        return self.forkservers.socket(uid)

    def close(self) -> None:
        """Kill the running worker processes and what is left under the slot uids, then release them;
        only after each task's own cleanup (its `kill_uid`) has run, or a later run holding a released
        uid would lose its kernels to it."""
        self.stop(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while self.stop.workers and time.monotonic() < deadline:  # run_worker drops each as it finishes
            time.sleep(0.05)
        if self.forkservers:
            self.forkservers.close()
        for uid in self.lease.uids:
            kill_uid(uid)
        self.lease.release()
        if not os.environ.get("COLLABKIT_KEEP_SCRATCH"):
            shutil.rmtree(self.top, ignore_errors=True)


RUN_FOLDER = "/collabkit-run-folder"  # in the tasks' test cells: the kernels' folder, which the task names (lay_out)
HOST: Host | None = None  # set by GradingSlots.setup in a Dask worker (or by batch.py for a task run in place)


class ForkServers:
    """One fork server (forkserver.py) per slot uid, started together and waited for: warm kernels.
    A server that fails to start, or dies, leaves its slot with cold kernels (executed), and says why."""

    def __init__(self, top: Path, uids: list[int]):
        home = top / "forkserver-home"  # the servers' own (kernels never see it: top is hidden from them)
        home.mkdir(mode=0o700)
        from .forkserver import SERVER_ENV

        env = dict(SERVER_ENV, HOME=str(home), MPLCONFIGDIR=str(home / ".matplotlib"), PATH=os.environ["PATH"])
        self.sockets = {uid: str(top / f"forkserver-{uid}.sock") for uid in uids}
        self.procs: dict[int, subprocess.Popen] = {}
        self.errors: dict[int, str] = {}
        for uid, path in self.sockets.items():
            if len(path) > 100:
                self.errors[uid] = f"its socket path is too long for a unix socket: {path}"
                continue
            with open(top / f"forkserver-{uid}.log", "wb") as log:
                self.procs[uid] = subprocess.Popen(
                    [sys.executable, "-P", "-m", "collabkit.grading.forkserver", path],
                    stdout=subprocess.PIPE,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env=env,
                    cwd=home,
                )
        deadline = time.monotonic() + 300
        for uid, proc in self.procs.items():
            ready = select.select([proc.stdout], [], [], max(0, deadline - time.monotonic()))[0]
            line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
            if not line.startswith("ready"):  # "ready SECONDS", or its refusal, or nothing in 5 minutes
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                log = (top / f"forkserver-{uid}.log").read_text(errors="replace")[-500:]
                self.errors[uid] = f"it did not start ({line or 'exit ' + str(proc.returncode)}): {log}"

    def socket(self, uid: int) -> tuple[str | None, str | None]:
        """The socket of slot `uid`'s server, or None and why there is none."""
        proc = self.procs.get(uid)
        if proc is not None and uid not in self.errors and proc.poll() is not None:
            self.errors[uid] = f"it exited with {proc.returncode}"
        if uid in self.errors:
            return None, f"the fork server of slot {uid} is not serving: {self.errors[uid]}"
        return self.sockets[uid], None

    def close(self) -> None:
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its kernels die with it (PR_SET_PDEATHSIG)
            except OSError:
                pass
            proc.wait()
            proc.stdout.close()


class GradingSlots(WorkerPlugin):
    """The Dask worker plugin `collabkit grade` registers: MovieLens, slot uids and (for warm kernels)
    a fork server per slot at start, cleanup at the end."""

    name = "collabkit-grading-slots"

    def __init__(self, warm: bool = False):
        self.warm = warm

    def setup(self, worker) -> None:
        global HOST
        if HOST is None:
            HOST = Host(getattr(worker.state, "nthreads", None) or worker.nthreads, self.warm)

    def teardown(self, worker) -> None:
        global HOST
        if HOST is not None:
            HOST.close()
            HOST = None


def grade_student(task: dict) -> dict:
    """The Dask task: one student's notebooks in, executed notebooks and what happened out (plain dicts)."""
    task = StudentTask.from_json(task)
    host = HOST
    if host is None:
        raise RuntimeError("collabkit's worker plugin (GradingSlots) is not set up on this Dask worker")
    uid = host.slots.get()
    scratch = Path(tempfile.mkdtemp(prefix="student-", dir=host.top))  # a plain path: it goes into test cells
    try:
        lay_out(scratch, task, host.data)
        job = Job(
            root=task.root,
            scratch=str(scratch),
            uid=uid,
            notebooks=list(task.notebooks),
            limits=task.limits,
            fastai_home=str(host.data.parent.parent),
        )
        if task.limits.warm_kernels:
            job.forkserver, job.cold_because = host.forkserver(uid)
        start = time.monotonic()
        runs = run_worker(job, host.stop, task.student) if task.notebooks else {}
        if runs is None:  # this Dask worker is shutting down: fail, so that Dask retries it elsewhere
            raise RuntimeError(f"the Dask worker shut down while grading {task.student}")
        out = scratch / "out"
        executed = {p.stem: p.read_text() for p in out.glob("*.ipynb")}
        return TaskResult(
            student=task.student,
            runs=runs,
            executed=executed,
            seconds=round(time.monotonic() - start, 1),
            where=f"{_worker_address()} on {socket.gethostname()}",
        ).to_json()
    finally:
        host.slots.put(uid)
        if not os.environ.get("COLLABKIT_KEEP_SCRATCH"):
            shutil.rmtree(scratch, ignore_errors=True)


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "in process"


def lay_out(scratch: Path, task: StudentTask, fastai_data: Path) -> None:
    """scratch/in/ (the sanitized notebooks), scratch/out/, and the kernels' folder scratch/run/: its home
    (its own), a copy of the data and the reference artefacts (read-only); no reference.json: its
    values are in the test cells only."""
    (scratch / "in").mkdir(parents=True)
    (scratch / "out").mkdir()
    run = scratch / "run"
    for name, text in task.notebooks.items():
        (scratch / "in" / f"{name}.ipynb").write_text(text.replace(RUN_FOLDER, str(run)))
    (run / "home" / "tmp").mkdir(parents=True)
    (run / "runtime").mkdir()
    fastai = run / "fastai"
    (fastai / "archive").mkdir(parents=True)
    shutil.copytree(fastai_data, fastai / "data" / "ml-100k")
    (fastai / "config.ini").write_text("[DEFAULT]\ndata = data\narchive = archive\nstorage = tmp\nmodel = models\n")
    artefacts = []
    for name, data in task.artefacts.items():
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a file name: {name!r}")
        (run / name).write_bytes(data)
        artefacts.append(run / name)
    for path in [*artefacts, fastai / "config.ini", *(fastai / "data" / "ml-100k").iterdir()]:
        path.chmod(0o444)
    for path in [fastai / "data" / "ml-100k", fastai / "data"]:
        path.chmod(0o555)
    for path in [run, fastai, run / "runtime"]:
        path.chmod(0o755)
    scratch.chmod(0o700)


def _die_with_parent() -> None:  # in the child, before exec: it dies if this Dask worker dies
    import ctypes

    ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG


def run_worker(job: Job, stop: Stop | None = None, student: str = "") -> dict[str, NotebookRun] | None:
    """Start the worker process for one student and wait for it (within a budget); what it reported,
    or None when grading here was stopped before it or while it ran."""
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
                preexec_fn=_die_with_parent,
                env=env,
                cwd=scratch,
            )
            stop.workers[proc] = student
        try:
            proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            kill_uid(job.uid)
            with stop.lock:
                stop.workers.pop(proc, None)
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
