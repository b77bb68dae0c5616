"""Grading slots (the uids kernels run as) are leased: two runs on one machine never share one."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from collabkit.errors import KitError
from collabkit.grading.slots import SlotLease, holder


def test_two_leases_get_different_uids_and_a_released_uid_is_free_again(tmp_path):
    a = SlotLease(2, lock_dir=tmp_path, first=70000, span=10)
    b = SlotLease(2, lock_dir=tmp_path, first=70000, span=10)
    assert a.uids == [70000, 70001] and b.uids == [70002, 70003]
    assert holder(70000, tmp_path) is not None
    a.release()
    assert holder(70000, tmp_path) is None
    with SlotLease(1, lock_dir=tmp_path, first=70000, span=10) as c:
        assert c.uids == [70000]
    b.release()


def test_no_free_slot_is_a_clear_error(tmp_path):
    with SlotLease(2, lock_dir=tmp_path, first=70000, span=2):
        with pytest.raises(KitError, match="no free grading slot"):
            SlotLease(1, lock_dir=tmp_path, first=70000, span=2)


def test_a_run_killed_outright_leaves_its_slots_free(tmp_path):
    code = (
        "import sys, time; from pathlib import Path; from collabkit.grading.slots import SlotLease; "
        f"l = SlotLease(2, lock_dir=Path({str(tmp_path)!r}), first=70000, span=10); print(l.uids, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "[70000, 70001]"
        assert holder(70000, tmp_path) == proc.pid
        assert SlotLease(1, lock_dir=tmp_path, first=70000, span=10).uids == [70002], "held by the other run"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    while holder(70000, tmp_path) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert SlotLease(2, lock_dir=tmp_path, first=70000, span=10).uids == [70000, 70001]


def test_a_student_held_by_one_run_is_refused_to_another_with_its_pid(tmp_path):
    from collabkit.grading.slots import StudentLease

    code = (
        "import time; from pathlib import Path; from collabkit.grading.slots import StudentLease; "
        f"l = StudentLease(Path({str(tmp_path)!r}), ['alice', 'bob']); print(l.held, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "['alice', 'bob']"
        other = StudentLease(tmp_path, ["alice", "carol"])
        assert other.held == ["carol"] and other.refused == {"alice": proc.pid}
        other.release()
    finally:
        proc.kill()
        proc.wait()
    again = StudentLease(tmp_path, ["alice", "bob"])  # the kernel dropped the dead run's locks
    assert again.held == ["alice", "bob"] and not again.refused
    again.release()
