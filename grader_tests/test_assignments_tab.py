"""A student's round trip through Jupyter's Assignments tab, in a real browser.

Run as root: the student is a real Unix user (nbgrader names a student by their login name). A
course with 01_data only is released to a shared exchange (`collabkit release`, then
`nbgrader release_assignment`). The student's own Jupyter server (notebook 7, with nbgrader's
assignment-list extension and the student's `~/.jupyter/nbgrader_config.py`: the course id and
the exchange) runs as the student on 127.0.0.1, and headless Chromium (Debian's `chromium`,
driven by Playwright, as in test_formgrader.py) does what a student does: Nbgrader > Assignment
List opens the Assignments tab, which lists `collab_filtering` as released; Fetch; open
01_data.ipynb, type the density answer, Run All (its visible test runs and passes), save;
the notebook's Validate button reports success; Submit. The instructor's `nbgrader collect` then
finds the submission, with the typed answer in it. A screenshot of each step is kept in the
test's tmp folder; COLLABKIT_SCREENSHOTS=docs copies three into docs/ for the README.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from harness import ASSIGNMENT, REPO
from playwright.sync_api import expect
from unix_users import as_user, home, make_user, remove_user, shared_base, shared_python

from collabkit.course import Course, tool_env
from collabkit.samples import grade_id, is_answer, solutions
from collabkit.serve import HOST, free_port, stop, wait_ready

pytestmark = pytest.mark.slow

NB = "01_data.ipynb"
COURSE_ID = "collab-kit"
SHOTS = ["1_released.png", "2_fetched.png", "3_test_passes.png", "4_validated.png", "5_submitted.png"]


def nbgrader(cwd: Path, *args: str, env: dict) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=cwd, capture_output=True, text=True, env=tool_env(**env)
    )
    assert run.returncode == 0, f"nbgrader {args[0]}: {run.stdout[-2000:]}{run.stderr[-3000:]}"
    return run.stdout + run.stderr


@pytest.fixture(scope="module")
def world():
    """A student Unix user (nbgrader names a student by their login), and a shared folder holding the
    exchange (made as nbgrader's docs make it) and a shared FASTAI_HOME; all removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root: it creates the student's Unix user (nbgrader's student id is the login name)")
    if not (shutil.which("useradd") and shutil.which("userdel") and shutil.which("runuser")):
        pytest.skip("needs useradd, userdel and runuser")
    student = f"ckcarol{secrets.token_hex(3)}"
    base = shared_base()
    made = False
    try:
        make_user(student)
        made = True
        fastai = {"FASTAI_HOME": str(base / "fastai")}
        data = subprocess.run([sys.executable, "-m", "collabkit", "data"], capture_output=True, env=tool_env(**fastai))
        assert data.returncode == 0, data.stderr
        (base / "exchange").mkdir()
        (base / "exchange").chmod(0o1777)  # as the README sets it up
        yield SimpleNamespace(student=student, base=base, exchange=base / "exchange", env=fastai)
    finally:
        if made:
            remove_user(student)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def course(world, tmp_path_factory) -> Path:
    """A course with 01_data (the instructor's: root's), released to the shared exchange."""
    from collabkit.release import release

    root = tmp_path_factory.mktemp("tab") / "course"
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(REPO / "source" / ASSIGNMENT / NB, root / "source" / ASSIGNMENT / NB)
    config = (REPO / "nbgrader_config.py").read_text() + f"\nc.Exchange.root = {str(world.exchange)!r}\n"
    (root / "nbgrader_config.py").write_text(config)
    release(Course.open(root))
    nbgrader(root, "release_assignment", ASSIGNMENT, env=world.env)
    return root


@pytest.fixture(scope="module")
def student(world, course):
    """The student's Jupyter server, as the student, on 127.0.0.1; yields (home, base URL, token)."""
    h = home(world.student)
    (h / ".jupyter").mkdir()
    (h / ".jupyter" / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = {COURSE_ID!r}\nc.Exchange.root = {str(world.exchange)!r}\n"
    )
    # the student's own JupyterLab setting: render every cell (notebook 7 renders only those on screen)
    tracker = h / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    subprocess.run(["chown", "-R", f"{world.student}:{world.student}", str(h / ".jupyter")], check=True)
    py = shared_python(world.base, world.student)
    port, token = free_port(), secrets.token_hex(24)
    argv = [str(py.python), "-m", "jupyter", "notebook", "--no-browser", f"--ServerApp.ip={HOST}"]
    argv += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}"]
    argv += [f"--ServerApp.root_dir={h}"]
    log = open(world.base / "jupyter.log", "ab")
    proc = subprocess.Popen(
        as_user(world.student, argv, world.env, py), cwd=h, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://{HOST}:{port}"
    try:
        wait_ready(f"{base}/api/status?token={token}", proc)
        yield h, base, token
    finally:
        stop(proc)
        log.close()


def answered_on_disk(path: Path) -> None:
    """The student's earlier work: every answer but density, which they type in the browser."""
    nb = nbformat.read(path, as_version=4)
    answers = solutions(NB, REPO)
    for cell in nb.cells:
        if is_answer(cell) and grade_id(cell) != "density":
            cell.source = answers[grade_id(cell)]
    nbformat.write(nb, path)


def by_id(path: Path, gid: str):
    [cell] = [c for c in nbformat.read(str(path), as_version=4).cells if grade_id(c) == gid]
    return cell


def assignments_tab(page, base: str, token: str) -> None:
    """The file browser, then Nbgrader > Assignment List: it opens as the tree's "Assignments" tab."""
    page.goto(f"{base}/tree?token={token}")
    page.get_by_role("menuitem", name="Nbgrader").click()
    page.get_by_role("menuitem", name="Assignment List").click()
    page.get_by_role("tab", name="Assignments").wait_for()


def test_fetch_validate_submit_in_the_assignments_tab(world, course, student, browser, tmp_path):
    home, base, token = student
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(60_000)

    # 1. The Assignments tab lists collab_filtering as released.
    assignments_tab(page, base, token)
    released = page.locator("#released_assignments_list")
    released.get_by_text(ASSIGNMENT).wait_for()
    assert COURSE_ID in released.inner_text()
    page.screenshot(path=shots / SHOTS[0])

    # 2. Fetch: the notebooks land in the student's home, and the tab lists them as downloaded.
    released.get_by_role("button", name="Fetch").click()
    fetched = page.locator("#fetched_assignments_list")
    fetched.get_by_text(ASSIGNMENT).wait_for()
    assert (home / ASSIGNMENT / NB).is_file()
    page.screenshot(path=shots / SHOTS[1])

    # 3. Open 01_data, type the density answer, run the notebook: the visible density test passes.
    answered_on_disk(home / ASSIGNMENT / NB)
    density = solutions(NB, REPO)["density"]
    page.goto(f"{base}/notebooks/{ASSIGNMENT}/{NB}?token={token}")
    cell = page.locator(".jp-CodeCell", has_text="def density(ratings)")
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for()  # the kernel is up
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(density)
    expect(cell).not_to_contain_text("NotImplementedError")  # the stub is gone, the answer typed in its place
    expect(cell).to_contain_text(density.strip().splitlines()[-1].strip())
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    test = page.locator(".jp-CodeCell", has_text="density returns a float")
    test.locator(".jp-InputPrompt").filter(has_text=re.compile(r"\[\d+\]")).wait_for(timeout=300_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-InputPrompt')].every(p => !p.textContent.includes('*'))",
        timeout=300_000,
    )
    test.scroll_into_view_if_needed()
    page.screenshot(path=shots / SHOTS[2])
    page.get_by_role("menuitem", name="File", exact=True).click()
    page.locator("li[data-command='docmanager:save']").click()
    saved = home / ASSIGNMENT / NB
    deadline = time.monotonic() + 60
    while by_id(saved, "density").source.strip() != density.strip() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert by_id(saved, "density").source.strip() == density.strip(), "the typed answer was not saved"
    run = nbformat.read(str(saved), as_version=4)
    assert by_id(saved, "test_density_toy").execution_count, "the visible density test did not run"
    errors = [
        (grade_id(c), o.get("ename")) for c in run.cells for o in c.get("outputs", []) if o.output_type == "error"
    ]
    assert not errors, errors

    # 4. Validate (the notebook's toolbar button): nbgrader runs the saved notebook and reports success.
    page.locator(".validate-button").first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_text("Success! Your notebook passes all the tests.").wait_for(timeout=300_000)
    page.screenshot(path=shots / SHOTS[3])
    dialog.get_by_role("button").first.click()

    # 5. Submit from the Assignments tab: it moves to the submitted list.
    assignments_tab(page, base, token)
    page.locator("#fetched_assignments_list").get_by_role("button", name="Submit").click()
    page.locator("#submitted_assignments_list").get_by_text(ASSIGNMENT).wait_for()
    page.screenshot(path=shots / SHOTS[4])

    # The instructor's collect finds the submission, with the answer the student typed.
    nbgrader(course, "collect", ASSIGNMENT, env=world.env)
    submitted = course / "submitted" / world.student / ASSIGNMENT / NB
    assert by_id(submitted, "density").source.strip() == density.strip()
    if os.environ.get("COLLABKIT_SCREENSHOTS"):  # refresh the README's pictures: COLLABKIT_SCREENSHOTS=docs
        for name in (SHOTS[0], SHOTS[3], SHOTS[4]):
            shutil.copy(shots / name, Path(os.environ["COLLABKIT_SCREENSHOTS"]) / f"assignments_{name}")
