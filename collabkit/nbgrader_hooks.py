"""Runs inside nbgrader's own commands and formgrader, through the settings `kit_config()` gives them.

Stock `nbgrader autograde` (and formgrader's per-student "Autograde" button, which calls it)
would run student code unsandboxed, as the server's user, and overwrite the kit's grades and
records. For this assignment it refuses and names `collabkit grade` instead. The refusal sits in
the converter's exporter, which nbgrader builds before it touches any folder: a preprocessor
would come too late, after `--force` (the button always forces) has removed the student's
autograded/ folder, and nbgrader's failure handling removes it again.

`COLLABKIT_STOCK_AUTOGRADE=1` in the environment lets stock autograde run anyway: the kit's own
baseline runs (grader_tests/test_solution.py, `collabkit bench`) set it on purpose.
"""

from __future__ import annotations

import os
from fnmatch import fnmatch

from nbconvert.exporters import NotebookExporter

from . import ASSIGNMENT

STOCK_AUTOGRADE = "COLLABKIT_STOCK_AUTOGRADE"
REFUSAL = (
    f"nbgrader autograde is switched off for {ASSIGNMENT}: it would run student code unsandboxed and "
    f"overwrite the kit's grades. Grade with `collabkit grade {ASSIGNMENT}` in the course folder "
    f"(`--student ID` for one student). Nothing was changed. (Set {STOCK_AUTOGRADE}=1 to run stock "
    "nbgrader autograde anyway.)"
)


class KitOnlyAutograde(NotebookExporter):
    """Autograde's exporter: refuses this assignment (before anything is read or written), else nbgrader's own."""

    def __init__(self, *args, parent=None, **kwargs):
        assignment = getattr(getattr(parent, "coursedir", None), "assignment_id", "") or "*"
        if os.environ.get(STOCK_AUTOGRADE) != "1" and fnmatch(ASSIGNMENT, assignment):
            from nbgrader.converters.base import NbGraderException

            if parent is not None:
                parent.log.error(REFUSAL)
            raise NbGraderException(REFUSAL)
        super().__init__(*args, parent=parent, **kwargs)
