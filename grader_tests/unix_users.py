"""Real Unix users and a shared exchange, for the tests of the students' side (run as root).

`shared_base()` is a world-readable folder outside /root and pytest's private tmp: the shared
Python every user runs, the shared `FASTAI_HOME`, and the nbgrader exchange, made as nbgrader's
docs make it (`mkdir`, then writable by everyone). `make_user()` / `remove_user()` wrap
useradd / userdel -r; `run_as()` runs a command as a user with a clean login environment.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def shared_base() -> Path:
    base = Path(tempfile.mkdtemp(prefix="collabkit-users-", dir="/tmp"))
    base.chmod(0o755)
    return base


@dataclass
class SharedPython:
    """The Python every test user runs (`python`: this checkout's venv), and `script`: what each
    user's command first runs as root in a mount namespace of its own so that Python is reachable."""

    python: Path
    script: str = ""


def shared_python(base: Path, probe_user: str) -> SharedPython:
    """This checkout's venv, for every user. When `probe_user` cannot run it (its interpreter sits
    under /root, which other users cannot enter), each user command gets a mount namespace of its
    own in which /root is an empty tmpfs holding only that interpreter's installation, bound
    read-only at its own path (the binary finds its libpython by that path; Debian's python3.11 is
    not a substitute: its `re` differs). Nothing is mounted outside the command."""
    if run_as(probe_user, [sys.executable, "-c", "import collabkit"], cwd="/").returncode == 0:
        return SharedPython(Path(sys.executable))
    real = Path(sys.base_prefix)
    blocked = next(p for p in [*reversed(real.parents), real] if not os.stat(p).st_mode & 0o001)
    stash = base / "py"
    stash.mkdir()
    q = shlex.quote
    script = (
        f"mount --bind -o ro {q(str(real))} {q(str(stash))} && mount -t tmpfs -o mode=0755 tmpfs {q(str(blocked))}"
        f" && mkdir -p {q(str(real))} && mount --bind {q(str(stash))} {q(str(real))}"
    )
    return SharedPython(Path(sys.executable), script)


def make_user(name: str) -> None:
    """A user with a private home (0700), as a shared teaching server must give each student."""
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", "-K", "HOME_MODE=0700", name], check=True)


def remove_user(name: str) -> None:
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)  # only this test's own user's processes
    subprocess.run(["userdel", "--remove", name], capture_output=True)


def home(name: str) -> Path:
    import pwd

    return Path(pwd.getpwnam(name).pw_dir)


def as_user(user: str, argv: list[str], env: dict | None = None, py: SharedPython | None = None) -> list[str]:
    """The command line that runs `argv` as `user` with a login's plain environment (HOME, USER,
    PATH) plus `env`; with `py`, in the mount namespace that makes its Python reachable."""
    h = str(home(user))
    path = os.pathsep.join([str(Path(argv[0]).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    base = {"HOME": h, "USER": user, "LOGNAME": user, "PATH": path, "LANG": "C.UTF-8"}
    full = ["runuser", "-u", user, "--", "env", "-i", *[f"{k}={v}" for k, v in {**base, **(env or {})}.items()], *argv]
    if py is not None and py.script:
        full = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{py.script} && exec "$@"', "sh", *full]
    return full


def run_as(
    user: str, argv: list[str], cwd, env: dict | None = None, py: SharedPython | None = None, **kw
) -> subprocess.CompletedProcess:
    """`argv` as `user` (see `as_user`), in `cwd`; its output captured."""
    return subprocess.run(as_user(user, argv, env, py), cwd=cwd, capture_output=True, text=True, **kw)


FINDER = """
import json, os, sys
roots, needles = json.load(sys.stdin)
found, listed = [], []
for root in roots:
    for folder, dirs, files in os.walk(root, onerror=lambda err: None):
        for name in files:
            path = os.path.join(folder, name)
            listed.append(path)
            try:
                data = open(path, "rb").read().decode("utf-8", "replace")
            except OSError:
                continue
            found += [[path, n] for n in needles if n in data or n.replace('"', '\\\\"') in data]
print(json.dumps({"found": found, "listed": listed}))
"""


def reachable(user: str, py: SharedPython, roots: list[Path], needles: list[str]) -> dict:
    """What `user` can list under `roots`, and which of `needles` they can read in which file."""
    run = run_as(
        user,
        [str(py.python), "-c", FINDER],
        cwd="/",
        py=py,
        input=json.dumps([[str(r) for r in roots], needles]),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)
