"""The kit's one error family: a failure the user can act on.

`collabkit` catches `KitError` once, in cli.main, prints it as one line and exits with 2.
"""


class KitError(Exception):
    """A failure the user can act on, said in one sentence."""
