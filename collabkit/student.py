"""The `collabkit` command of the students' wheel (`collabkit handout`): `collabkit data` and `collabkit check`.

The students' wheel holds what the notebooks import (nb, quiet, data, errors), the rules the
grader repairs submissions by (rules) and the check built on them (check), and this module; none
of the grading code. So its command does two things: place MovieLens where fastai looks, as
`collabkit data` does for instructors, and check the student's notebooks the way the grader
will (collabkit/check.py).
"""

from __future__ import annotations

import sys

from .errors import KitError

USAGE = """usage: collabkit data    place MovieLens 100K where untar_data(URLs.ML_100k) looks
       collabkit check [NOTEBOOK_OR_FOLDER ...] [--release ZIP_OR_FOLDER] [--no-run]
                       check your notebooks the way the grader will, before you submit"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        from .check import main as check

        return check(argv[1:])
    if argv != ["data"]:
        print(USAGE, file=sys.stderr)
        return 0 if argv in (["-h"], ["--help"]) else 2
    from .data import ensure_movielens

    try:
        print(ensure_movielens())
    except KitError as err:
        print(f"collabkit data: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
