"""The locks a grading run holds (all `flock`, dropped by the kernel when the process holding
them exits, however it exits). Slots are leased in the run's Dask workers (task.py); students and
the gradebook in the grading parent (batch.py).

- Slots: the uids kernels run as, one per grading slot (`SlotLease`).
- Students: a run grades a student only while it holds that student's lock
  (`StudentLease`, `<course>/.collabkit/locks/<assignment>/<student>.lock`), so two runs never
  both write one student's grades; a second run refuses the students another holds.
- The gradebook: its writes and the exports rebuilt from it happen under
  `<course>/.collabkit/locks/gradebook.lock` (`gradebook_lock`), one run at a time.

About slots:

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
from contextlib import contextmanager
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
            fd = _try_lock(lock_dir / f"{uid}.lock")
            if fd is None:
                continue
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


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on `path` (its holder's pid written in it), or None if another holds it."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class StudentLease:
    """The students of `students` no other run is grading, each locked until `release()` or this process ends.

    `held` lists the students this run may grade; `refused` maps each other student to the pid
    of the run that holds them."""

    def __init__(self, lock_dir: Path, students: list[str]):
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.held: list[str] = []
        self.refused: dict[str, int | None] = {}
        self._fds: list[int] = []
        for student in students:
            fd = _try_lock(lock_dir / f"{student}.lock")
            if fd is None:
                self.refused[student] = lock_holder(lock_dir / f"{student}.lock")
            else:
                self.held.append(student)
                self._fds.append(fd)

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds, self.held = [], []


@contextmanager
def gradebook_lock(path: Path):
    """Hold `path` exclusively (waiting for another run's short write) while writing the gradebook or exports."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def holder(uid: int, lock_dir: Path = LOCK_DIR) -> int | None:
    """The pid that last leased `uid`, if its lock is held now (for diagnostics and tests)."""
    return lock_holder(lock_dir / f"{uid}.lock")


def lock_holder(path: Path) -> int | None:
    """The pid written in the lock file `path`, if its lock is held now."""
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
