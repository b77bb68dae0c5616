"""One set of exact pins: requirements.txt, mirrored by environment.yml's pip section."""

import re
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def pins(lines):
    return dict(
        re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==(\S+)\s*$", line).groups()
        for line in lines
        if re.match(r"^\s*-?\s*[A-Za-z0-9_.\-]+==", line)
    )


def test_requirements_pin_everything_exactly():
    lines = [
        line
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all("==" in line for line in lines), [line for line in lines if "==" not in line]
    assert pins(lines)["torch"] == "2.14.1" and pins(lines)["torchvision"] == "0.29.1"


def test_environment_yml_matches_requirements():
    req = pins((REPO / "requirements.txt").read_text().splitlines())
    env_text = (REPO / "environment.yml").read_text()
    assert "python=3.11" in env_text
    assert pins(env_text.splitlines()) == req


def test_installed_versions_are_the_pinned_ones():
    req = pins((REPO / "requirements.txt").read_text().splitlines())
    assert {name: version(name) for name in req} == req
