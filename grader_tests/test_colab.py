"""STUDENTS.md's Colab cell, as `collabkit handout` writes it, run in a kernel that says it is Colab.

There is no Colab here, so its runtime is stood in for by a fresh virtual environment (Linux,
this Python) holding only what the cell must keep: a torch and torchvision that are not the pins
(1.13.1+cu117 and 0.14.1+cu117, as Colab's CUDA builds are named; metadata-only stand-ins, since
only pip's view of them matters and nothing here imports torch), and the kernel. The notebook's
first cell makes `google.colab` importable, as Colab's kernel has it; the second is the cell from
STUDENTS.md, with `/content/` moved into the test's folder; the third is what every notebook's
first read-only cell starts with, `import collabkit.nb as ck`.

It proves: the cell runs (IPython's `!` lines inside the `if`), keeps the stand-in torch and
torchvision, installs the wheel and the other pins, places MovieLens where fastai looks, and the
import says in one stdout line that torch differs, and nothing else. And outside Colab the same
cell does nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from packaging.version import Version

from collabkit.handout import build_wheel, student_requirements, students_md

REPO = Path(__file__).resolve().parent.parent
STAND_INS = {"torch": "1.13.1+cu117", "torchvision": "0.14.1+cu117"}


def stand_in_wheel(name: str, version: str, requires: list[str], out: Path) -> Path:
    stage = out / f"stage-{name}"
    (stage / name).mkdir(parents=True)
    (stage / name / "__init__.py").write_text(f"raise ImportError('{name} here is a stand-in for Colab\\'s')\n")
    deps = ", ".join(f'"{r}"' for r in requires)
    (stage / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [{deps}]\n'
        f'[tool.setuptools]\npackages = ["{name}"]\n'
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, stage],
        check=True,
        capture_output=True,
    )
    [wheel] = out.glob(f"{name}-*.whl")
    return wheel


def pip_list(py: Path) -> dict[str, str]:
    run = subprocess.run([py, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True)
    return {p["name"].lower(): p["version"] for p in json.loads(run.stdout)}


@pytest.mark.slow
def test_the_colab_cell_keeps_colabs_torch_installs_the_rest_and_the_first_cell_says_so(tmp_path, monkeypatch):
    pins = student_requirements(REPO / "requirements.txt")
    content = tmp_path / "content"  # Colab's /content
    content.mkdir()
    wheel = build_wheel(content, "0.1.0", pins)
    text = students_md("collab_filtering", wheel.name, "collab_filtering.zip", pins)
    cell = text.split("```python\n")[1].split("```")[0]
    cell = "\n".join(line[3:] for line in cell.splitlines()).replace("/content/", f"{content}/")

    colab = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", colab], check=True)
    py = colab / "bin" / "python"
    wheels = [
        stand_in_wheel("torch", STAND_INS["torch"], [], tmp_path),
        stand_in_wheel("torchvision", STAND_INS["torchvision"], ["torch==1.13.1"], tmp_path),
    ]
    run = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", *wheels], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    run = subprocess.run([py, "-m", "pip", "install", "-q", "ipykernel==7.4.0"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    before = pip_list(py)
    assert "fastai" not in before and "collabkit" not in before
    kernels = tmp_path / "kernels"
    subprocess.run(
        [py, "-m", "ipykernel", "install", "--prefix", kernels, "--name", "colab"], check=True, capture_output=True
    )
    monkeypatch.setenv("JUPYTER_PATH", str(kernels / "share" / "jupyter"))
    monkeypatch.setenv("FASTAI_HOME", str(tmp_path / "fastai"))
    monkeypatch.setenv("PATH", f"{colab / 'bin'}{os.pathsep}{os.environ['PATH']}")

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab')"),
        nbformat.v4.new_code_cell(cell),
        nbformat.v4.new_code_cell("import collabkit.nb as ck"),
    ]
    NotebookClient(nb, timeout=900, kernel_name="colab").execute(cwd=str(tmp_path))

    kept = sorted((content / "keep.txt").read_text().split())
    assert kept == ["torch==1.13.1+cu117", "torchvision==0.14.1+cu117"], kept  # the constraint the install ran under
    after = pip_list(py)
    assert {k: after[k] for k in STAND_INS} == STAND_INS, "the cell replaced Colab's torch"
    for line in pins.splitlines():
        if "==" in line and line.split("==")[0] not in ("torch", "torchvision", "notebook", "ipykernel"):
            name, pinned = line.split("==")
            assert name in after, f"{name} was not installed"
            assert after[name] == pinned if name == "fastai" else Version(after[name]) >= Version(pinned), after[name]
    assert after["collabkit"] == "0.1.0"
    said = "".join(o.get("text", "") for o in nb.cells[1].outputs if o.get("name") == "stdout")
    assert said.strip().endswith(str(tmp_path / "fastai" / "data" / "ml-100k")), said[-2000:]
    assert (tmp_path / "fastai" / "data" / "ml-100k" / "u.data").is_file()
    [out] = nb.cells[2].outputs
    assert out.output_type == "stream" and out.name == "stdout", out
    assert out.text.startswith("collabkit: this Python differs") and out.text.count("\n") == 1, out.text
    assert "torch 1.13.1+cu117 (course: 2.14.1)" in out.text and "fastai" not in out.text, out.text

    # Outside Colab the same cell runs and does nothing.
    quiet = nbformat.v4.new_notebook()
    quiet.cells = [nbformat.v4.new_code_cell(cell)]
    (content / "keep.txt").unlink()
    NotebookClient(quiet, timeout=120, kernel_name="colab").execute(cwd=str(tmp_path))
    assert quiet.cells[0].outputs == [] and not (content / "keep.txt").exists()
