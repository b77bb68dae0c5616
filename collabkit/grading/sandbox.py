"""Runs as the kernel's launcher (privileged, stdlib only): `python -m collabkit.grading.sandbox CONFIG -- KERNEL ARGV`.

The grading worker (root) launches every kernel through this wrapper; `SandboxConfig` is what
it reads. Before it execs the
kernel it applies, in order, whatever this machine allows, and writes what it applied to
the config's `report` file (which only the grader can read):

1. a private mount namespace: each `hide` path is covered by an empty tmpfs (so the course
   folder, the grader's home, other submissions and /tmp vanish), then each `expose_ro`
   path (Python, the installed packages, the kit's package) is bound back read-only and
   each `expose_rw` path (this submission's working folder) read-write;
2. a network namespace of its own, with only the loopback interface (up): student code reaches
   no other machine, no name server and nothing listening on the host's 127.0.0.1; the kernel
   talks to the grader over unix sockets (jupyter's `ipc` transport) in its own folder;
3. resource limits: address space, processes, file size, no core files;
4. no new privileges, then an unprivileged uid/gid of its own (one per grading slot, so one
   slot's processes can be counted, limited and killed without touching another's);
5. death with its parent: if the grading worker dies, the kernel is killed.

Without root, 1, 2 and 4 are impossible; the report says so and grading goes on.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import sys
from dataclasses import asdict, dataclass, field

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP, IFF_RUNNING = 0x8913, 0x8914, 0x1, 0x40
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
LIMITS = {
    "as": resource.RLIMIT_AS,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "core": resource.RLIMIT_CORE,
}

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class SandboxConfig:
    """What the sandbox applies to one kernel: what it sees, as whom, within which limits."""

    cwd: str  # the kernel's working folder
    env: dict  # the kernel's whole environment (plus jupyter_client's JPY_ variables)
    report: str | None = None  # where to write what was applied (JSON), opened before anything is hidden
    namespace: bool = True  # a private mount namespace (root only)
    net_namespace: bool = True  # a network namespace with loopback only (root only; the kernel must use ipc)
    hide: list = field(default_factory=list)  # covered by an empty tmpfs
    private_tmp: list = field(default_factory=list)  # covered by a writable tmpfs of its own
    expose_ro: list = field(default_factory=list)  # bound back read-only
    expose_rw: list = field(default_factory=list)  # bound back read-write
    uid: int | None = None  # run as this uid/gid (root only)
    gid: int | None = None
    limits: dict = field(default_factory=dict)  # as, nproc, fsize, core: bytes or counts

    def write(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(asdict(self), f)

    @classmethod
    def read(cls, path: str) -> "SandboxConfig":
        with open(path) as f:
            return cls(**json.load(f))


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: s.encode() if s is not None else None
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _under(path: str, parents) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


def isolate_mounts(hide: list[str], private_tmp: list[str], expose_ro: list[str], expose_rw: list[str]) -> None:
    """Private mount namespace: cover `hide` (and `private_tmp`, writable) with tmpfs, then bind exposed paths back."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    covers = sorted({os.path.realpath(p) for p in hide + private_tmp if os.path.exists(p)}, key=len)
    exposed = [
        (os.path.realpath(p), ro)
        for p, ro in [(p, True) for p in expose_ro] + [(p, False) for p in expose_rw]
        if os.path.exists(p)
    ]
    exposed = sorted({p: ro for p, ro in exposed if _under(p, covers)}.items(), key=lambda x: len(x[0]))
    fds = {p: os.open(p, os.O_PATH) for p, _ in exposed}
    done: list[str] = []
    for path in covers:
        if _under(path, done):
            continue  # already inside an empty tmpfs
        tmp = path in {os.path.realpath(p) for p in private_tmp}
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m" if tmp else "mode=755,size=1m")
        done.append(path)
    for path, ro in exposed:
        if os.path.isdir(f"/proc/self/fd/{fds[path]}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        _mount(f"/proc/self/fd/{fds[path]}", path, None, MS_BIND | MS_REC)
        if ro:
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fds[path])
    for path in done:  # the tmpfs holding only mount points is read-only too
        if path not in {os.path.realpath(p) for p in private_tmp}:
            _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=755")


def isolate_network() -> None:
    """A network namespace of this process's own, holding only `lo`, brought up (SIOCSIFFLAGS)."""
    _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0)))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP | IFF_RUNNING))


WARM_HEADROOM = 512 * 2**20  # the least address space a warm kernel gets beyond what it was forked with


def _address_space() -> int:
    """This process's mapped address space in bytes (what RLIMIT_AS counts)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _can_run(exe: str, uid: int) -> bool:
    import subprocess

    try:
        return (
            subprocess.run(
                [exe, "-c", ""], user=uid, group=uid, extra_groups=[], cwd="/", capture_output=True
            ).returncode
            == 0
        )
    except OSError:
        return False


def apply(cfg: SandboxConfig, kernel: list[str], warm: bool = False) -> dict:
    """Apply the sandbox to this process (namespaces, limits, uid, death with the parent, working folder)
    and write the report; the environment the kernel gets. `kernel` is its argv (its connection file
    follows `-f`); `warm`: it is forked from the fork server (forkserver.py) rather than executed."""
    report = {"namespace": False, "net_namespace": False, "uid": None, "limits": {}, "warnings": [], "warm": warm}
    out = open(cfg.report, "w") if cfg.report else None  # opened before the namespace hides it
    root = os.geteuid() == 0
    if cfg.namespace and root:
        try:
            isolate_mounts(cfg.hide, cfg.private_tmp, cfg.expose_ro, cfg.expose_rw)
            report["namespace"] = True
        except OSError as err:
            report["warnings"].append(
                f"no private mount namespace ({err}): student code can read "
                "world-readable files of the course (source/, gradebook.db)"
            )
    elif cfg.namespace:
        report["warnings"].append(
            "not root: no private mount namespace; student code can read whatever the grader's user can read"
        )
    if cfg.net_namespace and root:
        try:
            isolate_network()
            report["net_namespace"] = True
        except OSError as err:
            report["warnings"].append(f"no network namespace ({err}): student code has the network")
    elif cfg.net_namespace:
        report["warnings"].append("not root: no network namespace; student code has the network")
    else:
        report["warnings"].append(
            "no network namespace was asked for (the kernel's socket path is too long for "
            "unix sockets): student code has the network"
        )
    uid, gid = cfg.uid, cfg.gid
    if root and uid is not None and not report["namespace"] and not _can_run(kernel[0], uid):
        report["warnings"].append(
            f"uid {uid} cannot run {kernel[0]} without the mount namespace; the kernel runs as root"
        )
        uid = None
    if root and uid is not None:  # the kernel must read its connection file (written 0600 by the grader)
        if "-f" in kernel:
            os.chown(kernel[kernel.index("-f") + 1], uid, gid)
    for name, value in cfg.limits.items():
        if name == "as" and warm and value < _address_space() + WARM_HEADROOM:
            floor = _address_space() + WARM_HEADROOM
            report["notes"] = [
                f"address space raised from {value >> 20} MB to {floor >> 20} MB: this warm kernel was forked "
                f"with the kit's stack already mapped ({_address_space() >> 20} MB), and gets at least "
                f"{WARM_HEADROOM >> 20} MB beyond it"
            ]
            value = floor
        try:
            soft, hard = resource.getrlimit(LIMITS[name])
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(LIMITS[name], (value, value))
            report["limits"][name] = value
        except (ValueError, OSError) as err:
            report["warnings"].append(f"could not limit {name} ({err})")
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if root and uid is not None:
        report["uid"] = uid
    elif uid is not None:
        report["warnings"].append("not root: the kernel runs as the grader's own user")
    if out is not None:
        json.dump(report, out)
        out.close()
    if root and uid is not None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        if warm:  # an executed kernel is dumpable again after its execve; a forked one must be told, or its
            _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # own /proc/self (fd, environ) would belong to root
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the worker died before we got here
        os._exit(1)
    os.chdir(cfg.cwd)
    return dict(cfg.env, **{k: v for k, v in os.environ.items() if k.startswith("JPY_")})  # from jupyter_client


def main(argv: list[str]) -> None:
    config_path, sep, *kernel = argv
    assert sep == "--" and kernel, "usage: python -m collabkit.grading.sandbox CONFIG -- KERNEL ARGV"
    env = apply(SandboxConfig.read(config_path), kernel)
    os.execve(kernel[0], kernel, env)


if __name__ == "__main__":
    main(sys.argv[1:])
