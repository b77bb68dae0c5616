"""The course: the folder you stand in (or `--root`), read the way nbgrader reads it.

As in nbgrader, a course is a folder with an `nbgrader_config.py`; this assignment's files sit
in it as `source/<assignment>/`, `release/<assignment>/` and `solutions/`. `Course` knows every
path the kit reads or writes there, so no other module works one out for itself, and the one
environment nbgrader's own tools need. It never changes `os.environ`.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import ASSIGNMENT
from .errors import KitError


class CourseError(KitError):
    """The folder is not a course this kit can work in."""


def kit_config():
    """The nbgrader settings this assignment relies on, applied on top of the course's own.

    `collabkit release` and `collabkit grade` apply them to their own runs only, so a course's
    other assignments are untouched. A course that also runs nbgrader's own commands on this
    assignment adds them to its nbgrader_config.py: `c.merge(kit_config())`.
    """
    from traitlets.config import Config

    c = Config()
    # Students' stubs: the docstring above each stub says what to write.
    c.ClearSolutions.code_stub = {
        "python": '# YOUR CODE HERE\nraise NotImplementedError("Write your answer here, as the text above describes.")'
    }
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    # One cell may train a model for up to a minute on a laptop; nbgrader reads Execute.timeout
    # before ExecutePreprocessor.timeout, so both are set.
    c.Execute.timeout = 300
    c.ExecutePreprocessor.timeout = 300
    c.Execute.interrupt_on_timeout = True
    c.Execute.raise_on_iopub_timeout = False
    # fastai's lr_find leaves a models/ folder beside a notebook run in place; never release it.
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "models", "*.pth"]
    c.GenerateAssignment.create_assignment = True
    c.ClearHiddenTests.enforce_metadata = True
    c.ClearMarkScheme.enforce_metadata = True
    # Stock `nbgrader autograde` and formgrader's Autograde button refuse this assignment and
    # name `collabkit grade` (COLLABKIT_STOCK_AUTOGRADE=1 opts out; see nbgrader_hooks.py).
    c.Autograde.exporter_class = "collabkit.nbgrader_hooks.KitOnlyAutograde"
    # Formgrader's "Generate Feedback" (nbgrader's GenerateFeedback) redacts as `collabkit
    # feedback` does: no hidden tests, no mark schemes, no tracebacks through tests.
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    from .nbgrader_feedback import StudentView

    c.GenerateFeedback.preprocessors = [GetGrades, StudentView, CSSHTMLHeaderPreprocessor]
    return c


def tool_env(base: dict | None = None, **extra: str) -> dict:
    """An environment for nbgrader's tools: this interpreter's scripts first on PATH (nbgrader
    runs `alembic` from PATH to create a gradebook), plus `extra`."""
    base = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    parts = [p for p in base.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    return dict(base, PATH=os.pathsep.join([bin_dir, *parts]), **extra)


@contextmanager
def nbgrader_tools():
    """While nbgrader runs in this process: its tools on PATH, as `tool_env` has it; restored after."""
    old = os.environ.get("PATH")
    os.environ["PATH"] = tool_env()["PATH"]
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = old


@dataclass(frozen=True)
class Course:
    root: Path
    assignment: str = ASSIGNMENT
    config: object = field(default=None, compare=False, repr=False)

    @classmethod
    def open(cls, root: str | Path | None = None, assignment: str = ASSIGNMENT) -> "Course":
        """The course at `root` (default: the working directory), with its nbgrader_config.py read."""
        from traitlets.config.loader import PyFileConfigLoader

        root = Path(root if root is not None else os.getcwd()).resolve()
        if not (root / "nbgrader_config.py").is_file():
            raise CourseError(
                f"{root} is not an nbgrader course: it has no nbgrader_config.py "
                "(run collabkit in the course folder, or pass --root)"
            )
        try:
            cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
        except Exception as err:  # noqa: BLE001  the instructor's own Python file
            raise CourseError(f"{root / 'nbgrader_config.py'} could not be read: {type(err).__name__}: {err}") from err
        course = cls(root, assignment, cfg)
        if not course.source.is_dir():
            raise CourseError(
                f"{root} has no {course.source.relative_to(root)}/: copy the assignment's source/ "
                "into the course (see README, 'Adding the assignment to a course')"
            )
        return course

    # ---------------------------------------------------------------- nbgrader's view
    @property
    def coursedir(self):
        """nbgrader's CourseDirectory for this course (a fresh one: it is mutable)."""
        from nbgrader.coursedir import CourseDirectory

        coursedir = CourseDirectory(config=self.config)
        coursedir.root = str(self.root)
        return coursedir

    def nbgrader_config(self):
        """The course's config with the kit's settings on top (for the kit's own nbgrader runs)."""
        import copy

        cfg = copy.deepcopy(self.config)  # merge() shares sub-configs: never change the course's own
        cfg.merge(kit_config())
        if "timeout" in self.config.get("Execute", {}):  # a course's own cell timeout wins
            cfg.Execute.timeout = self.config.Execute.timeout
        cfg.CourseDirectory.root = str(self.root)
        return cfg

    @property
    def db_url(self) -> str:
        return self.coursedir.db_url

    @property
    def gradebook(self) -> Path:
        url = self.db_url
        if not url.startswith("sqlite:///"):
            raise CourseError(f"the kit needs a sqlite gradebook, and this course's db_url is {url}")
        return Path(url[len("sqlite:///") :])

    def _step(self, step: str, student: str = ".") -> Path:
        cd = self.coursedir
        return Path(cd.format_path(getattr(cd, f"{step}_directory"), student, self.assignment))

    # ---------------------------------------------------------------- the assignment's folders
    @property
    def source(self) -> Path:
        return self._step("source")

    @property
    def release(self) -> Path:
        return self._step("release")

    @property
    def solutions_dir(self) -> Path:
        return self.root / "solutions"

    @property
    def solutions(self) -> Path:
        return self.solutions_dir / self.assignment

    @property
    def reference(self) -> Path:
        """The reference values hidden tests compare against (`collabkit reference` writes it)."""
        return self.solutions_dir / "reference.json"

    def notebooks(self) -> list[str]:
        """The assignment's notebook names, in order."""
        return sorted(p.name for p in self.source.glob("[0-9][0-9]_*.ipynb"))

    # ---------------------------------------------------------------- per student
    def submitted(self, student: str) -> Path:
        return self._step("submitted", student)

    def autograded(self, student: str) -> Path:
        return self._step("autograded", student)

    def feedback(self, student: str) -> Path:
        return self._step("feedback", student)

    def submitted_students(self) -> list[str]:
        """Every student with a folder for this assignment under submitted/."""
        top = self._step("submitted", "*").parent.parent
        return sorted(p.parent.name for p in top.glob(f"*/{self.assignment}") if p.is_dir())

    def graded_students(self) -> list[str]:
        top = self._step("autograded", "*").parent.parent
        return sorted(p.parent.parent.name for p in top.glob(f"*/{self.assignment}/grading.json"))

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def locks(self) -> Path:
        """Where grading runs hold their locks (students being graded, the gradebook): `.collabkit/locks/`."""
        return self.root / ".collabkit" / "locks"

    @property
    def exchange(self) -> Path:
        """nbgrader's exchange (`Exchange.root`; this repository's nbgrader_config.py puts it in the course)."""
        return Path(self.config.get("Exchange", {}).get("root", "/usr/local/share/nbgrader/exchange"))

    # ---------------------------------------------------------------- ownership
    def hand_back(self) -> list[Path]:
        """Give the course's owner what the kit wrote here as root (`collabkit grade` runs as root for
        the sandbox), so the instructor's own nbgrader commands (generate_feedback, release_feedback,
        formgrader) can rewrite it. Only paths owned by root change; a root-owned course is left as is.
        Returns the paths changed."""
        if os.geteuid() != 0:
            return []
        owner = self.root.stat()
        if owner.st_uid == 0:
            return []
        tops = [self.release, *(self._step(s, "*").parent.parent for s in ("autograded", "feedback"))]
        tops += [self.exports, self.root / ".collabkit", *self.root.glob(f"{self.gradebook.name}*")]
        changed = []
        for top in tops:
            if self.root not in top.parents or not top.exists():
                continue
            for path in [top, *(top.rglob("*") if top.is_dir() and not top.is_symlink() else [])]:
                if path.lstat().st_uid == 0:
                    os.lchown(path, owner.st_uid, owner.st_gid)
                    changed.append(path)
        return changed
