"""Runs in the worker process (one per student, a child of the Dask task in task.py): execute notebooks.

`python -m collabkit.grading.worker JOB` reads a `Job`, executes each of its sanitized notebooks
in a fresh kernel started through sandbox.py (its own uid, mount and network namespaces, limits)
and kernel_guard.py (told which cells are graded tests, which then run on the kernel's own machinery),
talking to it over unix sockets in the submission's run folder (jupyter's `ipc` transport: the
kernel's network namespace has no route to this process), and
writes one `NotebookRun` per notebook to `results.json`. It never opens the gradebook or the
course: the grading parent (batch.py) does all of that, from what the task sends back.

Each kernel is watched: a per-cell timeout interrupts it, and a watchdog kills the kernel's
whole process group (and every process of the slot's uid) when a cell ignores the interrupt or
the notebook runs past its wall clock. This process is a child subreaper, so whatever a kernel
forks comes back here and is killed too.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .records import Job, NotebookRun
from .sandbox import SandboxConfig

# Folders whose parent must never be hidden wholesale (hiding /tmp's parent would hide /).
SYSTEM_DIRS = {
    "/",
    "/home",
    "/usr",
    "/opt",
    "/var",
    "/srv",
    "/etc",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/boot",
    "/mnt",
    "/media",
    "/tmp",
    "/root",
}


def kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid`: a helper running as that uid signals -1 (all it may signal)."""
    if os.geteuid() != 0:
        return
    subprocess.run(
        ["/bin/sh", "-c", "kill -9 -1"],
        user=uid,
        group=uid,
        extra_groups=[],
        env={},
        cwd="/",
        check=False,
        stderr=subprocess.DEVNULL,
    )


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


# ---------------------------------------------------------------------------- the kernel


def _client_class():
    import nbformat
    from jupyter_client import AsyncKernelManager
    from nbclient import NotebookClient

    class SandboxKernelManager(AsyncKernelManager):
        sandbox_config = ""
        graded: list[str] | None = None  # digests of the graded test cells (kernel_guard.py); None: no guard
        forkserver: str | None = None  # the slot's fork server (forkserver.py); None: execute the command
        warm_error: str | None = None  # why the fork server could not give this notebook its kernel

        def format_kernel_cmd(self, extra_arguments=None):
            return kernel_cmd(self.sandbox_config, self.connection_file, self.graded)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            """The same command, forked by the fork server instead of executed, when there is one."""
            if self.forkserver:
                try:
                    process = ForkedKernel(self.forkserver, kernel_cmd, kw.get("env") or {})
                except OSError as err:  # the server is gone: this notebook's kernel is executed
                    self.warm_error = f"{type(err).__name__}: {err}"
                else:
                    prov = self.provisioner
                    prov.process, prov.pid, prov.pgid, prov.cwd = process, process.pid, process.pid, kw.get("cwd")
                    self._reconcile_connection_info(prov.connection_info)
                    return
            await super()._async_launch_kernel(kernel_cmd, **kw)

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
            outs.append(
                nbformat.v4.new_output(
                    "stream",
                    name="stdout",
                    text=(
                        f"\n[collabkit: this cell printed more than {self.output_bytes / 2**20:g} MB; "
                        "the rest of its output was dropped]\n"
                    ),
                )
            )
            return None

    return SandboxKernelManager, GradingClient


class ForkedKernel:
    """A kernel the fork server forked, handled as jupyter_client handles the Popen of one it executed
    (pid, poll, wait, send_signal, kill, terminate). Holding the connection is holding the kernel:
    the server kills it when this process closes the connection or dies."""

    stdin = stdout = stderr = None

    def __init__(self, server: str, cmd: list[str], env: dict):
        self.returncode: int | None = None
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.conn.settimeout(30)
            self.conn.connect(server)
            request = {
                "config": cmd[cmd.index("collabkit.grading.sandbox") + 1],
                "kernel": cmd[cmd.index("--") + 1 :],
                "jpy": {k: v for k, v in env.items() if k.startswith("JPY_")},
            }
            socket.send_fds(self.conn, [json.dumps(request).encode() + b"\n"], [sys.stdout.fileno()])
            data, fds, _, _ = socket.recv_fds(self.conn, 4096, 1)
            self.buffer = data
            reply = json.loads(data.split(b"\n")[0] or b"{}")
            if "pid" not in reply or not fds:
                raise OSError(f"the fork server gave no kernel: {reply.get('error', 'no reply')}")
        except (OSError, ValueError) as err:
            self.conn.close()
            raise OSError(str(err)) from err
        self.pid, self.pidfd = reply["pid"], fds[0]

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self.pidfd], [], [], 0)[0]:
            self.returncode = self._exit_code()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self.pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            self.returncode = self._exit_code()
        return self.returncode

    def _exit_code(self) -> int:
        """It has exited: the status the server reports once it has reaped it (-9 if none comes)."""
        try:
            self.conn.settimeout(5)
            while b'"exit"' not in self.buffer:
                data = self.conn.recv(4096)
                if not data:
                    break
                self.buffer += data
            lines = [json.loads(x) for x in self.buffer.split(b"\n") if x.strip()]
            return next((m["exit"] for m in lines if "exit" in m), -9)
        except (OSError, ValueError):
            return -9
        finally:
            self.close()

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                signal.pidfd_send_signal(self.pidfd, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def close(self) -> None:
        self.conn.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


def kernel_cmd(sandbox_config: str, connection_file: str, graded: list[str] | None) -> list[str]:
    """The kernel's command line: sandbox.py, then kernel_guard.py (or plain ipykernel without a guard).
    `-P`: the kernel's working folder, which student code can write, never comes first on sys.path,
    so neither this privileged launcher nor the next kernel imports a module a student left there."""
    py = [sys.executable, "-P", "-m"]
    launcher = ["collabkit.grading.kernel_guard", ",".join(graded)] if graded is not None else ["ipykernel_launcher"]
    return [*py, "collabkit.grading.sandbox", sandbox_config, "--", *py, *launcher, "-f", connection_file]


def graded_digests(nb) -> list[str]:
    """The sha256 of each graded test cell's code (autograded, not an answer), as kernel_guard knows them.
    The sanitized notebook's nbgrader metadata is the release's, so a student cannot unmark a test."""
    from .kernel_guard import digest

    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            out.append(digest(cell.source))
    return sorted(set(out))


def kernel_env(run: Path) -> dict:
    """The kernel's whole environment: one numeric thread, its own home, the copy of the data (no
    COLLABKIT_REFERENCE: the reference values are written into the test cells)."""
    home = run / "home"
    threads = {
        k: "1"
        for k in (
            "OMP_NUM_THREADS",
            "MKL_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "NUMEXPR_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS",
        )
    }
    return dict(
        threads,
        PATH=f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        LANG="C.UTF-8",
        HOME=str(home),
        IPYTHONDIR=str(home / ".ipython"),
        MPLCONFIGDIR=str(home / ".matplotlib"),
        XDG_CACHE_HOME=str(home / ".cache"),
        TMPDIR=str(home / "tmp"),
        FASTAI_HOME=str(run / "fastai"),
        NBGRADER_EXECUTION="autograde",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONNOUSERSITE="1",
    )


def sandbox_config(job: Job, nb_name: str) -> SandboxConfig:
    """What sandbox.py applies to one kernel: it sees Python, the kit and its own folder, nothing of the course."""
    run, scratch, top = job.run, Path(job.scratch), Path(job.scratch).parent
    import collabkit

    pkg = Path(collabkit.__file__).resolve().parent
    private = [Path(job.root).resolve(), top]
    if (pkg.parent / "nbgrader_config.py").exists() or (pkg.parent / ".git").exists():
        private.append(pkg.parent)  # an editable install: the package sits in a course checkout
    hide = {str(p) for p in private} | {os.path.expanduser("~"), job.fastai_home}
    hide |= {str(p.parent) for p in private if str(p.parent) not in SYSTEM_DIRS}
    hide |= set(filter(None, os.environ.get("COLLABKIT_SANDBOX_HIDE", "").split(":")))

    def keep(p: Path) -> bool:
        return not any(_inside(p, q) or _inside(q, p) for q in private)

    expose = {sys.prefix, sys.base_prefix, str(pkg)}
    expose |= {p for p in sys.path if p and os.path.isdir(p) and keep(Path(p).resolve())}
    limits = job.limits
    return SandboxConfig(
        namespace=True,
        hide=sorted(hide),
        private_tmp=["/tmp", "/var/tmp", "/dev/shm"],
        expose_ro=sorted(expose),
        expose_rw=[str(run)],
        uid=job.uid,
        gid=job.uid,
        cwd=str(run / "home"),
        env=kernel_env(run),
        report=str(scratch / f"sandbox-{nb_name}.json"),
        limits={"as": limits.memory_mb * 2**20, "nproc": limits.nproc, "fsize": limits.fsize_mb * 2**20, "core": 0},
    )


UNIX_PATH_MAX = 107  # sun_path's 108 bytes, less the terminating NUL


def ipc_prefix(job: Job) -> Path | None:
    """Where the kernel's unix sockets go (`<prefix>-<n>`): a folder of the kernel's uid inside the
    run folder, which the kernel's mount namespace shows read-write; None if the path is too long."""
    folder = job.run / "ipc"
    prefix = folder / "k"
    if len(str(prefix)) + len("-65535") > UNIX_PATH_MAX:
        return None
    folder.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0 and job.uid is not None:
        os.chown(folder, job.uid, job.uid)  # the kernel (after its uid switch) creates the sockets
    return prefix


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def execute_notebook(job: Job, name: str, src: Path, dest: Path) -> NotebookRun:
    """Run one sanitized notebook in a sandboxed kernel; write it executed to `dest`; say what happened."""
    import nbformat
    from nbclient.exceptions import DeadKernelError

    KernelManager, Client = _client_class()
    limits, uid, scratch = job.limits, job.uid, Path(job.scratch)
    cfg = sandbox_config(job, name)
    ipc = ipc_prefix(job)
    cfg.net_namespace = ipc is not None  # over tcp the grader could not reach a kernel without the network
    cfg_path = scratch / f"sandbox-{name}.config.json"
    cfg.write(str(cfg_path))
    nb = nbformat.read(src, as_version=4)
    km = KernelManager(kernel_name="python3")
    if ipc is not None:
        km.transport, km.ip = "ipc", str(ipc)
    km.sandbox_config = str(cfg_path)
    km.graded = graded_digests(nb) if limits.kernel_guard else None
    km.forkserver = job.forkserver if limits.warm_kernels else None
    km.connection_file = str(job.run / "runtime" / f"kernel-{name}.json")
    client = Client(
        nb,
        km=km,
        timeout=int(limits.timeout),
        interrupt_on_timeout=True,
        allow_errors=True,
        raise_on_iopub_timeout=False,
        iopub_timeout=5,
        record_timing=False,
        startup_timeout=120,
        skip_cells_with_tag="collabkit-never-skips-a-cell",
        shutdown_kernel="immediate",
        resources={"metadata": {"path": cfg.cwd}},
        output_bytes=int(limits.output_mb * 2**20),
    )
    run = NotebookRun()
    fired, done = threading.Event(), threading.Event()

    def watchdog():
        deadline = time.monotonic() + limits.notebook_timeout
        while not done.wait(0.25):
            now = time.monotonic()
            over = now > deadline
            stuck = client.started is not None and now - client.started > limits.timeout + limits.grace
            if over or stuck:
                run.killed = "notebook wall clock" if over else "cell ignored the timeout's interrupt"
                fired.set()
                proc = getattr(km.provisioner, "process", None) if km.provisioner else None
                if proc is not None:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                kill_uid(uid)
                return

    kill_uid(uid)
    threading.Thread(target=watchdog, daemon=True).start()
    start = time.monotonic()
    try:
        client.execute()
    except DeadKernelError:
        run.status = "timed_out" if fired.is_set() else "crashed"
    except Exception as err:  # noqa: BLE001  nbclient may raise anything when a kernel misbehaves
        run.status = "timed_out" if fired.is_set() else "crashed"
        run.error = f"{type(err).__name__}: {err}"
    finally:
        done.set()
        if fired.is_set():
            run.status = "timed_out"
        kill_uid(uid)
        kill_descendants()
    run.seconds = round(time.monotonic() - start, 2)
    run.replies, run.timed_out, run.truncated = client.replies, sorted(client.timed_out), sorted(client.truncated)
    run.current = client.current
    run.kernel = "warm" if km.forkserver and not km.warm_error else "cold"
    if km.warm_error or (limits.warm_kernels and job.cold_because):
        run.kernel = f"cold: {job.cold_because or f'the fork server gave no kernel ({km.warm_error})'}"
    report = scratch / f"sandbox-{name}.json"
    run.sandbox = json.loads(report.read_text()) if report.exists() and report.stat().st_size else None
    if run.sandbox is not None:
        run.sandbox["kernel"] = run.kernel
    nbformat.write(nb, dest)
    return run


def main(job_path: Path) -> int:
    """Execute one student's notebooks, one kernel each, writing results.json after each."""
    job = Job.from_json(json.loads(job_path.read_text()))
    import ctypes

    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of kernels come back to us
    results: dict[str, dict] = {}
    scratch = Path(job.scratch)
    for name in job.notebooks:
        try:
            run = execute_notebook(job, name, scratch / "in" / f"{name}.ipynb", scratch / "out" / f"{name}.ipynb")
        except Exception as err:  # noqa: BLE001  the kit's own failure on this notebook
            import traceback

            run = NotebookRun(status="grader_error", error=traceback.format_exc(limit=5), finished=False)
            print(f"{name}: {type(err).__name__}: {err}", file=sys.stderr)
        results[name] = run.to_json()
        (scratch / "results.json").write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m collabkit.grading.worker JOB (internal); use `collabkit grade`", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
