"""`collabkit handout`: the bundle students get, and a scan that nothing instructor-only is in it.

`dist/` in the course holds:
- `<assignment>.zip`: the release folder (the student notebooks), nothing else;
- `collabkit-<version>-py3-none-any.whl`: the modules the notebooks import (`collabkit.nb` and
  what it imports: quiet, data, errors) plus `collabkit.student`, whose `collabkit data`
  places MovieLens; no grading, release or reference code;
- `requirements.txt`: the course's own pins of the packages the notebooks need;
- `STUDENTS.md`: how to install, open, work and submit.

Before anything is written, `leaks()` scans every file of the bundle (and every member of
the zip and the wheel) for instructor-only content: nbgrader's solution, hidden-test and
mark-scheme markers, any line of the source's solutions, hidden tests or mark schemes,
`reference.json`, `source/` or `solutions/` paths. A bundle that leaks is not written.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .course import Course
from .errors import KitError

# What the notebooks import (nb, and scaffold: the visible tests' shared set-up, which holds no
# answers), what that imports in turn (a test checks the closure), plus the students'
# `collabkit data` command.
STUDENT_MODULES = ["__init__.py", "nb.py", "fastdl.py", "scaffold.py", "quiet.py", "data.py", "errors.py", "student.py"]
# The packages a student's Jupyter needs to run the notebooks; their pins come from the
# course's requirements.txt, so the two never disagree.
STUDENT_PACKAGES = [
    "torch",
    "torchvision",
    "fastai",
    "fastcore",
    "fastprogress",
    "pandas",
    "numpy",
    "pyarrow",
    "matplotlib",
    "notebook",
    "ipykernel",
]
MARKERS = [
    "BEGIN SOLUTION",
    "END SOLUTION",
    "BEGIN HIDDEN TESTS",
    "END HIDDEN TESTS",
    "BEGIN MARK SCHEME",
    "END MARK SCHEME",
]
REGIONS = [
    ("BEGIN SOLUTION", "END SOLUTION"),
    ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"),
    ("BEGIN MARK SCHEME", "END MARK SCHEME"),
]
MIN_LINE = 25  # shorter secret lines ("return out") are too common to mean a leak

STUDENTS_MD = """\
# {assignment}: getting started

You need Python 3.11. Everything runs on a laptop CPU; a GPU is not needed.

1. Install, once (in a fresh virtual environment, or on Colab):

       pip install -r requirements.txt {wheel}
       collabkit data

   `collabkit data` places the MovieLens 100K files where fastai looks
   (`~/.fastai/data/ml-100k`; set `FASTAI_HOME` to put them elsewhere). It needs the
   internet once; after that everything works offline.
2. Unzip `{zip}` and open the notebooks: `jupyter notebook {assignment}/`.
3. Work top to bottom, in order `01` to `05`. Replace each `raise NotImplementedError(...)`
   with your code and each `YOUR ANSWER HERE` with your words. Run the test cell under each
   answer: it checks the type and shape of what you wrote; the grader runs more checks on
   the same names.
4. Don't edit, delete or copy the grey read-only cells. Each notebook rebuilds its own data
   and models, so a mistake in one notebook costs points only there.
5. Before you submit: Kernel > Restart & Run All, then hand in the five `.ipynb` files as
   your instructor asks.

If a notebook says `No module named 'collabkit'`, Jupyter runs another Python: install the
wheel into the Python that Jupyter's kernel uses.

## Submitting through Jupyter's Assignments tab

If your course runs on a shared Jupyter server (a JupyterHub) with nbgrader's exchange, your
instructor has set everything up; you need neither the zip nor the steps above.

1. In Jupyter's file browser, **Nbgrader > Assignment List** opens the **Assignments** tab.
   `{assignment}` is listed under "Released assignments": press **Fetch**. The notebooks land
   in `{assignment}/` in your home folder.
2. Work as in steps 3 and 4 above, and save.
3. In each notebook, the toolbar's **Validate** button runs the saved notebook from the top
   and says "Success! Your notebook passes all the tests." or which visible tests fail.
4. In the Assignments tab, press **Submit** under "Downloaded assignments". You may submit
   again; your instructor collects your newest submission.
5. When your instructor has released feedback, **Fetch Feedback** under "Submitted
   assignments" puts it in `{assignment}/feedback/<time of your submission>/`.

The same from a terminal: `nbgrader list`, `nbgrader fetch_assignment {assignment}`,
`nbgrader validate {assignment}/01_data.ipynb`, `nbgrader submit {assignment}`,
`nbgrader fetch_feedback {assignment}`. Your submission and feedback are yours alone: other
students can neither list nor read them.
"""


def _version() -> str:
    from importlib.metadata import version

    return version("collabkit")


def _split(text: str) -> tuple[list[str], list[str]]:
    """A cell's lines inside nbgrader's instructor-only regions, and those outside."""
    inside_lines, outside_lines, inside = [], [], False
    for line in text.splitlines():
        if any(begin in line for begin, _ in REGIONS):
            inside = True
        elif any(end in line for _, end in REGIONS):
            inside = False
        else:
            (inside_lines if inside else outside_lines).append(line)
    return inside_lines, outside_lines


def secret_lines(source: Path) -> set[str]:
    """Lines only instructors may see: solution regions (whole markdown reference answers),
    hidden tests and mark schemes of every source notebook, stripped, at least MIN_LINE long,
    less those students see anyway: in the source's visible parts (a task's text may quote the
    line it asks for) or in the kit's modules the wheel ships (a hidden test may reuse a line of
    `collabkit.nb`)."""
    import nbformat

    secret, shown = [], []
    for path in sorted(source.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution") and not any(b in cell.source for b, _ in REGIONS):
                secret += cell.source.splitlines()  # the whole cell is the answer
                continue
            inside, outside = _split(cell.source)
            secret += inside
            shown += outside
    package = Path(__file__).resolve().parent
    shown += [(package / m).read_text() for m in STUDENT_MODULES]
    shown_text = "\n".join(shown)
    return {s for s in (line.strip() for line in secret) if len(s) >= MIN_LINE and s not in shown_text}


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for v in value for s in _strings(v)] if isinstance(value, list) else []


def _text(name: str, data: bytes) -> str:
    """A file's text; a notebook's also as its decoded strings (sources, outputs), not JSON-escaped."""
    text = data.decode("utf-8", "replace")
    if name.endswith(".ipynb"):
        try:
            text += "\n" + "".join(_strings(json.loads(text)))
        except ValueError:
            pass
    return text


def _files(dist: Path):
    """(name, text) for every file of the bundle, and every member of its zips and wheels."""
    for path in sorted(p for p in dist.rglob("*") if p.is_file()):
        if path.suffix not in (".zip", ".whl"):
            yield path.relative_to(dist).as_posix(), _text(path.name, path.read_bytes())
        else:
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    yield f"{path.name}:{name}", _text(name, z.read(name))


def leaks(dist: Path, secrets: set[str]) -> list[str]:
    """Every instructor-only thing found in the bundle, one line each (empty: the bundle is safe)."""
    found = []
    for name, text in _files(dist):
        parts = name.replace(":", "/").split("/")
        if "source" in parts or "solutions" in parts or name.endswith("reference.json"):
            found.append(f"{name}: an instructor-only path")
        for marker in MARKERS:
            if marker in text:
                found.append(f"{name}: holds {marker!r}")
        for line in sorted(secrets):
            if line in text:
                found.append(f"{name}: holds the instructor-only line {line[:60]!r}")
    return found


def student_imports(module: Path) -> set[str]:
    """The collabkit modules one module imports (relative or absolute), as file names."""
    names = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                names.add(node.module.split(".")[0] + ".py")
            elif node.level == 1:
                names.update(f"{a.name}.py" for a in node.names)
            elif node.module and node.module.startswith("collabkit."):
                names.add(node.module.split(".")[1] + ".py")
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] + ".py" for a in node.names if a.name.startswith("collabkit."))
    return names


def build_wheel(out: Path, version: str) -> Path:
    """A wheel of STUDENT_MODULES only, built by setuptools from a staged copy."""
    package = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="collabkit-handout-") as tmp:
        stage = Path(tmp)
        (stage / "collabkit").mkdir()
        for name in STUDENT_MODULES:
            shutil.copy(package / name, stage / "collabkit" / name)
        (stage / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "collabkit"\nversion = "{version}"\nrequires-python = ">=3.11,<3.12"\n'
            'description = "What the collab_filtering notebooks import (students\' copy)."\n\n'
            '[project.scripts]\ncollabkit = "collabkit.student:main"\n\n'
            '[tool.setuptools]\npackages = ["collabkit"]\n'
        )
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "--disable-pip-version-check",
                "-w",
                str(stage / "wheel"),
                str(stage),
            ],
            capture_output=True,
            text=True,
            cwd=stage,
        )
        wheels = list((stage / "wheel").glob("collabkit-*.whl"))
        if run.returncode != 0 or len(wheels) != 1:
            raise KitError(f"building the students' wheel failed: {(run.stderr.strip().splitlines() or ['?'])[-1]}")
        return Path(shutil.copy(wheels[0], out / wheels[0].name))


def student_requirements(requirements: Path) -> str:
    pins = {}
    for line in requirements.read_text().splitlines():
        name = re.split(r"[=<>~! \[]", line.strip(), maxsplit=1)[0]
        if name and not line.lstrip().startswith("#"):
            pins[name.lower().replace("_", "-")] = line.strip()
    missing = [p for p in STUDENT_PACKAGES if p not in pins]
    if missing:
        raise KitError(f"{requirements} pins none of {', '.join(missing)}, which the students' notebooks need")
    return "# What the notebooks need (pins copied from the course's requirements.txt).\n" + "".join(
        pins[p] + "\n" for p in STUDENT_PACKAGES
    )


def handout(course: Course, requirements: Path | None = None) -> Path:
    """Write dist/ in the course (replacing an older one); return it. Refuses a bundle that leaks."""
    release = course.release
    notebooks = sorted(release.glob("*.ipynb"))
    if not notebooks:
        raise KitError(f"{release} holds no notebooks: run `collabkit release` first")
    requirements = requirements or Path(__file__).resolve().parent.parent / "requirements.txt"
    if not requirements.is_file():
        requirements = course.root / "requirements.txt"
    if not requirements.is_file():
        raise KitError(f"no requirements.txt to take the students' pins from (looked in {requirements.parent})")
    dist = course.root / "dist"
    tmp = Path(tempfile.mkdtemp(prefix=".dist-", dir=course.root))
    tmp.chmod(0o755)
    try:
        zip_name = f"{course.assignment}.zip"
        with zipfile.ZipFile(tmp / zip_name, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(p for p in release.rglob("*") if p.is_file()):
                rel = path.relative_to(release)
                if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                    continue
                z.write(path, f"{course.assignment}/{rel.as_posix()}")
        wheel = build_wheel(tmp, _version())
        (tmp / "requirements.txt").write_text(student_requirements(requirements))
        (tmp / "STUDENTS.md").write_text(
            STUDENTS_MD.format(assignment=course.assignment, wheel=wheel.name, zip=zip_name)
        )
        found = leaks(tmp, secret_lines(course.source))
        if found:
            raise KitError(
                f"the handout would leak instructor-only content, so dist/ was not written: {found[0]}"
                + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")
            )
        shutil.rmtree(dist, ignore_errors=True)
        tmp.rename(dist)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dist
