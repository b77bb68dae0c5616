"""The `collabkit` command: one subcommand per pipeline stage.

As in nbgrader, the course is the folder you stand in (or `--root DIR`): every command reads
its nbgrader_config.py and works on its `collab_filtering` assignment.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import ASSIGNMENT
from .course import Course
from .errors import KitError

log = logging.getLogger("collabkit")


def cmd_data(args) -> int:
    from .data import ensure_movielens

    print(ensure_movielens())
    return 0


def cmd_release(args) -> int:
    from .release import release

    print(release(Course.open(args.root)))
    return 0


def cmd_reference(args) -> int:
    from .reference import build_reference

    values = build_reference(Course.open(args.root))
    print(json.dumps(values, indent=2, sort_keys=True))
    return 0


def cmd_bench(args) -> int:
    from .bench import run

    course = Course.open(args.root)
    out = Path(args.out) if args.out else course.root / "bench" / "results.json"
    if args.grid:
        from . import hint_grid

        hint_grid.run(out)
        return 0
    run(
        course,
        n=args.n,
        reps=args.reps,
        quick=args.quick,
        out=out,
        report_students=args.report_students,
        report_only=args.report_only,
    )
    return 0


def cmd_grade(args) -> int:
    from .grading.batch import grade
    from .grading.records import STATUS_MEANING, Limits, Status

    course = Course.open(args.root, args.assignment)
    limits = Limits(
        **{
            k: v
            for k, v in dict(
                timeout=args.timeout, notebook_timeout=args.notebook_timeout, memory_mb=args.memory_mb
            ).items()
            if v is not None
        },
        warm_kernels=not args.cold_kernels,
    )
    from .regrade import report, snapshot

    before = snapshot(course, args.student)  # the regrade diff
    records = grade(
        course,
        students=args.student,
        workers=args.workers,
        limits=limits,
        resume=args.resume,
        scheduler=args.scheduler,
    )
    report(course, before, records)
    failed = [r.student_id for r in records if r.status == Status.GRADER_ERROR]
    print(f"collabkit grade: {len(records)} submissions graded; exports in {course.exports}")
    if failed:
        log.error("collabkit grade: the kit failed on %s (%s)", ", ".join(failed), STATUS_MEANING[Status.GRADER_ERROR])
        return 1
    return 0


def cmd_feedback(args) -> int:
    from .feedback import refresh_feedback

    course = Course.open(args.root, args.assignment)
    done = refresh_feedback(course, students=args.student)
    course.hand_back()
    print(f"collabkit feedback: wrote feedback for {len(done)} students in {course.feedback('*').parent.parent}")
    return 0


def cmd_export(args) -> int:
    from .export import export

    course = Course.open(args.root, args.assignment)
    for path in export(course):
        print(path)
    if args.roster or args.format:  # issue 11: grades into the LMS
        print(export_lms_from_args(args))
    course.hand_back()
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    course = Course.open(args.root, args.assignment)
    paths = write_report(course, workers=args.workers)
    report = json.loads(paths[0].read_text())
    print(
        f"collabkit report: {report['students']} students, {len(report['warnings'])} warnings about tests, "
        f"{len(report['similarity']['pairs'])} similar pairs to read"
    )
    for path in paths:
        print(path)
    return 0


def export_lms_from_args(args) -> Path:
    from .lms import export_lms

    if not (args.roster and args.format):
        raise KitError("--roster and --format go together: --roster ROSTER.csv --format canvas|moodle")
    course = Course.open(args.root, args.assignment)
    return export_lms(
        course.exports,
        Path(args.roster),
        args.format,
        title=args.assignment_title or course.assignment,
        assignment_id=args.canvas_assignment_id,
        identifier=args.moodle_id,
        missing_as_zero=args.missing_as_zero,
        warn=lambda msg: print(f"collabkit export: {msg}", file=sys.stderr),
    )


def cmd_handout(args) -> int:
    from .handout import handout

    dist = handout(Course.open(args.root), url=args.url)
    for path in sorted(dist.iterdir()):
        print(path)
    return 0


def cmd_serve(args) -> int:
    from .serve import serve

    return serve(Course.open(args.root), port=args.port)


def cmd_demo(args) -> int:
    from .demo import demo

    return demo(Course.open(args.root), workers=args.workers)


def cmd_check(args) -> int:
    """The students' `collabkit check` (collabkit/check.py), against the course's release/ by default."""
    from .check import check, load_release
    from .grading.records import Limits

    release = args.release
    if release is None:  # the course's release/, with the limits its grading uses by default
        course = Course.open(args.root)
        release = load_release(course.release)
        release.cell_timeout = course.nbgrader_config().Execute.timeout or None
        release.notebook_timeout = Limits().notebook_timeout
    return 1 if check(args.paths, release, execute=not args.no_run) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collabkit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, help: str, assignment: bool = False, course: bool = True):
        p = sub.add_parser(name, help=help)
        p.set_defaults(func=func)
        if assignment:
            p.add_argument("assignment", nargs="?", default=ASSIGNMENT)
        if course:
            p.add_argument("--root", help="the course folder (default: the working directory)")
        return p

    command(
        "data", cmd_data, "make untar_data(URLs.ML_100k) work offline (fills $FASTAI_HOME/data/ml-100k)", course=False
    )
    command("release", cmd_release, "generate the student notebooks into release/ (nbgrader generate_assignment)")
    command("reference", cmd_reference, "execute the solutions into solutions/ and write solutions/reference.json")
    p = command(
        "bench", cmd_bench, "time the solution notebooks and grading (vs plain nbgrader); writes bench/results.json"
    )
    p.add_argument("--n", type=int, default=8, help="submissions in the graded batch (default 8)")
    p.add_argument(
        "--reps",
        type=int,
        default=3,
        help="repetitions of each notebook and of the single autograde; medians are reported (default 3)",
    )
    p.add_argument("--quick", action="store_true", help="one notebook, 2 submissions, once: checks that it runs")
    p.add_argument("--out", help="where to write the figures (default: bench/results.json in the course)")
    p.add_argument(
        "--grid",
        action="store_true",
        help="only the grids behind the notebooks' hints (02 beat-the-lecture, 04 neural), merged into the file",
    )
    p.add_argument(
        "--report-students",
        type=int,
        default=1000,
        help="students in the class `collabkit report` is timed on (default 1000)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="time only `collabkit report` on a written class (no grading); its figures go into --out",
    )
    p = command(
        "grade",
        cmd_grade,
        "autograde submitted/ (isolated, parallel); writes autograded/, feedback/, exports/",
        assignment=True,
    )
    p.add_argument("--student", action="append", help="grade only this student (repeatable); others are untouched")
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="local Dask worker processes, one submission each at a time, one thread each (default 2)",
    )
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="grade on an existing Dask cluster (its workers need the kit installed) instead of a local one",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="grade only students never finished (no grading.json, or grader_error) or whose submission changed",
    )
    p.add_argument("--timeout", type=float, help="seconds per cell (default: Execute.timeout in nbgrader_config.py)")
    p.add_argument("--notebook-timeout", type=float, help="wall-clock seconds per notebook (default 900)")
    p.add_argument("--memory-mb", type=int, help="address-space limit per kernel in MB (default 6144)")
    p.add_argument(
        "--cold-kernels",
        action="store_true",
        help="start every kernel as a new process that imports torch and fastai itself, instead of forking it "
        "from a fork server per worker thread that imported them once (the default: warm kernels)",
    )
    p = command(
        "feedback",
        cmd_feedback,
        "render feedback again from the gradebook (after hand-grading); runs no student code",
        assignment=True,
    )
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p = command(
        "export",
        cmd_export,
        "write exports/grades.csv and exports/grades_by_cell.csv from the gradebook",
        assignment=True,
    )
    p.add_argument(
        "--roster",
        help="a CSV with student_id plus the LMS's columns (name, lms_id, sis_user_id, "
        "sis_login_id, section, email, idnumber); with --format, also write exports/<format>.csv",
    )
    p.add_argument("--format", choices=["canvas", "moodle"], help="the LMS import layout to write")
    p.add_argument(
        "--missing-as-zero", action="store_true", help="a roster student with no submission gets 0, not a blank"
    )
    p.add_argument("--canvas-assignment-id", help="Canvas's id of the assignment (the grade column is 'TITLE (ID)')")
    p.add_argument("--assignment-title", help="the grade column's title (default: the assignment's name)")
    p.add_argument(
        "--moodle-id",
        choices=["email", "idnumber"],
        default="email",
        help="the roster column Moodle matches students by (default email)",
    )
    p = command(
        "report",
        cmd_report,
        "after grading (and hand-grading): item analysis, warnings about tests and similar submissions, "
        "in exports/report.html and exports/report.json",
        assignment=True,
    )
    p.add_argument("--workers", type=int, default=2, help="processes comparing answers (default 2)")
    p = command(
        "handout",
        cmd_handout,
        "write dist/ for students: the release as a zip, a wheel of what the notebooks "
        "import, requirements.txt, STUDENTS.md (refused if anything instructor-only is in it)",
    )
    p.add_argument(
        "--url", help="where you will publish dist/'s files: STUDENTS.md's Colab cell installs the wheel from there"
    )
    p = command(
        "check",
        cmd_check,
        "what the grader will repair in, and the visible tests make of, a student's notebooks "
        "(the students' `collabkit check`; against release/ by default)",
    )
    p.add_argument("paths", nargs="*", help="notebooks or folders (default: the working directory)")
    p.add_argument("--release", help="the released folder or the assignment's zip (default: the course's release/)")
    p.add_argument("--no-run", action="store_true", help="only read the notebooks, do not run them")
    p = command("serve", cmd_serve, "Jupyter with formgrader for the course on 127.0.0.1; prints its URL and token")
    p.add_argument("--port", type=int, help="the port (default: a free one)")
    p = command(
        "demo", cmd_demo, "release into .demo/ of the course, grade four sample students there, print the grades"
    )
    p.add_argument("--workers", type=int, default=2)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)  # progress and diagnostics: one line each, on stderr
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        return args.func(args)
    except KitError as err:
        log.error("collabkit %s: %s", args.command, err)
        return err.exit_code
    finally:
        log.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
