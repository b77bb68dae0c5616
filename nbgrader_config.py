"""nbgrader settings for the collab-kit course. The course root is this folder.

The assignment's own settings (students' stubs, cell timeouts, what a release leaves out) come
from `collabkit.course.kit_config()`; `collabkit release` and `collabkit grade` apply them
themselves, and merging them here makes nbgrader's own commands and formgrader agree.
"""

from pathlib import Path

from collabkit.course import kit_config

c = get_config()  # noqa: F821  (nbgrader injects get_config)
c.merge(kit_config())

here = Path(__file__).resolve().parent
c.CourseDirectory.root = str(here)
c.CourseDirectory.course_id = "collab-kit"
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = f"sqlite:///{here / 'gradebook.db'}"
# The exchange for nbgrader's release_assignment, fetch_assignment, submit and collect (and
# formgrader's view of them) lives in the course; `collabkit release` creates it. On a shared
# JupyterHub, set Exchange.root (here and in the students' nbgrader config) to a folder every
# user can reach instead (nbgrader's default is /usr/local/share/nbgrader/exchange).
c.Exchange.root = str(here / "exchange")

# Late work (collabkit/late.py): a due date, and how lateness is penalised. nbgrader's
# LateSubmissionPlugin records lateness and takes nothing; the kit's PercentPerDay takes
# `percent` of each notebook's score per started day late. A submission's time is when its files
# arrived in submitted/ (never a timestamp.txt the student could write). Uncomment to use:
# c.CollabKit.duedate = "2026-12-18 23:59:00 UTC"
# c.AssignLatePenalties.plugin_class = "collabkit.late.PercentPerDay"
# c.PercentPerDay.percent = 10
