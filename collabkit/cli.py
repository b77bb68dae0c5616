"""The `collabkit` command: one subcommand per pipeline stage."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import ASSIGNMENT, ROOT


def cmd_data(args) -> int:
    from .data import ensure_movielens
    print(ensure_movielens())
    return 0


def cmd_release(args) -> int:
    from .release import release
    print(release())
    return 0


def cmd_reference(args) -> int:
    from .reference import build_reference
    values = build_reference()
    print(json.dumps(values, indent=2, sort_keys=True))
    return 0


def cmd_bench(args) -> int:
    from .bench import run
    run(n=args.n, reps=args.reps, quick=args.quick, out=Path(args.out))
    return 0


def cmd_grade(args) -> int:
    from pathlib import Path
    from .grade import Limits, STATUSES, grade
    limits = Limits(**{k: v for k, v in dict(timeout=args.timeout, notebook_timeout=args.notebook_timeout,
                                             memory_mb=args.memory_mb).items() if v is not None})
    try:
        records = grade(Path(args.root), args.assignment, students=args.student, workers=args.workers, limits=limits)
    except RuntimeError as err:
        print(f"collabkit grade: {err}", file=sys.stderr)
        return 2
    failed = [r["student_id"] for r in records if r["status"] == "grader_error"]
    print(f"collabkit grade: {len(records)} submissions graded; exports in {Path(args.root) / 'exports'}")
    if failed:
        print(f"collabkit grade: the kit failed on {', '.join(failed)} ({STATUSES['grader_error']})", file=sys.stderr)
        return 1
    return 0


def cmd_feedback(args) -> int:
    from pathlib import Path
    from .grade import refresh_feedback
    done = refresh_feedback(Path(args.root), args.assignment, students=args.student)
    print(f"collabkit feedback: wrote feedback for {len(done)} students in {Path(args.root) / 'feedback'}")
    return 0


def cmd_export(args) -> int:
    from pathlib import Path
    from .grade import export
    for path in export(Path(args.root), args.assignment):
        print(path)
    return 0


def cmd_demo(args) -> int:
    from .grade import demo
    return demo(workers=args.workers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collabkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("data", help="make untar_data(URLs.ML_100k) work offline (fills $FASTAI_HOME/data/ml-100k)")
    p.set_defaults(func=cmd_data)
    p = sub.add_parser("release", help="generate the student notebooks into release/ (nbgrader generate_assignment)")
    p.set_defaults(func=cmd_release)
    p = sub.add_parser("reference", help="execute the solutions into solutions/ and write solutions/reference.json")
    p.set_defaults(func=cmd_reference)
    p = sub.add_parser("bench", help="time the solution notebooks and grading (vs plain nbgrader); writes bench/results.json")
    p.add_argument("--n", type=int, default=8, help="submissions in the graded batch (default 8)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each notebook and of the single autograde; medians are reported (default 3)")
    p.add_argument("--quick", action="store_true", help="one notebook, 2 submissions, once: checks that it runs")
    p.add_argument("--out", default=str(ROOT / "bench" / "results.json"), help="where to write the figures")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("grade", help="autograde submitted/ (isolated, parallel); writes autograded/, feedback/, exports/")
    p.add_argument("assignment", nargs="?", default=ASSIGNMENT)
    p.add_argument("--student", action="append", help="grade only this student (repeatable); others are untouched")
    p.add_argument("--workers", type=int, default=2, help="submissions graded at once, one thread each (default 2)")
    p.add_argument("--timeout", type=float, help="seconds per cell (default: Execute.timeout in nbgrader_config.py)")
    p.add_argument("--notebook-timeout", type=float, help="wall-clock seconds per notebook (default 900)")
    p.add_argument("--memory-mb", type=int, help="address-space limit per kernel in MB (default 6144)")
    p.add_argument("--root", default=str(ROOT), help="course folder (default: this checkout)")
    p.set_defaults(func=cmd_grade)
    p = sub.add_parser("feedback", help="render feedback again from the gradebook (after hand-grading); runs no student code")
    p.add_argument("assignment", nargs="?", default=ASSIGNMENT)
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--root", default=str(ROOT), help="course folder (default: this checkout)")
    p.set_defaults(func=cmd_feedback)
    p = sub.add_parser("export", help="write exports/grades.csv and exports/grades_by_cell.csv from the gradebook")
    p.add_argument("assignment", nargs="?", default=ASSIGNMENT)
    p.add_argument("--root", default=str(ROOT), help="course folder (default: this checkout)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("demo", help="release into .demo/, grade four sample students there, print the grades")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .data import DataError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DataError as err:
        print(f"collabkit {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
