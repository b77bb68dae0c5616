"""Student code has no network: its kernel sits in a network namespace with loopback only, and
talks to the grader over unix sockets (jupyter's ipc transport) in its own run folder."""

from __future__ import annotations

import json
import socket
import threading

import bad_submissions as bad
import nbformat
from bad_submissions import ASSIGNMENT
from conftest import IS_ROOT, LIMITS, answers_of, graded, submit


def printed(nb, prefix: str) -> dict:
    line = next(
        line
        for c in nb.cells
        for o in c.get("outputs", [])
        for line in o.get("text", "").splitlines()
        if line.startswith(prefix)
    )
    return json.loads(line[len(prefix) :])


def test_student_code_reaches_no_server_and_no_name_server_and_still_scores(graded_copy):
    course = graded_copy
    server = socket.create_server(("127.0.0.1", 0))
    received: list = []

    def serve():
        while True:
            try:
                conn, addr = server.accept()
            except OSError:
                return
            with conn:
                received.append((addr, conn.recv(100)))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        release = json.loads((course / "release" / ASSIGNMENT / "toy.ipynb").read_text())
        submit(course, "network", bad.network_probe(release, answers_of(course), server.getsockname()[1]))
        [record] = graded(course, students=["network"], workers=1, limits=LIMITS)
    finally:
        server.close()
        thread.join(5)
    nb = nbformat.read(course / "autograded" / "network" / ASSIGNMENT / "toy.ipynb", as_version=4)
    net = printed(nb, "NET ")
    sandbox = record["notebooks"]["toy"]["sandbox"]
    cells = {c["grade_id"]: (c["score"], c["status"]) for c in record["cells"]}
    assert cells["test_double"] == (2, "passed") and cells["test_square"] == (1, "passed"), record
    if IS_ROOT:
        assert sandbox["net_namespace"] is True, sandbox
        assert {k: how for k, (how, _) in net.items()} == {
            "connect": "blocked",
            "resolve": "blocked",
            "outside": "blocked",
        }, net
        assert received == []
    else:  # no namespace without root: grading goes on, and the report says the kernel had the network
        assert sandbox["net_namespace"] is False
        assert any("network" in w for w in sandbox["warnings"]), sandbox
