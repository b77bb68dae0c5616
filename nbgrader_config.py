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
