"""Runs in the grading parent: lease the uids that kernels run as, one per grading slot.

Every kernel of a slot runs as that slot's uid, so the grader can count, limit and kill a
slot's processes by uid. Two grading runs on one machine (two courses, a regrade during a
batch) must therefore never hold the same uid. A slot is leased by holding an exclusive
`flock` on `<lock dir>/<uid>.lock`: the kernel drops the lock when the process that holds it
exits, however it exits, so a run killed with SIGKILL leaks nothing and the next run may
take the uid (and kill whatever that uid left behind).
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import KitError

FIRST_UID = 61000
SPAN = 1000  # uids FIRST_UID .. FIRST_UID + SPAN - 1 are the kit's
LOCK_DIR = Path(os.environ.get("COLLABKIT_SLOT_DIR", "/tmp/collabkit-slots"))


class SlotLease:
    """`n` uids, held until `release()` or until this process ends."""

    def __init__(self, n: int, lock_dir: Path = LOCK_DIR, first: int = FIRST_UID, span: int = SPAN):
        self.uids: list[int] = []
        self._fds: list[int] = []
        lock_dir.mkdir(parents=True, exist_ok=True)
        try:
            lock_dir.chmod(0o1777)  # any user's grading run can lease a slot
        except OSError:
            pass
        for uid in range(first, first + span):
            if len(self.uids) == n:
                break
            fd = os.open(lock_dir / f"{uid}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self.uids.append(uid)
            self._fds.append(fd)
        if len(self.uids) < n:
            self.release()
            raise KitError(f"no free grading slot: all {span} uids from {first} are held by other grading runs")

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds, self.uids = [], []

    def __enter__(self) -> "SlotLease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def holder(uid: int, lock_dir: Path = LOCK_DIR) -> int | None:
    """The pid that last leased `uid`, if its lock is held now (for diagnostics and tests)."""
    path = lock_dir / f"{uid}.lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return int(path.read_text().strip() or 0) or None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
