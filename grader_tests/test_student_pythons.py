"""The students' bundle resolves on every Python and system STUDENTS.md names, against the registry.

For each of STUDENT_PYTHONS on each of STUDENT_PLATFORMS (9 combinations), the bundle's
`requirements.txt` plus its wheel are resolved, dependencies included, wheels only, by
`uv pip compile --python-version V --python-platform P --only-binary :all:`. uv evaluates
environment markers and wheel tags for the target (pip's --python-version/--platform evaluate
markers against this host, and pull torch's Linux CUDA wheels into a macOS resolution), and reads
each wheel's metadata without downloading it (this registry serves no separate metadata files, so
pip would download torch whole). macOS resolves with MACOSX_DEPLOYMENT_TARGET=14.0: torch 2.14.1's
wheels are macOS 14 wheels. Neither uv nor pip checks a local wheel's Requires-Python against a
target version, so the wheel's is checked here as pip checks it when a student installs.

The registry is the one pip here uses: pip's index-url (PyPI unless configured otherwise), with its
certificate. pip's extra file:// indexes, find-links and constraints on this machine are copies of
host-only wheels that students do not have, so they take no part. A combination that does not
resolve fails, naming the package that blocks it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from collabkit.handout import STUDENT_PLATFORMS, STUDENT_PYTHONS, build_wheel, student_requirements

REPO = Path(__file__).resolve().parent.parent
UV = Path(sys.executable).parent / "uv"
COMBOS = [(py, system) for py in STUDENT_PYTHONS for system in STUDENT_PLATFORMS]


def pip_config() -> dict[str, str]:
    """pip's settings as `pip config list` shows them (files and PIP_ variables), by key."""
    run = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True)
    out = {}
    for line in run.stdout.splitlines():
        m = re.match(r"^(:env:|global|install|download)\.([\w-]+)='(.*)'$", line)
        if m:
            out.setdefault(m.group(2), m.group(3))  # `pip config list` shows the environment first
    return out


def registry() -> tuple[str, dict]:
    """pip's index, and the environment uv needs to reach it as pip does."""
    cfg = pip_config()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    if "cert" in cfg and "SSL_CERT_FILE" not in env:
        env["SSL_CERT_FILE"] = cfg["cert"]
    env["MACOSX_DEPLOYMENT_TARGET"] = "14.0"
    return cfg.get("index-url", "https://pypi.org/simple").split()[0], env


def blocker(stderr: str) -> str:
    """The package uv's explanation starts from: `Because torch==2.14.1 has no wheels ...` -> torch==2.14.1."""
    m = re.search(
        r"Because (?:there is no version of |there are no versions of |only )?([A-Za-z0-9_.\-]+(?:[=<>!~]=?[^\s,]+)?)",
        stderr,
    )
    if m:
        return m.group(1)
    m = re.search(r"(?:for|of|find) `?([A-Za-z0-9_.\-]+(?:==[^\s`]+)?)`?", stderr)
    return m.group(1) if m else "(uv named none)"


def resolve(requirements: Path, python: str, system: str, cache: Path) -> subprocess.CompletedProcess:
    index, env = registry()
    return subprocess.run(
        [UV, "pip", "compile", "--no-config", "--no-python-downloads", "--python", sys.executable,
         "--index-url", index, "--cache-dir", cache, "--python-version", python,
         "--python-platform", STUDENT_PLATFORMS[system], "--only-binary", ":all:",
         "--no-header", "--no-annotate", "--quiet", requirements],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def requires_python(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(z.read(name).decode()).get("Requires-Python", "")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The bundle's requirements.txt, as `collabkit handout` writes it, with its wheel as one more line."""
    out = tmp_path_factory.mktemp("bundle")
    pins = student_requirements(REPO / "requirements.txt")
    wheel = build_wheel(out, "0.1.0", pins)
    (out / "requirements.txt").write_text(pins + f"{wheel}\n")
    return out


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")  # fresh: every run asks the registry


@pytest.mark.slow
@pytest.mark.parametrize("python,system", COMBOS, ids=[f"{p}-{s.split()[0]}" for p, s in COMBOS])
def test_the_bundle_resolves(bundle, uv_cache, python, system):
    [wheel] = bundle.glob("collabkit-*.whl")
    spec = requires_python(wheel)
    assert Version(python + ".0") in SpecifierSet(spec), (
        f"Python {python} on {system}: blocked by collabkit (the wheel's Requires-Python is {spec!r})"
    )
    run = resolve(bundle / "requirements.txt", python, system, uv_cache)
    assert run.returncode == 0, f"Python {python} on {system}: blocked by {blocker(run.stderr)}\n{run.stderr[-2000:]}"
    resolved = {line.split("==")[0].lower() for line in run.stdout.splitlines() if "==" in line}
    pinned = {
        line.split("==")[0].lower() for line in (bundle / "requirements.txt").read_text().splitlines() if "==" in line
    }
    assert pinned <= resolved and "collabkit" in run.stdout, (pinned - resolved, run.stdout[:500])
    for line in (bundle / "requirements.txt").read_text().splitlines():
        if "==" in line:
            assert line.lower() in run.stdout.lower(), f"{line} resolved to another version"


@pytest.mark.slow
def test_a_combination_that_cannot_resolve_names_the_blocking_package(bundle, uv_cache, tmp_path):
    """triton ships Linux wheels only: the bundle plus triton cannot resolve for Windows, and the
    failure names triton."""
    reqs = tmp_path / "requirements.txt"
    reqs.write_text((bundle / "requirements.txt").read_text() + "triton==3.8.0\n")
    run = resolve(reqs, "3.13", "Windows x86-64", uv_cache)
    assert run.returncode != 0 and blocker(run.stderr) == "triton==3.8.0", run.stderr[-2000:]
