"""`collabkit demo`: a throwaway course in .demo/ of the course, four sample students, graded and printed.

alice submits the instructor's solution, bob the release untouched, carol the solution with a
test cell edited and another tagged to skip, dave the solution with one notebook cut short
(invalid JSON). Nothing touches the course's own gradebook.
"""

from __future__ import annotations

import shutil

from .course import Course
from .grading.records import Status


def demo(home: Course, workers: int = 2) -> int:
    import nbformat

    from .grading.batch import grade
    from .samples import make_course, notebook_names, place, submission

    course = home.root / ".demo"
    shutil.rmtree(course, ignore_errors=True)
    make_course(course, home.root)
    if not home.reference.exists():
        from .reference import build_reference

        build_reference(home)
    (course / "solutions").mkdir(exist_ok=True)
    shutil.copy(home.reference, course / "solutions" / "reference.json")
    names = notebook_names(course)
    place(course, "alice", {n: submission(course, n) for n in names})
    place(course, "bob", {n: submission(course, n, blank=True) for n in names})
    carol = {n: submission(course, n) for n in names}
    tests = [
        c
        for c in carol[names[0]].cells
        if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata.nbgrader.get("solution")
    ]
    tests[0].source = "pass  # trust me"
    tests[1].metadata["tags"] = ["skip-execution"]
    place(course, "carol", carol)
    dave = {n: submission(course, n) for n in names}
    text = nbformat.writes(dave[names[-1]])
    dave[names[-1]] = text[: len(text) // 2]
    place(course, "dave", dave)
    records = grade(Course.open(course, home.assignment), workers=workers)
    print((course / "exports" / "grades.csv").read_text())
    print(f"Feedback: {course / 'feedback'}; autograded notebooks and grading.json: {course / 'autograded'}")
    return 1 if any(r.status == Status.GRADER_ERROR for r in records) else 0
