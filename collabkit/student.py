"""The `collabkit` command of the students' wheel (`collabkit handout`): only `collabkit data`.

The students' wheel holds what the notebooks import (nb, quiet, data, errors) and this
module; none of the grading code. So its command does one thing: place MovieLens where
fastai looks, as `collabkit data` does for instructors.
"""

from __future__ import annotations

import sys

from .errors import KitError

USAGE = "usage: collabkit data   (place MovieLens 100K where untar_data(URLs.ML_100k) looks)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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
