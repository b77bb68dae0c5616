"""The kit's one error family: a failure the user can act on.

`collabkit` catches `KitError` once, in cli.main, prints it as one line and exits with its
`exit_code` (2: the command could not run; `collabkit grade` uses 1 for students it left
ungraded, and 128 + the signal's number when it was interrupted).
"""


class KitError(Exception):
    """A failure the user can act on, said in one sentence."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
