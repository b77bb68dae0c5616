"""Warm kernels (collabkit/grading/forkserver.py): forked from a server that imported the stack once,
yet each as fresh and as shut in as a kernel that was executed.

In-memory notebooks run through the task's own code (`grade_student`, the worker process, the
sandbox) on a Host with one slot and its fork server, without Dask; the protocol tests talk to a
fork server directly. The bad-submission table and the isolation probe (test_bad_submissions.py)
run through warm kernels too, and test_warm_kernels.py grades the real solution both ways.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import IS_ROOT

from collabkit.grading import task as on_worker
from collabkit.grading.records import Limits, StudentTask, TaskResult
from collabkit.grading.sandbox import SandboxConfig
from collabkit.grading.worker import ForkedKernel, kernel_cmd

SECRET = "collabkit-test-secret-4e1f"
LIMITS = Limits(timeout=20, notebook_timeout=120, grace=3)


@pytest.fixture(scope="module")
def host():
    os.environ["COLLABKIT_TEST_SECRET"] = SECRET  # the grader's environment: no kernel may see it
    try:
        h = on_worker.Host(1, warm=True)
    finally:
        del os.environ["COLLABKIT_TEST_SECRET"]
    yield h
    h.close()


def server_pid(host) -> int:
    return next(iter(host.forkservers.procs.values())).pid


def run(host, notebooks: dict[str, list[str]], tmp_path: Path, limits: Limits = LIMITS) -> dict:
    """Grade in-memory notebooks (code cells) as one student on `host`; name -> (NotebookRun, outputs' text)."""
    texts = {}
    for name, cells in notebooks.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        texts[name] = nbformat.writes(nb)
    task = StudentTask(student="s", notebooks=texts, artefacts={}, limits=limits, root=str(tmp_path))
    on_worker.HOST = host
    try:
        result = TaskResult.from_json(on_worker.grade_student(task.to_json()))
    finally:
        on_worker.HOST = None
    out = {}
    for name in notebooks:
        nb = nbformat.reads(result.executed[name], as_version=4)
        text = [
            "".join(
                o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) + o.get("evalue", "")
                for o in c.outputs
            )
            for c in nb.cells
        ]
        out[name] = (result.runs[name], text)
    return out


def last_json(text: str):
    return json.loads(text.strip().splitlines()[-1])


PLANT = """
import builtins, sys, os, json, torch, collabkit.nb as ck
ck.SEED = 7
builtins.planted = 1
sys.modules["planted"] = sys
torch.nn.Linear.forward = None
torch.manual_seed(5)
print(json.dumps([os.getpid(), os.getppid()]))
"""
LOOK = """
import builtins, sys, os, json, torch, collabkit.nb as ck
print(json.dumps({"seed": ck.SEED, "planted": hasattr(builtins, "planted") or "planted" in sys.modules,
                  "linear": torch.nn.Linear.forward is not None, "pid": os.getpid(), "ppid": os.getppid()}))
"""
PRELOADED = "import sys, json\nprint(json.dumps(['torch' in sys.modules, 'fastai' in sys.modules]))"


def test_each_notebook_gets_a_fresh_fork_that_an_earlier_kernel_never_touched(host, tmp_path):
    got = run(host, {"a": [PRELOADED, PLANT], "b": [PRELOADED, LOOK]}, tmp_path)
    (run_a, out_a), (run_b, out_b) = got["a"], got["b"]
    assert run_a.status == run_b.status == "ok" and run_a.kernel == run_b.kernel == "warm", (run_a, run_b)
    assert last_json(out_a[0]) == last_json(out_b[0]) == [True, False]  # torch preloaded; fastai left to the kernel
    pid_a, ppid_a = last_json(out_a[1])
    seen = last_json(out_b[1])
    assert (seen["seed"], seen["planted"], seen["linear"]) == (42, False, True), seen
    assert seen["pid"] != pid_a and seen["ppid"] == ppid_a == server_pid(host)  # forked by the same server


def test_a_kernel_sees_none_of_the_graders_environment(host, tmp_path):
    code = "import os\nprint(open('/proc/self/environ').read().replace(chr(0), ' '), dict(os.environ))"
    (result, out) = run(host, {"env": [code]}, tmp_path)["env"]
    assert result.kernel == "warm" and "FASTAI_HOME" in out[0], out
    assert SECRET not in out[0]


def test_a_kernel_holds_none_of_the_servers_descriptors(host, tmp_path):
    server = server_pid(host)
    theirs = {os.readlink(f"/proc/{server}/fd/{fd}") for fd in os.listdir(f"/proc/{server}/fd")}
    theirs = {t for t in theirs if t.startswith("socket:") or t.endswith(".log")}
    code = (
        "import os, json\nlinks = []\nfor fd in os.listdir('/proc/self/fd'):\n    try:\n"
        "        links.append(os.readlink('/proc/self/fd/' + fd))\n    except OSError:\n        pass  # listdir's own\n"
        "print(json.dumps(links))"
    )
    (result, out) = run(host, {"fds": [code]}, tmp_path)["fds"]
    assert result.kernel == "warm" and theirs, (result, theirs)
    assert not theirs & set(last_json(out[0])), theirs & set(last_json(out[0]))


def test_a_cell_past_its_timeout_is_interrupted_and_the_next_cell_runs(host, tmp_path):
    limits = Limits(timeout=3, notebook_timeout=60, grace=3)
    (result, out) = run(
        host, {"loop": ["import time\nwhile True:\n    time.sleep(0.05)", "print('after')"]}, tmp_path, limits
    )["loop"]
    assert result.kernel == "warm" and result.timed_out == [0] and result.status == "ok", result
    assert "after" in out[1]


def test_a_crashing_kernel_is_reported_and_the_server_serves_the_next(host, tmp_path):
    got = run(host, {"crash": ["import os\nos._exit(3)", "print('never')"], "next": ["print('fine')"]}, tmp_path)
    (crash, out), (fine, out_next) = got["crash"], got["next"]
    assert crash.status == "crashed" and "never" not in out[1], crash
    assert fine.status == "ok" and fine.kernel == "warm" and "fine" in out_next[0]


def test_a_dead_fork_server_leaves_its_slot_with_cold_kernels_and_says_why(tmp_path):
    h = on_worker.Host(1, warm=True)
    try:
        proc = next(iter(h.forkservers.procs.values()))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        (result, out) = run(h, {"after": ["print('still graded')"]}, tmp_path)["after"]
    finally:
        h.close()
    assert result.status == "ok" and "still graded" in out[0]
    assert result.kernel.startswith("cold: ") and "not serving" in result.kernel, result.kernel
    assert result.sandbox["warm"] is False


class Protocol:
    """A fork server of one's own, and kernels asked of it the way the worker asks (no sandbox: not root)."""

    def __init__(self, tmp: Path):
        from jupyter_client.connect import write_connection_file

        self.servers = on_worker.ForkServers(tmp, [0])
        self.socket = self.servers.sockets[0]
        self.tmp = tmp
        self.conn, _ = write_connection_file(str(tmp / "kernel.json"), transport="ipc", ip=str(tmp / "k"))
        cfg = SandboxConfig(cwd=str(tmp), env={"PATH": os.environ["PATH"], "HOME": str(tmp)}, namespace=False)
        cfg.net_namespace = False
        cfg.write(str(tmp / "sandbox.json"))

    def kernel(self) -> ForkedKernel:
        return ForkedKernel(self.socket, kernel_cmd(str(self.tmp / "sandbox.json"), self.conn, []), {"JPY_X": "1"})

    def close(self):
        self.servers.close()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_the_server_reports_how_a_kernel_ended_and_kills_it_when_its_worker_hangs_up(tmp_path):
    server = Protocol(tmp_path)
    try:
        first = server.kernel()
        assert first.poll() is None and alive(first.pid)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == -signal.SIGTERM
        second = server.kernel()
        assert alive(second.pid) and second.pid != first.pid
        second.conn.close()  # the worker's end goes away, as when the worker process dies
        deadline = time.monotonic() + 10
        while alive(second.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(second.pid)
    finally:
        server.close()


def test_a_bad_request_gets_an_answer_and_the_server_goes_on(tmp_path):
    import socket

    server = Protocol(tmp_path)
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(server.socket)
        s.sendall(b"not json\n")
        assert "bad request" in json.loads(s.recv(4096))["error"]
        k = server.kernel()
        assert alive(k.pid)
        k.kill()
        assert k.wait(timeout=30) == -signal.SIGKILL
    finally:
        server.close()


@pytest.mark.skipif(not IS_ROOT, reason="the uid switch needs root")
def test_a_warm_kernel_runs_as_the_slots_uid_in_its_own_namespaces(host, tmp_path):
    code = "import os, json\nprint(json.dumps([os.getuid(), os.path.exists(" + repr(sys.prefix) + ")]))"
    (result, out) = run(host, {"who": [code]}, tmp_path)["who"]
    assert result.sandbox["namespace"] and result.sandbox["net_namespace"] and result.sandbox["warm"], result.sandbox
    assert last_json(out[0]) == [host.lease.uids[0], True]
