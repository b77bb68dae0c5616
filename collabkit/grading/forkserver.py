"""Runs as the fork server (one per grading slot, started by the Dask worker's `Host`): warm kernels.

`python -P -m collabkit.grading.forkserver SOCKET` imports the heavy part of what every notebook's
first cell imports (torch, pandas, scikit-learn, matplotlib, IPython, ipykernel), once, and serves one request
at a time on the unix socket SOCKET (mode 0600: only the grader's user connects). A request is one
kernel: the worker process (worker.py) sends a JSON line naming the sandbox config, the kernel's
argv and jupyter_client's JPY_ variables, with the file descriptor the kernel's output goes to. The
server forks; the child is the new kernel:

1. it drops everything the server holds open (the listening socket, the connections) and starts a
   session of its own (so its process group is the kernel's, as with a kernel that was executed);
2. it applies the sandbox exactly as sandbox.py does before it executes a cold kernel (mount and
   network namespaces, limits, no new privileges, the slot's uid, death with its parent, working
   folder), so no student code runs before that;
3. it takes the kernel's environment and starts the kernel as kernel_guard.py does.

The server answers with the kernel's pid and a pidfd for it, and later with its exit status. The
connection is the kernel's lease: when the worker process closes it (or dies), the server kills the
kernel's process group, and every process left below the server (orphans of a kernel come back
here: it is a child subreaper).

Why this is as isolated as a kernel that was executed: the server never runs student code, and
every kernel is a fresh fork of it, so each notebook starts from the same pristine, never-used
interpreter, in a process of its own that nothing of an earlier kernel can reach. The server's own
environment is scrubbed (a kernel can read the environment it was forked with in /proc) and it
reads nothing of the course. It is single-threaded when it forks (it refuses to serve otherwise):
pyarrow's allocator thread is switched off (JE_ARROW_MALLOC_CONF), and nothing runs torch before
the fork, so no thread pool is copied half-held.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time

# What a notebook's first cells import, loaded here once and shared (copy-on-write) by every kernel:
# the heavy libraries underneath fastai, which keep no state about where they run. fastai itself and
# fastcore, fastprogress and fastdownload are left to each kernel (about 0.6 s): they ask at import
# time whether they run in a notebook (for HTML progress bars and tables), and this server is not one.
WARM_MODULES = (
    "numpy",
    "pandas",
    "torch",
    "scipy.stats",
    "sklearn.model_selection",
    "matplotlib.pyplot",
    "PIL.Image",
    "IPython",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
)
LEFT_TO_THE_KERNEL = ("fastai", "fastcore", "fastprogress", "fastdownload", "collabkit.nb")
# The server's environment (the kernels' own replaces it after the fork): one thread, no allocator
# thread, the inline plots ipykernel would choose (matplotlib reads MPLBACKEND when it is imported).
SERVER_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "LANG": "C.UTF-8",
}
MAX_REQUEST = 1 << 16


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def warm_up() -> None:
    """Import the stack, silently (its import-time warnings are the kit's to quiet, in the kernel)."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in WARM_MODULES:
            importlib.import_module(name)


def become_kernel(request: dict, out_fd: int) -> None:
    """In the forked child: sandbox this process, then run the kernel in it; never returns."""
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        signal.set_wakeup_fd(-1)  # before its fd is closed (or reused by the kernel)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.closerange(3, 1 << 16)  # the server's socket, its connections, the fds this request brought
        os.setsid()
        import tempfile

        from .sandbox import SandboxConfig, apply

        os.environ.update({k: v for k, v in request["jpy"].items() if k.startswith("JPY_")})
        kernel = request["kernel"]
        env = apply(SandboxConfig.read(request["config"]), kernel, warm=True)
        os.environ.clear()
        os.environ.update(env)
        tempfile.tempdir = None  # computed again from the kernel's TMPDIR
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        sys.argv = kernel
        from .kernel_guard import main as guarded

        if "collabkit.grading.kernel_guard" in kernel:  # the cold command's tail: [python, -P, -m, guard, D, -f, C]
            guarded(kernel[kernel.index("collabkit.grading.kernel_guard") + 1 :])
        else:
            from ipykernel.kernelapp import IPKernelApp

            app = IPKernelApp.instance()
            app.initialize(kernel[kernel.index("-f") :])
            app.start()
        code = 0
    except BaseException as err:  # noqa: BLE001  the child must never return into the server's loop
        try:
            os.write(2, f"collabkit fork server: the kernel failed to start: {type(err).__name__}: {err}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


class Server:
    """The loop: accept a connection, read its request, fork a kernel; report exits; kill on hang-up."""

    def __init__(self, path: str):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.listener.bind(path)
        finally:
            os.umask(old)
        self.listener.listen(8)
        self.kernels: dict[socket.socket, int] = {}  # connection -> its kernel's pid
        self.waiting: dict[socket.socket, tuple] = {}  # connections whose request is still coming: bytes, fds

    def serve(self) -> None:
        wake, self.wakeup = socket.socketpair()  # a SIGCHLD writes a byte here, which wakes select
        self.wakeup.setblocking(False)
        signal.set_wakeup_fd(self.wakeup.fileno())
        signal.signal(signal.SIGCHLD, lambda *a: None)
        while True:
            ready, _, _ = select.select([self.listener, wake, *self.waiting, *self.kernels], [], [], 5.0)
            for sock in ready:
                if sock is wake:
                    wake.recv(4096)
                elif sock is self.listener:
                    conn, _ = self.listener.accept()
                    self.waiting[conn] = (b"", [])
                elif sock in self.waiting:
                    self.read_request(sock)
                else:  # a kernel's worker hung up (or wrote, which it should not): its kernel goes
                    self.hang_up(sock)
            self.reap()

    def read_request(self, conn: socket.socket) -> None:
        """Read (a part of) a request; once its line is whole, fork its kernel, or answer why not."""
        try:
            data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 4)
        except OSError:
            data, fds = b"", []
        raw, held = self.waiting[conn]
        raw, held = raw + data, held + fds
        if data and not raw.endswith(b"\n") and len(raw) < MAX_REQUEST:
            self.waiting[conn] = (raw, held)
            return
        del self.waiting[conn]
        try:
            request = json.loads(raw)
            if not held:
                raise ValueError("no output file descriptor came with the request")
            pid = os.fork()
        except (ValueError, OSError) as err:  # a bad request, or no fork (the process limit)
            self.reply(conn, {"error": f"bad request: {err}" if isinstance(err, ValueError) else f"fork: {err}"})
            conn.close()
            pid = None
        if pid == 0:
            become_kernel(request, held[0])
        for fd in held:
            os.close(fd)
        if pid is None:
            return
        pidfd = os.pidfd_open(pid)
        try:
            socket.send_fds(conn, [json.dumps({"pid": pid}).encode() + b"\n"], [pidfd])
        except OSError:
            pass  # the worker is gone: hang_up kills the kernel when select sees it
        finally:
            os.close(pidfd)
        self.kernels[conn] = pid

    def reply(self, conn: socket.socket, message: dict) -> None:
        try:
            conn.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            pass

    def hang_up(self, conn: socket.socket) -> None:
        pid = self.kernels.pop(conn)
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        conn.close()
        self.reap()

    def reap(self) -> None:
        """Collect every child that exited; tell a kernel's worker how it ended; with no kernel left,
        kill whatever is left below the server (a kernel's orphans)."""
        by_pid = {pid: conn for conn, pid in self.kernels.items()}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = by_pid.get(pid)
            if conn is not None:
                code = os.waitstatus_to_exitcode(status)
                self.reply(conn, {"exit": code})
                del self.kernels[conn]
                conn.close()
        if not self.kernels:
            kill_children()


def kill_children() -> None:
    for pid in _children():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _children() -> list[int]:
    me = str(os.getpid())
    kids = []
    for task in os.listdir(f"/proc/{me}/task"):
        try:
            kids += [int(p) for p in open(f"/proc/{me}/task/{task}/children").read().split()]
        except OSError:
            pass
    return kids


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -P -m collabkit.grading.forkserver SOCKET (internal; started by collabkit grade)")
        return 2
    import ctypes

    libc = ctypes.CDLL(None)
    libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG: it dies with its Dask worker
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: kernels' orphans come back here
    start = time.monotonic()
    warm_up()
    early = sorted(m for m in LEFT_TO_THE_KERNEL if m in sys.modules)
    if early:
        print(
            f"collabkit fork server: {', '.join(early)} came in with the imports; kernels would inherit them",
            flush=True,
        )
        return 3
    if threads() != 1:
        print(f"collabkit fork server: {threads()} threads after the imports; forking them is unsafe", flush=True)
        return 3
    server = Server(argv[0])
    print(f"ready {time.monotonic() - start:.2f}", flush=True)  # the Host waits for this line
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
