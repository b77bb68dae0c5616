"""What the kit writes as root in a course another user owns goes back to that user.

`collabkit grade` runs as root (for the sandbox) in an instructor's course; the instructor's own
nbgrader commands (generate_feedback, release_feedback) must then be able to rewrite feedback/,
autograded/ and the gradebook. grader_tests/test_exchange_users.py proves it across real users.
"""

from __future__ import annotations

import os
import shutil

import pytest
from harness import ASSIGNMENT, REPO

from collabkit.course import Course

OWNER = 65534  # nobody: any uid other than root's


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: only root writes files another user's course then holds")
def test_root_written_files_are_handed_back_to_the_course_owner(tmp_path):
    root = tmp_path / "course"
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    for path in [root, root / "source", root / "source" / ASSIGNMENT, root / "nbgrader_config.py"]:
        os.chown(path, OWNER, OWNER)
    written = [
        root / "autograded" / "alice" / ASSIGNMENT / "01_data.ipynb",
        root / "feedback" / "alice" / ASSIGNMENT / "01_data.html",
        root / "exports" / "grades.csv",
        root / ".collabkit" / "locks" / "gradebook.lock",
        root / "gradebook.db",
        root / "gradebook.db.backup-20261207T000000",
    ]
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    elsewhere = root / "notes.txt"  # not the kit's: left alone
    elsewhere.write_text("mine")
    changed = Course.open(root).hand_back()
    assert all(p.stat().st_uid == OWNER and p.stat().st_gid == OWNER for p in written)
    assert (root / "feedback" / "alice").stat().st_uid == OWNER
    assert elsewhere.stat().st_uid == 0 and elsewhere not in changed
    assert Course.open(root).hand_back() == [], "a second call finds nothing of root's"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_a_root_owned_course_is_left_as_it_is(tmp_path):
    root = tmp_path / "course"
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    (root / "feedback").mkdir()
    assert Course.open(root).hand_back() == []
    assert (root / "feedback").stat().st_uid == 0
