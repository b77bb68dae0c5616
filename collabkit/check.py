"""`collabkit check` (students' wheel), or `ck.check()` in a notebook: what the grader will do, before it does.

Runs on the student's machine, with no instructor file. For each notebook of the assignment it
reports, each with what the student can do about it:
- what the grader will repair: the rules of collabkit/rules.py, the very ones the grader's
  sanitizer applies (edited, deleted, retyped or copied read-only cells, skip tags, changed
  points or metadata, another kernel), plus files that are not notebooks at all;
- answers still `raise NotImplementedError` (or `YOUR ANSWER HERE`);
- under Restart & Run All of the notebook the grader would run (repairs made, hidden tests
  absent): visible tests that fail, with their messages, cells that raise, test cells that write
  to stderr (nbgrader scores those 0), and how long the notebook took against the grader's limits.

What it compares with is the release the notebooks came from. `collabkit handout` writes the
release's graded cells into the wheel (collabkit/released.json: cell roles, points, the visible
sources and the kernelspec, nothing the students' zip does not already hold); `--release`
takes the released folder or the assignment's zip instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .errors import KitError
from .rules import Repair, Unreadable, repair, specs_from_release

MANIFEST = "released.json"  # written into the students' wheel by collabkit handout (handout.release_manifest)
CHECKING = "COLLABKIT_CHECKING"  # set in the kernels the check starts: a `ck.check()` cell there does nothing
NOT_IMPLEMENTED = "raise NotImplementedError"
MARKDOWN_STUB = "YOUR ANSWER HERE"

# What the student can do about each kind of repair (rules.Repair.kind).
ADVICE = {
    "format": "Nothing to do (saving it from Jupyter writes the current format).",
    "cell_id": "Nothing to do.",
    "unknown_cell": "The grader treats that cell as an ordinary cell: copy only its code into a new cell, "
    "and keep your answer in the answer cell the release gave you.",
    "duplicate": "Delete the copy; only the first cell with this name is graded, so keep your answer there.",
    "retyped": "Change it back (Jupyter's cell-type menu), then Restart & Run All.",
    "metadata": "Undo the change, or take the cell from a fresh copy of the release and paste your answer back.",
    "points": "Take the cell from a fresh copy of the release; points are set by the release.",
    "tag": "Remove those tags (View > Right Sidebar > Property Inspector, or the cell's tag bar).",
    "edited": "Your edit is thrown away: copy the original cell back from the release and check that your "
    "answers still pass with it.",
    "reinserted": "Put the cell back where it was (copy it from the release), then Restart & Run All.",
    "kernelspec": "Kernel > Change Kernel > Python 3.",
}


@dataclass
class Release:
    """What the check compares with: the released notebooks and the grader's time limits."""

    assignment: str
    notebooks: dict  # file name -> nbformat notebook (the release's graded cells at least)
    where: str  # where it came from, for the report
    cell_timeout: float | None = None
    notebook_timeout: float | None = None


@dataclass
class Finding:
    level: str  # "fix": costs points or is undone by the grader; "note": harmless; "ok": good news
    text: str


@dataclass
class NotebookReport:
    name: str
    findings: list[Finding] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    unreadable: str | None = None
    seconds: float | None = None

    def add(self, level: str, text: str) -> None:
        self.findings.append(Finding(level, text))

    @property
    def to_fix(self) -> int:
        return sum(f.level == "fix" for f in self.findings)


# ---------------------------------------------------------------------------- the release


def _read_notebook(text: str, where: str):
    import nbformat

    try:
        return nbformat.reads(text, as_version=4)
    except Exception as err:  # noqa: BLE001  nbformat raises what the damage provokes
        raise KitError(f"{where} is not a readable notebook ({type(err).__name__}: {err})") from None


def from_manifest(data: dict) -> Release:
    """The release as `collabkit handout` wrote it into the wheel (handout.release_manifest)."""
    notebooks = {name: _read_notebook(json.dumps(nb), name) for name, nb in data["notebooks"].items()}
    return Release(
        data["assignment"],
        notebooks,
        f"the release in collabkit {data.get('version', '?')}",
        data.get("cell_timeout"),
        data.get("notebook_timeout"),
    )


def load_release(path: str | Path | None = None) -> Release:
    """The release from `path` (the released folder, or the assignment's zip), else from the wheel."""
    if path is None:
        from importlib.resources import files

        packaged = files("collabkit").joinpath(MANIFEST)
        if not packaged.is_file():
            raise KitError(
                "no release to compare with: this collabkit was not installed from the course's wheel. "
                "Pass --release with the assignment's zip or its released folder."
            )
        return from_manifest(json.loads(packaged.read_text()))
    path = Path(path).expanduser()
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            members = [n for n in z.namelist() if n.endswith(".ipynb") and "/." not in f"/{n}"]
            notebooks = {Path(n).name: _read_notebook(z.read(n).decode("utf-8"), f"{path}:{n}") for n in members}
        assignment = Path(members[0]).parent.name if members else path.stem
    elif path.is_dir():
        notebooks = {p.name: _read_notebook(p.read_text(), str(p)) for p in sorted(path.glob("*.ipynb"))}
        assignment = path.name
    else:
        raise KitError(f"--release {path}: expected the assignment's zip or its released folder")
    if not notebooks:
        raise KitError(f"--release {path} holds no notebooks")
    return Release(assignment or path.stem, notebooks, str(path))


def student_notebooks(paths: list[str], release: Release) -> tuple[dict[str, Path], list[str]]:
    """The student's copy of each released notebook, by name, from files or folders; and the names not
    found (in a folder given: naming notebooks checks only those)."""
    found: dict[str, Path] = {}
    folders = False
    for given in paths or ["."]:
        p = Path(given).expanduser()
        if p.is_file():
            found[p.name] = p
            continue
        if not p.is_dir():
            raise KitError(f"{p}: no such file or folder")
        folders = True
        folder = p if any((p / n).exists() for n in release.notebooks) else p / release.assignment
        for name in release.notebooks:
            if (folder / name).exists():
                found.setdefault(name, folder / name)
    unknown = [n for n in found if n not in release.notebooks]
    if unknown:
        raise KitError(f"{', '.join(unknown)}: not a notebook of {release.assignment} ({', '.join(release.notebooks)})")
    return found, [n for n in release.notebooks if n not in found] if folders else []


# ---------------------------------------------------------------------------- reading (no kernel)


def inspect(data: bytes, release_nb, report: NotebookReport):
    """The grader's repairs of this file (rules.repair, as collabkit/grading/batch.prepare calls it) and
    the answers left unanswered; returns the notebook the grader would run (None: it would run nothing)."""
    specs = specs_from_release(release_nb)
    try:
        nb, repairs = repair(data, release_nb, specs)
    except Unreadable as err:
        report.unreadable = str(err)
        report.add(
            "fix",
            f"The grader cannot read this file: {err}. It scores every cell of it 0. Open it in Jupyter; if it "
            "will not open, take the last good copy from .ipynb_checkpoints/ (or a fresh copy of the release "
            "with your answers pasted back) and save it from Jupyter.",
        )
        return None
    except Exception as err:  # noqa: BLE001  the grader marks such a file unreadable too (batch.prepare)
        report.unreadable = f"could not be repaired ({type(err).__name__}: {err})"
        report.add(
            "fix",
            f"The grader cannot repair this file ({type(err).__name__}: {err}) and scores it 0. "
            "Take a fresh copy of the release and paste your answers back.",
        )
        return None
    report.repairs = repairs
    for r in repairs:
        level = "note" if r.kind in ("format", "cell_id") else "fix"
        flag = " The grader records it as tampering for your instructor." if r.tampering else ""
        report.add(level, f"{r}.{flag} {ADVICE.get(r.kind, '')}".strip())
    for cell in nb.cells:
        spec = specs.get(cell.metadata.get("nbgrader", {}).get("grade_id"))
        if spec is None or not spec.solution:
            continue
        if cell.cell_type == "code" and NOT_IMPLEMENTED in cell.source:
            report.add(
                "fix", f"{spec.grade_id}: still `{NOT_IMPLEMENTED}`. Replace it (and the line above it) with your code."
            )
        elif cell.cell_type == "markdown" and cell.source.strip() == MARKDOWN_STUB:
            report.add("fix", f"{spec.grade_id}: still `{MARKDOWN_STUB}`. Write your answer in that cell.")
    return nb


# ---------------------------------------------------------------------------- running (Restart & Run All)


def _seconds(cell) -> float | None:
    t = cell.metadata.get("execution", {})
    try:
        start, end = (
            datetime.fromisoformat(t[k].replace("Z", "+00:00")) for k in ("iopub.execute_input", "shell.execute_reply")
        )
    except (KeyError, ValueError, AttributeError):
        return None
    return (end - start).total_seconds()


def _error_line(output) -> str:
    value = str(output.get("evalue", "")).strip().splitlines()
    text = f"{output.get('ename', 'Error')}: {value[0]}" if value else output.get("ename", "Error")
    return text if len(text) <= 300 else text[:297] + "..."


def run(nb, folder: Path, kernel: str, cell_timeout: float | None):
    """Execute `nb` in a fresh kernel in `folder`, as Restart & Run All does; (executed nb, seconds, what stopped it)."""
    import logging

    from nbclient import NotebookClient

    quiet = logging.getLogger("collabkit.check")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    client = NotebookClient(
        nb,
        timeout=int(cell_timeout) if cell_timeout else None,
        kernel_name=kernel,
        allow_errors=True,
        interrupt_on_timeout=True,
        record_timing=True,
        resources={"metadata": {"path": str(folder)}},
        log=quiet,
    )
    env = dict(os.environ, **{CHECKING: "1"})
    start, stopped = time.monotonic(), None
    try:
        # The kernel process's own logging (ipykernel's TCP warning) would land in the caller's cell as stderr.
        client.execute(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except Exception as err:  # noqa: BLE001  a dead kernel, a kernel that never started
        stopped = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    return nb, time.monotonic() - start, stopped


def judge_run(nb, release: Release, seconds: float, stopped: str | None, report: NotebookReport) -> None:
    """What the run of the repaired notebook says: failing visible tests, errors, stderr, time."""
    specs = specs_from_release(release.notebooks[report.name])
    passed = tests = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        spec = specs.get(cell.metadata.get("nbgrader", {}).get("grade_id"))
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        stderr = any(o.get("output_type") == "stream" and o.get("name") == "stderr" for o in cell.get("outputs", []))
        first = cell.source.strip().splitlines()[0][:40] if cell.source.strip() else ""
        name = spec.grade_id if spec else f"cell {i + 1} (`{first}`)"
        if spec is not None and spec.grade and not spec.solution:
            tests += 1
            if errors:
                report.add(
                    "fix",
                    f"{name} (visible test) fails: {_error_line(errors[0])}. Fix the answer it tests; "
                    "the grader runs this test and more on the same names.",
                )
            elif stderr:
                report.add(
                    "fix",
                    f"{name} (visible test) wrote to stderr, and the grader scores such a cell 0. Find what "
                    "prints a warning or error there (often code in your answer) and stop it.",
                )
            elif cell.get("execution_count") is not None:
                passed += 1
        elif errors and not (spec and spec.solution and errors[0].get("ename") == "NotImplementedError"):
            what = "your answer" if spec and spec.solution else "this cell"
            report.add(
                "fix",
                f"{name} raises {_error_line(errors[0])}. Make {what} run without an error: "
                "the cells after it may fail because of it.",
            )
    if tests:
        report.add("ok" if passed == tests else "note", f"{passed} of {tests} visible tests pass.")
    if stopped:
        report.add("fix", f"The run stopped early ({stopped}); the grader's run would stop there too.")
    slow = max(((s, c) for c in nb.cells if (s := _seconds(c)) is not None), key=lambda t: t[0], default=None)
    limits = []
    if release.cell_timeout:
        limits.append(f"{release.cell_timeout:g} s per cell")
    if release.notebook_timeout:
        limits.append(f"{release.notebook_timeout:g} s per notebook")
    text = f"Restart & Run All took {seconds:.1f} s here"
    if slow:
        gid = slow[1].metadata.get("nbgrader", {}).get("grade_id")
        text += f" (slowest cell: {gid or f'cell {nb.cells.index(slow[1]) + 1}'}, {slow[0]:.1f} s)"
    text += f"; the grader allows {' and '.join(limits)}." if limits else "."
    over = (release.notebook_timeout and seconds > release.notebook_timeout) or (
        release.cell_timeout and slow and slow[0] > release.cell_timeout
    )
    report.seconds = seconds
    report.add(
        "fix" if over else "note",
        text + (" Make it faster (fewer epochs, smaller models) or the grader stops it." if over else ""),
    )


# ---------------------------------------------------------------------------- the whole check


def check(
    paths: list[str] | None = None, release: Release | str | Path | None = None, execute: bool = True, out=None
) -> int:
    """Check the student's notebooks, print the report to `out` (stdout); the number of things to fix."""
    out = out or sys.stdout
    rel = release if isinstance(release, Release) else load_release(release)
    found, missing = student_notebooks(list(paths or []), rel)
    print(f"collabkit check: {rel.assignment}, against {rel.where}", file=out)
    total = 0
    for name in missing:
        print(f"\n{name}\n  FIX   not found. The grader scores a missing notebook 0: hand in all of them.", file=out)
        total += 1
    for name in rel.notebooks:
        if name not in found:
            continue
        report = NotebookReport(name)
        nb = inspect(found[name].read_bytes(), rel.notebooks[name], report)
        if nb is not None and execute:
            kernel = rel.notebooks[name].metadata.get("kernelspec", {}).get("name", "python3")
            nb, seconds, stopped = run(nb, found[name].resolve().parent, kernel, rel.cell_timeout)
            judge_run(nb, rel, seconds, stopped, report)
        print(f"\n{found[name]}", file=out)
        for f in report.findings:
            print(f"  {f.level.upper():5} {f.text}", file=out)
        if not report.findings:
            print("  OK    nothing to repair, every answer filled in.", file=out)
        total += report.to_fix
    print(
        f"\n{total} thing(s) to fix before you submit." if total else "\nNothing to fix: ready to submit.",
        file=out,
    )
    if execute:
        print("(Run on the files as saved: save your notebooks first. Hidden tests are not run here.)", file=out)
    out.flush()
    return total


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="collabkit check",
        description="Check your notebooks the way the grader will, before you submit (no hidden tests).",
    )
    parser.add_argument("paths", nargs="*", help="notebooks or folders (default: the current folder)")
    parser.add_argument("--release", help="the assignment's zip or released folder (default: the one in the wheel)")
    parser.add_argument("--no-run", action="store_true", help="only read the notebooks, do not run them")
    args = parser.parse_args(argv)
    try:
        return 1 if check(args.paths, args.release, execute=not args.no_run) else 0
    except KitError as err:
        print(f"collabkit check: {err}", file=sys.stderr)
        return 2
