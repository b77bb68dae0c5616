"""Hidden tests that code run earlier cannot bend (collabkit/grading/kernel_guard.py).

Fast: each planted trick of tricks.py in a real kernel started the way the worker starts it
(kernel_guard.py on the command line, the test cell's digest as graded). The trick must win a copy
of the test the kernel was not told about (so it is a real trick), lose the graded test, and still
win the copy afterwards (the student's machinery is put back after the test; their plots still show).

Slow: the same tricks as toy submissions through `collabkit grade`, against an expected-score table:
each scores no more than the honest wrong answer; and graded with the guard switched off, the
tricks win (what this kit did before the guard).
"""

from __future__ import annotations

import sys
from pathlib import Path

import bad_submissions as bad
import pytest
from conftest import LIMITS, graded, submit
from tricks import BENDS_UNGUARDED, TRICKS

from collabkit.grading.kernel_guard import digest
from collabkit.grading.worker import kernel_cmd

TEST = '"""double doubles numbers."""\nassert float(double(2)) == 4, f"expected double(2) == 4, got {double(2)}"'


class Kernel:
    """A kernel started by jupyter_client with the worker's command line (without the sandbox)."""

    def __init__(self, cwd: Path, graded_cells: list[str]):
        from jupyter_client import KernelManager

        digests = [digest(c) for c in graded_cells]

        class Manager(KernelManager):
            def format_kernel_cmd(self, extra_arguments=None):
                cmd = kernel_cmd("unused", self.connection_file, digests)
                return cmd[cmd.index("--") + 1 :]

        self.km = Manager(kernel_name="python3")
        self.km.start_kernel(cwd=str(cwd), env={"PATH": str(Path(sys.executable).parent), "HOME": str(cwd)})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=90)

    def run(self, code: str) -> tuple[str, list[str]]:
        """The reply's status and the outputs nbgrader would read as failure (errors, stderr)."""
        bad_outputs = []

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error" or (kind == "stream" and content.get("name") == "stderr"):
                bad_outputs.append(f"{kind}: {content.get('ename') or content.get('text', '')[:80]}")

        reply = self.kc.execute_interactive(code, timeout=60, output_hook=hook)
        return reply["content"]["status"], bad_outputs

    def passes(self, code: str) -> bool:
        status, bad_outputs = self.run(code)
        return status == "ok" and not bad_outputs

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path):
    k = Kernel(tmp_path, [TEST])
    yield k
    k.close()


@pytest.mark.parametrize("name", sorted(TRICKS))
def test_a_trick_wins_an_ungraded_copy_of_the_test_and_loses_the_graded_test(kernel, name):
    answer, trick = TRICKS[name]
    assert kernel.passes(answer) and kernel.passes(trick)
    copy = TEST + "\n# a copy the kernel was not told is graded" if name in BENDS_UNGUARDED else "assert double(2) == 4"
    assert kernel.passes(copy), f"{name}: the planted trick does not work even without the guard"
    status, bad_outputs = kernel.run(TEST)
    assert status == "error" or bad_outputs, f"{name}: the graded test passed a wrong answer"
    assert bad_outputs, f"{name}: the graded test failed without showing why"
    assert kernel.passes(copy), f"{name}: the student's own machinery was not put back after the test"


KIT_TEST = "assert tuple(y_range) == ck.Y_RANGE, f'y_range should be {ck.Y_RANGE}, got {y_range}'"
KIT_TRICKS = {
    "patched": "import collabkit.nb as ck\nck.Y_RANGE = (0, 99)",  # the module the tests read
    "rebound": "import types\nck = types.SimpleNamespace(Y_RANGE=(0, 99))",  # the name the tests use
}


@pytest.mark.parametrize("trick", sorted(KIT_TRICKS))
def test_a_test_reads_the_kits_own_values_whatever_the_student_did_to_ck(tmp_path, trick):
    kernel = Kernel(tmp_path, [KIT_TEST])
    try:
        assert kernel.passes("import collabkit.nb as ck\ny_range = (0, 99)")  # a wrong y_range
        assert kernel.passes(KIT_TRICKS[trick])
        assert kernel.passes(KIT_TEST + "\n# a copy"), "the trick does not work even without the guard"
        assert not kernel.passes(KIT_TEST)
        assert kernel.passes(KIT_TEST + "\n# a copy")
    finally:
        kernel.close()


KIT_STATE_TEST = "assert ck.kit_trained(learn), 'the kit remembers the models train_dot made'"


def test_what_the_kit_remembers_between_cells_reaches_the_graded_test(tmp_path):
    """The guard puts ck's globals back as they were at kernel start; the set of models train_dot made
    (what `ck.kit_trained` reads: the kit's own model handed in as the student's scores nothing) is
    made at import, so a model added after the start is still in it inside a graded test."""
    kernel = Kernel(tmp_path, [KIT_STATE_TEST])
    try:
        assert kernel.passes(  # what train_dot does after training, without the training
            "import types, torch\nimport collabkit.nb as ck\n"
            "learn = types.SimpleNamespace(model=torch.nn.Linear(1, 1))\nck._KIT_MODELS.add(learn.model)"
        )
        assert kernel.passes(KIT_STATE_TEST + "\n# a copy")
        assert kernel.passes(KIT_STATE_TEST)
        assert kernel.passes("learn = types.SimpleNamespace(model=torch.nn.Linear(1, 1))")  # the student's own
        assert not kernel.passes(KIT_STATE_TEST)
    finally:
        kernel.close()


def test_an_honest_notebook_runs_as_before_around_a_graded_cell(kernel):
    """A correct answer passes the graded test; what the student set up (an event callback, like
    matplotlib's inline backend, and a variable) is there again afterwards, and counts go on."""
    assert kernel.passes("def double(x):\n    return 2 * x")
    assert kernel.passes("seen = []\nget_ipython().events.register('post_execute', lambda: seen.append(1))")
    before = kernel.kc.execute_interactive("1", timeout=30)["content"]["execution_count"]
    assert kernel.passes(TEST)
    assert kernel.passes("assert len(seen) == 2, seen")  # fired after its own cell and this one, not the test
    after = kernel.kc.execute_interactive("1", timeout=30)["content"]["execution_count"]
    assert after == before + 3


def test_the_kernel_command_keeps_the_working_folder_off_sys_path():
    cmd = kernel_cmd("cfg.json", "kernel.json", ["ab", "cd"])
    assert cmd[1:4] == ["-P", "-m", "collabkit.grading.sandbox"]
    kernel = cmd[cmd.index("--") + 1 :]
    assert kernel[1:] == ["-P", "-m", "collabkit.grading.kernel_guard", "ab,cd", "-f", "kernel.json"]
    assert "ipykernel_launcher" in kernel_cmd("cfg.json", "kernel.json", None)


def test_the_worker_names_only_graded_test_cells():
    import nbformat

    from collabkit.grading.worker import graded_digests

    cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("assert x == 1"),
        nbformat.v4.new_code_cell("answer = 2"),
        nbformat.v4.new_markdown_cell("graded prose"),
    ]
    cells[1].metadata.nbgrader = {"grade": True, "solution": False, "grade_id": "t"}
    cells[2].metadata.nbgrader = {"grade": True, "solution": True, "grade_id": "a"}
    cells[3].metadata.nbgrader = {"grade": True, "solution": False, "grade_id": "m"}
    assert graded_digests(nbformat.v4.new_notebook(cells=cells)) == [digest("assert x == 1")]


# ---------------------------------------------------------------------------- plain values for the tests


class _Anything(str):
    """A title that claims to equal every other, and prints as another such title."""

    def __eq__(self, other):
        return True

    __hash__ = str.__hash__

    def __str__(self):
        return _Anything("also anything")

    def strip(self, *args):
        return _Anything("B")


def test_plain_strs_gives_plain_titles_that_equal_only_themselves():
    import collabkit.nb as ck

    got = ck.plain_strs([_Anything("Heat"), "Dune", 7])
    assert got == ["Heat", "Dune", None] and [type(t) for t in got] == [str, str, type(None)]
    assert got != ["Alien", "Dune", None]
    assert [_Anything("Heat")] == ["Alien"]  # what a test comparing the student's objects would have seen


def test_check_letter_reads_the_letter_itself_not_what_a_str_subclass_says():
    import collabkit.scaffold as sc

    got = sc.check_letter(_Anything(" a "), "answer_y_range")
    assert got == "A" and type(got) is str
    assert got != "B"


# ---------------------------------------------------------------------------- through collabkit grade


def planted(release: dict, answers: dict, name: str) -> bytes:
    answer, trick = TRICKS[name]
    return bad.dump(bad.extra_cell(bad.answered(release, answers, double=answer), "double", trick))


HONEST_WRONG = {"test_double": (0, "failed"), "test_square": (1, "passed")}
# student -> {grade_id: (score, status)} with the guard; the honest wrong answer first
EXPECTED = {"honest_wrong": HONEST_WRONG} | {name: HONEST_WRONG for name in TRICKS}


@pytest.mark.slow
def test_planted_tricks_score_no_more_than_the_honest_wrong_answer(tmp_path):
    import json

    from conftest import answers_of

    from collabkit.grading.records import Limits

    course = bad.tiny_course(tmp_path / "course")
    release = json.loads((course / "release" / bad.ASSIGNMENT / "toy.ipynb").read_text())
    answers = answers_of(course)
    submit(course, "honest_wrong", bad.dump(bad.answered(release, answers, double=bad.WRONG_DOUBLE)))
    for name in TRICKS:
        submit(course, name, planted(release, answers, name))

    def cells(records):
        return {r["student_id"]: {c["grade_id"]: (c["score"], c["status"]) for c in r["cells"]} for r in records}

    records = graded(course, workers=2, limits=LIMITS)
    guarded = cells(records)
    assert {s: {g: guarded[s][g] for g in want} for s, want in EXPECTED.items()} == EXPECTED
    totals = {r["student_id"]: r["score"] for r in records}
    assert all(totals[name] <= totals["honest_wrong"] == 1 for name in TRICKS), totals

    # the same submissions without the guard: the tricks win, so the table above is the guard's doing
    unguarded = cells(graded(course, workers=2, limits=Limits(**{**LIMITS.to_json(), "kernel_guard": False})))
    assert {name: unguarded[name]["test_double"] for name in TRICKS} == {
        name: (2, "passed") if name in BENDS_UNGUARDED else (0, "failed") for name in TRICKS
    }


EQ_TITLES = """

_wrong_popular = popular_movies


class _Title(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


def popular_movies(ratings, movies, n=10, min_ratings=50):
    return [_Title(t) for t in _wrong_popular(ratings, movies, n=n, min_ratings=min_ratings)]
"""


@pytest.mark.slow
def test_titles_that_claim_to_equal_anything_score_what_the_wrong_answer_scores(tmp_path):
    """05 on fastai kernels: a wrong popular_movies (lowest mean first) alone, and the same answer
    returning titles that claim to equal any title. The hidden tests compare plain strings, so both
    lose the same cells (test_popular_movies and its ties) and nothing else; tests that compared the
    student's list itself gave the second one both cells (measured on the tests before they converted)."""
    from harness import autograde, fixture_module, make_course, place, submission

    notebook = "05_cold_start_and_ethics.ipynb"
    lowest_first = ("ascending=[False, False, True]", "ascending=[True, False, True]")  # lists of the right length
    wrong = {"popular_movies": fixture_module("05_cold_start_and_ethics")._popular(*lowest_first)}
    course = make_course(tmp_path / "course")
    place(course, "honest_wrong", {notebook: submission(course, notebook, wrong)})
    tricked = {"popular_movies": wrong["popular_movies"] + EQ_TITLES}
    place(course, "eq_titles", {notebook: submission(course, notebook, tricked)})
    grades = autograde(course)
    auto = grades[(grades.kind == "auto") & (grades.notebook == notebook)].set_index(["student", "grade_id"])
    assert auto.score["honest_wrong"].to_dict() == auto.score["eq_titles"].to_dict()
    lost = {g: row.score for g, row in auto.loc["eq_titles"].iterrows() if row.score < row.max_score}
    assert lost == {"test_popular_movies": 0, "test_popular_movies_ties": 0}
