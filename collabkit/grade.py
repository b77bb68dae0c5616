"""Grade a class: `collabkit grade collab_filtering [--student ID ...] [--workers N]`.

nbgrader's autograde is built for a trusted, tidy batch. This is the same grading (its
gradebook, OverwriteCells' rules, `determine_grade`, its feedback preprocessors) arranged
so that one bad submission cannot stop, slow down or falsify the rest:

- Every submission is first repaired against the release and the gradebook (sanitize.py),
  each repair recorded.
- Each submission is then executed by its own worker process (`--worker`), one kernel per
  notebook, each kernel started through sandbox.py: its own uid, a mount namespace that
  shows it only Python, the kit's package and its own folder, resource limits, a per-cell
  timeout with interrupt and a per-notebook wall clock that kills the kernel's whole
  process group. Afterwards every process of that uid, and every orphan, is killed.
- Only this process writes the gradebook, from the executed notebooks, one student at a
  time; workers and kernels never open it. It is backed up before each run.
- Each student gets a status, scores per cell, a grading.json record, and feedback HTML
  without hidden tests; exports/grades.csv and exports/grades_by_cell.csv are rebuilt.
"""
from __future__ import annotations

import concurrent.futures
import csv
import json
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
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .course import Course, KitError

# Statuses, most serious first: a submission's status is the most serious of its notebooks'.
STATUSES = {
    "grader_error": "the kit failed while grading (not the student's fault): rerun this student",
    "unreadable": "a notebook is not valid JSON or not a notebook; it scores 0",
    "missing": "a notebook was not submitted; it scores 0",
    "crashed": "a kernel died (os._exit, segfault, killed); cells after it score 0",
    "timed_out": "a cell ran past the per-cell timeout or a notebook past its wall clock",
    "memory_limit": "a cell hit the memory limit (MemoryError)",
    "tampered": "a read-only cell was edited, a test tagged to skip, or points/flags changed; restored and graded",
    "repaired": "the notebook was damaged (format, duplicate, deleted or retyped cells, kernelspec); restored and graded",
    "needs_manual_grade": "graded; hand-graded answers are waiting in formgrader",
    "graded": "graded, nothing left to do",
}
CELL_STATUSES = {
    "passed": "full points", "partial": "part of the points", "failed": "the test raised or wrote to stderr",
    "timed_out": "the cell ran past its timeout", "crashed": "the kernel died in this cell",
    "memory_limit": "MemoryError in this cell", "not_run": "never ran: the kernel died or was killed before it",
    "needs_manual_grade": "a hand-graded answer", "no_response": "hand-graded answer left as released (0)",
    "manually_graded": "a grader entered a score", "no_points": "a task cell worth 0 points (a rubric's home)", "unreadable": "the notebook could not be read",
    "missing": "the notebook was not submitted",
}
from .grading.slots import FIRST_UID as SLOT_UID, SlotLease  # noqa: E402
SYSTEM_DIRS = {"/", "/home", "/usr", "/opt", "/var", "/srv", "/etc", "/lib", "/lib64", "/bin", "/sbin", "/proc",
               "/sys", "/dev", "/run", "/boot", "/mnt", "/media", "/tmp", "/root"}  # kernels of grading slot k run as uid/gid SLOT_UID + k


@dataclass
class Limits:
    timeout: float | None = None  # per cell, seconds (None: Execute.timeout from nbgrader_config.py, else 300)
    notebook_timeout: float = 900  # per notebook wall clock, seconds
    grace: float = 10             # after the per-cell timeout's interrupt, before the kernel is killed
    memory_mb: int = 6144         # address space of a kernel (fastai+torch map ~4.7 GB, use ~1 GB)
    nproc: int = 256              # processes and threads of one grading slot's uid
    fsize_mb: int = 256           # largest file a kernel may write
    output_mb: float = 2          # output kept per cell; the rest is dropped with a note


# ---------------------------------------------------------------------------- course

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


# ---------------------------------------------------------------------------- processes

def kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid`: a helper running as that uid signals -1 (all it may signal)."""
    if os.geteuid() != 0:
        return
    subprocess.run(["/bin/sh", "-c", "kill -9 -1"], user=uid, group=uid, extra_groups=[], env={}, cwd="/",
                   check=False, stderr=subprocess.DEVNULL)


def kill_descendants() -> None:
    """SIGKILL every process below this one (orphans come to us: we are their subreaper), and reap them."""
    import psutil
    for _ in range(3):
        kids = psutil.Process().children(recursive=True)
        for p in kids:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(kids, timeout=2)
        if not kids:
            break
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break


# ---------------------------------------------------------------------------- worker side

def _client_class():
    from jupyter_client import AsyncKernelManager
    from nbclient import NotebookClient
    import nbformat

    class SandboxKernelManager(AsyncKernelManager):
        sandbox_config = ""

        def format_kernel_cmd(self, extra_arguments=None):
            kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file]
            return [sys.executable, "-m", "collabkit.sandbox", self.sandbox_config, "--", *kernel]

    class GradingClient(NotebookClient):
        """nbclient, recording what happened to each cell and capping output."""

        def __init__(self, *a, output_bytes: int, **kw):
            super().__init__(*a, **kw)
            self.output_bytes, self.sizes, self.truncated = output_bytes, {}, set()
            self.replies, self.timed_out, self.current, self.started = {}, set(), None, None
            self.on_cell_execute, self.on_cell_executed = self._execute, self._executed

        def _execute(self, cell, cell_index):
            self.current, self.started = cell_index, time.monotonic()

        def _executed(self, cell, cell_index, execute_reply):
            self.replies[cell_index] = (execute_reply or {}).get("content", {}).get("status", "none")
            self.started = None

        async def _async_handle_timeout(self, timeout, cell=None):
            if self.current in self.timed_out:  # interrupted once already: wait for it, or for the watchdog
                import asyncio
                await asyncio.sleep(0.5)
                return None
            self.timed_out.add(self.current)
            return await super()._async_handle_timeout(timeout, cell)

        def output(self, outs, msg, display_id, cell_index):
            used = self.sizes.get(cell_index, 0)
            self.sizes[cell_index] = used + len(str(msg.get("content", "")))
            if self.sizes[cell_index] <= self.output_bytes:
                return super().output(outs, msg, display_id, cell_index)
            if cell_index in self.truncated:
                return None
            self.truncated.add(cell_index)
            room = self.output_bytes - used
            if msg["msg_type"] == "stream" and room > 0:  # keep what fits
                msg = dict(msg, content=dict(msg["content"], text=msg["content"].get("text", "")[:room]))
                super().output(outs, msg, display_id, cell_index)
            outs.append(nbformat.v4.new_output("stream", name="stdout", text=(
                f"\n[collabkit: this cell printed more than {self.output_bytes / 2**20:g} MB; "
                "the rest of its output was dropped]\n")))
            return None

    return SandboxKernelManager, GradingClient


def kernel_env(run: Path) -> dict:
    home = run / "home"
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}
    return dict(threads, PATH=f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", LANG="C.UTF-8",
                HOME=str(home), IPYTHONDIR=str(home / ".ipython"), MPLCONFIGDIR=str(home / ".matplotlib"),
                XDG_CACHE_HOME=str(home / ".cache"), TMPDIR=str(home / "tmp"), FASTAI_HOME=str(run / "fastai"),
                COLLABKIT_REFERENCE=str(run / "reference.json"), NBGRADER_EXECUTION="autograde",
                PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1", COLLABKIT_GRADING="1")


def sandbox_config(job: dict, nb_name: str) -> dict:
    """What sandbox.py applies to one kernel: what it sees, as whom, within which limits."""
    run, scratch, top = Path(job["run"]), Path(job["scratch"]), Path(job["scratch"]).parent
    import collabkit
    pkg = Path(collabkit.__file__).resolve().parent
    private = [Path(job["root"]).resolve(), top]
    if (pkg.parent / "nbgrader_config.py").exists() or (pkg.parent / ".git").exists():
        private.append(pkg.parent)  # an editable install: the package sits in a course checkout
    hide = {str(p) for p in private} | {os.path.expanduser("~"), job["fastai_home"]}
    hide |= {str(p.parent) for p in private if str(p.parent) not in SYSTEM_DIRS}
    hide |= set(filter(None, os.environ.get("COLLABKIT_SANDBOX_HIDE", "").split(":")))
    keep = lambda p: not any(_inside(p, q) or _inside(q, p) for q in private)
    expose = {sys.prefix, sys.base_prefix, str(pkg)}
    expose |= {p for p in sys.path if p and os.path.isdir(p) and keep(Path(p).resolve())}
    limits = job["limits"]
    uid = job["uid"]
    return dict(namespace=True, hide=sorted(hide), private_tmp=["/tmp", "/var/tmp", "/dev/shm"],
                expose_ro=sorted(expose), expose_rw=[str(run)], uid=uid, gid=uid,
                cwd=str(run / "home"), env=kernel_env(run), report=str(scratch / f"sandbox-{nb_name}.json"),
                limits=dict(**{"as": limits["memory_mb"] * 2**20}, nproc=limits["nproc"],
                            fsize=limits["fsize_mb"] * 2**20, core=0))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def execute_notebook(job: dict, name: str, src: Path, dest: Path) -> dict:
    """Run one sanitized notebook in a sandboxed kernel; write it executed to `dest`; return what happened."""
    import nbformat
    from nbclient.exceptions import DeadKernelError
    KernelManager, Client = _client_class()
    limits, uid = job["limits"], job["uid"]
    scratch = Path(job["scratch"])
    cfg = sandbox_config(job, name)
    cfg_path = scratch / f"sandbox-{name}.config.json"
    cfg_path.write_text(json.dumps(cfg))
    nb = nbformat.read(src, as_version=4)
    km = KernelManager(kernel_name="python3")
    km.sandbox_config = str(cfg_path)
    km.connection_file = str(Path(job["run"]) / "runtime" / f"kernel-{name}.json")
    client = Client(nb, km=km, timeout=int(limits["timeout"]), interrupt_on_timeout=True, allow_errors=True,
                    raise_on_iopub_timeout=False, iopub_timeout=5, record_timing=False, startup_timeout=120,
                    skip_cells_with_tag="collabkit-never-skips-a-cell", shutdown_kernel="immediate",
                    resources={"metadata": {"path": cfg["cwd"]}}, output_bytes=int(limits["output_mb"] * 2**20))
    info = {"status": "ok", "error": None, "killed": None}
    fired = threading.Event()

    def watchdog():
        deadline = time.monotonic() + limits["notebook_timeout"]
        while not done.wait(0.25):
            now = time.monotonic()
            over = now > deadline
            stuck = client.started is not None and now - client.started > limits["timeout"] + limits["grace"]
            if over or stuck:
                info["killed"] = "notebook wall clock" if over else "cell ignored the timeout's interrupt"
                fired.set()
                proc = getattr(km.provisioner, "process", None) if km.provisioner else None
                if proc is not None:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                kill_uid(uid)
                return

    done = threading.Event()
    kill_uid(uid)
    threading.Thread(target=watchdog, daemon=True).start()
    start = time.monotonic()
    try:
        client.execute()
    except DeadKernelError:
        info["status"] = "timed_out" if fired.is_set() else "crashed"
    except Exception as err:  # noqa: BLE001  nbclient may raise anything when a kernel misbehaves
        info["status"] = "timed_out" if fired.is_set() else "crashed"
        info["error"] = f"{type(err).__name__}: {err}"
    finally:
        done.set()
        if fired.is_set():
            info["status"] = "timed_out"
        kill_uid(uid)
        kill_descendants()
    info.update(seconds=round(time.monotonic() - start, 2), replies=client.replies,
                timed_out=sorted(client.timed_out), truncated=sorted(client.truncated), current=client.current)
    report = scratch / f"sandbox-{name}.json"
    info["sandbox"] = json.loads(report.read_text()) if report.exists() and report.stat().st_size else None
    nbformat.write(nb, dest)
    return info


def worker(job_path: Path) -> int:
    """`python -m collabkit.grade --worker JOB`: execute one submission's notebooks, one kernel each."""
    job = json.loads(job_path.read_text())
    import ctypes
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of kernels come back to us
    results = {}
    for name in job["notebooks"]:
        src, dest = Path(job["scratch"]) / "in" / f"{name}.ipynb", Path(job["scratch"]) / "out" / f"{name}.ipynb"
        try:
            results[name] = execute_notebook(job, name, src, dest)
        except Exception as err:  # noqa: BLE001
            import traceback
            results[name] = {"status": "grader_error", "error": traceback.format_exc(limit=5)}
            print(f"{name}: {type(err).__name__}: {err}", file=sys.stderr)
        (Path(job["scratch"]) / "results.json").write_text(json.dumps(results))
    return 0


# ---------------------------------------------------------------------------- one student

def prepare(course: Course, student: str, specs: dict, releases: dict,
            scratch: Path, slot_reference: Path, fastai_data: Path) -> dict:
    """Sanitize a submission into scratch/ and lay out the kernel's folder; return its record so far."""
    import nbformat
    from .sanitize import Unreadable, read, sanitize
    sub = course.submitted(student)
    (scratch / "in").mkdir(parents=True)
    (scratch / "out").mkdir()
    record = {"student_id": student, "notebooks": {}, "notes": []}
    for extra in sorted(p.name for p in sub.glob("*.ipynb") if p.stem not in specs):
        record["notes"].append(f"{extra} is not part of the assignment and was ignored")
    for name in specs:
        entry = record["notebooks"][name] = {"status": None, "repairs": [], "tampering": False}
        path = sub / f"{name}.ipynb"
        if not path.exists():
            entry["status"] = "missing"
            continue
        try:
            nb, repairs = read(path.read_bytes())
            nb, more = sanitize(nb, releases[name], specs[name])
        except Unreadable as err:
            entry.update(status="unreadable", error=str(err))
            continue
        except Exception as err:  # noqa: BLE001  a notebook damaged in a way nobody foresaw
            entry.update(status="unreadable", error=f"could not be repaired ({type(err).__name__}: {err})")
            continue
        repairs += more
        entry["repairs"] = [str(r) for r in repairs]
        entry["tampering"] = any(r.tampering for r in repairs)
        nbformat.write(nb, scratch / "in" / f"{name}.ipynb")
    # the kernel's folder: its home (its own), the data and reference (root's, read-only)
    run = scratch / "run"
    (run / "home" / "tmp").mkdir(parents=True)
    (run / "runtime").mkdir()
    fastai = run / "fastai"
    (fastai / "archive").mkdir(parents=True)
    shutil.copytree(fastai_data, fastai / "data" / "ml-100k")
    (fastai / "config.ini").write_text("[DEFAULT]\ndata = data\narchive = archive\nstorage = tmp\nmodel = models\n")
    shutil.copy(slot_reference, run / "reference.json")
    artefacts = [run / name for name in reference_files(slot_reference)]
    for dest in artefacts:  # e.g. model weights reference.json names, found beside it
        shutil.copy(slot_reference.parent / dest.name, dest)
    for path in [run / "reference.json", *artefacts, fastai / "config.ini", *(fastai / "data" / "ml-100k").iterdir()]:
        path.chmod(0o444)
    for path in [fastai / "data" / "ml-100k", fastai / "data"]:
        path.chmod(0o555)
    for path in [run, fastai, run / "runtime"]:
        path.chmod(0o755)
    scratch.chmod(0o700)
    return record


def reference_files(reference: Path) -> list[str]:
    """Files beside reference.json that it names (model weights), never notebooks: hidden tests may load them."""
    values = json.loads(reference.read_text())
    names = [v for v in values.values() if isinstance(v, str)] if isinstance(values, dict) else []
    return sorted({n for n in names if "/" not in n and not n.endswith(".ipynb") and n not in ("", ".", "..")
                   and (reference.parent / n).is_file()})


def run_worker(job: dict, limits: Limits, n_notebooks: int) -> dict:
    scratch = Path(job["scratch"])
    (scratch / "job.json").write_text(json.dumps(job))
    if os.geteuid() == 0:
        uid = job["uid"]
        for path in [scratch / "run" / "home", scratch / "run" / "fastai" / "archive"]:
            for p in [path, *path.rglob("*")]:
                os.chown(p, uid, uid)
        (scratch / "run" / "home").chmod(0o700)
        (scratch / "run" / "runtime").chmod(0o755)
    budget = n_notebooks * (limits.notebook_timeout + 60) + 60
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               JUPYTER_RUNTIME_DIR=str(scratch / "run" / "runtime"))
    with open(scratch / "worker.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "collabkit.grade", "--worker", str(scratch / "job.json")],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=scratch)
        try:
            proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            kill_uid(job["uid"])
    path = scratch / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for name in job["notebooks"]:
        results.setdefault(name, {"status": "grader_error" if proc.returncode not in (0, -9) else "timed_out",
                                  "error": f"worker exited with {proc.returncode}; see its log",
                                  "log": (scratch / "worker.log").read_text(errors="replace")[-2000:]})
    return results


def score_cells(nb, specs: dict, info: dict | None, status: str) -> list[dict]:
    """One row per graded cell: score and status, from the executed notebook and what happened to it."""
    from nbgrader import utils
    rows = []
    index = {c.metadata.get("nbgrader", {}).get("grade_id"): i for i, c in enumerate(nb.cells)} if nb else {}
    for gid, spec in specs.items():
        if not (spec.grade or spec.task):
            continue
        row = {"grade_id": gid, "max_score": spec.points, "score": 0.0, "status": status}
        rows.append(row)
        if status:  # the notebook never ran (unreadable, missing, killed with its worker, kit failure)
            continue
        i = index[gid]
        cell = nb.cells[i]
        if spec.task and not spec.points:
            row.update(score=0.0, status="no_points")  # a rubric holder worth nothing: nothing to grade
            continue
        if spec.task or spec.solution or cell.cell_type != "code":
            score = None if spec.task else utils.determine_grade(cell)[0]
            row.update(score=score, status="needs_manual_grade" if score is None else "no_response")
            continue
        reply = info["replies"].get(str(i), info["replies"].get(i))
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if i in info.get("timed_out", []):
            row["status"] = "timed_out"
        elif reply is None:
            row["status"] = "crashed" if info["status"] == "crashed" and info.get("current") == i else (
                "timed_out" if info["status"] == "timed_out" and info.get("current") == i else "not_run")
        elif errors and errors[0].ename == "MemoryError":
            row["status"] = "memory_limit"
        else:
            score = utils.determine_grade(cell)[0] or 0.0
            if reply == "error" and score > 0:  # the kernel said it failed, whatever the outputs say
                score = 0.0
            row.update(score=score, status="passed" if score >= spec.points else ("partial" if score > 0 else "failed"))
    return rows


def events(nb, info: dict, entry: dict) -> list[str]:
    """What happened while the notebook ran, in sentences, naming cells by grade id or position."""
    def where(i):
        gid = nb.cells[i].metadata.get("nbgrader", {}).get("grade_id") if i is not None and i < len(nb.cells) else None
        return f"cell {gid}" if gid else f"cell {i + 1 if i is not None else '?'} (unnamed)"
    out = [f"{where(i)} ran past its time limit and was interrupted" for i in info.get("timed_out", [])]
    if info.get("killed"):
        out.append(f"the kernel was killed in {where(info.get('current'))}: {info['killed']}")
    elif info["status"] == "crashed":
        out.append(f"the kernel died in {where(info.get('current'))}; later cells did not run")
    for i, c in enumerate(nb.cells):
        if any(o.get("ename") == "MemoryError" for o in c.get("outputs", [])):
            out.append(f"{where(i)} ran out of memory (MemoryError)")
    out += [f"{where(i)} printed too much; its output was cut short" for i in info.get("truncated", [])]
    return out


def notebook_status(entry: dict, rows: list[dict]) -> str:
    cell = {r["status"] for r in rows}
    if entry["status"]:
        return entry["status"]
    if "crashed" in cell or entry.get("run_status") == "crashed":
        return "crashed"
    if "timed_out" in cell or entry.get("run_status") == "timed_out" or entry.get("timed_out_cells"):
        return "timed_out"
    if "memory_limit" in cell or entry.get("memory_error"):
        return "memory_limit"
    if entry["tampering"]:
        return "tampered"
    if entry["repairs"]:
        return "repaired"
    return "needs_manual_grade" if "needs_manual_grade" in cell else "graded"


def worst(statuses) -> str:
    order = list(STATUSES)
    return min(statuses, key=order.index) if statuses else "graded"


def finish(course: Course, student: str, record: dict, results: dict,
           specs: dict, releases: dict, hidden: dict) -> dict:
    """Write the autograded notebooks, the gradebook rows, the feedback and grading.json for one student."""
    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader import utils
    scratch = Path(record.pop("scratch"))
    assignment, coursedir = course.assignment, course.coursedir
    auto_dir, fb_dir = course.autograded(student), course.feedback(student)
    for d in (auto_dir, fb_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    sub = course.submitted(student)
    stamp = coursedir.get_existing_timestamp(str(sub)) if (sub / "timestamp.txt").exists() else None
    for d in (auto_dir, fb_dir):
        if (sub / "timestamp.txt").exists():
            shutil.copy(sub / "timestamp.txt", d / "timestamp.txt")
    record["cells"] = []
    notebooks = {}
    for name, entry in record["notebooks"].items():
        info = results.get(name)
        if info is not None:
            entry["run_status"] = info["status"]
            entry["seconds"] = info.get("seconds")
            entry["output_truncated"] = bool(info.get("truncated"))
            entry["sandbox"] = info.get("sandbox")
            entry["timed_out_cells"] = info.get("timed_out", [])
            if info.get("error"):
                entry["error"] = info["error"]
            if "replies" not in info:  # the worker never finished this notebook (killed, or the kit failed)
                entry["status"] = info["status"] if info["status"] in STATUSES else "grader_error"
        out = scratch / "out" / f"{name}.ipynb"
        if entry["status"] is None and out.exists():
            nb = nbformat.read(out, as_version=4)
        else:
            nb = nbformat.from_dict(json.loads(json.dumps(releases[name])))  # the release, unrun, as a placeholder
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(
                f"**collabkit**: this notebook was not graded: {entry['status']} ({entry.get('error', '')})."))
        rows = score_cells(nb, specs[name], info, entry["status"] or "")
        entry["memory_error"] = any(o.get("ename") == "MemoryError" for c in nb.cells for o in c.get("outputs", []))
        entry["events"] = events(nb, info, entry) if info and entry["status"] is None else []
        entry["status"] = notebook_status(entry, rows)
        for r in rows:
            record["cells"].append(dict(notebook=name, **r))
        nbformat.write(nb, auto_dir / f"{name}.ipynb")
        notebooks[name] = (nb, rows)

    # the gradebook: this process is the only writer; one commit per student
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's own SQLAlchemy noise
        gb.update_or_create_student(student)
        gb.update_or_create_submission(assignment, student, **({"timestamp": stamp} if stamp else {}))
        for name, (nb, rows) in notebooks.items():
            by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
            for r in rows:
                grade = gb.find_grade(r["grade_id"], name, assignment, student)
                grade.auto_score = r["score"]
                grade.needs_manual_grade = grade.manual_score is not None or r["score"] is None
                if grade.manual_score is not None:
                    r["status"] = "manually_graded"
            for gid, spec in specs[name].items():
                if spec.solution or spec.task:
                    comment = gb.find_comment(gid, name, assignment, student)
                    cell = by_id.get(gid)
                    unanswered = cell is None or (not spec.task and cell.metadata.get("nbgrader", {}).get("checksum")
                                                  == utils.compute_checksum(cell))
                    comment.auto_comment = "No response." if unanswered else None
        gb.db.commit()
        db_url = coursedir.db_url

    record["status"] = worst([e["status"] for e in record["notebooks"].values()])
    record["score"] = sum(r["score"] or 0 for r in record["cells"])
    record["max_score"] = sum(r["max_score"] or 0 for r in record["cells"])
    record["graded_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")

    write_feedback(fb_dir, db_url, assignment, student, {n: nb for n, (nb, _) in notebooks.items()},
                   record["notebooks"], specs, hidden)
    (auto_dir / "grading.json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    if not os.environ.get("COLLABKIT_KEEP_SCRATCH"):
        shutil.rmtree(scratch, ignore_errors=True)
    return record


def write_feedback(fb_dir: Path, db_url: str, assignment: str, student: str, notebooks: dict,
                   entries: dict, specs: dict, hidden: dict) -> None:
    """feedback/<student>/<assignment>/<notebook>.html, with the gradebook's current scores."""
    from .feedback import render
    for name, nb in notebooks.items():
        tests = {gid for gid, s in specs[name].items() if s.grade and not s.solution}
        resources = {"nbgrader": {"notebook": name, "assignment": assignment, "student": student, "db_url": db_url}}
        html = render(nb, resources, hidden[name], tests, feedback_note(entries[name]))
        (fb_dir / f"{name}.html").write_text(html)


def refresh_feedback(course: Course, students: list[str] | None = None) -> list[str]:
    """Render feedback again from the autograded notebooks and the gradebook (after hand-grading).

    Returns the students whose feedback was written; runs no student code."""
    import nbformat
    specs, _, hidden = load_assignment(course)
    done = []
    for student in course.graded_students():
        if students and student not in students:
            continue
        record_path = course.autograded(student) / "grading.json"
        record = json.loads(record_path.read_text())
        notebooks = {name: nbformat.read(record_path.parent / f"{name}.ipynb", as_version=4)
                     for name in specs if (record_path.parent / f"{name}.ipynb").exists()}
        fb_dir = course.feedback(student)
        fb_dir.mkdir(parents=True, exist_ok=True)
        write_feedback(fb_dir, course.db_url, course.assignment, student, notebooks, record.get("notebooks", {}), specs, hidden)
        done.append(student)
    return done


def feedback_note(entry: dict | None) -> str | None:
    if not entry:
        return None
    lines = []
    status = entry["status"]
    if status not in ("graded", "needs_manual_grade"):
        lines.append(f"**How this notebook was graded: {status.replace('_', ' ')}.** {STATUSES[status]}.")
    for r in entry.get("repairs", []) + entry.get("events", []):
        lines.append(f"- {r}")
    return "\n".join(lines) if lines else None


# ---------------------------------------------------------------------------- the batch

def grade(course: Course, students: list[str] | None = None, workers: int = 2,
          limits: Limits | None = None, reference: Path | None = None, log=None) -> list[dict]:
    """Grade submitted/<student>/<assignment>/ (every student, or those named) and write the exports.

    Returns one record per student (status, score, max_score, notebooks, cells, timings).
    Raises KitError only when the run itself cannot go on (no release, no gradebook, no reference).
    """
    from .data import ensure_movielens
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    root, assignment = course.root, course.assignment
    limits = Limits(**asdict(limits)) if limits else Limits()
    if limits.timeout is None:
        limits.timeout = float(course.nbgrader_config().Execute.timeout)
    reference = Path(reference or course.reference)
    if not reference.is_file():
        raise KitError(f"{reference} is missing: run `collabkit reference` first")
    db = course.gradebook
    specs, releases, hidden = load_assignment(course)
    found = course.submitted_students()
    if students:
        missing = sorted(set(students) - set(found))
        if missing:
            raise KitError(f"no submission for {', '.join(missing)} under {course.submitted('*').parent.parent}")
        found = [s for s in found if s in set(students)]
    data = ensure_movielens(quiet=True)
    backup = backup_gradebook(db)
    if backup:
        log(f"collabkit grade: gradebook backed up to {backup.name}")
    if os.geteuid() != 0:
        log("collabkit grade: not running as root, so student code runs as this user with no private "
            "mount namespace; it could read the course folder. Grade as root (or in a container) for isolation.")

    top = Path(tempfile.mkdtemp(prefix="collabkit-grade-"))
    os.chmod(top, 0o711)
    lease = SlotLease(max(1, workers))  # uids no other grading run on this machine holds
    slots: queue.Queue = queue.Queue()
    for uid in lease.uids:
        slots.put(uid)

    def one(student: str) -> tuple[str, dict, dict]:
        slot = slots.get()
        try:
            scratch = top / student
            record = prepare(course, student, specs, releases, scratch, reference, data)
            record["scratch"] = str(scratch)
            todo = [n for n, e in record["notebooks"].items() if e["status"] is None]
            job = dict(root=str(root), scratch=str(scratch), run=str(scratch / "run"), uid=slot,
                       notebooks=todo, limits=asdict(limits), fastai_home=str(data.parent.parent))
            start = time.monotonic()
            results = run_worker(job, limits, len(todo)) if todo else {}
            record["seconds"] = round(time.monotonic() - start, 1)
            return student, record, results
        finally:
            slots.put(slot)

    records = []
    t0 = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(one, s): s for s in found}
            for k, fut in enumerate(concurrent.futures.as_completed(futures), 1):
                student = futures[fut]
                try:
                    student, record, results = fut.result()
                    record = finish(course, student, record, results, specs, releases, hidden)
                except Exception as err:  # noqa: BLE001  the kit's own failure for this student
                    import traceback
                    record = {"student_id": student, "status": "grader_error", "score": 0, "max_score": None,
                              "error": traceback.format_exc(limit=8), "notebooks": {}, "cells": []}
                    auto = course.autograded(student)
                    auto.mkdir(parents=True, exist_ok=True)
                    (auto / "grading.json").write_text(json.dumps(record, indent=1, default=str))
                    log(f"collabkit grade: {student}: the kit failed: {type(err).__name__}: {err}")
                records.append(record)
                elapsed = time.monotonic() - t0
                eta = elapsed / k * (len(found) - k)
                log(f"[{k}/{len(found)}] {student}: {record['status']} {record['score']:g}/{record['max_score'] or 0:g}"
                    f" ({record.get('seconds', 0):.0f} s); ETA {_duration(eta)}")
    finally:
        lease.release()
        if not os.environ.get("COLLABKIT_KEEP_SCRATCH"):
            shutil.rmtree(top, ignore_errors=True)
    # --- issue 11: late work (collabkit/late.py): penalties into the gradebook, grading.json, feedback
    from .late import apply_late_penalties
    apply_late_penalties(course, [r["student_id"] for r in records if r["status"] != "grader_error"])
    # --- end issue 11
    export(course)
    return sorted(records, key=lambda r: r["student_id"])


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def demo(course: Course, workers: int = 2) -> int:
    """`collabkit demo`: a throwaway course in .demo/ with four sample students, graded and printed.

    alice submits the instructor's solution, bob the release untouched, carol the solution
    with a test cell edited and another tagged to skip, dave a solution with one notebook
    cut short (invalid JSON). Nothing touches the course's own gradebook.
    """
    import nbformat
    from .samples import make_course, notebook_names, place, submission
    home = course
    course = home.root / ".demo"
    shutil.rmtree(course, ignore_errors=True)
    make_course(course, home.root)
    if not home.reference.exists():
        from .reference import build_reference
        build_reference(home)
    (course / "solutions").mkdir(exist_ok=True)
    shutil.copy(home.reference, course / "solutions" / "reference.json")
    names = notebook_names(course)
    place(course, "alice", {n: submission(course, n) for n in names})
    place(course, "bob", {n: submission(course, n, blank=True) for n in names})
    carol = {n: submission(course, n) for n in names}
    tests = [c for c in carol[names[0]].cells if c.metadata.get("nbgrader", {}).get("grade")
             and not c.metadata.nbgrader.get("solution")]
    tests[0].source = "pass  # trust me"
    tests[1].metadata["tags"] = ["skip-execution"]
    place(course, "carol", carol)
    dave = {n: submission(course, n) for n in names}
    text = nbformat.writes(dave[names[-1]])
    dave[names[-1]] = text[: len(text) // 2]
    place(course, "dave", dave)
    records = grade(Course.open(course, home.assignment), workers=workers)
    print((course / "exports" / "grades.csv").read_text())
    print(f"Feedback: {course / 'feedback'}; autograded notebooks and grading.json: {course / 'autograded'}")
    return 1 if any(r["status"] == "grader_error" for r in records) else 0


def export(course: Course) -> tuple[Path, Path]:
    """exports/grades.csv and exports/grades_by_cell.csv, sorted, from the gradebook and each grading.json."""
    from nbgrader.api import Gradebook, MissingEntry
    assignment = course.assignment
    out = course.exports
    out.mkdir(exist_ok=True)
    students, cells = [], []
    if not course.gradebook.exists():
        raise KitError(f"{course.gradebook} is missing: run `collabkit release` first")
    with Gradebook(course.db_url, course.coursedir.course_id) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise KitError(f"the gradebook has no assignment {assignment}: run `collabkit release` first") from None
        for sub in sorted(gb.assignment_submissions(assignment), key=lambda s: s.student.id):
            sid = sub.student.id
            path = course.autograded(sid) / "grading.json"
            record = json.loads(path.read_text()) if path.exists() else {}
            status = record.get("status", "not_graded_by_collabkit")
            by_cell = {(c["notebook"], c["grade_id"]): c["status"] for c in record.get("cells", [])}
            waiting = 0
            for nb in sorted(sub.notebooks, key=lambda n: n.name):
                for g in sorted(nb.grades, key=lambda g: g.name):
                    st = by_cell.get((nb.name, g.name), "unknown")
                    if g.manual_score is not None:
                        st = "manually_graded"
                    waiting += g.needs_manual_grade and g.manual_score is None
                    cells.append([sid, nb.name, g.name, _num(g.score if g.score is not None else 0),
                                  _num(g.max_score), st])
            notes = "; ".join(f"{n}: {r}" for n, e in sorted(record.get("notebooks", {}).items())
                              for r in e.get("repairs", []) + e.get("events", []) +
                              ([e["error"]] if e.get("error") and e["status"] != "crashed" else []))
            students.append([sid, status, _num(sub.score), _num(sub.max_score), waiting, notes,
                             _num(sub.late_submission_penalty)])  # issue 11: late_penalty column
    grades, by_cell = out / "grades.csv", out / "grades_by_cell.csv"
    _write_csv(grades, ["student_id", "status", "score", "max_score", "cells_awaiting_hand_grading", "notes",
                        "late_penalty"], students)
    _write_csv(by_cell, ["student_id", "notebook", "grade_id", "score", "max_score", "status"], cells)
    return grades, by_cell


def _num(x) -> str:
    return f"{float(x):g}" if x is not None else ""


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker(Path(sys.argv[2])))
    print("usage: python -m collabkit.grade --worker JOB (internal); use `collabkit grade`", file=sys.stderr)
    sys.exit(2)
