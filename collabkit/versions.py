"""Runs in the student's kernel, when `collabkit.nb` is imported: say, in one line, when the installed
stack differs from the course's pins in a way the grade can notice.

Students work on a laptop with the pinned stack, or on Colab, which keeps its own torch (with CUDA)
and may ship another fastai or pandas. The grader runs the pins. Where a difference can change what
a student's code does when graded (an API that moved, a default that changed), the notebook's first
cell says so, on stdout (nbgrader scores a cell 0 if it writes to stderr), once per kernel.

The pins are `pins.txt` beside this module in the students' wheel (`collabkit handout` writes it
from the course's requirements.txt), else the course's requirements.txt in an instructor's
checkout. With neither, or with every version close enough, nothing is printed.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# How many leading release numbers must agree with the pin for results to be comparable:
# fastai's minor releases change training defaults and APIs the notebooks call (2.7 -> 2.8 did),
# the others break APIs only in a major release. Patch releases, and local labels such as
# Colab's `+cu126` on torch, never count.
MATTERS = {"fastai": 2, "torch": 1, "pandas": 1, "numpy": 1}


def pins_file() -> Path | None:
    here = Path(__file__).resolve().parent
    for path in (here / "pins.txt", here.parent / "requirements.txt"):
        try:
            if path.is_file():
                return path
        except OSError:  # a folder the grader's sandbox hides (EACCES): no pins there
            continue
    return None


def read_pins(text: str) -> dict[str, str]:
    """`name==version` lines of a requirements file, names normalized (lower case, `-`)."""
    pins = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def _release(v: str) -> tuple[int, ...]:
    m = re.match(r"^\s*v?(\d+(?:\.\d+)*)", v)
    return tuple(int(p) for p in m.group(1).split(".")) if m else ()


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def differences(pins: dict[str, str], installed=_installed) -> list[str]:
    """One `name X (course: Y)` for each package of MATTERS whose version differs where it counts."""
    out = []
    for name, parts in MATTERS.items():
        if name not in pins:
            continue
        got = installed(name)
        if got is None:
            out.append(f"{name} not installed (course: {pins[name]})")
        elif _release(got)[:parts] != _release(pins[name])[:parts]:
            out.append(f"{name} {got} (course: {pins[name]})")
    return out


def notice(pins: dict[str, str] | None = None, installed=_installed) -> str | None:
    """The one line to print, or None when the stack matches the pins where it counts."""
    if pins is None:
        path = pins_file()
        try:
            pins = read_pins(path.read_text()) if path else {}
        except OSError:  # an unreadable pins file must never stop the notebook's first cell
            pins = {}
    found = differences(pins, installed)
    if not found:
        return None
    return (
        "collabkit: this Python differs from the course's pins where grading can tell: "
        + ", ".join(found)
        + ". Code that works here may behave differently when graded; see STUDENTS.md."
    )


def say_if_versions_differ() -> None:
    line = notice()
    if line:
        print(line, flush=True)
