"""The `collabkit` command: one subcommand per pipeline stage."""
from __future__ import annotations

import argparse
import json
import sys


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
    run(n=args.n, reps=args.reps, quick=args.quick)
    return 0


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
    p.add_argument("--reps", type=int, default=3, help="repetitions; medians are reported (default 3)")
    p.add_argument("--quick", action="store_true", help="one notebook, 2 submissions, once: checks that it runs")
    p.set_defaults(func=cmd_bench)
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
