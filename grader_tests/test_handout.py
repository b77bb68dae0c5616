"""`collabkit handout`: the bundle students get works on its own and holds nothing instructor-only.

The bundle is built from a copy of this course. The wheel is installed into a fresh virtual
environment that reuses the pinned stack (as in test_course.py), and every notebook of the
zip runs there, in a kernel of that environment, from a folder outside the repository, up to
its first answer cell. The scan for instructor-only content is checked on the real bundle,
and shown to catch a hidden-test line planted in a copy.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest
from harness import ASSIGNMENT, REPO

from collabkit.course import Course
from collabkit.handout import (
    COLAB_KEEP,
    COLAB_OWN,
    STUDENT_MODULES,
    STUDENT_PYTHONS,
    handout,
    leaks,
    secret_lines,
    student_imports,
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("course")
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    for folder in ("source", "release", "solutions"):  # solutions/ too: it must stay out of the bundle
        shutil.copytree(
            REPO / folder / ASSIGNMENT, course / folder / ASSIGNMENT, ignore=shutil.ignore_patterns("models")
        )
    shutil.copy(REPO / "solutions" / "reference.json", course / "solutions" / "reference.json")
    return handout(Course.open(course))


def wheel_of(dist: Path) -> Path:
    [wheel] = dist.glob("collabkit-*-py3-none-any.whl")
    return wheel


def test_the_bundle_holds_the_four_things(dist):
    assert sorted(p.name for p in dist.iterdir()) == sorted(
        ["STUDENTS.md", f"{ASSIGNMENT}.zip", wheel_of(dist).name, "requirements.txt"]
    )
    with zipfile.ZipFile(dist / f"{ASSIGNMENT}.zip") as z:
        assert sorted(z.namelist()) == sorted(
            f"{ASSIGNMENT}/{p.name}" for p in (REPO / "release" / ASSIGNMENT).glob("*.ipynb")
        )
        for p in (REPO / "release" / ASSIGNMENT).glob("*.ipynb"):
            assert z.read(f"{ASSIGNMENT}/{p.name}") == p.read_bytes(), f"{p.name} differs from the release"
    text = (dist / "STUDENTS.md").read_text()
    assert f"pip install -r requirements.txt {wheel_of(dist).name}" in text and "collabkit data" in text
    assert "\n## Python versions\n" in text and "\n## Colab\n" in text


def test_the_wheel_admits_every_student_python_and_carries_the_pins(dist):
    from email.parser import Parser

    from packaging.specifiers import SpecifierSet

    with zipfile.ZipFile(wheel_of(dist)) as z:
        meta = Parser().parsestr(z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode())
        pins = z.read("collabkit/pins.txt").decode()
    spec = SpecifierSet(meta["Requires-Python"])
    assert [v for v in STUDENT_PYTHONS if f"{v}.0" not in spec] == [], f"Requires-Python {spec} refuses some"
    assert "3.10.0" not in spec, "the kit's code needs 3.11"
    assert pins == (dist / "requirements.txt").read_text(), "collabkit.versions compares against the bundle's pins"


def test_the_colab_cell_keeps_colabs_torch_and_jupyter_and_installs_the_rest(dist):
    text = (dist / "STUDENTS.md").read_text()
    cell = text.split("```python\n")[1].split("```")[0]
    install = next(line for line in cell.splitlines() if "pip install" in line)
    pins = {
        line.split("==")[0]: line.split("==")[1]
        for line in (dist / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
    assert f"/content/{wheel_of(dist).name}" in cell and "-c /content/keep.txt" in install
    assert "pip list --format=freeze | grep -iE '^(torch|torchvision)=='" in cell
    for name, version in pins.items():
        if name in COLAB_KEEP or name in COLAB_OWN:
            assert f" {name}=" not in install and f'"{name}>' not in install, name
        elif name == "fastai":
            assert f" fastai=={version}" in install
        else:
            assert f'"{name}>={version}"' in install, name


def test_the_wheel_holds_what_notebooks_import_and_no_grading_code(dist):
    with zipfile.ZipFile(wheel_of(dist)) as z:
        modules = sorted(n.split("/", 1)[1] for n in z.namelist() if n.startswith("collabkit/"))
        entry_points = next(z.read(n).decode() for n in z.namelist() if n.endswith("entry_points.txt"))
    assert modules == sorted(
        [*STUDENT_MODULES, "pins.txt", "released.json"]
    )  # released.json: what `collabkit check` reads
    assert "collabkit = collabkit.student:main" in entry_points
    # What the release notebooks import from collabkit, and what that needs, transitively, is the wheel.
    package = REPO / "collabkit"
    used = {
        f"{mod}.py"
        for release_nb in (REPO / "release" / ASSIGNMENT).glob("*.ipynb")
        for cell in nbformat.read(release_nb, as_version=4).cells
        for mod in re.findall(r"collabkit\.(\w+)", cell.source)
    }
    assert {"nb.py", "scaffold.py"} <= used, used
    todo, needed = sorted(used) + ["student.py"], {"__init__.py"}  # student.py: `collabkit data` and `check`
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += sorted(student_imports(package / name))
    assert needed == set(STUDENT_MODULES), f"the import closure is {sorted(needed)}"
    for release_nb in (REPO / "release" / ASSIGNMENT).glob("*.ipynb"):
        for cell in nbformat.read(release_nb, as_version=4).cells:
            for mod in re.findall(r"collabkit\.(\w+)", cell.source):
                assert f"{mod}.py" in STUDENT_MODULES, f"{release_nb.name} uses collabkit.{mod}, not in the wheel"


def test_the_wheel_carries_the_release_the_check_compares_with(dist):
    """released.json holds each released notebook's graded cells as released; the check finds a fresh
    copy of the zip untouched (only its answers to write) and runs the grader's rules on it."""
    from collabkit import check

    with zipfile.ZipFile(wheel_of(dist)) as z:
        release = check.from_manifest(json.loads(z.read("collabkit/released.json")))
    with zipfile.ZipFile(dist / f"{ASSIGNMENT}.zip") as z:
        zipped = {Path(n).name: z.read(n) for n in z.namelist()}
    assert release.assignment == ASSIGNMENT and sorted(release.notebooks) == sorted(zipped)
    assert release.cell_timeout == 300 and release.notebook_timeout == 900
    for name, data in zipped.items():
        nb = nbformat.reads(data.decode(), as_version=4)
        graded = [c for c in nb.cells if "nbgrader" in c.metadata]
        assert [c.source for c in release.notebooks[name].cells] == [c.source for c in graded], name
        report = check.NotebookReport(name)
        check.inspect(data, release.notebooks[name], report)
        assert report.repairs == [] and report.findings, name
        assert all(
            f.text.split(": still `")[1].startswith(("raise NotImplementedError", "YOUR ANSWER HERE"))
            for f in report.findings
        ), name


def test_requirements_are_the_course_pins_of_what_the_notebooks_import(dist):
    pins = [line for line in (dist / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    course_pins = set((REPO / "requirements.txt").read_text().splitlines())
    assert pins and all(p in course_pins for p in pins), pins
    names = {re.split("==", p)[0].lower() for p in pins}
    imported = set()
    for release_nb in (REPO / "release" / ASSIGNMENT).glob("*.ipynb"):
        for cell in nbformat.read(release_nb, as_version=4).cells:
            if cell.cell_type == "code":
                imported |= {m.group(1) for m in re.finditer(r"^\s*(?:from|import)\s+(\w+)", cell.source, re.M)}
    for name in STUDENT_MODULES:
        for node in ast.walk(ast.parse((REPO / "collabkit" / name).read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"collabkit"}
    assert third_party and third_party <= names, f"imported but not pinned: {sorted(third_party - names)}"
    assert {"notebook", "ipykernel"} <= names, "students need Jupyter and a kernel"
    assert not names & {"nbgrader", "pytest", "nbval", "playwright"}, "instructor tools stay out"


def test_nothing_instructor_only_is_in_the_bundle(dist):
    secrets = secret_lines(REPO / "source" / ASSIGNMENT)
    assert len(secrets) > 100, "the scan knows the source's solutions, hidden tests and mark schemes"
    assert leaks(dist, secrets) == []
    names = []
    for path in dist.iterdir():
        names.append(path.name)
        if path.suffix in (".zip", ".whl"):
            names += zipfile.ZipFile(path).namelist()
    assert not [n for n in names if "source/" in n or "solutions" in n or "reference.json" in n or n.endswith(".pth")]
    # The solution of a function and a hidden test, and a mark scheme, all known instructor-only:
    src = nbformat.read(REPO / "source" / ASSIGNMENT / "05_cold_start_and_ethics.ipynb", as_version=4)
    assert any("=== BEGIN MARK SCHEME ===" in c.source for c in src.cells)
    for cell in src.cells:
        if "BEGIN MARK SCHEME" in cell.source:
            scheme = cell.source.split("=== BEGIN MARK SCHEME ===")[1].split("=== END MARK SCHEME ===")[0]
            for line in scheme.splitlines():
                if len(line.strip()) > 40:
                    with zipfile.ZipFile(dist / f"{ASSIGNMENT}.zip") as z:
                        assert all(line.strip() not in z.read(n).decode() for n in z.namelist())


def test_the_scan_catches_a_planted_hidden_test_line(dist, tmp_path):
    secrets = secret_lines(REPO / "source" / ASSIGNMENT)
    src = nbformat.read(REPO / "source" / ASSIGNMENT / "03_interpretation.ipynb", as_version=4)
    hidden = next(c.source for c in src.cells if "BEGIN HIDDEN TESTS" in c.source)
    line = next(s.strip() for s in hidden.split("### BEGIN HIDDEN TESTS")[1].splitlines() if s.strip() in secrets)
    leaky = tmp_path / "dist"
    shutil.copytree(dist, leaky)
    name = f"{ASSIGNMENT}/03_interpretation.ipynb"
    with zipfile.ZipFile(dist / f"{ASSIGNMENT}.zip") as z:
        members = {n: z.read(n) for n in z.namelist()}
    nb = nbformat.reads(members[name].decode(), as_version=4)
    nb.cells[-1].source += "\n" + line
    members[name] = nbformat.writes(nb).encode()
    with zipfile.ZipFile(leaky / f"{ASSIGNMENT}.zip", "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    found = leaks(leaky, secrets)
    assert found and all(name in f for f in found), found
    (leaky / "notes.md").write_text("### BEGIN SOLUTION\n")
    assert any("notes.md: holds 'BEGIN SOLUTION'" in f for f in leaks(leaky, secrets))


RUN_TO_FIRST_STUB = r"""
import json, sys
import nbformat
from nbclient import NotebookClient
path, out = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
cells = []
for cell in nb.cells:
    if cell.metadata.get("nbgrader", {}).get("solution"):
        break
    cells.append(cell)
assert any(c.cell_type == "code" for c in cells), "no code before the first stub"
cells.append(nbformat.v4.new_code_cell("import collabkit, sys; print(collabkit.__file__); print(sys.executable)"))
nb.cells = cells
NotebookClient(nb, timeout=600, kernel_name="python3").execute()
errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
stderr = [o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("name") == "stderr"]
where = nb.cells[-1].outputs[0].text.split()
json.dump({"n_code": sum(c.cell_type == "code" for c in cells) - 1, "errors": len(errors), "stderr": stderr,
           "collabkit": where[0], "python": where[1]}, open(out, "w"))
"""


@pytest.mark.slow
def test_release_notebooks_run_to_their_first_stub_with_only_the_bundle(dist, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    (site / "pinned_stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # .pth files there are not run
    py = venv / "bin" / "python"
    run = subprocess.run(
        [py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel_of(dist))],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    student = tmp_path / "student"  # outside the repository: no course, no source, no solutions above it
    with zipfile.ZipFile(dist / f"{ASSIGNMENT}.zip") as z:
        z.extractall(student)
    env = dict(
        os.environ,
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"),
    )
    env.pop("COLLABKIT_REFERENCE", None)
    assert (venv / "bin" / "collabkit").exists(), "the wheel installs the students' command"
    run = subprocess.run([venv / "bin" / "collabkit", "data"], capture_output=True, text=True, env=env, cwd=student)
    assert run.returncode == 0 and run.stdout.strip().endswith("ml-100k"), run.stderr
    run = subprocess.run([venv / "bin" / "collabkit", "grade"], capture_output=True, text=True, env=env, cwd=student)
    assert run.returncode == 2 and "usage: collabkit data" in run.stderr
    # The students' check, from the installed wheel, against the release it carries (read only: no run).
    check = [venv / "bin" / "collabkit", "check", "--no-run"]
    run = subprocess.run(check, capture_output=True, text=True, env=env, cwd=student)
    assert run.returncode == 1 and run.stderr == "", run.stderr
    assert "against the release in collabkit" in run.stdout and "still `raise NotImplementedError" in run.stdout
    assert "was restored" not in run.stdout and "was removed" not in run.stdout, run.stdout
    (tmp_path / "run.py").write_text(RUN_TO_FIRST_STUB)
    for path in sorted((student / ASSIGNMENT).glob("*.ipynb")):
        out = tmp_path / f"{path.stem}.json"
        run = subprocess.run(
            [py, tmp_path / "run.py", path, out], capture_output=True, text=True, env=env, cwd=path.parent, timeout=900
        )
        assert run.returncode == 0, f"{path.name}: {run.stderr[-3000:]}"
        got = json.loads(out.read_text())
        assert got["n_code"] >= 1 and got["errors"] == 0 and got["stderr"] == [], (path.name, got)
        assert got["collabkit"].startswith(str(venv)), f"{path.name}: collabkit came from {got['collabkit']}"
        assert got["python"].startswith(str(venv)), f"{path.name}: the kernel ran {got['python']}"


def test_handout_refuses_a_release_that_leaks_and_writes_nothing(tmp_path):
    from collabkit.errors import KitError

    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    for folder in ("source", "release"):
        shutil.copytree(
            REPO / folder / ASSIGNMENT, course / folder / ASSIGNMENT, ignore=shutil.ignore_patterns("models")
        )
    path = course / "release" / ASSIGNMENT / "01_data.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[-1].source += "\n### BEGIN HIDDEN TESTS\n"  # a release made with the wrong config
    nbformat.write(nb, path)
    with pytest.raises(
        KitError,
        match=r"the handout would leak instructor-only content, so dist/ was not written: "
        r"collab_filtering.zip:collab_filtering/01_data.ipynb: holds 'BEGIN HIDDEN TESTS'",
    ):
        handout(Course.open(course))
    assert not (course / "dist").exists() and not list(course.glob(".dist-*"))
    (course / "release" / ASSIGNMENT).rename(course / "release" / "gone")
    with pytest.raises(KitError, match="holds no notebooks: run `collabkit release` first"):
        handout(Course.open(course))


def test_with_a_course_url_the_colab_cell_installs_the_wheel_from_there(dist, tmp_path):
    """`collabkit handout --url`: the cell's WHEEL is the published address, and pip installs from such
    an address (served here on loopback by Python's http.server, a stand-in for the course's site)."""
    import functools
    import http.server
    import threading

    from collabkit.handout import students_md

    wheel = wheel_of(dist).name
    pins = (dist / "requirements.txt").read_text()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(dist))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        text = students_md(ASSIGNMENT, wheel, f"{ASSIGNMENT}.zip", pins, url=base + "/")
        [line] = [line for line in text.splitlines() if "WHEEL = " in line]
        address = line.split('"')[1]
        assert address == f"{base}/{wheel}" and "nothing to upload" in text
        run = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--target", tmp_path / "t", address],
            capture_output=True,
            text=True,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode == 0 and "Would install collabkit-" in run.stdout, run.stderr[-2000:]
