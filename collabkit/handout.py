"""`collabkit handout`: the bundle students get, and a scan that nothing instructor-only is in it.

`dist/` in the course holds:
- `<assignment>.zip`: the release folder (the student notebooks), nothing else;
- `collabkit-<version>-py3-none-any.whl`: the modules the notebooks import (`collabkit.nb` and
  what it imports: quiet, data, errors, versions, and check with the grader's repair rules) plus
  `collabkit.student`, whose `collabkit data` places MovieLens and `collabkit check` checks a
  student's notebooks the way the grader will; `pins.txt` (the students' pins, which
  `collabkit.versions` compares the kernel's stack against); and `collabkit/released.json`, the
  release's graded cells (roles, points, visible sources, kernelspec) and the grader's time
  limits, which the check compares with (`release_manifest`); no grading, release or reference
  code. It installs on CPython 3.11 and later (STUDENT_PYTHONS are the ones checked); the
  instructor's side stays on 3.11;
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
from .versions import read_pins

# What the notebooks import (nb, and scaffold: the visible tests' shared set-up, which holds no
# answers), what that imports in turn (a test checks the closure), plus the students'
# `collabkit data` command and `collabkit check` (check, and rules: the grader's own repair rules).
STUDENT_MODULES = [
    "__init__.py",
    "nb.py",
    "fastdl.py",
    "scaffold.py",
    "quiet.py",
    "data.py",
    "errors.py",
    "student.py",
    "check.py",
    "rules.py",
    "versions.py",
]
# The students' wheel admits every Python from 3.11 on: the pins, not the wheel, decide where the
# bundle installs. These Pythons and systems are the ones a slow test resolves the bundle for
# (grader_tests/test_student_pythons.py): one requirements.txt serves all nine, no markers needed.
REQUIRES_PYTHON = ">=3.11"
STUDENT_PYTHONS = ("3.11", "3.12", "3.13")
STUDENT_PLATFORMS = {  # uv's --python-platform for each system STUDENTS.md names
    "Linux x86-64": "x86_64-manylinux_2_28",  # torch 2.14.1's Linux wheels need glibc 2.28
    "macOS arm64": "aarch64-apple-darwin",  # with MACOSX_DEPLOYMENT_TARGET=14.0: torch's are macOS 14 wheels
    "Windows x86-64": "x86_64-pc-windows-msvc",
}
# On Colab: torch and torchvision stay as Colab has them (CUDA builds; a pinned CPU torch costs
# minutes and breaks the GPU runtime), Jupyter and the kernel are Colab's own, fastai is the pin
# exactly (its version decides what students' code does when graded), the rest are minimums:
# installed only when missing or older than the pin.
COLAB_KEEP = ("torch", "torchvision")
COLAB_OWN = ("notebook", "ipykernel")
COLAB_EXACT = ("fastai",)
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
    # `collabkit check`: reads notebooks (rules.py) and runs them as Restart & Run All does (check.py)
    "nbformat",
    "nbclient",
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

You need CPython 3.11, 3.12 or 3.13 on Linux, macOS (Apple silicon) or Windows (see "Python
versions" below), or Google Colab (see "Colab"). Everything runs on a laptop CPU; a GPU is not needed.

1. Install, once (in a fresh virtual environment):

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

## Check before you submit

`collabkit check` tells you what the grader will do with your notebooks, before it does. Save
your notebooks, then run, in the folder that holds them (or in the folder you unzipped into):

    collabkit check

or, in a new cell of any of the notebooks (delete the cell afterwards, or leave it: when the
grader runs it, it prints one line and does nothing):

    ck.check()

It compares your notebooks with the release they came from. The wheel you installed carries
that release (the graded cells as you received them, no solution and no hidden test), so you
need nothing else; `--release {zip}` compares with the zip instead. It reports, each with what
to do about it:

- cells the grader will put back or repair: a grey read-only or test cell you edited, deleted,
  copied or turned into markdown, tags that would skip a test, changed points or metadata,
  another kernel. Whatever you changed there is thrown away when grading, so your answers must
  work with the original cells;
- a file that is not a notebook any more (damaged JSON): the grader scores it 0;
- answers still `raise NotImplementedError` or `YOUR ANSWER HERE`;
- then it runs each notebook from the top in a fresh kernel, as Kernel > Restart & Run All
  does, on the cells the grader would run: the visible tests that fail, with their messages,
  cells that raise an error, tests that write to stderr (the grader scores those 0), and how
  long each notebook took against the grader's time limits.

The hidden tests are not run: a notebook that passes the check can still lose points to them.
`collabkit check --no-run` only reads the notebooks (seconds instead of minutes);
`collabkit check 02_dot_product.ipynb` checks one notebook. It prints its report and exits 0
when there is nothing to fix, 1 when there is.

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
{pythons}{colab}"""

PYTHONS_MD = """
## Python versions

The bundle installs on CPython {pythons} on {platforms}. One
`requirements.txt` serves all of them: every pin has a wheel for each, so there are no
environment markers and no file per Python. The course checks this by resolving the bundle
(`requirements.txt` and the wheel) for each Python on each system against PyPI. The wheel
itself admits Python {requires_python}; on a newer Python than those checked, the pins decide
(pip names the one that has no wheel for it).

- Make the environment with the Python you want, then install as above:
  `python3.12 -m venv .venv` and `source .venv/bin/activate` (Linux, macOS), or
  `py -3.12 -m venv .venv` and `.venv\\Scripts\\activate` (Windows).
- macOS: torch {torch} ships wheels for Apple silicon on macOS 14 or newer only. On an Intel
  Mac, or an older macOS, use Colab.
- Linux: torch's wheels need glibc 2.28 or newer (Ubuntu 20.04, Debian 10, Fedora 29 and
  later). pip's torch for Linux brings NVIDIA's CUDA libraries, several GB; without an NVIDIA
  GPU you can install the CPU build first, then the line above:
  `pip install torch=={torch} torchvision=={torchvision} --index-url https://download.pytorch.org/whl/cpu`.
- Your instructor grades on Python 3.11 with these same pins, so whichever Python you use, your
  notebooks are run there. The instructor's side of the kit stays on 3.11.

When a notebook's first cell prints a line starting `collabkit: this Python differs from the
course's pins`, the packages it names are not the versions the grader runs (for fastai, another
minor version; for torch, pandas or numpy, another major one). Install the pins
(`pip install -r requirements.txt`), or expect that code which works for you may behave
differently when graded.
"""

COLAB_MD = """
## Colab

Colab runs each notebook in a runtime of its own, with its own Python, torch (with CUDA) and
usually fastai. Do this for each of the five notebooks:

1. Unzip `{zip}` on your computer. In Colab, File > Upload notebook, and pick the notebook
   (Colab keeps it in your Google Drive, in `Colab Notebooks`).
2. Get the wheel into the runtime. {wheel_where}
3. Insert a code cell at the very top, above the first grey cell, paste this and run it:

   ```python
{cell}
   ```

   It keeps Colab's torch and torchvision (reinstalling them would take minutes and can break
   the GPU runtime), leaves Colab's Jupyter alone, installs fastai {fastai} exactly and the
   other pins only where they are missing or older. pip may warn that one of Colab's own
   packages wanted another version; that is expected. The last line prints
   `/root/.fastai/data/ml-100k`: where `untar_data(URLs.ML_100k)` finds MovieLens on Colab. The
   runtime's files, the wheel and the data included, go when Colab recycles the runtime; run
   the cell again then. Outside Colab, and when graded, the cell does nothing, so it may stay.
4. Work as above. A CPU runtime is enough. If the first cell prints `collabkit: this Python
   differs from the course's pins`, read "Python versions": on Colab, torch is the likely one,
   and only a different major version is named.
5. To submit: File > Download > Download .ipynb, for each notebook. Keep the names
   (`01_data.ipynb` ...; a second download may be called `01_data (1).ipynb`: rename it), then
   hand in the five files as your instructor asks.

Checked by the course's tests: the cell above, as written here, run in a Jupyter kernel that
says it is Colab, on Linux, over a stand-in for Colab's torch (1.13.1+cu117, older than the
pin): torch was kept, the rest installed, MovieLens placed, and `import collabkit.nb` named
torch in one line; and the nine resolutions under "Python versions".
That pip installs the wheel from a web address is checked too (on a local web server). Not
checked (the course's machines have no Colab, no GPU and reach only PyPI): Colab's menus
(upload, the Files pane, download), your course's own web address, GPU runtimes, PyTorch's
CPU index for Linux, real installs on macOS and Windows (resolved only), and whether Colab
keeps every cell's metadata when you download.
"""

WHEEL_UPLOAD = (
    "Open the Files pane (the folder icon on the left) and drag `{wheel}` into it: it lands in\n"
    "   `/content/`, where the cell below looks for it."
)
WHEEL_URL = "The cell below installs it from the course's address, `{url}`; nothing to upload."

COLAB_CELL = """\
# Colab only: the course's packages for this runtime, keeping Colab's torch. Elsewhere it does nothing.
import sys
if "google.colab" in sys.modules:
    WHEEL = "{wheel}"
    !{{sys.executable}} -m pip list --format=freeze | grep -iE '^({keep})==' > /content/keep.txt
    !{{sys.executable}} -m pip install -q -c /content/keep.txt {{WHEEL}} {pins}
    !{{sys.executable}} -m collabkit.student data"""


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
    """A file's text; a notebook's or a JSON file's (the wheel's released.json) also as its decoded
    strings (sources, outputs), not JSON-escaped."""
    text = data.decode("utf-8", "replace")
    if name.endswith((".ipynb", ".json")):
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


def release_manifest(course: Course) -> dict:
    """What `collabkit check` compares with (collabkit/check.py): each released notebook's cells that
    carry nbgrader metadata, outputs cleared, with its metadata; and the grader's time limits.
    Only what the students' zip holds anyway, and `leaks()` scans it with the rest of the wheel."""
    import nbformat

    from .grading.records import Limits

    notebooks = {}
    for path in sorted(course.release.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nb.cells = [c for c in nb.cells if isinstance(c.metadata.get("nbgrader", {}).get("grade_id"), str)]
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        notebooks[path.name] = json.loads(nbformat.writes(nb))
    timeout = course.nbgrader_config().Execute.timeout
    return {
        "assignment": course.assignment,
        "version": _version(),
        "cell_timeout": float(timeout) if timeout else None,
        "notebook_timeout": Limits().notebook_timeout,
        "notebooks": notebooks,
    }


def build_wheel(out: Path, version: str, pins: str = "", manifest: dict | None = None) -> Path:
    """A wheel of STUDENT_MODULES, `pins.txt` (the students' pins) and, given a release manifest,
    collabkit/released.json (what `collabkit check` compares with), built by setuptools from a staged copy."""
    package = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="collabkit-handout-") as tmp:
        stage = Path(tmp)
        (stage / "collabkit").mkdir()
        for name in STUDENT_MODULES:
            shutil.copy(package / name, stage / "collabkit" / name)
        (stage / "collabkit" / "pins.txt").write_text(pins)
        if manifest is not None:
            (stage / "collabkit" / "released.json").write_text(json.dumps(manifest, indent=1) + "\n")
        (stage / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "collabkit"\nversion = "{version}"\nrequires-python = "{REQUIRES_PYTHON}"\n'
            'description = "What the collab_filtering notebooks import (students\' copy)."\n\n'
            '[project.scripts]\ncollabkit = "collabkit.student:main"\n\n'
            '[tool.setuptools]\npackages = ["collabkit"]\n\n'
            '[tool.setuptools.package-data]\ncollabkit = ["pins.txt", "released.json"]\n'
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


def colab_requirements(pins: str) -> list[str]:
    """What Colab's cell installs besides the wheel (see COLAB_KEEP, COLAB_OWN, COLAB_EXACT), shell-quoted."""
    out = []
    for name, pinned in read_pins(pins).items():
        if name in COLAB_KEEP or name in COLAB_OWN:
            continue
        out.append(f"{name}=={pinned}" if name in COLAB_EXACT else f'"{name}>={pinned}"')
    return out


def _and(items) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1]


def students_md(assignment: str, wheel: str, zip_name: str, pins: str, url: str | None = None) -> str:
    """STUDENTS.md: the steps, then its "Python versions" and "Colab" sections."""
    versions = read_pins(pins)
    source = f"{url.rstrip('/')}/{wheel}" if url else f"/content/{wheel}"
    cell = COLAB_CELL.format(wheel=source, keep="|".join(COLAB_KEEP), pins=" ".join(colab_requirements(pins)))
    pythons = PYTHONS_MD.format(
        pythons=_and(STUDENT_PYTHONS),
        platforms=_and(list(STUDENT_PLATFORMS)),
        requires_python=REQUIRES_PYTHON,
        torch=versions["torch"],
        torchvision=versions["torchvision"],
    )
    colab = COLAB_MD.format(
        zip=zip_name,
        wheel_where=(WHEEL_URL.format(url=url) if url else WHEEL_UPLOAD.format(wheel=wheel)),
        cell="\n".join("   " + line for line in cell.splitlines()),
        fastai=versions["fastai"],
    )
    return STUDENTS_MD.format(assignment=assignment, wheel=wheel, zip=zip_name, pythons=pythons, colab=colab)


def handout(course: Course, requirements: Path | None = None, url: str | None = None) -> Path:
    """Write dist/ in the course (replacing an older one); return it. Refuses a bundle that leaks.
    `url`: where the instructor will publish dist/'s files, for STUDENTS.md's Colab cell."""
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
        pins = student_requirements(requirements)
        wheel = build_wheel(tmp, _version(), pins, release_manifest(course))
        (tmp / "requirements.txt").write_text(pins)
        (tmp / "STUDENTS.md").write_text(students_md(course.assignment, wheel.name, zip_name, pins, url))
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
