"""Bad submissions, built from a release notebook: one function per way a notebook goes wrong.

Each builder takes the release notebook (a dict, as json.loads reads it), the instructor's
answers by grade id (`answers`), and returns the bytes a student would hand in. `BAD` lists
them with the status and the per-cell result grading must give.

`tiny_course()` makes a throwaway course with one small notebook (`toy.ipynb`): two answer
cells, two test cells with hidden tests (one reads the reference values, one the data), a
hand-graded answer and a read-only task cell with a mark scheme. It grades in seconds, so
the default suite can put every bad submission through the real pipeline.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat

from collabkit.samples import grade_id, make_course

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENT = "collab_filtering"
SECRET = "hidden-secret-7f3a"  # appears only in hidden tests: feedback must never show it

# ---------------------------------------------------------------------------- the tiny course


def _nb(cells):
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata.kernelspec = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata.language_info = {"name": "python"}
    return nb


def _cell(kind, source, gid=None, grade=False, solution=False, locked=False, task=False, points=None):
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    cell = make(source)
    if gid:
        cell.metadata.nbgrader = {
            "grade": grade,
            "grade_id": gid,
            "locked": locked,
            "schema_version": 3,
            "solution": solution,
            "task": task,
        }
        if points is not None:
            cell.metadata.nbgrader["points"] = points
    return cell


TOY_SOURCE = _nb(
    [
        _cell(
            "code",
            "import collabkit.nb as ck\nimport os\nfrom pathlib import Path\n"
            "path = Path(os.environ['FASTAI_HOME']) / 'data' / 'ml-100k'",
            "setup",
            locked=True,
        ),
        _cell("markdown", "Write `double(x)`."),
        _cell(
            "code",
            "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
            "double",
            solution=True,
        ),
        _cell(
            "code",
            '"""double doubles numbers."""\nassert float(double(2)) == 4, f"expected double(2) == 4, got {double(2)}"\n'
            "### BEGIN HIDDEN TESTS\n"
            f"assert float(double(-3)) == -6, 'double should work for negative numbers'  # {SECRET}\n"
            "assert float(double(5)) == ck.reference()['factor'] * 5, 'double(5) should be 10'\n"
            "assert (ck.reference_path().parent / ck.reference()['weights']).read_text() == '2'\n"
            "### END HIDDEN TESTS",
            "test_double",
            grade=True,
            locked=True,
            points=2,
        ),
        _cell("markdown", "Write `square(x)`."),
        _cell(
            "code",
            "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
            "square",
            solution=True,
        ),
        _cell(
            "code",
            '"""square squares numbers."""\nassert square(3) == 9, f"expected square(3) == 9, got {square(3)}"\n'
            "### BEGIN HIDDEN TESTS\n"
            f"_first = open(path / 'u.data').readline().split()  # {SECRET}-data\n"
            "assert square(int(_first[2])) == int(_first[2]) ** 2, 'square should work on ratings'\n"
            "assert square(-4) == 16, 'square of a negative number is positive'\n"
            "### END HIDDEN TESTS",
            "test_square",
            grade=True,
            locked=True,
            points=1,
        ),
        _cell(
            "markdown",
            "Explain in one sentence what `double` does.\n\n"
            "=== BEGIN MARK SCHEME ===\nmark-scheme-secret: full marks for 'it multiplies by two'\n"
            "=== END MARK SCHEME ===",
            "rubric",
            locked=True,
            task=True,
            points=0,
        ),
        _cell(
            "markdown",
            "### BEGIN SOLUTION\nIt multiplies by two.\n### END SOLUTION",
            "explain",
            grade=True,
            solution=True,
            points=1,
        ),
    ]
)


def tiny_course(where: Path) -> Path:
    """A course at `where` with one notebook, released into its own gradebook, with a reference file."""
    make_course(where, REPO, {"toy.ipynb": TOY_SOURCE}, reference={"factor": 2, "weights": "weights.txt"})
    (where / "solutions" / "weights.txt").write_text("2")  # an artefact reference.json names (like model weights)
    return where


# ---------------------------------------------------------------------------- helpers


gid = grade_id


def index(nb: dict, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if gid(c) == grade_id)


def answered(release: dict, answers: dict[str, str], **replace: str) -> dict:
    """The release with every answer cell filled in (then `replace`d by grade id)."""
    nb = copy.deepcopy(release)
    todo = dict(answers, **replace)
    for cell in nb["cells"]:
        if gid(cell) in todo:
            cell["source"] = todo[gid(cell)]
    return nb


def dump(nb: dict) -> bytes:
    return (json.dumps(nb, indent=1) + "\n").encode()


def extra_cell(nb: dict, after: str, source: str) -> dict:
    """Insert a plain code cell (student's own) after the cell `after`."""
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "id": f"extra-{len(nb['cells'])}",
        "metadata": {},
        "outputs": [],
        "source": source,
    }
    nb["cells"].insert(index(nb, after) + 1, cell)
    return nb


# ---------------------------------------------------------------------------- the bad submissions
# The toy's tests: test_double (2 points) checks `double`, test_square (1 point) checks
# `square`. Crash-like mistakes sit in `square`, after test_double has earned its points.


def correct(release, answers):
    return dump(answered(release, answers))


def stub(release, answers):
    return dump(release)


def fails_hidden(release, answers):
    """Passes the visible test, fails a hidden one: feedback must show the message, not the test."""
    return dump(answered(release, answers, double="def double(x):\n    return abs(2 * x)"))


def infinite_loop(release, answers):
    return dump(answered(release, answers, double="def double(x):\n    while True:\n        pass\n\ndouble(1)"))


def ignores_sigint(release, answers):
    return dump(
        answered(
            release,
            answers,
            square=(
                "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "def square(x):\n    return x * x\nwhile True:\n    time.sleep(0.01)"
            ),
        )
    )


def os_exit(release, answers):
    return dump(answered(release, answers, square="import os\ndef square(x):\n    return x * x\nos._exit(1)"))


def memory_bomb(release, answers):
    return dump(
        answered(
            release,
            answers,
            square=("def square(x):\n    blocks = []\n    while True:\n        blocks.append(bytearray(64 * 2**20))"),
        )
    )


def output_flood(release, answers):
    return dump(
        answered(
            release,
            answers,
            square=(
                "def square(x):\n    return x * x\nfor i in range(20_000):  # 2.5 MB, past the tests' 1 MB cap, well within 4 s\n    print('flood ' * 20, i)"
            ),
        )
    )


def invalid_json(release, answers):
    return dump(answered(release, answers))[:-200]


def nbformat3(release, answers):
    nb = nbformat.reads(json.dumps(answered(release, answers)), as_version=4)
    return nbformat.writes(nbformat.convert(nb, 3)).encode()


def duplicated_test(release, answers):
    nb = answered(release, answers)
    at = index(nb, "test_double")
    dup = copy.deepcopy(nb["cells"][at])
    dup["id"] = "a-copy"
    nb["cells"].insert(at + 1, dup)
    return dump(nb)


WRONG_DOUBLE = "def double(x):\n    return x + x + 1"


def deleted_test(release, answers):
    nb = answered(release, answers, double=WRONG_DOUBLE)
    del nb["cells"][index(nb, "test_double")]
    return dump(nb)


def edited_test(release, answers):
    nb = answered(release, answers, double=WRONG_DOUBLE)
    nb["cells"][index(nb, "test_double")]["source"] = '"""double doubles numbers."""\npass'
    return dump(nb)


def markdown_test(release, answers):
    nb = answered(release, answers, double=WRONG_DOUBLE)
    cell = nb["cells"][index(nb, "test_double")]
    cell["cell_type"] = "markdown"
    del cell["outputs"], cell["execution_count"]
    return dump(nb)


def skip_tags(release, answers):
    nb = answered(release, answers, double=WRONG_DOUBLE)
    nb["cells"][index(nb, "test_double")]["metadata"]["tags"] = ["skip-execution"]
    nb["cells"][index(nb, "test_square")]["metadata"]["tags"] = ["raises-exception"]
    return dump(nb)


def changed_metadata(release, answers):
    nb = answered(release, answers, double=WRONG_DOUBLE)
    nb["metadata"]["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    nb["metadata"]["language_info"] = {"name": "R"}
    test = nb["cells"][index(nb, "test_double")]["metadata"]["nbgrader"]
    test.update(points=100, schema_version=99)
    nb["cells"][index(nb, "double")]["metadata"]["nbgrader"]["schema_version"] = 42
    extra_cell(nb, "square", "# my own graded cell\nprint('free points')")
    nb["cells"][index(nb, "square") + 1]["metadata"]["nbgrader"] = {
        "grade": True,
        "grade_id": "bonus",
        "points": 50,
        "locked": True,
        "solution": False,
        "schema_version": 3,
    }
    return dump(nb)


PROBE = """import json, os, collabkit
from pathlib import Path
probe = {}
root = Path(collabkit.__file__).resolve().parent.parent
def attempt(name, fn):
    try:
        probe[name] = ("ok", repr(fn())[:200])
    except Exception as err:
        probe[name] = ("blocked", type(err).__name__)
attempt("list_course", lambda: sorted(os.listdir(root)))
attempt("read_gradebook", lambda: open(root / "gradebook.db", "rb").read(16))
attempt("write_gradebook", lambda: __import__("sqlite3").connect(root / "gradebook.db").execute(
    "update grade set auto_score = 99").connection.commit())
attempt("read_source", lambda: sorted(os.listdir(root / "source")))
attempt("read_submitted", lambda: sorted(os.listdir(root / "submitted")))
attempt("read_home", lambda: sorted(os.listdir(os.path.expanduser("~root"))))
attempt("write_reference", lambda: open(Path.cwd().parent / "reference.json", "w").write('{"factor": 3}'))
attempt("write_weights", lambda: open(Path.cwd().parent / "weights.txt", "w").write("3"))
attempt("write_data", lambda: open(Path(os.environ["FASTAI_HOME"]) / "data/ml-100k/u.data", "w").write("1 1 99 0"))
attempt("replace_data", lambda: os.rename(Path(os.environ["FASTAI_HOME"]) / "data", Path(os.environ["FASTAI_HOME"]) / "old"))
attempt("write_package", lambda: open(Path(collabkit.__file__).parent / "nb.py", "a").write("#"))
attempt("kill_grader", lambda: os.kill(os.getppid(), 9))
def reach_parent():  # a warm kernel's parent is its fork server, whose socket its command line names
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.connect(open(f"/proc/{os.getppid()}/cmdline").read().split("\\0")[-2])
    return s.recv(10)
attempt("reach_parent_socket", reach_parent)
attempt("read_parent_environ", lambda: open(f"/proc/{os.getppid()}/environ").read())
attempt("read_parent_memory", lambda: open(f"/proc/{os.getppid()}/mem", "rb").read(1))
attempt("list_tmp", lambda: sorted(os.listdir("/tmp")))
attempt("many_processes", lambda: [__import__("subprocess").Popen(["sleep", "60"]) for _ in range(400)])
attempt("huge_file", lambda: open("huge.bin", "wb").write(bytes(300 * 2**20)))
print("PROBE " + json.dumps(probe))
"""


def probe_course(release, answers):
    return dump(extra_cell(answered(release, answers), "setup", PROBE))


NET_PROBE = """import json, socket
net = {}
def attempt(name, fn):
    try:
        net[name] = ("ok", repr(fn())[:200])
    except Exception as err:
        net[name] = ("blocked", type(err).__name__)
attempt("connect", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=3).sendall(b"leak"))
attempt("resolve", lambda: socket.getaddrinfo("example.com", 80))
attempt("outside", lambda: socket.create_connection(("1.1.1.1", 53), timeout=3))
print("NET " + json.dumps(net))
"""


def network_probe(release, answers, port: int):
    """A correct submission that also tries the network: a server on the host's 127.0.0.1, DNS, the outside."""
    return dump(extra_cell(answered(release, answers), "setup", NET_PROBE.replace("PORT", str(port))))


REFERENCE_PROBE = """import json, os
from pathlib import Path
import collabkit.nb as ck
found = {"env": sorted(k for k in os.environ if "REFERENCE" in k)}
try:
    found["ck.reference"] = ck.reference()
except Exception as err:
    found["ck.reference"] = type(err).__name__
found["files"] = sorted(str(p) for top in {Path.cwd(), Path.cwd().parent, Path(ck.reference_path()).parent}
                        if top.is_dir() for p in top.rglob("*")
                        if p.is_file() and os.access(p, os.R_OK) and b'"fac' b'tor"' in p.read_bytes()[:10**6])
print("REF " + json.dumps(found))
"""


def reads_reference(release, answers):
    """A correct submission that first looks for the reference values (variable, ck.reference(), files)."""
    return dump(extra_cell(answered(release, answers), "setup", REFERENCE_PROBE))


LEFTOVER = "collabkit-leftover-marker"


def background_process(release, answers):
    code = (
        "import subprocess, sys, os\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{LEFTOVER}'], start_new_session=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)', '{LEFTOVER}'])"
    )
    return dump(extra_cell(answered(release, answers), "square", code))


# name -> (builder, status, {grade_id: (score, cell status)} for the toy notebook)
TOY_OK = {"test_double": (2, "passed"), "test_square": (1, "passed")}
BAD = {
    "correct": (correct, "needs_manual_grade", TOY_OK),
    "stub": (stub, "graded", {"test_double": (0, "failed"), "test_square": (0, "failed")}),
    "fails_hidden": (fails_hidden, "needs_manual_grade", {"test_double": (0, "failed"), "test_square": (1, "passed")}),
    "infinite_loop": (infinite_loop, "timed_out", {"test_double": (0, "timed_out"), "test_square": (1, "passed")}),
    "ignores_sigint": (ignores_sigint, "timed_out", {"test_double": (2, "passed"), "test_square": (0, "not_run")}),
    "os_exit": (os_exit, "crashed", {"test_double": (2, "passed"), "test_square": (0, "not_run")}),
    "memory_bomb": (memory_bomb, "memory_limit", {"test_double": (2, "passed"), "test_square": (0, "memory_limit")}),
    "output_flood": (output_flood, "needs_manual_grade", TOY_OK),
    "invalid_json": (invalid_json, "unreadable", {"test_double": (0, "unreadable"), "test_square": (0, "unreadable")}),
    "nbformat3": (nbformat3, "repaired", TOY_OK),
    "duplicated_test": (duplicated_test, "repaired", TOY_OK),
    "deleted_test": (deleted_test, "repaired", {"test_double": (0, "failed"), "test_square": (1, "passed")}),
    "edited_test": (edited_test, "tampered", {"test_double": (0, "failed"), "test_square": (1, "passed")}),
    "markdown_test": (markdown_test, "repaired", {"test_double": (0, "failed"), "test_square": (1, "passed")}),
    "skip_tags": (skip_tags, "tampered", {"test_double": (0, "failed"), "test_square": (1, "passed")}),
    "changed_metadata": (changed_metadata, "tampered", {"test_double": (0, "failed"), "test_square": (1, "passed")}),
    "probe_course": (probe_course, "needs_manual_grade", TOY_OK),
    "reads_reference": (reads_reference, "needs_manual_grade", TOY_OK),
    "background_process": (background_process, "needs_manual_grade", TOY_OK),
}
